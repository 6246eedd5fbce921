"""The JSON model document: build, validate, read, write, and pack for the board.

The document is the human-readable form of a model (protocol/MODEL_FORMAT.md);
the board gets the compact binary form that protocol.modelfile packs.
"""

import json
import re
from pathlib import Path

import numpy as np

from .errors import AnneError
from .protocol import modelfile

FORMAT = "anne-model"
VERSION = 1
_META_KEYS = ("name", "inputs", "features", "labels", "threshold")


class ModelDocError(AnneError):
    pass


def _f32_list(values):
    # Shortest decimal that reads back as the same float32: the file stays readable.
    return [float(str(v)) for v in np.asarray(values, np.float32).reshape(-1)]


def build(meta, layers, source=None):
    """A document from metadata and layers whose arrays may be numpy arrays."""
    doc = {"format": FORMAT, "version": VERSION}
    doc.update({k: meta[k] for k in _META_KEYS if k in meta})
    if source:
        doc["source"] = source
    doc["layers"] = []
    for layer in layers:
        entry = {"type": layer["type"]}
        act = dict(layer["activation"])
        if "alpha" in act and act["name"] == "prelu":
            act["alpha"] = _f32_list(act["alpha"])
        if layer["type"] == "dense":
            w = np.asarray(layer["weights"], np.float32)
            entry["units"] = int(w.shape[0])
            entry["activation"] = act
            entry["weights"] = [_f32_list(row) for row in w]
            entry["bias"] = _f32_list(layer["bias"])
        else:
            entry["activation"] = act
        doc["layers"].append(entry)
    return doc


_NUMBER_LIST = re.compile(r"\[\s*([-+0-9.eE,\s]+?)\s*\]")


def write(doc, path):
    # One row of weights per line: readable, and diffs stay small.
    text = json.dumps(doc, indent=1)
    text = _NUMBER_LIST.sub(lambda m: "[" + ", ".join(m.group(1).split()).replace(",,", ",") + "]", text)
    Path(path).write_text(text + "\n")


def read(path):
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except OSError as e:
        raise ModelDocError("%s: cannot read (%s)" % (path, e.strerror or e))
    except ValueError as e:
        raise ModelDocError("%s: not a JSON file (%s); export one with anne-host export" % (path, e))
    to_layers(doc, str(path))  # validates
    return doc


def meta(doc):
    return {k: doc[k] for k in _META_KEYS if k in doc}


def to_layers(doc, where="model"):
    """Validate a document and turn it into modelfile.Layer objects."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelDocError("%s: not an ANNE model document (\"format\" must be %r)" % (where, FORMAT))
    if doc.get("version") != VERSION:
        raise ModelDocError("%s: document version %r; this anne-host reads version %d"
                            % (where, doc.get("version"), VERSION))
    width = doc.get("inputs")
    if not isinstance(width, int) or width < 1:
        raise ModelDocError("%s: \"inputs\" must be a positive whole number" % where)
    layers = []
    for i, entry in enumerate(doc.get("layers") or []):
        layer = _layer(entry, width, "%s: layer %d" % (where, i))
        layers.append(layer)
        width = layer.units
    if not layers:
        raise ModelDocError("%s: the model has no layers" % where)
    return layers


def _activation(spec, where):
    if isinstance(spec, str):
        spec = {"name": spec}
    name = spec.get("name") if isinstance(spec, dict) else None
    if name not in modelfile.ACTIVATIONS:
        raise ModelDocError("%s: unknown activation %r; known: %s"
                            % (where, name, ", ".join(modelfile.ACTIVATIONS)))
    slots = modelfile.PARAMS.get(name, ())
    params = [0.0, 0.0, 0.0]
    for k, key in enumerate(slots):
        value = spec.get(key)
        if key == "max_value" and value is None:
            value = float("inf")
        params[k] = float(value or 0.0)
    return name, params


def _array(values, n, where):
    try:
        a = np.asarray(values, np.float32).reshape(-1)
    except (TypeError, ValueError):
        raise ModelDocError("%s must be a list of numbers" % where)
    if a.size != n:
        raise ModelDocError("%s has %d values; expected %d" % (where, a.size, n))
    if not np.all(np.isfinite(a)):
        raise ModelDocError("%s holds NaN or infinite values (or values too large for float32)" % where)
    return a


def _layer(entry, width, where):
    kind = entry.get("type") if isinstance(entry, dict) else None
    if kind not in modelfile.KINDS:
        raise ModelDocError("%s: unknown layer type %r; known: %s" % (where, kind, ", ".join(modelfile.KINDS)))
    name, params = _activation(entry.get("activation", "linear"), where)
    units = entry.get("units", width) if kind == "dense" else width
    if not isinstance(units, int) or not 0 < units <= modelfile.MAX_UNITS:
        raise ModelDocError("%s: \"units\" must be a whole number from 1 to %d" % (where, modelfile.MAX_UNITS))
    layer = modelfile.Layer(kind, name, width, units, params)
    if kind == "dense":
        layer.weights = _array(entry.get("weights"), units * width, where + " weights")
        layer.bias = _array(entry.get("bias"), units, where + " bias")
    if name == "prelu":
        layer.alpha = _array(entry["activation"].get("alpha"), units, where + " prelu alpha")
    return layer


def pack(doc, where="model"):
    """The binary model file the board loads."""
    return modelfile.pack(meta(doc), to_layers(doc, where))
