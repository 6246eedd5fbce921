"""The REPL API a person uses on the board: anne.load, predict, predict_class, summary."""

from pathlib import Path

import pytest

from anne_host import model_doc

MODELS = Path(__file__).resolve().parents[2] / "models"


@pytest.fixture
def flash(tmp_path):
    """A folder laid out like the board's flash, with iris6 and iris3 stored, and their int8 twins."""
    (tmp_path / "models").mkdir()
    for name in ("iris6", "iris3", "iris6_int8", "iris3_int8"):
        blob = model_doc.pack(model_doc.read(MODELS / (name + ".json")))
        (tmp_path / "models" / (name + ".anne")).write_bytes(blob)
    return tmp_path


def test_load_by_name_predict_and_classify(run_any, flash):
    out = run_any.json(
        "import anne, json\n"
        "net = anne.load('iris6')\n"
        "y = net.predict([5.9, 3.0, 5.1, 1.8])\n"
        "print(json.dumps([len(y), y[0], net.predict_class([5.9, 3.0, 5.1, 1.8]),"
        " net.predict_class([5.7, 2.8, 4.1, 1.3]), anne.load('iris3').predict_class([5.1, 3.5, 1.4, 0.2])]))",
        cwd=flash)
    assert out[0] == 1 and 0.5 < out[1] <= 1.0
    assert out[2:] == ["virginica", "versicolor", "setosa"]


def test_load_by_path_and_summary(run_any, flash):
    path = flash / "models" / "iris3.anne"
    out = run_any("import anne\nanne.load(%r).summary()" % str(path))
    assert "Model: iris3" in out
    assert "Labels:   setosa, versicolor, virginica" in out
    assert "Total params: 67 (268 bytes as float32)" in out
    assert "dense" in out and "softmax" in out


def test_wrong_input_length_says_what_the_model_takes(run_any, flash):
    out = run_any("import anne\ntry:\n anne.load('iris6').predict([1, 2])\nexcept ValueError as e:\n print(e)",
                  cwd=flash)
    assert "iris6 takes 4 inputs, got 2" in out


def test_names_are_names_not_paths(run_any, flash):
    out = run_any("import anne\nfor n in ('', '.hidden', 'a'*33, 'x\\\\y', 'a b'):\n"
                  " try:\n  anne.load(n)\n except ValueError as e:\n  print('refused', e)", cwd=flash)
    assert out.count("refused") == 5


def test_an_int8_model_loads_and_answers_like_the_host_reference(run_any, flash):
    from anne_host import quantize

    rows = [[5.9, 3.0, 5.1, 1.8], [5.7, 2.8, 4.1, 1.3], [5.1, 3.5, 1.4, 0.2], [6.3, 2.5, 5.0, 1.9]]
    out = run_any.json(
        "import anne, json\n"
        "net = anne.load('iris3_int8')\n"
        "print(json.dumps([net.dtype, net.kernel] + [[net.predict(x), net.predict_class(x)] for x in %r]))" % rows,
        cwd=flash)
    doc = model_doc.read(MODELS / "iris3_int8.json")
    _, expected = quantize.run_int8(doc, rows)
    assert out[0] == "int8" and out[1] in ("int8", "int8-reference")  # viper on the board, the spec on CPython
    for (y, label), want in zip(out[2:], expected):
        assert y == want.tolist()  # bit for bit: the board runs the spec's integers
        assert label == doc["labels"][int(want.argmax())]
    summary = run_any("import anne\nanne.load('iris6_int8').summary()", cwd=flash)
    assert "int8" in summary and "Total params: 26 (26 bytes as int8)" in summary
