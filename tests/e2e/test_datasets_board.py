"""The models of scikit-learn's data sets (models/datasets/) on the virtual Pico, evaluated on
their held-out rows through the path `anne-host upload` and `anne-host eval` take: the
packed model uploaded and made active, the held-out CSV read against the board's model
(features found by name), the rows streamed in pipelined batches, the accuracy counted
from the board's answers.

Float models: the board's accuracy is the framework's (accuracy.json) and the board decides
as the framework's own predict did on every held-out row. Int8 models: the board decides as
the host's int8 reference (anne_host.quantize.run_int8) on every row, to the bit."""

import json
from pathlib import Path

import numpy as np
import pytest

from anne_host import csvdata, datasets, evaluate, model_doc, quantize
from anne_host.client import Client

pytest.importorskip("sklearn", reason="the data sets come with scikit-learn: pip install -e '.[dev]'")

DIR = Path(__file__).resolve().parents[2] / "models" / "datasets"
ACC = json.loads((DIR / "accuracy.json").read_text())
MODELS = list(ACC["models"])


@pytest.fixture(scope="module")
def vboard(pico):
    """One connection to the module's virtual Pico for all eighteen evaluations."""
    with Client.open(pico.port) as client:
        yield client


def write_held_out(folder):
    """data set -> its held-out rows as a CSV file in ``folder``, written by anne_host.datasets."""
    files = {}
    for name in datasets.names():
        files[name] = folder / (name + "_test.csv")
        datasets.write_csv(name, files[name])
    return files


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    return write_held_out(tmp_path_factory.mktemp("datasets"))


def board_eval(board, doc, csv_path):
    """Upload ``doc`` (active) and evaluate it on ``csv_path`` as `anne-host eval` does."""
    board.upload(model_doc.pack(doc), doc["name"])
    model = board.model()
    assert model["name"] == doc["name"] and model["dtype"] == doc.get("dtype", "float32")
    samples = csvdata.load(csv_path, model["inputs"], model.get("features"), evaluate.label_names(model),
                           need_labels=True)
    assert samples.chosen == "names"  # the CSV's header is the document's feature names
    run = evaluate.stream(board, samples, model)
    assert run.error is None and run.complete, run.error
    return run, evaluate.summary(run)


def evaluated(board, held_out, model, document):
    """(record, document, run, summary, x, y, labels): ``model``'s ``document`` ("document" or
    "int8_document") evaluated on the board on its data set's held-out rows."""
    r = ACC["models"][model]
    doc = model_doc.read(DIR / r[document])
    run, summary = board_eval(board, doc, held_out[r["dataset"]])
    return (r, doc, run, summary) + tuple(datasets.load(r["dataset"])[i] for i in (0, 1, 3))


@pytest.mark.parametrize("model", MODELS)
def test_float_model_on_the_board_decides_as_its_framework(vboard, held_out, model):
    r, doc, run, summary, x, y, labels = evaluated(vboard, held_out, model, "document")
    framework = np.asarray(r["predictions"])
    wrong = np.flatnonzero(run.classes != framework)
    assert not wrong.size, "%s: the board decides otherwise than %s on held-out rows %s" % (
        model, r["training"]["framework"], wrong)
    assert summary["correct"] == r["correct"] and summary["samples"] == r["rows"] == len(y)
    assert summary["accuracy"] == pytest.approx(r["accuracy"], abs=1e-6)
    assert run.predicted() == [labels[k] for k in framework]
    # and its outputs are the host's float reference, to float32 rounding
    ref = quantize.run_float(doc, x)
    assert np.max(np.abs(run.outputs - ref) / np.maximum(1.0, np.abs(ref))) <= 1e-5


@pytest.mark.parametrize("model", MODELS)
def test_int8_model_on_the_board_decides_as_the_host_int8_reference(vboard, held_out, model):
    r, qdoc, run, summary, x, y, _ = evaluated(vboard, held_out, model, "int8_document")
    _, ref = quantize.run_int8(qdoc, x)
    host = quantize.decisions(ref, qdoc.get("threshold", 0.5))
    wrong = np.flatnonzero(run.classes != host)
    assert not wrong.size, "%s: the board decides otherwise than run_int8 on held-out rows %s" % (model, wrong)
    assert np.array_equal(run.outputs, ref)  # the same int8 levels, so the same float32 outputs
    assert summary["correct"] == r["anne_host"]["int8_correct"] == int(np.sum(host == y))
