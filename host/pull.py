"""A stored model back out of the board: its file as it is (.anne), its model
document (.json) or a Keras model (.keras) that computes what the board computes.

The file comes back byte for byte (the board's `pull` command), and is checked as
the board checks a model file (CRC included) before anything is written.
"""

import io
import math
from pathlib import Path

import numpy as np

from . import model_doc
from .errors import AnneError
from .protocol import modelfile


def document(blob, name):
    """The model document of a float32 model file (``blob``), as export writes one."""
    model_doc.file_meta(blob, name)  # every check the board makes, the CRC among them
    meta, layers = modelfile.load(io.BytesIO(blob))
    if meta.get("dtype", "float32") != "float32":
        raise AnneError("%s is an int8 model: pull writes its file as it is with -o %s.anne, and a "
                        "document only of float models" % (name, name))
    meta = dict(meta, name=name, inputs=layers[0].inputs)
    out = []
    for layer in layers:
        entry = {"type": layer.kind, "activation": _activation(layer)}
        if layer.kind == "dense":
            entry["weights"] = np.asarray(layer.weights, np.float32).reshape(layer.units, layer.inputs)
            entry["bias"] = np.asarray(layer.bias, np.float32)
        out.append(entry)
    return model_doc.build(meta, out, source={"pulled": name})


def _activation(layer):
    spec = {"name": layer.activation}
    for key, value in zip(modelfile.PARAMS.get(layer.activation, ()), layer.params):
        spec[key] = None if math.isinf(value) else value  # JSON has no infinity: relu's no limit is null
    if layer.activation == "gelu":
        spec["approximate"] = bool(spec["approximate"])
    if layer.activation == "prelu":
        spec["alpha"] = np.asarray(layer.alpha, np.float32)
    return spec


def write(blob, name, output=None, keras_path=None):
    """Write what was asked; returns the files written. ``output``: .anne or .json."""
    written = []
    doc = None
    if output:
        path = Path(output)
        if path.suffix.lower() == ".anne":
            model_doc.file_meta(blob, name)
            _write(path, blob)
        else:
            doc = document(blob, name)
            try:
                model_doc.write(doc, path)
            except OSError as e:
                raise AnneError("cannot write %s: %s" % (path, e.strerror or e)) from None
        written.append(str(path))
    if keras_path:
        from .to_keras import keras_model

        model = keras_model(doc or document(blob, name))
        try:
            model.save(keras_path)
        except (OSError, ValueError) as e:
            raise AnneError("cannot write %s: %s" % (keras_path, e)) from None
        written.append(str(keras_path))
    return written


def _write(path, data):
    try:
        path.write_bytes(data)
    except OSError as e:
        raise AnneError("cannot write %s: %s" % (path, e.strerror or e)) from None
