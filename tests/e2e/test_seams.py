"""What the user's trial of issue 13 ran into, as the user would check it: the CSV
columns read, timings named by where they were measured, the virtual Pico's flash,
uploads that replace a model, and the demo leaving the board's active model as it was."""

import json
from pathlib import Path

import pytest

from anne_host import model_doc
from anne_host.sim import PICO_FS_BYTES

MODELS = Path(__file__).resolve().parents[2] / "models"
TEST_ROWS = MODELS / "iris_binary_test.csv"


@pytest.fixture
def iris6(anne):
    code, _, err = anne("upload", str(MODELS / "iris6.json"), "--replace")
    assert code == 0, err
    return anne


def _rows():
    return TEST_ROWS.read_text().splitlines()


def test_eval_json_names_the_columns_and_the_clock(iris6):
    result = iris6.json("eval", str(TEST_ROWS))
    assert result["columns"] == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert result["label_column"] == "species"
    assert result["latency_clock"] == "host-cpu"  # the virtual Pico: this PC's CPU, not a Pico's


def test_a_file_without_header_keeps_its_first_row(iris6, tmp_path):
    (tmp_path / "bare.csv").write_text("\n".join(_rows()[1:]) + "\n")
    with_header = iris6.json("eval", str(TEST_ROWS))
    bare = iris6.json("eval", str(tmp_path / "bare.csv"))
    assert bare["samples"] == 20 and bare["confusion_matrix"] == with_header["confusion_matrix"]
    assert bare["columns"] == ["0", "1", "2", "3"] and bare["label_column"] == "4"
    code, out, _ = iris6("eval", str(tmp_path / "bare.csv"))
    assert code == 0 and "the file has no header row" in out


def test_a_leading_id_column_is_refused_by_position_and_read_with_columns(anne, tmp_path):
    doc = model_doc.read(MODELS / "iris6.json")
    del doc["features"]  # no names to match: the columns are counted
    model_doc.write(doc, tmp_path / "nameless.json")
    assert anne("upload", str(tmp_path / "nameless.json"), "--replace")[0] == 0
    rows = _rows()
    (tmp_path / "ids.csv").write_text("\n".join(["id,a,b,c,d,species"] + ["%d,%s" % (i, r) for i, r in
                                                                          enumerate(rows[1:])]) + "\n")
    code, out, err = anne("eval", str(tmp_path / "ids.csv"))
    assert code == 3 and out == "" and "5 columns besides the label column 'species'" in err
    result = anne.json("eval", str(tmp_path / "ids.csv"), "--columns", "a,b,c,d")
    assert result["columns"] == ["a", "b", "c", "d"] and result["accuracy"] == 0.9
    code, out, _ = anne("eval", str(tmp_path / "ids.csv"), "--columns", "a,b,c,d")
    assert "features from columns a, b, c, d (as chosen with --columns); labels from column species" in out


def test_a_model_without_labels_is_evaluated_on_class_indices(anne, tmp_path):
    doc = model_doc.read(MODELS / "iris6.json")
    del doc["labels"]
    model_doc.write(doc, tmp_path / "unlabelled.json")
    assert anne("upload", str(tmp_path / "unlabelled.json"), "--replace")[0] == 0
    rows = _rows()
    indexed = [r.replace("versicolor", "0").replace("virginica", "1") for r in rows]
    (tmp_path / "indexed.csv").write_text("\n".join(indexed) + "\n")
    result = anne.json("eval", str(tmp_path / "indexed.csv"))
    assert result["labels"] == ["0", "1"] and result["correct"] == 18


def test_upload_under_the_name_of_another_model_needs_replace(iris6):
    code, out, err = iris6("upload", str(MODELS / "iris3.json"), "--name", "iris6")
    assert code == 2 and out == "" and "pass --replace" in err
    assert iris6.json("info")["active"] == "iris6"
    before = {m["name"]: m["size"] for m in iris6.json("ls")}
    result = iris6.json("upload", str(MODELS / "iris3.json"), "--name", "iris6", "--replace")
    assert result["replaced"] is True
    after = {m["name"]: m["size"] for m in iris6.json("ls")}
    assert after["iris6"] != before["iris6"]
    code, out, _ = iris6("upload", str(MODELS / "iris6.json"), "--replace")
    assert code == 0 and "it replaced the stored model of that name" in out


def test_upload_of_a_new_name_replaces_nothing(iris6):
    result = iris6.json("upload", str(MODELS / "iris8.json"), "--name", "fresh-name", "--no-activate")
    assert result["replaced"] is False
    assert iris6.json("rm", "fresh-name") == {"deleted": "fresh-name"}


def test_info_on_the_virtual_pico_counts_a_picos_flash(iris6, pico):
    info = iris6.json("info")
    assert info["virtual"] is True
    files = [f.stat().st_size for f in Path(pico.flash_dir).rglob("*") if f.is_file()]
    folders = sum(1 for f in Path(pico.flash_dir).rglob("*") if f.is_dir()) + 1
    used = sum(files)
    # littlefs rounds each file up to whole 4 KB blocks and gives each folder two: at most a
    # block per file and two per folder beyond the bytes themselves.
    most = used + 4096 * (len(files) + 2 * folders)
    assert PICO_FS_BYTES - most <= info["flash_free"] < PICO_FS_BYTES - used
    code, out, _ = iris6("info")
    first, _, flash = out.splitlines()[:3]
    assert first.startswith("virtual Pico: firmware ") and "3.4.0" not in first and "MicroPython " in first
    assert flash.startswith("flash: ") and "counted as on an RPI_PICO (2 MB flash, 1,441,792 bytes" in flash
    # A stored model takes whole 4 KB blocks, as in a Pico's littlefs: iris3 (475 bytes) one.
    assert iris6.json("upload", str(MODELS / "iris3.json"), "--name", "one-more", "--no-activate")
    assert iris6.json("info")["flash_free"] == info["flash_free"] - 4096
    iris6("rm", "one-more")


def test_infer_and_bench_say_where_they_timed(iris6):
    one = iris6.json("infer", "5.9", "3.0", "5.1", "1.8")
    assert one["clock"] == "host-cpu"
    code, out, _ = iris6("infer", "5.9", "3.0", "5.1", "1.8")
    assert "µs, on the virtual Pico: this PC's CPU, not a Pico's time" in out
    code, out, _ = iris6("bench", "--repeat", "5")
    assert "on the virtual Pico: this PC's CPU, not a Pico's time" in out.splitlines()[0]


def test_demo_says_it_changes_the_active_model_and_restores_it(anne):
    assert anne("upload", str(MODELS / "iris3.json"), "--name", "mine", "--replace")[0] == 0
    code, out, err = anne("--json", "demo")
    assert code == 0, err
    assert "the demo stores iris6, iris6_int8, iris8" in err and "mine is made active again at the end" in err
    entries = json.loads(out)
    assert [e["model"] for e in entries if "dataset" not in e] == ["iris6", "iris8", "iris3"]
    assert len(entries) == 3 + 9  # and the nine models of scikit-learn's data sets
    assert anne.json("info")["active"] == "mine"
