"""On the chip: the float kernels -- the Thumb assembler one (firmware/bfp_thumb.py),
which the board chooses, and the viper one (firmware/bfp.py) -- give the same bits on
every dense layer, adversarial inputs and odd widths included; the assembler's sigmoid,
tanh and softmax give what the spec gives (Keras on finite values, MODEL_FORMAT.md's
limits and NaN rules beyond) to float32's precision; whole nets stay within 1e-5 of
Keras; an inference allocates nothing, whatever the input's type."""

import numpy as np
import pytest

from anne_host import deploy, model_doc
from tests.firmware.board_predict import assert_matches_keras
from tests.firmware.test_kernels import _adversarial_inputs, _bound, _exact
from tests.robustness import nonfinite_spec as spec

F32 = np.float32
INF, NAN = np.inf, np.nan

_RUN = """
import gc
from array import array
from binascii import hexlify
import anne
for name, rows, kernels in %r:
    for kernel in kernels:
        net = anne.load('f/' + name + '.anne', kernel)
        n = net.inputs
        x = array('f', range(rows * n))
        with open('f/' + name + '.in', 'rb') as f:
            f.readinto(x)
        view = memoryview(x)
        for r in range(rows):
            out = net.forward(view[r * n:(r + 1) * n])
            print(name, net.kernel, hexlify(out).decode()[:8 * net.outputs])
        net = x = view = None
        gc.collect()
"""


def _doc(name, layers, inputs):
    return model_doc.build({"name": name, "inputs": inputs}, [
        {"type": "dense", "activation": {"name": act}, "weights": np.asarray(w, F32),
         "bias": np.asarray(b, F32)} for w, b, act in layers])


def _glorot(rng, n_in, n_out):
    limit = np.sqrt(6.0 / (n_in + n_out))
    return rng.uniform(-limit, limit, (n_out, n_in)).astype(F32), rng.uniform(-0.1, 0.1, n_out).astype(F32)


def _dense_cases():
    """name -> (model document, input rows): single layers of odd widths (around a
    pass of 15 inputs), linear and with a fused relu, weights of mixed magnitudes."""
    rng = np.random.default_rng(41)
    cases = {}
    for n_in, units in [(1, 1), (4, 3), (14, 2), (15, 5), (16, 7), (29, 3), (30, 2), (31, 4),
                        (61, 4), (128, 3), (250, 2)]:
        w = rng.normal(0, 1, (units, n_in)).astype(F32)
        w[:, 0] *= 1e3  # a large column: the small ones must keep their bits
        w[0, -1] = 0.0  # a zero weight: inf times it is NaN
        if n_in > 2:
            w[-1, 1] = -1e-39  # a denormal weight counts as zero
        b = rng.normal(0, 1, units).astype(F32)
        x = np.vstack([_adversarial_inputs(n_in, rng), rng.normal(0, 1, (6, n_in)) * 10.0 ** rng.integers(-9, 9, (6, 1)),
                       np.where(rng.random((3, n_in)) < 0.2, -INF, rng.normal(0, 1, (3, n_in)))]).astype(F32)
        for act in ("linear", "relu"):
            cases["d%d_%d_%s" % (n_in, units, act)] = (_doc("d", [(w, b, act)], n_in), x)
    # columns of every magnitude (test_kernels' case), and a wide relu net
    scales = np.array([4e-38, 1e-20, 1e-3, 1.0, 1e3, 1e20, 3e38], F32)
    w = (rng.uniform(0.5, 1.0, (5, 7)) * rng.choice([-1, 1], (5, 7)) * scales).astype(F32)
    x = np.vstack([1.0 / scales, rng.uniform(0.5, 1, 7) * rng.choice([-1, 1], 7) / scales,
                   np.ones(7)]).astype(F32)
    x[:2, -1] = 4.5 / scales[-1]
    x[2, -1] = 0.0
    cases["columns"] = (_doc("c", [(w, rng.normal(0, 1, 5), "linear")], 7), x)
    layers = [_glorot(rng, 64, 128) + ("relu",), _glorot(rng, 128, 64) + ("relu",),
              _glorot(rng, 64, 10) + ("linear",)]
    cases["wide"] = (_doc("w", layers, 64), rng.normal(0, 1, (8, 64)).astype(F32))
    return cases


