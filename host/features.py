"""The monitor's window features on the host, as the board computes them (firmware/
monitoring.py): to train a model on the numbers the board will give it, and to check
the board's. Windows are tumbling; per input, each named feature in order."""

import numpy as np

FEATURES = ("raw", "mean", "std", "min", "max", "rms", "slope")


def window_features(window, names, period_ms):
    """The features of one window: ``window`` (samples, inputs) of readings, ``names``
    some of FEATURES; per input, each feature (raw: every reading), inputs in order.
    std is the population's; slope is the least-squares slope per second."""
    w = np.asarray(window, np.float64)
    if w.ndim != 2 or not len(w):
        raise ValueError("a window is a (samples, inputs) array of readings")
    t = np.arange(len(w)) * (period_ms / 1000.0)
    out = []
    for col in w.T:
        for name in names:
            if name == "raw":
                out.extend(col.tolist())
            elif name == "mean":
                out.append(col.mean())
            elif name == "std":
                out.append(col.std())
            elif name == "min":
                out.append(col.min())
            elif name == "max":
                out.append(col.max())
            elif name == "rms":
                out.append(np.sqrt(np.mean(col * col)))
            elif name == "slope":
                out.append(np.polyfit(t, col, 1)[0] if len(col) > 1 else 0.0)
            else:
                raise ValueError("unknown feature %r; features: %s" % (name, ", ".join(FEATURES)))
    return np.asarray(out)


def windows(readings, size, names, period_ms):
    """Every whole tumbling window's features of ``readings`` (samples, inputs), as the
    board forms them: rows of features, one per window."""
    r = np.asarray(readings, np.float64)
    n = len(r) // size
    return np.array([window_features(r[k * size:(k + 1) * size], names, period_ms) for k in range(n)])
