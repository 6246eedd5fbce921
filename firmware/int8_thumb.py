# The int8 kernel in Thumb assembly (@micropython.asm_thumb, ARMv6-M
# instructions only, so a Cortex-M0+ runs it): the arithmetic of int8.py, the
# same bits, in one call per inference. Only ports with the inline Thumb
# assembler compile this module; kernels.int8() chooses it there, int8.py's
# viper kernel everywhere else.
#
#   prog = prepare(meta, layers)   once: converts the weights in place (int8.convert)
#   run(src, dst, prog)            per inference: allocates nothing
#
# prog is one array('i'): a header, a record of words per layer, then the two
# activation byte buffers and the dense layers' operand words. Everything the
# code needs is in it as a number or an address, so a call converts three
# arguments and looks nothing up. The addresses stay valid: MicroPython never
# moves a heap block, the Net holds the layers, and prog holds the buffers.
# Which buffer holds each layer's input and output is decided here, once.
#
# Speed: rows are summed as in int8.py (offset-binary weight words, x' operand
# words), two rows at a time: prepare interleaves each pair's weight words, so
# one load of x serves both rows and a multiply-accumulate is a shift, a
# multiply and an add, with a load every two (4.4 cycles; one row alone, the
# last of an odd count, takes 5.25). The registers are r0-r7, r12 (the
# layer's record, or the loop's end) and lr (the row end's return); prog is on
# the stack; r8-r11 belong to the caller.
from array import array

import micropython
from micropython import const

from . import int8

# Header words (byte offsets for ldr).
_H_N_IN = const(0)
_H_Z_IN = const(4)
_H_RULES = const(8)  # the input rules: per input, halfwords m and sh + modelfile.RULE_BIAS
_H_RULE_STEP = const(12)  # bytes from one input's rule to the next: 4, or 0 (one for all)
_H_QBUF = const(16)  # the first layer's input buffer
_H_FIRST = const(20)  # layers first..last-1 run (span)
_H_LAST = const(24)
_H_N_LAYERS = const(28)
_H_OUT_BUF = const(32)  # the buffer the last layer's output is in
_H_OUT_BITS = const(36)  # the output scale's float32 bits
_H_OUT_ZP = const(40)
_H_N_OUT = const(44)
_H_DST = const(48)  # per call: the output floats
_H_LEFT = const(52)  # per call: a loop's count
_H_RULE_AT = const(56)  # per call: the next input's rule
_HEADER = const(64)
# Record words (byte offsets).
_R_KIND = const(0)
_R_N_IN = const(4)
_R_N_OUT = const(8)
_R_STRIDE = const(12)
_R_Z = const(16)
_R_REQ_ZP = const(20)
_R_LO = const(24)
_R_HI = const(28)
_R_FLAGS = const(32)
_R_START = const(36)  # per call: -128 * sum(x) (dense), the end of the values (softmax)
_R_W = const(40)
_R_BIAS = const(44)
_R_MULT = const(48)
_R_SHIFT = const(52)
_R_TABLE = const(56)
_R_IN = const(60)
_R_OUT = const(64)
_R_WORDS = const(68)  # the operand words
_R_MID = const(72)  # the operand's end of its single groups, then of its fours of groups
_R_END = const(76)
_R_MID2 = const(80)  # for rows in pairs: the end of its single group, if any
_R_J = const(84)  # per call: the row
_R_SB = const(88)  # per call: the second row's sum
_R_LUT = const(92)  # the lookup table's middle
_REC = const(96)


