#!/usr/bin/env python3
"""Train ANNE's models of the data sets that ship with scikit-learn, deterministically.

Three data sets no one in the project wrote (``anne_host.datasets``: digits, wine, breast
cancer), each split once (the split is made in host/datasets.py, nowhere else), and for
each three small dense classifiers, one per framework:

  Keras        Sequential: Normalization -> Dense relu -> Dense softmax (sigmoid for the
               binary data set); the Normalization layer holds the training rows' mean and
               variance and is folded into the first Dense layer at export.
  PyTorch      nn.Sequential: Linear -> ReLU -> Linear -> Softmax, trained on standardised
               rows; written with torch.onnx.export (the TorchScript exporter, dynamo=False,
               opset 20) and converted with ANNE's ONNX importer, the scaling given as the
               exporter's input mean and std (``anne-host export --input-mean/--input-std``).
  scikit-learn Pipeline(StandardScaler, MLPClassifier relu), saved with skops and converted
               with ANNE's scikit-learn importer, which folds the scaler.

Hidden widths: digits 64-32-10, wine 13-16-3, breast cancer 30-16-1 (Keras and
scikit-learn: one sigmoid output, two labels) and 30-16-2 (PyTorch: softmax). Every model
takes raw features (pixel intensities 0..16, wine chemistry, cell measurements): the
scaling is inside the model. A feature that is constant on the training rows (three digits
pixels) gets scale 1, as StandardScaler does, in all three frameworks: a Keras
Normalization layer *adapted* on those rows would divide by 1e-7 there, and the folded
first-layer weights of 1e7 would leave nothing of the other weights in int8.

Written into OUT (default models/datasets/), per model NAME = <data set>_<framework>:
  NAME.onnx                             the PyTorch models as torch.onnx.export wrote them
                                        (the .keras and .skops files are made in a temporary
                                        folder and exported from there, not kept)
  NAME.json                             the ANNE model document (float32)
  NAME_int8.json                        its int8 twin (anne_host.quantize), calibrated on the
                                        data set's training rows
  accuracy.json                         per data set the split's fingerprint; per model the
                                        framework's own held-out accuracy and its predicted
                                        class (an index into the labels) for every held-out
                                        row, from the framework's own predict, so that tests
                                        compare decisions without the framework installed;
                                        and what ANNE's host references make of the documents

Fixed seeds throughout (Keras: keras.utils.set_random_seed and op determinism; PyTorch:
torch.manual_seed, one thread, deterministic algorithms; scikit-learn: random_state): two
runs give byte-identical documents, ONNX files and accuracy.json (measured: Keras 3.15,
TensorFlow 2.21, torch 2.13 CPU, scikit-learn 1.9, about 40 s on 2 cores). Needs the dev
extra and torch (a CPU-only build is enough):

    .venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
    .venv/bin/python tools/train_datasets.py      # options: --out DIR, --only digits,wine

It prints a table of the results at the end: the framework's held-out accuracy, ANNE's
float reference (anne_host.quantize.run_float) and int8 reference (run_int8) on the same rows.
The int8 twins lose much of it on wine and breast cancer, whose raw inputs span very
different ranges: models/datasets/README.md says why.
"""

import argparse
import json
import os
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import numpy as np

from anne_host import datasets, export, importers, model_doc, quantize

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "models" / "datasets"
SEED = 0
OPSET = 20
FRAMEWORKS = ("keras", "torch", "sklearn")

# Per data set: the hidden layer's width and how long each framework trains. Set once, small
# enough for a Pico, and not tuned on the held-out rows.
SETTINGS = {
    "digits": {"hidden": 32, "epochs": 40, "batch": 32, "lr": 0.003, "sk_iter": 300},
    "wine": {"hidden": 16, "epochs": 100, "batch": 16, "lr": 0.003, "sk_iter": 800},
    "breast_cancer": {"hidden": 16, "epochs": 100, "batch": 16, "lr": 0.003, "sk_iter": 800},
}


def standardisation(x):
    """Mean and spread of the training rows as StandardScaler takes them (population
    std; a constant feature gets spread 1), in float64."""
    x = np.asarray(x, np.float64)
    mean, std = x.mean(axis=0), x.std(axis=0)
    return mean, np.where(std == 0, 1.0, std)


