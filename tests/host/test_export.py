"""The exporter: input scaling taken at export, and clear refusals naming the layer."""

import json

import numpy as np
import pytest

from anne_host import cli, export, model_doc
from anne_host.protocol import modelfile


def _forward(doc, x):
    # The document's network in numpy (linear and tanh layers are enough here).
    h = np.asarray(x, np.float64)
    for layer in model_doc.to_layers(doc):
        w = np.asarray(layer.weights, np.float64).reshape(layer.units, layer.inputs)
        h = h @ w.T + np.asarray(layer.bias)
        if layer.activation == "tanh":
            h = np.tanh(h)
    return h


def test_input_mean_and_std_fold_into_the_first_layer(keras):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="tanh"),
                              keras.layers.Dense(1)])
    mean, std = np.array([5.0, -2.0, 100.0]), np.array([0.5, 3.0, 20.0])
    raw = np.random.default_rng(0).normal(mean, std, (10, 3)).astype(np.float32)
    expected = model.predict((raw - mean) / std, verbose=0)
    doc = export.export_model(model, input_mean=mean, input_std=std)
    np.testing.assert_allclose(_forward(doc, raw), expected, atol=1e-5)
    assert doc["source"]["folded"][0].startswith("input scaling into")


def test_a_fitted_standard_scaler_is_read_with_joblib(keras, tmp_path):
    import joblib
    from sklearn.preprocessing import StandardScaler

    data = np.random.default_rng(1).normal(3, 2, (50, 3))
    joblib.dump(StandardScaler().fit(data), tmp_path / "scaler.joblib")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="tanh")])
    model.save(tmp_path / "m.keras")
    code = cli.main(["export", str(tmp_path / "m.keras"), "--scaler", str(tmp_path / "scaler.joblib"),
                     "--labels", "a,b", "-o", str(tmp_path / "m.json")])
    assert code == 0
    doc = model_doc.read(tmp_path / "m.json")
    x = data[:5].astype(np.float32)
    expected = model.predict(((x - data.mean(0)) / data.std(0)).astype(np.float32), verbose=0)
    np.testing.assert_allclose(_forward(doc, x), expected, atol=1e-5)
    assert doc["labels"] == ["a", "b"] and doc["name"] == "m"


def test_unsupported_layers_are_named(keras):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                              keras.layers.LayerNormalization(), keras.layers.Dense(1)])
    with pytest.raises(export.ExportError, match=r"LayerNormalization\) is not supported; supported layers: Dense"):
        export.export_model(model)


def test_unsupported_activation_is_named(keras):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="sparsemax")])
    with pytest.raises(export.ExportError, match=r"activation 'sparsemax' is not supported"):
        export.export_model(model)


def test_branching_functional_models_are_refused(keras):
    inp = keras.Input((4,))
    a, b = keras.layers.Dense(2)(inp), keras.layers.Dense(2)(inp)
    model = keras.Model(inp, keras.layers.Add()([a, b]))
    with pytest.raises(export.ExportError, match="side by side"):
        export.export_model(model)


def test_single_chain_functional_model_exports(keras):
    inp = keras.Input((4,))
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.Dense(3, activation="relu")(inp))
    doc = export.export_model(keras.Model(inp, out))
    assert [layer["units"] for layer in doc["layers"]] == [3, 2]


def test_export_command_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    assert cli.main(["export", str(tmp_path / "broken.keras")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("anne-host: ") and "cannot read as a Keras model" in err


def test_export_json_summary(keras, tmp_path, capsys):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dropout(0.5), keras.layers.Dense(1, activation="sigmoid")])
    model.save(tmp_path / "tiny.keras")
    assert cli.main(["--json", "export", str(tmp_path / "tiny.keras")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == {"output": str(tmp_path / "tiny.json"), "name": "tiny", "layers": 1, "params": 3,
                       "folded": []}
    blob = model_doc.pack(model_doc.read(tmp_path / "tiny.json"))
    assert modelfile.checksum(blob) != 0
