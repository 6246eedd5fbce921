"""Evaluation results as text for people, and the confusion matrix as a picture;
what eval prints (a report, or with --json one document).

The confusion table is laid out as in the AI-ANNE paper: actual classes in rows,
predicted classes in columns, the corner cell reading "actual \\ predicted".
Tables are plain text with space-aligned columns, so they survive copying into
an e-mail or a lab notebook.
"""

import json
from pathlib import Path

from . import evaluate
from .errors import AnneError

CORNER = "actual \\ predicted"
GAP = "  "  # between table columns


def confusion_table(cm, labels):
    """The confusion matrix ``cm`` (rows actual, columns predicted) as aligned text."""
    header = [CORNER] + [str(label) for label in labels]
    body = [[str(label)] + [str(int(n)) for n in row] for label, row in zip(labels, cm)]
    return _table([header] + body)


def per_class_table(per_class):
    """Precision, recall, F1 (3 decimals) and support of each class, one row each."""
    rows = [["class", "precision", "recall", "F1", "support"]]
    for label, s in per_class.items():
        rows.append([str(label), "%.3f" % s["precision"], "%.3f" % s["recall"],
                     "%.3f" % s["f1"], str(s["support"])])
    return _table(rows)


# Where the per-sample times come from (evaluate.BOARD_CLOCK / VIRTUAL_CLOCK), said in full.
CLOCKS = {
    "board": "board time per sample (the board's time.ticks_us)",
    "host-cpu": "virtual Pico time per sample (this PC's CPU running the MicroPython Unix port, "
                "not a Pico's time)",
}


def latency_line(lat, clock="board"):
    """One line such as ``board time per sample (the board's time.ticks_us): mean 123.4 µs, p50 ...``."""
    line = CLOCKS[clock] + ": "
    if lat is None or lat.get("mean") is None:
        return line + "no samples timed"
    return line + ", ".join("%s %s" % (key, _microseconds(lat[key])) for key in ("mean", "p50", "p95", "max"))


def rate_line(samples_per_s):
    """The end-to-end rate, which is not the board's: host wall time, the link included."""
    return "end to end: %s samples/s (wall time on this PC, including the link)" % format(samples_per_s, ",.0f")


def evaluation_report(name, metrics, lat, samples_per_s, title=None, clock="board", columns=None):
    """The whole evaluation of model ``name``: accuracy, both tables and the timings.

    ``metrics`` is what metrics.evaluate returns and ``lat`` what metrics.latency
    returns (or None when nothing was timed); ``clock`` says where ``lat`` was
    measured and ``columns`` (a line) which columns of the file were read.
    """
    head = (title or "evaluation of %s" % name) + ("\n" + columns if columns else "")
    parts = [
        "%s\naccuracy %s" % (head, accuracy(metrics)),
        confusion_table(metrics["confusion_matrix"], metrics["labels"]),
        per_class_table(metrics["per_class"]) + "\nmacro F1 %.3f" % metrics["macro_f1"],
    ]
    timing = ([latency_line(lat, clock)] if lat is not None else []) + \
             ([rate_line(samples_per_s)] if samples_per_s is not None else [])
    if timing:
        parts.append("\n".join(timing))
    return "\n\n".join(parts)


def accuracy(metrics):
    """Such as ``90.0 % (18/20)``."""
    return "%.1f %% (%d/%d)" % (100 * metrics["accuracy"], metrics["correct"], metrics["samples"])


def comparison_table(a, b, agreement):
    """Two evaluations of the same rows side by side, and how far apart they are."""
    rows = [["", str(a["model"]), str(b["model"])]]
    rows.append(["accuracy"] + [accuracy(r) for r in (a, b)])
    rows.append(["macro F1"] + ["%.3f" % r["macro_f1"] for r in (a, b)])
    # Both models ran on the same board, so one clock names the row.
    where = "virtual Pico µs/sample (host CPU)" if a.get("latency_clock") == "host-cpu" else "board µs/sample"
    rows.append([where] + [_microseconds(r["latency_us"]["mean"])
                                       if r["latency_us"] and r["latency_us"].get("mean") is not None
                                       else "-" for r in (a, b)])
    text = _table(rows)
    diff = agreement["max_abs_output_diff"]
    text += "\ndecisions agree on %d of %d rows; largest output difference %s" % (
        agreement["decisions_agree"], agreement["rows"], "-" if diff is None else "%.4g" % diff)
    return text


