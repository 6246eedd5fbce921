"""What the board and export commands print: a few lines of text for people, or with
--json one JSON document on stdout. Evaluations are in report.py, the demo's table in demo.py."""

import json
import sys

from . import evaluate


def _emit(as_json, document, text):
    # --json prints one JSON document on stdout and nothing else there.
    print(json.dumps(document, indent=1) if as_json else text)


def _plain(reply):
    return {k: v for k, v in reply.items() if k not in ("id", "ok")}


def _folded(names):
    return "".join("\n  folded " + f for f in names)


def progress(total, what, as_json):
    """A progress bar on stderr, only where a person watches a terminal."""
    from tqdm import tqdm

    return tqdm(total=total, desc=what, unit="B" if what == "upload" else " samples",
                unit_scale=what == "upload", file=sys.stderr, leave=False,
                disable=as_json or not sys.stderr.isatty())


def exported(as_json, out, doc, layers):
    params = sum(layer.param_count() for layer in layers)
    summary = {"output": str(out), "name": doc["name"], "layers": len(layers), "params": params,
               "folded": doc["source"]["folded"], "dropped": doc["source"]["dropped"]}
    _emit(as_json, summary, "wrote %s: %d layers, %d parameters%s%s" % (
        out, len(layers), params, _folded(summary["folded"]),
        "".join("\n  dropped %s: it does nothing at inference" % f for f in summary["dropped"])))


def quantized(as_json, out, qdoc, layers, folded, size, calibration, samples):
    """An int8 export: ``size`` bytes on the board, calibrated on ``samples`` of the file ``calibration``."""
    params = sum(layer.param_count() for layer in layers)
    notes = qdoc["source"]["quantized"]["notes"]
    summary = {"output": str(out), "name": qdoc["name"], "layers": len(layers), "params": params,
               "folded": folded, "dtype": "int8", "bytes": size,
               "calibration": {"file": str(calibration), "rows": len(samples), "columns": samples.columns},
               "notes": notes}
    _emit(as_json, summary, "wrote %s: int8, %d layers, %d parameters, %d bytes on the board; "
                            "calibrated on %d rows of %s (columns %s)%s%s" % (
                                out, len(layers), params, size, len(samples), calibration,
                                ", ".join(samples.columns), _folded(folded),
                                "".join("\n  note: " + n for n in notes)))


def ports(as_json, found):
    """``found``: (device, description, is a Raspberry Pi board) of each serial port."""
    listed = [{"device": d, "description": desc, "raspberry_pi": pi} for d, desc, pi in found]
    lines = ["%s  %s%s" % (p["device"], p["description"], "  <- Raspberry Pi board" if p["raspberry_pi"] else "")
             for p in listed]
    _emit(as_json, listed, "\n".join(lines) or "no serial ports found")


