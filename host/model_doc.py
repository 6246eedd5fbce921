"""The JSON model document: build, validate, read, write, and pack for the board.

The document is the human-readable form of a model (protocol/MODEL_FORMAT.md);
the board gets the compact binary form that protocol.modelfile packs.
"""

import io
import json
import re
from pathlib import Path

import numpy as np

from .errors import AnneError
from .protocol import modelcheck, modelfile

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


def names_problem(features, labels, inputs, outputs, options=("\"features\"", "\"labels\"")):
    """What is wrong with the number of feature names or labels for a model of ``inputs``
    inputs and ``outputs`` outputs, as one sentence, or None. ``options`` names the two
    where the message should point (document keys, or --features and --labels)."""
    if features and len(features) != inputs:
        return ("%s names %d input%s (%s), but the model takes %d: name every input, in order"
                % (options[0], len(features), "" if len(features) == 1 else "s", ", ".join(map(str, features)),
                   inputs))
    # One output is a decision against the threshold: two labels, below and above it.
    wanted = 2 if outputs == 1 else outputs
    if labels and len(labels) != wanted:
        return ("%s names %d class%s (%s), but the model has %d output%s, so it needs %d labels%s"
                % (options[1], len(labels), "" if len(labels) == 1 else "es", ", ".join(map(str, labels)),
                   outputs, "" if outputs == 1 else "s", wanted,
                   " (below, above the threshold)" if outputs == 1 else ", one per output in output order"))
    return None


def is_int8(doc):
    return isinstance(doc, dict) and doc.get("dtype") == "int8"


