# The fast float32 dense kernel: block floating point in viper integers.
#
# Why: interpreted float arithmetic allocates a heap object per operation and the
# RP2040 has no FPU, so the reference kernel spends ~20 us per multiply-accumulate.
# Viper integer code runs as machine code. Each weight row is aligned once, at
# load, to its largest exponent as a 25-bit signed integer m = mh * 4096 + ml
# (mh signed, ml in 0..4095); each input vector likewise, per call. Then
#   sum(w * x) = 2^(Ew + Ex - 300) * sum(m * n), and
#   m * n = 2^24 mh*nh + 2^12 (mh*nl + ml*nh + ml*nl / 2^12)
# is summed exactly in 32-bit words, in passes of _PASS inputs, each pass folded
# into a two-word total; one rounding to float32 at the end. Every input keeps 24
# bits relative to the largest one of its vector or row: as exact as float32.
#
# 32-bit board, 64-bit host (see PLATFORM.md): ptr32 loads sign-extend on the board
# and zero-extend on the host. The sums are exact modulo 2^32 and their true values
# stay inside +-2^31, so both agree once a sum is reduced to signed 32 bits. Stored
# weight words are kept non-negative (mh + 4096), so their loads agree too; that
# bias is taken off per pass with the inputs' limb sums. No literal of 2^30 or
# more appears in viper code: such constants are built at run time.
import math
from array import array

import micropython
from micropython import const

_BIAS = const(4096)  # added to mh so that a stored weight word is positive
_PASS = const(60)  # inputs per pass: 60 * 2^25 < 2^31
_NON_FINITE = const(-1)


@micropython.viper
def _align(bits: int, top: int) -> int:
    # float32 bits -> signed integer mantissa aligned to exponent `top`, rounded.
    e = (bits >> 23) & 255
    if e == 0:
        return 0  # zero, or a denormal: below 2^-126, nothing at this scale
    m = (bits & 0x7FFFFF) | 0x800000
    shift = top - e
    if shift > 24:  # nothing left (and shifts of 32 or more differ on ARM)
        return 0
    if shift > 0:
        m = (m + (1 << (shift - 1))) >> shift
    if (bits >> 31) & 1:
        return 0 - m
    return m


@micropython.viper
def _top_exponent(x: ptr32, n: int) -> int:
    top = 0
    i = 0
    while i < n:
        e = (x[i] >> 23) & 255
        if e == 255:
            return _NON_FINITE
        if e > top:
            top = e
        i += 1
    return top


@micropython.viper
def _prepare_rows(w: ptr32, exps: ptr32, n_in: int, n_out: int):
    # In place: float32 bits -> ((mh + 4096) << 16) | ml, aligned per row; the
    # row's largest biased exponent goes to exps[j].
    k = 0
    j = 0
    while j < n_out:
        top = 0
        i = 0
        while i < n_in:
            e = (w[k + i] >> 23) & 255
            if e > top:
                top = e
            i += 1
        exps[j] = top
        i = 0
        while i < n_in:
            m = int(_align(w[k + i], top))
            w[k + i] = (((m >> 12) + _BIAS) << 16) | (m & 4095)
            i += 1
        k += n_in
        j += 1


@micropython.viper
def _split_input(x: ptr32, hi: ptr32, lo: ptr32, n: int) -> int:
    # The input vector -> limbs aligned to its largest exponent, which is returned
    # (_NON_FINITE if an input is inf or NaN).
    top = int(_top_exponent(x, n))
    if top == _NON_FINITE:
        return top
    i = 0
    while i < n:
        m = int(_align(x[i], top))
        hi[i] = m >> 12
        lo[i] = m & 4095
        i += 1
    return top


@micropython.viper
def _dot_rows(w: ptr32, hi: ptr32, lo: ptr32, acc: ptr32, n_in: int, n_out: int, start: int, stop: int):
    # acc[2j] = sum(wh * nh), acc[2j+1] = sum(wh*nl + wl*nh + wl*nl >> 12) over
    # inputs start..stop of every row, weights still biased. This inner loop is the
    # hot path: few live variables, so that viper keeps them in registers.
    row = 0
    j = 0
    while j < n_out:
        hh = 0
        mid = 0
        i = start
        while i < stop:
            word = w[row + i]
            wh = word >> 16
            wl = word & 0xFFFF
            nh = hi[i]
            nl = lo[i]
            hh += wh * nh
            mid += wh * nl + wl * nh + ((wl * nl) >> 12)
            i += 1
        acc[2 * j] = hh
        acc[2 * j + 1] = mid
        row += n_in
        j += 1


@micropython.viper
def _fold(acc: ptr32, t_hi: ptr32, t_lo: ptr32, hi: ptr32, lo: ptr32, n_out: int, start: int, stop: int):
    # Take the weights' bias off one pass's sums, reduce them to signed 32 bits,
    # and add hh * 2^12 + mid into the total t_hi * 2^24 + t_lo (units of 2^12).
    one = 1
    half = one << 16
    mask = half * half - 1  # 0xFFFFFFFF on the host, all bits (-1) on the board
    sign = one << 31
    wrap = sign << 1  # 2^32 on the host, 0 on the board
    low24 = (one << 24) - 1
    s_hi = 0
    s_lo = 0
    i = start
    while i < stop:
        s_hi += hi[i]
        s_lo += lo[i]
        i += 1
    j = 0
    while j < n_out:
        hh = (acc[2 * j] - s_hi * _BIAS) & mask
        if hh & sign:
            hh -= wrap
        mid = (acc[2 * j + 1] - s_lo * _BIAS) & mask
        if mid & sign:
            mid -= wrap
        lo_word = t_lo[j] + (mid & low24) + ((hh & 4095) << 12)
        t_hi[j] = t_hi[j] + (mid >> 24) + (hh >> 12) + (lo_word >> 24)
        t_lo[j] = lo_word & low24
        j += 1


class Workspace:
    """Scratch arrays of one network, sized for its widest layer."""

    def __init__(self, width):
        self.hi = array("i", range(width))
        self.lo = array("i", range(width))
        self.acc = array("i", range(2 * width))
        self.t_hi = array("i", range(width))
        self.t_lo = array("i", range(width))


def prepare(layer):
    """Convert ``layer``'s float weights in place; keeps the row exponents."""
    layer.exps = array("i", range(layer.units))
    _prepare_rows(layer.weights, layer.exps, layer.inputs, layer.units)


def dense(layer, src, dst, ws, fallback):
    n_in, n_out = layer.inputs, layer.units
    top = _split_input(src, ws.hi, ws.lo, n_in)
    if top == _NON_FINITE:  # inf/NaN in: the reference kernel gives what Keras gives
        return fallback(layer, src, dst, ws)
    t_hi, t_lo = ws.t_hi, ws.t_lo
    for j in range(n_out):
        t_hi[j] = 0
        t_lo[j] = 0
    for start in range(0, n_in, _PASS):
        stop = min(start + _PASS, n_in)
        _dot_rows(layer.weights, ws.hi, ws.lo, ws.acc, n_in, n_out, start, stop)
        _fold(ws.acc, t_hi, t_lo, ws.hi, ws.lo, n_out, start, stop)
    exps, bias = layer.exps, layer.bias
    for j in range(n_out):
        dst[j] = math.ldexp(t_hi[j] * 16777216.0 + t_lo[j], exps[j] + top - 288) + bias[j]
