"""Run models on the engine inside an interpreter: the test's view of a board
without the serial link. Inputs and outputs travel as raw float32, so every bit
the engine produced is compared, infinities and NaN included."""

import json

import numpy as np

from anne_host import model_doc

_SCRIPT = """
import anne, binascii
from array import array
for name, model, rows, n_in in JOBS:
    net = anne.load(model, KERNEL)
    x = array('f', range(rows * n_in))
    with open(model + '.in', 'rb') as f:
        f.readinto(x)
    out = array('f', range(rows * net.outputs))
    view = memoryview(x)
    for r in range(rows):
        y = net.forward(view[r * n_in:(r + 1) * n_in])
        for j in range(net.outputs):
            out[r * net.outputs + j] = y[j]
    print(name, binascii.hexlify(bytes(out)).decode())
    net = x = out = view = None
"""


def board_predict(run, tmp_path, jobs, kernel=None):
    """jobs: {name: (model document, inputs array (rows, n))} -> {name: outputs (rows, k)},
    computed by ``kernel`` (default: the firmware's choice for the interpreter)."""
    spec = []
    for name, (doc, x) in jobs.items():
        path = tmp_path / (name + ".anne")
        path.write_bytes(model_doc.pack(doc))
        x = np.ascontiguousarray(x, "<f4")
        (tmp_path / (name + ".anne.in")).write_bytes(x.tobytes())
        spec.append((name, str(path), x.shape[0], x.shape[1]))
    lines = run("JOBS = %s\nKERNEL = %r\n%s" % (json.dumps(spec), kernel, _SCRIPT)).split()
    raw = dict(zip(lines[::2], lines[1::2]))
    return {k: np.frombuffer(bytes.fromhex(v), "<f4").reshape(jobs[k][1].shape[0], -1)
            for k, v in raw.items()}


def float64_twin(keras, model):
    """The same Keras model computing in float64: the exact result that both
    Keras' float32 and the board's float32 approximate."""
    def clone(layer):
        return layer.__class__.from_config({**layer.get_config(), "dtype": "float64"})

    twin = keras.models.clone_model(model, clone_function=clone)
    twin.set_weights(model.get_weights())
    return twin


def assert_matches_keras(board, keras_out, what, exact=None):
    """Within 1e-5 of Keras relative to max(1, |Keras|); non-finite values exactly
    where Keras has them.

    With ``exact`` (the float64 result of the same Keras model), an output more
    than 1e-5 from Keras still passes when it is within 1e-5 of the exact result
    (Keras' own float32 rounding is then the larger error), or, where huge
    intermediate values cancel and float32 cannot promise 1e-5 at all, when it is
    within the same order of error as Keras (8 times Keras' own)."""
    keras_out = np.asarray(keras_out, np.float64)
    board = np.asarray(board, np.float64)
    assert board.shape == keras_out.shape, what
    finite = np.isfinite(keras_out)
    assert np.array_equal(np.isfinite(board), finite), "%s: non-finite outputs differ\nboard %s\nkeras %s" % (what, board, keras_out)
    assert np.array_equal(np.isnan(board), np.isnan(keras_out)), what
    assert np.array_equal(board[~finite & ~np.isnan(board)], keras_out[~finite & ~np.isnan(keras_out)]), what
    scale = np.maximum(1.0, np.abs(keras_out))
    err = np.where(finite, np.abs(board - keras_out), 0) / scale
    if exact is not None:
        keras_err = np.where(finite, np.abs(keras_out - exact), 0) / scale
        board_err = np.where(finite, np.abs(board - exact), 0) / scale
        allowed = np.maximum(1e-5, 8 * keras_err)
        err = np.where(board_err <= allowed, 0, err)
    assert err.size == 0 or err.max() <= 1e-5, "%s: max relative error %.3g" % (what, err.max())
