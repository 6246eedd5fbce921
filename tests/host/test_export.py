"""The exporter: input scaling taken at export, and clear refusals naming the layer."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from anne_host import cli, export, model_doc
from anne_host.protocol import modelfile

MODELS = Path(__file__).resolve().parents[2] / "models"


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
    # Named: Keras numbers unnamed layers by how many were made before in this process.
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dropout(0.5, name="dropout"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.save(tmp_path / "tiny.keras")
    assert cli.main(["--json", "export", str(tmp_path / "tiny.keras")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == {"output": str(tmp_path / "tiny.json"), "name": "tiny", "layers": 1, "params": 3,
                       "folded": [], "dropped": ["layer 'dropout' (Dropout)"]}
    blob = model_doc.pack(model_doc.read(tmp_path / "tiny.json"))
    assert modelfile.checksum(blob) != 0


@pytest.mark.parametrize("kw, message", [
    ({"labels": ["a", "b"]}, "--labels names 2 classes (a, b), but the model has 3 outputs, so it needs 3 labels"),
    ({"features": ["p", "q"]}, "--features names 2 inputs (p, q), but the model takes 4"),
])
def test_label_and_feature_counts_are_checked_at_export(keras, kw, message):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    with pytest.raises(export.ExportError) as info:
        export.export_model(model, **kw)
    assert message in str(info.value)


def test_one_sigmoid_output_takes_two_labels(keras):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    assert export.export_model(model, labels=["no", "yes"])["labels"] == ["no", "yes"]
    with pytest.raises(export.ExportError, match=r"1 output, so it needs 2 labels \(below, above the threshold\)"):
        export.export_model(model, labels=["yes"])


@pytest.mark.parametrize("edit, message", [
    ({"labels": ["versicolor"]}, '"labels" names 1 class (versicolor), but the model has 1 output'),
    ({"features": ["a", "b"]}, '"features" names 2 inputs (a, b), but the model takes 4'),
])
def test_a_document_with_the_wrong_counts_is_refused_when_read(tmp_path, edit, message):
    doc = model_doc.read(MODELS / "iris6.json")
    doc.update(edit)
    (tmp_path / "m.json").write_text(json.dumps(doc))
    with pytest.raises(model_doc.ModelDocError) as info:
        model_doc.read(tmp_path / "m.json")
    assert str(info.value).startswith(str(tmp_path / "m.json") + ": ") and message in str(info.value)


def test_a_model_file_with_the_wrong_counts_is_refused():
    doc = model_doc.read(MODELS / "iris3.json")
    doc["labels"] = ["a", "b"]
    blob = modelfile.pack(model_doc.meta(doc), model_doc.to_layers(model_doc.read(MODELS / "iris3.json")))
    with pytest.raises(model_doc.ModelDocError, match="m.anne: \"labels\" names 2 classes"):
        model_doc.file_meta(blob, "m.anne")


def test_the_export_command_names_dropped_layers_and_prints_no_tensorflow_log(tmp_path):
    import subprocess
    import sys

    script = Path(sys.executable).with_name("anne-host")
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}
    code = ("import keras; m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3), "
            "keras.layers.Dropout(0.2), keras.layers.Dense(1, activation='sigmoid')]); m.save(%r)"
            % str(tmp_path / "d.keras"))
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env, timeout=300)
    done = subprocess.run([str(script), "export", str(tmp_path / "d.keras"), "--labels", "no,yes"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0 and done.stderr == ""
    assert "\n  dropped layer 'dropout' (Dropout): it does nothing at inference" in done.stdout