def binary(s):
    return len(s.labels) == 2


# -- the three frameworks -----------------------------------------------------

def train_keras(s, cfg, path):
    """Train, save as ``path`` (.keras); returns (framework's held-out classes, model
    document exported from the saved file, what was done)."""
    import keras
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # predict's retracing notices, one model after another
    keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    mean, std = standardisation(s.x_train)
    one = binary(s)
    model = keras.Sequential([
        keras.Input(shape=(len(s.features),), name="raw"),
        keras.layers.Normalization(mean=mean, variance=std ** 2, name="standardise"),
        keras.layers.Dense(cfg["hidden"], activation="relu", name="hidden"),
        keras.layers.Dense(1 if one else len(s.labels), activation="sigmoid" if one else "softmax",
                           name="out"),
    ], name=path.stem)
    loss = "binary_crossentropy" if one else "sparse_categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=cfg["lr"]), loss=loss)
    hist = model.fit(s.x_train, s.y_train, epochs=cfg["epochs"], batch_size=cfg["batch"], shuffle=True,
                     verbose=0)
    p = np.asarray(model.predict(s.x_test, verbose=0))
    classes = (p[:, 0] > 0.5).astype(np.int64) if one else p.argmax(axis=1)
    model.save(path)
    doc = export.export_model(export.load_keras(path), name=path.stem, labels=s.labels, features=s.features,
                              source={"file": path.name})
    how = {"framework": "keras", "version": keras.__version__, "backend": "tensorflow " + tf.__version__,
           "optimizer": "adam", "learning_rate": cfg["lr"], "loss": loss, "epochs": cfg["epochs"],
           "batch_size": cfg["batch"], "final_train_loss": round(float(hist.history["loss"][-1]), 6),
           "scaling": "keras.layers.Normalization(mean, variance) of the training rows, folded at export",
           "decision": "argmax of predict" if not one else "predict > 0.5 -> second label"}
    return classes, doc, how


