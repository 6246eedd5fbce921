"""Training over the wire on the chip (the emulated RP2040, or your Pico): its single-
precision floats, its heap and its viper code. IRIS learns from random weights; the
saved model, run by the chip's inference kernel, decides as the session measured and
gives what the pulled document computes; a power cut mid-session leaves the stored
model as it was; the session's heap is given back; the demo's trained row steps as
Keras' own optimizers do."""

from pathlib import Path

import numpy as np
import pytest

from anne_host import csvdata, demo_trained, pull, training
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


# -- the demo's trained row against Keras (anne-host demo, host/demo_trained.py) --------

PARITY = "chip_parity"  # the demo's net under a name of its own, removed by each test


def _demo_row():
    """The demo's trained row: its new net's fields, and its training rows and targets in the
    order it sends them (training.fit's: a permutation per epoch from the seed), two epochs."""
    rows = demo_trained.training_rows()
    new = demo_trained.new_net(rows)
    t = training.targets(rows, new["labels"], new["sizes"][-1])
    rng = np.random.default_rng(demo_trained.SEED)
    order = np.concatenate([rng.permutation(len(rows)) for _ in range(2)])
    return new, rows.x[order], t[order]


def _on_the_chip(chip, new, x, t, steps, optimizer, kw):
    """The net's weights after ``steps`` steps on the chip, pulled back out (the new net's
    own weights for 0), and the loss of each step's batch before its update."""
    b = demo_trained.BATCH
    with Client.open(chip.port, timeout=60) as board:
        board.train_begin(PARITY, b, kw["learning_rate"], optimizer, kw.get("momentum", 0.0), new=new)
        losses = [r["loss"] / b for r in board.train_epoch(x[:steps * b], t[:steps * b], b)]
        assert board.train_end(save=True)["saved"]
        doc = pull.document(board.pull(PARITY), PARITY)
    return [(np.asarray(layer["weights"], np.float32), np.asarray(layer["bias"], np.float32))
            for layer in doc["layers"]], losses


def _in_keras(keras, new, init, x, t, steps, optimizer, kw):
    """What Keras' own optimizer makes of the same weights and batches: the weights after
    each of ``steps`` (as the board keeps them, a row per unit) and the first batch's loss."""
    b = demo_trained.BATCH
    model = keras.Sequential([keras.Input((new["sizes"][0],))] + [
        keras.layers.Dense(n, activation=a) for n, a in zip(new["sizes"][1:], new["activations"])])
    model.set_weights([v for w, bias in init for v in (w.T, bias)])
    model.compile(optimizer=keras.optimizers.SGD(**kw) if optimizer == "sgd" else keras.optimizers.Adam(**kw),
                  loss="categorical_crossentropy")
    first = model.evaluate(x[:b], t[:b], batch_size=b, verbose=0)
    out = {}
    for step in range(max(steps)):
        model.train_on_batch(x[step * b:(step + 1) * b], t[step * b:(step + 1) * b])
        if step + 1 in steps:
            ws = model.get_weights()
            out[step + 1] = [(ws[2 * i].T, ws[2 * i + 1]) for i in range(len(ws) // 2)]
    return out, first


def _rel(a, b):
    # The largest difference, relative to the largest value of Keras' array.
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


@pytest.mark.parametrize("optimizer, kw, tol", [
    ("sgd", {"learning_rate": demo_trained.LR, "momentum": 0.9}, 1e-5),
    (demo_trained.OPTIMIZER, {"learning_rate": demo_trained.LR}, 1e-4),  # the demo's own: Adam
], ids=["sgd-momentum", "demo-adam"])
def test_the_demos_trained_row_steps_on_the_chip_as_keras_does(chip, keras, optimizer, kw, tol):
    new, x, t = _demo_row()
    try:
        init, _ = _on_the_chip(chip, new, x, t, 0, optimizer, kw)  # the seed's Glorot weights
        got = {n: _on_the_chip(chip, new, x, t, n, optimizer, kw) for n in (1, 20)}
    finally:
        with Client.open(chip.port, timeout=60) as board:
            if PARITY in {m["name"] for m in board.list_models()}:
                board.delete(PARITY)
    want, first = _in_keras(keras, new, init, x, t, (1, 20), optimizer, kw)
    assert got[1][1][0] == pytest.approx(first, rel=1e-5)  # the loss before the first step
    for n in (1, 20):
        for k, ((gw, gb), (kw_, kb), (iw, ib)) in enumerate(zip(got[n][0], want[n], init)):
            # The weights must move well beyond the tolerance, or the test would prove nothing
            # (the biases start at 0: any step moves them).
            assert _rel(kw_, iw) > 20 * tol, "step %d layer %d barely moved" % (n, k)
            assert _rel(gw, kw_) <= tol, ("weights", n, k, _rel(gw, kw_))
            assert _rel(gb, kb) <= tol, ("bias", n, k, _rel(gb, kb))
