"""Data sets stored on the board (issue 15), against the virtual Pico: upload-data stores a
CSV file as a data set beside the models (never listed as one); train --on-board makes the
very steps streamed training makes on the same rows; net.fit at the REPL trains on the
stored set as the board does; a CSV that does not fit, a damaged file and an unknown name
get one-line errors, and the board keeps serving with nothing lost."""

import io
from pathlib import Path

import pytest

from anne_host.client import BoardError, Client
from anne_host.protocol import modelfile

MODELS = Path(__file__).resolve().parents[2] / "models"
TRAIN = MODELS / "iris3_train.csv"
LABELS = ["setosa", "versicolor", "virginica"]
OPTIONS = ["--new", "4-8-3", "--epochs", "4", "--batch", "8", "--lr", "0.01", "--optimizer", "adam", "--seed", "0"]


def _weights(pico, name):
    with Client.open(pico.port) as board:
        _, layers = modelfile.load(io.BytesIO(board.pull(name)))
    return [(bytes(l.weights), bytes(l.bias)) for l in layers]


@pytest.fixture(scope="module")
def stored(pico):
    """iris3's training rows stored on the board as the data set iris_tr."""
    from anne_host import cli

    assert cli.main(["--port", pico.port, "upload-data", str(TRAIN), "--name", "iris_tr"]) == 0
    return "iris_tr"


def test_upload_data_stores_a_data_set_that_is_not_a_model(stored, pico, anne):
    listed = anne.json("ls", "--data")
    entry = next(d for d in listed if d["name"] == "iris_tr")
    assert (entry["rows"], entry["inputs"], entry["outputs"], entry["targets"]) == (120, 4, 3, "classes")
    assert entry["labels"] == LABELS and entry["features"][0] == "sepal_length"
    assert "iris_tr" not in [m["name"] for m in anne.json("ls")]
    assert (pico.flash_dir / "data" / "iris_tr.data").stat().st_size == entry["size"]
    code, out, err = anne("ls", "--data")
    assert code == 0 and "iris_tr" in out and "120 rows" in out


def test_train_on_board_makes_the_steps_streamed_training_makes(stored, pico, anne):
    on_board = anne.json("train", "--on-board", stored, "--model", "ob", *OPTIONS, "--no-shuffle")
    streamed = anne.json("train", str(TRAIN), "--model", "st", *OPTIONS, "--no-shuffle")
    # The same rows, order and batches: the same losses, to the bit, and the same weights.
    assert [e["loss"] for e in on_board["history"]] == [e["loss"] for e in streamed["history"]]
    assert [e["accuracy"] for e in on_board["history"]] == [e["accuracy"] for e in streamed["history"]]
    assert on_board["final"]["accuracy"] == streamed["final"]["accuracy"]
    assert on_board["history"][-1]["loss"] < on_board["history"][0]["loss"]
    assert _weights(pico, "ob") == _weights(pico, "st")
    assert on_board["saved"] and on_board["active"] == "ob"
    assert all(e["board_us"] >= e["steps_us"] > 0 for e in on_board["history"])


def test_each_epoch_is_one_line_from_the_board(stored, anne):
    code, out, err = anne("train", "--on-board", stored, "--model", "ob_lines", *OPTIONS)
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split()[:2] for line in lines[:4]] == [["epoch", str(k)] for k in range(1, 5)]
    assert all("loss" in line and "accuracy" in line and "virtual Pico" in line for line in lines[:4])
    assert "saved as ob_lines" in out


def test_net_fit_at_the_repl_trains_on_the_stored_set_as_the_board_does(stored, pico, anne, run_mpy):
    # The board's own shuffled order (seed 0): train --on-board and net.fit(..., shuffle=0).
    wire = anne.json("train", "--on-board", stored, "--model", "ob_shuffled", *OPTIONS)
    code = ("import anne, gc, json\n"
            "X, Y = anne.data('iris_tr')\n"  # the code it needs, imported once
            "X = Y = None\n"
            "gc.collect(); before = gc.mem_alloc()\n"
            "X, Y = anne.data('iris_tr')\n"
            "gc.collect(); held = gc.mem_alloc() - before\n"
            "net = anne.new([4, 8, 3], ['relu', 'softmax'], seed=0)\n"
            "h = net.fit(X, Y, epochs=4, batch=8, lr=0.01, optimizer='adam', shuffle=0)\n"
            "h2 = anne.new([4, 8, 3], ['relu', 'softmax'], seed=0).fit('iris_tr', epochs=4, batch=8, lr=0.01,"
            " optimizer='adam', shuffle=0)\n"
            "print(json.dumps([h, h2, held, len(X), len(X.flat), len(Y.flat), Y.names, anne.data()]))")
    history, again, held, rows, n_x, n_y, names, listed = run_mpy.json(code, cwd=pico.flash_dir)
    assert [e["loss"] for e in history] == [e["loss"] for e in wire["history"]]
    assert [e["accuracy"] for e in history] == [e["accuracy"] for e in wire["history"]]
    assert again == history
    assert (rows, n_x, n_y, names) == (120, 480, 360, LABELS) and "iris_tr" in listed
    # The data set is held as its two float32 arrays (1,920 + 1,440 bytes) and a few small
    # objects (the two Rows): a copy of either array would not fit this bound.
    assert 4 * (480 + 360) <= held < 4 * (480 + 360) + 1024


