"""report: the exact layout of the text tables, and a PNG that is really written."""

import struct
import sys

import pytest

from anne_host.errors import AnneError
from anne_host.metrics import evaluate, latency
from anne_host.report import (confusion_table, evaluation_report, latency_line, per_class_table, rate_line,
                              plot_confusion)

BINARY = ["versicolor", "virginica"]
SPECIES = ["setosa", "versicolor", "virginica"]


def paper_metrics():
    """The AI-ANNE paper's binary test: [[9, 1], [0, 10]]."""
    actual = ["versicolor"] * 10 + ["virginica"] * 10
    predicted = ["versicolor"] * 9 + ["virginica"] * 11
    return evaluate(actual, predicted, BINARY)


# --- confusion table --------------------------------------------------------------

def test_confusion_table_two_classes():
    assert confusion_table([[9, 1], [0, 10]], BINARY) == (
        "actual \\ predicted  versicolor  virginica\n"
        "versicolor                   9          1\n"
        "virginica                    0         10"
    )


def test_confusion_table_three_classes_wide_counts_and_short_labels():
    # Counts wider than their label widen the column; short labels pad to the corner.
    cm = [[1234, 0, 5], [0, 7, 0], [12, 0, 99]]
    assert confusion_table(cm, ["a", "bb", "c"]) == (
        "actual \\ predicted     a  bb   c\n"
        "a                   1234   0   5\n"
        "bb                     0   7   0\n"
        "c                     12   0  99"
    )


def test_confusion_table_long_label_widens_the_first_column():
    text = confusion_table([[1, 0], [0, 1]], ["a very long class name", "b"])
    assert text.splitlines() == [
        "actual \\ predicted      a very long class name  b",
        "a very long class name                       1  0",
        "b                                            0  1",
    ]


def test_confusion_table_takes_numpy_arrays():
    np = pytest.importorskip("numpy")
    assert confusion_table(np.array([[9, 1], [0, 10]]), BINARY) == confusion_table([[9, 1], [0, 10]], BINARY)


# --- per-class table --------------------------------------------------------------------

def test_per_class_table_two_classes():
    assert per_class_table(paper_metrics()["per_class"]) == (
        "class       precision  recall     F1  support\n"
        "versicolor      1.000   0.900  0.947       10\n"
        "virginica       0.909   1.000  0.952       10"
    )


def test_per_class_table_three_classes():
    m = evaluate(["setosa"] * 3 + ["versicolor"] * 2 + ["virginica"],
                 ["setosa", "setosa", "versicolor", "versicolor", "versicolor", "setosa"], SPECIES)
    assert per_class_table(m["per_class"]) == (
        "class       precision  recall     F1  support\n"
        "setosa          0.667   0.667  0.667        3\n"
        "versicolor      0.667   1.000  0.800        2\n"
        "virginica       0.000   0.000  0.000        1"
    )


# --- latency -------------------------------------------------------------------------------

def test_latency_line_says_the_board_measured_it():
    lat = {"mean": 123.44, "p50": 120.0, "p95": 150.25, "max": 1234.5, "min": 99.0}
    assert latency_line(lat) == ("board time per sample (the board's time.ticks_us): mean 123.4 µs, "
                                 "p50 120.0 µs, p95 150.2 µs, max 1,234.5 µs")


def test_latency_line_of_the_virtual_pico_is_not_called_a_boards():
    line = latency_line({"mean": 1.0, "p50": 1.0, "p95": 1.0, "max": 1.0, "min": 1.0}, "host-cpu")
    assert line.startswith("virtual Pico time per sample (this PC's CPU running the MicroPython Unix port, "
                           "not a Pico's time): mean 1.0 µs")
    assert "board" not in line


def test_latency_line_without_samples():
    assert latency_line(latency([])) == "board time per sample (the board's time.ticks_us): no samples timed"


def test_rate_line_is_the_end_to_end_rate():
    assert rate_line(8100.4) == "end to end: 8,100 samples/s (wall time on this PC, including the link)"


# --- whole report --------------------------------------------------------------------------

def test_evaluation_report():
    lat = latency([100, 200, 300, 400, 500])
    text = evaluation_report("iris_binary", paper_metrics(), lat, 3333.3)
    assert text == (
        "evaluation of iris_binary\n"
        "accuracy 95.0 % (19/20)\n"
        "\n"
        "actual \\ predicted  versicolor  virginica\n"
        "versicolor                   9          1\n"
        "virginica                    0         10\n"
        "\n"
        "class       precision  recall     F1  support\n"
        "versicolor      1.000   0.900  0.947       10\n"
        "virginica       0.909   1.000  0.952       10\n"
        "macro F1 0.950\n"
        "\n"
        "board time per sample (the board's time.ticks_us): mean 300.0 µs, p50 300.0 µs, p95 480.0 µs, max 500.0 µs\n"
        "end to end: 3,333 samples/s (wall time on this PC, including the link)"
    )


def test_evaluation_report_says_which_columns_were_read():
    text = evaluation_report("m", paper_metrics(), None, None, title="m on d.csv", columns="features from a, b")
    assert text.startswith("m on d.csv\nfeatures from a, b\naccuracy 95.0 %")


def test_evaluation_report_title_and_no_timing():
    text = evaluation_report("iris_binary", paper_metrics(), None, None, title="iris on the Pico")
    assert text.startswith("iris on the Pico\naccuracy 95.0 % (19/20)\n")
    assert "latency" not in text


# --- plot ------------------------------------------------------------------------------------

def png_chunks(data):
    """The chunk types of a PNG, checking the signature and every chunk's length."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, at = [], 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        chunks.append(kind)
        at += 12 + length
    assert at == len(data)
    return chunks


@pytest.mark.parametrize("cm, labels", [([[9, 1], [0, 10]], BINARY),
                                        ([[10, 0, 0], [0, 9, 1], [0, 0, 10]], SPECIES),
                                        ([[0, 0], [0, 0]], ["a", "b"])])
def test_plot_confusion_writes_a_png(tmp_path, cm, labels):
    pytest.importorskip("matplotlib")
    path = tmp_path / "confusion.png"
    plot_confusion(cm, labels, path, "iris on the Pico")
    data = path.read_bytes()
    chunks = png_chunks(data)
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND" and b"IDAT" in chunks
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 400 and height >= 400
    assert len(data) > 10_000  # text, ticks and colours, not an empty canvas


def test_plot_confusion_leaves_the_pyplot_backend_alone(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    before = matplotlib.get_backend()
    plot_confusion([[1]], ["only"], tmp_path / "one.png", None)
    assert matplotlib.get_backend() == before


def test_plot_confusion_without_matplotlib(tmp_path, monkeypatch):
    for name in ("matplotlib", "matplotlib.backends.backend_agg", "matplotlib.figure", "matplotlib.ticker"):
        monkeypatch.setitem(sys.modules, name, None)  # makes the import fail
    with pytest.raises(AnneError) as info:
        plot_confusion([[1]], ["a"], tmp_path / "x.png", None)
    assert str(info.value) == "plotting needs matplotlib: pip install 'anne-host[plot]'"


def test_plot_confusion_into_a_missing_folder(tmp_path):
    pytest.importorskip("matplotlib")
    with pytest.raises(AnneError) as info:
        plot_confusion([[1]], ["a"], tmp_path / "no" / "x.png", None)
    assert "x.png" in str(info.value)
