# The int8 inference kernel: a whole int8 model (protocol/MODEL_FORMAT.md, "Int8
# models") run in viper integers, float input to float output, bit for bit as
# the spec's integer arithmetic; reference() below is that arithmetic written
# out plainly, and the fast kernel is tested against it.
#
#   state = prepare(meta, layers)   once: converts the weights in place, allocates
#   run(src, dst, state)            per inference: allocates nothing
#
# Weights are stored offset binary, four to an aligned word, and the inputs
# written so that a multiply-accumulate needs no byte masks: docs/KERNELS.md says
# why that is exact, on the board's 32-bit words and the host's 64-bit ones.
import struct
from array import array

import micropython
from micropython import const

_DENSE = const(0)
_ACTIVATION = const(1)
_LUT = const(1)  # quant flags (modelfile.FLAG_LUT, FLAG_SOFTMAX)
_SOFTMAX = const(2)
_NO_TABLE = bytearray(4)  # what table-less layers pass for their table

# Slots of a layer's parameter array (array('i'), one per layer in the state).
_KIND = const(0)
_N_IN = const(1)
_N_OUT = const(2)
_STRIDE = const(3)
_ZERO = const(4)  # zero point of the layer's input
_REQ_ZP = const(5)
_LO = const(6)
_HI = const(7)
_FLAGS = const(8)
_START = const(9)  # per inference: -128 * sum(x), where each row's sum starts


# --- the plain reference, straight from the spec ------------------------------


def _float32_bits(x):
    # The float32 nearest x (inputs are float32; CPython's floats are doubles).
    try:
        raw = struct.pack("<f", x)
    except OverflowError:  # CPython: beyond float32's range rounds to infinity
        raw = struct.pack("<f", float("inf") if x > 0 else float("-inf"))
    return struct.unpack("<I", raw)[0]


def _float32(x):
    return struct.unpack("<f", struct.pack("<I", _float32_bits(x)))[0]


def _stride(layer):
    # Bytes from one weight row to the next: inputs rounded up to whole words
    # (modelfile.stride, which this module cannot import: on the host the
    # firmware and the protocol are separate packages), so every row starts
    # word-aligned.
    return (layer.inputs + 3) & ~3


def _signed8(b):
    # A byte of a bytearray (0..255) or an array('b') value -> -128..127.
    return b - 256 if b > 127 else b


def _clamp(v, lo=-128, hi=127):
    return lo if v < lo else (hi if v > hi else v)


def quantize_input(x, z, m, sh):
    """The spec's input rule for one float, with the input's zero point, multiplier
    and shift: the int8 q."""
    bits = _float32_bits(x)
    e = (bits >> 23) & 255
    frac = bits & 0x7FFFFF
    neg = bits >> 31
    if e == 255:
        if frac:
            return z  # NaN
        return -128 if neg else 127  # +-inf: the end of the range
    # |x| = mant * 2^exp exactly (denormals: e = 0, no implicit bit)
    mant = (frac | 0x800000) if e else frac
    exp = (e if e else 1) - 150
    # r = floor(|x| * m / 2^sh + 1/2), exactly
    num = mant * m
    k = exp - sh
    if k >= 0:
        r = num << k
    else:
        r = (2 * num + (1 << -k)) >> (1 - k)
    return _clamp(z - r if neg else z + r)


def quantize_inputs(x, input_quant):
    """The int8 q of every float in ``x``, each by its input's rule (modelfile.input_rule:
    not imported, as the host imports this module where the protocol is not its sibling)."""
    _, z, rules = input_quant
    step = 2 if len(rules) > 2 else 0
    return [quantize_input(x[i], z, rules[step * i], rules[step * i + 1] - 149) for i in range(len(x))]


def _requantize(acc, m, s, req_zp, lo, hi):
    y = (acc * m + (1 << (s - 1))) >> s  # floor: Python's >> rounds down
    return _clamp(req_zp + y, lo, hi)


