"""The int8 model file (number type 1): packed on the host, loaded on the board with
every array in place, and refused with a message when its integer ranges are wrong."""

import io
import struct

import numpy as np
import pytest

from anne_host.protocol import modelfile

INPUT_QUANT = (0.05, -3, 20000, 18)


def _layers(rng=None):
    rng = rng or np.random.default_rng(1)
    dense = modelfile.Layer("dense", "relu", 6, 5)
    dense.quant = (0.1, -128, -128, -128, 127, 0)
    dense.weights = rng.integers(-127, 128, 30).tolist()  # unpadded rows of 6
    dense.bias = rng.integers(-5000, 5000, 5).tolist()
    dense.multiplier = rng.integers(16384, 32768, 5).tolist()
    dense.shift = rng.integers(17, 47, 5).tolist()
    act = modelfile.Layer("activation", "sigmoid", 5, 5)
    act.quant = (1 / 256, -128, 0, -128, 127, modelfile.FLAG_LUT)
    act.table = rng.integers(-128, 128, 256).tolist()
    out = modelfile.Layer("dense", "softmax", 5, 3)
    out.quant = (1 / 256, -128, 4, -128, 127, modelfile.FLAG_SOFTMAX)
    out.weights = rng.integers(-127, 128, 15).tolist()
    out.bias = [0, 1, -1]
    out.multiplier = [16384, 20000, 32767]
    out.shift = [17, 30, 46]
    out.table = rng.integers(0, 65537, 256).tolist()
    return [dense, act, out]


def _blob(layers=None):
    return modelfile.pack({"name": "q"}, layers or _layers(), INPUT_QUANT)


def test_pack_then_load_gives_back_every_integer_with_rows_padded_to_words():
    layers = _layers()
    blob = _blob(layers)
    assert blob[5] == modelfile.DTYPE_INT8
    meta, loaded = modelfile.load(io.BytesIO(blob))
    assert meta["dtype"] == "int8"
    assert blob[4] == modelfile.VERSION  # one rule for every input: a version 1 file
    assert meta["input_quant"][1] == -3 and list(meta["input_quant"][2]) == [20000, 18 + modelfile.RULE_BIAS]
    assert [modelfile.input_rule(meta["input_quant"], i) for i in (0, 5)] == [(20000, 18)] * 2
    assert meta["input_quant"][0] == pytest.approx(0.05)
    dense, act, out = loaded
    assert modelfile.stride(6, modelfile.DTYPE_INT8) == modelfile.stride(5, modelfile.DTYPE_INT8) == 8
    assert (len(dense.weights), len(out.weights)) == (5 * 8, out.units * 8)  # rows padded to 8 bytes
    rows = np.frombuffer(bytes(dense.weights), np.int8).reshape(5, 8)
    assert rows[:, :6].ravel().tolist() == layers[0].weights and not rows[:, 6:].any()
    assert list(dense.bias) == layers[0].bias and list(dense.multiplier) == layers[0].multiplier
    assert list(dense.shift) == layers[0].shift
    assert np.frombuffer(bytes(act.table), np.int8).tolist() == layers[1].table
    assert list(out.table) == layers[2].table
    assert dense.quant[1:] == (-128, -128, -128, 127, 0)
    assert [layer.param_count() for layer in loaded] == [35, 0, 18]
    # what the board's heap holds: a byte per weight plus the per-unit arrays and tables
    assert [modelfile.array_bytes(layer) for layer in loaded] == [40 + 35, 256, 24 + 21 + 1024]


def test_verifying_keeps_no_weights_but_checks_the_per_unit_ranges():
    _, loaded = modelfile.load(io.BytesIO(_blob()), keep=False)
    assert loaded[0].weights is None and list(loaded[0].shift)


def _bad(change):
    layers = _layers()
    change(layers)
    return _blob(layers)


