"""Training over the wire against the virtual Pico (the real MicroPython running the
firmware): what a user checks. A net trained from random weights learns IRIS; the
model pulled back out computes what the board computes; bad data is refused before
any step; a reset, a killed host or a diverging run leaves the stored model as it was;
the session's heap is given back."""

import io
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from anne_host import csvdata, model_doc
from anne_host.client import BoardError, Client
from anne_host.protocol import modelfile

from .conftest import anne_host

MODELS = Path(__file__).resolve().parents[2] / "models"
IRIS = MODELS / "iris.csv"
LABELS = ["setosa", "versicolor", "virginica"]


def _iris():
    rows = csvdata.load(IRIS, 4, None, LABELS, need_labels=True)
    return rows.x, np.eye(3, dtype=np.float32)[[LABELS.index(v) for v in rows.y]]


def _board_outputs(board, x):
    return np.vstack([y for y, _, _ in board.batch(x, 3)])


def _forward(doc, x):
    # The pulled document's network in float64 (relu hidden, softmax out).
    h = np.asarray(x, np.float64)
    for layer in doc["layers"]:
        h = h @ np.asarray(layer["weights"], np.float64).T + np.asarray(layer["bias"], np.float64)
        if layer["activation"]["name"] == "relu":
            h = np.maximum(h, 0)
        else:
            e = np.exp(h - h.max(axis=1, keepdims=True))
            h = e / e.sum(axis=1, keepdims=True)
    return h


@pytest.fixture(scope="module")
def trained(pico):
    """iris3's shape trained on the board from seeded random weights, by anne-host train."""
    out = anne_host("--port", pico.port, "--json", "train", str(IRIS), "--model", "iris_board",
                    "--new", "4-8-3", "--activation", "relu", "--epochs", "60", "--batch", "8",
                    "--lr", "0.02", "--optimizer", "adam", "--seed", "1")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_iris_from_random_weights_reaches_95_percent_on_the_board(trained, anne):
    assert trained["saved"] and trained["model"] == "iris_board" and trained["active"] == "iris_board"
    history = trained["history"]
    assert [e["epoch"] for e in history] == list(range(1, 61))
    assert history[-1]["loss"] < history[0]["loss"] / 3
    assert all(e["board_us"] > 0 for e in history)
    assert trained["final"]["accuracy"] >= 0.95
    # The stored model, run by the board's inference engine (its fast kernel), agrees.
    evaluated = anne.json("eval", str(IRIS), "--model", "iris_board")
    assert evaluated["accuracy"] >= 0.95
    assert evaluated["accuracy"] == pytest.approx(trained["final"]["accuracy"], abs=2 / 150)


