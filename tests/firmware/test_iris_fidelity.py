"""The committed IRIS nets: the board's engine against Keras' own predict on
every IRIS row, and the exported documents against a fresh export."""

from pathlib import Path

import numpy as np
import pytest

from anne_host import csvdata, export, model_doc

from .board_predict import assert_matches_keras, board_predict

MODELS = Path(__file__).resolve().parents[2] / "models"
NETS = ["iris6", "iris8", "iris3"]


@pytest.fixture(scope="module")
def iris():
    return csvdata.load(MODELS / "iris.csv", 4).x


@pytest.fixture(scope="module")
def keras_nets(keras):
    return {name: keras.models.load_model(MODELS / (name + ".keras"), compile=False) for name in NETS}


def test_board_matches_keras_predict_on_every_iris_row(run_mpy, tmp_path, iris, keras_nets):
    docs = {name: model_doc.read(MODELS / (name + ".json")) for name in NETS}
    extreme = np.float32([[0, 0, 0, 0], [1e4, -1e4, 1e4, -1e4], [1e30] * 4, [-1e30] * 4])
    x = np.vstack([iris, extreme])
    board = board_predict(run_mpy, tmp_path, {n: (docs[n], x) for n in NETS})
    for name in NETS:
        expected = keras_nets[name].predict(x, verbose=0)
        assert_matches_keras(board[name], expected, name)
        if expected.shape[1] == 1:
            assert np.array_equal(board[name][:, 0] > 0.5, expected[:, 0] > 0.5), name
        else:
            assert np.array_equal(board[name].argmax(1), expected.argmax(1)), name


@pytest.mark.parametrize("name", NETS)
def test_committed_documents_are_what_the_exporter_makes(name, keras_nets):
    committed = model_doc.read(MODELS / (name + ".json"))
    fresh = export.export_model(keras_nets[name], name=name, labels=committed["labels"],
                                features=committed["features"], source=committed["source"])
    assert fresh["layers"] == committed["layers"]


def test_legacy_h5_file_exports_the_same_network(keras):
    h5 = export.export_model(export.load_keras(MODELS / "iris6.h5"))
    keras_file = export.export_model(export.load_keras(MODELS / "iris6.keras"))
    assert h5["layers"] == keras_file["layers"]
