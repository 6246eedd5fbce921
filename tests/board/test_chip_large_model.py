"""On the board: large models through the server, uploaded, selected from the store and
asked, in the Pico's own heap (4-byte objects: the virtual Pico's 8-byte ones take about
twice the room for the engine's structures): more than 140,000 int8 parameters, and
32,218 float ones. The float limit through the server is about 34,000 parameters now
(the Thumb kernels' code, the listing and model checks kept resident, and 4 KB kept
free beside a model took heap, and the two largest arrays must find two blocks); models
larger than the heap need weights read from flash, which ANNE does not do yet."""

import numpy as np

from anne_host import model_doc, quantize
from anne_host.client import Client

from ..large_models import dense_doc as _doc, forward as _forward


def _emptied(board):
    for m in board.list_models():
        board.delete(m["name"])


def test_large_float_and_int8_models_go_through_the_server(chip):
    rng = np.random.default_rng(40)
    chip.restart()  # a fresh interpreter: earlier tests leave code and objects at the REPL
    with Client.open(chip.port, timeout=120) as board:
        _emptied(board)
        try:
            _float_and_int8(board, rng)
        finally:  # a failure here must not leave a model for the REPL tests' store listings
            _emptied(board)


def _float_and_int8(board, rng):
    doc = _doc(rng, [160, 128, 90])  # 32,218 parameters: 129 KB of float32
    x = rng.normal(size=(4, 160)).astype(np.float32)
    board.upload(model_doc.pack(doc), "large", activate=False)
    assert board.select("large")["params"] == 32218
    got = np.vstack([g[0] for g in board.batch(x, 90)])
    np.testing.assert_allclose(got, _forward(doc, x), atol=1e-6)
    board.delete("large")

    # 141,418 parameters, 138 KB as int8 (one 135 KB block): after a float model. A
    # 512-288-10 (147 KB block) still fits into a heap that has held no float model.
    doc = _doc(rng, [480, 288, 10])
    x = rng.normal(size=(8, 480)).astype(np.float32)
    doc8 = quantize.quantize(doc, x, name="large8")
    board.upload(model_doc.pack(doc8), "large8", activate=False)
    model = board.select("large8")
    assert model["params"] == 141418 and model["dtype"] == "int8"
    got = np.vstack([g[0] for g in board.batch(x, 10)])
    assert np.array_equal(got.astype(np.float32), quantize.run_int8(doc8, x)[1])
    board.delete("large8")
