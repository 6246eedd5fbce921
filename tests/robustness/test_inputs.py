"""Samples of the wrong size are refused; NaN, infinite and absurd values are computed
as specified (MODEL_FORMAT.md, "Non-finite values"), never a crash: what Keras gives for
finite values, the spec's limits and NaN rules beyond them, and every dense sum rounded
once, exactly."""

import numpy as np
import pytest

from anne_host import export, model_doc

from . import nonfinite_spec as spec
from .conftest import MODELS, blob, request

NAN, INF = float("nan"), float("inf")
# NaN and infinities, alone and mixed with ordinary values; denormal, zero; large
# values whose sums stay within float32.
ODD = np.array([[NAN] * 4, [INF] * 4, [-INF] * 4, [5.9, 3.0, 5.1, NAN], [INF, 0, 0, 1],
                [1e-45] * 4, [0.0] * 4, [-0.0] * 4, [1e30, 0, 0, 0], [-1e20, 1e20, 0, 1],
                [100, -100, 50, 3], [-1e5, 1e5, -5e4, -3]], np.float32)
# Near float32's largest value: sums of several such products exceed it part way.
HUGE = np.array([[3.4e38] * 4, [-3.4e38] * 4, [3.4e38, -3.4e38, 3.4e38, -3.4e38]], np.float32)
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
def test_odd_values_give_what_the_spec_gives_on_the_iris_nets(board, keras, name):
    board.upload(blob(name), name)
    doc = model_doc.read(MODELS / (name + ".json"))
    _same(_board_outputs(board, ODD), spec.forward(keras, doc, ODD))


def test_the_spec_oracle_is_keras_on_finite_values(keras):
    # The oracle above is Keras itself wherever Keras is defined: on finite inputs of
    # the IRIS nets (whose scaling layers the export folded) it gives the model's outputs.
    rows = ODD[np.isfinite(ODD).all(axis=1)]
    for name in ("iris3", "iris6", "iris8"):
        net = keras.models.load_model(MODELS / (name + ".keras"), compile=False)
        doc = model_doc.read(MODELS / (name + ".json"))
        np.testing.assert_allclose(spec.forward(keras, doc, rows), net(rows, training=False).numpy(),
                                   rtol=1e-5, atol=1e-6)


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


def _spec_outputs(keras, model, activation, x):
    kernel, bias = model.layers[0].get_weights()
    return spec.activation(keras, activation, spec.dense_sum(x, kernel.T, bias))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_odd_values_give_what_the_spec_gives_for_every_activation(board, every_activation, keras, activation):
    board.select(activation)
    model = every_activation[activation]
    _same(_board_outputs(board, ODD), _spec_outputs(keras, model, activation, ODD))


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_sums_beyond_float32_midway_are_rounded_once(board, every_activation, keras, activation):
    # The exact sum rounded once to float32 (inf only if the sum itself is beyond
    # float32): Keras' own float32 partial sums overflow here.
    board.select(activation)
    model = every_activation[activation]
    _same(_board_outputs(board, HUGE), _spec_outputs(keras, model, activation, HUGE))


@pytest.mark.parametrize("activation", ["softmax", "log_softmax"])
def test_a_row_softmax_at_infinity_is_its_limit_and_nan_spreads(board, keras, activation):
    # Logits given directly (an activation layer): +inf logits share the mass, -inf
    # ones get nothing, a NaN or a row of -inf has no distribution.
    doc = {"format": "anne-model", "version": 1, "name": "rows", "inputs": 3,
           "layers": [{"type": "activation", "activation": activation}]}
    board.upload(model_doc.pack(doc), "rows")
    x = np.array([[INF, 0, 0], [INF, INF, 0], [INF, INF, INF], [-INF, 0, 1], [-INF] * 3,
                  [NAN, 0, 1], [NAN, INF, 0], [INF, -INF, 0]], np.float32)
    got = _board_outputs(board, x)
    _same(got, spec.activation(keras, activation, x))
    log = activation == "log_softmax"
    _same(got[1], [-np.log(2), -np.log(2), -INF] if log else [0.5, 0.5, 0])
    assert np.isnan(got[4:7]).all()
    board.delete("rows")


def test_a_batch_of_odd_values_equals_one_sample_at_a_time(iris6):
    rows = np.vstack([ODD, HUGE])
    y, classes, _ = next(iris6.batch(rows, 1))
    _same(y, _board_outputs(iris6, rows))
    assert classes.tolist() == [iris6.infer(r.tolist())[1] for r in rows]