def to_layers(doc, where="model"):
    """Validate a document and turn it into modelfile.Layer objects (an int8
    document's layers carry their quantization record and integer arrays)."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise ModelDocError("%s: not an ANNE model document (\"format\" must be %r)" % (where, FORMAT))
    if doc.get("version") != VERSION:
        raise ModelDocError("%s: document version %r; this anne-host reads version %d"
                            % (where, doc.get("version"), VERSION))
    dtype = doc.get("dtype", "float32")
    if dtype not in modelfile.DTYPES:
        raise ModelDocError("%s: unknown \"dtype\" %r; known: %s" % (where, dtype, ", ".join(modelfile.DTYPES)))
    width = doc.get("inputs")
    if not isinstance(width, int) or isinstance(width, bool) or width < 1:
        raise ModelDocError("%s: \"inputs\" must be a positive whole number" % where)
    if dtype == "int8":
        _input_quant(doc.get("input_quant"), width, where)
    layers = []
    for i, entry in enumerate(doc.get("layers") or []):
        layer = _layer(entry, width, "%s: layer %d" % (where, i), dtype)
        layers.append(layer)
        width = layer.units
    if not layers:
        raise ModelDocError("%s: the model has no layers" % where)
    problem = names_problem(doc.get("features"), doc.get("labels"), doc["inputs"], width)
    if problem:
        raise ModelDocError("%s: %s" % (where, problem))
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


def _layer(entry, width, where, dtype="float32"):
    kind = entry.get("type") if isinstance(entry, dict) else None
    if kind not in modelfile.KINDS:
        raise ModelDocError("%s: unknown layer type %r; known: %s" % (where, kind, ", ".join(modelfile.KINDS)))
    name, params = _activation(entry.get("activation", "linear"), where)
    units = entry.get("units", width) if kind == "dense" else width
    if not isinstance(units, int) or not 0 < units <= modelfile.MAX_UNITS:
        raise ModelDocError("%s: \"units\" must be a whole number from 1 to %d" % (where, modelfile.MAX_UNITS))
    layer = modelfile.Layer(kind, name, width, units, params)
    if dtype == "int8":
        return _int8_layer(layer, entry.get("quant"), where)
    if kind == "dense":
        layer.weights = _array(entry.get("weights"), units * width, where + " weights")
        layer.bias = _array(entry.get("bias"), units, where + " bias")
    if name == "prelu":
        layer.alpha = _array(entry["activation"].get("alpha"), units, where + " prelu alpha")
    return layer


# -- int8 documents (MODEL_FORMAT.md, "Int8 models") ---------------------------

def _is_whole(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _whole(spec, key, lo, hi, where, default=None):
    value = spec.get(key, default)
    if not _is_whole(value) or not lo <= value <= hi:
        raise ModelDocError("%s \"%s\" must be a whole number from %d to %d, not %r"
                            % (where, key, lo, hi, value))
    return value


def _scale(spec, key, where, lo=1e-38, hi=3.4e38):
    value = spec.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise ModelDocError("%s \"%s\" must be a positive float32 number from %g to %g, not %r"
                            % (where, key, lo, hi, value))
    return float(value)


def _ints(values, n, lo, hi, where, row=None):
    # A list of whole numbers in lo..hi (weights: also a list of rows of ``row``), as Python ints.
    if not isinstance(values, list):
        raise ModelDocError("%s must be a list of whole numbers" % where)
    flat = values
    if row is not None and values and all(isinstance(v, list) for v in values):
        if any(len(v) != row for v in values):
            raise ModelDocError("%s: every row must have %d values" % (where, row))
        flat = [v for r in values for v in r]
    if len(flat) != n:
        raise ModelDocError("%s has %d values; expected %d" % (where, len(flat), n))
    for v in flat:
        if not _is_whole(v):
            raise ModelDocError("%s must hold whole numbers, not %r" % (where, v))
        if not lo <= v <= hi:
            raise ModelDocError("%s holds %d, outside %d..%d" % (where, v, lo, hi))
    return list(flat)


def _input_quant(spec, inputs, where):
    # multiplier and shift: one whole number for every input, or a list of one per input.
    where += ": \"input_quant\""
    if not isinstance(spec, dict):
        raise ModelDocError("%s must be an object with scale, zero_point, multiplier and shift "
                            "(an int8 model needs it)" % where)
    rule = []
    for key, lo, hi in (("multiplier", 1 << 14, (1 << 15) - 1), ("shift", -128, 127)):
        if isinstance(spec.get(key), list):
            rule.append(_ints(spec[key], inputs, lo, hi, "%s %s" % (where, key)))
        else:
            rule.append(_whole(spec, key, lo, hi, where))
    return (_scale(spec, "scale", where), _whole(spec, "zero_point", -128, 127, where)) + tuple(rule)


def _int8_layer(layer, spec, where):
    if layer.activation in modelfile.NO_INT8:
        raise ModelDocError("%s: %s has no int8 form; export the model as float" % (where, layer.activation))
    if not isinstance(spec, dict):
        raise ModelDocError("%s: an int8 layer needs a \"quant\" object" % where)
    where += " quant"
    dense = layer.kind == "dense"
    out_scale = _scale(spec, "out_scale", where, *modelfile.OUT_SCALES)
    out_zp = _whole(spec, "out_zp", -128, 127, where)
    req_zp = _whole(spec, "req_zp", -128, 127, where, None if dense else 0)
    lo = _whole(spec, "lo", -128, 127, where, None if dense else -128)
    hi = _whole(spec, "hi", -128, 127, where, None if dense else 127)
    if lo > hi:
        raise ModelDocError("%s: \"lo\" %d is above \"hi\" %d" % (where, lo, hi))
    has_lut, has_exp = "lut" in spec, "exp" in spec
    if has_lut and has_exp:
        raise ModelDocError("%s has both a \"lut\" and an \"exp\" table; a layer has at most one" % where)
    if has_exp != (layer.activation == "softmax"):
        raise ModelDocError("%s: %s" % (where, "a softmax layer needs the \"exp\" table" if not has_exp
                                        else "an \"exp\" table belongs to softmax, not %s" % layer.activation))
    if not dense and not (has_lut or has_exp):
        raise ModelDocError("%s: an int8 activation layer needs a \"lut\" (or softmax's \"exp\") table" % where)
    flags = modelfile.FLAG_LUT if has_lut else (modelfile.FLAG_SOFTMAX if has_exp else 0)
    layer.quant = (out_scale, out_zp, req_zp, lo, hi, flags)
    if dense:
        n = layer.units
        layer.weights = _ints(spec.get("weights"), n * layer.inputs, -128, 127, where + " weights",
                              row=layer.inputs)
        layer.bias = _ints(spec.get("bias"), n, -(1 << 31), (1 << 31) - 1, where + " bias")
        layer.multiplier = _ints(spec.get("multiplier"), n, 0, (1 << 15) - 1, where + " multiplier")
        layer.shift = _ints(spec.get("shift"), n, modelfile.SHIFT_MIN, modelfile.SHIFT_MAX, where + " shift")
        for j in range(n):
            row = layer.weights[j * layer.inputs:(j + 1) * layer.inputs]
            if abs(layer.bias[j]) + 255 * sum(abs(v) for v in row) >= 1 << 31:
                raise ModelDocError("%s: unit %d's int32 accumulator could overflow "
                                    "(|bias| + 255 * sum|W| reaches 2^31)" % (where, j))
    if has_lut:
        layer.table = _ints(spec["lut"], 256, -128, 127, where + " lut")
    elif has_exp:
        layer.table = _ints(spec["exp"], 256, 0, (1 << 32) - 1, where + " exp")
    return layer


def pack(doc, where="model"):
    """The binary model file the board loads."""
    layers = to_layers(doc, where)
    problem = modelcheck.replies_problem(meta(doc), layers)  # the board would refuse it
    if problem:
        raise ModelDocError("%s: %s" % (where, problem))
    if is_int8(doc):
        return modelfile.pack(meta(doc), layers, _input_quant(doc["input_quant"], doc["inputs"], where))
    return modelfile.pack(meta(doc), layers)


def file_meta(blob, where="model"):
    """The metadata of a packed model file (``.anne``), checked as a board would check
    the file, and its feature and label counts as a document's are."""
    try:
        meta_, layers = modelfile.load(io.BytesIO(blob), keep=False)
    except modelfile.ModelFileError as e:
        raise ModelDocError("%s: %s" % (where, e))
    problem = (names_problem(meta_.get("features"), meta_.get("labels"), layers[0].inputs, layers[-1].units)
               or modelcheck.replies_problem(meta_, layers))
    if problem:
        raise ModelDocError("%s: %s" % (where, problem))
    return meta_
