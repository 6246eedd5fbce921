"""Models for the importer tests, shared by the host tests and the board parity tests:
hand-built ONNX graphs, the committed PyTorch ONNX samples, and small scikit-learn MLPs."""

import json
import warnings
from pathlib import Path

import numpy as np

TORCH_SAMPLES = Path(__file__).resolve().parents[1] / "data" / "torch"
N_IN = 5


def _f(a):
    return np.asarray(a, np.float32)


def onnx_model(nodes, inits, n_in, n_out, opset=20, in_shape=None, outputs=None):
    """An ONNX model from nodes and {name: array} initializers; input 'x', output 'y'."""
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape or ["batch", n_in])
    outs = outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", n_out])]
    graph = helper.make_graph(nodes, "g", [x], outs,
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def onnx_nets():
    """name -> ONNX model covering every op and attribute the importer maps."""
    from onnx import helper as h

    rng = np.random.default_rng(11)

    def w(i, o):
        return _f(rng.normal(0, 1 / np.sqrt(i), (i, o)))

    def b(n):
        return _f(rng.normal(0, 0.3, n))

    nets = {}
    # Gemm's attributes: transB, alpha, beta, a bias of shape (1, n), and a Gemm with no bias.
    nets["gemm-attributes"] = onnx_model([
        h.make_node("Gemm", ["x", "W0", "C0"], ["h0"], name="g0", transB=1, alpha=0.7, beta=1.3),
        h.make_node("Relu", ["h0"], ["r0"]),
        h.make_node("Gemm", ["r0", "W1"], ["h1"], name="g1"),
        h.make_node("Softmax", ["h1"], ["y"], axis=1),
    ], {"W0": w(N_IN, 6).T.copy(), "C0": b(6).reshape(1, 6), "W1": w(6, 3)}, N_IN, 3)

    # Constant scaling on the input and between layers, BatchNormalization after an activation.
    nets["matmul-add-scaling"] = onnx_model([
        h.make_node("Sub", ["x", "mean"], ["s0"]), h.make_node("Div", ["s0", "std"], ["s1"]),
        h.make_node("MatMul", ["s1", "W0"], ["m0"]), h.make_node("Add", ["m0", "b0"], ["a0"]),
        h.make_node("Mul", ["two", "a0"], ["a1"]), h.make_node("Tanh", ["a1"], ["t0"]),
        h.make_node("BatchNormalization", ["t0", "gamma", "beta", "mu", "var"], ["n0"], epsilon=1e-3),
        h.make_node("Sub", ["half", "n0"], ["n1"]),  # constant minus data
        h.make_node("MatMul", ["n1", "W1"], ["m1"]), h.make_node("Add", ["b1", "m1"], ["a2"]),
        h.make_node("Sigmoid", ["a2"], ["y"]),
    ], {"mean": _f(rng.normal(0, 3, N_IN)), "std": _f(rng.uniform(0.5, 4, N_IN)), "W0": w(N_IN, 6),
        "b0": b(6), "two": _f(2.0), "gamma": _f(rng.uniform(0.5, 2, 6)), "beta": b(6),
        "mu": _f(rng.normal(0, 0.5, 6)), "var": _f(rng.uniform(0.2, 2, 6)), "half": _f(0.5),
        "W1": w(6, 1), "b1": b(1)}, N_IN, 1)

    # Every activation, each in a net of its own (a deep chain of them would hide a wrong one):
    # Gemm, the activation, a linear Gemm.
    acts = [("LeakyRelu", {"alpha": 0.15}), ("Elu", {"alpha": 0.8}), ("Selu", {}),
            ("HardSigmoid", {}),  # ONNX defaults 0.2, 0.5: folded into the Gemm before it
            ("HardSigmoid", {"alpha": 1 / 6, "beta": 0.5}), ("HardSigmoid", {"alpha": 0.3, "beta": 0.4}),
            ("Gelu", {}), ("Gelu", {"approximate": "tanh"}), ("Softplus", {}), ("Softsign", {}),
            ("Celu", {"alpha": 1.4}), ("HardSwish", {}), ("Mish", {}), ("Clip", (0.0, 6.0)),
            ("Clip", (0.0, 2.5)), ("Clip", (-1.0, 1.0)), ("PRelu", {}), ("Relu", {}), ("Sigmoid", {}),
            ("Tanh", {}), ("Softmax", {"axis": -1}), ("LogSoftmax", {"axis": 1})]
    for k, (op, attrs) in enumerate(acts):
        inits = {"W0": w(N_IN, 7), "C0": b(7), "W1": w(7, 3), "C1": b(3)}
        nodes = [h.make_node("Gemm", ["x", "W0", "C0"], ["g"], name="gemm")]
        if op == "Clip":
            inits["lo"], inits["hi"] = _f(attrs[0]), _f(attrs[1])
            nodes.append(h.make_node("Clip", ["g", "lo", "hi"], ["a"], name="act"))
        elif op == "PRelu":
            inits["slope"] = _f(rng.uniform(0.05, 0.5, 7))
            nodes.append(h.make_node("PRelu", ["g", "slope"], ["a"], name="act"))
        else:
            nodes.append(h.make_node(op, ["g"], ["a"], name="act", **attrs))
        nodes.append(h.make_node("Gemm", ["a", "W1", "C1"], ["y"]))
        nets["act-%02d-%s" % (k, op)] = onnx_model(nodes, inits, N_IN, 3)

    # No-op nodes before the first Gemm.
    nets["no-ops"] = onnx_model([
        h.make_node("Identity", ["x"], ["i0"], name="i0"), h.make_node("Dropout", ["i0"], ["i1"], name="i1"),
        h.make_node("Flatten", ["i1"], ["i2"], name="i2", axis=1),
        h.make_node("Reshape", ["i2", "shape"], ["i3"], name="i3"),
        h.make_node("Gemm", ["i3", "W"], ["y"])], {"shape": np.array([-1, N_IN]), "W": w(N_IN, 2)}, N_IN, 2)

    # A (batch, 1, 5) input flattened first.
    nets["flatten-input"] = onnx_model([
        h.make_node("Flatten", ["x"], ["f"]), h.make_node("Gemm", ["f", "W"], ["g"], transB=0),
        h.make_node("Softmax", ["g"], ["y"])], {"W": w(N_IN, 2)}, N_IN, 2, in_shape=["batch", 1, N_IN])
    return nets


def inputs(n_in=N_IN, seed=3):
    """Random rows, large and huge values of both signs, and zeros."""
    rng = np.random.default_rng(seed)
    rows = [rng.normal(0, 2, (20, n_in))]
    for scale in (1e4, -1e4, 1e30, -1e30):
        rows.append(np.full((1, n_in), scale))
        rows.append(rng.choice([-1.0, 1.0], (2, n_in)) * scale)
    rows.append(np.zeros((1, n_in)))
    return np.vstack(rows).astype(np.float32)


def ort_run(model, x, output=0):
    """onnxruntime's outputs (one output, by index) for rows ``x`` (model: ModelProto or path)."""
    import onnxruntime

    data = str(model) if isinstance(model, (str, Path)) else model.SerializeToString()
    session = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    x = x.reshape(x.shape[0], *([1] * (len(inp.shape) - 2)), x.shape[1])  # (batch, 1, n) inputs
    return session.run(None, {inp.name: x})[output]


def torch_samples():
    """name -> (path of the committed .onnx, inputs, torch's outputs) from tools/export_torch_samples.py."""
    expected = json.loads((TORCH_SAMPLES / "expected.json").read_text())["nets"]
    return {name: (TORCH_SAMPLES / (name + ".onnx"), np.asarray(e["inputs"], np.float32),
                   np.asarray(e["outputs"], np.float64)) for name, e in expected.items()}


def iris_like(seed=0, classes=3, n=150, spread=(1, 10, 100, 0.1)):
    """Rows on a raw scale far from standardised (so the scaler matters) and their class labels;
    ``spread`` scales each feature (int8 wants features of like ranges: one scale for the input)."""
    rng = np.random.default_rng(seed)
    spread = np.asarray(spread, np.float64)
    centers = rng.normal(0, 3, (classes, 4)) * spread + 5 * spread
    y = rng.integers(0, classes, n)
    x = centers[y] + rng.normal(0, 1, (n, 4)) * spread
    names = np.array(["setosa", "versicolor", "virginica", "other"][:classes])
    return x, names[y]


def mlp(kind="classifier", activation="relu", classes=3, scaler=True, seed=0, outputs=2, spread=(1, 10, 100, 0.1)):
    """A fitted scikit-learn MLP (in a Pipeline after a StandardScaler when ``scaler``) and its rows."""
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = iris_like(seed, classes, spread=spread)
    if kind == "classifier":
        model = MLPClassifier(hidden_layer_sizes=(8, 6), activation=activation, max_iter=300, random_state=seed)
    else:
        model = MLPRegressor(hidden_layer_sizes=(8,), activation=activation, max_iter=300, random_state=seed)
        y = np.stack([x[:, 0] * 0.5 + x[:, 3], x[:, 1] / 10][:outputs], axis=1)
        y = y[:, 0] if outputs == 1 else y
    if scaler:
        model = make_pipeline(StandardScaler(), model)
    elif kind == "classifier":
        x = (x - x.mean(0)) / x.std(0)  # without a scaler it trains on standardised rows
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: a few iterations are enough here
        model.fit(x, y)
    return model, x
