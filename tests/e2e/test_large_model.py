"""Models that fill the heap through the server of a virtual Pico with the Pico's heap:
uploaded, selected from the store and asked, as a user would.

Their size is set from the heap the server has free when it starts, less a margin for
the engine's structures and the batch reply buffer (twice a Pico's on this 64-bit
interpreter), so that the test is about the server using its heap, and cannot flip
with the few hundred bytes that a new feature's code or the moment of a collection
moves. The absolute targets (40,000 float and 150,000 int8 parameters) are checked
where the heap is a Pico's own: on the board tier (tests/board/test_chip_large_model.py)."""

import numpy as np

from anne_host import model_doc, quantize, unixport
from anne_host.client import BoardError, Client
from anne_host.sim import VirtualPico

from ..large_models import dense_doc as _doc, forward as _forward

# Heap beyond the weights: the engine's structures, the reply buffer, a request, and the
# holes left below the two largest arrays (each needs one block of its own).
FLOAT_MARGIN = 24 * 1024
INT8_MARGIN = 20 * 1024  # and the int8 kernel's code, per-unit arrays and tables


def _hidden(budget, n_in, n_out, width):
    # The hidden width whose n_in-h-n_out model's weights take about ``budget`` bytes.
    return int((budget / width - n_out) / (n_in + 1 + n_out))


def test_a_float_model_that_fills_the_heap_loads_and_runs_through_the_server(tmp_path):
    rng = np.random.default_rng(40)
    with VirtualPico(tmp_path, heap=unixport.PICO_HEAP) as vp, Client.open(vp.port) as board:
        assert vp.firmware == "mpy"  # as deploy installs it on a board
        free = board.hello()["mem_free"]
        sizes = [160, _hidden(free - FLOAT_MARGIN, 160, 90, 4), 90]
        doc = _doc(rng, sizes)
        x = rng.normal(size=(8, sizes[0])).astype(np.float32)
        expected = _forward(doc, x)
        params = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
        assert free - FLOAT_MARGIN - 4 * 251 < 4 * params <= free - FLOAT_MARGIN  # all but the margin
        board.upload(model_doc.pack(doc), "large", activate=False)  # stored, not loaded
        model = board.select("large")  # loaded from the store
        assert model["params"] == params and model["kernel"] == "bfp"
        for row, want in zip(x[:2], expected):
            y, k, _ = board.infer(row)
            np.testing.assert_allclose(y, want, atol=1e-6)
            assert k == int(np.argmax(want))
        got = list(board.batch(x, sizes[-1]))
        np.testing.assert_allclose(np.vstack([g[0] for g in got]), expected, atol=1e-6)
        assert np.array_equal(np.concatenate([g[1] for g in got]), expected.argmax(axis=1))
        assert board.hello()["active"] == "large"


def test_an_int8_model_that_fills_the_heap_runs_through_the_server(tmp_path):
    rng = np.random.default_rng(150)
    with VirtualPico(tmp_path, heap=unixport.PICO_HEAP) as vp, Client.open(vp.port) as board:
        free = board.hello()["mem_free"]
        sizes = [512, _hidden(free - INT8_MARGIN, 512, 10, 1), 10]
        params = sum(a * b + b for a, b in zip(sizes, sizes[1:]))
        assert params > 0.85 * free  # four times the float parameters the same heap holds
        doc = _doc(rng, sizes)
        x = rng.normal(size=(40, sizes[0])).astype(np.float32)
        doc8 = quantize.quantize(doc, x[:32], name="large8")
        _, expected = quantize.run_int8(doc8, x)  # the spec's arithmetic, exactly
        board.upload(model_doc.pack(doc8), "large8", activate=False)
        model = board.select("large8")
        assert model["params"] == params and model["dtype"] == "int8" and model["kernel"] == "int8"
        y, k, _ = board.infer(x[0])
        assert np.array_equal(np.asarray(y, np.float32), expected[0]) and k == int(np.argmax(expected[0]))
        got = np.vstack([g[0] for g in board.batch(x, sizes[-1])])
        assert np.array_equal(got.astype(np.float32), expected)


