"""A network drawn as a picture, for seeing how it works: a column of neurons per layer,
each coloured by its output for one input (from the board's trace), and the dense
layers' weights as lines, red for positive and blue for negative, thicker for larger;
the inputs labelled with the feature names, the outputs with the class names."""

import numpy as np

from . import model_doc
from .report import figure, save

MAX_EDGES = 3000  # per layer: beyond this only the largest weights are drawn
MAX_NAMED = 24  # values written beside the neurons only in columns up to this tall


def weights(doc):
    """Per layer: the dense layer's real-valued weights (units, inputs), or None."""
    out = []
    for entry, layer in zip(doc["layers"], model_doc.to_layers(doc)):
        if layer.kind != "dense":
            out.append(None)
            continue
        w = np.asarray(layer.weights, np.float64).reshape(layer.units, layer.inputs)
        if model_doc.is_int8(doc):  # int8 levels times each unit's scale
            w = w * np.asarray(entry["quant"]["weight_scale"], np.float64)[:, None]
        out.append(w)
    return out


def draw(doc, trace, x, path, title=None):
    """Write the picture of ``doc`` for the input ``x`` and its ``trace`` (one dict per
    layer with "out", as the board's trace command gives it) to the PNG file ``path``."""
    columns = [np.asarray(x, np.float64)] + [np.asarray(t["out"], np.float64) for t in trace]
    tallest = max(len(c) for c in columns)
    fig = figure((2.2 + 1.9 * len(columns), 1.2 + 0.32 * min(tallest, 40)))
    ax = fig.add_subplot()
    ax.set_axis_off()
    ys = [_heights(len(c), tallest) for c in columns]
    for k, w in enumerate(weights(doc)):
        if w is None:  # an activation layer: one line per neuron, to the same neuron
            for y0, y1 in zip(ys[k], ys[k + 1]):
                ax.plot([k, k + 1], [y0, y1], color="0.75", lw=0.8, zorder=1)
            continue
        _edges(ax, w, k, ys[k], ys[k + 1])
    cmap = _colormap()
    for k, (values, y) in enumerate(zip(columns, ys)):
        top = np.nanmax(np.abs(values[np.isfinite(values)]), initial=0.0) or 1.0
        ax.scatter(np.full(len(y), k), y, s=220, c=np.clip(values / top, -1, 1), cmap=cmap,
                   vmin=-1, vmax=1, edgecolors="0.2", linewidths=0.8, zorder=3)
        if len(values) <= MAX_NAMED:
            for v, yy in zip(values, y):
                ax.annotate("%.3g" % v, (k, yy), xytext=(0, -13), textcoords="offset points",
                            ha="center", va="top", fontsize=6, zorder=4)
    _names(ax, doc.get("features"), ys[0], 0, "right")
    _names(ax, _output_names(doc, len(columns[-1])), ys[-1], len(columns) - 1, "left")
    heads = ["input"] + ["%d: %s %s" % (k, t["kind"], t["activation"]) for k, t in enumerate(trace)]
    for k, head in enumerate(heads):
        ax.text(k, tallest + 0.6, head, ha="center", va="bottom", fontsize=8)
    ax.set_xlim(-1.2, len(columns) - 0.3)
    ax.set_ylim(-1, tallest + 1.4)
    fig.suptitle(title or "%s on one input (colour: each layer's output, scaled per layer)"
                 % doc.get("name", "model"), fontsize=9)
    save(fig, path)


def _heights(n, tallest):
    # Centred in the tallest column; the first neuron on top.
    return list(np.arange(n)[::-1] + (tallest - n) / 2.0)


def _edges(ax, w, k, y_in, y_out):
    size = np.abs(w)
    top = size.max() or 1.0
    order = np.argsort(size, axis=None)[::-1][:MAX_EDGES][::-1]  # the largest drawn last
    for flat in order:
        j, i = divmod(int(flat), w.shape[1])
        strength = size[j, i] / top
        ax.plot([k, k + 1], [y_in[i], y_out[j]], color="tab:red" if w[j, i] > 0 else "tab:blue",
                lw=0.2 + 2.3 * strength, alpha=0.15 + 0.75 * strength, zorder=2)


def _names(ax, names, ys, x, side):
    if not names:
        return
    dx = -0.18 if side == "right" else 0.18
    for name, y in zip(names, ys):
        ax.text(x + dx, y, str(name), ha=side, va="center", fontsize=8)


def _output_names(doc, n):
    labels = doc.get("labels") or []
    if n == 1 and len(labels) == 2:  # one sigmoid output: its value is the second class's
        return ["%s (vs %s)" % (labels[1], labels[0])]
    return labels[:n]


def _colormap():
    from matplotlib import colormaps

    return colormaps["coolwarm"]
