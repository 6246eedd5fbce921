"""The board's commands through pyserial, against the virtual Pico: upload, list,
select, infer, batch, timing, delete, persistence, and a way back to the REPL."""

import zlib
from pathlib import Path

import numpy as np
import pytest

from anne_host import model_doc
from anne_host.client import PROTOCOL, BoardError, Client
from anne_host.sim import VirtualPico


def _doc(name="tiny", units=3):
    rng = np.random.default_rng(len(name) + units)
    return {"format": "anne-model", "version": 1, "name": name, "inputs": 4,
            "labels": ["a", "b", "c"][:units] if units > 1 else ["no", "yes"],
            "layers": [
                {"type": "dense", "units": 5, "activation": "tanh",
                 "weights": rng.normal(size=(5, 4)).tolist(), "bias": rng.normal(size=5).tolist()},
                {"type": "dense", "units": units, "activation": "softmax" if units > 1 else "sigmoid",
                 "weights": rng.normal(size=(units, 5)).tolist(), "bias": [0.1] * units}]}


def _numpy_forward(doc, x):
    # The document's network in float64: what the board's float32 must approximate.
    h = np.asarray(x, np.float64)
    for layer in doc["layers"]:
        h = h @ np.asarray(layer["weights"]).T + layer["bias"]
        if layer["activation"] == "tanh":
            h = np.tanh(h)
        elif layer["activation"] == "sigmoid":
            h = 1 / (1 + np.exp(-h))
        else:
            e = np.exp(h - h.max(axis=1, keepdims=True))
            h = e / e.sum(axis=1, keepdims=True)
    return h


def test_hello_reports_the_board(board):
    info = board.info
    assert info["protocol"] == PROTOCOL and info["firmware"]
    assert "MicroPython" in info["micropython"]
    assert 0 < info["mem_free"] <= 245888 and info["flash_free"] > 0


def test_upload_list_infer_batch_delete(board):
    doc = _doc()
    blob = model_doc.pack(doc)
    reply = board.upload(blob, "tiny")
    assert reply["checksum"] == zlib.crc32(blob[:-4])
    assert {"name": "tiny", "size": len(blob), "dtype": "float32", "active": True,
            "foreign": False} in board.list_models()
    assert board.model()["labels"] == ["a", "b", "c"]

    x = np.random.default_rng(1).normal(size=(300, 4)).astype(np.float32)
    expected = _numpy_forward(doc, x)
    y, k, us = board.infer(x[0].tolist())
    np.testing.assert_allclose(y, expected[0], atol=1e-6)
    assert k == int(np.argmax(expected[0])) and us >= 0

    got = list(board.batch(x, 3))
    outputs = np.vstack([g[0] for g in got])
    np.testing.assert_allclose(outputs, expected, atol=1e-6)
    assert np.array_equal(np.concatenate([g[1] for g in got]), expected.argmax(axis=1))
    assert sum(len(g[2]) for g in got) == 300
    assert board.stats()["inferences"] >= 301

    board.delete("tiny")
    assert "tiny" not in [m["name"] for m in board.list_models()]
    with pytest.raises(BoardError, match="no active model"):
        board.infer(x[0].tolist())


def test_select_switches_between_stored_models(board):
    board.upload(model_doc.pack(_doc("three", 3)), "three")
    board.upload(model_doc.pack(_doc("binary", 1)), "binary")
    assert board.model()["name"] == "binary" and board.model()["outputs"] == 1
    model = board.select("three")
    assert model["name"] == "three" and model["outputs"] == 3
    assert len(board.infer([1, 2, 3, 4])[0]) == 3
    with pytest.raises(BoardError, match="no stored model named 'nothing'"):
        board.select("nothing")
    assert board.model()["name"] == "three"  # a failed select keeps the active model


def test_bench_times_every_layer_on_the_board(board):
    board.upload(model_doc.pack(_doc()), "tiny")
    result = board.bench(repeat=50)
    assert [l["units"] for l in result["layers"]] == [5, 3]
    # Whole microseconds, means rounded to nearest: a layer under half a µs is 0.
    assert all(type(l["us"]) is int and l["us"] >= 0 for l in result["layers"])
    assert type(result["us"]) is int and result["us"] > 0
    assert result["mem_alloc"] > 0 and result["mem_free"] > 0


def test_models_survive_a_restart_of_the_virtual_pico(tmp_path):
    blob = model_doc.pack(_doc())
    with VirtualPico(tmp_path) as vp:
        with Client.open(vp.port) as board:
            board.upload(blob, "kept")
    with VirtualPico(tmp_path) as vp:  # a new MicroPython process on the same flash
        with Client.open(vp.port) as board:
            assert board.info["active"] == "kept"
            assert board.info["checksum"] == zlib.crc32(blob[:-4])
            assert board.list_models()[0]["name"] == "kept"


def test_leaving_the_server_gives_a_working_repl(pico):
    with Client.open(pico.port) as board:
        board.exit()
        board.transport.write(b"print(6 * 7)\r")
        assert b"42" in board.transport.read_until(b"42", 5)
    with Client.open(pico.port) as board:  # and the host starts the server again
        assert board.hello()["protocol"] == PROTOCOL


def test_a_person_at_the_repl_loads_the_stored_model(pico):
    doc = model_doc.read(Path(__file__).resolve().parents[2] / "models" / "iris6.json")
    with Client.open(pico.port) as board:
        board.upload(model_doc.pack(doc), "iris6")
        board.exit()  # as Ctrl-C in Thonny would
        t = board.transport
        t.write(b"import anne\r")
        t.write(b"net = anne.load('iris6')\r")
        t.write(b"print('->', net.predict_class([5.9, 3.0, 5.1, 1.8]))\r")
        assert b"-> virginica" in t.read_until(b"-> virginica", 5)
        t.write(b"net.summary()\r")
        assert b"Total params: 26 " in t.read_until(b"bytes as float32", 5)


def test_an_int8_model_serves_the_same_commands_bit_for_bit(board):
    from anne_host import quantize

    rng = np.random.default_rng(8)
    doc = quantize.quantize(_doc("tiny8"), rng.normal(size=(300, 4)), name="tiny8")
    board.upload(model_doc.pack(doc), "tiny8")
    assert board.model()["dtype"] == "int8" and board.hello()["dtype"] == "int8"
    assert {"name": "tiny8", "dtype": "int8"}.items() <= board.list_models()[-1].items()
    x = np.vstack([rng.normal(size=(600, 4)), [[0, 0, 0, 0], [1e30, -1e30, np.inf, np.nan]]]).astype(np.float32)
    _, expected = quantize.run_int8(doc, x)
    y, classes, _ = board.infer(x[0])
    assert y == expected[0].tolist() and classes == int(expected[0].argmax())
    got = np.vstack([out for out, _, _ in board.batch(x, 3)])
    np.testing.assert_array_equal(got, expected)  # the batch path too, every bit
