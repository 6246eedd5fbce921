# The fast float32 dense kernel: block floating point in viper integers. Each
# weight row is aligned once, at load, to its largest exponent as a 27-bit integer
# (two 13-bit limbs); a row's sum is exact in 32-bit words, rounded once to float32.
# The arithmetic, its exactness on a 32-bit board and a 64-bit host, and its memory:
# docs/KERNELS.md.

import micropython
from micropython import const

_GUARD = const(2)  # bits kept beyond float32's 24, so small terms beside large ones stay exact
_LIMB = const(13)  # m = mh * 2^13 + ml, |m| <= 2^26
_BIAS = const(8192)  # added to mh so that a stored weight word is positive
_PASS = const(15)  # inputs per pass: 15 * 2^27 < 2^31
_NO_EXPONENT = const(-1000)  # the top exponent of an all-zero vector
_BLOCK = const(16)  # rows summed per call of _dot_rows, then converted
_INF = float("inf")
_NAN = float("nan")


@micropython.viper
def _align(bits: int, top: int, adjust: int) -> int:
    # float32 bits, times 2^adjust, -> signed integer mantissa aligned to exponent
    # `top`, rounded: the largest value of the vector keeps 24 + _GUARD bits.
    e = (bits >> 23) & 255
    if e == 0:
        return 0  # zero, or a denormal: below 2^-126, nothing at this scale
    m = (bits & 0x7FFFFF) | 0x800000
    shift = top - e - adjust - _GUARD
    if shift > 26:  # nothing left (and shifts of 32 or more differ on ARM)
        return 0
    if shift > 0:
        m = (m + (1 << (shift - 1))) >> shift
    elif shift < 0:
        m = m << (0 - shift)
    if (bits >> 31) & 1:
        return 0 - m
    return m


@micropython.viper
def _column_shifts(w: ptr32, shifts: ptr8, n_in: int, n_out: int):
    # shifts[i]: the power of two that brings column i's largest weight up to the
    # largest weight of the layer. Inputs are scaled down by the same power, so
    # products do not change, but a column of small weights (a feature measured
    # in large units, say) no longer loses bits beside a column of large ones.
    top = 0
    i = 0
    while i < n_in:
        col = 0
        k = i
        while k < n_in * n_out:
            e = (w[k] >> 23) & 255
            if e > col:
                col = e
            k += n_in
        shifts[i] = col
        if col > top:
            top = col
        i += 1
    i = 0
    while i < n_in:
        shifts[i] = top - shifts[i] if shifts[i] else 0
        i += 1


@micropython.viper
def _prepare_rows(w: ptr32, shifts: ptr8, n_in: int, n_out: int):
    # In place: float32 bits -> ((mh + _BIAS) << 16) | ml, aligned per row with
    # the column shifts applied; the row's largest exponent goes to exps[j], the
    # bytes after the n_in shifts. It fits a byte: a weight's exponent is at most
    # its column's, and its column's plus the column's shift is the layer's, so
    # e + shifts[i] <= 254 (finite weights only: the loader has checked).
    exps = ptr8(int(shifts) + n_in)
    k = 0
    j = 0
    while j < n_out:
        top = 0
        i = 0
        while i < n_in:
            e = (w[k + i] >> 23) & 255
            if e and e + shifts[i] > top:
                top = e + shifts[i]
            i += 1
        exps[j] = top
        i = 0
        while i < n_in:
            bits = w[k + i]
            m = int(_align(bits, top, shifts[i]))
            # Bits 13 and 14 keep what inf/NaN inputs need: zero weight, sign.
            flags = ((bits >> 31) & 1) << 14
            if (bits >> 23) & 255 == 0:
                flags |= 8192
            # mh rounded to nearest, so that ml is centred on zero: the ml*nl
            # terms the kernel leaves out then cancel instead of adding up.
            mh = (m + 4096) >> _LIMB
            w[k + i] = ((mh + _BIAS) << 16) | (m - (mh << _LIMB) + 4096) | flags
            i += 1
        k += n_in
        j += 1


@micropython.viper
def _dot_rows(word: int, n: int, w: ptr32, hi: ptr32, lo: ptr16, bias: ptr32, out: ptr32, n_in: int, n_out: int):
    # For every row j: out[2j] * 2^24 + out[2j+1] = sum(m * n) / 2^13, summed
    # exactly but for the ml*nl terms (below 2^-26 of the largest product each):
    # passes of _PASS inputs in 32-bit words, each folded into a two-word total.
    # Speed: on Cortex-M0+ viper keeps only the first two locals in registers, so
    # `word` and `n` (the callers pass 0, 0) are the innermost loop's; it counts
    # down to zero and reads through pass-local pointers: 55 Thumb instructions
    # per multiply-accumulate (tools/thumb_count.py).
    one = 1
    half = one << 16
    mask = half * half - 1  # 0xFFFFFFFF on the host, all bits (-1) on the board
    sign = one << 31
    wrap = sign << 1  # 2^32 on the host, 0 on the board
    low24 = (one << 24) - 1
    row = 0
    j = 0
    while j < n_out:
        t_hi = 0
        t_lo = 0
        p = 0
        start = 0
        while start < n_in:
            n = n_in - start
            if n > _PASS:
                n = _PASS
            wr = ptr32(int(w) + 4 * (row + start))
            hp = ptr32(int(hi) + 4 * start)
            lp = ptr16(int(lo) + 2 * start)
            start += n
            hh = 0
            mid = 0
            while n:
                n -= 1
                word = wr[n]
                nh = hp[n]
                hh += (word >> 16) * nh
                mid += (word >> 16) * lp[n] + (word & 8191) * nh
            # Take the bias off and reduce both sums to their signed 32-bit values.
            hh = (hh - bias[p]) & mask
            if hh & sign:
                hh -= wrap
            mid = (mid - bias[p + 1]) & mask
            if mid & sign:
                mid -= wrap
            t_lo += (mid & low24) + ((hh & 2047) << _LIMB)
            t_hi += (mid >> 24) + (hh >> 11) + (t_lo >> 24)
            t_lo &= low24
            p += 2
        out[2 * j] = t_hi
        out[2 * j + 1] = t_lo
        row += n_in
        j += 1