def _activation_inputs(rng):
    """Values for sigmoid and tanh: every magnitude, both signs, the limits and the
    places where the computation changes course."""
    v = [0.0, -0.0, 1e-45, 1e-40, 1e-30, 1e-8, 2.0 ** -12, 2.0 ** -11, 0.01, 0.5, 1.0, 2.0, 3.0,
         8.9, 9.1, 17.0, 17.5, 30.0, 63.9, 64.0, 87.0, 88.8, 90.0, 103.9, 104.0, 127.9, 128.0,
         1e6, 1e30, 3.4e38]
    v = np.array(v + list(rng.uniform(0, 20, 40)) + list(10.0 ** rng.uniform(-6, 2, 40)))
    return np.concatenate([v, -v, [INF, -INF, NAN]]).astype(F32)


def _softmax_rows(rng, n=10):
    rows = [rng.normal(0, 3, n), rng.normal(0, 30, n), rng.normal(0, 1, n) * 1e30, np.zeros(n),
            np.full(n, -7.0), np.where(np.arange(n) < 3, 5.0, -5.0), rng.normal(1e9, 100, n),
            np.r_[[INF], rng.normal(0, 1, n - 1)], np.r_[[INF, INF, INF], rng.normal(0, 1, n - 3)],
            np.r_[[INF, -INF], rng.normal(0, 1, n - 2)], np.full(n, -INF),
            np.r_[[-INF] * (n - 1), [2.0]], np.r_[[NAN], rng.normal(0, 1, n - 1)],
            np.r_[[3.4e38, -3.4e38], rng.normal(0, 1, n - 2)], np.r_[[-100.0, 100.0], np.zeros(n - 2)]]
    rows += list(rng.normal(0, 5, (12, n)))
    return np.asarray(rows, F32)


def _activation_cases(rng):
    """name -> (model, inputs, pre-activations): a dense layer whose sums are twice
    its inputs (huge inputs overflow to +-inf, NaN gives NaN), then the activation.
    sigmoid and tanh: one input, weights 2 and -2, so that no value shares a row
    with larger ones (a row's sum keeps 26 bits of its largest term)."""
    v = _activation_inputs(rng)
    v = v[(v > 0) | np.isnan(v)]
    one = np.where(np.isinf(v), 3.4e38, v / 2)[:, None]
    rows = {"sigmoid": (one, [[2.0], [-2.0]]), "tanh": (one, [[2.0], [-2.0]])}
    for n in (1, 3, 10, 64):
        x = _softmax_rows(rng, max(n, 4))[:, :n] / 2
        rows["softmax%d" % n] = (np.where(np.isinf(x), np.sign(x) * 3.4e38, x), 2 * np.eye(n))
    cases = {}
    for name, (x, w) in rows.items():
        x, w = np.asarray(x, F32), np.asarray(w, F32)
        with np.errstate(all="ignore"):
            z = (x.astype(np.float64) @ w.T.astype(np.float64)).astype(F32)
        z[np.isnan(x).any(axis=1)] = NAN
        doc = _doc(name, [(w, np.zeros(len(w)), name.rstrip("0123456789"))], x.shape[1])
        cases["a_" + name] = (doc, x, z)
    return cases


def _net_cases(rng):
    """Nets as a user trains them: every activation the assembler computes, between
    dense layers (the benchmark's 16-64-64-8 with tanh and sigmoid among them)."""
    cases = {}
    for name, sizes, acts in [("t16", (16, 64, 64, 8), ("tanh", "sigmoid", "softmax")),
                              ("mix", (9, 23, 31, 17, 1), ("sigmoid", "relu", "tanh", "sigmoid"))]:
        layers = [_glorot(rng, a, b) + (act,) for a, b, act in zip(sizes, sizes[1:], acts)]
        x = np.vstack([rng.normal(0, 2, (14, sizes[0])), rng.normal(0, 1, (2, sizes[0])) * 1e4])
        cases[name] = (_doc(name, layers, sizes[0]), x.astype(F32))
    return cases


def _upload(chip, folder, files):
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    chip.exec("import os\ntry:\n for f in os.listdir('f'):\n  os.remove('f/' + f)\nexcept OSError:\n pass")
    deploy.mpremote(chip.port, "cp", "-r", str(folder), ":", what="copying test models")


