"""Sample CSV files for a model: which columns are features, which is the label,
and a one-line error (file:line: what is wrong) for anything that does not fit.

The rules, in the order they are applied:

* The file is comma-separated UTF-8 text (an Excel byte-order mark is allowed)
  whose first row is the header. Spaces around cells are ignored, and blank lines
  (also lines of nothing but commas) are skipped.
* Label column: ``label_column`` (a header name, or a 0-based column index) if
  given; else a column named ``label``, ``class``, ``species``, ``target`` or
  ``y`` (any case) that is not one of the model's features; else, once the
  features are chosen, the last column if it is not a feature. A file may have
  no label column (inference); ``need_labels=True`` (evaluation) makes that an
  error.
* Features: if the model's feature names are given and every one of them is a
  header name (any case), those columns are used, in the model's order. Else
  the first ``inputs`` columns, skipping the label column if it was named, are
  the features in file order. Only a full match counts: a header that names
  some of the features but not all falls back to the first columns, and
  ``Samples.columns`` tells the caller which columns were used.
* Feature cells are decimal numbers (``5.1``, ``-3``, ``1e-3``). ``nan`` and
  ``inf`` (any case, ``inf`` with an optional sign) are accepted too, because
  the board defines what it does with them; other spellings that Python's
  ``float`` would take (``infinity``, ``1_000``) are refused, so that a typo is
  not read as a number. Values beyond float32's range are refused: the board
  computes in float32.
* Every row has as many cells as the header. A feature or label cell must not
  be empty; cells of other columns (ids, notes) are not read, so they may be.
* Labels are kept as written (without surrounding spaces). If the model's
  labels are given, every label must be one of them, except that a column
  holding only the integers 0..k-1 is read as class indices and mapped to the
  model's labels.

Every error is a CSVError (exit code 3) whose message names the file and, where
there is one, the line.
"""

import csv
import os
import re
from dataclasses import dataclass, field

import numpy as np

from .errors import AnneError

# Column names that hold the class in common data sets (iris uses "species").
LABEL_NAMES = ("label", "class", "species", "target", "y")

# What a number may look like in a file or on the command line; see the docstring.
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_SPECIAL = re.compile(r"nan|[+-]?inf", re.IGNORECASE)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class CSVError(AnneError):
    """Sample data that cannot be used: the file, or numbers typed on the command line."""

    exit_code = 3


@dataclass
class Samples:
    """The samples of one file: x[i] came from line lines[i], and y[i] is its label."""

    x: np.ndarray                     # float32, shape (rows, inputs)
    y: list | None                    # label strings, or None without a label column
    lines: list                       # 1-based line number of each row in the file
    path: str
    columns: list = field(default_factory=list)   # header names of the feature columns used
    label_column: str | None = None                # header name of the label column

    def __len__(self):
        return len(self.lines)


def load(path, inputs, features=None, labels=None, label_column=None, need_labels=False):
    """Read the samples of ``path`` for a model with ``inputs`` inputs; see the module docstring."""
    # An empty list of names or labels (a model without them) means the same as None.
    if features and len(features) != inputs:
        # A model file whose names and input count disagree: a bug, not a data problem.
        raise ValueError("%d feature names for %d inputs" % (len(features), inputs))
    path = os.fspath(path)
    header, rows = _read(path)
    label_idx = _named_label_column(path, header, label_column, features)
    feature_idx = _feature_columns(path, header, inputs, features, label_idx)
    if label_idx is None:
        label_idx = _last_column_label(header, feature_idx)
    if label_idx in feature_idx:
        raise CSVError("%s: column %s is both a feature and the label column"
                       % (path, _column_name(header, label_idx)))
    if need_labels and label_idx is None:
        raise CSVError("%s: no label column (name it one of %s, or choose it with --label-column)"
                       % (path, ", ".join(LABEL_NAMES)))
    _check_row_lengths(path, header, rows)
    x = _features(path, header, rows, feature_idx)
    y = None if label_idx is None else _labels(path, header, rows, label_idx, labels)
    return Samples(x=x, y=y, lines=[line for line, _ in rows], path=path,
                   columns=[header[i] for i in feature_idx],
                   label_column=None if label_idx is None else header[label_idx])