def test_each_epoch_is_one_line_with_loss_accuracy_and_board_time(pico, anne, tmp_path):
    code, out, err = anne("train", str(IRIS), "--model", "iris_lines", "--new", "4-6-3", "--epochs", "3",
                          "--validation", str(MODELS / "iris3_test.csv"), "--plot", str(tmp_path / "h.png"))
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split()[:2] for line in lines[:3]] == [["epoch", "1"], ["epoch", "2"], ["epoch", "3"]]
    for line in lines[:3]:
        assert "loss" in line and "accuracy" in line and "val_accuracy" in line and "ms virtual Pico" in line
    assert "saved as iris_lines" in out
    assert (tmp_path / "h.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pull_gives_back_the_file_and_a_document_that_evaluates_identically(trained, pico, anne, tmp_path):
    assert anne.json("pull", "iris_board", "-o", str(tmp_path / "m.anne"))["written"]
    assert anne.json("pull", "iris_board", "-o", str(tmp_path / "m.json"))["bytes"] > 0
    blob = (tmp_path / "m.anne").read_bytes()
    doc = model_doc.read(tmp_path / "m.json")
    assert doc["labels"] == LABELS and doc["inputs"] == 4
    # The document holds the board's weights to the bit, and its names.
    meta, layers = modelfile.load(io.BytesIO(blob))
    again_meta, again = modelfile.load(io.BytesIO(model_doc.pack(doc)))
    assert again_meta == dict(meta, name="iris_board", inputs=4)
    for a, b in zip(layers, again):
        assert (a.activation, a.params) == (b.activation, b.params)
        assert bytes(a.weights) == bytes(b.weights) and bytes(a.bias) == bytes(b.bias)
    x, _ = _iris()
    with Client.open(pico.port) as board:
        assert board.select("iris_board")["checksum"] == int.from_bytes(blob[-4:], "little")
        y = _board_outputs(board, x)
    np.testing.assert_allclose(_forward(doc, x), y, atol=1e-6)


def test_pull_keras_gives_the_boards_outputs(trained, pico, anne, keras, tmp_path):
    assert anne("pull", "iris_board", "--keras", str(tmp_path / "m.keras"))[0] == 0
    model = keras.models.load_model(tmp_path / "m.keras")
    x, _ = _iris()
    with Client.open(pico.port) as board:
        board.select("iris_board")
        y = _board_outputs(board, x)
    assert np.abs(model.predict(x, verbose=0) - y).max() <= 1e-5


def test_bad_rows_are_refused_before_any_step(trained, pico):
    x, t = _iris()
    with Client.open(pico.port) as board:
        board.train_begin("iris_board", 8, 0.5)
        before = board.train_eval(x, t)
        bad_x = x[:4].copy()
        bad_x[2, 1] = np.nan
        bad_t = t[:4].copy()
        bad_t[3, 0] = 2.0  # not a probability: no class of the model
        for xs, ts, says in ((bad_x, t[:4], "row 2, input 1 is not a finite number"),
                             (x[:3, :3], t[:3], "whole rows of 4"),
                             (x[:4], t[:4, :2], "3 float32 targets per row"),
                             (x[:4], bad_t, "row 3, target 0 is 2.0"),
                             (x[:9], t[:9], "at most 8 rows")):
            with pytest.raises(BoardError) as e:
                board.call("train_step", x=np.ascontiguousarray(xs).tobytes(),
                           y=np.ascontiguousarray(ts).tobytes())
            assert e.value.code == "bad_input" and says in str(e.value)
        assert board.train_eval(x, t)[:2] == before[:2]  # the same weights: no step was taken
        assert board.call("train_step", x=x[:8].tobytes(), y=t[:8].tobytes())["step"] == 1
        board.train_end(save=False)
        with pytest.raises(BoardError) as e:
            board.call("train_step", x=x[:8].tobytes(), y=t[:8].tobytes())
        assert e.value.code == "no_training"


def test_a_csv_with_nan_or_an_unknown_label_is_refused_before_the_board_trains(trained, pico, anne, tmp_path):
    blob = _pulled(pico, "iris_board")
    text = IRIS.read_text().splitlines()
    for broken, says in ((text[5].replace("3.6", "nan", 1), "nan"), (text[5].replace("setosa", "tulip"), "tulip")):
        bad = tmp_path / "bad.csv"
        bad.write_text("\n".join(text[:5] + [broken] + text[6:]) + "\n")
        code, out, err = anne("train", str(bad), "--model", "iris_board", "--epochs", "1")
        assert code == 3 and says in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert _pulled(pico, "iris_board") == blob


def _pulled(pico, name):
    with Client.open(pico.port) as board:
        return board.pull(name)


def test_a_model_the_board_cannot_train_is_refused_with_the_reason(pico, anne):
    assert anne("upload", str(MODELS / "iris3_int8.json"), "--name", "iris_int8", "--no-activate")[0] == 0
    code, out, err = anne("train", str(IRIS), "--model", "iris_int8", "--epochs", "1")
    assert code == 5 and "only float32 models can be trained" in err and "(cannot_train)" in err


def test_a_diverging_run_stops_says_so_and_saves_nothing(trained, pico, anne):
    blob = _pulled(pico, "iris_board")
    code, out, err = anne("train", str(IRIS), "--model", "iris_board", "--epochs", "20",
                          "--optimizer", "sgd", "--lr", "1e30")
    assert code == 5 and "diverged" in err and "nothing" in err
    assert _pulled(pico, "iris_board") == blob


def test_a_reset_mid_training_leaves_the_stored_model_as_it_was(trained, pico):
    blob = _pulled(pico, "iris_board")
    x, t = _iris()
    with Client.open(pico.port) as board:
        board.train_begin("iris_board", 8, 0.5, "sgd")
        for _ in board.train_epoch(x, t, 8):
            pass
        pico.reset()  # the button, mid-session
    time.sleep(0.5)
    with Client.open(pico.port) as board:
        assert board.info["active"] == "iris_board"  # the active model comes back from flash
        with pytest.raises(BoardError) as e:
            board.train_end()
        assert e.value.code == "no_training"
    assert _pulled(pico, "iris_board") == blob


def test_a_host_killed_mid_training_leaves_the_stored_model_and_the_next_host_works(trained, pico):
    blob = _pulled(pico, "iris_board")
    script = Path(sys.executable).with_name("anne-host")
    proc = subprocess.Popen([str(script), "--port", pico.port, "train", str(IRIS), "--model", "iris_board",
                             "--epochs", "100000", "--lr", "0.5"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("epoch 1 ")  # training on the board
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _pulled(pico, "iris_board") == blob
    with Client.open(pico.port) as board:  # the abandoned session ends without saving
        board.train_begin("iris_board", 8, 0.1)
        assert board.train_end(save=False)["saved"] is False


def test_the_session_gives_its_heap_back(trained, pico):
    x, t = _iris()
    with Client.open(pico.port) as board:
        board.select("iris_board")
        before = board.stats()["mem_alloc"]
        begun = board.train_begin("iris_board", 16, 0.01, "adam")
        during = board.stats()["mem_alloc"]
        for _ in board.train_epoch(x, t, 16):
            pass
        end = board.train_end(save=True)
        after = board.stats()["mem_alloc"]
    assert end["saved"] and end["active"] == "iris_board"
    assert begun["mem_free"] > 100_000 and during > before + 4000
    assert after <= before + 1024


def test_bad_fields_are_refused_by_the_board_with_their_codes(pico):
    with Client.open(pico.port) as board:
        for fields, code in (({"name": "nope_missing", "batch": 4, "lr": 0.1}, "no_model"),
                             ({"name": "x", "batch": 0, "lr": 0.1}, "bad_request"),
                             ({"name": "x", "batch": 4, "lr": -1.0}, "bad_request"),
                             ({"name": "x", "batch": 4, "lr": 0.1, "optimizer": "rmsprop"}, "bad_request"),
                             ({"name": "x", "batch": 4, "lr": 0.1, "sizes": [4, 3], "activations": ["relu6"]},
                              "cannot_train"),
                             ({"name": "../x", "batch": 4, "lr": 0.1}, "bad_name")):
            with pytest.raises(BoardError) as e:
                board.call("train_begin", **fields)
            assert e.value.code == code, fields
        for fields, code in (({"name": "nope_missing", "offset": 0}, "no_model"),
                             ({"name": "iris_board", "offset": -1}, "bad_request")):
            with pytest.raises(BoardError) as e:
                board.call("pull", **fields)
            assert e.value.code == code


def test_a_session_takes_the_heap_and_gives_the_active_model_back(tmp_path):
    from anne_host.sim import VirtualPico

    rng = np.random.default_rng(3)
    sizes = [16, 100, 100, 8]  # 12,608 float parameters: with a 16-64-64-8 session they would not both fit
    big = {"format": "anne-model", "version": 1, "name": "big", "inputs": 16, "layers": [
        {"type": "dense", "units": o, "activation": "relu",
         "weights": rng.normal(size=(o, i)).tolist(), "bias": [0.0] * o} for i, o in zip(sizes, sizes[1:])]}
    new = {"sizes": [16, 64, 64, 8], "activations": ["relu", "relu", "softmax"], "seed": 2}
    x = rng.normal(size=(16, 16)).astype(np.float32)
    t = np.eye(8, dtype=np.float32)[rng.integers(0, 8, 16)]
    with VirtualPico(tmp_path) as vp, Client.open(vp.port) as board:
        board.upload(model_doc.pack(big), "big")
        expected = board.infer(x[0].tolist())[0]
        free = board.hello()["mem_free"]
        begun = board.train_begin("wide", 16, 0.01, "sgd", momentum=0.9, new=new)
        assert begun["mem_free"] < free  # the session's arrays and code, in the room big left
        assert board.hello()["active"] is None  # dropped for the session
        with pytest.raises(BoardError) as e:
            board.infer(x[0].tolist())
        assert e.value.code == "no_model"
        list(board.train_epoch(x, t, 16))
        board.train_begin("wide", 16, 0.01, "sgd", momentum=0.9, new=new)  # discards the first session
        assert board.train_end(save=False)["active"] == "big"  # brought back, and nothing saved
        assert board.infer(x[0].tolist())[0] == expected
        assert "wide" not in {m["name"] for m in board.list_models()}
        with pytest.raises(BoardError) as e:  # refused once big was dropped: big comes back
            board.train_begin("wide", 16, 0.01, new={"sizes": [16, 8], "activations": ["relu6"]})
        assert e.value.code == "cannot_train" and board.hello()["active"] == "big"


def test_train_last_1_changes_only_the_last_layer_of_the_stored_model(pico, anne):
    # Fine-tuning: anne-host train --last 1 on a stored model; pulled back, its first
    # layer is the same bytes, its output layer learned.
    assert anne("upload", str(MODELS / "iris3.json"), "--name", "iris_ft", "--no-activate")[0] == 0
    _, before = modelfile.load(io.BytesIO(_pulled(pico, "iris_ft")))
    out = anne.json("train", str(IRIS), "--model", "iris_ft", "--last", "1", "--epochs", "3", "--batch", "8",
                    "--lr", "0.05", "--optimizer", "sgd", "--momentum", "0.9")
    assert out["saved"] and out["last"] == 1
    assert out["trained_params"] == before[1].units * (before[1].inputs + 1) < out["params"]
    _, after = modelfile.load(io.BytesIO(_pulled(pico, "iris_ft")))
    assert bytes(after[0].weights) == bytes(before[0].weights) and bytes(after[0].bias) == bytes(before[0].bias)
    assert bytes(after[1].weights) != bytes(before[1].weights)
    # Out of range: one line, exit code 2, nothing trained; the board says bad_request.
    blob = _pulled(pico, "iris_ft")
    for last, says in (("0", "--last is the number of layers to train"), ("3", "--last 3: iris_ft has 2 layers")):
        code, out, err = anne("train", str(IRIS), "--model", "iris_ft", "--last", last, "--epochs", "1")
        assert code == 2 and says in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    with Client.open(pico.port) as board:
        for last in (0, 3, True, "1"):
            with pytest.raises(BoardError) as e:
                board.call("train_begin", name="iris_ft", batch=4, lr=0.1, last=last)
            assert e.value.code == "bad_request" and "last" in e.value.message
    assert _pulled(pico, "iris_ft") == blob