BIG8_SIZES = [512, 192, 10]


def test_the_int8_kernel_gives_its_heap_back_when_its_model_goes(tmp_path):
    # The int8 kernel is imported with the first int8 model (before its arrays, so its
    # code lies below them) and forgotten when no int8 model is active: a float model
    # then has that room again. Only names the interpreter interned stay (under 3 KB).
    # The int8 model (100,426 parameters) leaves tens of KB free: this test is about the
    # kernel's room, not the heap's edge, so a few bytes elsewhere cannot flip it.
    rng = np.random.default_rng(41)
    doc8 = quantize.quantize(_doc(rng, BIG8_SIZES), rng.normal(size=(32, BIG8_SIZES[0])), name="big8")
    small = _doc(rng, [16, 32, 8])
    x = rng.normal(size=(2, 16)).astype(np.float32)
    with VirtualPico(tmp_path, heap=unixport.PICO_HEAP) as vp, Client.open(vp.port) as board:
        fresh = board.hello()["mem_free"]
        for _ in range(2):  # the second time imports and forgets it again
            board.upload(model_doc.pack(doc8), "big8")  # activated
            assert board.hello()["dtype"] == "int8"
            board.infer(np.zeros(BIG8_SIZES[0], np.float32))
            board.upload(model_doc.pack(small), "small")  # in its place, as float
            assert fresh - board.hello()["mem_free"] < _held_by(small) + 3000
            board.delete("big8")
        board.delete("small")
        assert fresh - board.hello()["mem_free"] < 3000
        board.upload(model_doc.pack(small), "small")
        y, _, _ = board.infer(x[0])
        np.testing.assert_allclose(y, _forward(small, x[:1])[0], atol=1e-6)


def _held_by(doc):
    # An upper bound of what a small float model holds on the server: its weights, and
    # 6 KB of structures and batch reply buffer.
    return sum(4 * (np.size(l["weights"]) + np.size(l["bias"])) for l in doc["layers"]) + 6000


def test_the_largest_model_the_server_takes_leaves_every_command_working(tmp_path):
    # Found in this run, as the benchmark finds it: the widest 64-h-10 float model that
    # upload_end accepts. The board must still say hello, list its models, describe and
    # run the model, and take the next upload: a model once took the room that listing
    # and verifying an upload need, and the board could no longer list what it held.
    rng = np.random.default_rng(7)
    with VirtualPico(tmp_path, heap=unixport.PICO_HEAP) as vp, Client.open(vp.port) as board:
        free = board.hello()["mem_free"]
        lo, hi = 16, _hidden(free, 64, 10, 4) + 1  # hi: more weights than the whole free heap
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if board.hello()["model_count"]:
                board.delete("edge")  # each try from an empty heap, as the benchmark's
            try:
                board.upload(model_doc.pack(_doc(rng, [64, mid, 10])), "edge")
                lo = mid
            except BoardError as e:
                assert e.code == "no_memory", e
                hi = mid
        # At the edge, whether a model fits depends on how the heap lies, which every
        # try changes: the largest that fits now, from lo down.
        while board.hello()["active"] is None:
            try:
                board.upload(model_doc.pack(_doc(rng, [64, lo, 10])), "edge")
            except BoardError as e:
                assert e.code == "no_memory", e
                lo -= 1
        assert lo > _hidden(0.8 * free, 64, 10, 4)  # the edge: its weights take most of the heap
        assert board.hello()["active"] == "edge"
        assert [m["name"] for m in board.list_models()] == ["edge"]
        assert board.model()["layers"][0][2] == lo
        x = rng.normal(size=(4, 64)).astype(np.float32)
        assert len(list(board.batch(x, 10))) == 1
        board.upload(model_doc.pack(_doc(rng, [4, 8, 3])), "small")
        assert sorted(m["name"] for m in board.list_models()) == ["edge", "small"]
