"""More ways in: ONNX graphs, PyTorch (its ONNX files and its modules) and scikit-learn MLPs
become the same model document as Keras models, computing what their own runtimes compute.
The board's parity is in tests/e2e/test_importers_board.py; here the document's network is
computed on the host with the board's activations (quantize.run_float)."""

import json
import pickle
import sys

import numpy as np
import pytest

from anne_host import cli, model_doc, quantize
from anne_host.export import ExportError
from anne_host.importers import onnx as onnx_importer
from anne_host.importers import sklearn as sk_importer

from .importer_models import inputs, mlp, onnx_model, onnx_nets, ort_run, torch_samples

pytest.importorskip("onnx", reason="the ONNX importer needs onnx: pip install -e '.[dev]'")
pytest.importorskip("onnxruntime", reason="ONNX parity needs onnxruntime: pip install -e '.[dev]'")


def assert_close(got, ref, what, tol=1e-5):
    """Within ``tol`` relative to max(1, |ref|), where the reference is finite."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape, what
    finite = np.isfinite(ref)
    err = np.abs(got[finite] - ref[finite]) / np.maximum(1.0, np.abs(ref[finite]))
    assert err.size and err.max() <= tol, "%s: max relative error %.3g" % (what, err.max() if err.size else 0)


# -- ONNX ------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(onnx_nets()))
def test_onnx_graphs_compute_what_onnxruntime_computes(name):
    model = onnx_nets()[name]
    doc = onnx_importer.export_onnx(model, name=name)
    x = inputs()
    with np.errstate(all="ignore"):
        assert_close(quantize.run_float(doc, x), ort_run(model, x), name)


def test_onnx_folds_scaling_and_drops_no_ops():
    doc = onnx_importer.export_onnx(onnx_nets()["matmul-add-scaling"])
    # Sub, Div before the first MatMul; Add, Mul, Tanh into it; BatchNormalization and Sub into the second.
    assert [(layer["type"], layer["activation"]["name"]) for layer in doc["layers"]] == [
        ("dense", "tanh"), ("dense", "sigmoid")]
    doc = onnx_importer.export_onnx(onnx_nets()["no-ops"])
    assert [d.split(":")[0] for d in doc["source"]["dropped"]] == [
        "node 'i0' (Identity)", "node 'i1' (Dropout)", "node 'i2' (Flatten)", "node 'i3' (Reshape)"]
    doc = onnx_importer.export_onnx(onnx_nets()["act-03-HardSigmoid"])
    assert doc["layers"][0]["activation"]["name"] == "hard_sigmoid"
    assert "node 'act' (HardSigmoid)'s alpha=0.2, beta=0.5 into node 'gemm' (Gemm)" in doc["source"]["folded"]


def _refused(nodes, inits, match, n_out=3, **kw):
    with pytest.raises(ExportError, match=match):
        onnx_importer.export_onnx(onnx_model(nodes, inits, 4, n_out, **kw))


def test_onnx_refusals_name_the_op_and_its_node():
    from onnx import helper as h

    w = np.ones((4, 3), np.float32)
    _refused([h.make_node("Gemm", ["x", "W"], ["g"]), h.make_node("Sin", ["g"], ["y"], name="wave")],
             {"W": w}, r"node 'wave' \(Sin\) is not supported; supported ops: Add, BatchNormalization")
    _refused([h.make_node("Gemm", ["x", "W"], ["g"]), h.make_node("Relu", ["g"], ["r"]),
              h.make_node("HardSigmoid", ["r"], ["y"], name="hs")], {"W": w},
             r"node 'hs' \(HardSigmoid\) has alpha=0.2, beta=0.5, and ANNE's hard_sigmoid is Keras 3's")
    _refused([h.make_node("Gemm", ["x", "W"], ["g"]), h.make_node("Selu", ["g"], ["y"], name="s", alpha=1.5)],
             {"W": w}, r"node 's' \(Selu\) has alpha=1.5, gamma=1.0507; ANNE's selu has ONNX's defaults")
    _refused([h.make_node("Gemm", ["x", "W"], ["a"]), h.make_node("Gemm", ["x", "W"], ["b"]),
              h.make_node("Add", ["a", "b"], ["y"], name="sum")], {"W": w},
             r"node 'sum' \(Add\) combines 2 computed tensors \(a, b\); only a single chain")
    _refused([h.make_node("Gemm", ["x", "W"], ["g"]), h.make_node("Div", ["one", "g"], ["y"], name="inv")],
             {"W": w, "one": np.float32(1)}, r"node 'inv' \(Div\) divides a constant by the data")
    _refused([h.make_node("Gemm", ["x", "W"], ["g"], transA=1, name="t"), h.make_node("Relu", ["g"], ["y"])],
             {"W": w}, r"node 't' \(Gemm\) transposes its data input \(transA=1\)")
    _refused([h.make_node("Gemm", ["x", "W"], ["g"]), h.make_node("Softmax", ["g"], ["y"], axis=0, name="sm")],
             {"W": w}, r"node 'sm' \(Softmax\) must act on the features")


def test_onnx_needs_its_extra(tmp_path, monkeypatch, capsys):
    path = tmp_path / "m.onnx"
    path.write_bytes(b"whatever")
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now fails, as where it is not installed
    assert cli.main(["export", str(path)]) == 1
    err = capsys.readouterr().err
    assert err == "anne-host: this needs the onnx package: pip install 'anne-host[onnx]'\n"


def test_a_file_that_is_not_onnx_is_one_line(tmp_path, capsys):
    (tmp_path / "m.onnx").write_bytes(b"\x00garbage\xff" * 10)
    assert cli.main(["export", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("anne-host: ") and "cannot read as an ONNX model" in err and err.count("\n") == 1


# -- PyTorch ---------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(torch_samples()))
def test_torch_onnx_samples_compute_what_torch_and_onnxruntime_compute(name):
    path, x, torch_out = torch_samples()[name]
    doc = onnx_importer.export_onnx(path)
    ours = quantize.run_float(doc, x)
    assert_close(ours, torch_out, name + " vs torch")
    assert_close(ours, ort_run(path, x), name + " vs onnxruntime")
    assert all(layer["type"] == "dense" for layer in doc["layers"])  # every activation merged


def test_torch_onnx_export_command(tmp_path, capsys):
    path = torch_samples()["mlp_bn_softmax"][0]
    out = tmp_path / "m.json"
    assert cli.main(["--json", "export", str(path), "--labels", "a,b,c", "--features", "p,q,r,s",
                     "-o", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["layers"] == 2 and summary["params"] == 4 * 8 + 8 + 8 * 3 + 3
    assert summary["folded"][0] == "node '/1/BatchNormalization' (BatchNormalization) into node '/0/Gemm' (Gemm)"
    doc = model_doc.read(out)
    assert doc["labels"] == ["a", "b", "c"] and doc["name"] == "mlp_bn_softmax"
    assert doc["source"]["file"] == "mlp_bn_softmax.onnx"


@pytest.fixture(scope="module")
def torch_nets():
    torch = pytest.importorskip("torch", reason="PyTorch is not in the dev extra (several GB); "
                                                "the committed ONNX samples test its path instead")
    from ..tools.tool_file import load_tool

    return torch, load_tool("export_torch_samples")


def test_torch_modules_compute_what_torch_computes(torch_nets):
    from anne_host.importers.torch import export_module

    torch, tool = torch_nets
    for name, (net, n_in) in tool.nets().items():
        x = tool.inputs(n_in)
        with torch.no_grad():
            expected = net(x).double().numpy()
        doc = export_module(net, name=name)
        assert_close(quantize.run_float(doc, x.numpy()), expected, name)
        # The module and its committed ONNX export make the same network.
        via_onnx = onnx_importer.export_onnx(torch_samples()[name][0])
        assert [(layer.activation, np.float32(layer.params).tolist()) for layer in model_doc.to_layers(doc)] == \
            [(layer.activation, np.float32(layer.params).tolist()) for layer in model_doc.to_layers(via_onnx)]


def test_torch_refusals(torch_nets):
    from anne_host.importers.torch import export_module

    torch, _ = torch_nets
    nn = torch.nn
    with pytest.raises(ExportError, match=r"module '1' \(Conv1d\) is not supported; supported modules: "):
        export_module(nn.Sequential(nn.Linear(4, 4), nn.Conv1d(1, 1, 1)))
    with pytest.raises(ExportError, match=r"takes an nn.Sequential .* this is Linear"):
        export_module(nn.Linear(4, 2))
    with pytest.raises(ExportError, match=r"track_running_stats=False"):
        export_module(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4, track_running_stats=False)))


def test_torch_module_int8(torch_nets):
    from anne_host.importers.torch import export_module

    torch, tool = torch_nets
    net, n_in = tool.nets()["mlp_bn_softmax"]
    x = torch.randn(300, n_in, generator=torch.Generator().manual_seed(0))
    doc = export_module(net)
    qdoc = quantize.quantize(doc, x.numpy())
    agree = quantize.decisions(quantize.run_int8(qdoc, x.numpy())[1]) == net(x).argmax(1).numpy()
    assert agree.mean() >= 0.95


# -- scikit-learn ------------------------------------------------------------------

def _check_sklearn(doc, model, x, what):
    """Outputs within 1e-5 of predict_proba (predict for a regressor); the same decisions."""
    ours = quantize.run_float(doc, x.astype(np.float32))
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(x)
        assert_close(ours, proba[:, 1:] if proba.shape[1] == 2 else proba, what)
        labels = np.asarray(doc["labels"])
        assert np.array_equal(labels[quantize.decisions(ours, doc.get("threshold", 0.5))],
                              model.predict(x).astype(str)), what
    else:
        assert_close(ours, np.asarray(model.predict(x)).reshape(len(x), -1), what)


@pytest.mark.parametrize("activation", ["identity", "relu", "tanh", "logistic"])
@pytest.mark.parametrize("classes", [2, 3])
def test_mlp_classifiers_match_predict_proba_and_predict(activation, classes):
    model, x = mlp("classifier", activation, classes=classes, scaler=activation != "identity")
    doc = sk_importer.export_estimator(model)
    _check_sklearn(doc, model, x, "%s %d classes" % (activation, classes))
    assert doc["labels"] == ["setosa", "versicolor", "virginica"][:classes]
    assert doc["layers"][-1]["units"] == (1 if classes == 2 else classes)  # binary: one logistic output


@pytest.mark.parametrize("outputs", [1, 2])
def test_mlp_regressor_matches_predict(outputs):
    model, x = mlp("regressor", "tanh", outputs=outputs)
    doc = sk_importer.export_estimator(model)
    _check_sklearn(doc, model, x, "regressor")
    assert "labels" not in doc and doc["source"]["folded"][0].startswith("step 'standardscaler' (StandardScaler)")


def test_skops_file_through_the_command(tmp_path, capsys):
    import skops.io

    model, x = mlp("classifier", "relu")
    skops.io.dump(model, tmp_path / "iris.skops")
    assert cli.main(["--json", "export", str(tmp_path / "iris.skops"), "--features", "a,b,c,d"]) == 0
    summary = json.loads(capsys.readouterr().out)
    doc = model_doc.read(summary["output"])
    assert doc["name"] == "iris" and doc["features"] == ["a", "b", "c", "d"]
    _check_sklearn(doc, model, x, "skops")


def test_a_pickle_needs_trust_pickle(tmp_path, capsys):
    model, x = mlp("classifier", "tanh", classes=2)
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps(model))
    assert cli.main(["export", str(path)]) == 1
    err = capsys.readouterr().err
    assert "is a pickle: loading it runs any code it holds" in err and "--trust-pickle" in err
    assert cli.main(["export", str(path), "--trust-pickle"]) == 0
    _check_sklearn(model_doc.read(tmp_path / "m.json"), model, x, "pickle")


def test_trust_pickle_help_says_it_runs_code(capsys):
    with pytest.raises(SystemExit):
        cli.main(["export", "--help"])
    assert "RUNS ANY CODE" in " ".join(capsys.readouterr().out.split())


class NotAModel:
    """A type skops does not know: loading it could run its code."""

    def __init__(self):
        self.x = 1


def test_skops_refuses_types_it_does_not_trust(tmp_path):
    import skops.io
    from sklearn.pipeline import Pipeline

    model, _ = mlp("classifier", "relu")
    skops.io.dump(model, tmp_path / "ok.skops")
    skops.io.dump({"model": NotAModel()}, tmp_path / "odd.skops")
    with pytest.raises(ExportError, match=r"holds types that are not a scikit-learn MLP or scaler \(.*NotAModel\)"):
        sk_importer.load(tmp_path / "odd.skops")
    assert isinstance(sk_importer.load(tmp_path / "ok.skops"), Pipeline)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sklearn_refusals():
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    with pytest.raises(ExportError, match=r"LogisticRegression is not supported; supported: MLPClassifier"):
        sk_importer.export_estimator(LogisticRegression())
    with pytest.raises(ExportError, match="is not fitted"):
        sk_importer.export_estimator(MLPClassifier())
    x = np.random.default_rng(0).normal(size=(40, 3))
    multilabel = MLPClassifier(max_iter=20).fit(x, (x > 0).astype(int))
    with pytest.raises(ExportError, match="multilabel"):
        sk_importer.export_estimator(multilabel)


@pytest.mark.parametrize("classes, zipmap", [(2, True), (3, True), (2, False), (3, False)])
def test_skl2onnx_classifiers_export_their_probabilities(classes, zipmap):
    skl2onnx = pytest.importorskip("skl2onnx", reason="needs skl2onnx: pip install -e '.[dev]'")
    model, x = mlp("classifier", "tanh", classes=classes)
    options = None if zipmap else {id(model[-1]): {"zipmap": False}}
    graph = skl2onnx.to_onnx(model, x[:1].astype(np.float32), options=options)
    doc = onnx_importer.export_onnx(graph)
    assert doc["labels"] == ["setosa", "versicolor", "virginica"][:classes]  # from the graph
    _check_sklearn(doc, model, x, "skl2onnx")
    dropped = " ".join(doc["source"]["dropped"])
    assert ("(ZipMap)" in dropped) == zipmap and ("(1 - p, p)" in dropped) == (classes == 2)


def test_skl2onnx_regressor():
    skl2onnx = pytest.importorskip("skl2onnx", reason="needs skl2onnx: pip install -e '.[dev]'")
    model, x = mlp("regressor", "relu", outputs=1)
    doc = onnx_importer.export_onnx(skl2onnx.to_onnx(model, x[:1].astype(np.float32)))
    _check_sklearn(doc, model, x, "skl2onnx regressor")
    # skl2onnx 1.20 reshapes a 2-output regressor's (batch, 2) to (2 * batch, 1): refused, not mixed up.
    model, x = mlp("regressor", "relu", outputs=2)
    with pytest.raises(ExportError, match=r"node 'Reshape' \(Reshape\): only a Reshape to a vector per sample"):
        onnx_importer.export_onnx(skl2onnx.to_onnx(model, x[:1].astype(np.float32)))


def test_an_output_must_be_chosen_when_there_are_several():
    from onnx import TensorProto, helper as h

    outs = [h.make_tensor_value_info(n, TensorProto.FLOAT, ["batch", 3]) for n in ("y", "z")]
    model = onnx_model([h.make_node("Gemm", ["x", "W"], ["y"]), h.make_node("Relu", ["y"], ["z"])],
                       {"W": np.ones((4, 3), np.float32)}, 4, 3, outputs=outs)
    with pytest.raises(ExportError, match=r"outputs y, z, 2 of them .*\(output=NAME, or --onnx-output NAME\)"):
        onnx_importer.export_onnx(model)
    assert onnx_importer.export_onnx(model, output="z")["layers"][0]["activation"]["name"] == "relu"


# -- int8 on every way in ----------------------------------------------------------

def _int8_agrees(qpath, float_doc, rows, at_least):
    qdoc = model_doc.read(qpath)
    assert qdoc["dtype"] == "int8"
    got = quantize.decisions(quantize.run_int8(qdoc, rows)[1])
    want = quantize.decisions(quantize.run_float(float_doc, rows))
    assert (got == want).mean() >= at_least


def test_int8_from_onnx_skops_and_pickle(tmp_path, capsys):
    import skops.io

    path = torch_samples()["mlp_bn_softmax"][0]
    rows = np.random.default_rng(2).normal(0, 1.5, (200, 4)).astype(np.float32)
    np.savetxt(tmp_path / "cal.csv", rows, delimiter=",", header="a,b,c,d", comments="")
    assert cli.main(["export", str(path), "--int8", "--calibrate", str(tmp_path / "cal.csv"),
                     "-o", str(tmp_path / "t_int8.json")]) == 0, capsys.readouterr().err
    _int8_agrees(tmp_path / "t_int8.json", onnx_importer.export_onnx(path), rows, 0.95)

    model, x = mlp("classifier", "relu", spread=(2, 1, 1.5, 1))
    np.savetxt(tmp_path / "iris.csv", x, delimiter=",")
    skops.io.dump(model, tmp_path / "m.skops")
    (tmp_path / "m.pkl").write_bytes(pickle.dumps(model))
    for src, extra in (("m.skops", []), ("m.pkl", ["--trust-pickle"])):
        out = tmp_path / (src + "_int8.json")
        assert cli.main(["export", str(tmp_path / src), "--int8", "--calibrate", str(tmp_path / "iris.csv"),
                         "-o", str(out), *extra]) == 0, capsys.readouterr().err
        _int8_agrees(out, sk_importer.export_estimator(model), x.astype(np.float32), 0.95)
