"""Sample CSV files for a model: which columns are features, which is the label,
and a one-line error (file:line: what is wrong) for anything that does not fit.

The rules, in the order they are applied:

* The file is comma-separated UTF-8 text (an Excel byte-order mark is allowed).
  Spaces around cells are ignored, and blank lines (also lines of nothing but
  commas) are skipped.
* Header: the first row names the columns, unless it is a sample: when every
  column that holds numbers in all the later rows holds a number in the first row
  too (a file of one row is a sample when every cell is a number). A file
  without a header has unnamed columns, which messages and ``Samples.columns``
  call by their 0-based index.
* Label column: ``label_column`` (a header name, or a 0-based column index) if
  given; else a column named ``label``, ``class``, ``species``, ``target`` or
  ``y`` (any case) that is neither one of the model's features nor chosen in
  ``columns``; else, once the features are chosen, the last column if it is not
  a feature. A file may have no label column (inference); ``need_labels=True``
  (evaluation) makes that an error.
* Features, one of three ways (``Samples.chosen`` says which):
  ``columns`` -- the caller names them (header names or 0-based indices), one per
  input, in the model's order; ``names`` -- the model has feature names and the
  header has every one of them (any case): those columns, in the model's order;
  ``position`` -- otherwise every column but the label column, in file order,
  and there must be exactly as many as the model has inputs. A header that has
  some of the model's feature names but not all is an error, as is a file with
  more or fewer columns than inputs: nothing is left out or made up silently.
* Feature cells are decimal numbers (``5.1``, ``-3``, ``1e-3``). ``nan`` and
  ``inf`` (any case, ``inf`` with an optional sign) are accepted too, because
  the board defines what it does with them; other spellings that Python's
  ``float`` would take (``infinity``, ``1_000``) are refused, so that a typo is
  not read as a number. Values beyond float32's range are refused: the board
  computes in float32.
* Every row has as many cells as the first. A feature or label cell must not
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
    columns: list = field(default_factory=list)   # the feature columns used (names, or indices)
    label_column: str | None = None                # the label column (name, or index)
    chosen: str = "position"                       # how: "columns", "names" or "position"
    header: bool = True                            # whether the first row named the columns

    def describe(self):
        """One line saying which columns were read, for reports."""
        how = {"columns": "as chosen with --columns", "names": "matched by the model's feature names",
               "position": "every column but the label" if self.label_column is not None
               else "every column"}[self.chosen]
        text = "features from column%s %s (%s)" % ("" if len(self.columns) == 1 else "s",
                                                  ", ".join(self.columns), how)
        if self.label_column is not None:
            text += "; labels from column %s" % self.label_column
        return text + ("" if self.header else "; the file has no header row")

    def __len__(self):
        return len(self.lines)


def load(path, inputs, features=None, labels=None, label_column=None, need_labels=False,
         columns=None):
    """Read the samples of ``path`` for a model with ``inputs`` inputs; see the module docstring."""
    # An empty list of names or labels (a model without them) means the same as None.
    if features and len(features) != inputs:
        # A model stored before upload checked the counts: the model is wrong, not the file.
        raise AnneError("the model names %d features for its %d inputs; export it again with "
                        "--features naming each input" % (len(features), inputs))
    if columns is not None and len(columns) != inputs:
        raise CSVError("--columns names %d column%s; the model takes %d inputs"
                       % (len(columns), "" if len(columns) == 1 else "s", inputs))
    path = os.fspath(path)
    header, rows, has_header = _read(path)
    chosen = None if columns is None else [_chosen_column(path, header, c) for c in columns]
    names_in_use = list(features or ()) + [header[i] for i in chosen or ()]
    label_idx = _named_label_column(path, header, label_column, names_in_use)
    feature_idx, how = _feature_columns(path, header, inputs, features, label_idx, chosen)
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
                   columns=[_plain_name(header, i) for i in feature_idx],
                   label_column=None if label_idx is None else _plain_name(header, label_idx),
                   chosen=how, header=has_header)


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
    """The header (empty names when the file has none), the (line number, cells) of
    each data row, cells stripped, and whether the file has a header."""
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
        raise CSVError("%s: the file is empty (samples are needed)" % path)
    if _is_sample(rows):
        return [""] * len(rows[0][1]), rows, False
    (_, header), data = rows[0], rows[1:]
    if not data:
        raise CSVError("%s: the file has a header but no samples" % path)
    return header, data, True


def _is_sample(rows):
    """Whether the first row is a sample rather than column names (see the docstring)."""
    first = rows[0][1]
    rest = [cells for _, cells in rows[1:] if len(cells) == len(first)]
    if not rest:
        return all(_number(cell) is not None for cell in first)
    numeric = [c for c in range(len(first)) if all(_number(cells[c]) is not None for cells in rest)]
    return bool(numeric) and all(_number(first[c]) is not None for c in numeric)


def _check_row_lengths(path, header, rows):
    for line, cells in rows:
        if len(cells) != len(header):
            raise CSVError("%s:%d: %d cells, but the %s has %d columns"
                           % (path, line, len(cells), "header" if any(header) else "first row", len(header)))


# --- choosing columns ------------------------------------------------------

def _column_name(header, i):
    """How messages name column i: its header name, or its 0-based index if unnamed."""
    return repr(header[i]) if header[i] else "%d" % i


def _plain_name(header, i):
    # Samples.columns and reports: the name without quotes, or the index.
    return header[i] or "%d" % i


def _find(header, name):
    """The index of the first column called ``name`` (any case), or None."""
    wanted = name.strip().casefold()
    for i, cell in enumerate(header):
        if cell.casefold() == wanted:
            return i
    return None


def _named_label_column(path, header, label_column, features):
    """The label column chosen by the caller, or found by a usual name; else None.
    ``features`` are names read as inputs, so not the label."""
    if label_column is not None:
        return _chosen_column(path, header, label_column)
    feature_names = {f.casefold() for f in features}
    for name in LABEL_NAMES:
        i = _find(header, name)
        # A model may take a column named like a label as an input; it is not the label then.
        if i is not None and name not in feature_names:
            return i
    return None


def _chosen_column(path, header, label_column):
    """A column the user chose, as an index: a header name, or a 0-based index (negative counts from the end)."""
    if isinstance(label_column, str):
        if not label_column.strip():
            raise CSVError("%s: an empty column name was given (%s)" % (path, _columns_hint(header)))
        i = _find(header, label_column)
        if i is not None:
            return i
        # From the command line an index arrives as text.
        if not re.fullmatch(r"-?\d+", label_column.strip()):
            raise CSVError("%s: no column named %r (%s)" % (path, label_column, _columns_hint(header)))
        label_column = int(label_column)
    if not -len(header) <= label_column < len(header):
        raise CSVError("%s: no column %d: the file has %d columns (0 to %d)"
                       % (path, label_column, len(header), len(header) - 1))
    return label_column % len(header)


def _feature_columns(path, header, inputs, features, label_idx, chosen):
    """The indices of the feature columns, in the order the model takes them, and how
    they were chosen ("columns", "names" or "position")."""
    if chosen is not None:
        return chosen, "columns"
    if features and any(header):
        found = [_find(header, name) for name in features]
        if None not in found:
            return found, "names"
        if any(i is not None for i in found):
            # Some names match: a renamed or misspelled column, not a file of other names.
            missing = [name for name, i in zip(features, found) if i is None]
            raise CSVError("%s: no column named %s, which the model takes as an input (%s); rename "
                           "it, or choose the model's %d inputs with --columns"
                           % (path, ", ".join(map(repr, missing)), _columns_hint(header), inputs))
    candidates = [i for i in range(len(header)) if i != label_idx]
    if label_idx is None and len(candidates) == inputs + 1:
        candidates = candidates[:-1]  # the last column is the label (or is not read)
    if len(candidates) != inputs:
        if label_idx is not None:
            counted = "%d columns besides the label column %s" % (len(candidates), _column_name(header, label_idx))
        else:
            counted = "%d columns (not %d, or %d with the label last)" % (len(header), inputs, inputs + 1)
        raise CSVError("%s: %s, but the model takes %d inputs; choose them with --columns%s"
                       % (path, counted, inputs, _separator_hint(header) or " (%s)" % _columns_hint(header)))
    return candidates, "position"


def _columns_hint(header):
    if any(header):
        return "the columns are " + ", ".join(header)
    return "the file has no header row: columns are chosen by 0-based index, 0 to %d" % (len(header) - 1)


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
            numbered = list(labels) == [str(k) for k in range(len(labels))]
            raise CSVError("%s:%d: label %r is not one of the model's labels: %s%s"
                           % (path, line, v, ", ".join(labels),
                              " (or class indices 0 to %d)" % (len(labels) - 1) if indices else
                              " (a model exported without --labels has numbered classes: export it "
                              "again with --labels to name them)" if numbered else ""))
    # Every label is known or an index, but a column must be one or the other.
    line = next(line for (line, _), v in zip(rows, raw) if v not in labels)
    raise CSVError("%s:%d: the label column mixes label names and class indices" % (path, line))