def _softmax_q(p, exp):
    top = max(p)
    e = [exp[top - v] for v in p]
    total = sum(e)
    return [_clamp(-128 + (256 * v + total // 2) // total) for v in e]


def reference(x, meta, layers):
    """The int8 outputs q of the last layer for the float inputs ``x``, computed
    as MODEL_FORMAT.md says, in plain Python integers (CPython or MicroPython).
    Needs the layers as loaded: not after prepare(), which converts them."""
    q = quantize_inputs(x, meta["input_quant"])
    z = meta["input_quant"][1]
    for layer in layers:
        q = reference_layer(q, z, layer)
        z = layer.quant[1]
    return q


def reference_layer(q, z, layer):
    """One layer of reference(): its int8 outputs for its int8 inputs ``q``, whose
    zero point is ``z``."""
    return activate(requantized(q, z, layer), layer)


def requantized(q, z, layer):
    """A layer's pre-activations p (a dense layer's requantized sums, an activation
    layer's input) for its int8 inputs ``q`` of zero point ``z``."""
    if getattr(layer, "int8_prepared", False):
        raise ValueError("int8.reference needs layers as loaded, not prepared ones")
    _, out_zp, req_zp, lo, hi, flags = layer.quant
    if layer.kind != "dense":
        return q
    w, n_in, step = layer.weights, layer.inputs, _stride(layer)
    p = []
    for j in range(layer.units):
        acc = layer.bias[j]
        row = j * step
        for i in range(n_in):
            acc += _signed8(w[row + i]) * (q[i] - z)
        p.append(_requantize(acc, layer.multiplier[j], layer.shift[j], req_zp, lo, hi))
    return p


def activate(p, layer):
    """A layer's int8 outputs for its pre-activations ``p`` (its table or softmax)."""
    flags = layer.quant[5]
    if flags == _LUT:
        return [_signed8(layer.table[v + 128]) for v in p]
    if flags == _SOFTMAX:
        return _softmax_q(p, layer.table)
    return p


def dequantize(q, layer):
    """The float outputs of ``layer`` (the last) for its int8 outputs ``q``:
    float32(out_scale) * float32(q - out_zp), rounded to float32."""
    scale, zp = _float32(layer.quant[0]), layer.quant[1]
    # Both factors are float32 values, so their exact product (at most 48
    # significant bits) is a double: one rounding, to float32, as the spec's.
    return [_float32(scale * (v - zp)) for v in q]


# --- preparation (once per model) ---------------------------------------------


@micropython.viper
def _address(buf) -> int:
    return int(ptr8(buf))


@micropython.viper
def _row_abs_sum(buf, start: int, n: int) -> int:
    # sum |w| over n signed weight bytes from start (before conversion)
    w = ptr8(buf)
    total = 0
    i = start
    while i < start + n:
        v = w[i]
        if v > 127:
            v = 256 - v
        total += v
        i += 1
    return total


@micropython.viper
def _to_offset_binary(buf, n: int):
    # In place: each signed weight byte w becomes w + 128 (0..255).
    w = ptr8(buf)
    i = 0
    while i < n:
        w[i] = w[i] ^ 128
        i += 1


def _check_dense(layer, index):
    # What the kernel's 32-bit arithmetic assumes, and the exporter promises.
    if _address(layer.weights) & 3:
        raise ValueError("layer %d: int8 weights are not word-aligned rows" % index)
    limit = 1 << 31
    for j in range(layer.units):
        total = _row_abs_sum(layer.weights, j * _stride(layer), layer.inputs)
        if abs(layer.bias[j]) + 255 * total >= limit:
            raise ValueError("layer %d, unit %d: the accumulator could reach 2^31" % (index, j))


def convert(layers, thumb=False):
    """Checks each dense layer and converts its weights in place to offset
    binary, once (after which reference() refuses the layers); returns the
    width of the activation buffers, whole words. Both kernels' prepare; the
    Thumb kernel's (thumb=True) then lays the rows out in pairs, which this
    kernel refuses."""
    width = layers[0].inputs
    for index, layer in enumerate(layers):
        width = max(width, layer.inputs, layer.units)
        if not thumb and getattr(layer, "int8_pairs", False):
            raise ValueError("layer %d: its weights are laid out for the Thumb kernel" % index)
        if layer.kind == "dense" and not getattr(layer, "int8_prepared", False):
            _check_dense(layer, index)
            _to_offset_binary(layer.weights, len(layer.weights))
            layer.int8_prepared = True
    return (width + 3) & ~3


def prepare(meta, layers):
    """The state run() needs, made once. Converts the weights (convert(); a
    second prepare() of the same layers converts nothing again). Allocates the
    two activation byte buffers, one word per input for the dense layers'
    operand, and a few words of parameters per layer and for the output."""
    _, z_in, rules = meta["input_quant"]
    width = convert(layers)
    steps = []
    z = z_in
    for layer in layers:
        _, out_zp, req_zp, lo, hi, flags = layer.quant
        kind = _DENSE if layer.kind == "dense" else _ACTIVATION
        if kind == _DENSE:
            arrays = (layer.weights, layer.bias, layer.multiplier, layer.shift)
        else:
            arrays = (_NO_TABLE, _NO_TABLE, _NO_TABLE, _NO_TABLE)
        prm = array("i", (kind, layer.inputs, layer.units, _stride(layer), z, req_zp, lo, hi,
                          flags, 0))
        steps.append(arrays + (layer.table if flags else _NO_TABLE, prm))
        z = out_zp
    last = layers[-1]
    out = array("i", (_float32_bits(last.quant[0]), last.quant[1]))  # for _dequantize
    return (bytearray(width), bytearray(width), array("i", range(width)),
            array("i", (layers[0].inputs, z_in, 2 if len(rules) > 2 else 0)), tuple(steps), out,
            last.units, array("i", (0, len(layers))), rules)


def span(state, first, last):
    """Make run() compute only layers first..last-1 (the input is quantized when
    first is 0, the output written when last is the last layer's end), reading
    and leaving the activations in the state's buffers: a profile times one
    layer at a time. span(state, 0, len(layers)) restores a whole inference."""
    state[7][0] = first
    state[7][1] = last


# --- inference: viper, nothing allocated ---------------------------------------


@micropython.viper
def _quantize(src, dst, params, rules):
    # The spec's input rule on float32 bits (no float object is made):
    # r = floor(|x| * m / 2^sh + 1/2), q = clamp(z +- r); inf saturates, NaN is z.
    x = ptr32(src)
    q = ptr8(dst)
    prm = ptr32(params)
    one = 1
    sign = one << 31
    n = prm[0]
    z = (prm[1] ^ sign) - sign  # signed: ptr32 loads zero-extend on the host
    rule = ptr16(rules)  # per input (or one for all: step 0): m, then sh + RULE_BIAS
    step = prm[2]
    at = 0
    i = 0
    while i < n:
        m = rule[at]  # 2^14 <= m < 2^15 (the loader checks)
        sh = rule[at + 1] - 149  # modelfile.RULE_BIAS
        at += step
        bits = x[i]
        e = (bits >> 23) & 255
        frac = bits & 0x7FFFFF
        neg = (bits >> 31) & 1
        v = z  # zero, -0 and NaN
        big = 0
        if e == 255:
            if frac == 0:
                big = 1
        elif e or frac:
            mant = frac
            if e:
                mant = frac | 0x800000
            else:
                e = 1
            # |x| = mant * 2^(e-150), so |x| * m / 2^sh = P / 2^(k+1) with
            # P = mant * m < 2^39 and k = sh + 149 - e; then
            # r = (floor(P / 2^k) + 1) >> 1, and floor(P / 2^k) >= 511 saturates.
            k = sh + 149 - e
            if k < 8:
                # Only a normal x gets here (a denormal has k >= 20, since
                # sh >= -128): P >= 2^23 * 2^14, floor(P / 2^k) >= 2^30.
                big = 1
            elif k < 39:  # (else P < 2^k: r = 0, q = z)
                # P = hi * 2^8 + lo, both below 2^31; floor(P / 2^k) =
                # (hi + floor(lo / 2^8)) >> (k - 8), the sum below 2^31 too.
                hi = (mant >> 8) * m
                lo = (mant & 255) * m
                f = (hi + (lo >> 8)) >> (k - 8)
                if f >= 511:
                    big = 1
                elif neg:
                    v = z - ((f + 1) >> 1)
                else:
                    v = z + ((f + 1) >> 1)
        if big:
            v = -128 if neg else 127
        elif v < -128:
            v = -128
        elif v > 127:
            v = 127
        q[i] = v
        i += 1


@micropython.viper
def _operand(i: int, total: int, acts, words, params):
    # A dense layer's input as its inner loop wants it: x_i = q_i - z, one word
    # each, stored as x'_i = x_i - 256 x_(i-1) within each group of four; and
    # the row sums' start, -128 * sum(x), for the weights' +128. Callers pass
    # 0, 0: the loop's counter and sum are the two locals viper keeps in
    # registers. The padding inputs get q = z first, so their x is 0 and the
    # padding weights, whatever they hold, add nothing.
    q = ptr8(acts)
    x = ptr32(words)
    prm = ptr32(params)
    one = 1
    sign = one << 31
    stride = prm[_STRIDE]
    z = (prm[_ZERO] ^ sign) - sign  # signed: ptr32 loads zero-extend on the host
    i = prm[_N_IN]
    while i < stride:
        q[i] = z
        i += 1
    c = 128 + z  # x = q - z = (byte ^ 128) - 128 - z
    i = 0
    while i < stride:
        x0 = (q[i] ^ 128) - c
        x1 = (q[i + 1] ^ 128) - c
        x2 = (q[i + 2] ^ 128) - c
        x3 = (q[i + 3] ^ 128) - c
        x[i] = x0
        x[i + 1] = x1 - (x0 << 8)
        x[i + 2] = x2 - (x1 << 8)
        x[i + 3] = x3 - (x2 << 8)
        total += x0 + x1 + x2 + x3
        i += 4
    prm[_START] = 0 - (total << 7)


@micropython.viper
def _dense(p: int, s: int, words, step, out):
    # thumb: macs_per_iteration=4,16
    # Every output unit of a dense layer: the row's sum (words from _operand,
    # weights in offset binary), requantized, clamped, through the lookup table
    # if the layer has one; int8 results into `out`.
    # Speed: viper on Cortex-M0+ keeps only the first two locals in registers:
    # `p` (the operand pointer, counting down) and `s` (the sum); callers pass
    # 0, 0. The weight word of the group at p is at (p >> 2) + d. Rows run in
    # single groups of four inputs down to a multiple of four groups, then in
    # fours; the loops stop when p reaches their end (p - end is one subtract).
    prm = ptr32(step[5])
    n_out = prm[_N_OUT]
    groups = prm[_STRIDE] >> 2
    xb = int(ptr32(words))
    top = xb + (groups << 4)
    mid = xb + ((groups >> 2) << 6)
    d = int(ptr8(step[0])) - (xb >> 2)
    stride = prm[_STRIDE]
    start = prm[_START]
    bias = ptr32(step[1])
    mult = ptr16(step[2])
    shift = ptr8(step[3])
    lut = ptr8(step[4])
    y = ptr8(out)
    one = 1
    half = one << 16
    mask = half * half - 1  # 0xFFFFFFFF on the host, all bits (-1) on the board
    sign = one << 31
    wrap = sign << 1  # 2^32 on the host, 0 on the board
    req_zp = (prm[_REQ_ZP] ^ sign) - sign  # signed: ptr32 loads zero-extend on the host
    lo = (prm[_LO] ^ sign) - sign
    hi = (prm[_HI] ^ sign) - sign
    flags = prm[_FLAGS]
    j = 0
    while j < n_out:
        s = start
        p = top
        while p - mid:
            p -= 16
            a = uint(ptr32((p >> 2) + d)[0])
            s = int(a) * ptr32(p)[0] + s
            s = int(a >> 8) * ptr32(p)[1] + s
            s = int(a >> 16) * ptr32(p)[2] + s
            s = int(a >> 24) * ptr32(p)[3] + s
        while p - xb:
            p -= 64
            wa = (p >> 2) + d
            a = uint(ptr32(wa)[0])
            s = int(a) * ptr32(p)[0] + s
            s = int(a >> 8) * ptr32(p)[1] + s
            s = int(a >> 16) * ptr32(p)[2] + s
            s = int(a >> 24) * ptr32(p)[3] + s
            a = uint(ptr32(wa)[1])
            s = int(a) * ptr32(p)[4] + s
            s = int(a >> 8) * ptr32(p)[5] + s
            s = int(a >> 16) * ptr32(p)[6] + s
            s = int(a >> 24) * ptr32(p)[7] + s
            a = uint(ptr32(wa)[2])
            s = int(a) * ptr32(p)[8] + s
            s = int(a >> 8) * ptr32(p)[9] + s
            s = int(a >> 16) * ptr32(p)[10] + s
            s = int(a >> 24) * ptr32(p)[11] + s
            a = uint(ptr32(wa)[3])
            s = int(a) * ptr32(p)[12] + s
            s = int(a >> 8) * ptr32(p)[13] + s
            s = int(a >> 16) * ptr32(p)[14] + s
            s = int(a >> 24) * ptr32(p)[15] + s
        # The row's end, in the two register locals: s becomes the accumulator
        # as a signed 32-bit value, then the unit's output; p holds the shift.
        s = (s + bias[j]) & mask
        if s & sign:
            s -= wrap
        # floor((acc * M + 2^(S-1)) / 2^S) with acc = ah * 2^16 + al, al >= 0:
        # = (ah*M + floor(al*M / 2^16) + 2^(S-17)) >> (S-16), every term and
        # sum below 2^31 (|ah*M| < 2^30, al*M < 2^31, 2^(S-17) <= 2^29).
        m = mult[j]
        p = shift[j]
        s = ((s >> 16) * m + (((s & 0xFFFF) * m) >> 16) + (1 << (p - 17))) >> (p - 16)
        s += req_zp
        if s < lo:
            s = lo
        elif s > hi:
            s = hi
        if flags == _LUT:
            s = lut[s + 128]
        y[j] = s
        d += stride
        j += 1


@micropython.viper
def _table(acts, n: int, table):
    # An activation layer's lookup: q = LUT[q + 128] (q + 128 is the byte ^ 128).
    q = ptr8(acts)
    lut = ptr8(table)
    j = 0
    while j < n:
        q[j] = lut[q[j] ^ 128]
        j += 1


@micropython.viper
def _softmax(acts, n: int, table):
    # Over the n values p in `acts`, in place: e_j = EXP[max p - p_j],
    # q_j = clamp(-128 + floor((256 e_j + floor(T/2)) / T)), T = sum e_j.
    # The loader checked EXP <= 2^16, EXP[0] > 0 and n < 2^15: 0 < T < 2^31.
    q = ptr8(acts)
    exp = ptr32(table)
    top = -128
    j = 0
    while j < n:
        v = (q[j] ^ 128) - 128
        if v > top:
            top = v
        j += 1
    total = 0
    j = 0
    while j < n:
        total += exp[top - ((q[j] ^ 128) - 128)]
        j += 1
    half = total >> 1
    j = 0
    while j < n:
        v = (exp[top - ((q[j] ^ 128) - 128)] * 256 + half) // total - 128
        if v > 127:
            v = 127
        q[j] = v
        j += 1


@micropython.viper
def _dequantize(acts, dst, out, n: int):
    # Output floats by their bits, no float object made: y_j = float32(scale *
    # (q_j - zp)), rounded to nearest even as a float32 multiply rounds it. out
    # holds the scale's bits and zp. The loader keeps scale within 2^-100..2^100,
    # so every result is 0 or a normal float32, and the exponent needs no check.
    q = ptr8(acts)
    y = ptr32(dst)
    prm = ptr32(out)
    sbits = prm[0]
    one = 1
    sign = one << 31
    zp = (prm[1] ^ sign) - sign  # signed: ptr32 loads zero-extend on the host
    e = (sbits >> 23) & 255
    m = (sbits & 0x7FFFFF) | 0x800000  # 24 bits
    mh = m >> 12
    ml = m & 0xFFF
    j = 0
    while j < n:
        d = ((q[j] ^ 0x80) - 0x80) - zp  # -255..255
        if d == 0:
            y[j] = 0
        else:
            neg = 0
            if d < 0:
                neg = sign
                d = 0 - d
            # P = d * m < 2^32 in two halves of 20 bits: top = P >> 12, low = P & 0xFFF.
            low = d * ml
            top = d * mh + (low >> 12)
            low = low & 0xFFF
            # P has 24 + r bits (r in 0..8): keep its top 24, round the r below.
            r = 0
            while top >> (12 + r):
                r += 1
            mant = (top << (12 - r)) | (low >> r)
            if r:
                rest = low & ((1 << r) - 1)
                half = 1 << (r - 1)
                if rest > half or (rest == half and (mant & 1)):
                    mant += 1
                    if mant >> 24:  # rounded up to 2^24
                        mant = mant >> 1
                        r += 1
            y[j] = neg | ((e + r) << 23) | (mant & 0x7FFFFF)
        j += 1


@micropython.viper
def run(src, dst, state):
    """One inference: the float inputs in src (array('f'), first `inputs`
    values) -> the float outputs in dst[0:outputs]. Allocates nothing."""
    a = state[0]
    b = state[1]
    words = state[2]
    steps = state[4]
    n = int(len(steps))
    part = ptr32(state[7])  # the layers to run: all but in a profile (span)
    first = part[0]
    last = part[1]
    if first == 0:
        _quantize(src, a, state[3], state[8])
    i = 0
    while i < last:
        step = steps[i]
        prm = ptr32(step[5])
        if prm[_KIND] == _DENSE:
            if i >= first:
                _operand(0, 0, a, words, step[5])
                _dense(0, 0, words, step, b)
            a, b = b, a  # skipped layers too: a holds layer i's input
        elif i >= first and prm[_FLAGS] == _LUT:
            _table(a, prm[_N_OUT], step[4])
        if i >= first and prm[_FLAGS] == _SOFTMAX:
            _softmax(a, prm[_N_OUT], step[4])
        i += 1
    if last == n:
        _dequantize(a, dst, state[5], state[6])