def parse_row(cells, inputs):
    """The feature vector typed on the command line (``infer 5.9 3.0 5.1 1.8``).

    Words may also be comma-separated (``5.9,3.0,5.1,1.8``), as copied from a CSV
    file. Returns a float32 array of shape (inputs,).
    """
    words = [w.strip() for cell in cells for w in cell.split(",") if w.strip()]
    if len(words) != inputs:
        raise CSVError("the model takes %d input%s, but %d number%s given"
                       % (inputs, "" if inputs == 1 else "s", len(words), " was" if len(words) == 1 else "s were"))
    values = []
    for word in words:
        value = _number(word)
        if value is None:
            raise CSVError("%r is not a number" % word)
        values.append(value)
    return np.array(values, dtype=np.float32)


# --- reading ---------------------------------------------------------------

def _read(path):
    """The header and the (line number, cells) of each data row, cells stripped."""
    rows = []
    reader = None
    try:
        # utf-8-sig: files saved by Excel start with a byte-order mark, which would
        # otherwise become part of the first column's name.
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            for cells in reader:
                cells = [c.strip() for c in cells]
                if any(cells):
                    rows.append((reader.line_num, cells))
    except FileNotFoundError:
        raise CSVError("%s: no such file" % path) from None
    except UnicodeDecodeError:
        raise CSVError("%s: not a UTF-8 text file" % path) from None
    except csv.Error as e:
        raise CSVError("%s:%d: %s" % (path, reader.line_num, e)) from None
    except OSError as e:
        raise CSVError("%s: cannot read: %s" % (path, e.strerror or e)) from None
    if not rows:
        raise CSVError("%s: the file is empty (a header row and samples are needed)" % path)
    (header_line, header), data = rows[0], rows[1:]
    _check_header(path, header_line, header)
    if not data:
        raise CSVError("%s: the file has a header but no samples" % path)
    return header, data


def _check_header(path, line, header):
    # A file without a header would silently lose its first sample as column names.
    if all(_number(cell) is not None for cell in header):
        raise CSVError("%s:%d: the first row holds numbers, but it must name the columns "
                       "(add a header row)" % (path, line))


def _check_row_lengths(path, header, rows):
    for line, cells in rows:
        if len(cells) != len(header):
            raise CSVError("%s:%d: %d cells, but the header has %d columns"
                           % (path, line, len(cells), len(header)))


# --- choosing columns ------------------------------------------------------

def _column_name(header, i):
    """How messages name column i: its header name, or its 0-based index if unnamed."""
    return repr(header[i]) if header[i] else "%d" % i


def _find(header, name):
    """The index of the first column called ``name`` (any case), or None."""
    wanted = name.strip().casefold()
    for i, cell in enumerate(header):
        if cell.casefold() == wanted:
            return i
    return None


def _named_label_column(path, header, label_column, features):
    """The label column chosen by the caller, or found by a usual name; else None."""
    if label_column is not None:
        return _chosen_column(path, header, label_column)
    feature_names = {f.casefold() for f in features or ()}
    for name in LABEL_NAMES:
        i = _find(header, name)
        # A model may take a column named like a label as an input; it is not the label then.
        if i is not None and name not in feature_names:
            return i
    return None


def _chosen_column(path, header, label_column):
    """``label_column`` as an index: a header name, or a 0-based index (negative counts from the end)."""
    if isinstance(label_column, str):
        i = _find(header, label_column)
        if i is not None:
            return i
        # From the command line an index arrives as text.
        if not re.fullmatch(r"-?\d+", label_column.strip()):
            raise CSVError("%s: no column named %r (the columns are %s)"
                           % (path, label_column, ", ".join(header)))
        label_column = int(label_column)
    if not -len(header) <= label_column < len(header):
        raise CSVError("%s: no column %d: the file has %d columns (0 to %d)"
                       % (path, label_column, len(header), len(header) - 1))
    return label_column % len(header)


