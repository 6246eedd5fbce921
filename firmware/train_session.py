# Training over the wire (PROTOCOL.md, "Training"): one session at a time, the
# net being trained, its Trainer (train.py) and the targets of one batch.
#
# The net is a copy of its own, loaded on the reference kernel (the fast kernel
# converts the weights it binds, which loses bits), so the active model and the
# stored file stay as they were until the session saves. The service imports
# this module when a session begins (train_commands.begin checks the fields and
# drops the active model for it) and forgets it with train and build when it
# ends: code is heap, and nothing of it is needed while no one trains.
import gc
import os
import time
from array import array

from micropython import const

from . import store, train
from .engine import Net
from .lifecycle import check_space
from .protocol import framing, modelfile
from .refused import Refused
from .train_words import unpack as _unpack

_KEYS = const(64)  # a train_step request's keys, id and bin headers, at most (PROTOCOL.md)
_FILE_ROOM = const(512)  # a model file's header, layer records and metadata, at most, beside its weights


def _net(name, new):
    # The net to train: the stored model ``name`` or, with ``new`` (sizes,
    # activations, seed, labels, features), a net of new weights (build.py).
    if new:
        from . import build

        sizes, acts, seed, labels, features = new
        try:
            return build.new(sizes, acts, seed, name, labels, features)
        except ValueError as e:
            raise Refused("bad_request", str(e))
    try:
        f = open(store.path(name), "rb")
    except OSError:
        raise Refused("no_model", "no stored model named %r" % name)
    with f:
        try:
            meta, layers = modelfile.load(f)
        except ValueError as e:
            raise Refused("bad_model", "%s: %s" % (name, e))
    net = Net(meta, layers, "reference")
    net.meta["name"] = name
    return net


class Session:
    """A training session: the net (its weights change with each step), the
    Trainer, one batch's targets, and the active model dropped for it, if any."""

    def __init__(self, name, new, batch, kind, lr, momentum, loss, last=None):
        # The fields are checked (service.train_begin); the net's fit is checked here.
        optimizer = train.SGD(lr, momentum) if kind == "sgd" else train.Adam(lr)
        self.net = _net(name, new)
        layers = len(self.net.layers)
        if last is not None and last > layers:  # refused before the batch's arrays are allocated
            raise Refused("bad_request", "field 'last' is %d, but %s has %d layers: train the last 1 to %d"
                          % (last, name, layers, layers))
        most = (framing.MAX_BODY - _KEYS) // (4 * (self.net.inputs + self.net.outputs))
        if batch > most:  # refused before the batch's arrays are allocated
            raise Refused("bad_request", "a step's rows come in one request: with %d inputs and %d outputs, "
                          "a batch holds at most %d rows" % (self.net.inputs, self.net.outputs, most))
        try:
            self.tr = train.Trainer(self.net, batch, optimizer, train.check_trainable(self.net, loss, last),
                                    last=last)
        except ValueError as e:
            raise Refused("cannot_train", "%s: %s" % (name, e))
        self.t = array("f", bytearray(4 * batch * self.net.outputs))
        self.name = name
        self.steps = 0
        self.diverged = None  # why training stopped, once a batch's loss was NaN or infinite
        self.previous = None  # the active model dropped for the session, brought back at its end

    def describe(self):
        net, tr = self.net, self.tr
        gc.collect()
        trained = net.layers[tr.first:]
        return {"name": self.name, "inputs": net.inputs, "outputs": net.outputs, "labels": net.labels,
                "features": net.meta.get("features"), "params": net.param_count(), "loss": tr.loss,
                "batch": tr.rows, "layers": [[l.kind, l.activation, l.units] for l in net.layers],
                "last": len(trained), "trained_params": sum(l.param_count() for l in trained),
                "mem_free": gc.mem_free()}

    def _rows(self, x, y, at, rows):
        # Rows at..at+rows of the request's x and y into the batch's inputs and
        # targets, every value checked: Refused (bad_input) before anything is computed.
        n_in, n_out = self.net.inputs, self.net.outputs
        bad = _unpack(x, 4 * n_in * at, self.tr.a[0], rows * n_in)
        if bad >= 0:
            raise Refused("bad_input", "row %d, input %d is not a finite number (NaN or infinite)"
                          % (at + bad // n_in, bad % n_in))
        t = self.t
        bad = _unpack(y, 4 * n_out * at, t, rows * n_out)
        if bad >= 0:
            raise Refused("bad_input", "row %d, target %d is not a finite number" % (at + bad // n_out, bad % n_out))
        if self.tr.loss != "mse":
            for k in range(rows * n_out):
                if not 0 <= t[k] <= 1:
                    raise Refused("bad_input", "row %d, target %d is %r: with %s a target is a "
                                  "probability, 0 to 1" % (at + k // n_out, k % n_out, t[k], self.tr.loss))

    def _count(self, x, y):
        # Whole rows of x and y, or Refused.
        n_in, n_out = self.net.inputs, self.net.outputs
        rows = len(x) // (4 * n_in)
        if rows < 1 or rows * 4 * n_in != len(x):
            raise Refused("bad_input", "x holds whole rows of %d float32 inputs; got %d bytes" % (n_in, len(x)))
        if len(y) != rows * 4 * n_out:
            raise Refused("bad_input", "y holds %d float32 targets per row (%d bytes for %d rows); got %d bytes"
                          % (n_out, rows * 4 * n_out, rows, len(y)))
        return rows

    def step(self, x, y):
        """One optimizer step on the rows of x (inputs) and y (targets): the
        batch's loss sum and right decisions before the step, and its time."""
        if self.diverged:
            raise Refused("diverged", self.diverged)
        rows = self._count(x, y)
        if rows > self.tr.rows:
            raise Refused("bad_input", "a step takes at most %d rows (the session's batch); got %d"
                          % (self.tr.rows, rows))
        self._rows(x, y, 0, rows)
        t0 = time.ticks_us()
        total, right = self.tr.train_batch(self.tr.a[0], self.t, 0, rows)
        us = time.ticks_diff(time.ticks_us(), t0)
        if not train._finite(total):
            self.diverged = ("training diverged at step %d: the batch's loss is %r; stopped before "
                             "that step, and nothing can be saved" % (self.steps + 1, total))
            raise Refused("diverged", self.diverged)
        self.steps += 1
        return {"loss": total, "right": right, "rows": rows, "step": self.steps, "us": us}

    def evaluate(self, x, y):
        """The loss sum and right decisions of the net as it is, on every row of
        x and y, a batch at a time; no weight changes."""
        rows = self._count(x, y)
        tr = self.tr
        total = 0.0
        right = 0
        at = 0
        t0 = time.ticks_us()
        while at < rows:
            n = min(tr.rows, rows - at)
            self._rows(x, y, at, n)
            tr._forward(n)
            s, r = (tr._mse if tr.loss == "mse" else tr._loss)(self.t, 0, n)
            total += s
            right += r
            at += n
        return {"loss": total, "right": right, "rows": rows, "us": time.ticks_diff(time.ticks_us(), t0)}

    def save(self):
        """The net written over the stored model of the session's name, atomically
        (train.save); Refused when it diverged or the flash cannot take it."""
        if self.diverged:
            raise Refused("diverged", self.diverged + "; the stored model is unchanged")
        check_space(4 * self.net.param_count() + _FILE_ROOM, None)
        try:
            train.save(self.net, self.name)
        except OSError as e:
            from .refused import flash_error

            raise flash_error(e)
        return os.stat(store.path(self.name))[6]
