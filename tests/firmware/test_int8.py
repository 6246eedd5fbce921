"""The int8 kernel (firmware/int8.py): its plain reference against an independent
numpy int64 implementation of MODEL_FORMAT.md's integer arithmetic, and the fast
viper kernel against both, bit for bit, under the real MicroPython interpreter:
random models built here (no exporter), adversarial inputs, odd widths, extreme
accumulators, softmax ties; no allocation per inference, no second copy of the
weights."""

import io
import json
from pathlib import Path

import numpy as np
import pytest

from anne_host import model_doc, quantize
from anne_host.protocol import modelfile

F32 = np.float32
MODELS = Path(__file__).resolve().parents[2] / "models"


# --- random int8 models, built directly ---------------------------------------------


def _dense(rng, n_in, units, flags=0, *, m=None, s=None, bias=None, weights=None,
           req_zp=None, lo=-128, hi=127, out_zp=None, table=None):
    """A dense layer with random int8 weights; without ``m``/``s`` ranges, most
    units get a requantization that spreads a typical accumulator over the int8
    range (the rest any multiplier and shift), so that outputs vary."""
    layer = modelfile.Layer("dense", "softmax" if flags == modelfile.FLAG_SOFTMAX else "linear",
                            n_in, units)
    w = rng.integers(-128, 128, (units, n_in)) if weights is None else np.asarray(weights)
    layer.weights = w.ravel().tolist()
    bias = int(2000 * np.sqrt(n_in)) if bias is None else bias
    layer.bias = rng.integers(-bias, bias + 1, units).tolist()
    if m is None and s is None:
        mult = rng.integers(16384, 32768, units)
        typical = 80.0 * np.sqrt((w.astype(np.float64) ** 2).sum(axis=1)) + bias / 2 + 1
        shift = np.clip(np.round(np.log2(mult * typical / 60)) + rng.integers(-2, 3, units), 17, 46)
        wild = (rng.random(units) < 0.2) & (np.arange(units) > 1)
        mult[wild] = rng.integers(0, 32768, wild.sum())
        shift[wild] = rng.integers(17, 47, wild.sum())
        layer.multiplier, layer.shift = mult.tolist(), shift.astype(int).tolist()
    else:
        layer.multiplier = rng.integers(*(m or (0, 32768)), units).tolist()
        layer.shift = rng.integers(*(s or (17, 47)), units).tolist()
    zp = int(rng.integers(-128, 128)) if out_zp is None else out_zp
    if flags == modelfile.FLAG_SOFTMAX:
        zp = -128
    req = int(rng.integers(-128, 128)) if req_zp is None else req_zp
    layer.quant = (float(rng.uniform(0.001, 0.2)), zp, req, lo, hi, flags)
    layer.table = _table(rng, flags) if table is None else table
    return layer


def _activation(rng, width, flags):
    layer = modelfile.Layer("activation", "softmax" if flags == modelfile.FLAG_SOFTMAX else "tanh",
                            width, width)
    zp = -128 if flags == modelfile.FLAG_SOFTMAX else int(rng.integers(-128, 128))
    layer.quant = (float(rng.uniform(0.001, 0.2)), zp, 0, -128, 127, flags)
    layer.table = _table(rng, flags)
    return layer


def _table(rng, flags):
    if flags == modelfile.FLAG_LUT:
        return rng.integers(-128, 128, 256).tolist()
    if flags == modelfile.FLAG_SOFTMAX:
        if rng.random() < 0.5:  # the exporter's shape: round(2^16 exp(-s k))
            return np.floor(65536 * np.exp(-rng.uniform(0.005, 0.3) * np.arange(256)) + 0.5).astype(int).tolist()
        table = rng.integers(0, 65537, 256)  # any values the kernel accepts
        table[0] = rng.integers(1, 65537)
        return table.tolist()
    return None


