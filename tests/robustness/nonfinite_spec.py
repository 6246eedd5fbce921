"""MODEL_FORMAT.md's "Non-finite values" written out in numpy, as the tests' oracle.

Finite values go through Keras' own activation functions (the spec's semantics for
them); NaN and infinities get the spec's table and row rules, never Keras' answer,
which changes between Keras versions."""

import numpy as np

INF = np.inf
# activation (Keras' default parameters) -> (value at +inf, value at -inf)
LIMITS = {
    "linear": (INF, -INF), "relu": (INF, 0.0), "relu6": (6.0, 0.0), "leaky_relu": (INF, -INF),
    "elu": (INF, -1.0), "celu": (INF, -1.0), "selu": (INF, -1.0507009873554805 * 1.6732632423543772),
    "sigmoid": (1.0, 0.0), "hard_sigmoid": (1.0, 0.0),
    "tanh": (1.0, -1.0), "softsign": (1.0, -1.0), "hard_tanh": (1.0, -1.0),
    "softplus": (INF, 0.0), "silu": (INF, 0.0), "gelu": (INF, 0.0), "exponential": (INF, 0.0),
    "hard_silu": (INF, 0.0), "mish": (INF, 0.0), "log_sigmoid": (0.0, -INF),
}
ROW_WISE = ("softmax", "log_softmax")


def _keras(keras, name, z):
    return keras.ops.convert_to_numpy(keras.activations.get(name)(np.asarray(z, np.float32)))


def activation(keras, name, z):
    """The spec's output of activation ``name`` for pre-activations ``z`` (rows, units)."""
    z = np.asarray(z, np.float32)
    if name in ROW_WISE:
        return np.vstack([_row(keras, name, r) for r in z])
    finite = np.isfinite(z)
    out = np.full(z.shape, np.nan)
    out[finite] = _keras(keras, name, np.where(finite, z, 0))[finite]
    out[z == INF], out[z == -INF] = LIMITS[name]
    return out


def _row(keras, name, r):
    log = name == "log_softmax"
    if np.isnan(r).any() or (r == -INF).all():
        return np.full(r.shape, np.nan)
    k = np.count_nonzero(r == INF)
    if k:  # the limit: the +inf logits share the mass
        return np.where(r == INF, -np.log(k) if log else 1.0 / k, -INF if log else 0.0)
    return _keras(keras, name, r[None])[0]  # finite logits, -inf ones beside them give 0


def dense_sum(x, weights, bias):
    """Each dense sum computed exactly (float64 from float32 values) and rounded once."""
    x = np.asarray(x, np.float32).astype(np.float64)
    w = np.asarray(weights, np.float32).astype(np.float64)  # [units][inputs]
    with np.errstate(over="ignore", invalid="ignore"):
        return (x @ w.T + np.asarray(bias, np.float32)).astype(np.float32)


def forward(keras, doc, x):
    """The spec's outputs of a float model document with Keras-default activations."""
    h = np.asarray(x, np.float32)
    for layer in doc["layers"]:
        act = layer["activation"]
        name = act if isinstance(act, str) else act["name"]
        h = activation(keras, name, dense_sum(h, layer["weights"], layer["bias"]))
    return h
