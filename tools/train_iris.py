#!/usr/bin/env python3
"""Train the IRIS example models of ANNE, deterministically.

Three Keras 3 Sequential models, each taking RAW measurements in centimetres
(sepal length, sepal width, petal length, petal width); the input scaling is a
``keras.layers.Normalization`` layer adapted on the training rows, so nothing
has to be standardised by hand before a sample goes in:

  iris6  the AI-ANNE paper's "6 neuron" net:  Dense 3 relu -> Dense 2 sigmoid
         -> Dense 1 sigmoid; versicolor (0) vs virginica (1), 100 rows.
  iris8  the paper's "8 neuron" net:  Dense 2 relu -> Dense 3 tanh
         -> Dense 2 softmax -> Dense 1 sigmoid; same binary task.
  iris3  beyond the paper: Dense 8 relu -> Dense 3 softmax; all 3 species, 150 rows.

Split rule (one split, shared by all models): for each species, in the order
setosa, versicolor, virginica, take that species' 50 row numbers of iris.csv in
file order, shuffle them with ``numpy.random.default_rng(split_seed)`` (one
generator, used for the three species in that order) and put the first 10 in
the test set.  That gives an 80/20 stratified split: iris3 tests on those 30
rows, the binary nets on the 20 of them that are versicolor or virginica.
The rows are written out (in iris.csv order) as iris3_test.csv / iris3_train.csv
and iris_binary_test.csv / iris_binary_train.csv.

Usage:  python tools/train_iris.py [--out models/] [--seed 0] [--split-seed 2025]
"""

import argparse
import csv
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
HEADER = FEATURES + ["species"]
SPECIES = ["setosa", "versicolor", "virginica"]
BINARY = ["versicolor", "virginica"]
TEST_PER_CLASS = 10

DEFAULT_SEED = 0          # training seed (weights, shuffling)
DEFAULT_SPLIT_SEED = 2025  # seed of the train/test split

# Hyperparameters fixed here so the run is reproducible.  They were picked by
# trying a few seeds, learning rates and epoch counts (see models/README.md).
MODELS = {
    "iris6": {
        "task": "binary",
        "layers": [(3, "relu"), (2, "sigmoid"), (1, "sigmoid")],
        "epochs": 100,
        "batch_size": 8,
        "learning_rate": 0.01,
        "description": "AI-ANNE paper, 6 neurons in 3 layers",
    },
    "iris8": {
        "task": "binary",
        "layers": [(2, "relu"), (3, "tanh"), (2, "softmax"), (1, "sigmoid")],
        "epochs": 100,
        "batch_size": 8,
        "learning_rate": 0.01,
        "description": "AI-ANNE paper, 8 neurons in 4 layers",
    },
    "iris3": {
        "task": "multiclass",
        "layers": [(8, "relu"), (3, "softmax")],
        "epochs": 100,
        "batch_size": 8,
        "learning_rate": 0.01,
        "description": "3-class IRIS, beyond the paper",
    },
}


# --------------------------------------------------------------------------- data

def write_rows(path, rows):
    """Write (features, species) rows with the iris.csv header, values in cm."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(HEADER)
        for x, species in rows:
            w.writerow(["%.1f" % v for v in x] + [species])


def read_rows(path):
    with open(path, newline="") as f:
        r = csv.reader(f)
        header = next(r)
        if header != HEADER:
            raise SystemExit("%s: header is %r, expected %r" % (path, header, HEADER))
        rows = []
        for line in r:
            if not line:
                continue
            rows.append(([float(v) for v in line[:4]], line[4]))
    return rows


def make_iris_csv(path):
    """Build iris.csv from scikit-learn's bundled copy of the data set."""
    from sklearn.datasets import load_iris

    data = load_iris()
    rows = []
    for x, t in zip(data.data, data.target):
        for v in x:  # every value has one decimal; make sure "%.1f" loses nothing
            if float("%.1f" % v) != float(v):
                raise SystemExit("unexpected IRIS value %r" % v)
        rows.append(([float(v) for v in x], SPECIES[int(t)]))
    write_rows(path, rows)
    print("wrote %s (%d rows, from sklearn.datasets.load_iris)" % (path, len(rows)))


def split_rows(species, split_seed):
    """Return the sorted 0-based data-row numbers of the test set (10 per species)."""
    rng = np.random.default_rng(split_seed)
    test = []
    for name in SPECIES:
        idx = [i for i, s in enumerate(species) if s == name]
        if len(idx) != 50:
            raise SystemExit("expected 50 rows of %s, found %d" % (name, len(idx)))
        test.extend(rng.permutation(idx)[:TEST_PER_CLASS].tolist())
    return sorted(int(i) for i in test)