def _input_quant(rng, multiplier=None, shift=None, n=None):
    """(scale, zero point, multiplier, shift): one rule for every input, or with ``n``
    a rule of its own for each of n inputs (a version 2 file)."""
    if n is not None:
        return (float(rng.uniform(0.001, 1)), int(rng.integers(-128, 128)),
                rng.integers(16384, 32768, n).tolist(), rng.integers(8, 30, n).tolist())
    m = int(rng.integers(16384, 32768)) if multiplier is None else multiplier
    sh = int(rng.integers(8, 30)) if shift is None else shift
    return (float(rng.uniform(0.001, 1)), int(rng.integers(-128, 128)), m, sh)


def _rule(input_quant, n):
    # The multipliers and shifts as arrays of n, whichever form input_quant has.
    _, _, m, sh = input_quant
    return np.broadcast_to(np.asarray(m, np.int64), (n,)), np.broadcast_to(np.asarray(sh, np.int64), (n,))


def _chain(rng, widths, flags):
    """Dense layers widths[0] -> widths[1] -> ..., layer k with flags[k]; an
    entry ("act", f) in flags inserts an activation layer with flags f."""
    layers = []
    width = widths[0]
    k = 1
    for f in flags:
        if isinstance(f, tuple):
            layers.append(_activation(rng, width, f[1]))
        else:
            layers.append(_dense(rng, width, widths[k], f))
            width = widths[k]
            k += 1
    return layers


def _blob(layers, input_quant, padding=None):
    """The model file; ``padding`` (rng) fills the rows' padding bytes with
    random values instead of zeros (readers must ignore them)."""
    if padding is not None:
        originals = [layer.weights for layer in layers]
        for layer in layers:
            if layer.kind == "dense":
                stride = modelfile.stride(layer.inputs, modelfile.DTYPE_INT8)
                rows = np.asarray(layer.weights).reshape(layer.units, layer.inputs)
                padded = padding.integers(-128, 128, (layer.units, stride))
                padded[:, :layer.inputs] = rows
                layer.weights = padded.ravel().tolist()
        try:
            return modelfile.pack({"name": "q"}, layers, input_quant)
        finally:
            for layer, w in zip(layers, originals):
                layer.weights = w
    return modelfile.pack({"name": "q"}, layers, input_quant)


# --- the spec in numpy int64, independent of firmware/int8.py ------------------------


def spec_quantize(x, input_quant):
    # float32 x: |x| * m is exact in float64 (24 + 15 bits), so are the power of two
    # and the + 1/2 that the floor sees (a value under 2^-40 can not round up to 1).
    z = input_quant[1]
    x = np.asarray(x, F32).astype(np.float64)
    m, sh = _rule(input_quant, x.shape[-1])
    with np.errstate(all="ignore"):
        r = np.floor(np.abs(x) * m * 2.0 ** -sh.astype(np.float64) + 0.5)
        r = np.minimum(r, 1000.0)  # saturated either way (and inf)
        q = z + np.sign(x) * r
    q = np.where(np.isnan(x), z, q)
    return np.clip(q, -128, 127).astype(np.int64)