def info(as_json, hello, stored, virtual_flash_free):
    """The board's hello and stored models; a virtual Pico's flash as counted on an RPI_PICO."""
    info = _plain(hello)
    info["virtual"] = evaluate.is_virtual(info)
    info["models"] = [m["name"] for m in stored if not m.get("foreign")]
    info["foreign_files"] = [m["name"] for m in stored if m.get("foreign")]
    if info["virtual"]:
        info["flash_free"] = virtual_flash_free
    text = [board_line(info),
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
    _emit(as_json, info, "\n".join(text))


def board_line(info):
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
        from .boards import VIRTUAL

        return ("flash: %s bytes free, counted as on an RPI_PICO (%d MB flash, %s bytes of it for files)"
                % (format(info["flash_free"], ","), VIRTUAL.flash_bytes >> 20, format(VIRTUAL.fs_bytes, ",")))
    return "flash: %s bytes free" % format(info["flash_free"], ",")


def uploaded(as_json, name, size, checksum, seconds, replaced):
    """``replaced``: the stored model of that name the upload replaced, or None."""
    result = {"name": name, "bytes": size, "checksum": checksum, "seconds": seconds,
              "bytes_per_s": size / seconds, "replaced": replaced is not None}
    _emit(as_json, result, "uploaded %s: %d bytes in %.2f s (%.0f B/s, wall time on this PC), checksum %08x%s"
          % (name, size, seconds, size / seconds, checksum,
             "; it replaced the stored model of that name (%d bytes)" % replaced["size"] if replaced else ""))


def models(as_json, stored):
    lines = ["%s %-32s %-11s %8d bytes%s" % ("*" if m["active"] else " ", m["name"],
                                             m.get("dtype") or "not a model", m["size"],
                                             "  foreign file %r: anne-host rm removes it" % (m["name"] + ".anne")
                                             if m.get("foreign") else "")
             for m in stored]
    _emit(as_json, stored, "\n".join(lines) or "no models stored")


def deleted(as_json, name, what=""):
    _emit(as_json, {"deleted": name}, "deleted %s%s" % (what, name))


def data_uploaded(as_json, reply, size, seconds, held):
    """``held``: what the CSV gave (rows, inputs, outputs, labels, features, model checked against)."""
    result = dict(_plain(reply), bytes=size, seconds=seconds, labels=held["labels"], features=held["features"],
                  model=held["model"])
    _emit(as_json, result, "uploaded data set %s: %d rows of %d inputs and %d targets (%s: %s), %d bytes in %.2f s, "
                           "checksum %08x%s"
          % (reply["name"], reply["rows"], reply["inputs"], reply["outputs"], reply["targets"],
             ", ".join(held["labels"]), size, seconds, reply["checksum"],
             "; fits model %s" % held["model"] if held["model"] else ""))


def data_sets(as_json, found):
    lines = ["%-32s %6d rows %4d inputs %4d targets %8d bytes  %s%s"
             % (d["name"], d["rows"], d["inputs"], d["outputs"], d["size"], d["targets"],
                ": " + ", ".join(d["labels"]) if d.get("labels") else "")
             if d["rows"] is not None else "%-32s not a readable data file, %d bytes: anne-host rm --data "
                                           "removes it" % (d["name"], d["size"])
             for d in found]
    _emit(as_json, found, "\n".join(lines) or "no data sets stored")


def selected(as_json, model):
    _emit(as_json, _plain(model), "active model: %s (%d inputs, %d outputs, %d parameters)"
          % (model["name"], model["inputs"], model["outputs"], model["params"]))


def inferred(as_json, model, outputs, k, us, info, samples=None):
    """One inference: class ``k`` in ``us`` µs; ``samples`` the CSV file the row came from, if one did."""
    labels = model["labels"] or []
    label = labels[k] if k < len(labels) else k
    result = {"outputs": [float(v) for v in outputs], "label": label, "class": k, "board_us": us,
              "clock": evaluate.clock_of(info)}
    if samples is not None:
        result["columns"] = samples.columns
    _emit(as_json, result, "%soutputs: %s\nclass:   %s\ntime:    %d µs, %s"
          % (samples.describe() + "\n" if samples is not None else "", _numbers(outputs), label, us,
             _timed_where(info)))


def _numbers(values):
    return ", ".join("%.6g" % v for v in values)


def _timed_where(info):
    """Where a board's µs figures were measured, in words."""
    if evaluate.clock_of(info) == evaluate.BOARD_CLOCK:
        return "the board's time.ticks_us"
    return "on the virtual Pico: this PC's CPU, not a Pico's time"


def predictions(as_json, run, output=None):
    """Each row's outputs: into the CSV file ``output`` if given, and printed unless only written there."""
    rows = evaluate.predictions(run)
    if output:
        _write_predictions(output, run, rows)
    if as_json:
        print(json.dumps(rows))
    elif not output:
        print(run.samples.describe())
        for r in rows:
            print("line %d: %s -> %s (%d µs)" % (r["line"], _numbers(r["outputs"]), r["label"], r["board_us"]))


def _write_predictions(path, run, rows):
    import csv

    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["line"] + ["output_%d" % j for j in range(run.outputs.shape[1])] + ["label", "board_us"])
        for r in rows:
            w.writerow([r["line"]] + ["%.9g" % v for v in r["outputs"]] + [r["label"], r["board_us"]])


def stopped(run):
    """On stderr: where a run that reported its rows so far was stopped, and why."""
    print("anne-host: stopped at %s line %s, after %d of %d rows (reported above): %s"
          % (run.samples.path, run.stopped_line(), run.done, len(run.samples), run.error), file=sys.stderr)


def bench(as_json, model, repeat, reply, info):
    """The board's timing of ``model`` over ``repeat`` inferences, layer by layer."""
    result = _plain(reply)
    result["model"] = model["name"]
    result["clock"] = evaluate.clock_of(info)
    lines = ["model %s: %.1f µs per inference (mean of %d, %s)"
             % (model["name"], result["us"], repeat, _timed_where(info)),
             " #  layer       units  activation        params       µs"]
    for i, l in enumerate(result["layers"]):
        lines.append("%2d  %-10s %6d  %-14s %9d %8.1f"
                     % (i, l["kind"], l["units"], l["activation"], l["params"], l["us"]))
    lines.append("heap: %d bytes in use, %d free" % (result["mem_alloc"], result["mem_free"]))
    _emit(as_json, result, "\n".join(lines))


def epoch_printer(as_json, info):
    """What train calls after each epoch: one line for people (nothing with --json)."""
    def line(e):
        if as_json:
            return
        val = ("  val_loss %.4f  val_accuracy %.1f %%" % (e["val_loss"], 100 * e["val_accuracy"])
               if "val_loss" in e else "")
        print("epoch %d  loss %.4f  accuracy %.1f %%%s  %s" % (e["epoch"], e["loss"], 100 * e["accuracy"], val,
                                                             _board_ms(e["board_us"], info)), flush=True)
    return line


def _board_ms(us, info):
    where = "board" if evaluate.clock_of(info) == evaluate.BOARD_CLOCK else "virtual Pico (host CPU)"
    return "%s ms %s" % (format(us / 1000, ",.1f"), where)