def _csv(tmp_path, drop):
    lines = TRAIN.read_text().splitlines()
    out = tmp_path / "three.csv"
    out.write_text("\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != drop) for line in lines))
    return out


def test_a_csv_whose_widths_do_not_fit_the_model_is_refused_and_nothing_is_stored(stored, pico, anne, tmp_path):
    three = _csv(tmp_path, 0)  # sepal_length dropped: 3 inputs
    assert anne("train", str(TRAIN), "--model", "fit4", *OPTIONS)[0] == 0
    code, out, err = anne("upload-data", str(three), "--name", "three", "--model", "fit4")
    assert code != 0 and err.count("\n") == 1 and "sepal_length" in err
    assert "three" not in [d["name"] for d in anne.json("ls", "--data")]
    # Stored without a model, it has 3 inputs: the board refuses it for fit4 before any step.
    assert anne("upload-data", str(three), "--name", "three")[0] == 0
    before = _weights(pico, "fit4")
    code, out, err = anne("train", "--on-board", "three", "--model", "fit4", "--epochs", "2")
    assert code != 0 and err.count("\n") == 1
    assert "3 inputs" in err and "takes 4 inputs" in err and "(bad_input)" in err
    assert _weights(pico, "fit4") == before
    assert anne.json("info")["active"] == "fit4"  # the model dropped for the session is back


def test_a_damaged_file_on_the_board_is_refused_and_nothing_changes(stored, pico, anne, run_mpy):
    assert anne("upload-data", str(TRAIN), "--name", "damaged")[0] == 0
    path = pico.flash_dir / "data" / "damaged.data"
    blob = bytearray(path.read_bytes())
    blob[100] ^= 0x40  # a bit of a row flips on the flash
    path.write_bytes(bytes(blob))
    assert anne("train", str(TRAIN), "--model", "keep", *OPTIONS)[0] == 0
    before = _weights(pico, "keep")
    code, out, err = anne("train", "--on-board", "damaged", "--model", "keep", "--epochs", "2")
    assert code != 0 and err.count("\n") == 1 and "checksum does not match" in err and "(bad_data)" in err
    assert out == ""  # no epoch ran
    assert _weights(pico, "keep") == before
    with Client.open(pico.port) as board:
        assert board.hello()["active"] == "keep"
    out = run_mpy("import anne\nX, Y = anne.data('iris_tr')\nprint(len(X))\n"
                  "try:\n anne.data('damaged')\nexcept ValueError as e:\n print(e)\n", cwd=pico.flash_dir)
    assert out.splitlines() == ["120", "data set damaged: the data file's checksum does not match: it is damaged; "
                                       "upload it again"]


def test_an_unknown_name_gets_one_line_naming_those_stored(stored, anne, run_mpy, pico):
    code, out, err = anne("train", "--on-board", "nope", "--model", "x", "--epochs", "1")
    assert code != 0 and err.count("\n") == 1 and "no stored data set named 'nope'" in err and "iris_tr" in err
    code, out, err = anne("rm", "--data", "nope")
    assert code != 0 and "no stored data set named 'nope'" in err and "(no_data)" in err
    out = run_mpy("import anne\ntry:\n anne.data('nope')\nexcept OSError as e:\n print(e)\n", cwd=pico.flash_dir)
    assert "no stored data set named 'nope'; stored: " in out and "iris_tr" in out


def test_an_interrupted_or_wrong_upload_leaves_the_stored_set_as_it_was(stored, pico, anne):
    path = pico.flash_dir / "data" / "iris_tr.data"
    blob = path.read_bytes()
    with Client.open(pico.port) as board:
        board.call("data_begin", name="iris_tr", size=len(blob), checksum=0x12345678)
        board.call("data_chunk", offset=0, data=b"\x00" * 1024)
        with pytest.raises(BoardError) as e:
            board.call("data_end")
        assert e.value.code == "incomplete"
        with pytest.raises(BoardError) as e:
            board.data_upload(blob[:-4] + b"\x00\x00\x00\x00", "iris_tr")
        assert e.value.code == "bad_data"
        board.call("data_begin", name="iris_tr", size=len(blob), checksum=1)
        board.call("data_chunk", offset=0, data=blob[:2048])
        pico.reset()  # the power goes mid-upload
    with Client.open(pico.port) as board:
        with pytest.raises(BoardError) as e:
            board.call("data_end")
        assert e.value.code == "no_upload"
        assert [d["rows"] for d in board.data_list() if d["name"] == "iris_tr"] == [120]
    assert path.read_bytes() == blob


def test_rm_data_deletes_only_the_data_set(stored, anne):
    assert anne("upload-data", str(TRAIN), "--name", "gone")[0] == 0
    models = anne.json("ls")
    assert anne.json("rm", "--data", "gone") == {"deleted": "gone"}
    assert "gone" not in [d["name"] for d in anne.json("ls", "--data")]
    assert anne.json("ls") == models
    assert "iris_tr" in [d["name"] for d in anne.json("ls", "--data")]