def prepare(meta, layers):
    """The program run() needs: one array('i'). Converts the layers' weights as
    int8.prepare does; allocates nothing else."""
    _, z_in, rules = meta["input_quant"]
    width = int8.convert(layers, True)
    for layer in layers:
        if layer.kind == "dense" and not getattr(layer, "int8_pairs", False):
            step = (layer.inputs + 3) >> 2  # words per row
            tmp = bytearray(8 * step)
            for j in range(0, layer.units - 1, 2):
                _interleave(layer.weights, tmp, 8 * step * (j >> 1), step)
            layer.int8_pairs = True
    n = len(layers)
    at = (_HEADER + _REC * n) // 4  # words: header, records, buffers a and b, operand words
    prog = array("i", range(at + width // 2 + width))
    base = int8._address(prog)
    bufs = [base + 4 * at, base + 4 * at + width]
    words = bufs[1] + width
    cur = 0
    z = z_in
    for k, layer in enumerate(layers):
        _, out_zp, req_zp, lo, hi, flags = layer.quant
        r = (_HEADER + _REC * k) // 4
        dense = layer.kind == "dense"
        stride = (layer.inputs + 3) & ~3
        groups = stride >> 2
        addr = [int8._address(layer.table if flags else prog)]
        if dense:
            addr = [int8._address(a) for a in (layer.weights, layer.bias, layer.multiplier,
                                                layer.shift)] + addr
        else:
            addr = [0, 0, 0, 0] + addr
        _put(prog, r, [0 if dense else 1, layer.inputs, layer.units, stride, z, req_zp, lo, hi,
                       flags, 0] + addr + [bufs[cur], bufs[1 - cur] if dense else bufs[cur], words,
                                           words + 16 * (groups & 3), words + 16 * groups,
                                           words + 16 * (groups & 1), 0, 0, addr[4] + 128])
        if dense:
            cur = 1 - cur
        z = out_zp
    last = layers[-1]
    _put(prog, 0, (layers[0].inputs, z_in, int8._address(rules), 4 if len(rules) > 2 else 0,
                   bufs[0], 0, n, n, bufs[cur],
                   int8._float32_bits(last.quant[0]), last.quant[1], last.units))
    return prog


def _put(prog, at, values):
    for v in values:
        prog[at] = v
        at += 1


@micropython.viper
def _interleave(w, tmp, at: int, n: int):
    # Rows A and B, n words each from byte `at`, become A0 B0 A1 B1 ... in place.
    p = ptr32(int(ptr8(w)) + at)
    t = ptr32(tmp)
    i = 0
    while i < n:
        t[2 * i] = p[i]
        t[2 * i + 1] = p[n + i]
        i += 1
    i = 0
    while i < 2 * n:
        p[i] = t[i]
        i += 1


def span(prog, first, last):
    """As int8.span: run() computes layers first..last-1 only."""
    prog[_H_FIRST // 4] = first
    prog[_H_LAST // 4] = last


@micropython.asm_thumb
def run(r0, r1, r2):
    # r0: the input floats, r1: the output floats, r2: prog. Returns 0 (a large
    # number in r0 would be returned as a new int object).
    str(r1, [r2, _H_DST])
    mov(r7, r2)
    push({r2})  # prog, at [sp]: lr is the row end's return address
    ldr(r3, [r7, _H_FIRST])
    cmp(r3, 0)
    beq(quantize)
    b(layers)

    # --- the input rule, on float32 bits (int8._quantize): r = what |x| rounds
    # to (255 saturates either end), q = clamp(z +- r)
    label(quantize)
    ldr(r1, [r7, _H_QBUF])
    ldr(r2, [r7, _H_N_IN])
    str(r2, [r7, _H_LEFT])
    ldr(r2, [r7, _H_RULES])
    str(r2, [r7, _H_RULE_AT])
    label(q_next)
    ldr(r3, [r0, 0])
    add(r0, 4)
    lsl(r4, r3, 1)
    lsr(r4, r4, 24)  # e
    lsl(r5, r3, 9)
    lsr(r5, r5, 9)  # frac
    mov(r6, 0)
    cmp(r4, 255)
    beq(q_special)
    cmp(r4, 0)
    bne(q_normal)
    cmp(r5, 0)
    beq(q_apply)  # +-0
    mov(r4, 1)  # a denormal: exponent 1, no implicit bit
    b(q_scaled)
    label(q_normal)
    mov(r6, 1)
    lsl(r6, r6, 23)
    orr(r5, r6)  # mant
    label(q_scaled)
    ldr(r6, [r7, _H_RULE_AT])
    ldrh(r6, [r6, 2])  # sh + 149
    sub(r6, r6, r4)  # k = sh + 149 - e: |x| m / 2^sh = mant * m / 2^(k+1)
    cmp(r6, 8)
    blt(q_big)
    cmp(r6, 39)
    bge(q_zero)
    sub(r6, 8)
    ldr(r4, [r7, _H_RULE_AT])
    ldrh(r4, [r4, 0])  # m
    lsr(r2, r5, 8)
    mul(r2, r4)
    lsl(r5, r5, 24)
    lsr(r5, r5, 24)
    mul(r5, r4)
    lsr(r5, r5, 8)
    add(r2, r2, r5)
    lsr(r2, r6)  # f = floor(mant * m / 2^k)
    mov(r6, 255)
    lsl(r6, r6, 1)
    cmp(r2, r6)
    bgt(q_big)  # f >= 511
    add(r2, 1)
    lsr(r6, r2, 1)  # r = (f + 1) >> 1
    b(q_apply)
    label(q_special)
    cmp(r5, 0)
    bne(q_apply)  # NaN: q = z
    label(q_big)
    mov(r6, 255)
    b(q_apply)
    label(q_zero)
    mov(r6, 0)
    label(q_apply)
    cmp(r3, 0)
    bge(q_pos)
    neg(r6, r6)
    label(q_pos)
    ldr(r4, [r7, _H_Z_IN])
    add(r6, r6, r4)
    mov(r4, 127)
    cmp(r6, r4)
    ble(q_le)
    mov(r6, r4)
    label(q_le)
    mvn(r4, r4)  # -128
    cmp(r6, r4)
    bge(q_ge)
    mov(r6, r4)
    label(q_ge)
    strb(r6, [r1, 0])
    add(r1, 1)
    ldr(r2, [r7, _H_RULE_AT])
    ldr(r4, [r7, _H_RULE_STEP])
    add(r2, r2, r4)
    str(r2, [r7, _H_RULE_AT])
    ldr(r2, [r7, _H_LEFT])
    sub(r2, 1)
    str(r2, [r7, _H_LEFT])
    bne(q_next)

    # --- the layers first..last-1; r6 (then r12) is the layer's record
    label(layers)
    ldr(r3, [r7, _H_FIRST])
    mov(r6, _REC)
    mul(r6, r3)
    add(r6, _HEADER)
    add(r6, r6, r7)
    ldr(r4, [r7, _H_LAST])
    sub(r4, r4, r3)
    str(r4, [r7, _H_LEFT])
    bgt(l_next)
    b(output)

    label(l_next)
    mov(r12, r6)
    ldr(r0, [r6, _R_KIND])
    cmp(r0, 0)
    beq(dense)
    ldr(r0, [r6, _R_FLAGS])
    cmp(r0, 1)
    bne(to_soft)
    # an activation layer's lookup, in place: q = LUT[q + 128]
    ldr(r0, [r6, _R_IN])
    ldr(r1, [r6, _R_N_OUT])
    add(r1, r1, r0)
    ldr(r2, [r6, _R_TABLE])
    mov(r3, 128)
    label(tb)
    ldrb(r4, [r0, 0])
    eor(r4, r3)
    add(r4, r4, r2)
    ldrb(r4, [r4, 0])
    strb(r4, [r0, 0])
    add(r0, 1)
    cmp(r0, r1)
    bne(tb)
    label(to_soft)
    b(softmax)

    # --- a dense layer: the operand (int8._operand), then its rows
    label(dense)
    ldr(r0, [r6, _R_IN])
    ldr(r2, [r6, _R_STRIDE])
    ldr(r3, [r6, _R_Z])
    ldr(r4, [r6, _R_N_IN])
    b(pad_test)
    label(pad)  # the padding inputs get q = z: x = 0
    add(r5, r0, r4)
    strb(r3, [r5, 0])
    add(r4, 1)
    label(pad_test)
    cmp(r4, r2)
    blt(pad)
    ldr(r1, [r6, _R_WORDS])
    add(r2, r2, r0)
    add(r3, 128)  # c = 128 + z: x = (byte ^ 128) - c
    mov(r4, 0)  # sum of x
    mov(r7, 128)
    label(op)  # x'_k = x_k - 256 x_(k-1) within each group of four
    ldrb(r5, [r0, 0])
    eor(r5, r7)
    sub(r5, r5, r3)
    add(r4, r4, r5)
    str(r5, [r1, 0])
    ldrb(r6, [r0, 1])
    eor(r6, r7)
    sub(r6, r6, r3)
    add(r4, r4, r6)
    lsl(r5, r5, 8)
    sub(r5, r6, r5)
    str(r5, [r1, 4])
    ldrb(r5, [r0, 2])
    eor(r5, r7)
    sub(r5, r5, r3)
    add(r4, r4, r5)
    lsl(r6, r6, 8)
    sub(r6, r5, r6)
    str(r6, [r1, 8])
    ldrb(r6, [r0, 3])
    eor(r6, r7)
    sub(r6, r6, r3)
    add(r4, r4, r6)
    lsl(r5, r5, 8)
    sub(r5, r6, r5)
    str(r5, [r1, 12])
    add(r0, 4)
    add(r1, 16)
    cmp(r0, r2)
    bne(op)
    lsl(r4, r4, 7)
    neg(r4, r4)
    mov(r6, r12)
    str(r4, [r6, _R_START])  # the weights' +128 taken off where each sum starts
    ldr(r1, [r6, _R_W])  # walks the rows: each pair ends where the next begins
    mov(r7, 0)  # j
    label(pairs)  # rows j and j+1 together: their weight words interleaved (prepare)
    ldr(r5, [r6, _R_N_OUT])
    sub(r5, r5, r7)
    cmp(r5, 2)
    bge(pair)
    cmp(r5, 1)
    bne(rows_done)
    b(row)
    label(rows_done)
    b(softmax)
    label(pair)  # r0: operand, r1: weights, r2: x, r3/r4: the sums, r5/r6: weight words
    str(r7, [r6, _R_J])
    ldr(r0, [r6, _R_WORDS])
    ldr(r3, [r6, _R_START])
    mov(r4, r3)
    ldr(r2, [r6, _R_END])
    push({r6})
    mov(r12, r2)
    ldr(r2, [r6, _R_MID2])
    cmp(r0, r2)
    beq(p_test)
    ldr(r5, [r1, 0])
    ldr(r6, [r1, 4])
    ldr(r2, [r0, 0])
    mov(r7, r5)
    mul(r7, r2)
    add(r3, r3, r7)
    mul(r2, r6)
    add(r4, r4, r2)
    ldr(r2, [r0, 4])
    lsr(r7, r5, 8)
    mul(r7, r2)
    add(r3, r3, r7)
    lsr(r7, r6, 8)
    mul(r2, r7)
    add(r4, r4, r2)
    ldr(r2, [r0, 8])
    lsr(r7, r5, 16)
    mul(r7, r2)
    add(r3, r3, r7)
    lsr(r7, r6, 16)
    mul(r2, r7)
    add(r4, r4, r2)
    ldr(r2, [r0, 12])
    lsr(r7, r5, 24)
    mul(r7, r2)
    add(r3, r3, r7)
    lsr(r7, r6, 24)
    mul(r2, r7)
    add(r4, r4, r2)
    add(r0, 16)
    add(r1, 8)
    label(p_test)
    data(2, 0x4560)  # cmp(r0, r12)
    beq(p_end)
    label(p_two)
    ldr(r5, [r1, 0])
    ldr(r6, [r1, 4])
    ldr(r2, [r0, 0])
    mov(r7, r5)
    mul(r7, r2)
    add(r3, r3, r7)
    mul(r2, r6)
    add(r4, r4, r2)
    ldr(r2, [r0, 4])
    lsr(r7, r5, 8)
    mul(r7, r2)
    add(r3, r3, r7)
    lsr(r7, r6, 8)
    mul(r2, r7)
    add(r4, r4, r2)
    ldr(r2, [r0, 8])
    lsr(r7, r5, 16)
    mul(r7, r2)
    add(r3, r3, r7)
    lsr(r7, r6, 16)
    mul(r2, r7)
    add(r4, r4, r2)
    ldr(r2, [r0, 12])
    lsr(r7, r5, 24)
    mul(r7, r2)
    add(r3, r3, r7)
    lsr(r7, r6, 24)
    mul(r2, r7)
    add(r4, r4, r2)
    ldr(r5, [r1, 8])
    ldr(r6, [r1, 12])
    ldr(r2, [r0, 16])
    mov(r7, r5)
    mul(r7, r2)
    add(r3, r3, r7)
    mul(r2, r6)
    add(r4, r4, r2)
    ldr(r2, [r0, 20])
    lsr(r7, r5, 8)
    mul(r7, r2)
    add(r3, r3, r7)
    lsr(r7, r6, 8)
    mul(r2, r7)
    add(r4, r4, r2)
    ldr(r2, [r0, 24])
    lsr(r7, r5, 16)
    mul(r7, r2)
    add(r3, r3, r7)
    lsr(r7, r6, 16)
    mul(r2, r7)
    add(r4, r4, r2)
    ldr(r2, [r0, 28])
    lsr(r7, r5, 24)
    mul(r7, r2)
    add(r3, r3, r7)
    lsr(r7, r6, 24)
    mul(r2, r7)
    add(r4, r4, r2)
    add(r0, 32)
    add(r1, 16)
    data(2, 0x4560)  # cmp(r0, r12)
    bne(p_two)
    label(p_end)
    pop({r6})
    mov(r12, r6)
    ldr(r7, [r6, _R_J])
    str(r4, [r6, _R_SB])
    # the row end, written out twice here: a call costs 6 cycles a row
    ldr(r4, [r6, _R_BIAS])
    lsl(r5, r7, 2)
    data(2, 0x5964)  # ldr(r4, [r4, r5])
    add(r3, r3, r4)
    ldr(r4, [r6, _R_MULT])
    lsl(r5, r7, 1)
    data(2, 0x5B64)  # ldrh(r4, [r4, r5]): M
    # floor((acc M + 2^(S-1)) / 2^S) = (ah M + floor(al M / 2^16) + 2^(S-17)) >> (S-16)
    asr(r5, r3, 16)
    mul(r5, r4)
    lsl(r3, r3, 16)
    lsr(r3, r3, 16)
    mul(r3, r4)
    lsr(r3, r3, 16)
    add(r3, r3, r5)
    ldr(r4, [r6, _R_SHIFT])
    data(2, 0x5DE4)  # ldrb(r4, [r4, r7]): S
    sub(r4, 17)  # (v + 2^(S-17)) >> (S-16) = ((v >> (S-17)) + 1) >> 1
    asr(r3, r4)
    add(r3, 1)
    asr(r3, r3, 1)
    ldr(r4, [r6, _R_REQ_ZP])
    add(r3, r3, r4)
    ldr(r4, [r6, _R_LO])
    cmp(r3, r4)
    bge(lo_ok_a)
    mov(r3, r4)
    label(lo_ok_a)
    ldr(r4, [r6, _R_HI])
    cmp(r3, r4)
    ble(hi_ok_a)
    mov(r3, r4)
    label(hi_ok_a)
    ldr(r4, [r6, _R_FLAGS])
    cmp(r4, 1)
    bne(no_lut_a)
    ldr(r4, [r6, _R_LUT])
    data(2, 0x5CE3)  # ldrb(r3, [r4, r3]): LUT[p + 128]
    label(no_lut_a)
    ldr(r4, [r6, _R_OUT])
    data(2, 0x55E3)  # strb(r3, [r4, r7])
    ldr(r3, [r6, _R_SB])
    add(r7, 1)
    ldr(r4, [r6, _R_BIAS])
    lsl(r5, r7, 2)
    data(2, 0x5964)  # ldr(r4, [r4, r5])
    add(r3, r3, r4)
    ldr(r4, [r6, _R_MULT])
    lsl(r5, r7, 1)
    data(2, 0x5B64)  # ldrh(r4, [r4, r5]): M
    # floor((acc M + 2^(S-1)) / 2^S) = (ah M + floor(al M / 2^16) + 2^(S-17)) >> (S-16)
    asr(r5, r3, 16)
    mul(r5, r4)
    lsl(r3, r3, 16)
    lsr(r3, r3, 16)
    mul(r3, r4)
    lsr(r3, r3, 16)
    add(r3, r3, r5)
    ldr(r4, [r6, _R_SHIFT])
    data(2, 0x5DE4)  # ldrb(r4, [r4, r7]): S
    sub(r4, 17)  # (v + 2^(S-17)) >> (S-16) = ((v >> (S-17)) + 1) >> 1
    asr(r3, r4)
    add(r3, 1)
    asr(r3, r3, 1)
    ldr(r4, [r6, _R_REQ_ZP])
    add(r3, r3, r4)
    ldr(r4, [r6, _R_LO])
    cmp(r3, r4)
    bge(lo_ok_b)
    mov(r3, r4)
    label(lo_ok_b)
    ldr(r4, [r6, _R_HI])
    cmp(r3, r4)
    ble(hi_ok_b)
    mov(r3, r4)
    label(hi_ok_b)
    ldr(r4, [r6, _R_FLAGS])
    cmp(r4, 1)
    bne(no_lut_b)
    ldr(r4, [r6, _R_LUT])
    data(2, 0x5CE3)  # ldrb(r3, [r4, r3]): LUT[p + 128]
    label(no_lut_b)
    ldr(r4, [r6, _R_OUT])
    data(2, 0x55E3)  # strb(r3, [r4, r7])
    add(r7, 1)
    b(pairs)

    label(row)  # the last row of an odd count, alone: r0: operand, r1: weights, r3: the sum
    ldr(r0, [r6, _R_WORDS])
    ldr(r3, [r6, _R_START])
    ldr(r2, [r6, _R_MID])
    cmp(r0, r2)
    beq(fours)
    label(single)
    ldr(r4, [r1, 0])
    ldr(r5, [r0, 0])
    mul(r5, r4)
    add(r3, r3, r5)
    lsr(r4, r4, 8)
    ldr(r5, [r0, 4])
    mul(r5, r4)
    add(r3, r3, r5)
    lsr(r4, r4, 8)
    ldr(r5, [r0, 8])
    mul(r5, r4)
    add(r3, r3, r5)
    lsr(r4, r4, 8)
    ldr(r5, [r0, 12])
    mul(r5, r4)
    add(r3, r3, r5)
    add(r0, 16)
    add(r1, 4)
    cmp(r0, r2)
    bne(single)
    label(fours)
    ldr(r2, [r6, _R_END])
    cmp(r0, r2)
    beq(row_sum)
    label(four)
    ldr(r4, [r1, 0])
    ldr(r5, [r0, 0])
    mul(r5, r4)
    add(r3, r3, r5)
    lsr(r4, r4, 8)
    ldr(r5, [r0, 4])
    mul(r5, r4)
    add(r3, r3, r5)
    lsr(r4, r4, 8)
    ldr(r5, [r0, 8])
    mul(r5, r4)
    add(r3, r3, r5)
    lsr(r4, r4, 8)
    ldr(r5, [r0, 12])
    mul(r5, r4)
    add(r3, r3, r5)
    ldr(r4, [r1, 4])
    ldr(r5, [r0, 16])
    mul(r5, r4)
    add(r3, r3, r5)
    lsr(r4, r4, 8)
    ldr(r5, [r0, 20])
    mul(r5, r4)
    add(r3, r3, r5)
    lsr(r4, r4, 8)
    ldr(r5, [r0, 24])
    mul(r5, r4)
    add(r3, r3, r5)
    lsr(r4, r4, 8)
    ldr(r5, [r0, 28])
    mul(r5, r4)
    add(r3, r3, r5)
    ldr(r4, [r1, 8])
    ldr(r5, [r0, 32])
    mul(r5, r4)
    add(r3, r3, r5)
    lsr(r4, r4, 8)
    ldr(r5, [r0, 36])
    mul(r5, r4)
    add(r3, r3, r5)
    lsr(r4, r4, 8)
    ldr(r5, [r0, 40])
    mul(r5, r4)
    add(r3, r3, r5)
    lsr(r4, r4, 8)
    ldr(r5, [r0, 44])
    mul(r5, r4)
    add(r3, r3, r5)
    ldr(r4, [r1, 12])
    ldr(r5, [r0, 48])
    mul(r5, r4)
    add(r3, r3, r5)
    lsr(r4, r4, 8)
    ldr(r5, [r0, 52])
    mul(r5, r4)
    add(r3, r3, r5)
    lsr(r4, r4, 8)
    ldr(r5, [r0, 56])
    mul(r5, r4)
    add(r3, r3, r5)
    lsr(r4, r4, 8)
    ldr(r5, [r0, 60])
    mul(r5, r4)
    add(r3, r3, r5)
    add(r0, 64)
    add(r1, 16)
    cmp(r0, r2)
    bne(four)
    label(row_sum)
    bl(row_end)
    b(softmax)

    # --- a softmax over the layer's outputs, in place (int8._softmax)
    label(softmax)
    mov(r6, r12)
    ldr(r0, [r6, _R_FLAGS])
    cmp(r0, 2)
    beq(sm)
    b(l_done)
    label(sm)
    ldr(r0, [r6, _R_OUT])
    ldr(r1, [r6, _R_N_OUT])
    add(r1, r1, r0)
    str(r1, [r6, _R_START])
    ldr(r2, [r6, _R_TABLE])
    mov(r3, 128)
    neg(r3, r3)  # top
    mov(r4, r0)
    label(sm_max)
    ldrb(r5, [r4, 0])
    lsl(r5, r5, 24)
    asr(r5, r5, 24)
    cmp(r5, r3)
    ble(sm_less)
    mov(r3, r5)
    label(sm_less)
    add(r4, 1)
    cmp(r4, r1)
    bne(sm_max)
    mov(r7, 0)  # T
    mov(r4, r0)
    label(sm_sum)
    ldrb(r5, [r4, 0])
    lsl(r5, r5, 24)
    asr(r5, r5, 24)
    sub(r5, r3, r5)
    lsl(r5, r5, 2)
    add(r5, r5, r2)
    ldr(r5, [r5, 0])
    add(r7, r7, r5)
    add(r4, 1)
    cmp(r4, r1)
    bne(sm_sum)
    label(sm_div)  # q = floor((256 e + floor(T/2)) / T) - 128: 9 quotient bits
    ldrb(r5, [r0, 0])
    lsl(r5, r5, 24)
    asr(r5, r5, 24)
    sub(r5, r3, r5)
    lsl(r5, r5, 2)
    add(r5, r5, r2)
    ldr(r5, [r5, 0])
    lsl(r5, r5, 8)
    lsr(r4, r7, 1)
    add(r5, r5, r4)
    mov(r6, 0)
    mov(r4, 9)
    label(sm_bit)
    sub(r4, 1)
    lsl(r6, r6, 1)
    mov(r1, r5)
    lsr(r1, r4)
    cmp(r1, r7)
    bcc(sm_zero)
    mov(r1, r7)
    lsl(r1, r4)
    sub(r5, r5, r1)
    add(r6, 1)
    label(sm_zero)
    cmp(r4, 0)
    bne(sm_bit)
    sub(r6, 128)
    cmp(r6, 127)
    ble(sm_le)
    mov(r6, 127)
    label(sm_le)
    strb(r6, [r0, 0])
    add(r0, 1)
    mov(r1, r12)
    ldr(r1, [r1, _R_START])
    cmp(r0, r1)
    bne(sm_div)

    label(l_done)
    mov(r6, r12)
    add(r6, _REC)
    data(2, 0x9F00)  # ldr(r7, [sp, 0]): prog
    ldr(r4, [r7, _H_LEFT])
    sub(r4, 1)
    str(r4, [r7, _H_LEFT])
    beq(output)
    b(l_next)

    label(row_end)  # r3: row j's sum (r6: record, r7: j) -> out[j]; uses r3-r5, returns to lr
    ldr(r4, [r6, _R_BIAS])
    lsl(r5, r7, 2)
    data(2, 0x5964)  # ldr(r4, [r4, r5])
    add(r3, r3, r4)
    ldr(r4, [r6, _R_MULT])
    lsl(r5, r7, 1)
    data(2, 0x5B64)  # ldrh(r4, [r4, r5]): M
    # floor((acc M + 2^(S-1)) / 2^S) = (ah M + floor(al M / 2^16) + 2^(S-17)) >> (S-16)
    asr(r5, r3, 16)
    mul(r5, r4)
    lsl(r3, r3, 16)
    lsr(r3, r3, 16)
    mul(r3, r4)
    lsr(r3, r3, 16)
    add(r3, r3, r5)
    ldr(r4, [r6, _R_SHIFT])
    data(2, 0x5DE4)  # ldrb(r4, [r4, r7]): S
    sub(r4, 17)  # (v + 2^(S-17)) >> (S-16) = ((v >> (S-17)) + 1) >> 1
    asr(r3, r4)
    add(r3, 1)
    asr(r3, r3, 1)
    ldr(r4, [r6, _R_REQ_ZP])
    add(r3, r3, r4)
    ldr(r4, [r6, _R_LO])
    cmp(r3, r4)
    bge(lo_ok)
    mov(r3, r4)
    label(lo_ok)
    ldr(r4, [r6, _R_HI])
    cmp(r3, r4)
    ble(hi_ok)
    mov(r3, r4)
    label(hi_ok)
    ldr(r4, [r6, _R_FLAGS])
    cmp(r4, 1)
    bne(no_lut)
    ldr(r4, [r6, _R_LUT])
    data(2, 0x5CE3)  # ldrb(r3, [r4, r3]): LUT[p + 128]
    label(no_lut)
    ldr(r4, [r6, _R_OUT])
    data(2, 0x55E3)  # strb(r3, [r4, r7])
    bx(lr)

    # --- the output floats: float32(scale * (q - zp)), rounded to nearest even
    # (int8._dequantize), when the last layer has run
    label(output)
    data(2, 0x9F00)  # ldr(r7, [sp, 0]): prog
    ldr(r0, [r7, _H_LAST])
    ldr(r1, [r7, _H_N_LAYERS])
    cmp(r0, r1)
    beq(dq_go)
    b(finish)
    label(dq_go)
    ldr(r0, [r7, _H_OUT_BUF])
    ldr(r1, [r7, _H_DST])
    ldr(r2, [r7, _H_N_OUT])
    str(r2, [r7, _H_LEFT])
    label(dq)
    ldrb(r3, [r0, 0])
    lsl(r3, r3, 24)
    asr(r3, r3, 24)
    ldr(r4, [r7, _H_OUT_ZP])
    sub(r3, r3, r4)  # d
    mov(r6, 0)  # the sign bit; +0.0 for d = 0
    cmp(r3, 0)
    beq(dq_store)
    bgt(dq_pos)
    neg(r3, r3)
    mov(r6, 1)
    lsl(r6, r6, 31)
    label(dq_pos)
    ldr(r4, [r7, _H_OUT_BITS])
    lsl(r5, r4, 9)
    lsr(r5, r5, 9)
    mov(r2, 1)
    lsl(r2, r2, 23)
    orr(r5, r2)
    mul(r5, r3)  # P = |d| * mantissa < 2^32: 24 + r bits, r in 0..8
    lsr(r3, r5, 24)
    mov(r2, 0)
    label(dq_r)
    cmp(r3, 0)
    beq(dq_rd)
    lsr(r3, r3, 1)
    add(r2, 1)
    b(dq_r)
    label(dq_rd)
    cmp(r2, 0)
    beq(dq_exact)
    mov(r3, r5)  # (P + 2^(r-1) - 1 + the kept part's lowest bit) >> r
    lsr(r3, r2)
    mov(r4, 1)
    and_(r3, r4)
    add(r5, r5, r3)
    sub(r2, 1)
    lsl(r4, r2)
    sub(r4, 1)
    add(r2, 1)
    add(r5, r5, r4)
    lsr(r5, r2)
    label(dq_exact)  # mant in 2^23..2^24: a carry to 2^24 moves into the exponent
    ldr(r4, [r7, _H_OUT_BITS])
    lsl(r4, r4, 1)
    lsr(r4, r4, 24)
    add(r4, r4, r2)
    sub(r4, 1)
    lsl(r4, r4, 23)
    add(r5, r5, r4)
    orr(r6, r5)
    label(dq_store)
    str(r6, [r1, 0])
    add(r0, 1)
    add(r1, 4)
    ldr(r2, [r7, _H_LEFT])
    sub(r2, 1)
    str(r2, [r7, _H_LEFT])
    bne(dq)
    label(finish)
    pop({r0})
    mov(r0, 0)
