"""On the chip: both int8 kernels -- the Thumb assembler one (firmware/int8_thumb.py),
which the board chooses, and the viper one (firmware/int8.py) -- against the numpy
oracle of MODEL_FORMAT.md's integer arithmetic (tests/firmware/test_int8.py), bit for
bit, on random nets with odd widths, every activation mode (clamp, lookup table,
softmax), extreme accumulators and adversarial inputs; no heap allocated per
inference; the per-layer profile of an int8 model."""

import json

import numpy as np
import pytest

from anne_host import deploy, model_doc, quantize
from anne_host.protocol import modelfile
from tests.firmware import test_int8 as t8

F32 = np.float32
LUT, SOFTMAX = modelfile.FLAG_LUT, modelfile.FLAG_SOFTMAX

_RUN = """
import gc
from array import array
from binascii import hexlify
import anne
for name, rows in %r:
    for kernel in (None, 'int8'):
        net = anne.load('k/' + name + '.anne', kernel)
        n = net.inputs
        x = array('f', range(rows * n))
        with open('k/' + name + '.in', 'rb') as f:
            f.readinto(x)
        src = array('f', range(n))
        for r in range(rows):
            for i in range(n):
                src[i] = x[r * n + i]
            print(name, net.kernel, hexlify(net.forward(src)).decode()[:8 * net.outputs])
        net = None
        gc.collect()
"""


