# The yardstick: a dense network written the way the AI-ANNE paper writes it by
# hand in MicroPython -- weights as nested lists of floats, a Python loop per
# neuron, activations from `math`. Runs on the board (or the Unix port); nothing
# from ANNE is used, so it measures plain MicroPython, not our code.
#
# Written to be fair to the list approach, not to lose on purpose:
# - Each neuron's weights are one list (the paper's n_in-row, n-column matrix,
#   transposed), so the inner loop is `s += row[i] * x[i]`: the loop timed on
#   RP2040 boards, and about 10 % faster here than indexing the paper's
#   matrix by column (w[i][j]), which needs a second subscript per multiply.
# - The input is turned into a list once per inference, so the inner loop reads
#   list items (no new float object per read, as an array('f') would make).
# - Softmax is the correct one (over the whole layer, shifted by its largest
#   value), not the paper's, which exponentiates indices; sigmoid is written so
#   that math.exp never overflows (math.exp raises ValueError past about 88.7).
import math
import struct


def _relu(v):
    return v if v > 0.0 else 0.0


def _sigmoid(v):
    if v >= 0.0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


def _softmax(y):
    top = max(y)
    e = [math.exp(v - top) for v in y]
    total = sum(e)
    return [v / total for v in e]


# Element-wise activations by name; softmax acts on the whole layer.
_ELEMENTWISE = {"relu": _relu, "sigmoid": _sigmoid, "tanh": math.tanh, "linear": None}


def load(f, shapes):
    """Read the weights as nested lists from the open file ``f``. ``shapes`` is
    the paper's hand-written layer list: (inputs, units, activation) per layer.
    The file holds, per layer, the float32 weights row by row (unit by unit),
    then the biases."""
    net = []
    for n_in, n_out, act in shapes:
        fmt = "<%df" % n_in
        rows = [list(struct.unpack(fmt, f.read(4 * n_in))) for _ in range(n_out)]
        bias = list(struct.unpack("<%df" % n_out, f.read(4 * n_out)))
        net.append((rows, bias, act))
    return net


def predict(net, x):
    """The outputs for one sample ``x`` (any sequence of numbers), as a list."""
    x = list(x)
    for rows, bias, act in net:
        n_in = len(x)
        y = []
        for j in range(len(rows)):  # one neuron at a time, as the paper does
            row = rows[j]
            s = 0.0
            for i in range(n_in):
                s += row[i] * x[i]
            y.append(s + bias[j])  # bias last, as Keras adds it after the product
        if act == "softmax":
            y = _softmax(y)
        else:
            f = _ELEMENTWISE[act]
            if f is not None:
                y = [f(v) for v in y]
        x = y
    return x
