#!/usr/bin/env python3
"""ANNE's int8 models against TensorFlow Lite's on the same Keras nets and inputs.

    .venv/bin/python tools/tflite_compare.py                  # iris6, iris3, random 16-64-64-8
    .venv/bin/python tools/tflite_compare.py --json           # one JSON document
    .venv/bin/python tools/tflite_compare.py --models iris3,random:8-16-4

For each Keras net, both quantizers get the same calibration rows:

- ANNE: `anne_host.export.export_model` (the float document, affine layers folded into
  the Dense weights), then `anne_host.quantize.quantize`, run with the exact integer
  reference `quantize.run_int8`;
- TensorFlow Lite: `tf.lite.TFLiteConverter` with the same rows as its representative
  dataset, full-integer int8 (`TFLITE_BUILTINS_INT8`, int8 input and output), run with
  `tf.lite.Interpreter`; its int8 input is quantized with the input tensor's own scale
  and zero point (round half away from zero, clamped) and its output is dequantized
  with the output tensor's.

Both then run on the same evaluation rows (IRIS: every row of the net's classes, that
is its training and test splits; random nets: 1000 fresh N(0, 1) rows), and the tool
prints per net the largest and mean |ANNE int8 - TFLite int8| output difference, each
one's largest difference from the float Keras outputs, both output steps (scales), and
how often the class decisions agree (ANNE vs TFLite, and each vs Keras).

The two are not expected to give the same bits: TFLite keeps Keras' Normalization as
its own quantized operations (ANNE folds it into the first Dense layer), rounds some
steps differently, and computes sigmoid, tanh and softmax with its own fixed-point
kernels where ANNE uses tables. Agreement is to within a few output steps.

IRIS nets: IRIS6 and IRIS8 (versicolor vs virginica) calibrate on
models/iris_binary_train.csv, IRIS3 on models/iris3_train.csv, as models/README.md says.
"""

import argparse
import contextlib
import json
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
if str(ROOT) not in sys.path:  # running from a checkout without the package installed
    sys.path.insert(0, str(ROOT))

from anne_host import csvdata, export, quantize  # noqa: E402

IRIS = {  # net -> (calibration split, evaluation splits)
    "iris6": ("iris_binary_train", ("iris_binary_train", "iris_binary_test")),
    "iris8": ("iris_binary_train", ("iris_binary_train", "iris_binary_test")),
    "iris3": ("iris3_train", ("iris3_train", "iris3_test")),
}
DEFAULT = ("iris6", "iris3", "random")
RANDOM_SIZES = (16, 64, 64, 8)
ROWS = 1000


def _rows(split, features):
    return csvdata.load(MODELS / (split + ".csv"), len(features), features).x


def iris_case(name):
    """(Keras model, calibration rows, evaluation rows) of an IRIS net."""
    import keras

    model = keras.models.load_model(str(MODELS / (name + ".keras")), compile=False)
    features = csvdata.load(MODELS / "iris.csv", 4).columns
    cal, splits = IRIS[name]
    return model, _rows(cal, features), np.concatenate([_rows(s, features) for s in splits])


def random_case(sizes, seed=0):
    """A random relu net (Glorot-uniform weights, N(0, 0.1) biases, linear output) with
    1000 N(0, 1) calibration rows and 1000 fresh evaluation rows."""
    import keras

    keras.utils.set_random_seed(seed)
    layers = [keras.Input((sizes[0],))]
    for k, units in enumerate(sizes[1:]):
        layers.append(keras.layers.Dense(
            units, activation="relu" if k < len(sizes) - 2 else "linear",
            bias_initializer=keras.initializers.RandomNormal(0.0, 0.1, seed=seed + k)))
    rng = np.random.default_rng(seed)
    cal = rng.standard_normal((ROWS, sizes[0])).astype(np.float32)
    x = rng.standard_normal((ROWS, sizes[0])).astype(np.float32)
    return keras.Sequential(layers), cal, x


def case(spec, seed=0):
    """A case by name: an IRIS net, ``random`` (16-64-64-8) or ``random:8-16-4``."""
    if spec in IRIS:
        return iris_case(spec)
    if spec == "random" or spec.startswith("random:"):
        sizes = RANDOM_SIZES if spec == "random" else tuple(int(v) for v in spec[7:].split("-"))
        if len(sizes) < 2:
            raise SystemExit("%s: a random net needs at least two sizes (inputs-outputs)" % spec)
        return random_case(sizes, seed)
    raise SystemExit("unknown net %r: choose from %s, random, random:SIZES (like 8-16-4)"
                     % (spec, ", ".join(IRIS)))


