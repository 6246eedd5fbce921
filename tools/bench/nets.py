"""The benchmark's nets: the IRIS models, random dense nets, and the family 64-h-h/2-10
searched for the largest model, with the paper-style baseline's view of each."""

from pathlib import Path

import numpy as np

from anne_host import model_doc, quantize

MODELS = Path(__file__).resolve().parents[2] / "models"
SEED = 20250106  # fixed: the random nets and inputs are the same in every run
ROWS = 300  # random inputs per model for the output differences
TARGET_PARAMS = 40000  # the "large model" size
TARGET_INT8_PARAMS = 150000  # the int8 issue's
INT8_TARGET = [512, 288, 10]  # 150,634 parameters, which the server takes as int8
COMPACT_TARGET = [160, 160, 90]  # 40,250 parameters in narrower layers than the family's


class BenchError(Exception):
    # Here, in the module every other one imports, so that all of them raise the same one.
    pass


def dense_doc(name, sizes, rng):
    """A dense net with layer widths ``sizes``: relu hidden layers, softmax output, weights
    drawn as Keras' Glorot-uniform initialiser draws them, small random biases."""
    layers = []
    for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        limit = np.sqrt(6.0 / (n_in + n_out))
        act = "softmax" if k == len(sizes) - 2 else "relu"
        layers.append({"type": "dense", "activation": {"name": act},
                       "weights": rng.uniform(-limit, limit, (n_out, n_in)).astype(np.float32),
                       "bias": rng.uniform(-0.1, 0.1, n_out).astype(np.float32)})
    return model_doc.build({"name": name, "inputs": sizes[0]}, layers)


def largest_family(h):
    # The family searched for the largest model: 64 inputs, two hidden layers, 10 classes.
    return [64, h, h // 2, 10]


def family_doc(h):
    return dense_doc("-".join(map(str, largest_family(h))), largest_family(h), np.random.default_rng(h))


def family_int8(h):
    """The family's model of size h quantized to int8, calibrated on random inputs."""
    return quantize.quantize(family_doc(h), np.random.default_rng(h).standard_normal((64, 64)))


def first_with(n_params):
    # The smallest h of the family with at least n_params parameters.
    h = 32
    while params(family_doc(h)) < n_params:
        h += 8
    return h


def shapes(doc):
    """The paper's hand-written layer list, (inputs, units, activation) per layer."""
    out, width = [], doc["inputs"]
    for layer in doc["layers"]:
        act = layer["activation"]
        act = act if isinstance(act, str) else act["name"]
        if layer["type"] != "dense" or act not in ("linear", "relu", "sigmoid", "tanh", "softmax"):
            raise BenchError("the baseline handles dense layers with linear/relu/sigmoid/tanh/softmax")
        out.append((width, layer["units"], act))
        width = layer["units"]
    return out


def baseline_bytes(doc):
    """The weights in the order paper_baseline.load reads them: per layer the rows
    (one per unit), then the biases, as float32."""
    parts = []
    for layer in doc["layers"]:
        parts.append(np.asarray(layer["weights"], "<f4").tobytes())
        parts.append(np.asarray(layer["bias"], "<f4").tobytes())
    return b"".join(parts)


def params(doc):
    return int(sum(np.asarray(l["weights"]).size + np.asarray(l["bias"]).size for l in doc["layers"]))


def iris_inputs(rng, rows):
    # Raw measurements in centimetres (the models carry their input scaling), drawn
    # over the range each feature spans in the IRIS data.
    data = np.loadtxt(MODELS / "iris.csv", delimiter=",", skiprows=1, usecols=range(4))
    return rng.uniform(data.min(0), data.max(0), (rows, 4)).astype(np.float32)


def warm_doc():
    # A tiny model with every activation the benchmark uses: loaded once before any
    # measurement, so that lazily imported modules are not counted as a model's heap.
    rng = np.random.default_rng(0)
    layers = [{"type": "dense", "activation": {"name": act},
               "weights": rng.uniform(-1, 1, (2, 2)).astype(np.float32),
               "bias": np.zeros(2, np.float32)}
              for act in ("relu", "sigmoid", "tanh", "linear", "softmax")]
    return model_doc.build({"name": "warm", "inputs": 2}, layers)
