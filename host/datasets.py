"""The data sets that ship with scikit-learn (digits, wine, breast cancer), split once.

ANNE's own IRIS nets were trained here on data chosen here; these three data sets were
not, so they test the whole path on data no one in the project wrote. The models in
models/datasets/ were trained by tools/train_datasets.py on the training part of the
split defined in this module, and are evaluated on its held-out part: this module is the
one place where that split is made, for the training script and the tests alike.

The split: ``sklearn.model_selection.train_test_split`` of the data set's rows, in the
order scikit-learn returns them, with ``test_size=0.25``, ``random_state=2025`` and
``stratify`` on the class, so each class is held out in proportion. The features are
float32 (what the board computes with); classes are indices 0..k-1 into the labels.

Feature names are scikit-learn's, made CSV-safe and usable as identifiers: lower case,
every run of characters other than a-z and 0-9 written as one "_" ("mean radius" ->
"mean_radius", "od280/od315_of_diluted_wines" -> "od280_od315_of_diluted_wines"). The
model documents name their inputs with these names, so ``write_csv`` files are read
by ``anne-host eval`` by name.

scikit-learn is an optional extra of anne-host: ``pip install "anne-host[sklearn]"``.
"""

import csv
import hashlib
import re
from dataclasses import dataclass

import numpy as np

from .errors import AnneError

NAMES = ("digits", "wine", "breast_cancer")
TEST_SIZE = 0.25
SPLIT_SEED = 2025
LABEL_COLUMN = "label"  # a name csvdata recognises as the label column

# data set -> the sklearn.datasets loader that returns it
_LOADERS = {"digits": "load_digits", "wine": "load_wine", "breast_cancer": "load_breast_cancer"}


@dataclass(frozen=True)
class Split:
    """One data set, split: float32 features, class indices, and the row numbers (0-based,
    in scikit-learn's order) each part came from. The arrays are read-only."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    train_rows: np.ndarray
    test_rows: np.ndarray
    features: tuple
    labels: tuple


def names():
    """The data sets this module splits."""
    return NAMES


def _sklearn():
    try:
        from sklearn import datasets, model_selection
    except ImportError:
        raise AnneError('the bundled data sets come with scikit-learn: pip install "anne-host[sklearn]"') from None
    return datasets, model_selection


def csv_safe(name):
    """A feature name as the model documents and CSV files write it (see the module docstring)."""
    return re.sub(r"[^a-z0-9]+", "_", str(name).lower()).strip("_")


def split(name):
    """The data set ``name`` split into training and held-out rows (a ``Split``)."""
    if name not in NAMES:
        raise AnneError("no data set %r; the data sets are %s" % (name, ", ".join(NAMES)))
    datasets, model_selection = _sklearn()
    bunch = getattr(datasets, _LOADERS[name])()
    x = np.asarray(bunch.data, np.float32)
    y = np.asarray(bunch.target, np.int64)
    rows = np.arange(len(y))
    train_rows, test_rows = model_selection.train_test_split(
        rows, test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=y)
    features = tuple(csv_safe(f) for f in bunch.feature_names)
    labels = tuple(str(v) for v in bunch.target_names)
    if len(set(features)) != len(features):  # the rule must not merge two names
        raise AnneError("%s: two features have the same CSV-safe name" % name)
    parts = [x[train_rows], y[train_rows], x[test_rows], y[test_rows], train_rows, test_rows]
    for a in parts:
        a.setflags(write=False)
    return Split(name, *parts, features=features, labels=labels)


def load(name):
    """The held-out rows of ``name`` exactly as the models were tested on them:
    (x_test float32 (rows, inputs), y_test class indices, feature names, label names)."""
    s = split(name)
    return s.x_test, s.y_test, list(s.features), list(s.labels)


def fingerprint(values):
    """SHA-256 (hex) of an array's values and shape, independent of its memory layout:
    what accuracy.json records, so a changed split is caught."""
    a = np.ascontiguousarray(values)
    h = hashlib.sha256(("%s %s|" % (a.dtype.str, a.shape)).encode())
    h.update(a.tobytes())
    return h.hexdigest()


def number(value):
    """A float32 value as the shortest decimal that reads back as the same float32
    ("0", "14.23", "0.0001"): the CSV files hold exactly the rows the models saw."""
    return np.format_float_positional(np.float32(value), unique=True, trim="-")


def write_csv(name, path, part="test"):
    """Write the held-out rows of ``name`` (``part="train"``: the training rows) to the CSV
    file ``path``: a header of the feature names and ``label``, then one row per sample,
    the label written as its name. Returns the number of rows written."""
    s = split(name)
    if part not in ("test", "train"):
        raise AnneError("part must be 'test' or 'train', not %r" % (part,))
    x, y = (s.x_test, s.y_test) if part == "test" else (s.x_train, s.y_train)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(list(s.features) + [LABEL_COLUMN])
        for row, k in zip(x, y):
            w.writerow([number(v) for v in row] + [s.labels[k]])
    return len(y)
