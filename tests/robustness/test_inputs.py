"""Samples of the wrong size are refused; NaN, infinite and absurd values are computed
as documented (PROTOCOL.md, "Samples"), never a crash: what Keras gives, except that
sums Keras overflows in float32 partial sums are rounded once, exactly."""

import numpy as np
import pytest

from anne_host import export, model_doc

from .conftest import MODELS, blob, request

NAN, INF = float("nan"), float("inf")
# NaN and infinities, alone and mixed with ordinary values; denormal, zero; large
# values whose sums stay within float32.
ODD = np.array([[NAN] * 4, [INF] * 4, [-INF] * 4, [5.9, 3.0, 5.1, NAN], [INF, 0, 0, 1],
                [1e-45] * 4, [0.0] * 4, [-0.0] * 4, [1e30, 0, 0, 0], [-1e20, 1e20, 0, 1],
                [100, -100, 50, 3], [-1e5, 1e5, -5e4, -3]], np.float32)
# Near float32's largest value: sums of several such products exceed it part way.
HUGE = np.array([[3.4e38] * 4, [-3.4e38] * 4, [3.4e38, -3.4e38, 3.4e38, -3.4e38]], np.float32)
# Where the board still differs from Keras: infinite pre-activations (firmware/activations.py).
DIFFERS_ON_INFINITY = {}  # activation -> why the board differs from Keras on infinities
ACTIVATIONS = ["linear", "relu", "relu6", "leaky_relu", "elu", "selu", "sigmoid", "hard_sigmoid",
               "tanh", "softmax", "softplus", "softsign", "silu", "gelu", "exponential", "hard_silu",
               "mish", "log_softmax", "celu", "hard_tanh", "log_sigmoid"]


def _board_outputs(board, x):
    return np.vstack([board.infer(row.tolist())[0] for row in x])


def _same(got, expected):
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6, equal_nan=True)


def test_a_sample_of_the_wrong_size_is_refused(iris6):
    for values in ([], [1.0] * 3, [1.0] * 5):
        reply = request(iris6, "infer", x=np.array(values, "<f4").tobytes())
        assert reply["error"] == "bad_input" and "needs 4 float32 values" in reply["message"]
    reply = request(iris6, "batch", x=bytes(4 * 4 * 3 + 8))
    assert reply["error"] == "bad_input" and "whole samples of 4" in reply["message"]
    assert iris6.infer([5.9, 3.0, 5.1, 1.8])[1] == 1  # and the board goes on


@pytest.mark.parametrize("name", ["iris3", "iris6", "iris8"])
def test_odd_values_give_what_keras_gives_on_the_iris_nets(board, keras, name):
    board.upload(blob(name), name)
    net = keras.models.load_model(MODELS / (name + ".keras"), compile=False)
    # The eager call: model.predict may fuse ops (oneDNN) that turn relu(NaN) into 0.
    _same(_board_outputs(board, ODD), net(ODD, training=False).numpy())


def _one_layer(keras, activation):
    rng = np.random.default_rng(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation=activation)])
    model.layers[0].set_weights([rng.normal(size=(4, 3)).astype(np.float32),
                                 rng.normal(size=3).astype(np.float32)])
    return model


@pytest.fixture(scope="module")
def every_activation(pico, keras):
    """One Dense(3) Keras model per activation, each uploaded: {activation: model}."""
    from anne_host.client import Client

    models = {a: _one_layer(keras, a) for a in ACTIVATIONS}
    with Client.open(pico.port) as board:
        for a, model in models.items():
            board.upload(model_doc.pack(export.export_model(model, name=a)), a, activate=False)
    return models


def _pre_activation(model, x):
    """The dense sum, exact in float64, rounded once to float32 (inf beyond its range)."""
    kernel, bias = model.layers[0].get_weights()
    with np.errstate(over="ignore", invalid="ignore"):
        return (x.astype(np.float64) @ kernel.astype(np.float64) + bias).astype(np.float32)


def _finite_rows(model, x, activation):
    # For the activations listed in DIFFERS_ON_INFINITY, the rows without an infinite
    # pre-activation; for the others, every row.
    if activation not in DIFFERS_ON_INFINITY:
        return np.ones(len(x), bool)
    return np.isfinite(_pre_activation(model, x)).all(axis=1) | np.isnan(x).any(axis=1)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_odd_values_give_what_keras_gives_for_every_activation(board, every_activation, activation):
    board.select(activation)
    model = every_activation[activation]
    rows = _finite_rows(model, ODD, activation)
    _same(_board_outputs(board, ODD[rows]), model(ODD[rows], training=False).numpy())


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_sums_beyond_float32_midway_are_rounded_once(board, every_activation, keras, activation):
    board.select(activation)
    model = every_activation[activation]
    rows = _finite_rows(model, HUGE, activation)
    # The exact sum rounded once to float32 (inf only if the sum itself is beyond
    # float32), then Keras' activation: Keras' own float32 partial sums overflow here.
    z = _pre_activation(model, HUGE[rows])
    expected = keras.ops.convert_to_numpy(keras.activations.get(activation)(z))
    _same(_board_outputs(board, HUGE[rows]), expected)


@pytest.mark.parametrize("activation", ["softmax", "hard_silu"])
def test_infinite_pre_activations_give_what_keras_gives(board, every_activation, activation):
    # Once different from Keras: softmax beside a +inf logit, hard_silu(-inf).
    board.select(activation)
    model = every_activation[activation]
    x = np.array([[INF, 0, 0, 1], [-INF, 0, 0, 1]], np.float32)
    _same(_board_outputs(board, x), model(x, training=False).numpy())


def test_a_batch_of_odd_values_equals_one_sample_at_a_time(iris6):
    rows = np.vstack([ODD, HUGE])
    y, classes, _ = next(iris6.batch(rows, 1))
    _same(y, _board_outputs(iris6, rows))
    assert classes.tolist() == [iris6.infer(r.tolist())[1] for r in rows]