def _cases():
    """name -> (model file, float32 input rows, int8 layers or None, input_quant)."""
    rng = np.random.default_rng(2024)
    cases = {}

    def add(name, layers, iq, x, padding=None):
        cases[name] = (t8._blob(layers, iq, padding), np.asarray(x, F32), layers, iq)

    for k, (label, (widths, flags)) in enumerate(sorted(t8.CASES.items())):
        layers = t8._chain(rng, widths, flags)
        iq = t8._input_quant(rng, n=widths[0] if k % 2 else None)  # odd cases: a rule per input
        add("case%d" % k, layers, iq, np.concatenate([t8._adversarial(rng, widths[0], iq, 12),
                                                     t8._random_rows(rng, widths[0], iq, 24)]))
    layers = t8._chain(rng, (16, 64, 64, 8), (LUT, 0, ("act", LUT), SOFTMAX))
    iq = t8._input_quant(rng)
    add("mix16", layers, iq, np.concatenate([t8._adversarial(rng, 16, iq, 8),
                                             t8._random_rows(rng, 16, iq, 16)]))
    for n_in, units in [(1, 1), (3, 2), (4, 3), (5, 1), (16, 2), (20, 3), (28, 2), (29, 1),
                        (255, 2), (257, 3), (300, 1)]:
        layers = [t8._dense(rng, n_in, units, 0, s=(17, 30)), t8._dense(rng, units, 2, LUT)]
        iq = t8._input_quant(rng, n=n_in if n_in % 2 else None)
        add("odd%d_%d" % (n_in, units), layers, iq,
            np.concatenate([t8._adversarial(rng, n_in, iq, 6), t8._random_rows(rng, n_in, iq, 6)]))
    # wider nets, every mode, and the rows' padding bytes random
    layers = t8._chain(rng, (64, 128, 64, 10), (0, LUT, ("act", LUT), SOFTMAX))
    iq = t8._input_quant(rng)
    add("wide", layers, iq, t8._random_rows(rng, 64, iq, 16), padding=np.random.default_rng(5))
    layers = t8._chain(rng, (13, 7, 5, 3), (0, ("act", SOFTMAX), LUT, 0))
    iq = t8._input_quant(rng)
    add("pad", layers, iq, t8._random_rows(rng, 13, iq, 20), padding=np.random.default_rng(6))
    # accumulators next to 2^31, driven to both ends by saturated inputs
    n = 37
    rows, bias = [], []
    for w in (np.full(n, -128), np.full(n, 127), rng.integers(-128, 128, n), rng.integers(-128, 128, n)):
        for sign in (-1, 1):
            rows.append(w)
            bias.append(sign * (2 ** 31 - 1 - 255 * int(np.abs(w).sum())))
    for z in (-128, 127):
        layer = t8._dense(rng, n, len(rows), 0, weights=np.array(rows), lo=-100, hi=100)
        layer.bias = bias
        layer.multiplier = [32767] + rng.integers(0, 32768, len(rows) - 1).tolist()
        layer.shift = [46, 17] + rng.integers(17, 47, len(rows) - 2).tolist()
        iq = (0.5, z, 20000, 10)
        x = np.concatenate([np.full((2, n), np.inf), np.full((2, n), -np.inf), np.full((1, n), 3e38),
                            np.full((1, n), -3e38), t8._random_rows(rng, n, iq, 4)])
        x[1] = -x[1]
        add("acc%d" % (z & 255), [layer], iq, x)
    # softmax ties: equal rows share the mass
    for units in (1, 3, 10, 256):
        row = rng.integers(-128, 128, 6)
        layer = t8._dense(rng, 6, units, SOFTMAX, weights=np.tile(row, (units, 1)))
        layer.bias = [int(layer.bias[0])] * units
        layer.multiplier = [int(layer.multiplier[0])] * units
        layer.shift = [int(layer.shift[0])] * units
        iq = t8._input_quant(rng)
        add("tie%d" % units, [layer], iq, t8._random_rows(rng, 6, iq, 4))
    # the input rule at exact halves and every exponent: an identity layer shows q
    for sh, z in ((14, 0), (20, -128), (3, 127), (-5, 5), (60, -7)):
        n = 64
        iq = (0.1, z, 16384, sh)
        layer = t8._dense(rng, n, n, 0, weights=64 * np.eye(n, dtype=np.int64), req_zp=z, out_zp=0)
        layer.bias, layer.multiplier, layer.shift = [0] * n, [2048] * n, [17] * n
        k = np.arange(-n // 2, n // 2)
        x = np.stack([(k + 0.5) * 2.0 ** (sh - 14), (k - 0.5) * 2.0 ** (sh - 14)]).astype(F32)
        sweep = t8._every_exponent(rng)
        sweep = np.concatenate([sweep, np.zeros(-len(sweep) % n, F32)]).reshape(-1, n)
        add("rule%d" % (sh & 255), [layer], iq,
            np.concatenate([x, np.nextafter(x, F32(np.inf)), sweep, t8._adversarial(rng, n, iq, 4)]))
    # a rule per input, each at its own exact halves: input i's shift is shs[i]
    n = 64
    shs = rng.integers(-5, 61, n)
    iq = (0.1, 3, [16384] * n, shs.tolist())
    layer = t8._dense(rng, n, n, 0, weights=64 * np.eye(n, dtype=np.int64), req_zp=3, out_zp=0)
    layer.bias, layer.multiplier, layer.shift = [0] * n, [2048] * n, [17] * n
    k = rng.integers(-140, 140, (16, n))  # 48 rows of 64: the script's heap holds them
    x = ((k + 0.5) * 2.0 ** (shs - 14)[None, :]).astype(F32)
    add("rules64", [layer], iq, np.concatenate([x, np.nextafter(x, F32(np.inf)),
                                               np.nextafter(x, F32(-np.inf))]))
    # the exporter's IRIS nets
    for path in sorted(t8.MODELS.glob("*_int8.json")):
        doc = json.loads(path.read_text())
        x = np.random.default_rng(len(path.name)).normal(0, 1, (30, doc["inputs"])) * 3
        cases[path.stem] = (model_doc.pack(doc), x.astype(F32), doc, None)
    return cases


def _expected(case):
    blob, x, layers, iq = case
    if iq is None:  # a model document: the host quantizer's reference
        return quantize.run_int8(layers, x)[1]
    return t8.spec_run(layers, iq, x)[1]


def _upload(chip, tmp_path, files):
    folder = tmp_path / "k"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    chip.exec("import os\ntry:\n for f in os.listdir('k'):\n  os.remove('k/' + f)\nexcept OSError:\n pass")
    deploy.mpremote(chip.port, "cp", "-r", str(folder), ":", what="copying test models")


@pytest.fixture(scope="module")
def outputs(chip, tmp_path_factory):
    """name -> kernel -> float32 outputs of every row, computed on the chip."""
    cases = _cases()
    files = {}
    for name, (blob, x, _, _) in cases.items():
        files[name + ".anne"] = blob
        files[name + ".in"] = np.ascontiguousarray(x, "<f4").tobytes()
    _upload(chip, tmp_path_factory.mktemp("chip"), files)
    got = {}
    names = sorted(cases)
    for i in range(0, len(names), 8):  # a few cases per run: mpremote's output stays short
        listing = [(name, len(cases[name][1])) for name in names[i:i + 8]]
        for line in chip.exec(_RUN % listing).split("\n"):
            parts = line.split()
            if len(parts) == 3:
                got.setdefault(parts[0], {}).setdefault(parts[1], []).append(
                    np.frombuffer(bytes.fromhex(parts[2]), "<f4"))
    return cases, got


def test_the_chip_chooses_the_assembler_kernel(chip):
    out = chip.exec("from anne import kernels\nprint(kernels.thumb(), kernels.int8(None)[0], "
                    "kernels.int8('int8')[0])")
    assert out.split() == ["True", "int8-thumb", "int8"]


def test_both_kernels_give_the_spec_bit_for_bit(outputs):
    cases, got = outputs
    assert sorted(got) == sorted(cases)
    for name, case in cases.items():
        expected = _expected(case)
        assert sorted(got[name]) == ["int8", "int8-thumb"], name
        for kernel, rows in got[name].items():
            assert len(rows) == len(expected), (name, kernel)
            t8.assert_same_bits(np.stack(rows), expected)
    # the inputs are not too tame: the outputs vary, and the input rule cases see
    # nearly every q
    for name in ("mix16", "wide", "pad", "odd257_3", "acc128", "rule20", "rules64"):
        q = t8.spec_run(cases[name][2], cases[name][3], cases[name][1])[0]
        assert len(np.unique(q)) >= (30 if name.startswith("rule") else 2), name


_NO_ALLOCATION = """
import gc
from array import array
import anne
from anne.engine import run_steps
for kernel in (None, 'int8'):
    net = anne.load('k/%s.anne', kernel)
    run, state = net._steps[0], net._steps[1]
    src = array('f', [float(i) - 7.5 for i in range(net.inputs)])
    src[3] = float('nan')
    src[4] = float('-inf')
    dst = array('f', range(net.outputs))
    x = [float(v) for v in src]
    steps = net._steps
    def loop(n):
        for _ in range(n):
            run(src, dst, state)
            run_steps(steps, net._a, net._b)
            net.forward(x)
    loop(2)
    gc.collect()
    gc.disable()
    a, f = gc.mem_alloc(), gc.mem_free()
    loop(500)
    print(net.kernel, gc.mem_alloc() - a, f - gc.mem_free())
    gc.enable()
"""


def test_no_heap_allocated_per_inference_on_the_chip(chip, outputs):
    # A 16-64-64-8 net with a lookup table, an activation layer and a softmax:
    # 500 inferences by the kernel, by the engine's layer loop and by Net.forward.
    out = chip.exec(_NO_ALLOCATION % "mix16").split("\n")
    assert [line.split() for line in out if line.strip()] == [
        ["int8-thumb", "0", "0"], ["int8", "0", "0"]]


_PROFILE = """
import time
import anne
for kernel in (None, 'int8'):
    net = anne.load('k/%s.anne', kernel)
    x = [0.5] * net.inputs
    net.forward(x)
    t0 = time.ticks_us()
    for _ in range(50):
        net.forward(x)
    whole = time.ticks_diff(time.ticks_us(), t0) / 50
    layers = [0] * len(net.layers)
    for _ in range(50):
        for i, us in enumerate(net.profile(x)):
            layers[i] += us / 50
    out = list(net.forward(x))[:net.outputs]
    print(net.kernel, whole, ' '.join(str(v) for v in layers), out == list(net.predict(x)))
"""


@pytest.mark.parametrize("name", ["mix16", "wide"])
def test_the_profile_times_each_layer_of_an_int8_model(chip, outputs, name):
    # Bug 4: all the time went to layer 0. Each layer's time is positive, they add
    # up to about the whole inference, and the model still runs whole afterwards.
    for line in chip.exec(_PROFILE % name).strip().split("\n"):
        kernel, whole, *layers, same = line.split()
        layers = [float(v) for v in layers]
        assert len(layers) == len(outputs[0][name][2]), line
        assert all(v > 0 for v in layers), line
        assert 0.7 * float(whole) < sum(layers) < 1.3 * float(whole) + 60, line
        assert same == "True"
