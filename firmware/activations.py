# Activations, applied in place to the first n values of a float array.
#
# Each must be safe for every finite input on the board's 32-bit floats, where
# math.exp raises ValueError past about 88.7 and math.log(0) raises too: the
# formulas below only ever exponentiate non-positive numbers, or guard first.
# Definitions follow Keras 3 (keras.activations, TensorFlow backend) for finite
# values; at NaN and infinities, MODEL_FORMAT.md's "Non-finite values" (limits).
import math
import sys

_INF = float("inf")
_NAN = float("nan")
_EXP_MAX = 88.72  # exp(88.72) is just below float32's largest value
_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805
_SQRT_2_OVER_PI = 0.7978845608028654
_SQRT_HALF = 0.7071067811865476


def _exp(v):
    # exp that saturates like float32 instead of raising.
    return _INF if v > _EXP_MAX else math.exp(v)


def _sigmoid(v):
    if v >= 0:
        return 1.0 / (1.0 + math.exp(-v))
    e = math.exp(v)
    return e / (1.0 + e)


def _softplus(v):
    # log(1 + e^v) = max(v, 0) + log(1 + e^-|v|); the exponent is never positive.
    a = -v if v > 0 else v
    return (v if v > 0 else 0.0) + math.log(1.0 + math.exp(a))


def _softsign(v):
    if v == _INF or v == -_INF:  # the limit, where inf / inf would be NaN
        return 1.0 if v > 0 else -1.0
    return v / (1.0 + (v if v > 0 else -v))


def _erf(v):
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): math.erf is not on every port.
    a = v if v >= 0 else -v
    t = 1.0 / (1.0 + 0.3275911 * a)
    p = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    r = 1.0 - p * math.exp(-a * a)
    return r if v >= 0 else -r


def _elementwise(f):
    def apply(x, n):
        for i in range(n):
            x[i] = f(x[i])
    return apply


def _relu(p):
    # Keras' ReLU layer: slope below the threshold, clip at max_value.
    slope, top, threshold = p
    if slope == 0 and threshold == 0:  # NaN passes through, as in Keras
        return lambda v: (v if v < top else top) if v > 0 else (v if v != v else 0.0)
    if top == _INF and threshold == 0:
        return lambda v: v if v > 0 else slope * v

    def f(v):
        y = v if v > threshold else 0.0
        if top != _INF:  # Keras clips to [0, max_value] only when a max is set
            y = 0.0 if y < 0 else (top if y > top else y)
        if slope:
            y -= slope * (threshold - v if threshold - v > 0 else 0.0)
        return y
    return f


def _leaky_relu(p):
    return _relu((p[0], _INF, 0.0))


def _elu(p):
    alpha = p[0]
    return lambda v: v if v > 0 else alpha * (math.exp(v) - 1.0)


def _celu(p):
    alpha = p[0]
    if not alpha:  # Keras divides by alpha: every negative input would be NaN
        raise ValueError("celu needs a non-zero alpha; re-export the model")
    return lambda v: v if v > 0 else alpha * (math.exp(v / alpha) - 1.0)


def _gelu(p):
    if p[0]:  # approximate
        return lambda v: 0.0 if v == -_INF else 0.5 * v * (1.0 + math.tanh(_SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)))
    return lambda v: 0.0 if v == -_INF else 0.5 * v * (1.0 + _erf(v * _SQRT_HALF))


def _largest(x, n):
    # The largest value, or NaN if any value is NaN.
    top = -_INF
    for i in range(n):
        v = x[i]
        if v > top:
            top = v
        elif v != v:
            return v
    return top


