"""Training a model on the board (PROTOCOL.md, "Training"): the CSV rows become
inputs and targets here, the board computes forward, backward and update.

The host only reads files, orders rows and counts: every loss, accuracy and time
comes from the board's replies. The stored model changes only at the end, when
the board saves the trained net over it; a failure before (bad data, a diverging
run, a cut cable, Ctrl-C) ends the session without saving.
"""

import time

import numpy as np

from . import csvdata, evaluate
from .client import BoardError, Client
from .errors import AnneError, UsageError


class Diverged(AnneError):
    """The loss became NaN or infinite: training stopped and nothing was saved."""

    exit_code = 5


def new_net(shape, activation, seed):
    """The train_begin fields of a new net from "4-8-3": the hidden layers take
    ``activation``, the output softmax (several units) or sigmoid (one)."""
    try:
        sizes = [int(v) for v in shape.split("-")]
    except ValueError:
        sizes = []
    if len(sizes) < 2 or min(sizes) < 1:
        raise UsageError("--new takes the layer widths from the inputs to the outputs, such as 4-8-3; got %r"
                         % shape)
    out = "softmax" if sizes[-1] > 1 else "sigmoid"
    return {"sizes": sizes, "activations": [activation] * (len(sizes) - 2) + [out], "seed": seed}


def classes_of(labels):
    """The class names a new net learns, in output order: numbers by value, else text in order."""
    found = set(labels)
    if all(v.isascii() and v.isdigit() for v in found):
        return sorted(found, key=int)
    return sorted(found)


def check_classes(new, classes, path):
    """UsageError when a new net's outputs cannot name the classes found in ``path``."""
    outputs = new["sizes"][-1]
    if outputs != len(classes) and not (outputs == 1 and len(classes) == 2):
        raise UsageError("%s holds %d classes (%s); a net for them ends in %s, not %d"
                         % (path, len(classes), ", ".join(classes[:8]) + (", ..." if len(classes) > 8 else ""),
                            "1 or 2 outputs" if len(classes) == 2 else "%d outputs" % len(classes), outputs))


def targets(samples, names, outputs):
    """Each row's targets: one-hot over ``outputs``, or 0/1 for one sigmoid output."""
    k = np.array([names.index(v) for v in samples.y])
    if outputs == 1:
        return k.astype(np.float32).reshape(-1, 1)
    return np.eye(outputs, dtype=np.float32)[k]


def load(path, inputs, features=None, names=None, label_column=None, columns=None):
    """The labelled rows of ``path`` (csvdata's rules: short rows, unknown labels refused),
    every value finite: the board refuses a NaN, and it must not meet one after some steps."""
    rows = csvdata.load(path, inputs, features, names, label_column, need_labels=True, columns=columns)
    bad = np.argwhere(~np.isfinite(rows.x))
    if len(bad):
        r, c = bad[0]
        raise csvdata.CSVError("%s:%d: column %s holds %s: training needs finite numbers; nothing was trained"
                               % (path, rows.lines[r], rows.columns[c], rows.x[r, c]))
    return rows


class Data:
    """The training (and validation) rows for a model described by train_begin's reply."""

    def __init__(self, model, path, validation=None, label_column=None, columns=None):
        self.names = evaluate.label_names(model)
        self.train = self._load(model, path, label_column, columns)
        self.t = targets(self.train, self.names, model["outputs"])
        self.validation = self.vt = None
        if validation:
            self.validation = self._load(model, validation, label_column, columns)
            self.vt = targets(self.validation, self.names, model["outputs"])

    def _load(self, model, path, label_column, columns):
        return load(path, model["inputs"], model.get("features"), self.names, label_column, columns)


def check_batch(batch, inputs, outputs):
    """UsageError when a step of ``batch`` rows would not fit one request frame."""
    most = Client.step_rows(inputs, outputs)
    if batch > most:
        raise UsageError("a step's rows travel in one frame: with %d inputs and %d outputs, --batch "
                         "is at most %d" % (inputs, outputs, most))


def fit(board, data, epochs, batch, shuffle_seed, on_epoch):
    """Train the open session for ``epochs`` epochs of ``data``; ``on_epoch(entry)`` is
    called after each. Returns the history: per epoch the loss and accuracy of the
    steps (before each step, as Keras reports them), board µs, validation figures."""
    x, t = data.train.x, data.t
    check_batch(batch, x.shape[1], t.shape[1])
    rng = np.random.default_rng(shuffle_seed) if shuffle_seed is not None else None
    history = []
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(x)) if rng is not None else np.arange(len(x))
        start = time.perf_counter()
        total = right = us = 0
        try:
            for reply in board.train_epoch(x[order], t[order], batch):
                total += reply["loss"]
                right += reply["right"]
                us += reply["us"]
        except BoardError as e:
            if e.code == "diverged":
                raise Diverged("in epoch %d, %s; the stored model is as it was" % (epoch, e.message)) from None
            raise
        entry = {"epoch": epoch, "loss": total / len(x), "accuracy": right / len(x), "board_us": us,
                 "seconds": time.perf_counter() - start}
        if data.validation is not None:
            entry["val_loss"], entry["val_accuracy"], _ = board.train_eval(data.validation.x, data.vt)
        history.append(entry)
        on_epoch(entry)
    return history


def final(board, data):
    """The trained net's loss and accuracy on every training (and validation) row."""
    loss, acc, us = board.train_eval(data.train.x, data.t)
    out = {"loss": loss, "accuracy": acc, "board_us": us}
    if data.validation is not None:
        out["val_loss"], out["val_accuracy"], _ = board.train_eval(data.validation.x, data.vt)
    return out


def close(board, saved):
    """End the board's session after a failure, without saving; the link may be gone."""
    if saved:
        return
    try:
        board.train_end(save=False)
    except AnneError:
        pass  # the session dies with the link or the next train_begin: nothing was stored
