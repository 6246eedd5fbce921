"""The board computes what the source runtimes compute, for every way in: the firmware,
under the MicroPython Unix port, runs documents exported from ONNX graphs (against
onnxruntime), PyTorch's ONNX files (against torch's stored outputs) and scikit-learn MLPs
(against predict_proba and predict); and a skops file goes through export, upload and
predict on the virtual Pico as a user runs them."""

import numpy as np
import pytest

from anne_host import quantize
from anne_host.importers import onnx as onnx_importer
from anne_host.importers import sklearn as sk_importer

from ..firmware.board_predict import board_predict
from ..host.importer_models import inputs, mlp, onnx_nets, ort_run, torch_samples

pytest.importorskip("onnxruntime", reason="ONNX parity needs onnxruntime: pip install -e '.[dev]'")


def assert_close(got, ref, what, tol=1e-5):
    """Within ``tol`` relative to max(1, |ref|) where the reference is finite. Where it is
    not (huge inputs), ANNE gives its own defined answers (MODEL_FORMAT.md, "Non-finite
    values") and onnxruntime's float32 sums may overflow earlier, so those are not compared."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape, what
    finite = np.isfinite(ref)
    assert finite.mean() > 0.8, what  # the comparison covers most outputs
    err = np.abs(got[finite] - ref[finite]) / np.maximum(1.0, np.abs(ref[finite]))
    assert err.max() <= tol, "%s: max relative error %.3g" % (what, err.max())


def test_onnx_graphs_on_the_board_match_onnxruntime(run_mpy, tmp_path):
    x = inputs()
    jobs, refs = {}, {}
    for name, model in onnx_nets().items():
        jobs[name] = (onnx_importer.export_onnx(model, name=name), x)
        refs[name] = ort_run(model, x)
    for name, out in board_predict(run_mpy, tmp_path, jobs).items():
        assert_close(out, refs[name], name)
        finite = np.all(np.isfinite(refs[name]), axis=1)
        if out.shape[1] > 1:
            assert np.array_equal(out[finite].argmax(1), refs[name][finite].argmax(1)), name


def test_torch_samples_on_the_board_match_torch(run_mpy, tmp_path):
    samples = torch_samples()
    jobs = {name: (onnx_importer.export_onnx(path), x) for name, (path, x, _) in samples.items()}
    for name, out in board_predict(run_mpy, tmp_path, jobs).items():
        assert_close(out, samples[name][2], name + " vs torch")
        assert_close(out, ort_run(samples[name][0], samples[name][1]), name + " vs onnxruntime")


@pytest.mark.parametrize("activation", ["identity", "relu", "tanh", "logistic"])
def test_sklearn_mlps_on_the_board_match_predict_proba(run_mpy, tmp_path, activation):
    jobs, models = {}, {}
    for classes in (2, 3):
        model, x = mlp("classifier", activation, classes=classes)
        jobs["c%d" % classes] = (sk_importer.export_estimator(model), x.astype(np.float32))
        models["c%d" % classes] = model
    model, x = mlp("regressor", activation)
    jobs["reg"], models["reg"] = (sk_importer.export_estimator(model), x.astype(np.float32)), model
    for name, out in board_predict(run_mpy, tmp_path, jobs).items():
        doc, x = jobs[name]
        model = models[name]
        if name == "reg":
            assert_close(out, model.predict(x.astype(np.float64)), "regressor " + activation)
            continue
        proba = model.predict_proba(x.astype(np.float64))
        assert_close(out, proba[:, 1:] if proba.shape[1] == 2 else proba, "%s %s" % (name, activation))
        labels = np.asarray(doc["labels"])
        assert np.array_equal(labels[quantize.decisions(out)], model.predict(x.astype(np.float64))), name


def test_skops_export_upload_predict_on_the_virtual_pico(anne, tmp_path):
    import skops.io

    model, x = mlp("classifier", "tanh", classes=3)
    skops.io.dump(model, tmp_path / "flowers.skops")
    code, _, err = anne("export", str(tmp_path / "flowers.skops"), "-o", str(tmp_path / "flowers.json"))
    assert code == 0, err
    assert anne.json("upload", str(tmp_path / "flowers.json"), "--replace")["name"] == "flowers"
    rows = x[:12]
    np.savetxt(tmp_path / "rows.csv", rows, delimiter=",", header="f0,f1,f2,f3", comments="")
    result = anne.json("predict", str(tmp_path / "rows.csv"))
    outputs = np.array([r["outputs"] for r in result])
    assert_close(outputs, model.predict_proba(rows), "predict")
    assert [r["label"] for r in result] == list(model.predict(rows))
