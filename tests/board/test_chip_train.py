"""Training over the wire on the chip (the emulated RP2040, or your Pico): its single-
precision floats, its heap and its viper code. IRIS learns from random weights; the
saved model, run by the chip's inference kernel, decides as the session measured and
gives what the pulled document computes; a power cut mid-session leaves the stored
model as it was; the session's heap is given back."""

from pathlib import Path

import numpy as np
import pytest

from anne_host import csvdata, pull
from anne_host.client import BoardError, Client

IRIS = Path(__file__).resolve().parents[2] / "models" / "iris.csv"
LABELS = ["setosa", "versicolor", "virginica"]
NAME = "chip_iris"


def _iris():
    rows = csvdata.load(IRIS, 4, None, LABELS, need_labels=True)
    return rows.x, np.eye(3, dtype=np.float32)[[LABELS.index(v) for v in rows.y]]


def _epochs(board, x, t, n, batch, seed=0):
    rng = np.random.default_rng(seed)
    for _ in range(n):
        order = rng.permutation(len(x))
        for _ in board.train_epoch(x[order], t[order], batch):
            pass


@pytest.fixture(scope="module")
def trained(chip):
    """iris3's shape trained on the chip from seeded random weights, saved as NAME;
    removed after the module, whatever happens."""
    x, t = _iris()
    try:
        with Client.open(chip.port, timeout=60) as board:
            begun = board.train_begin(NAME, 16, 0.03, "adam", new={
                "sizes": [4, 8, 3], "activations": ["relu", "softmax"], "seed": 1, "labels": LABELS})
            _epochs(board, x, t, 40, 16)
            figures = board.train_eval(x, t)
            end = board.train_end(save=True)
        yield {"begun": begun, "figures": figures, "end": end}
    finally:
        with Client.open(chip.port, timeout=60) as board:
            if NAME in {m["name"] for m in board.list_models()}:
                board.delete(NAME)


def test_iris_learns_on_the_chip_and_the_saved_model_decides_as_the_session_measured(trained, chip):
    loss, accuracy, us = trained["figures"]
    assert accuracy >= 0.95 and us > 0
    assert trained["end"]["saved"] and trained["end"]["active"] == NAME
    x, t = _iris()
    with Client.open(chip.port, timeout=60) as board:
        board.select(NAME)
        y = np.vstack([out for out, _, _ in board.batch(x, 3)])
        blob = board.pull(NAME)
    assert np.mean(y.argmax(axis=1) == t.argmax(axis=1)) >= 0.95
    doc = pull.document(blob, NAME)
    h = x.astype(np.float64)
    for layer in doc["layers"]:
        h = h @ np.asarray(layer["weights"], np.float64).T + layer["bias"]
        h = np.maximum(h, 0) if layer["activation"]["name"] == "relu" else \
            np.exp(h - h.max(axis=1, keepdims=True)) / np.exp(h - h.max(axis=1, keepdims=True)).sum(1, keepdims=True)
    np.testing.assert_allclose(h, y, atol=1e-5)


def test_the_session_gives_its_heap_back_on_the_chip(trained, chip):
    assert trained["begun"]["mem_free"] > 100_000  # a session for a small net leaves the Pico most of its heap
    x, t = _iris()
    with Client.open(chip.port, timeout=60) as board:
        board.select(NAME)
        before = board.stats()["mem_alloc"]
        board.train_begin(NAME, 16, 0.01, "adam")
        during = board.stats()["mem_alloc"]
        _epochs(board, x, t, 1, 16)
        board.train_end(save=False)
        after = board.stats()["mem_alloc"]
    assert during > before + 4000  # the session's code and arrays ...
    assert after <= before + 1024  # ... all given back once it ends


def test_bad_rows_are_refused_on_the_chip_before_any_step(trained, chip):
    x, t = _iris()
    with Client.open(chip.port, timeout=60) as board:
        board.train_begin(NAME, 8, 0.1)
        before = board.train_eval(x, t)[:2]
        bad = x[:8].copy()
        bad[5, 3] = np.inf
        with pytest.raises(BoardError) as e:
            board.call("train_step", x=bad.tobytes(), y=t[:8].tobytes())
        assert e.value.code == "bad_input" and "row 5, input 3" in str(e.value)
        assert board.train_eval(x, t)[:2] == before
        board.train_end(save=False)


def test_a_power_cut_mid_session_leaves_the_stored_model_as_it_was(trained, chip):
    if not chip.emulated:
        pytest.skip("a power cut needs the emulated chip")
    x, t = _iris()
    with Client.open(chip.port, timeout=60) as board:
        blob = board.pull(NAME)
        board.train_begin(NAME, 8, 0.5, "sgd")
        _epochs(board, x, t, 1, 8)
    chip.restart()
    with Client.open(chip.port, timeout=60) as board:
        assert board.pull(NAME) == blob
        with pytest.raises(BoardError) as e:
            board.train_end()
        assert e.value.code == "no_training"
