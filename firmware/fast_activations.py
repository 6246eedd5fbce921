# Activations that need no arithmetic, done on float32 bits in viper, so that
# they cost almost nothing and allocate nothing. MicroPython only (viper); the
# plain versions in activations.py give the same results everywhere.
import math

import micropython


@micropython.viper
def relu(x: ptr32, n: int):
    # Negative (sign bit set, not NaN) -> +0.0; NaN and the rest pass unchanged.
    i = 0
    while i < n:
        bits = x[i]
        if (bits >> 31) & 1 and not ((bits >> 23) & 255 == 255 and bits & 0x7FFFFF):
            x[i] = 0
        i += 1


# The rest still computes in floats, but as viper code: a bytecode function of
# this size gets its frame from the heap on every call, native code does not.
_exp = math.exp
_tanh = math.tanh


@micropython.viper
def sigmoid(x, n: int):
    exp = _exp
    i = 0
    while i < n:
        v = x[i]
        if v >= 0.0:
            x[i] = 1.0 / (1.0 + exp(0.0 - v))
        else:
            e = exp(v)
            x[i] = e / (1.0 + e)
        i += 1


@micropython.viper
def tanh(x, n: int):
    f = _tanh
    i = 0
    while i < n:
        x[i] = f(x[i])
        i += 1