def _feature_columns(path, header, inputs, features, label_idx):
    """The indices of the feature columns, in the order the model takes them."""
    if features:
        found = [_find(header, name) for name in features]
        if None not in found:
            return found
    candidates = [i for i in range(len(header)) if i != label_idx]
    if len(candidates) < inputs:
        raise CSVError("%s: the model takes %d inputs, but the file has only %d %scolumns%s"
                       % (path, inputs, len(candidates), "feature " if label_idx is not None else "",
                          _separator_hint(header)))
    return candidates[:inputs]


def _separator_hint(header):
    # The usual reason for too few columns: a file separated by ';' or tabs.
    if len(header) == 1 and (";" in header[0] or "\t" in header[0]):
        return " (anne-host reads comma-separated files; this one seems to use ';' or tabs)"
    return ""


def _last_column_label(header, feature_idx):
    last = len(header) - 1
    return None if last in feature_idx else last


# --- converting cells ------------------------------------------------------

def _number(text):
    """The float that ``text`` spells (see the module docstring), or None."""
    if _DECIMAL.fullmatch(text) or _SPECIAL.fullmatch(text):
        return float(text)
    return None


def _features(path, header, rows, feature_idx):
    x = np.empty((len(rows), len(feature_idx)), dtype=np.float32)
    for r, (line, cells) in enumerate(rows):
        for c, i in enumerate(feature_idx):
            x[r, c] = _feature_value(path, line, header, i, cells[i])
    return x


def _feature_value(path, line, header, i, cell):
    where = "%s:%d: column %s" % (path, line, _column_name(header, i))
    if not cell:
        raise CSVError("%s is empty" % where)
    value = _number(cell)
    if value is None:
        raise CSVError("%s holds %r, which is not a number" % (where, cell))
    if abs(value) > _FLOAT32_MAX and value not in (float("inf"), float("-inf")):
        raise CSVError("%s holds %s, beyond the board's float32 range" % (where, cell))
    return value


def _labels(path, header, rows, label_idx, labels):
    for line, cells in rows:
        if not cells[label_idx]:
            raise CSVError("%s:%d: the label (column %s) is empty"
                           % (path, line, _column_name(header, label_idx)))
    raw = [cells[label_idx] for _, cells in rows]
    if not labels or all(v in labels for v in raw):
        return raw
    if _are_class_indices(raw, labels):
        return [labels[int(v)] for v in raw]
    _raise_unknown_label(path, rows, raw, labels)


def _are_class_indices(raw, labels):
    # When the model's own labels are integers ("0", "1"), a number in the file is
    # a label, never an index: mapping it would silently shift the classes.
    if any(_is_index(name) for name in labels):
        return False
    return all(_is_index(v) and int(v) < len(labels) for v in raw)


def _is_index(text):
    return text.isascii() and text.isdigit()


def _raise_unknown_label(path, rows, raw, labels):
    """Name the first row whose label is neither a label name nor a usable class index."""
    indices = not any(_is_index(name) for name in labels)
    for (line, _), v in zip(rows, raw):
        is_index = indices and _is_index(v) and int(v) < len(labels)
        if v not in labels and not is_index:
            raise CSVError("%s:%d: label %r is not one of the model's labels: %s%s"
                           % (path, line, v, ", ".join(labels),
                              " (or class indices 0 to %d)" % (len(labels) - 1) if indices else ""))
    # Every label is known or an index, but a column must be one or the other.
    line = next(line for (line, _), v in zip(rows, raw) if v not in labels)
    raise CSVError("%s:%d: the label column mixes label names and class indices" % (path, line))
