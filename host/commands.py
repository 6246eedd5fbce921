"""One function per anne-host command: arguments in, work done, results printed.

Nothing here parses argv or moves bytes: cli.py parses, the client talks to a board.
"""

import json
import sys
from pathlib import Path

from . import export, model_doc
from .errors import AnneError


def _emit(args, document, text):
    # --json prints one JSON document on stdout and nothing else there.
    print(json.dumps(document, indent=1) if args.json else text)


def _floats(text, what):
    if not text:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise AnneError("%s must be comma-separated numbers, got %r" % (what, text))


def _names(text):
    return [v.strip() for v in text.split(",")] if text else None


def add_export(p):
    p.add_argument("model", help="Keras model file (.keras or legacy .h5)")
    p.add_argument("-o", "--output", help="model document to write (default: MODEL with .json)")
    p.add_argument("--name", help="model name stored in the file (default: the file's stem)")
    p.add_argument("--labels", help="class labels in output order, comma-separated "
                                    "(a single sigmoid output takes two: negative,positive)")
    p.add_argument("--features", help="input feature names, comma-separated (CSV column names)")
    p.add_argument("--input-mean", help="per-feature means the model was trained to subtract")
    p.add_argument("--input-std", help="per-feature standard deviations to divide by")
    p.add_argument("--scaler", help="a fitted scikit-learn StandardScaler saved with joblib")
    p.add_argument("--threshold", type=float, help="decision threshold for one sigmoid output (default 0.5)")


def _scaler(path):
    try:
        import joblib
        scaler = joblib.load(path)
        return scaler.mean_, scaler.scale_
    except (ImportError, OSError, AttributeError, ValueError) as e:
        raise AnneError("%s: cannot read a fitted StandardScaler (%s)" % (path, e))


def cmd_export(args):
    src = Path(args.model)
    if not src.exists():
        raise AnneError("%s: no such file" % src)
    mean, std = _floats(args.input_mean, "--input-mean"), _floats(args.input_std, "--input-std")
    if args.scaler:
        mean, std = _scaler(args.scaler)
    model = export.load_keras(src)
    doc = export.export_model(
        model, name=args.name or src.stem, labels=_names(args.labels),
        features=_names(args.features), input_mean=mean, input_std=std,
        threshold=args.threshold, source={"file": src.name})
    out = Path(args.output or src.with_suffix(".json"))
    model_doc.write(doc, out)
    layers = model_doc.to_layers(doc, str(out))
    params = sum(layer.param_count() for layer in layers)
    summary = {"output": str(out), "name": doc["name"], "layers": len(layers), "params": params,
               "folded": doc["source"]["folded"]}
    _emit(args, summary, "wrote %s: %d layers, %d parameters%s" % (
        out, len(layers), params, "".join("\n  folded " + f for f in summary["folded"])))


COMMANDS = {
    "export": ("export a Keras model to an ANNE model document", add_export, cmd_export),
}