def spec_run(layers, input_quant, x):
    """(int8 outputs, float32 outputs) of every row of x."""
    q = spec_quantize(x, input_quant)
    z = input_quant[1]
    for layer in layers:
        _, out_zp, req_zp, lo, hi, flags = layer.quant
        if layer.kind == "dense":
            w = np.asarray(layer.weights, np.int64).reshape(layer.units, layer.inputs)
            acc = np.asarray(layer.bias, np.int64) + (q - z) @ w.T
            assert np.all(np.abs(acc) < 2 ** 31)
            m = np.asarray(layer.multiplier, np.int64)
            s = np.asarray(layer.shift, np.int64)
            p = np.clip(req_zp + ((acc * m + (np.int64(1) << (s - 1))) >> s), lo, hi)
        else:
            p = q
        if flags == modelfile.FLAG_LUT:
            q = np.asarray(layer.table, np.int64)[p + 128]
        elif flags == modelfile.FLAG_SOFTMAX:
            e = np.asarray(layer.table, np.int64)[p.max(axis=1, keepdims=True) - p]
            total = e.sum(axis=1, keepdims=True)
            q = np.clip(-128 + (256 * e + total // 2) // total, -128, 127)
        else:
            q = p
        z = out_zp
    scale, zp = layers[-1].quant[:2]
    return q, F32(scale) * (q - zp).astype(F32)


# --- inputs ------------------------------------------------------------------------


def _adversarial(rng, n, input_quant, rows=24):
    """Rows of float32 inputs that probe the input rule: zeros of both signs,
    denormals, the largest floats, infinities, NaN, values whose |x| m / 2^sh
    is exactly k + 1/2 (and their float32 neighbours), the saturation edges."""
    special = np.array([0.0, -0.0, 1e-45, -1e-45, 1.2e-38, -3e-39, 3.4028235e38, -3.4028235e38,
                        np.inf, -np.inf, np.nan, -np.nan, 1.0, -1.0], F32)
    ms, shs = _rule(input_quant, n)
    out = np.empty((rows, n), F32)
    for i in range(n):  # each input probed at its own rule's halves
        m, sh = int(ms[i]), int(shs[i])
        with np.errstate(over="ignore"):
            half = ((rng.integers(-300, 300, 64) + 0.5) * 2.0 ** sh / m).astype(F32)
        pool = np.concatenate([special, _every_exponent(rng), half, np.nextafter(half, F32(np.inf)),
                               np.nextafter(half, F32(-np.inf)),
                               (rng.normal(0, 1, 64) * 2.0 ** (sh - 14 + rng.integers(-3, 9, 64))).astype(F32)])
        out[:, i] = pool[rng.integers(0, len(pool), rows)]
    out[0] = 0.0
    out[1] = np.inf
    out[2] = -np.inf
    out[3] = np.nan
    return out


def _every_exponent(rng):
    """A float32 of each sign at every binary exponent, denormals included."""
    bits = (np.arange(256, dtype=np.uint32) << 23) | rng.integers(0, 1 << 23, 256).astype(np.uint32)
    x = bits[:255].view(F32)  # exponent 255 is inf/NaN
    return np.concatenate([x, -x])


def _random_rows(rng, n, input_quant, rows=40):
    m, sh = _rule(input_quant, n)
    # spread over the int8 range: |x| m / 2^sh up to a few hundred
    return (rng.normal(0, 1, (rows, n)) * 60 * 2.0 ** sh.astype(np.float64) / m).astype(F32)


# --- running under MicroPython -----------------------------------------------------

_RUN = """
import json
from array import array
from binascii import hexlify
from anne.protocol import modelfile
from anne import int8
meta, layers = modelfile.load(open(MODEL, 'rb'))
n_in, n_out = layers[0].inputs, layers[-1].units
x = array('f', range(ROWS * n_in))
open(MODEL + '.in', 'rb').readinto(x)
if REFERENCE:
    for r in range(ROWS):
        print('ref', json.dumps(int8.reference([x[r * n_in + i] for i in range(n_in)], meta, layers)))
if FAST:
    state = int8.prepare(meta, layers)
    src = array('f', range(n_in))
    dst = array('f', range(n_out))
    for r in range(ROWS):
        for i in range(n_in):
            src[i] = x[r * n_in + i]
        int8.run(src, dst, state)
        print('out', hexlify(dst).decode())
"""


def run_board(run, tmp_path, blob, x, reference=True, name="m", fast=True):
    """(fast kernel's float32 outputs or None, reference q or None) for rows x,
    on ``run``'s interpreter."""
    path = tmp_path / (name + ".anne")
    path.write_bytes(blob)
    x = np.ascontiguousarray(x, "<f4")
    (tmp_path / (name + ".anne.in")).write_bytes(x.tobytes())
    code = "MODEL = %r\nROWS = %d\nREFERENCE = %r\nFAST = %r\n%s" % (
        str(path), x.shape[0], reference, fast, _RUN)
    lines = [line.split(" ", 1) for line in run(code).strip().splitlines()]
    out = ref = None
    if fast:
        out = np.frombuffer(bytes.fromhex("".join(v for k, v in lines if k == "out")), "<f4")
        out = out.reshape(x.shape[0], -1)
    if reference:
        ref = np.asarray([json.loads(v) for k, v in lines if k == "ref"], np.int64)
    return out, ref


def assert_same_bits(got, expected):
    got = np.ascontiguousarray(got, F32).view(np.uint32)
    expected = np.ascontiguousarray(expected, F32).view(np.uint32)
    bad = np.argwhere(got != expected)
    assert not len(bad), "first differences at %s: %s vs %s" % (
        bad[:5].tolist(), got[tuple(bad[0])], expected[tuple(bad[0])])


def check_model(run, tmp_path, layers, input_quant, x, reference=True, padding=None):
    blob = _blob(layers, input_quant, padding)
    q, floats = spec_run(layers, input_quant, x)
    fast, ref = run_board(run, tmp_path, blob, x, reference)
    if reference:
        np.testing.assert_array_equal(ref, q)
    assert_same_bits(fast, floats)
    return q


# --- the reference, against numpy --------------------------------------------------

CASES = {
    # name: (widths, flags per dense layer, ("act", f) for an activation layer)
    "relu-ish chain": ((16, 64, 64, 8), (0, 0, 0)),
    "lut layers": ((5, 9, 3), (1, ("act", 1), 1)),
    "softmax out": ((7, 12, 4), (1, 2)),
    "softmax layer": ((3, 6), (0, ("act", 2))),
    "one unit": ((1, 1, 1), (0, 1)),
    "activations only": ((6,), (("act", 1), ("act", 2))),
}


def test_reference_matches_numpy_on_cpython(run_cpython, tmp_path):
    rng = np.random.default_rng(7)
    for k, (name, (widths, flags)) in enumerate(CASES.items()):
        layers = _chain(rng, widths, flags)
        iq = _input_quant(rng, n=widths[0] if k % 2 else None)
        x = np.concatenate([_adversarial(rng, widths[0], iq, 10), _random_rows(rng, widths[0], iq, 10)])
        blob = _blob(layers, iq)
        _, ref = run_board(run_cpython, tmp_path, blob, x, fast=False)
        q, _ = spec_run(layers, iq, x)
        np.testing.assert_array_equal(ref, q, err_msg=name)


def test_reference_dequantizes_as_the_spec(run_cpython, tmp_path):
    rng = np.random.default_rng(8)
    layer = _dense(rng, 3, 256)
    layer.quant = (0.1234567, 17, 0, -128, 127, 0)
    q = list(range(-128, 128))
    code = ("from anne import int8\nfrom anne.protocol.modelfile import Layer\nl = Layer('dense', 'linear', 3, 256)\n"
            "l.quant = %r\nprint(repr(int8.dequantize(%r, l)))" % (layer.quant, q))
    got = np.array(eval(run_cpython(code).strip().splitlines()[-1]), F32)
    assert_same_bits(got, F32(0.1234567) * (np.array(q) - 17).astype(F32))


def test_reference_refuses_prepared_layers_and_prepare_twice_is_harmless(run_mpy, tmp_path):
    rng = np.random.default_rng(9)
    layers = _chain(rng, (6, 5, 2), (1, 0))
    (tmp_path / "m.anne").write_bytes(_blob(layers, _input_quant(rng)))
    out = run_mpy(
        "from array import array\nfrom anne import int8\nfrom anne.protocol import modelfile\n"
        "meta, layers = modelfile.load(open(%r, 'rb'))\nx = [0.5, -1.0, 2.0, 0.0, 3.0, -0.25]\n"
        "q = int8.reference(x, meta, layers)\ndst = array('f', [0.0, 0.0])\n"
        "int8.run(array('f', x), dst, int8.prepare(meta, layers))\none = list(dst)\n"
        "int8.run(array('f', x), dst, int8.prepare(meta, layers))\n"
        "print(one == list(dst), one == int8.dequantize(q, layers[-1]))\n"
        "try:\n int8.reference(x, meta, layers)\nexcept ValueError as e:\n print('refused:', e)"
        % str(tmp_path / "m.anne"))
    assert out.split("\n")[0] == "True True"
    assert "refused: int8.reference needs layers as loaded" in out


# --- the fast kernel, bit for bit --------------------------------------------------


@pytest.mark.parametrize("per_input", [False, True], ids=["one input rule", "a rule per input"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_fast_kernel_equals_reference_and_spec(run_mpy, tmp_path, name, per_input):
    rng = np.random.default_rng(sorted(CASES).index(name) + 20 + 100 * per_input)
    widths, flags = CASES[name]
    layers = _chain(rng, widths, flags)
    iq = _input_quant(rng, n=widths[0] if per_input else None)
    x = np.concatenate([_adversarial(rng, widths[0], iq), _random_rows(rng, widths[0], iq, 60)])
    q = check_model(run_mpy, tmp_path, layers, iq, x)
    assert len(np.unique(q)) >= 2, "inputs too tame: the outputs do not vary"


@pytest.mark.parametrize("n_in, units", [(1, 1), (3, 2), (4, 3), (5, 1), (16, 2), (20, 3), (28, 2),
                                         (29, 1), (255, 2), (257, 3), (300, 1)])
def test_odd_widths(run_mpy, tmp_path, n_in, units):
    # Row lengths of 1..75 words: the kernel's single groups and groups of four.
    rng = np.random.default_rng(n_in * 7 + units)
    layers = [_dense(rng, n_in, units, 0, s=(17, 30)), _dense(rng, units, 2, 1)]
    iq = _input_quant(rng, n=n_in if n_in % 2 else None)
    x = np.concatenate([_adversarial(rng, n_in, iq, 8), _random_rows(rng, n_in, iq, 8)])
    check_model(run_mpy, tmp_path, layers, iq, x, reference=n_in < 100)


def test_padding_bytes_do_not_matter(run_mpy, tmp_path):
    rng = np.random.default_rng(31)
    layers = _chain(rng, (13, 7, 5, 3), (0, 1, 0))
    iq = _input_quant(rng)
    x = _random_rows(rng, 13, iq, 30)
    check_model(run_mpy, tmp_path, layers, iq, x, reference=False, padding=np.random.default_rng(1))


def test_input_rule_at_exact_halves_and_range_ends(run_mpy, tmp_path):
    # m = 2^14: |x| * m / 2^sh = k + 1/2 exactly for x = (k + 1/2) 2^(sh-14), which
    # must round up (floor(. + 1/2)). The layer passes its input q through
    # unchanged (weight 64, M / 2^S = 2^11 / 2^17, req_zp = z: p = q), so the
    # outputs show every input's q.
    rng = np.random.default_rng(32)
    n = 64
    for sh, z in ((14, 0), (20, -128), (3, 127), (-5, 5), (60, -7)):
        iq = (0.1, z, 16384, sh)
        layer = _dense(rng, n, n, 0, weights=64 * np.eye(n, dtype=np.int64), req_zp=z, out_zp=0)
        layer.bias = [0] * n
        layer.multiplier = [2048] * n
        layer.shift = [17] * n
        k = np.arange(-n // 2, n // 2)
        x = np.stack([(k + 0.5) * 2.0 ** (sh - 14), (k - 0.5) * 2.0 ** (sh - 14),
                      (k * 5 + 0.5) * 2.0 ** (sh - 14)]).astype(F32)
        sweep = _every_exponent(rng)  # every branch of the input rule, at this shift
        sweep = np.concatenate([sweep, np.zeros(-len(sweep) % n, F32)]).reshape(-1, n)
        x = np.concatenate([x, np.nextafter(x, F32(np.inf)), np.nextafter(x, F32(-np.inf)),
                            sweep, _adversarial(rng, n, iq, 6)])
        q = check_model(run_mpy, tmp_path, [layer], iq, x)
        np.testing.assert_array_equal(q, spec_quantize(x, iq))  # p = q: the input rule itself
        assert q[0, n // 2] == min(z + 1, 127)  # 1/2 rounds up
        assert q[1, n // 2] == max(z - 1, -128)  # -1/2: r = 1 too, then the sign


def test_extreme_accumulators(run_mpy, tmp_path):
    # Rows whose |bias| + 255 * sum|W| is just below 2^31 (the exporter's bound),
    # driven to both ends by saturated inputs: q - z = +-255 everywhere.
    rng = np.random.default_rng(33)
    n = 37
    limit = 2 ** 31 - 1
    rows, bias = [], []
    for sign_w, sign_b in ((-1, -1), (1, 1), (-1, 1), (1, -1)):
        w = np.full(n, -128 if sign_w < 0 else 127)
        rows.append(w)
        bias.append(sign_b * (limit - 255 * int(np.abs(w).sum())))
    for _ in range(4):
        w = rng.integers(-128, 128, n)
        rows.append(w)
        bias.append(int(rng.choice([-1, 1])) * (limit - 255 * int(np.abs(w).sum())))
    units = len(rows)
    for z in (-128, 127):
        layer = _dense(rng, n, units, 0, weights=np.array(rows), lo=-100, hi=100)
        layer.bias = bias
        layer.multiplier = rng.integers(0, 32768, units).tolist()
        layer.multiplier[0] = 32767
        layer.shift = rng.integers(17, 47, units).tolist()
        layer.shift[1] = 17
        layer.shift[2] = 46
        iq = (0.5, z, 20000, 10)
        x = np.concatenate([np.full((1, n), np.inf), np.full((1, n), -np.inf),
                            np.full((1, n), 3e38), np.full((1, n), -3e38),
                            _random_rows(rng, n, iq, 6)]).astype(F32)
        q, _ = spec_run([layer], iq, x)
        check_model(run_mpy, tmp_path, [layer], iq, x)
    acc_ends = np.array(bias) + np.array(rows).sum(axis=1) * 255
    assert acc_ends.max() > 2 ** 31 - 2 ** 24 or (-acc_ends).max() > 2 ** 31 - 2 ** 24


def test_softmax_ties(run_mpy, tmp_path):
    # Units with the same row tie for the largest p (and for every p): each gets
    # floor(256 / n + 1/2) - 128; then a table with zeros past its first entry.
    rng = np.random.default_rng(34)
    for units in (1, 2, 3, 7, 10, 256):
        row = rng.integers(-128, 128, 6)
        layer = _dense(rng, 6, units, modelfile.FLAG_SOFTMAX, weights=np.tile(row, (units, 1)))
        layer.bias = [int(layer.bias[0])] * units
        layer.multiplier = [int(layer.multiplier[0])] * units
        layer.shift = [int(layer.shift[0])] * units
        iq = _input_quant(rng)
        x = _random_rows(rng, 6, iq, 5)
        q = check_model(run_mpy, tmp_path, [layer], iq, x, reference=units < 100)
        assert np.all(q == min(127, int(np.floor(256 / units + 0.5) - 128)))
    mixed = _dense(rng, 4, 9, modelfile.FLAG_SOFTMAX, m=(30000, 32768), s=(17, 19))
    mixed.table = [65536] + [0] * 255
    iq = _input_quant(rng)
    check_model(run_mpy, tmp_path, [mixed], iq, _random_rows(rng, 4, iq, 40))


def test_real_int8_models_agree_with_the_host_quantizer(run_mpy, tmp_path):
    # The exporter's IRIS models and its own integer reference (host/quantize.py).
    for path in sorted(MODELS.glob("*_int8.json")):
        doc = json.loads(path.read_text())
        rng = np.random.default_rng(len(path.name))
        x = rng.normal(0, 1, (50, doc["inputs"])).astype(F32) * F32(3)
        _, expected = quantize.run_int8(doc, x)
        fast, _ = run_board(run_mpy, tmp_path, model_doc.pack(doc), x, reference=False, name=path.stem)
        assert_same_bits(fast, expected)


# --- what prepare refuses ------------------------------------------------------------


def test_load_and_prepare_refuse_what_the_kernel_can_not_compute(run_mpy, tmp_path):
    # The loader refuses the softmax tables (and output scales) the kernel's ranges
    # exclude; prepare refuses the accumulators that could overflow.
    rng = np.random.default_rng(35)
    big = _dense(rng, 4, 2, 0, weights=np.full((2, 4), 100))
    big.bias = [2 ** 31 - 255 * 400, 0]  # |bias| + 255 * sum|W| = 2^31
    soft = _dense(rng, 4, 2, modelfile.FLAG_SOFTMAX)
    soft.table = [65537] + [1] * 255
    empty = _dense(rng, 4, 2, modelfile.FLAG_SOFTMAX)
    empty.table = [0] * 256
    tiny = _dense(rng, 4, 2, 0)
    tiny.quant = (2.0 ** -101,) + tuple(tiny.quant[1:])
    for layer, message in ((big, "prepare: layer 0, unit 0: the accumulator could reach 2^31"),
                           (soft, "load: layer 0: softmax table values"),
                           (empty, "load: layer 0: softmax table values"),
                           (tiny, "load: layer 0: output scale")):
        (tmp_path / "m.anne").write_bytes(_blob([layer], _input_quant(rng)))
        out = run_mpy("from anne import int8\nfrom anne.protocol import modelfile\n"
                      "try:\n step = 'load'\n meta, layers = modelfile.load(open(%r, 'rb'))\n"
                      " step = 'prepare'\n int8.prepare(meta, layers)\n"
                      "except ValueError as e:\n print('refused:', step + ':', e)"
                      % str(tmp_path / "m.anne"))
        assert "refused: " + message in out, out
    big.bias = [2 ** 31 - 1 - 255 * 400, 0]  # one below: accepted
    check_model(run_mpy, tmp_path, [big], (0.5, -128, 20000, 10), np.full((2, 4), np.inf, F32))


# --- memory ----------------------------------------------------------------------------


def test_no_allocation_per_inference(run_mpy, tmp_path):
    rng = np.random.default_rng(36)
    layers = _chain(rng, (16, 64, 64, 8), (1, 0, ("act", 1), 2))
    (tmp_path / "m.anne").write_bytes(_blob(layers, _input_quant(rng)))
    out = run_mpy(
        "import gc\nfrom array import array\nfrom anne import int8\nfrom anne.protocol import modelfile\n"
        "meta, layers = modelfile.load(open(%r, 'rb'))\nstate = int8.prepare(meta, layers)\n"
        "src = array('f', [float(i) - 7.5 for i in range(16)])\nsrc[3] = float('nan')\n"
        "src[4] = float('inf')\ndst = array('f', range(8))\n"
        "def loop(n, run=int8.run):\n for _ in range(n):\n  run(src, dst, state)\n"
        "def measure(n):\n gc.collect()\n gc.disable()\n a, f = gc.mem_alloc(), gc.mem_free()\n"
        " loop(n)\n a, f = gc.mem_alloc() - a, f - gc.mem_free()\n gc.enable()\n return a, f\n"
        "loop(1)\nprint(measure(0), measure(1000))"
        % str(tmp_path / "m.anne"))
    assert out.strip() == "(0, 0) (0, 0)"


_MEMORY = """
import gc
from anne import int8
from anne.protocol import modelfile
gc.collect()
h0 = gc.mem_alloc()
meta, layers = modelfile.load(open(%r, 'rb'))
gc.collect()
h1 = gc.mem_alloc()
state = int8.prepare(meta, layers)
gc.collect()
h2 = gc.mem_alloc()
print(h1 - h0, h2 - h1, sum(len(l.weights) for l in layers if l.weights is not None))
"""


def test_prepare_keeps_no_second_copy_of_the_weights(run_mpy, tmp_path):
    # 64 -> 256 -> 128 -> 10, 50,826 parameters (about what fills a Pico's heap):
    # loading takes a byte per weight plus the per-unit arrays and tables; prepare
    # converts in place and adds only buffers that grow with the widest layer
    # (a byte per unit twice, a word per input) and the output's float table.
    rng = np.random.default_rng(37)
    layers = _chain(rng, (64, 256, 128, 10), (0, 1, 2))
    params = sum(layer.param_count() for layer in layers)
    (tmp_path / "m.anne").write_bytes(_blob(layers, _input_quant(rng)))
    loaded, prepared, weights = map(int, run_mpy(_MEMORY % str(tmp_path / "m.anne")).split())
    assert weights == 64 * 256 + 256 * 128 + 128 * 10
    assert prepared < 1100 + 8 * 256 + 600, "prepare allocated %d bytes" % prepared
    assert prepared < weights / 10  # a copy of the weights would be all of them
    # the memory target, on the 64-bit host (whose objects are larger than a Pico's)
    assert (loaded + prepared) / params <= 1.2, (loaded, prepared, params)


def test_output_floats_are_the_float32_products(run_mpy):
    # _dequantize makes float32(scale * (q - zp)) from integers: the bits of numpy's
    # float32 multiply (round to nearest even), for every byte, over scales with every
    # kind of mantissa and the ends of the loader's range.
    rng = np.random.default_rng(41)
    bits = rng.integers(0, 1 << 23, 200) | (rng.integers(27, 228, 200) << 23)
    edges = [np.float32(2.0 ** -100), np.float32(2.0 ** 100), np.float32(1.0), np.float32(1 / 255),
             np.float32(1 / 256), np.nextafter(np.float32(2.0), np.float32(0))]
    scales = np.concatenate([bits.astype(np.uint32).view(F32), np.array(edges, F32)])
    zps = rng.integers(-128, 128, len(scales))
    code = ("from array import array\nfrom anne import int8\n"
            "acts = bytearray(range(256))\ndst = array('f', range(256))\n"
            "for s, z in %s:\n"
            " int8._dequantize(acts, dst, array('i', (s, z)), 256)\n"
            " print(bytes(dst).hex())" % [[int(b), int(z)] for b, z in zip(scales.view(np.uint32), zps)])
    got = [np.frombuffer(bytes.fromhex(line), "<u4") for line in run_mpy(code).split()]
    assert len(got) == len(scales)
    q = np.arange(256).astype(np.uint8).view(np.int8).astype(np.int32)
    for k, (scale, zp) in enumerate(zip(scales, zps)):
        expected = (scale * (q - zp).astype(F32)).astype(F32)
        assert np.array_equal(got[k], expected.view(np.uint32)), (scale, zp)


# --- the per-layer profile (bug 4: all the time went to layer 0) ----------------------


def test_profile_times_every_layer_of_an_int8_model(run_mpy, tmp_path):
    # Summed over 5 x 60 profiles (a layer takes about a microsecond on this host):
    # every layer gets time, the layers add up to about a whole inference, and the
    # model still computes the same outputs afterwards.
    rng = np.random.default_rng(42)
    layers = _chain(rng, (64, 128, 64, 10), (1, 0, ("act", 1), 2))
    (tmp_path / "m.anne").write_bytes(_blob(layers, _input_quant(rng)))
    out = run_mpy.json(
        "import json, time\nimport anne\nnet = anne.load(%r)\nx = [0.1 * i - 3 for i in range(64)]\n"
        "before = list(net.predict(x))\nlayers = [0] * len(net.layers)\nsums, wholes = [], []\n"
        "for _ in range(5):\n"
        " part = [0] * len(net.layers)\n"
        " for _ in range(60):\n  for i, us in enumerate(net.profile(x)):\n   part[i] += us\n"
        " t0 = time.ticks_us()\n for _ in range(60):\n  net.forward(x)\n"
        " wholes.append(time.ticks_diff(time.ticks_us(), t0))\n"
        " sums.append(sum(part))\n layers = [a + b for a, b in zip(layers, part)]\n"
        "print(json.dumps([net.kernel, layers, min(sums), min(wholes), before == net.predict(x)]))"
        % str(tmp_path / "m.anne"))
    kernel, times, layers_sum, whole, same = out
    assert kernel == "int8" and len(times) == 4 and same
    assert all(t > 0 for t in times), times
    # The quickest of five rounds of each: a round the OS interrupted does not decide.
    assert 0.5 * whole < layers_sum < 2 * whole, (times, layers_sum, whole)
