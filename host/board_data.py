"""Data sets stored on a board (protocol/DATA_FORMAT.md, PROTOCOL.md "Data sets").

A labelled CSV file becomes a data file here (read as `train` reads one, checked
against a stored model when one is named) for `anne-host upload-data`; the board then
trains from its own flash: at its REPL with no host (`net.fit("NAME")`), or with
`anne-host train --on-board NAME`, where the host only asks for each epoch and shows
the board's figures.
"""

import csv
import io
import time

import numpy as np

from . import evaluate, training
from .client import BoardError
from .errors import AnneError, UsageError
from .protocol import datafile, modelfile


def stored_model(board, name):
    """The stored model ``name``'s inputs, outputs, labels and features, read from its
    pulled file: the board's active model stays as it is."""
    blob = board.pull(name)
    try:
        meta, layers = modelfile.load(io.BytesIO(blob), keep=False)
    except ValueError as e:
        raise AnneError("stored model %s: %s" % (name, e)) from None
    return {"name": name, "inputs": layers[0].inputs, "outputs": layers[-1].units,
            "labels": meta.get("labels"), "features": meta.get("features")}


def _width(path):
    # The number of columns of the file's first row.
    try:
        with open(path, newline="") as f:
            for row in csv.reader(f):
                if row:
                    return len(row)
    except OSError as e:
        raise AnneError("%s: cannot read (%s)" % (path, e.strerror)) from None
    raise UsageError("%s holds no rows" % path)


def pack_csv(path, model=None, label_column=None, columns=None):
    """(data file, what it holds) of the labelled rows of ``path``. For ``model`` (a
    stored model's description): its inputs and features choose the columns, its
    classes the targets (an unknown label is refused). Without one: every column but
    the label is an input, and the targets are one-hot over the classes found."""
    if model:
        names = evaluate.label_names(model)
        rows = training.load(path, model["inputs"], model.get("features"), names, label_column, columns)
        outputs = model["outputs"]
    else:
        inputs = len(columns) if columns else _width(path) - 1
        if inputs < 1:
            raise UsageError("%s has one column: a data set needs inputs and a label" % path)
        rows = training.load(path, inputs, label_column=label_column, columns=columns)
        names = training.classes_of(rows.y)
        if len(names) < 2:
            raise UsageError("%s holds one class (%s): nothing to learn" % (path, names[0]))
        outputs = len(names)
    t = training.targets(rows, names, outputs)
    body = np.hstack([rows.x.astype("<f4"), t.astype("<f4")]).tobytes()
    meta = {"labels": names}
    features = (model or {}).get("features") or (rows.columns if rows.header else None)
    if features:
        meta["features"] = list(features)
    try:
        blob = datafile.pack("binary" if outputs == 1 else "classes", rows.x.shape[1], outputs, body, meta)
    except datafile.DataFileError as e:
        raise UsageError("%s: %s" % (path, e)) from None
    return blob, {"rows": len(rows.x), "inputs": rows.x.shape[1], "outputs": outputs, "labels": names,
                  "features": meta.get("features"), "model": model["name"] if model else None}


def stored(board, name):
    """The board's entry for the stored data set ``name``, or an error naming those stored."""
    found = board.data_list()
    for entry in found:
        if entry["name"] == name:
            if entry["rows"] is None:
                raise AnneError("the stored data set %s is not a readable data file: upload it again" % name)
            return entry
    raise AnneError("no stored data set named %r; stored: %s"
                    % (name, ", ".join(e["name"] for e in found) or "none (anne-host upload-data stores one)"))


def new_net_fields(new, entry):
    """train_begin's fields for --new from a stored data set: its classes and feature names."""
    labels = entry.get("labels")
    if new["sizes"][0] != entry["inputs"]:
        raise UsageError("--new %s takes %d inputs; data set %s has %d per row"
                         % ("-".join(map(str, new["sizes"])), new["sizes"][0], entry["name"], entry["inputs"]))
    if labels:
        training.check_classes(new, labels, "data set " + entry["name"])
        new["labels"] = labels
    new["features"] = entry.get("features")
    return new


def fit(board, name, epochs, shuffle_seed, on_epoch, validation=None):
    """Train the open session for ``epochs`` epochs of the stored data set ``name``, one
    data_train request each (the board reads, orders and steps); ``validation``: a
    training.Data whose validation rows are streamed after each epoch. The history as
    training.fit gives it; board_us is the board's time for the whole epoch."""
    history = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        try:
            reply = board.data_train(name, epoch, shuffle_seed)
        except BoardError as e:
            if e.code == "diverged":
                raise training.Diverged("in epoch %d, %s; the stored model is as it was" % (epoch, e.message)) from None
            raise
        rows = reply["rows"]
        entry = {"epoch": epoch, "loss": reply["loss"] / rows, "accuracy": reply["right"] / rows,
                 "board_us": reply["us"], "steps_us": reply["steps_us"], "seconds": time.perf_counter() - start}
        if validation is not None:
            entry["val_loss"], entry["val_accuracy"], _ = board.train_eval(validation.x, validation.t)
        history.append(entry)
        on_epoch(entry)
    return history


def final(board, name, validation=None):
    """The trained net's loss and accuracy on every row of the stored data set (and the validation rows)."""
    loss, acc, us = board.data_eval(name)
    out = {"loss": loss, "accuracy": acc, "board_us": us}
    if validation is not None:
        out["val_loss"], out["val_accuracy"], _ = board.train_eval(validation.x, validation.t)
    return out


class Validation:
    """Labelled rows streamed to the board after each epoch, for the model train_begin described."""

    def __init__(self, model, path, label_column=None, columns=None):
        names = evaluate.label_names(model)
        rows = training.load(path, model["inputs"], model.get("features"), names, label_column, columns)
        self.x, self.t = rows.x, training.targets(rows, names, model["outputs"])