# --------------------------------------------------------------------------- models

def build(name, spec, x_train):
    import keras

    norm = keras.layers.Normalization(axis=-1, name="standardise")
    norm.adapt(x_train)
    layers = [keras.Input(shape=(4,), name="cm"), norm]
    for i, (units, act) in enumerate(spec["layers"]):
        layers.append(keras.layers.Dense(units, activation=act, name="dense_%d" % (i + 1)))
    return keras.Sequential(layers, name=name)


def predict_classes(model, x, task):
    p = np.asarray(model(x, training=False))
    if task == "binary":
        return (p[:, 0] >= 0.5).astype(int)
    return np.argmax(p, axis=1)


def confusion(y_true, y_pred, n):
    m = np.zeros((n, n), dtype=int)
    for a, b in zip(y_true, y_pred):
        m[a, b] += 1
    return m


def train_one(name, spec, data, seed):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    x_tr, y_tr, x_te, y_te, labels, te_rows = data
    model = build(name, spec, x_tr)
    if spec["task"] == "binary":
        loss = "binary_crossentropy"
    else:
        loss = "sparse_categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=spec["learning_rate"]),
                  loss=loss, metrics=["accuracy"])
    hist = model.fit(x_tr, y_tr, epochs=spec["epochs"], batch_size=spec["batch_size"],
                     shuffle=True, verbose=0)
    n = len(labels)
    p_tr = predict_classes(model, x_tr, spec["task"])
    p_te = predict_classes(model, x_te, spec["task"])
    cm = confusion(y_te, p_te, n)
    result = {
        "description": spec["description"],
        "file": name + ".keras",
        "task": spec["task"],
        "features": FEATURES,
        "labels": labels,
        "input": "raw centimetres; first layer is keras.layers.Normalization adapted on the training rows",
        "normalization": {
            "mean": [round(float(v), 6) for v in np.ravel(model.layers[0].mean)],
            "variance": [round(float(v), 6) for v in np.ravel(model.layers[0].variance)],
        },
        "layers": [{"units": u, "activation": a} for u, a in spec["layers"]],
        "neurons": sum(u for u, _ in spec["layers"]),
        "parameters": int(model.count_params() - model.layers[0].count_params()),
        "seed": seed,
        "optimizer": "adam",
        "learning_rate": spec["learning_rate"],
        "loss": loss,
        "epochs": spec["epochs"],
        "batch_size": spec["batch_size"],
        "final_train_loss": round(float(hist.history["loss"][-1]), 6),
        "train_rows": int(len(y_tr)),
        "test_rows": int(len(y_te)),
        "train_correct": int(np.sum(p_tr == y_tr)),
        "test_correct": int(np.sum(p_te == y_te)),
        "train_accuracy": round(float(np.mean(p_tr == y_tr)), 4),
        "test_accuracy": round(float(np.mean(p_te == y_te)), 4),
        "test_confusion_matrix": cm.tolist(),
        "confusion_matrix_layout": "rows actual, columns predicted, in label order",
        "test_errors": [
            {"row": int(r), "actual": labels[int(a)], "predicted": labels[int(b)]}
            for r, a, b in zip(te_rows, y_te, p_te) if a != b
        ],
    }
    if spec["task"] == "binary":
        result["threshold"] = 0.5
        result["positive_label"] = labels[1]
    return model, result


def print_result(name, r):
    print("\n%s: %s" % (name, r["description"]))
    print("  layers: " + " -> ".join("Dense %d %s" % (l["units"], l["activation"]) for l in r["layers"]))
    print("  seed %d, adam lr %g, %d epochs, batch %d, final loss %.4f"
          % (r["seed"], r["learning_rate"], r["epochs"], r["batch_size"], r["final_train_loss"]))
    print("  train accuracy %.2f %% (%d/%d)" % (100 * r["train_accuracy"], r["train_correct"], r["train_rows"]))
    print("  test  accuracy %.2f %% (%d/%d)" % (100 * r["test_accuracy"], r["test_correct"], r["test_rows"]))
    if r["test_errors"]:
        print("  wrong on test rows (0-based data rows of iris.csv): " + ", ".join(
            "%d (%s as %s)" % (e["row"], e["actual"], e["predicted"]) for e in r["test_errors"]))
    print("  test confusion matrix (rows actual, columns predicted):")
    labels = r["labels"]
    w = max(len(s) for s in labels) + 2
    print("  " + " " * w + "".join(s.rjust(w) for s in labels))
    for lab, row in zip(labels, r["test_confusion_matrix"]):
        print("  " + lab.ljust(w) + "".join(str(v).rjust(w) for v in row))


