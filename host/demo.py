"""The main job in one command: the IRIS nets onto a board (virtual or real),
evaluated on their held-out rows and on all their data, from the board's answers;
iris3's net trained on the board (demo_trained.py); and what the demo command prints of it."""

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import board_files, csvdata, demo_datasets, demo_trained, evaluate, model_doc, present, report
from .csvdata import Samples
from .errors import AnneError


@dataclass
class Case:
    name: str
    paper: str  # what the AI-ANNE paper reports for it
    test: str
    full: tuple


CASES = [
    Case("iris6", "95 % (19/20)", "iris_binary_test.csv", ("iris_binary_train.csv", "iris_binary_test.csv")),
    Case("iris8", "below the 6-neuron net", "iris_binary_test.csv", ("iris_binary_train.csv", "iris_binary_test.csv")),
    Case("iris3", "- (not in the paper)", "iris3_test.csv", ("iris.csv",)),
]


def models_dir():
    return board_files._package_dir("anne_host.models")


def load_samples(files, model):
    """Samples of one or more files, stacked (the binary nets' full data is train + test)."""
    parts = [csvdata.load(models_dir() / f, model["inputs"], model.get("features"), model.get("labels"),
                          need_labels=True) for f in files]
    if len(parts) == 1:
        return parts[0]
    return Samples(x=np.vstack([p.x for p in parts]), y=sum((p.y for p in parts), []),
                   lines=sum((p.lines for p in parts), []), path=" + ".join(files),
                   columns=parts[0].columns, label_column=parts[0].label_column, chosen=parts[0].chosen)


def model_names(with_datasets=False):
    """The names the demo stores its models under (replacing models of those names)."""
    names = [name for case in CASES for name in (case.name, case.name + "_int8")] + demo_trained.model_names()
    return names + (demo_datasets.model_names() if with_datasets else [])


def run(board, progress=None, with_datasets=False, bar=None):
    """Upload and evaluate every case, as float32 and as int8 (models/NAME_int8.json), and
    train iris3's net on the board (``bar``: its progress bar, see demo_trained.run);
    returns ([(case, {"float32": (test run, full run), "int8": (test run, full run)})],
    demo_trained's result, [demo_datasets entry] or [] without ``with_datasets``). The model
    active before is made active again at the end, also when the demo fails."""
    before = board.hello().get("active")
    try:
        results = _run_cases(board, progress)
        trained = demo_trained.run(board, bar)
        more = demo_datasets.run(board, progress) if with_datasets else []
    except BaseException:
        _restore(board, before, quiet=True)
        raise
    _restore(board, before)
    return results, trained, more


def _restore(board, name, quiet=False):
    # quiet: an error is already on its way out, and says more than this one would.
    if name is None:
        return
    try:
        board.select(name)
    except AnneError:
        if not quiet:
            raise


def _run_cases(board, progress):
    results = []
    for case in CASES:
        runs = {}
        for dtype, name in (("float32", case.name), ("int8", case.name + "_int8")):
            doc = model_doc.read(models_dir() / (name + ".json"))
            board.upload(model_doc.pack(doc), name)
            model = board.model()
            pair = []
            for files in ((case.test,), case.full):
                samples = load_samples(files, model)
                r = evaluate.stream(board, samples, model, progress)
                if r.error:
                    raise r.error
                pair.append(r)
            runs[dtype] = tuple(pair)
        results.append((case, runs))
    return results


# -- what the demo command prints ----------------------------------------------

def reports(board, as_json, plot_dir=None):
    """Run the demo on ``board`` and print each evaluation (or only announce it with
    ``as_json``); confusion matrices go into ``plot_dir`` if given. Returns an entry
    per case for summary()."""
    before = board.info.get("active")
    skipped = demo_datasets.available()
    if skipped:
        print("the demo runs the IRIS nets only: %s" % skipped, file=sys.stderr)
    # The demo's uploads change what the board holds: said before, undone after.
    print("the demo stores %s on %s (replacing models of those names) and makes each active in "
          "turn; %s" % (", ".join(model_names(not skipped)),
                        "the virtual Pico" if evaluate.is_virtual(board.info) else board.transport.port,
                        "%s is made active again at the end" % before if before
                        else "no model was active before, so the last one stays active"), file=sys.stderr)
    if not as_json:
        print("%s, %d bytes of heap free with the server started\n"
              % (present.board_line(board.info), board.info["mem_free"]))
    results, trained, more = run(board, with_datasets=not skipped,
                                 bar=lambda total, what: present.progress(total, what, as_json))
    entries = [_entry(case, runs, as_json, plot_dir) for case, runs in results]
    # Under iris3's entry, whose net it is: --json keeps its list of an entry per IRIS net
    # and per data set model, which scripts read.
    iris3 = next(e for e in entries if e["model"] == "iris3")
    iris3["trained_on_board"] = demo_trained.entry(trained, as_json, plot_dir)
    return entries + more


def _entry(case, runs, as_json, plot_dir):
    entry = {"model": case.name, "paper": case.paper}
    for dtype, (test, full) in runs.items():
        name = case.name if dtype == "float32" else case.name + "_int8"
        key = "" if dtype == "float32" else "int8_"
        for part, what, r in (("test", "held-out test rows", test), ("all", "all rows", full)):
            plot = Path(plot_dir) / ("%s-%s.png" % (name, part)) if plot_dir else None
            if plot:
                plot.parent.mkdir(parents=True, exist_ok=True)
            entry[key + part] = report.evaluation(r, as_json, plot,
                                                  title="%s on %s (%s)" % (name, what, r.samples.path))
    entry["int8_agreement"] = evaluate.compare(runs["float32"][1], runs["int8"][1])
    return entry


def summary(entries, as_json):
    """The accuracies of every case beside what the paper reports, or with ``as_json`` every entry."""
    if as_json:
        print(json.dumps(entries, indent=1))
        return
    more = [d for d in entries if "dataset" in d]  # demo_datasets' entries
    entries = [d for d in entries if "dataset" not in d]
    trained = [d["trained_on_board"] for d in entries if "trained_on_board" in d]
    print("summary (computed from the board's answers)")
    row = "  %-12s %-22s %-22s %-24s %s"
    print(row % ("model", "held-out accuracy", "all rows", "int8: held-out, all", "paper reports"))
    for d in entries:
        print(row % (d["model"], report.accuracy(d["test"]), report.accuracy(d["all"]),
                     "%.1f %%, %.1f %%" % (100 * d["int8_test"]["accuracy"], 100 * d["int8_all"]["accuracy"]),
                     d["paper"]))
    for t in trained:
        print(row % demo_trained.row(t))
    print("\nint8 decisions agree with float32 on: %s" % ", ".join(
        "%s %d/%d rows" % (d["model"], d["int8_agreement"]["decisions_agree"], d["int8_agreement"]["rows"])
        for d in entries))
    for t in trained:
        print("\n" + demo_trained.lines(t))
    if more:
        print("\n" + demo_datasets.table(more))
