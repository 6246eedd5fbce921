# anne.new: an untrained dense net made on the board.
#
#   >>> net = anne.new([4, 8, 3], ["relu", "softmax"], seed=1)
#
# Weights are Glorot-uniform, as Keras initialises Dense kernels (uniform in
# +-sqrt(6 / (fan_in + fan_out))), from a small xorshift generator of our own
# (the same numbers on every port; not Keras' numbers); biases are zero. The
# net runs on the reference kernel, which reads the float weights as they are,
# so it can be trained (anne.train) and saved.
import math
from array import array

from .protocol import modelfile

# The parameters each activation gets by default, as Keras' Dense(activation=name) does.
_DEFAULTS = {"relu": (0.0, float("inf"), 0.0), "leaky_relu": (0.2, 0.0, 0.0),
             "elu": (1.0, 0.0, 0.0), "celu": (1.0, 0.0, 0.0), "gelu": (0.0, 0.0, 0.0)}


class _Random:
    # xorshift32: enough for initial weights, and repeatable from a seed.
    def __init__(self, seed):
        self.s = (seed * 2654435761 + 12345) & 0xFFFFFFFF or 1

    def uniform(self, lo, hi):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.s = s
        return lo + (hi - lo) * (s >> 8) / 16777216.0  # 24 random bits: a float32's worth


def layers(sizes, activations, seed=0):
    """The model file's layers (modelfile.Layer) of a new net: ``sizes`` the
    widths from the inputs to the outputs, one activation name per layer."""
    if len(sizes) < 2 or len(activations) != len(sizes) - 1:
        raise ValueError("give the input width and each layer's units (2 or more sizes), "
                         "and one activation per layer")
    for n in sizes:
        if not isinstance(n, int) or not 0 < n <= modelfile.MAX_UNITS:
            raise ValueError("sizes must be whole numbers 1..%d, got %r" % (modelfile.MAX_UNITS, n))
    for name in activations:
        if name not in modelfile.ACTIVATIONS or name == "prelu":
            raise ValueError("unknown activation %r" % name)
    rng = _Random(seed if isinstance(seed, int) else 0)
    out = []
    for k, name in enumerate(activations):
        n_in, n_out = sizes[k], sizes[k + 1]
        limit = math.sqrt(6.0 / (n_in + n_out))
        w = array("f", bytearray(4 * n_in * n_out))
        for i in range(len(w)):
            w[i] = rng.uniform(-limit, limit)
        out.append(modelfile.Layer("dense", name, n_in, n_out, _DEFAULTS.get(name, (0.0, 0.0, 0.0)),
                                   w, array("f", bytearray(4 * n_out))))
    return out


def new(sizes, activations, seed=0, name="", labels=None, features=None):
    """A Net of new weights (see layers()), bound to the reference kernel."""
    from .engine import Net

    meta = {"name": name}
    if labels:
        meta["labels"] = list(labels)
    if features:
        meta["features"] = list(features)
    return Net(meta, layers(sizes, activations, seed), "reference")