def tflite_int8(model, calibration):
    """The full-integer TFLite model of ``model``, calibrated on ``calibration``."""
    import tensorflow as tf

    def representative():
        for row in calibration:
            yield [row.reshape(1, -1)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    # The converter prints the exported signature on stdout, which is this tool's.
    with contextlib.redirect_stdout(sys.stderr), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return converter.convert()


def run_tflite(blob, x):
    """Float outputs of the int8 TFLite model ``blob`` on float rows ``x``."""
    import tensorflow as tf

    with warnings.catch_warnings():  # tf.lite.Interpreter is deprecated for ai_edge_litert
        warnings.simplefilter("ignore")
        interpreter = tf.lite.Interpreter(model_content=blob)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], list(x.shape))
    interpreter.allocate_tensors()
    s_in, z_in = inp["quantization"]
    v = np.asarray(x, np.float64) / s_in
    q = np.clip(np.sign(v) * np.floor(np.abs(v) + 0.5) + z_in, -128, 127).astype(np.int8)
    interpreter.set_tensor(inp["index"], q)
    interpreter.invoke()
    s_out, z_out = out["quantization"]
    y = interpreter.get_tensor(out["index"]).astype(np.float32)
    return np.float32(s_out) * (y - np.float32(z_out)), float(s_out)


def compare(spec, seed=0):
    """The figures of one net (see the module docstring)."""
    model, cal, x = case(spec, seed)
    doc = export.export_model(model, name=spec)
    qdoc = quantize.quantize(doc, cal, calibration="%d rows" % len(cal))
    _, anne = quantize.run_int8(qdoc, x)
    tfl, tfl_scale = run_tflite(tflite_int8(model, cal), x)
    keras_out = np.asarray(model(x, training=False), np.float32)
    threshold = doc.get("threshold", 0.5)
    d = {k: quantize.decisions(v, threshold) for k, v in
         (("anne", anne), ("tflite", tfl), ("float", keras_out))}
    diff = np.abs(anne.astype(np.float64) - tfl)
    return {
        "model": spec, "rows": int(len(x)), "calibration_rows": int(len(cal)),
        "outputs": int(anne.shape[1]),
        "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
        "anne_step": qdoc["layers"][-1]["quant"]["out_scale"], "tflite_step": tfl_scale,
        "max_diff_in_anne_steps": float(diff.max() / qdoc["layers"][-1]["quant"]["out_scale"]),
        "anne_vs_float_max": float(np.abs(anne - keras_out).max()),
        "tflite_vs_float_max": float(np.abs(tfl - keras_out).max()),
        "decision_agreement": float(np.mean(d["anne"] == d["tflite"])),
        "anne_float_agreement": float(np.mean(d["anne"] == d["float"])),
        "tflite_float_agreement": float(np.mean(d["tflite"] == d["float"])),
        "notes": qdoc["source"]["quantized"]["notes"],
    }


def table(results):
    head = ("%-14s %5s  %-22s %-10s %-20s %-18s %s" % (
        "net", "rows", "max|ANNE-TFLite| (mean)", "in steps", "max|int8-float| A/T",
        "decisions A=T", "A=float T=float"))
    lines = [head]
    for r in results:
        lines.append("%-14s %5d  %-22s %-10s %-20s %-18s %s" % (
            r["model"], r["rows"], "%.4g (%.3g)" % (r["max_abs_diff"], r["mean_abs_diff"]),
            "%.2f" % r["max_diff_in_anne_steps"],
            "%.4g / %.4g" % (r["anne_vs_float_max"], r["tflite_vs_float_max"]),
            "%.1f %%" % (100 * r["decision_agreement"]),
            "%.1f %% %.1f %%" % (100 * r["anne_float_agreement"], 100 * r["tflite_float_agreement"])))
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", help="comma-separated nets: %s, random (16-64-64-8) or "
                                     "random:SIZES like random:8-16-4 (default: iris6,iris3,random)"
                                     % ", ".join(IRIS))
    ap.add_argument("--seed", type=int, default=0, help="seed of the random nets and rows (default 0)")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    opts = ap.parse_args(argv)
    specs = opts.models.split(",") if opts.models else DEFAULT
    results = [compare(s.strip(), opts.seed) for s in specs]
    print(json.dumps(results, indent=1) if opts.json else table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
