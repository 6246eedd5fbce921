"""The models of scikit-learn's data sets (models/datasets/, made by tools/train_datasets.py)
on the host: the split is the one they were tested on, ANNE's float reference decides as
each framework's own predict did on every held-out row, and the int8 twins are what the
quantizer makes of them, with the accuracy they really have."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from anne_host import csvdata, datasets, model_doc, quantize
from anne_host.errors import AnneError

DIR = Path(__file__).resolve().parents[2] / "models" / "datasets"
ACC = json.loads((DIR / "accuracy.json").read_text())
MODELS = list(ACC["models"])
NAMES = ("digits", "wine", "breast_cancer")


@pytest.fixture(autouse=True)
def _sklearn(request):
    if request.node.name != "test_without_scikit_learn_one_line_names_the_extra":
        pytest.importorskip("sklearn", reason="the data sets come with scikit-learn: pip install -e '.[dev]'")


def docs(model):
    r = ACC["models"][model]
    return model_doc.read(DIR / r["document"]), model_doc.read(DIR / r["int8_document"])


def split_of(model):
    return datasets.split(ACC["models"][model]["dataset"])


def standardisation(x):
    # The training script's rule (StandardScaler's): population std, 1 for a constant feature.
    x = np.asarray(x, np.float64)
    std = x.std(axis=0)
    return x.mean(axis=0), np.where(std == 0, 1.0, std)


def test_nine_models_three_per_data_set():
    assert datasets.names() == NAMES
    assert list(ACC["datasets"]) == list(NAMES)
    assert MODELS == ["%s_%s" % (n, fw) for n in NAMES for fw in ("keras", "torch", "sklearn")]
    for model in MODELS:
        r = ACC["models"][model]
        assert (DIR / r["document"]).is_file() and (DIR / r["int8_document"]).is_file(), model


@pytest.mark.parametrize("name", NAMES)
def test_the_split_is_the_one_the_models_were_tested_on(name):
    rec = ACC["datasets"][name]
    x, y, features, labels = datasets.load(name)
    assert x.dtype == np.float32 and x.shape == (rec["test_rows"], rec["inputs"])
    assert y.dtype == np.int64 and y.shape == (rec["test_rows"],)
    assert datasets.fingerprint(y) == rec["y_test_sha256"]
    assert datasets.fingerprint(x) == rec["x_test_sha256"]
    assert labels == rec["labels"] and len(features) == rec["inputs"]
    s = datasets.split(name)
    assert s.test_rows.tolist() == rec["test_row_numbers"]
    # training and held-out rows: disjoint, all of the data set, stratified 75/25
    assert sorted(s.train_rows.tolist() + s.test_rows.tolist()) == list(range(rec["rows"]))
    assert len(s.y_train) == rec["train_rows"]
    total = np.bincount(np.concatenate([s.y_train, s.y_test]))
    assert np.all(np.abs(np.bincount(s.y_test) - 0.25 * total) <= 1)
    # features as the model documents name them: CSV-safe identifiers, none lost
    assert all(f and f.replace("_", "").isalnum() and f == f.lower() for f in features)
    assert len(set(features)) == len(features)


def test_split_sizes_and_names_are_the_data_sets():
    # Independent of accuracy.json: the numbers scikit-learn's documentation gives.
    sizes = {"digits": (1797, 64, 10), "wine": (178, 13, 3), "breast_cancer": (569, 30, 2)}
    for name, (rows, inputs, classes) in sizes.items():
        s = datasets.split(name)
        assert len(s.y_train) + len(s.y_test) == rows and len(s.y_test) == int(np.ceil(rows * 0.25))
        assert len(s.features) == inputs and len(s.labels) == classes
    assert datasets.split("wine").features[11] == "od280_od315_of_diluted_wines"
    assert datasets.split("breast_cancer").features[0] == "mean_radius"
    assert datasets.split("breast_cancer").labels == ("malignant", "benign")
    with pytest.raises(ValueError):
        datasets.split("wine").x_test[0, 0] = 1.0  # read-only: nobody changes the split by accident


def test_unknown_data_set_names_the_choices():
    with pytest.raises(AnneError, match="digits, wine, breast_cancer"):
        datasets.load("iris")


def test_without_scikit_learn_one_line_names_the_extra(monkeypatch):
    for module in ("sklearn", "sklearn.datasets", "sklearn.model_selection"):
        monkeypatch.setitem(sys.modules, module, None)  # import raises ImportError
    with pytest.raises(AnneError) as e:
        datasets.load("wine")
    assert 'pip install "anne-host[sklearn]"' in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("model", MODELS)
def test_documents_name_the_data_sets_features_and_labels(model):
    doc, qdoc = docs(model)
    s = split_of(model)
    r = ACC["models"][model]
    for d, name in ((doc, model), (qdoc, model + "_int8")):
        assert d["name"] == name
        assert d["features"] == list(s.features) and d["labels"] == list(s.labels)
        assert d["inputs"] == len(s.features)
    assert qdoc["dtype"] == "int8" and "dtype" not in doc
    widths = [layer["units"] for layer in doc["layers"] if layer["type"] == "dense"]
    assert r["shape"].startswith("%d-%d" % (len(s.features), widths[0]))
    assert widths[-1] in (1, len(s.labels)) and len(widths) == 2


@pytest.mark.parametrize("name", NAMES)
def test_write_csv_is_read_back_by_name_as_eval_reads_it(name, tmp_path):
    x, y, features, labels = datasets.load(name)
    path = tmp_path / (name + ".csv")
    assert datasets.write_csv(name, path) == len(y)
    for fw in ("keras", "torch", "sklearn"):
        doc, _ = docs("%s_%s" % (name, fw))
        samples = csvdata.load(path, doc["inputs"], doc["features"], doc["labels"], need_labels=True)
        assert samples.chosen == "names" and samples.label_column == datasets.LABEL_COLUMN
        assert np.array_equal(samples.x, x)  # every value exactly the float32 the model saw
        assert samples.y == [labels[k] for k in y]
    train = tmp_path / "train.csv"
    assert datasets.write_csv(name, train, part="train") == len(datasets.split(name).y_train)


@pytest.mark.parametrize("model", MODELS)
def test_float_reference_decides_as_the_framework_on_every_held_out_row(model):
    doc, _ = docs(model)
    r = ACC["models"][model]
    x, y, _, _ = datasets.load(r["dataset"])
    framework = np.asarray(r["predictions"])
    assert framework.shape == y.shape
    assert r["correct"] == int(np.sum(framework == y))
    assert r["accuracy"] == pytest.approx(np.mean(framework == y), abs=1e-6)
    anne = quantize.decisions(quantize.run_float(doc, x), doc.get("threshold", 0.5))
    wrong = np.flatnonzero(anne != framework)
    assert not wrong.size, "%s: ANNE's float reference decides otherwise on held-out rows %s" % (model, wrong)


@pytest.mark.parametrize("model", MODELS)
def test_int8_twin_is_the_quantization_calibrated_on_the_training_rows(model):
    doc, qdoc = docs(model)
    s = split_of(model)
    calibration = qdoc["source"]["quantized"]["calibration"]
    assert "%d training rows" % len(s.y_train) in calibration
    again = quantize.quantize(doc, s.x_train, calibration=calibration, name=model + "_int8")
    assert json.loads(json.dumps(again)) == qdoc


def int8_accuracy(model):
    doc, qdoc = docs(model)
    x, y, _, _ = datasets.load(ACC["models"][model]["dataset"])
    q = quantize.decisions(quantize.run_int8(qdoc, x)[1], doc.get("threshold", 0.5))
    return float(np.mean(q == y)), int(np.sum(q == y))


@pytest.mark.parametrize("model", MODELS)
def test_int8_accuracy_is_the_recorded_one_within_a_point_of_float(model):
    # Raw inputs from 0.0001 to 4,254 (breast cancer): each input's own rule gives every
    # input the int8 range; with one input scale for all, the twins lost 4 to 60 points
    # (models/datasets/README.md).
    accuracy, correct = int8_accuracy(model)
    a = ACC["models"][model]["anne_host"]
    assert correct == a["int8_correct"] and accuracy == pytest.approx(a["int8_accuracy"], abs=1e-6)
    assert accuracy >= ACC["models"][model]["accuracy"] - 0.01


@pytest.mark.parametrize("model", [m for m in MODELS if m.endswith("_torch")])
def test_onnx_files_are_the_torch_models_and_give_the_documents(model):
    """The shipped ONNX files hold what torch predicted (run with onnxruntime, no torch
    needed), and the ONNX importer still makes the shipped documents from them."""
    ort = pytest.importorskip("onnxruntime", reason="needs onnxruntime: pip install -e '.[dev]'")
    pytest.importorskip("onnx", reason="needs onnx: pip install -e '.[dev]'")
    from anne_host import importers

    r = ACC["models"][model]
    s = split_of(model)
    mean, std = standardisation(s.x_train)
    session = ort.InferenceSession(str(DIR / r["source_file"]), providers=["CPUExecutionProvider"])
    p = session.run(None, {"x": ((s.x_test - mean) / std).astype(np.float32)})[0]
    assert np.array_equal(p.argmax(axis=1), np.asarray(r["predictions"]))
    doc = importers.load_document(DIR / r["source_file"], name=model, labels=list(s.labels),
                                  features=list(s.features), input_mean=mean, input_std=std)
    assert json.loads(json.dumps(doc)) == docs(model)[0]
