"""Keras model -> ANNE model document (the JSON form, see protocol/MODEL_FORMAT.md).

Layers with no effect at inference are dropped; per-feature affine layers
(Normalization, Rescaling, BatchNormalization, and input scaling given at export)
are folded into the neighbouring Dense weights, so the board never pays for them.
Keras only is imported here, and only when a model file is read.
"""

import os

import numpy as np

from . import model_doc
from .errors import AnneError

_DROPPED = {"InputLayer", "Dropout", "GaussianNoise", "GaussianDropout", "AlphaDropout",
            "ActivityRegularization", "Identity", "SpatialDropout1D"}

# Keras activation names -> (ANNE name, default parameters as Keras applies them).
_ACTIVATIONS = {
    "linear": ("linear", {}), "relu": ("relu", {}), "relu6": ("relu6", {}),
    "leaky_relu": ("leaky_relu", {"negative_slope": 0.2}), "elu": ("elu", {"alpha": 1.0}),
    "selu": ("selu", {}), "sigmoid": ("sigmoid", {}), "hard_sigmoid": ("hard_sigmoid", {}),
    "tanh": ("tanh", {}), "softmax": ("softmax", {}), "softplus": ("softplus", {}),
    "softsign": ("softsign", {}), "silu": ("silu", {}), "swish": ("silu", {}),
    "gelu": ("gelu", {"approximate": False}), "exponential": ("exponential", {}),
    "hard_silu": ("hard_silu", {}), "hard_swish": ("hard_silu", {}), "mish": ("mish", {}),
    "log_softmax": ("log_softmax", {}), "celu": ("celu", {"alpha": 1.0}),
    "hard_tanh": ("hard_tanh", {}), "log_sigmoid": ("log_sigmoid", {}),
}


class ExportError(AnneError):
    pass


def load_keras(path):
    """Read a Keras 3 ``.keras`` or legacy ``.h5`` file."""
    # TensorFlow's C++ start-up chatter is not anne-host's output: the log level hides the
    # CPU-feature notice, and only turning oneDNN off hides its notice (TF 2.21), which costs
    # nothing here, where Keras only reads weights. Settings the user made are kept.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    try:
        import keras
    except ImportError:
        raise ExportError("exporting needs Keras: pip install 'anne-host[export]'")
    try:
        return keras.models.load_model(str(path), compile=False)
    except (OSError, ValueError) as e:
        raise ExportError("%s: cannot read as a Keras model (%s)" % (path, e))


def export_model(model, name=None, labels=None, features=None, input_mean=None,
                 input_std=None, threshold=None, source=None):
    """Turn a Keras model object into an ANNE model document (a dict, JSON-ready)."""
    n_in = _input_size(model)
    ops = []
    if input_mean is not None or input_std is not None:
        mean = _vector(input_mean, n_in, 0.0, "input mean")
        std = _vector(input_std, n_in, 1.0, "input std")
        ops.append(_Affine("input scaling", 1.0 / std, -mean / std))
    dropped = []
    for layer in _chain(model):
        op = _convert(layer)
        if op is None:
            dropped.append("layer %r (%s)" % (layer.name, type(layer).__name__))
        else:
            ops.append(op)
    folded = []
    layers = _fold(ops, folded)
    n_out = [layer["units"] for layer in layers if layer["type"] == "dense"][-1]
    problem = model_doc.names_problem(features, labels, n_in, n_out, ("--features", "--labels"))
    if problem:
        raise ExportError(problem)
    meta = {"name": name or model.name, "inputs": n_in}
    if features:
        meta["features"] = list(features)
    if labels:
        meta["labels"] = list(labels)
    if threshold is not None:
        meta["threshold"] = float(threshold)
    src = dict(source or {})
    src["folded"] = folded
    src["dropped"] = dropped
    return model_doc.build(meta, layers, src)


def _input_size(model):
    shape = tuple(model.inputs[0].shape) if getattr(model, "inputs", None) else None
    if shape is None or len(shape) != 2 or shape[1] is None:
        raise ExportError("the model's input must be a flat vector (batch, n); it is %s" % (shape,))
    return int(shape[1])