def show_eval(run, other, as_json, plot=None):
    """What eval prints: the report of ``run``, with ``other`` (the same rows, another
    model) beside it if given; with ``as_json`` one document instead."""
    result = evaluation(run, as_json, plot)
    if other is not None:
        compared = evaluate.compare(run, other)
        result = {"eval": result, "compare": evaluation(other, as_json), "agreement": compared}
        if not as_json:
            print(comparison_table(result["eval"], result["compare"], compared))
    if as_json:
        print(json.dumps(result, indent=1))


def evaluation(run, as_json, plot=None, title=None):
    """The summary of ``run``, printed as a report unless ``as_json``; its confusion matrix
    drawn into the PNG file ``plot`` if given. Returns the summary."""
    result = evaluate.summary(run)
    plot_title = title or "%s on %s" % (result["model"], Path(run.samples.path).name)
    title = title or "%s on %s" % (result["model"], run.samples.path)
    if not run.complete:
        title += " (stopped: the first %d of %d rows)" % (run.done, len(run.samples))
        plot_title += " (first %d of %d rows)" % (run.done, len(run.samples))
    if plot:
        plot_confusion(result["confusion_matrix"], result["labels"], plot, plot_title)
    if not as_json:
        print(evaluation_report(result["model"], result, result["latency_us"],
                                result["samples_per_s"], title=title, clock=run.clock,
                                columns=run.samples.describe()))
        print()
    return result


def plot_confusion(cm, labels, path, title=None):
    """Write the confusion matrix as a PNG heat map with the count in every cell."""
    fig = figure(_figure_size(labels))
    from matplotlib.ticker import MaxNLocator

    ax = fig.add_subplot()
    counts = [[int(n) for n in row] for row in cm]
    top = max((n for row in counts for n in row), default=0)
    # vmax at least 1: an all-zero matrix would otherwise get a scale of -0.1 to 0.1.
    image = ax.imshow(counts, cmap="Blues", vmin=0, vmax=max(top, 1))
    # Counts are whole numbers; without this a small matrix gets ticks like 0.2, 0.4.
    fig.colorbar(image, ax=ax, label="samples", ticks=MaxNLocator(integer=True))
    _write_counts(ax, counts, top)
    _label_axes(ax, labels, title)
    save(fig, path)


def plot_history(history, path, title=None):
    """Write the loss and accuracy of each epoch (and the validation's, if measured) as a PNG."""
    fig = figure((9.0, 3.6))
    epochs = [e["epoch"] for e in history]
    for k, key in enumerate(("loss", "accuracy")):
        ax = fig.add_subplot(1, 2, k + 1)
        ax.plot(epochs, [e[key] for e in history], label="training rows (before each step)")
        if history and "val_" + key in history[0]:
            ax.plot(epochs, [e["val_" + key] for e in history], label="validation rows")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        if key == "accuracy":
            ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    save(fig, path)


def figure(size):
    try:
        # Imported here so that anne-host works without matplotlib until a plot is asked for.
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise AnneError("plotting needs matplotlib: pip install 'anne-host[plot]'") from None
    # A Figure on an Agg canvas rather than pyplot: no window, and no change to the
    # backend of a program (or notebook) that calls this.
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save(fig, path):
    try:
        fig.savefig(path, format="png", dpi=150)
    except OSError as e:
        raise AnneError("cannot write %s: %s" % (path, e.strerror or e)) from None


# --- helpers ---------------------------------------------------------------

def _table(rows):
    """Rows of cells as text: the first column left-aligned, the others right-aligned."""
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])]
        lines.append(GAP.join(cells).rstrip())
    return "\n".join(lines)


def _microseconds(us):
    return "%s µs" % format(us, ",.1f")


def _figure_size(labels):
    # Room for each class so that counts and tick labels stay readable as classes grow.
    side = 3.0 + 0.6 * len(labels)
    return (side + 1.2, side)


def _write_counts(ax, counts, top):
    for i, row in enumerate(counts):
        for j, n in enumerate(row):
            # White on the dark cells, black on the light ones, so every count is legible.
            colour = "white" if top and n > top / 2 else "black"
            ax.text(j, i, str(n), ha="center", va="center", color=colour, fontsize=12)


def _label_axes(ax, labels, title):
    ticks = range(len(labels))
    ax.set_xticks(ticks, [str(label) for label in labels])
    ax.set_yticks(ticks, [str(label) for label in labels])
    # Long class names would overlap under the columns; slanted they fit.
    if any(len(str(label)) > 6 for label in labels):
        for tick in ax.get_xticklabels():
            tick.set_rotation(30)
            tick.set_horizontalalignment("right")
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    if title:
        ax.set_title(title)