BAD = {
    "shift below 17": (lambda l: l[0].shift.__setitem__(0, 16), "shift 16 is outside 17..46"),
    "shift above 46": (lambda l: l[2].shift.__setitem__(2, 47), "shift 47 is outside 17..46"),
    "multiplier too big": (lambda l: l[0].multiplier.__setitem__(1, 40000), "multiplier 40000 is above 32767"),
    "lo above hi": (lambda l: setattr(l[0], "quant", (0.1, 0, 0, 5, 4, 0)), "range 5..4"),
    "unknown flags": (lambda l: setattr(l[1], "quant", (0.1, 0, 0, -128, 127, 3)), "flags 3"),
    "table-less activation": (lambda l: setattr(l[1], "quant", (0.1, 0, 0, -128, 127, 0)), "needs a table"),
    "int8 prelu": (lambda l: setattr(l[1], "activation", "prelu"), "prelu has no int8 form"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_integer_ranges_are_refused_on_host_and_board(case, run_mpy, tmp_path):
    change, message = BAD[case]
    blob = _bad(change)
    for keep in (True, False):  # loading and the upload's verification alike
        with pytest.raises(modelfile.ModelFileError, match=message):
            modelfile.load(io.BytesIO(blob), keep=keep)
    (tmp_path / "m.anne").write_bytes(blob)
    out = run_mpy("from anne.protocol import modelfile\ntry:\n modelfile.load(open(%r, 'rb'))\n"
                  "except ValueError as e:\n print('refused:', e)" % str(tmp_path / "m.anne"))
    assert out.startswith("refused:") and message in out


PER_INPUT = (0.05, -3, [16384, 20000, 32767, 16385, 30000, 17000], [-128, 18, 127, 0, -1, 5])


def test_inputs_with_rules_of_their_own_make_a_version_2_file():
    blob = modelfile.pack({"name": "q"}, _layers(), PER_INPUT)
    assert blob[4] == modelfile.VERSION_PER_INPUT == 2
    meta, _ = modelfile.load(io.BytesIO(blob))
    assert [modelfile.input_rule(meta["input_quant"], i) for i in range(6)] == list(zip(*PER_INPUT[2:]))
    assert meta["input_quant"][1] == -3
    with pytest.raises(modelfile.ModelFileError, match="2 multipliers and 6 shifts for 6 inputs"):
        modelfile.pack({"name": "q"}, _layers(), (0.05, 0, [16384, 16384], PER_INPUT[3]))


def test_a_version_2_float_file_is_refused():
    blob = bytearray(modelfile.pack({"name": "f"}, [_float_layer()]))
    blob[4] = modelfile.VERSION_PER_INPUT
    with pytest.raises(modelfile.ModelFileError, match="version 2"):
        modelfile.load(io.BytesIO(bytes(blob)))


def _float_layer():
    layer = modelfile.Layer("dense", "linear", 2, 1)
    layer.weights, layer.bias = [1.0, 2.0], [0.5]
    return layer


@pytest.mark.parametrize("input_quant", [(0.05, 0, 1000, 3), (0.05, 0, [16384, 1000, 16384, 16384, 16384, 16384], 3)])
def test_an_input_multiplier_out_of_range_is_refused(input_quant):
    blob = modelfile.pack({"name": "q"}, _layers(), input_quant)
    with pytest.raises(modelfile.ModelFileError, match="input multiplier 1000"):
        modelfile.load(io.BytesIO(blob))


def test_the_board_loads_the_same_integers(run_mpy, tmp_path):
    blob = _blob()
    (tmp_path / "m.anne").write_bytes(blob)
    (tmp_path / "p.anne").write_bytes(modelfile.pack({"name": "q"}, _layers(), PER_INPUT))
    out = run_mpy("from anne.protocol import modelfile\nm, ls = modelfile.load(open(%r, 'rb'))\n"
                  "print(m['input_quant'][1], list(m['input_quant'][2]), [len(l.weights) // l.units for l in ls if l.weights], bytes(ls[0].weights).hex(),"
                  " list(ls[2].table)[:4], list(ls[2].shift))\n"
                  "p, _ = modelfile.load(open(%r, 'rb'))\n"
                  "print([modelfile.input_rule(p['input_quant'], i) for i in range(6)])"
                  % (str(tmp_path / "m.anne"), str(tmp_path / "p.anne")))
    _, layers = modelfile.load(io.BytesIO(blob))
    assert out.strip().splitlines() == [
        "-3 %s %s %s %s %s" % ([20000, 18 + 149], [8, 8], bytes(layers[0].weights).hex(),
                               list(layers[2].table)[:4], list(layers[2].shift)),
        str(list(zip(*PER_INPUT[2:])))]
    assert struct.unpack_from("<H", blob, 6)[0] == 3
