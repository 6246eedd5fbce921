"""Condition monitoring from the host: store a monitor's configuration on the board, and
watch it work, on its own sensors (a window at a time) or on recorded readings replayed
at the sampling rate through the same code on the board (firmware/monitoring.py), with its
event log read back. What a window gives is the board's: features, the net's outputs,
the class, the actions and the board time from the window's last reading to its actions."""

import json
import time
from dataclasses import dataclass, field

import numpy as np

from . import csvdata
from .errors import AnneError


def read_config(path):
    try:
        with open(path) as f:
            config = json.load(f)
    except OSError as e:
        raise AnneError("cannot read %s: %s" % (path, e.strerror or e)) from None
    except ValueError as e:
        raise AnneError("%s is not a JSON file (%s)" % (path, e)) from None
    if not isinstance(config, dict):
        raise AnneError("%s: a monitor configuration is a JSON object (docs/MONITOR.md)" % path)
    return config


@dataclass
class Replay:
    """Recorded readings for a session's inputs, and each reading's true state if the file
    has a label column (named state, label or class)."""

    readings: np.ndarray  # (n, inputs) float32
    truth: list = None
    path: str = ""


def load_replay(path, session, states=None, label_column=None):
    """The readings of the CSV file ``path`` for the monitor ``session`` (monitor_start's
    reply): its columns found by the inputs' names, else the first numeric ones; with
    ``label_column``, each reading's true state too (one of ``states``)."""
    names = session["names"]
    named = all(not n.startswith("input ") for n in names)
    samples = csvdata.load(path, session["inputs"], names if named else None, states,
                           label_column=label_column)
    truth = list(samples.y) if samples.y is not None else None
    return Replay(np.asarray(samples.x, np.float32), truth, str(path))


@dataclass
class Watch:
    """What a monitoring run saw: each window's result (the board's), in order."""

    windows: list = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def add(self, results, on_window=None):
        for r in results:
            self.windows.append(r)
            if on_window:
                on_window(r)


def replay(board, data, fast=False, duration=None, on_window=None):
    """Feed ``data`` (a Replay) to the board's monitor session, a window of readings per
    request, at the sampling rate unless ``fast``; returns a Watch."""
    info = board.monitor_info
    window, period = info["window"], info["period_ms"]
    watch = Watch()
    n = len(data.readings) // window * window
    for start in range(0, n, window):
        chunk = data.readings[start:start + window]
        t_ms = int(start * period)
        if duration is not None and t_ms >= duration * 1000:
            break
        if not fast:  # the readings arrive as a sensor's would
            due = watch.started + (start + window) * period / 1000.0
            time.sleep(max(0.0, due - time.monotonic()))
        watch.add(board.monitor_feed(chunk, t_ms), on_window)
    return watch


def live(board, duration=None, on_window=None):
    """Windows of the board's own readings until ``duration`` seconds or Ctrl-C."""
    watch = Watch()
    try:
        while duration is None or time.monotonic() - watch.started < duration:
            watch.add(board.monitor_read(), on_window)
    except KeyboardInterrupt:
        pass
    return watch


def acted_state(actions, rules, labels):
    """The state the actions taken say, for a confusion matrix against the true one: the
    class of the last rule that is on (rules listed from mild to severe), else the first."""
    state = labels[0]
    for k, rule in enumerate(rules):
        if actions >> k & 1:
            state = rule.get("class", labels[rule.get("output", 0)])
    return state
