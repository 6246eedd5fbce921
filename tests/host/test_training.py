"""The host's side of training and pulling, without a board: the --new shape, the
classes and targets made from a CSV file, the document and Keras model made from a
pulled model file, and the history plot."""

from pathlib import Path

import numpy as np
import pytest

from anne_host import model_doc, pull, report, training
from anne_host.csvdata import Samples
from anne_host.errors import AnneError, UsageError

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_new_gives_the_hidden_activation_and_an_output_that_fits_the_classes():
    assert training.new_net("4-8-3", "tanh", 5) == {"sizes": [4, 8, 3], "activations": ["tanh", "softmax"],
                                                    "seed": 5}
    assert training.new_net("30-16-8-1", "relu", 0)["activations"] == ["relu", "relu", "sigmoid"]
    for bad in ("4", "4-x-3", "4-0-3", "", "4--3"):
        with pytest.raises(UsageError, match="such as 4-8-3"):
            training.new_net(bad, "relu", 0)


def test_classes_are_numbers_by_value_or_names_in_order_and_must_match_the_outputs():
    assert training.classes_of(["10", "2", "1", "2"]) == ["1", "2", "10"]
    assert training.classes_of(["b", "a", "c"]) == ["a", "b", "c"]
    training.check_classes({"sizes": [4, 1]}, ["no", "yes"], "f.csv")  # one sigmoid unit: two classes
    with pytest.raises(UsageError, match="f.csv holds 3 classes .* ends in 3 outputs, not 2"):
        training.check_classes({"sizes": [4, 8, 2]}, ["a", "b", "c"], "f.csv")


def test_targets_are_one_hot_or_one_probability():
    rows = Samples(x=np.zeros((3, 2), np.float32), y=["b", "a", "b"], lines=[2, 3, 4], path="f.csv")
    np.testing.assert_array_equal(training.targets(rows, ["a", "b"], 2), [[0, 1], [1, 0], [0, 1]])
    np.testing.assert_array_equal(training.targets(rows, ["a", "b"], 1), [[1], [0], [1]])


def test_a_nan_in_the_training_file_is_refused_with_its_line_and_column(tmp_path):
    f = tmp_path / "d.csv"
    f.write_text("a,b,label\n1,2,x\n3,nan,y\n")
    with pytest.raises(AnneError, match=r"d.csv:3: column b holds nan: training needs finite numbers"):
        training.load(f, 2)


def test_a_pulled_file_becomes_the_document_it_was_packed_from():
    doc = model_doc.read(MODELS / "iris3.json")
    back = pull.document(model_doc.pack(doc), "iris3")
    assert back["labels"] == doc["labels"] and back["inputs"] == doc["inputs"]
    for a, b in zip(model_doc.to_layers(doc), model_doc.to_layers(back)):
        assert (a.kind, a.activation, a.params) == (b.kind, b.activation, b.params)
        np.testing.assert_array_equal(a.weights, b.weights)
        np.testing.assert_array_equal(a.bias, b.bias)


def test_an_int8_model_is_pulled_as_its_file_only(tmp_path):
    blob = model_doc.pack(model_doc.read(MODELS / "iris3_int8.json"))
    with pytest.raises(AnneError, match="int8 model: pull writes its file as it is"):
        pull.document(blob, "q")
    assert pull.write(blob, "q", tmp_path / "q.anne") == [str(tmp_path / "q.anne")]
    assert (tmp_path / "q.anne").read_bytes() == blob


def test_a_damaged_file_is_refused_before_anything_is_written(tmp_path):
    blob = bytearray(model_doc.pack(model_doc.read(MODELS / "iris3.json")))
    blob[-10] ^= 1  # a weight's bit
    with pytest.raises(AnneError, match="checksum mismatch: the file is damaged"):
        pull.write(bytes(blob), "iris3", tmp_path / "x.anne")
    assert not (tmp_path / "x.anne").exists()


def test_the_keras_model_computes_the_document_with_a_relu_that_has_parameters(keras):
    from anne_host.to_keras import keras_model

    rng = np.random.default_rng(2)
    doc = {"format": "anne-model", "version": 1, "name": "k", "inputs": 3, "layers": [
        {"type": "dense", "units": 4, "activation": {"name": "relu", "negative_slope": 0.1, "max_value": 2.0,
                                                      "threshold": 0.0},
         "weights": rng.normal(size=(4, 3)).tolist(), "bias": rng.normal(size=4).tolist()},
        {"type": "dense", "units": 2, "activation": "softmax",
         "weights": rng.normal(size=(2, 4)).tolist(), "bias": [0.0, 0.1]}]}
    x = rng.normal(size=(20, 3)).astype(np.float32)
    h = x @ np.float32(doc["layers"][0]["weights"]).T + np.float32(doc["layers"][0]["bias"])
    h = np.minimum(np.where(h > 0, h, 0.1 * h), 2.0)
    z = h @ np.float32(doc["layers"][1]["weights"]).T + np.float32(doc["layers"][1]["bias"])
    want = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(keras_model(doc).predict(x, verbose=0), want, atol=1e-6)


def test_the_history_plot_is_a_png(tmp_path):
    history = [{"epoch": e, "loss": 1 / e, "accuracy": 1 - 1 / (e + 1), "val_loss": 1.1 / e,
                "val_accuracy": 0.5} for e in range(1, 6)]
    report.plot_history(history, tmp_path / "h.png", "t")
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"


def test_last_out_of_range_is_a_usage_error_before_a_board_is_opened(capsys, tmp_path):
    # --last below 1, or beyond the layers of a --new net: one line, exit code 2, and
    # no board is needed to say so (the port does not exist).
    from anne_host import cli

    data = tmp_path / "d.csv"
    data.write_text("a,b,label\n1,2,x\n3,4,y\n")
    port = str(tmp_path / "no-such-port")
    for extra, says in ((["--last", "0"], "--last is the number of layers to train, counted from the output"),
                        (["--last", "-2"], "1 or more; got -2"),
                        (["--new", "2-4-2", "--last", "3"], "--last 3: a 2-4-2 net has 2 layers; train the last 1 to 2")):
        code = cli.main(["--port", port, "train", str(data), "--model", "m", *extra])
        err = capsys.readouterr().err
        assert code == 2 and says in err, err
        assert len(err.strip().splitlines()) == 1
