"""The board computes what Keras computes: random nets covering every supported
activation and folded layer, exported, packed, and run by the firmware engine."""

import numpy as np
import pytest

from anne_host import export

from .board_predict import assert_matches_keras, board_predict, float64_twin

N_IN = 5
DENSE_ACTIVATIONS = [
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "sigmoid", "hard_sigmoid",
    "tanh", "softmax", "softplus", "softsign", "silu", "swish", "gelu", "exponential",
    "hard_silu", "mish", "log_softmax", "celu", "hard_tanh", "log_sigmoid",
]


def _standalone_layers(keras):
    L = keras.layers
    return {
        "Activation-gelu": lambda: L.Activation("gelu"),
        "Activation-tanh": lambda: L.Activation("tanh"),
        "ReLU-max": lambda: L.ReLU(max_value=1.5),
        "ReLU-slope-threshold": lambda: L.ReLU(negative_slope=0.1, threshold=0.3),
        "ReLU-all": lambda: L.ReLU(max_value=2.0, negative_slope=0.2, threshold=0.5),
        "LeakyReLU": lambda: L.LeakyReLU(negative_slope=0.25),
        "ELU": lambda: L.ELU(alpha=0.7),
        "PReLU": lambda: L.PReLU(alpha_initializer=keras.initializers.RandomUniform(0.05, 0.5)),
        "Softmax": lambda: L.Softmax(),
    }


def _nets(keras):
    """name -> Keras model; every net starts with a Normalization so raw-scale
    inputs are folded into the first Dense, as a user's model would be."""
    L = keras.layers
    keras.utils.set_random_seed(1234)  # the same nets whatever ran before
    rng = np.random.default_rng(7)

    def start():
        return [keras.Input((N_IN,)),
                L.Normalization(mean=rng.normal(0, 2, N_IN), variance=rng.uniform(0.2, 3, N_IN))]

    nets = {}
    for act in DENSE_ACTIVATIONS:
        # exp(exp(x)) magnifies float32 rounding (Keras' own too) past any fixed
        # tolerance, so the exponential net feeds it bounded values.
        first = "tanh" if act == "exponential" else act
        nets["dense-" + act] = keras.Sequential(
            start() + [L.Dense(7, activation=first), L.Dropout(0.3), L.Dense(3, activation=act)])
    for name, make in _standalone_layers(keras).items():
        nets["layer-" + name] = keras.Sequential(
            start() + [L.Dense(6), make(), L.GaussianNoise(0.1), L.Dense(2), make()])
    bn = keras.Sequential(start() + [
        L.Dense(6, activation="relu"), L.BatchNormalization(), L.Dense(6),
        L.BatchNormalization(), L.Activation("tanh"), L.Rescaling(0.5, offset=0.25),
        L.Dense(3, activation="softmax")])
    for layer in bn.layers:
        if isinstance(layer, L.BatchNormalization):
            n = layer.get_weights()[0].shape[0]
            layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(0, 1, n),
                               rng.normal(0, 1, n), rng.uniform(0.2, 2, n)])
    nets["folded-batchnorm-rescaling"] = bn
    return nets


def _inputs():
    rng = np.random.default_rng(3)
    rows = [rng.normal(0, 2, (20, N_IN))]
    for scale in (1e4, -1e4, 1e30, -1e30):
        rows.append(np.full((1, N_IN), scale))
        rows.append(rng.choice([-1.0, 1.0], (2, N_IN)) * scale)
    rows.append(np.zeros((1, N_IN)))
    return np.vstack(rows).astype(np.float32)


@pytest.fixture(scope="module")
def cases(keras):
    x = _inputs()
    with np.errstate(all="ignore"):
        return {name: (export.export_model(m), x, np.asarray(m(x, training=False)),
                       np.asarray(float64_twin(keras, m)(x.astype(np.float64), training=False)))
                for name, m in _nets(keras).items()}


def test_every_activation_and_folded_layer_matches_keras(run_any, tmp_path, cases):
    board = board_predict(run_any, tmp_path, {k: (doc, x) for k, (doc, x, _, _) in cases.items()})
    for name, (_, _, expected, exact) in cases.items():
        assert_matches_keras(board[name], expected, name, exact)
        finite = np.all(np.isfinite(expected), axis=1)
        if expected.shape[1] > 1:  # class decisions are the same where Keras has any
            assert np.array_equal(board[name][finite].argmax(1), expected[finite].argmax(1)), name


def test_folding_removes_scaling_and_noise_layers(cases):
    doc = cases["folded-batchnorm-rescaling"][0]
    assert [layer["type"] for layer in doc["layers"]] == ["dense", "dense", "dense"]
    assert [layer["activation"]["name"] for layer in doc["layers"]] == ["relu", "tanh", "softmax"]
    assert len(doc["source"]["folded"]) == 5  # normalization, 2 batchnorm, tanh, rescaling
