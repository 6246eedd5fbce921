"""A look inside, computed by the firmware under MicroPython: net.trace gives every
layer's pre-activations and outputs as Keras computes them (float models) or as the
int8 spec does (int8 models), and net.show draws them as bars at the REPL."""

import numpy as np
import pytest

from anne_host import export, model_doc, quantize

MEAN, VAR = [5.8, 3.0, 3.8, 1.2], [0.7, 0.2, 3.1, 0.6]


@pytest.fixture(scope="module")
def keras_net():
    keras = pytest.importorskip("keras", reason="needs Keras: pip install -e '.[dev]'")
    keras.utils.set_random_seed(11)
    L = keras.layers
    model = keras.Sequential([keras.Input((4,)), L.Normalization(mean=MEAN, variance=VAR),
                              L.Dense(6, activation="tanh"), L.Dense(5, activation="elu"),
                              L.Dense(3, activation="softmax")])
    doc = export.export_model(model, name="t3", labels=["a", "b", "c"],
                              features=["sl", "sw", "pl", "pw"])
    return keras, model, doc


def _board_trace(run_mpy, tmp_path, doc, x):
    path = tmp_path / (doc["name"] + ".anne")
    path.write_bytes(model_doc.pack(doc))
    return run_mpy.json("import anne, json\nnet = anne.load(%r)\nprint(json.dumps(net.trace(%r)))"
                        % (str(path), [float(v) for v in x]))


def test_trace_is_what_keras_computes_layer_by_layer(run_mpy, tmp_path, keras_net):
    keras, model, doc = keras_net
    x = np.array([[6.1, 2.8, 4.7, 1.2]], np.float32)
    got = _board_trace(run_mpy, tmp_path, doc, x[0])
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert [(t["kind"], t["activation"], t["units"]) for t in got] == [
        ("dense", "tanh", 6), ("dense", "elu", 5), ("dense", "softmax", 3)]
    inputs = keras.Model(model.inputs[0], [layer.input for layer in dense])(x)
    outputs = keras.Model(model.inputs[0], [layer.output for layer in dense])(x)
    for t, layer, a, y in zip(got, dense, inputs, outputs):
        kernel, bias = (np.asarray(v) for v in layer.get_weights())
        pre = np.asarray(a) @ kernel + bias  # the Dense layer's sums, before its activation
        np.testing.assert_allclose(t["pre"], pre[0], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(t["out"], np.asarray(y)[0], rtol=1e-5, atol=1e-6)


def test_trace_of_an_int8_model_is_the_specs_arithmetic(run_mpy, tmp_path, keras_net):
    _, _, doc = keras_net
    rng = np.random.default_rng(4)
    calibration = (rng.normal(MEAN, np.sqrt(VAR), (200, 4))).astype(np.float32)
    qdoc = quantize.quantize(doc, calibration, name="t3_int8")
    x = np.array([6.1, 2.8, 4.7, 1.2], np.float32)
    got = _board_trace(run_mpy, tmp_path, qdoc, x)
    for k, t in enumerate(got):
        # the int8 reference run on the model's first k + 1 layers gives layer k's levels
        prefix = {key: v for key, v in qdoc.items() if key != "labels"}
        prefix["layers"] = qdoc["layers"][:k + 1]
        q, y = quantize.run_int8(prefix, x[None, :])
        assert t["out_q"] == q[0].tolist() and t["out"] == y[0].tolist(), k
    assert got[0]["pre"] is None  # tanh is a table: its input's scale is not in the file
    assert got[0]["pre_q"] != got[0]["out_q"]


def test_show_draws_a_bar_per_neuron_with_the_names(run_mpy, tmp_path, keras_net):
    _, _, doc = keras_net
    path = tmp_path / "t3.anne"
    path.write_bytes(model_doc.pack(doc))
    out = run_mpy("import anne\nanne.load(%r).show([6.1, 2.8, 4.7, 1.2])" % str(path)).splitlines()
    assert out[0] == "input" and out[1].split()[0] == "sl"
    layer_lines = [line for line in out if line.startswith("layer")]
    assert layer_lines == ["layer 0: dense tanh, 6 units", "layer 1: dense elu, 5 units",
                           "layer 2: dense softmax, 3 units"]
    last = out[out.index(layer_lines[-1]) + 1:]
    assert [line.split()[0] for line in last] == ["a", "b", "c"]
    probs = [float(line.split()[-1]) for line in last]
    bars = [line.count("#") for line in last]
    assert abs(sum(probs) - 1) < 1e-3 and bars[int(np.argmax(probs))] == 20
    assert all(len(line) <= 60 for line in out)  # fits a narrow shell


def test_trace_refuses_a_wrong_width(run_mpy, tmp_path, keras_net):
    _, _, doc = keras_net
    path = tmp_path / "t3.anne"
    path.write_bytes(model_doc.pack(doc))
    out = run_mpy("import anne\ntry:\n anne.load(%r).trace([1.0, 2.0])\nexcept ValueError as e:\n"
                  " print('refused:', e)" % str(path))
    assert "refused: the model takes 4 inputs, got 2" in out
