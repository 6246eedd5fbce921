"""Random relu-softmax dense nets as model documents, and what the board must compute for
them, for the tests that fill a heap with one (tests/e2e and tests/board)."""

import numpy as np


def dense_doc(rng, sizes):
    """A relu-softmax net of layer widths ``sizes``: Glorot-uniform weights, small biases."""
    layers = []
    for n_in, n_out, act in zip(sizes, sizes[1:], ("relu", "softmax")):
        limit = np.sqrt(6.0 / (n_in + n_out))
        layers.append({"type": "dense", "units": n_out, "activation": act,
                       "weights": rng.uniform(-limit, limit, (n_out, n_in)).astype(np.float32).tolist(),
                       "bias": rng.uniform(-0.1, 0.1, n_out).astype(np.float32).tolist()})
    return {"format": "anne-model", "version": 1, "name": "large", "inputs": sizes[0], "layers": layers}


def forward(doc, x):
    # float64 from the float32 weights: what the board's float32 approximates.
    h = np.asarray(x, np.float64)
    for layer in doc["layers"]:
        h = h @ np.asarray(layer["weights"], np.float32).astype(np.float64).T + np.asarray(layer["bias"], np.float32)
        if layer["activation"] == "relu":
            h = np.maximum(h, 0)
        else:
            e = np.exp(h - h.max(axis=1, keepdims=True))
            h = e / e.sum(axis=1, keepdims=True)
    return h