def _chain(model):
    """The model's layers in order, checking that they form a single chain."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ExportError("only models with one input and one output are supported")
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    for layer in layers:
        if type(layer).__name__ in ("Sequential", "Functional"):
            raise ExportError("layer %r is a nested model; flatten it first" % layer.name)
    if type(model).__name__ != "Sequential":
        # A functional model is a chain when each depth of its graph holds one node.
        for depth, nodes in model._nodes_by_depth.items():
            if len(nodes) != 1:
                names = ", ".join(repr(n.operation.name) for n in nodes)
                raise ExportError("layers %s run side by side; only Sequential models and "
                                  "single-chain functional models are supported" % names)
    return layers


class _Affine:
    # y = x * scale + shift, per feature: the form every foldable layer takes.
    def __init__(self, what, scale, shift):
        self.what, self.scale, self.shift = what, np.asarray(scale, np.float64), np.asarray(shift, np.float64)


class _Dense:
    def __init__(self, what, kernel, bias, activation):
        self.what = what
        self.kernel = np.asarray(kernel, np.float64)  # Keras layout [in][out]
        self.bias = np.asarray(bias, np.float64)
        self.activation = activation


class _Act:
    def __init__(self, what, activation):
        self.what, self.activation = what, activation


def _vector(values, n, default, what):
    if values is None:
        return np.full(n, default)
    v = np.asarray(values, np.float64).reshape(-1)
    if v.size == 1:
        v = np.full(n, v[0])
    if v.size != n:
        raise ExportError("%s has %d values; the model has %d inputs" % (what, v.size, n))
    if what == "input std" and np.any(v == 0):
        raise ExportError("input std has a zero; every feature needs a non-zero spread")
    return v


def _activation(name, where, **params):
    if not isinstance(name, str) or name not in _ACTIVATIONS:
        raise ExportError("%s: activation %r is not supported; supported: %s"
                          % (where, name, ", ".join(sorted(_ACTIVATIONS))))
    anne, defaults = _ACTIVATIONS[name]
    spec = {"name": anne}
    spec.update(defaults)
    spec.update(params)
    return spec


def _convert(layer):
    kind = type(layer).__name__
    where = "layer %r (%s)" % (layer.name, kind)
    cfg = layer.get_config()
    if kind in _DROPPED or (kind == "Flatten" and len(layer.input.shape) == 2):
        return None
    if kind == "Dense":
        kernel, *rest = [np.asarray(w) for w in layer.get_weights()]
        bias = rest[0] if rest else np.zeros(kernel.shape[1])
        return _Dense(where, kernel, bias, _activation(cfg["activation"], where))
    if kind == "Activation":
        return _Act(where, _activation(cfg["activation"], where))
    if kind == "ReLU":
        return _Act(where, _relu(cfg))
    if kind == "LeakyReLU":
        return _Act(where, _activation("leaky_relu", where, negative_slope=float(cfg["negative_slope"])))
    if kind == "ELU":
        return _Act(where, _activation("elu", where, alpha=float(cfg.get("alpha", 1.0))))
    if kind == "Softmax":
        if cfg.get("axis", -1) not in (-1, 1):
            raise ExportError("%s: softmax must act on the last axis" % where)
        return _Act(where, {"name": "softmax"})
    if kind == "PReLU":
        alpha = np.asarray(layer.get_weights()[0]).reshape(-1)
        return _Act(where, {"name": "prelu", "alpha": alpha})
    if kind in ("Normalization", "Rescaling", "BatchNormalization"):
        return _affine_layer(layer, kind, cfg, where)
    raise ExportError("%s is not supported; supported layers: Dense, Activation, ReLU, LeakyReLU, "
                      "ELU, PReLU, Softmax, Normalization, Rescaling, BatchNormalization, Dropout "
                      "and other inference no-ops" % where)


def _relu(cfg):
    max_value = cfg.get("max_value")
    spec = {"name": "relu", "negative_slope": float(cfg.get("negative_slope") or 0.0),
            "max_value": None if max_value is None else float(max_value),
            "threshold": float(cfg.get("threshold") or 0.0)}
    return spec


def _affine_layer(layer, kind, cfg, where):
    if kind == "Normalization":
        if cfg.get("invert"):
            raise ExportError("%s: an inverting Normalization is not supported" % where)
        mean = np.asarray(layer.mean, np.float64).reshape(-1)
        std = np.maximum(np.sqrt(np.asarray(layer.variance, np.float64).reshape(-1)), 1e-7)
        return _Affine(where, 1.0 / std, -mean / std)
    if kind == "Rescaling":
        return _Affine(where, np.asarray(cfg["scale"], np.float64), np.asarray(cfg["offset"], np.float64))
    # BatchNormalization at inference: (x - moving_mean) / sqrt(moving_var + eps) * gamma + beta
    if cfg.get("axis") not in (-1, 1, [-1], [1]):
        raise ExportError("%s: only normalisation over the last axis can be folded" % where)
    names = [w.path.split("/")[-1] for w in layer.weights]
    w = dict(zip(names, (np.asarray(v, np.float64) for v in layer.get_weights())))
    s = w.get("gamma", 1.0) / np.sqrt(w["moving_variance"] + cfg["epsilon"])
    return _Affine(where, s, w.get("beta", 0.0) - w["moving_mean"] * s)


def _fold(ops, folded):
    """Fold affines into Dense weights and merge activations; returns document layers."""
    out = []  # _Dense / _Act, in order
    pending = None  # an affine waiting for the next Dense
    for op in ops:
        if isinstance(op, _Affine):
            prev = out[-1] if out else None
            if pending is None and isinstance(prev, _Dense) and prev.activation["name"] == "linear":
                prev.kernel = prev.kernel * op.scale
                prev.bias = prev.bias * op.scale + op.shift
                folded.append("%s into %s" % (op.what, prev.what))
            elif pending is None:
                pending = op
            else:  # two affines in a row compose
                pending = _Affine(pending.what + " + " + op.what, pending.scale * op.scale,
                                  pending.shift * op.scale + op.shift)
            continue
        if pending is not None:
            if not isinstance(op, _Dense):
                raise ExportError("%s cannot be folded: it is followed by %s, not by a Dense layer"
                                  % (pending.what, op.what))
            scale = np.broadcast_to(pending.scale, op.kernel.shape[:1])
            op.bias = op.bias + np.broadcast_to(pending.shift, op.kernel.shape[:1]) @ op.kernel
            op.kernel = op.kernel * scale[:, None]
            folded.append("%s into %s" % (pending.what, op.what))
            pending = None
        if isinstance(op, _Act) and out and isinstance(out[-1], _Dense) \
                and out[-1].activation["name"] == "linear":
            out[-1].activation = op.activation
            folded.append("%s into %s" % (op.what, out[-1].what))
            continue
        out.append(op)
    if pending is not None:
        raise ExportError("%s cannot be folded: no Dense layer follows it and the layer before "
                          "it is not a linear Dense" % pending.what)
    if not out or not isinstance(out[0], _Dense):
        raise ExportError("the model must start with a Dense layer (after any scaling layers)")
    return [_doc_layer(op) for op in out]


def _doc_layer(op):
    if isinstance(op, _Dense):
        return {"type": "dense", "units": int(op.kernel.shape[1]), "activation": op.activation,
                "weights": op.kernel.T, "bias": op.bias}
    return {"type": "activation", "activation": op.activation}