@pytest.fixture(scope="module")
def outputs(chip, tmp_path_factory):
    """(cases, name -> kernel -> float32 output rows), computed on the chip."""
    rng = np.random.default_rng(7)
    cases = {**_dense_cases(), **_activation_cases(rng), **_net_cases(rng)}
    files = {}
    for name, (doc, x, *_) in cases.items():
        files[name + ".anne"] = model_doc.pack(doc)
        files[name + ".in"] = np.ascontiguousarray(x, "<f4").tobytes()
    _upload(chip, tmp_path_factory.mktemp("chip") / "f", files)
    got = {}
    names = sorted(cases)
    for i in range(0, len(names), 6):
        listing = [(name, len(cases[name][1]), (None, "bfp-viper") if name[0] in "dcw" else (None,))
                   for name in names[i:i + 6]]
        for line in chip.exec(_RUN % listing).split("\n"):
            parts = line.split()
            if len(parts) == 3:
                got.setdefault(parts[0], {}).setdefault(parts[1], []).append(
                    np.frombuffer(bytes.fromhex(parts[2]), "<f4"))
    return cases, {name: {k: np.stack(rows) for k, rows in by.items()} for name, by in got.items()}


def test_the_chip_chooses_the_assembler_kernel(chip, outputs):
    out = chip.exec("import anne\nfrom anne import kernels\nprint(kernels.get('bfp').name, "
                    "kernels.get('bfp-thumb').name, kernels.get('bfp-viper').name, "
                    "anne.load('f/d16_7_relu.anne').kernel, anne.load('f/d16_7_relu.anne', 'bfp-viper').kernel)")
    assert out.split() == ["bfp-thumb", "bfp-thumb", "bfp", "bfp-thumb", "bfp"]


def test_both_dense_kernels_give_the_same_bits(outputs):
    cases, got = outputs
    dense = [name for name in cases if name[0] in "dcw"]
    assert len(dense) == 24
    for name in dense:
        doc, x = cases[name]
        assert sorted(got[name]) == ["bfp", "bfp-thumb"], name
        thumb, viper = got[name]["bfp-thumb"], got[name]["bfp"]
        assert thumb.shape == (len(x), doc["layers"][-1]["units"]), name
        assert thumb.tobytes() == viper.tobytes(), name
    # and the bits are right: NaN and infinities where exact arithmetic has them, and
    # float32's error bound (a single layer, linear; test_kernels' adversarial rows
    # but for the one of mixed magnitudes, where a row keeps 26 bits of its largest
    # weight times the largest input, less than float32 promises: MODEL_FORMAT.md)
    rows = [0, 1, 2, 3, 4, 5, 7, 8]
    for name in dense:
        if not name.endswith("linear"):
            continue
        layer = cases[name][0]["layers"][0]
        w, b, x = np.asarray(layer["weights"], F32), np.asarray(layer["bias"], F32), cases[name][1][rows]
        exact = _exact(w, b, x)
        with np.errstate(all="ignore"):
            expected = exact.astype(F32)
        board = got[name]["bfp-thumb"][rows]
        assert np.array_equal(np.isnan(board), np.isnan(expected)), name
        finite = np.isfinite(expected)
        assert np.array_equal(board[~finite & ~np.isnan(board)], expected[~finite & ~np.isnan(expected)]), name
        assert np.all(np.abs(board[finite] - exact[finite]) <= _bound(w, b, x)[finite]), name
    # the inputs reached the non-finite rules and mixed magnitudes
    assert np.isnan(got["d16_7_linear"]["bfp-thumb"]).any()
    assert np.isinf(got["d16_7_linear"]["bfp-thumb"]).any()


def _exact_activation(name, z):
    # float64, with the spec's limits and NaN rules
    z = np.asarray(z, np.float64)
    with np.errstate(all="ignore"):
        if name == "sigmoid":
            return np.where(z >= 0, 1 / (1 + np.exp(-np.abs(z))), np.exp(-np.abs(z)) / (1 + np.exp(-np.abs(z))))
        if name == "tanh":
            return np.tanh(z)
    out = []
    for r in z:
        if np.isnan(r).any() or (r == -INF).all():
            out.append(np.full(r.shape, NAN))
        elif (r == INF).any():
            out.append(np.where(r == INF, 1.0 / (r == INF).sum(), 0.0))
        else:
            e = np.exp(r - r.max())
            out.append(e / e.sum())
    return np.array(out)