# --------------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="models/", help="output folder (default: models/)")
    ap.add_argument("--data", default=None,
                    help="IRIS csv (default: OUT/iris.csv; made from scikit-learn's copy if missing)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED,
                    help="training seed for all models (default: %d)" % DEFAULT_SEED)
    ap.add_argument("--split-seed", type=int, default=DEFAULT_SPLIT_SEED,
                    help="seed of the stratified train/test split (default: %d)" % DEFAULT_SPLIT_SEED)
    ap.add_argument("--models", default=",".join(MODELS),
                    help="comma-separated subset of %s" % ",".join(MODELS))
    args = ap.parse_args(argv)

    t0 = time.time()
    os.makedirs(args.out, exist_ok=True)
    data_path = args.data or os.path.join(args.out, "iris.csv")
    if not os.path.exists(data_path):
        make_iris_csv(data_path)
    rows = read_rows(data_path)
    if len(rows) != 150:
        raise SystemExit("%s: expected 150 rows, found %d" % (data_path, len(rows)))

    import keras
    import tensorflow as tf

    tf.config.experimental.enable_op_determinism()

    x_all = np.array([x for x, _ in rows], dtype=np.float32)
    species = [s for _, s in rows]
    test_idx = split_rows(species, args.split_seed)
    test_set = set(test_idx)
    train_idx = [i for i in range(len(rows)) if i not in test_set]
    bin_test = [i for i in test_idx if species[i] in BINARY]
    bin_train = [i for i in train_idx if species[i] in BINARY]

    def pick(idx):
        return [rows[i] for i in idx]

    write_rows(os.path.join(args.out, "iris3_test.csv"), pick(test_idx))
    write_rows(os.path.join(args.out, "iris3_train.csv"), pick(train_idx))
    write_rows(os.path.join(args.out, "iris_binary_test.csv"), pick(bin_test))
    write_rows(os.path.join(args.out, "iris_binary_train.csv"), pick(bin_train))

    def dataset(tr, te, labels):
        y = np.array([labels.index(species[i]) if species[i] in labels else -1
                      for i in range(len(rows))])
        return x_all[tr], y[tr], x_all[te], y[te], labels, te

    datasets = {
        "binary": dataset(bin_train, bin_test, BINARY),
        "multiclass": dataset(train_idx, test_idx, SPECIES),
    }

    report = {
        "generated_by": "tools/train_iris.py",
        "keras_version": keras.__version__,
        "tensorflow_version": tf.__version__,
        "data": os.path.basename(data_path),
        "features": FEATURES,
        "split": {
            "rule": ("per species in the order setosa, versicolor, virginica: shuffle that "
                     "species' 50 data-row numbers (file order) with one "
                     "numpy.random.default_rng(split_seed) and take the first 10 as test rows; "
                     "binary nets use the versicolor/virginica part"),
            "split_seed": args.split_seed,
            "row_numbering": "0-based data rows of iris.csv (header not counted)",
            "iris3_test_rows": test_idx,
            "binary_test_rows": bin_test,
            "files": {
                "iris3": ["iris3_train.csv", "iris3_test.csv"],
                "binary": ["iris_binary_train.csv", "iris_binary_test.csv"],
            },
        },
        "models": {},
    }

    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        if name not in MODELS:
            raise SystemExit("unknown model %r; choose from %s" % (name, ", ".join(MODELS)))
        spec = MODELS[name]
        t1 = time.time()
        model, result = train_one(name, spec, datasets[spec["task"]], args.seed)
        model.save(os.path.join(args.out, name + ".keras"))
        if name == "iris6":
            # legacy HDF5 copy, so the exporter's .h5 path has a real file to read
            model.save(os.path.join(args.out, name + ".h5"))
            result["h5_file"] = name + ".h5"
        report["models"][name] = result
        print_result(name, result)
        print("  trained in %.1f s" % (time.time() - t1))

    with open(os.path.join(args.out, "training.json"), "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    print("\nwrote %s; total %.1f s" % (os.path.join(args.out, "training.json"), time.time() - t0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