def _scratch_words(width):
    # A block's row sums (2 words per row), then the passes' bias sums (2 words per pass).
    return 2 * _BLOCK + 2 * (width // _PASS + 1)


def Workspace(width):
    """The scratch of a network whose widest layer has ``width`` units: [a
    bytearray, width]. bind() enlarges the bytearray for a layer whose input's
    low limbs fit neither activation buffer."""
    return [bytearray(4 * _scratch_words(width)), width]


def prepare(layer):
    """Convert ``layer``'s float weights in place; returns the column shifts
    then the row exponents, a byte each, which only the state of bind() keeps."""
    scales = bytearray(layer.inputs + layer.units)
    _column_shifts(layer.weights, scales, layer.inputs, layer.units)
    _prepare_rows(layer.weights, scales, layer.inputs, layer.units)
    return scales


@micropython.viper
def _flags(w: ptr32, k: int) -> int:
    # bit 0: the weight was zero; bit 1: it was negative
    return (w[k] >> 13) & 3


def _non_finite(layer, src, dst, relu):
    # Inputs hold inf or NaN: the finite terms no longer matter. As in IEEE
    # arithmetic (and Keras): NaN in, 0 * inf, or inf - inf give NaN, else +-inf.
    n_in, w = layer.inputs, layer.weights
    for j in range(layer.units):
        pos = neg = nan = False
        for i in range(n_in):
            v = src[i]
            if v != v:
                nan = True
            elif v in (_INF, -_INF):
                flags = _flags(w, j * n_in + i)
                if flags & 1:
                    nan = True
                elif (flags >> 1) != (v < 0):
                    neg = True
                else:
                    pos = True
        dst[j] = _NAN if nan or (pos and neg) else (_INF if pos else (0.0 if relu else -_INF))


def bind(layer, ws, relu=False):
    """(run, state, fused) computing ``layer``, whose weights it converts in
    place (prepare): run(src, dst, state). The state tuple holds everything
    once, so a call looks nothing up and allocates nothing. relu=True asks for a
    following relu to be applied on the way out (it is: fused is True)."""
    # The input's low limbs, a halfword each, go where the layer leaves room in the
    # engine's buffers (``width`` words each): after its input in src (0), after its
    # outputs in dst (1), or else after the scratch's sums (2).
    n_in, n_out, width = layer.inputs, layer.units, ws[1]
    words = (n_in + 1) // 2
    if n_in + words <= width:
        where, at = 0, n_in
    elif n_out + words <= width:
        where, at = 1, n_out
    else:
        where, at = 2, _scratch_words(width)
        if len(ws[0]) < 4 * (at + words):
            ws[0] = bytearray(4 * (at + words))
    state = (layer.weights, prepare(layer), ws, layer.bias, n_in, n_out, layer, 1 if relu else 0,
             where, at)
    return dense, state, relu


@micropython.viper
def dense(src, dst, state):
    # One layer: split the input into limbs, sum each row (_dot_rows), round
    # each sum plus its bias to float32. Viper throughout, and written as one
    # function, because for small layers calls cost more than arithmetic.
    # src is overwritten: the input's high limbs replace it; the low limbs go to
    # the room that bind chose.
    x = ptr32(src)
    hi = x  # hi[i] is written just after x[i] is read, and x[i] is not read again
    shifts = ptr8(state[1])
    out = ptr32(state[2][0])
    n_in = int(state[4])
    n_out = int(state[5])
    sums = ptr32(int(out) + 8 * _BLOCK)
    y = ptr32(dst)
    where = int(state[8])
    lo = ptr16(int(x) + 4 * int(state[9]))
    if where == 1:
        lo = ptr16(int(y) + 4 * int(state[9]))
    elif where == 2:
        lo = ptr16(int(out) + 4 * int(state[9]))

    # The input vector, scaled down by the column shifts, becomes limbs aligned
    # to its largest exponent `top`. sums[2p], sums[2p+1]: what the weights'
    # biases (_BIAS on mh, 4096 on ml) add to pass p's two sums.
    top = _NO_EXPONENT
    i = 0
    while i < n_in:
        e = (x[i] >> 23) & 255
        if e == 255:  # inf or NaN in: the finite terms no longer matter
            _non_finite(state[6], src, dst, state[7])
            return
        if e and e - shifts[i] > top:
            top = e - shifts[i]
        i += 1
    p = 0
    left = 0
    i = 0
    while i < n_in:
        if left == 0:  # a new pass of _PASS inputs
            left = _PASS
            p = 2 * (i // _PASS)
            sums[p] = 0
            sums[p + 1] = 0
        left -= 1
        bits = x[i]
        e = (bits >> 23) & 255
        m = 0
        if e:  # as _align, written out
            shift = top - e + shifts[i] - _GUARD
            if shift < 27:
                m = (bits & 0x7FFFFF) | 0x800000
                if shift > 0:
                    m = (m + (1 << (shift - 1))) >> shift
                elif shift < 0:
                    m = m << (0 - shift)
                if (bits >> 31) & 1:
                    m = 0 - m
        hi[i] = m >> _LIMB
        lo[i] = m & 8191
        sums[p] += (m >> _LIMB) * _BIAS
        sums[p + 1] += (m & 8191) * _BIAS + (m >> _LIMB) * 4096
        i += 1

    # Rows in blocks of _BLOCK: sums (_dot_rows), then for each row j of the block,
    # dst[j] = float32 bits of (out[2k] * 2^24 + out[2k+1]) * 2^(exps[j] + scale)
    # + bias[j], k = j - j0, in integers: both terms as 30-bit mantissas, the
    # smaller one shifted to the larger's exponent with rounding, added, rounded
    # to 24 bits. No float object is made, so this allocates nothing.
    w = ptr32(state[0])
    exps = ptr8(int(shifts) + n_in)
    bias = ptr32(state[3])
    relu = int(state[7])
    scale = top - 300 - 2 * _GUARD + _LIMB
    one = 1
    half = one << 16
    mask = half * half - 1  # 0xFFFFFFFF on the host, all bits (-1) on the board
    sign = one << 31
    wrap = sign << 1  # 2^32 on the host, 0 on the board
    inf = ((one << 8) - 1) << 23  # float32 +inf bits, built at run time (> 2^30)
    base = 0  # the first row of the block whose sums are in out
    nxt = 0  # the first row of the next block
    j = 0
    while j < n_out:
        if j == nxt:
            base = j
            nxt = n_out if n_out - j <= _BLOCK else j + _BLOCK
            _dot_rows(0, 0, ptr32(int(w) + 4 * n_in * j), hi, lo, sums, out, n_in, nxt - j)
        t_hi = out[2 * (j - base)] & mask
        if t_hi & sign:
            t_hi -= wrap
        t_lo = out[2 * (j - base) + 1]
        neg = 0
        if t_hi < 0:  # the magnitude of t_hi * 2^24 + t_lo
            neg = 1
            t_hi = 0 - t_hi
            if t_lo:
                t_hi -= 1
                t_lo = (one << 24) - t_lo
        # The products' sum as a = mant * 2^ea, mant in [2^29, 2^30) or 0.
        a = t_lo
        ea = 0
        k = 0
        while t_hi >> k:
            k += 1
        if k > 6:
            a = (t_hi << (30 - k)) | (t_lo >> (k - 6))
            ea = k - 6
        elif k:
            a = (t_hi << 24) | t_lo
        if a:
            while a >> 30:
                a >>= 1
                ea += 1
            while not (a >> 29):
                a <<= 1
                ea -= 1
            ea += exps[j] + scale
            if neg:
                a = 0 - a
        # The bias as b = mant * 2^eb, mant in [2^29, 2^30) or 0.
        bits = bias[j]
        e = (bits >> 23) & 255
        b = 0
        eb = 0
        if e:
            b = ((bits & 0x7FFFFF) | 0x800000) << 6
            eb = e - 156
            if (bits >> 31) & 1:
                b = 0 - b
        # Add at the larger exponent.
        if a == 0:
            a = b
            ea = eb
        elif b:
            if eb > ea:
                a, b = b, a
                ea, eb = eb, ea
            d = ea - eb
            if d > 31:
                b = 0
            elif d > 0:
                b = (b + (1 << (d - 1))) >> d
            a += b
        # Round to float32.
        if a == 0:
            y[j] = 0
        else:
            r_sign = 0
            if a < 0:
                if relu:  # a fused relu: a negative sum is +0.0
                    y[j] = 0
                    j += 1
                    continue
                r_sign = sign
                a = 0 - a
            k = 0
            while a >> k:
                k += 1
            if k > 24:
                sh = k - 24
                a = (a + (1 << (sh - 1))) >> sh
                if a >> 24:
                    a >>= 1
                    sh += 1
            else:
                sh = k - 24
                a <<= 24 - k
            e = ea + sh + 150
            if e >= 255:
                y[j] = r_sign | inf
            elif e <= 0:
                y[j] = r_sign  # below float32's normal range: signed zero
            else:
                y[j] = r_sign | (e << 23) | (a & 0x7FFFFF)
        j += 1