def _row_limit(x, n, top, log):
    # A row softmax cannot compute as written (MODEL_FORMAT.md, "Non-finite values"):
    # a NaN logit, or every logit -inf, gives NaN everywhere; otherwise the k logits
    # at +inf share the mass equally (1/k; log: -log k) and the rest get 0 (log: -inf).
    # Returns True if the row was such a row and is done.
    if top == top and top != _INF and top != -_INF:
        return False
    k = 0
    if top == _INF:
        for i in range(n):
            k += x[i] == _INF
    share = (-math.log(k) if log else 1.0 / k) if k else _NAN
    rest = (-_INF if log else 0.0) if k else _NAN
    for i in range(n):
        x[i] = share if x[i] == _INF else rest
    return True


def _softmax(x, n):
    top = _largest(x, n)
    if _row_limit(x, n, top, False):
        return
    total = 0.0
    for i in range(n):
        e = math.exp(x[i] - top)  # never above exp(0)
        x[i] = e
        total += e
    for i in range(n):
        x[i] /= total  # total >= 1: the largest term is exp(0)


def _log_softmax(x, n):
    top = _largest(x, n)
    if _row_limit(x, n, top, True):
        return
    total = 0.0
    for i in range(n):
        total += math.exp(x[i] - top)
    shift = top + math.log(total)  # total >= 1: the largest term is exp(0)
    for i in range(n):
        x[i] -= shift


def _prelu(alpha):
    def apply(x, n):
        for i in range(n):
            if x[i] < 0:
                x[i] = x[i] * alpha[i] if alpha[i] else 0.0  # 0 at -inf too
    return apply


# Element-wise activations without parameters: name -> f(v).
_SCALAR = {
    "relu6": lambda v: (v if v < 6.0 else 6.0) if v > 0 else (v if v != v else 0.0),
    "selu": lambda v: _SELU_SCALE * (v if v > 0 else _SELU_ALPHA * (math.exp(v) - 1.0)),
    "sigmoid": _sigmoid,
    "hard_sigmoid": lambda v: 0.0 if v <= -3.0 else (1.0 if v >= 3.0 else (v + 3.0) / 6.0),
    "hard_silu": lambda v: -0.0 if v <= -3.0 else (v if v >= 3.0 else v * (v + 3.0) / 6.0),
    "tanh": math.tanh,
    "softplus": _softplus,
    "softsign": _softsign,
    "silu": lambda v: 0.0 if v == -_INF else v * _sigmoid(v),
    "exponential": _exp,
    "mish": lambda v: 0.0 if v == -_INF else v * math.tanh(_softplus(v)),
    "hard_tanh": lambda v: -1.0 if v < -1.0 else (1.0 if v > 1.0 else v),
    "log_sigmoid": lambda v: -_softplus(-v),
}
# Element-wise activations with parameters: name -> maker(layer.params) of f(v).
# (Functions named in tables, not a builder lambda per name: every function is
# heap on the board.)
_PARAMETRIC = {"relu": _relu, "leaky_relu": _leaky_relu, "elu": _elu, "gelu": _gelu, "celu": _celu}
# Activations over the whole vector: name -> apply(x, n).
_VECTOR = {"softmax": _softmax, "log_softmax": _log_softmax}


def is_plain_relu(layer):
    """max(x, 0) exactly: a kernel may apply it as it writes its outputs."""
    return layer.activation == "relu" and layer.params == (0.0, _INF, 0.0)


def build(layer):
    """The in-place function for ``layer``'s activation (None for linear).
    Unknown names fail here, at load, never during inference."""
    if sys.implementation.name == "micropython":
        from . import fast_activations as fast

        if is_plain_relu(layer):
            return fast.relu
        if layer.activation in ("sigmoid", "tanh"):
            return getattr(fast, layer.activation)
    name = layer.activation
    if name == "linear":
        return None
    if name == "prelu":
        return _prelu(layer.alpha)
    if name in _SCALAR:
        return _elementwise(_SCALAR[name])
    if name in _PARAMETRIC:
        return _elementwise(_PARAMETRIC[name](layer.params))
    if name in _VECTOR:
        return _VECTOR[name]
    raise ValueError("activation %r is not supported by this firmware" % name)