def test_sigmoid_tanh_and_softmax_are_float32_exact_and_keep_the_spec(outputs, keras):
    cases, got = outputs
    for name in [n for n in cases if n.startswith("a_")]:
        act = name[2:].rstrip("0123456789")
        z = cases[name][2]
        board = got[name]["bfp-thumb"].astype(np.float64)
        exact = _exact_activation(act, z)
        # within a couple of float32 steps of the exact value, relative to it down
        # to 1e-30 (tiny values keep their digits too); softmax's tiny shares down to
        # 1e-6 (their error is that of exp(d), d = x - top, which float32 itself
        # cannot hold better than 2^-24 d)
        assert np.array_equal(np.isnan(board), np.isnan(exact)), name
        ok = ~np.isnan(exact)
        floor = 1e-6 if act == "softmax" else 1e-30
        err = np.abs(board[ok] - exact[ok]) / np.maximum(np.abs(exact[ok]), floor)
        assert err.max() <= 2.5e-7, "%s: relative error %.3g" % (name, err.max())
        # and what the spec says, through Keras' own functions on finite values (its
        # limits at infinities; the NaN rows were checked just above)
        expected = spec.activation(keras, act, z)
        rows = ~np.isnan(expected).any(axis=1)
        assert_matches_keras(board[rows], expected[rows], name)
    # the rows reach every rule: limits, NaN rows, shared mass
    s = got["a_softmax10"]["bfp-thumb"]
    assert np.isnan(s).all(axis=1).sum() == 2 and (s == F32(1 / 3)).sum() == 3


def test_nets_with_every_assembler_activation_match_keras(outputs, keras):
    cases, got = outputs
    for name in ("t16", "mix"):
        doc, x = cases[name]
        assert_matches_keras(got[name]["bfp-thumb"], spec.forward(keras, doc, x), name)


_NO_ALLOCATION = """
import gc
from array import array
import anne
from anne.engine import run_steps
net = anne.load('f/%s.anne')
n = net.inputs
xs = [float(i %% 5) - 2.1 for i in range(n)]
rows = [xs, array('f', xs), memoryview(array('f', [0.0] + xs))[1:], [float('nan')] * n,
        [float('-inf')] + xs[1:]]
data = bytes(array('f', xs))
y, c, t = bytearray(4 * net.outputs), bytearray(1), bytearray(4)
def loop(k):
    for _ in range(k):
        for x in rows:
            net.forward(x)
        run_steps(net._steps, net._a, net._b)
        net.run_batch(data, 1, y, c, t)
loop(2)
gc.collect()
gc.disable()
used = []
for k in (50, 150):  # the first measure may hold a one-off block or two
    a = gc.mem_alloc()
    loop(k)
    used.append(gc.mem_alloc() - a)
print(net.kernel, used[0] <= 64, used[1])
gc.enable()
"""


def test_no_heap_allocated_per_inference_on_the_chip(chip, outputs):
    # tanh, sigmoid, softmax, relu and dense layers; inputs as a list, an array('f'),
    # a memoryview at an offset, NaN and -inf; the layer loop and the batch loop
    for name in ("t16", "mix"):
        assert chip.exec(_NO_ALLOCATION % name).split() == ["bfp-thumb", "True", "0"]


_INPUT_TYPES = """
from array import array
from binascii import hexlify
import anne
net = anne.load('f/mix.anne')
xs = [0.37 * i - 1.1 for i in range(net.inputs)]
for x in (xs, tuple(xs), array('f', xs), memoryview(array('f', [9.0] + xs))[1:], array('d', xs),
          memoryview(array('d', xs)), array('i', [round(v) for v in xs])):
    print(hexlify(net.forward(x)).decode()[:8])
print(hexlify(net.forward([float(round(v)) for v in xs])).decode()[:8])
"""


def test_forward_reads_every_kind_of_sequence_alike(chip, outputs):
    # array('f') is copied as raw words; a 'd' array, whose items are 8 bytes, and
    # integers go item by item: all give the output of the same values in a list.
    lines = chip.exec(_INPUT_TYPES).split()
    assert len(lines) == 8
    assert len(set(lines[:6])) == 1 and lines[6] == lines[7] != lines[0]
