"""anne-host as a user runs it, against the virtual Pico: every command, its
--json document, and numbers equal to evaluating Keras on the same rows."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from anne_host import csvdata

from .conftest import anne_host

MODELS = Path(__file__).resolve().parents[2] / "models"
TEST_ROWS = MODELS / "iris_binary_test.csv"


@pytest.fixture
def iris6(anne):
    code, out, err = anne("upload", str(MODELS / "iris6.json"))
    assert code == 0, err
    assert out.startswith("uploaded iris6: ")
    return anne


def test_eval_equals_keras_on_the_same_rows(iris6, keras, tmp_path):
    result = iris6.json("eval", str(TEST_ROWS), "--plot", str(tmp_path / "cm.png"))
    samples = csvdata.load(TEST_ROWS, 4, need_labels=True)
    net = keras.models.load_model(MODELS / "iris6.keras", compile=False)
    predicted = np.where(net.predict(samples.x, verbose=0)[:, 0] > 0.5, "virginica", "versicolor")
    labels = ["versicolor", "virginica"]
    cm = [[int(np.sum((np.array(samples.y) == a) & (predicted == p))) for p in labels] for a in labels]
    assert result["labels"] == labels
    assert result["confusion_matrix"] == cm
    assert result["samples"] == 20 and result["complete"]
    assert result["accuracy"] == pytest.approx(np.mean(predicted == np.array(samples.y)))
    assert set(result["latency_us"]) >= {"mean", "p50", "p95", "max"}
    assert result["per_class"]["virginica"]["support"] == 10
    assert (tmp_path / "cm.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_report_is_laid_out_as_in_the_paper(iris6):
    code, out, err = iris6("eval", str(TEST_ROWS))
    assert code == 0, err
    assert "accuracy 90.0 % (18/20)" in out
    assert "actual \\ predicted  versicolor  virginica" in out
    # The virtual Pico's times are this PC's, and said to be; the rate is end to end.
    assert "\nvirtual Pico time per sample (this PC's CPU running the MicroPython Unix port, not a Pico's time): mean " in out
    assert "board" not in out.split("macro F1")[1].split("end to end")[0]
    assert "\nend to end: " in out and "samples/s (wall time on this PC, including the link)" in out
    assert out.startswith("iris6 on %s\nfeatures from columns sepal_length, sepal_width, petal_length, "
                          "petal_width (matched by the model's feature names); labels from column species\n"
                          % TEST_ROWS)


def test_eval_threshold_option_changes_decisions(iris6):
    everything_positive = iris6.json("eval", str(TEST_ROWS), "--threshold", "0")
    assert everything_positive["confusion_matrix"] == [[0, 10], [0, 10]]


def test_eval_compare_puts_two_stored_models_side_by_side(iris6):
    code, _, err = iris6("upload", str(MODELS / "iris8.json"), "--no-activate")
    assert code == 0, err
    alone = {name: iris6.json("predict", str(TEST_ROWS), "--model", name) for name in ("iris8", "iris6")}
    both = iris6.json("eval", str(TEST_ROWS), "--compare", "iris8")
    assert (both["eval"]["model"], both["compare"]["model"]) == ("iris6", "iris8")
    assert both["agreement"]["rows"] == 20
    assert both["agreement"]["decisions_agree"] == sum(
        a["label"] == b["label"] for a, b in zip(alone["iris6"], alone["iris8"]))
    assert both["agreement"]["max_abs_output_diff"] == pytest.approx(max(
        abs(a["outputs"][0] - b["outputs"][0]) for a, b in zip(alone["iris6"], alone["iris8"])), abs=1e-6)
    assert iris6.json("info")["active"] == "iris6"  # left as it was found
    code, out, err = iris6("eval", str(TEST_ROWS), "--compare", "iris8")
    assert code == 0, err
    assert out.startswith("iris6 on %s\n" % TEST_ROWS) and "\niris8 on %s\n" % TEST_ROWS in out  # titled apart
    table = out[out.index("virtual Pico µs/sample (host CPU)") - 200:]
    assert "accuracy" in table and "iris6" in table and "iris8" in table
    assert "decisions agree on %d of 20 rows" % both["agreement"]["decisions_agree"] in out


def test_infer_from_words_and_from_a_csv_row(iris6):
    one = iris6.json("infer", "5.9", "3.0", "5.1", "1.8")
    assert set(one) >= {"outputs", "label", "board_us"} and one["label"] == "virginica"
    row = iris6.json("infer", "--csv", str(TEST_ROWS), "--row", "1")
    assert len(row["outputs"]) == 1


def test_predict_writes_every_row_in_order(iris6, tmp_path):
    rows = iris6.json("predict", str(TEST_ROWS))
    assert [r["line"] for r in rows] == list(range(2, 22))
    code, _, err = iris6("predict", str(TEST_ROWS), "-o", str(tmp_path / "out.csv"))
    assert code == 0, err
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0] == "line,output_0,label,board_us" and len(lines) == 21
    assert [r["label"] for r in rows] == [line.split(",")[2] for line in lines[1:]]


def test_info_ls_bench_select_rm(iris6):
    assert iris6.json("info")["active"] == "iris6"
    code, _, _ = iris6("upload", str(MODELS / "iris3.json"), "--name", "three", "--no-activate")
    assert code == 0
    listed = {m["name"]: m["active"] for m in iris6.json("ls")}
    assert listed["iris6"] is True and listed["three"] is False
    bench = iris6.json("bench", "--model", "three", "--repeat", "20")
    assert bench["model"] == "three" and len(bench["layers"]) == 2
    assert iris6.json("info")["active"] == "three"
    assert iris6.json("rm", "three") == {"deleted": "three"}
    assert "three" not in [m["name"] for m in iris6.json("ls")]


def test_errors_are_one_line_with_a_non_zero_exit(anne, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c,d,species\n1,2,x,4,versicolor\n")
    code, out, err = anne("upload", str(MODELS / "iris6.json"))
    for argv, message in [
        (("eval", str(bad)), "bad.csv:2:"),
        (("upload", str(tmp_path / "missing.json")), "missing.json: cannot read"),
        (("select", "no-such-model"), "no stored model named 'no-such-model'"),
        (("infer", "1", "2"), "the model takes 4 inputs"),
    ]:
        code, out, err = anne(*argv)
        assert code != 0, argv
        assert err.startswith("anne-host: ") and message in err, err
        assert len(err.strip().splitlines()) == 1


def test_a_missing_port_is_a_clear_error(tmp_path):
    done = anne_host("--port", str(tmp_path / "ttyACM9"), "info")
    assert done.returncode == 4
    assert done.stderr.strip().splitlines()[-1].startswith("anne-host: cannot open")
    assert "Traceback" not in done.stderr


def test_demo_reports_the_accuracies_of_models_readme(tmp_path):
    env = dict(os.environ, ANNE_SIM_DIR=str(tmp_path))
    env.pop("ANNE_PORT", None)
    done = anne_host("--json", "demo", env=env)
    assert done.returncode == 0, done.stderr
    entries = json.loads(done.stdout)
    results = {r["model"]: r for r in entries if "dataset" not in r}
    trained = json.loads((MODELS / "training.json").read_text())["models"]
    for name, model in trained.items():
        assert results[name]["test"]["confusion_matrix"] == model["test_confusion_matrix"], name
        assert results[name]["test"]["accuracy"] == pytest.approx(model["test_accuracy"], abs=5e-5)
    assert results["iris3"]["all"]["samples"] == 150 and results["iris6"]["all"]["samples"] == 100
    for name, r in results.items():  # the int8 twins, on the same rows, decide as the float nets
        assert r["int8_all"]["samples"] == r["all"]["samples"]
        assert r["int8_agreement"]["rows"] == r["all"]["samples"]
        assert r["int8_agreement"]["decisions_agree"] >= r["all"]["samples"] - 1, name
    # the scikit-learn data sets' models (the dev extra has scikit-learn): the board's float
    # models decide as their frameworks did on every held-out row
    recorded = json.loads((MODELS / "datasets" / "accuracy.json").read_text())["models"]
    more = {r["model"]: r for r in entries if "dataset" in r}
    assert sorted(more) == sorted(recorded)
    for name, r in more.items():
        assert r["float32"]["samples"] == r["int8"]["samples"] == recorded[name]["rows"], name
        assert r["decisions_as_framework"] == recorded[name]["rows"], name
        assert r["float32"]["accuracy"] == pytest.approx(recorded[name]["accuracy"], abs=1e-6), name
        assert r["int8"]["correct"] == recorded[name]["anne_host"]["int8_correct"], name
