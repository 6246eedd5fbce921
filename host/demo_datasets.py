"""The demo's second part: the models of scikit-learn's data sets (models/datasets/), float
and int8, evaluated on the board on their held-out rows as `anne-host eval` does, beside
the accuracy the training framework itself had on the same rows.

The rows come from scikit-learn (they are not shipped); without it this part is skipped
and the demo says how to get it."""

import importlib.util
import json
import tempfile
from pathlib import Path

import numpy as np

from . import board_files, csvdata, evaluate, model_doc
from .errors import AnneError

EXTRA = 'pip install "anne-host[sklearn]"'


def folder():
    return board_files._package_dir("anne_host.models") / "datasets"


def available():
    """None when scikit-learn is here, else why this part is skipped."""
    if importlib.util.find_spec("sklearn") is None:
        return "the scikit-learn data sets need scikit-learn: %s" % EXTRA
    return None


def model_names():
    """The names the demo stores these models under (replacing models of those names)."""
    records = _records()
    return [name for r in records.values() for name in (r["document"][:-5], r["int8_document"][:-5])]


def _records():
    return json.loads((folder() / "accuracy.json").read_text())["models"]


def run(board, progress=None):
    """One entry per model: the framework's held-out accuracy, and the board's float and
    int8 evaluations of the same rows (summaries, as evaluate.summary gives them), with
    how many of the board's float decisions are the framework's own."""
    from . import datasets

    entries = []
    with tempfile.TemporaryDirectory() as tmp:
        held_out = {}
        for name in datasets.names():
            held_out[name] = Path(tmp) / (name + "_test.csv")
            datasets.write_csv(name, held_out[name])
        for model, r in _records().items():
            entry = {"model": model, "dataset": r["dataset"], "framework": r["framework"],
                     "shape": r["shape"], "framework_accuracy": r["accuracy"],
                     "framework_correct": r["correct"]}
            for key, document in (("float32", r["document"]), ("int8", r["int8_document"])):
                run_ = _evaluate(board, folder() / document, held_out[r["dataset"]], progress)
                entry[key] = evaluate.summary(run_)
                entry[key]["file"] = "%s held-out rows (scikit-learn)" % r["dataset"]  # not the temporary CSV
                if key == "float32":
                    entry["decisions_as_framework"] = int(np.sum(run_.classes == np.asarray(r["predictions"])))
            entries.append(entry)
    return entries


def _evaluate(board, path, csv_path, progress):
    doc = model_doc.read(path)
    board.upload(model_doc.pack(doc), doc["name"])
    model = board.model()
    samples = csvdata.load(csv_path, model["inputs"], model.get("features"),
                           evaluate.label_names(model), need_labels=True)
    r = evaluate.stream(board, samples, model, progress)
    if r.error:
        raise r.error
    if not r.complete:
        raise AnneError("%s: the evaluation stopped after %d rows" % (doc["name"], r.done))
    return r


def table(entries):
    """The printed table: one row per model."""
    row = "  %-22s %-22s %-19s %-14s %-23s %s"
    lines = ["scikit-learn's data sets, held-out rows (models/datasets/README.md)",
             row % ("model", "layers", "framework", "board float32", "decisions as framework", "board int8")]
    for e in entries:
        f, q = e["float32"], e["int8"]
        lines.append(row % (e["model"], e["shape"],
                            "%.1f %% (%d/%d)" % (100 * e["framework_accuracy"], e["framework_correct"], f["samples"]),
                            "%.1f %%" % (100 * f["accuracy"]),
                            "%d/%d" % (e["decisions_as_framework"], f["samples"]),
                            "%.1f %%" % (100 * q["accuracy"])))
    return "\n".join(lines)
