"""The main job in one command: the IRIS nets onto a board (virtual or real),
evaluated on their held-out rows and on all their data, from the board's answers."""

from dataclasses import dataclass

import numpy as np

from . import board_files, csvdata, evaluate, model_doc
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


def model_names():
    """The names the demo stores its models under (replacing models of those names)."""
    return [name for case in CASES for name in (case.name, case.name + "_int8")]


def run(board, progress=None):
    """Upload and evaluate every case, as float32 and as int8 (models/NAME_int8.json);
    returns [(case, {"float32": (test run, full run), "int8": (test run, full run)})].
    The model active before is made active again at the end, also when the demo fails."""
    before = board.hello().get("active")
    try:
        results = _run_cases(board, progress)
    except BaseException:
        _restore(board, before, quiet=True)
        raise
    _restore(board, before)
    return results


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