def train_torch(s, cfg, path):
    """Train on standardised rows, export to ONNX at ``path``, convert with the ONNX
    importer, the standardisation given as input mean and std."""
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    mean, std = standardisation(s.x_train)
    scale = lambda x: torch.from_numpy(((np.asarray(x, np.float64) - mean) / std).astype(np.float32))
    n_out = len(s.labels)  # the binary data set too: two softmax outputs
    net = nn.Sequential(nn.Linear(len(s.features), cfg["hidden"]), nn.ReLU(), nn.Linear(cfg["hidden"], n_out))
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    lossf = nn.CrossEntropyLoss()
    xt, yt = scale(s.x_train), torch.from_numpy(np.array(s.y_train, np.int64))  # a copy: torch wants writable arrays
    g = torch.Generator().manual_seed(SEED)
    for _ in range(cfg["epochs"]):
        net.train()
        order = torch.randperm(len(yt), generator=g)
        for i in range(0, len(yt), cfg["batch"]):
            b = order[i:i + cfg["batch"]]
            opt.zero_grad()
            loss = lossf(net(xt[b]), yt[b])
            loss.backward()
            opt.step()
    with torch.no_grad():
        final = float(lossf(net.eval()(xt), yt))
    model = nn.Sequential(*net, nn.Softmax(dim=1)).eval()
    with torch.no_grad():
        classes = model(scale(s.x_test)).numpy().argmax(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(model, (torch.zeros(2, len(s.features)),), str(path), dynamo=False,
                          opset_version=OPSET, input_names=["x"], output_names=["p"],
                          dynamic_axes={"x": {0: "batch"}, "p": {0: "batch"}})
    doc = importers.load_document(path, name=path.stem, labels=s.labels, features=s.features,
                                  input_mean=mean, input_std=std)
    how = {"framework": "pytorch", "version": torch.__version__, "optimizer": "adam",
           "learning_rate": cfg["lr"], "loss": "cross entropy", "epochs": cfg["epochs"],
           "batch_size": cfg["batch"], "final_train_loss": round(final, 6),
           "onnx": "torch.onnx.export, dynamo=False, opset %d" % OPSET,
           "scaling": "trained on standardised rows; the training rows' mean and std given to the "
                      "exporter as input_mean/input_std (--input-mean/--input-std) and folded",
           "decision": "argmax of the module's softmax"}
    return classes, doc, how


def train_sklearn(s, cfg, path):
    """Fit a StandardScaler + MLPClassifier pipeline, save it with skops at ``path`` and
    convert the file with the scikit-learn importer."""
    import sklearn
    import skops.io
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    pipe = Pipeline([("scale", StandardScaler()),
                     ("mlp", MLPClassifier(hidden_layer_sizes=(cfg["hidden"],), activation="relu",
                                           solver="adam", learning_rate_init=cfg["lr"],
                                           max_iter=cfg["sk_iter"], random_state=SEED))])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pipe.fit(s.x_train, s.y_train)
    mlp = pipe.named_steps["mlp"]
    classes = np.asarray(pipe.predict(s.x_test), np.int64)
    skops.io.dump(pipe, path)
    doc = importers.load_document(path, name=path.stem, labels=s.labels, features=s.features)
    how = {"framework": "scikit-learn", "version": sklearn.__version__, "optimizer": "adam",
           "learning_rate": cfg["lr"], "loss": "log loss", "max_iter": cfg["sk_iter"],
           "iterations": int(mlp.n_iter_), "converged": not any("converge" in str(w.message) for w in caught),
           "final_train_loss": round(float(mlp.loss_), 6), "alpha": mlp.alpha,
           "scaling": "StandardScaler step of the Pipeline, folded by the importer",
           "decision": "Pipeline.predict"}
    return classes, doc, how


TRAIN = {"keras": (train_keras, ".keras"), "torch": (train_torch, ".onnx"), "sklearn": (train_sklearn, ".skops")}


# -- documents and figures ------------------------------------------------------

def shape(doc):
    """'64-32 relu-10 softmax'."""
    parts = [str(doc["inputs"])]
    for layer in doc["layers"]:
        if layer["type"] == "dense":
            parts.append("%d %s" % (layer["units"], layer["activation"]["name"]))
        else:
            parts[-1] += " " + layer["activation"]["name"]
    return "-".join(parts)


def params(doc):
    return sum(layer["units"] * (len(layer["weights"][0]) + 1) for layer in doc["layers"] if layer["type"] == "dense")


def figures(s, doc, qdoc, framework_classes):
    """What ANNE's host references make of the documents on the held-out rows."""
    threshold = doc.get("threshold", 0.5)
    f = quantize.decisions(quantize.run_float(doc, s.x_test), threshold)
    q = quantize.decisions(quantize.run_int8(qdoc, s.x_test)[1], threshold)
    n = len(s.y_test)
    return {"float_accuracy": round(float(np.mean(f == s.y_test)), 6),
            "float_agrees_with_framework": int(np.sum(f == framework_classes)),
            "int8_accuracy": round(float(np.mean(q == s.y_test)), 6),
            "int8_correct": int(np.sum(q == s.y_test)),
            "int8_agrees_with_float": int(np.sum(q == f)), "rows": n,
            "float_bytes": len(model_doc.pack(doc)), "int8_bytes": len(model_doc.pack(qdoc))}


def dumps(obj):
    """JSON with every list of plain numbers on one line (predictions stay readable)."""
    text = json.dumps(obj, indent=1)
    one_line = lambda m: "[" + " ".join(m.group(1).split()) + "]"
    return re.sub(r"\[\s*([-+0-9.eE,\s]+?)\s*\]", one_line, text) + "\n"


def run_dataset(name, out, report, scratch):
    s = datasets.split(name)
    cfg = SETTINGS[name]
    report["datasets"][name] = {
        "loader": "sklearn.datasets.load_%s" % name, "rows": int(len(s.y_train) + len(s.y_test)),
        "inputs": len(s.features), "labels": list(s.labels),
        "train_rows": int(len(s.y_train)), "test_rows": int(len(s.y_test)),
        "test_class_counts": np.bincount(s.y_test, minlength=len(s.labels)).tolist(),
        "x_test_sha256": datasets.fingerprint(s.x_test), "y_test_sha256": datasets.fingerprint(s.y_test),
        "test_row_numbers": s.test_rows.tolist(),
    }
    for fw in FRAMEWORKS:
        train, suffix = TRAIN[fw]
        model_name = "%s_%s" % (name, fw)
        t0 = time.perf_counter()
        # The ONNX files are small and need no torch to read: they are kept (tests run them
        # with onnxruntime). The .keras and .skops files (50 and 200 KB; a skops file holds
        # the optimizer's state) are exported from a temporary folder and not kept.
        where = out if suffix == ".onnx" else Path(scratch)
        classes, doc, how = train(s, cfg, where / (model_name + suffix))
        seconds = time.perf_counter() - t0
        qdoc = quantize.quantize(doc, s.x_train, name=model_name + "_int8",
                                 calibration="the %d training rows of %s (anne_host.datasets.split)"
                                 % (len(s.y_train), name))
        model_doc.write(doc, out / (model_name + ".json"))
        model_doc.write(qdoc, out / (model_name + "_int8.json"))
        correct = int(np.sum(classes == s.y_test))
        report["models"][model_name] = {
            "dataset": name, "framework": fw,
            "source_file": model_name + suffix if suffix == ".onnx" else None,
            "document": model_name + ".json", "int8_document": model_name + "_int8.json",
            "shape": shape(doc), "parameters": params(doc), "seed": SEED, "training": how,
            "accuracy": round(correct / len(s.y_test), 6), "correct": correct, "rows": int(len(s.y_test)),
            "predictions": [int(k) for k in classes],
            "anne_host": figures(s, doc, qdoc, classes),
        }
        r = report["models"][model_name]
        print("%-22s %-22s framework %6.2f %%  (%.1f s)" % (model_name, r["shape"], 100 * r["accuracy"], seconds),
              flush=True)


def table(report):
    rows = [("model", "shape", "params", "framework", "ANNE float", "agree", "ANNE int8", "int8=float")]
    for name, r in report["models"].items():
        a = r["anne_host"]
        rows.append((name, r["shape"], str(r["parameters"]),
                     "%.2f %% (%d/%d)" % (100 * r["accuracy"], r["correct"], r["rows"]),
                     "%.2f %%" % (100 * a["float_accuracy"]), "%d/%d" % (a["float_agrees_with_framework"], a["rows"]),
                     "%.2f %% (%d/%d)" % (100 * a["int8_accuracy"], a["int8_correct"], a["rows"]),
                     "%d/%d" % (a["int8_agrees_with_float"], a["rows"])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT, help="output folder (default: models/datasets/)")
    ap.add_argument("--only", help="comma-separated data sets (default: all of %s)" % ", ".join(datasets.names()))
    args = ap.parse_args(argv)
    chosen = [n.strip() for n in args.only.split(",")] if args.only else list(datasets.names())
    for n in chosen:
        if n not in datasets.names():
            raise SystemExit("unknown data set %r; choose from %s" % (n, ", ".join(datasets.names())))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "accuracy.json"
    # --only refreshes some data sets and keeps the others' entries.
    report = json.loads(path.read_text()) if args.only and path.exists() else {}
    report.update({
        "generated_by": "tools/train_datasets.py",
        "split": {"function": "sklearn.model_selection.train_test_split (anne_host.datasets.split)",
                  "test_size": datasets.TEST_SIZE, "random_state": datasets.SPLIT_SEED,
                  "stratify": "the class", "features": "float32",
                  "row_numbers": "0-based rows in the order sklearn.datasets returns them"},
        "predictions": "per held-out row, in the split's order: the class index (into labels) that "
                       "the framework's own predict gives",
    })
    report.setdefault("datasets", {})
    report.setdefault("models", {})
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        for n in chosen:
            run_dataset(n, args.out, report, scratch)
    order = ["%s_%s" % (n, fw) for n in datasets.names() for fw in FRAMEWORKS]
    report["models"] = {k: report["models"][k] for k in order if k in report["models"]}
    report["datasets"] = {k: report["datasets"][k] for k in datasets.names() if k in report["datasets"]}
    path.write_text(dumps(report))
    print("\nwrote %s and the models beside it in %.1f s\n" % (path, time.perf_counter() - start))
    table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
