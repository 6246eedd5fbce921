"""Streaming samples through a board and turning its replies into evidence:
outputs, decisions, accuracy, confusion matrix, per-class scores, board timings.

Everything reported comes from the board's answers; the host only counts. Two
clocks are kept apart: the time per sample the board measures around each
inference (``time.ticks_us``; on the virtual Pico that is the host CPU running
the MicroPython Unix port, not a Pico's time), and the end-to-end rate, host
wall time over the whole stream, the link included.
"""

import time

import numpy as np

from . import metrics
from .errors import AnneError


class Interrupted(AnneError):
    """Ctrl-C during a stream: what was received is still reported."""

    exit_code = 130


# What the board's "us" fields measure, by where they were measured (JSON "latency_clock").
BOARD_CLOCK = "board"           # a microcontroller's own time.ticks_us
VIRTUAL_CLOCK = "host-cpu"      # the virtual Pico: the MicroPython Unix port on this PC


def is_virtual(info):
    """Whether a board's hello reply comes from the virtual Pico (the Unix port), whose
    timings are this PC's and whose flash is a folder."""
    return bool(info) and info.get("platform") in ("linux", "darwin")


def clock_of(info):
    return VIRTUAL_CLOCK if is_virtual(info) else BOARD_CLOCK


def label_names(model):
    """The model's class names: its labels, else the class indices as text."""
    names = model.get("labels") or [str(k) for k in range(max(2, model["outputs"]))]
    return [str(v) for v in names]


class Run:
    """The board's answers for the rows streamed so far. When the stream stops
    midway (the link fails, the board refuses, Ctrl-C), ``error`` holds why and
    the answers already received are kept."""

    def __init__(self, samples, model, clock=BOARD_CLOCK):
        self.samples = samples
        self.model = model
        self.clock = clock
        self.outputs = np.zeros((0, model["outputs"]), np.float32)
        self.classes = np.zeros(0, np.int64)
        self.us = np.zeros(0, np.int64)
        self.seconds = 0.0
        self.error = None

    @property
    def done(self):
        return len(self.classes)

    @property
    def complete(self):
        return self.done == len(self.samples)

    def labels(self):
        return label_names(self.model)

    def predicted(self):
        names = self.labels()
        return [names[k] if k < len(names) else str(k) for k in self.classes]

    def stopped_line(self):
        """The file line of the first row without an answer, if any."""
        return None if self.complete else self.samples.lines[self.done]


def stream(client, samples, model, progress=None):
    """Send every row of ``samples`` to the board (pipelined batches)."""
    run = Run(samples, model, clock_of(getattr(client, "info", None)))
    outs, classes, times = [], [], []
    start = time.perf_counter()
    try:
        for y, k, us in client.batch(samples.x, model["outputs"]):
            outs.append(y)
            classes.append(k)
            times.append(us)
            if progress:
                progress(len(k))
    except AnneError as e:
        run.error = e
    except KeyboardInterrupt:
        run.error = Interrupted("interrupted")
    run.seconds = time.perf_counter() - start
    if outs:
        run.outputs = np.vstack(outs)
        run.classes = np.concatenate(classes).astype(np.int64)
        run.us = np.concatenate(times).astype(np.int64)
    return run


def summary(run):
    """The evaluation as a JSON-ready dict (the documented ``eval --json`` schema)."""
    labels = run.labels()
    actual = run.samples.y[:run.done]
    result = metrics.evaluate(actual, run.predicted(), labels)
    lat = metrics.latency(run.us.tolist())
    board_us = float(run.us.sum())
    return {
        "model": run.model.get("name"),
        "file": run.samples.path,
        "columns": list(run.samples.columns),
        "label_column": run.samples.label_column,
        "samples": result["samples"],
        "complete": run.complete,
        "stopped_at_line": run.stopped_line(),
        "accuracy": result["accuracy"],
        "correct": result["correct"],
        "labels": labels,
        "confusion_matrix": result["confusion_matrix"],
        "per_class": result["per_class"],
        "macro_f1": result["macro_f1"],
        "latency_us": lat,
        "latency_clock": run.clock,
        "samples_per_s": run.done / run.seconds if run.seconds else None,
        "board_samples_per_s": run.done / (board_us * 1e-6) if board_us else None,
    }


def predictions(run):
    """One dict per answered row: the ``predict --json`` / ``infer --json`` shape."""
    predicted = run.predicted()
    return [{"line": run.samples.lines[i], "outputs": [float(v) for v in run.outputs[i]],
             "label": predicted[i], "board_us": int(run.us[i])} for i in range(run.done)]


def compare(run, other):
    """How two models' answers on the same rows differ: decisions that agree and
    the largest output difference (the rows both answered)."""
    n = min(run.done, other.done)
    agree = int(np.sum(run.classes[:n] == other.classes[:n]))
    diff = np.abs(run.outputs[:n].astype(np.float64) - other.outputs[:n]) if n else np.zeros(0)
    return {"rows": n, "decisions_agree": agree,
            "max_abs_output_diff": float(diff.max()) if diff.size else None}
