"""A float model document as a Keras model that gives the board's outputs: the
reverse of export.py, for `anne-host pull --keras`.

Each dense layer becomes a Dense layer with the same kernel (transposed: the
document keeps a row per unit) and bias; an activation with parameters other
than Keras' defaults becomes a layer of its own (ReLU, LeakyReLU, ELU, PReLU).
"""

import numpy as np

from .errors import AnneError

# ANNE activations that Keras knows by the same name, with ANNE's default parameters.
_SAME = {"linear", "relu", "relu6", "selu", "sigmoid", "hard_sigmoid", "tanh", "softmax", "softplus",
         "softsign", "silu", "exponential", "hard_silu", "mish", "log_softmax", "hard_tanh",
         "log_sigmoid"}


def keras_model(doc):
    try:
        import keras
    except ImportError:
        raise AnneError("--keras needs Keras: pip install 'anne-host[export]'") from None
    layers = [keras.Input((doc["inputs"],))]
    weights = []
    for i, entry in enumerate(doc["layers"]):
        spec = entry["activation"]
        spec = {"name": spec} if isinstance(spec, str) else spec
        own = _activation_layer(keras, spec, "layer %d" % i)
        if entry["type"] == "dense":
            w = np.asarray(entry["weights"], np.float32)
            layers.append(keras.layers.Dense(w.shape[0], activation="linear" if own else spec["name"]))
            weights.append((len(layers) - 1, [w.T, np.asarray(entry["bias"], np.float32)]))
        if own:
            layers.append(own[0])
            if own[1] is not None:
                weights.append((len(layers) - 1, own[1]))
        elif entry["type"] != "dense":
            layers.append(keras.layers.Activation(spec["name"]))
    model = keras.Sequential(layers, name=str(doc.get("name") or "anne"))
    for k, values in weights:
        model.layers[k - 1].set_weights(values)  # the Input is not one of model.layers
    return model


def _activation_layer(keras, spec, where):
    """(layer, its weights or None) for an activation Keras cannot take by name with
    these parameters; None when its name does."""
    name = spec["name"]
    if name == "relu" and (spec.get("negative_slope") or spec.get("threshold")
                           or spec.get("max_value") is not None):
        return keras.layers.ReLU(max_value=spec.get("max_value"), negative_slope=spec.get("negative_slope") or 0.0,
                                 threshold=spec.get("threshold") or 0.0), None
    if name == "leaky_relu":
        return keras.layers.LeakyReLU(negative_slope=spec.get("negative_slope", 0.2)), None
    if name == "elu":
        return keras.layers.ELU(alpha=spec.get("alpha", 1.0)), None
    if name == "prelu":
        alpha = np.asarray(spec["alpha"], np.float32)
        return keras.layers.PReLU(), [alpha]
    # Keras' gelu and celu by name are exact gelu and celu with alpha 1; other
    # parameters would need a Lambda, which a .keras file cannot carry safely.
    if name in _SAME or (name == "gelu" and not spec.get("approximate")) or \
            (name == "celu" and spec.get("alpha", 1.0) == 1.0):
        return None
    raise AnneError("%s: activation %s with %s has no Keras layer that a .keras file can hold"
                    % (where, name, {k: v for k, v in spec.items() if k != "name"}))