def trained(as_json, model, history, figures, end, info):
    """The end of a training run: the final figures on every row, and what was saved."""
    result = {"model": end["name"], "saved": end["saved"], "bytes": end["size"], "active": end["active"],
              "params": model["params"], "loss_function": model["loss"], "batch": model["batch"],
              "final": figures, "history": history, "clock": evaluate.clock_of(info),
              "board_us": sum(e["board_us"] for e in history)}
    val = ("; validation loss %.4f, accuracy %.1f %%" % (figures["val_loss"], 100 * figures["val_accuracy"])
           if "val_loss" in figures else "")
    layers = len(model["layers"])
    last = model.get("last", layers)
    result["last"] = last
    result["trained_params"] = model.get("trained_params", model["params"])
    if last < layers:  # fine-tuned: say what learned and what kept its weights
        val += "\nonly the last %d of %d layers learned (%d of %d parameters); the others are as they were" % (
            last, layers, result["trained_params"], model["params"])
    _emit(as_json, result, "trained %s (%d parameters, %s) for %d epochs in %s\n"
                           "on every training row: loss %.4f, accuracy %.1f %%%s\n"
                           "saved as %s (%d bytes)%s"
          % (end["name"], model["params"], model["loss"], len(history), _board_ms(result["board_us"], info),
             figures["loss"], 100 * figures["accuracy"], val, end["name"], end["size"],
             ", the active model" if end["active"] == end["name"] else
             "; the board's heap has no block left to load it now: reset the board, then anne-host "
             "select %s" % end["name"]))


def pulled(as_json, name, size, written):
    _emit(as_json, {"name": name, "bytes": size, "written": written},
          "pulled %s (%d bytes): wrote %s" % (name, size, ", ".join(written)))


def sim_running(pico):
    print(pico.port, flush=True)  # first line: the port, for scripts
    print("virtual Pico running (flash %s, heap %d bytes); use --port %s; Ctrl-C to stop"
          % (pico.flash_dir, pico.heap, pico.port), file=sys.stderr)


def deploy_log(as_json):
    """Where deploy's steps are told: stderr, or nowhere with --json."""
    return (lambda m: None) if as_json else (lambda m: print(m, file=sys.stderr))


def deployed(as_json, files, boot):
    hint = ("the server starts at boot" if boot else
            "to start the server at boot: anne-host deploy --boot (installs main.py)")
    _emit(as_json, {"files": [f.name for f in files], "boot": boot},
          "installed %d files in :lib/anne; %s" % (len(files), hint))


def repl_banner(port, virtual):
    print("anne-host: the REPL of %s, its ANNE server stopped (the next anne-host command "
          "starts it again).\n  >>> anne.models()                 the stored models\n"
          "  >>> net = anne.load('NAME')       then net.predict([...]), net.summary()\n"
          "  Ctrl-] or Ctrl-X leaves%s." % (port, " (and stops the virtual Pico)" if virtual else ""),
          file=sys.stderr, flush=True)


def traced(as_json, model, x, layers, plot=None):
    """Every layer's outputs for one sample, computed on the board (anne-host trace)."""
    if as_json:
        _emit(True, {"model": model["name"], "x": x, "layers": layers, "plot": plot}, None)
        return
    lines = ["%s on %s" % (model["name"], _numbers(x))]
    labels = model.get("labels") or []
    for k, layer in enumerate(layers):
        last = k == len(layers) - 1
        lines.append("layer %d: %s %s, %d units" % (k, layer["kind"], layer["activation"], layer["units"]))
        pre = layer.get("pre")
        for j, v in enumerate(layer["out"]):
            name = str(j)
            if last and layer["units"] == 1 and len(labels) == 2:  # one sigmoid: the second class's
                name = labels[1]
            elif last and j < len(labels):
                name = labels[j]
            lines.append("  %-12s out %-11.5g%s" % (name[:12], v, "" if pre is None else " pre %.5g" % pre[j]))
    if plot:
        lines.append("drew %s" % plot)
    print("\n".join(lines))


def configured(as_json, path, stored):
    _emit(as_json, dict(_plain(stored), file=str(path)),
          "stored %s on the board as %s (%d bytes); anne-host monitor watches it" % (path, stored["stored"], stored["bytes"]))


def events(as_json, events, labels):
    """The monitor's event log, newest first."""
    rows = [{"seq": e[0], "ms": e[1], "class": e[2], "label": labels[e[2]] if 0 <= e[2] < len(labels) else None,
             "actions": e[3], "outputs": e[4][:max(1, len(labels))]} for e in events]
    if as_json:
        _emit(True, rows, None)
        return
    if not rows:
        print("no events logged")
        return
    print("  seq        t (s)  class         actions  outputs")
    for r in rows:
        print("%5d %12.3f  %-12s  %-8s %s" % (r["seq"], r["ms"] / 1000.0, r["label"] or r["class"],
                                            bin(r["actions"]), _numbers(r["outputs"])))
