"""The binary model file: one implementation, packed on the host, loaded by the
board; every damaged or unsupported file is refused with a message."""

import io
import struct

import numpy as np
import pytest

from anne_host import model_doc
from anne_host.protocol import modelfile


def _doc(**over):
    rng = np.random.default_rng(0)
    doc = {
        "format": "anne-model", "version": 1, "name": "t", "inputs": 3,
        "labels": ["a", "b"],
        "layers": [
            {"type": "dense", "units": 4, "activation": {"name": "relu", "max_value": 6.0},
             "weights": rng.normal(size=(4, 3)).tolist(), "bias": [0.5, -1, 0, 2]},
            {"type": "activation", "activation": {"name": "prelu", "alpha": [0.1, 0.2, 0.3, 0.4]}},
            {"type": "dense", "units": 2, "activation": "softmax",
             "weights": rng.normal(size=(2, 4)).tolist(), "bias": [0, 0]},
        ],
    }
    doc.update(over)
    return doc


def test_pack_then_load_gives_back_every_value():
    doc = _doc()
    blob = model_doc.pack(doc)
    meta, layers = modelfile.load(io.BytesIO(blob))
    assert meta == {"name": "t", "inputs": 3, "labels": ["a", "b"]}
    assert [(l.kind, l.activation, l.inputs, l.units) for l in layers] == [
        ("dense", "relu", 3, 4), ("activation", "prelu", 4, 4), ("dense", "softmax", 4, 2)]
    assert layers[0].params == (0.0, 6.0, 0.0)
    np.testing.assert_array_equal(np.asarray(layers[0].weights).reshape(4, 3),
                                  np.asarray(doc["layers"][0]["weights"], np.float32))
    np.testing.assert_array_equal(layers[1].alpha, np.float32([0.1, 0.2, 0.3, 0.4]))
    assert modelfile.checksum(blob) == __import__("zlib").crc32(blob[:-4])
    assert len(blob) == 12 + len(b'{"name": "t", "inputs": 3, "labels": ["a", "b"]}') + 3 * 18 + 4 * (12 + 4 + 4 + 8 + 2) + 4


def test_relu_without_max_value_stores_infinity():
    doc = _doc()
    doc["layers"][0]["activation"] = {"name": "relu"}
    _, layers = modelfile.load(io.BytesIO(model_doc.pack(doc)))
    assert layers[0].params[1] == float("inf")


def _damage(blob, offset, value):
    b = bytearray(blob)
    b[offset:offset + len(value)] = value
    return bytes(b)


BAD_FILES = {
    "bad magic": (lambda b: _damage(b, 0, b"ANNX"), "not an ANNE model file"),
    "newer version": (lambda b: _damage(b, 4, b"\x02"), "version 2"),
    "unknown number type": (lambda b: _damage(b, 5, b"\x02"), "number type 2"),
    "flipped weight bit": (lambda b: _damage(b, 120, bytes([b[120] ^ 4])), "checksum mismatch"),
    "truncated": (lambda b: b[:-9], "truncated"),
    "trailing bytes": (lambda b: b + b"\0", "after its checksum"),
    "empty": (lambda b: b"", "truncated"),
}


def _meta_len(blob):
    return struct.unpack_from("<H", blob, 10)[0]


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_damaged_files_are_refused_on_host_and_board(case, run_mpy, tmp_path):
    damage, message = BAD_FILES[case]
    blob = damage(model_doc.pack(_doc()))
    with pytest.raises(modelfile.ModelFileError, match=message):
        modelfile.load(io.BytesIO(blob))
    (tmp_path / "m.anne").write_bytes(blob)
    out = run_mpy("import anne\ntry:\n anne.load(%r)\nexcept ValueError as e:\n print('refused:', e)"
                  % str(tmp_path / "m.anne"))
    assert out.startswith("refused:") and message in out


def test_shape_and_activation_errors_name_the_layer():
    blob = bytearray(model_doc.pack(_doc()))
    first_layer = 12 + _meta_len(blob)
    bad_act = bytes(_damage(blob, first_layer + 1, b"\x63"))  # activation id 99
    with pytest.raises(modelfile.ModelFileError, match="layer 0: unknown activation number 99"):
        modelfile.load(io.BytesIO(bad_act))
    bad_shape = bytes(_damage(blob, first_layer + 2, struct.pack("<H", 5)))  # 5 inputs, file has 3
    with pytest.raises(modelfile.ModelFileError, match="layer 0: takes 5 inputs but the previous layer gives 3"):
        modelfile.load(io.BytesIO(bad_shape))


def test_non_finite_weights_are_refused_even_with_a_valid_checksum():
    layers = model_doc.to_layers(_doc())
    layers[0].weights[2] = float("nan")
    blob = modelfile.pack({"name": "t"}, layers)
    with pytest.raises(modelfile.ModelFileError, match="layer 0 holds a weight that is not a finite number"):
        modelfile.load(io.BytesIO(blob))


@pytest.mark.parametrize("change, message", [
    ({"format": "other"}, "not an ANNE model document"),
    ({"version": 9}, "document version 9"),
    ({"inputs": 0}, "positive whole number"),
    ({"layers": []}, "no layers"),
])
def test_document_errors_say_what_is_wrong(change, message):
    with pytest.raises(model_doc.ModelDocError, match=message):
        model_doc.pack(_doc(**change))


def test_document_layer_errors_name_the_layer_and_the_problem():
    doc = _doc()
    doc["layers"][2]["activation"] = "sparsemax"
    with pytest.raises(model_doc.ModelDocError, match="layer 2: unknown activation 'sparsemax'"):
        model_doc.pack(doc)
    doc = _doc()
    doc["layers"][0]["bias"] = [1, 2]
    with pytest.raises(model_doc.ModelDocError, match="layer 0 bias has 2 values; expected 4"):
        model_doc.pack(doc)
    doc = _doc()
    doc["layers"][0]["weights"][1][1] = float("inf")
    with pytest.raises(model_doc.ModelDocError, match="layer 0 weights holds NaN or infinite"):
        model_doc.pack(doc)
