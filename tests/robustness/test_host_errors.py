"""What a person sees when something outside anne-host goes wrong: a missing or busy
port, a board killed or frozen during an eval, Ctrl-C, a CSV file with mistakes. Each
is one line naming the file, line or port, a documented exit code, no traceback, in
bounded time; and what was evaluated before the stop is reported."""

import json
import time

import numpy as np
import pytest
import serial

from anne_host import cli, csvdata, evaluate, present
from anne_host.client import Client
from anne_host.sim import VirtualPico
from anne_host.transport import LinkError

from ..e2e.conftest import anne_host
from .conftest import MODELS, blob

ROWS = MODELS / "iris_binary_test.csv"


@pytest.fixture
def with_iris6(pico):
    """The module's virtual Pico with iris6 active, and its port free for anne-host."""
    with Client.open(pico.port) as board:
        board.upload(blob("iris6"), "iris6")
    return pico


def _one_line(err):
    assert err.startswith("anne-host: ") and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_a_missing_port_says_so_and_what_to_do(tmp_path):
    start = time.monotonic()
    done = anne_host("--port", str(tmp_path / "ttyACM7"), "info")
    assert done.returncode == 4 and time.monotonic() - start < 15
    line = _one_line(done.stderr)
    assert "ttyACM7: no such port" in line and "anne-host ports" in line


def test_a_busy_port_says_so_and_what_to_do(pico):
    with serial.Serial(pico.port, exclusive=True):  # another program holds the board
        done = anne_host("--port", pico.port, "info")
    assert done.returncode == 4
    line = _one_line(done.stderr)
    assert pico.port in line and "busy" in line and "close it" in line


@pytest.fixture
def big_csv(tmp_path):
    """The 20 test rows, 100 times over: 2,000 rows, many batch requests."""
    lines = ROWS.read_text().splitlines()
    path = tmp_path / "many.csv"
    path.write_text("\n".join([lines[0]] + lines[1:] * 100) + "\n")
    return path


class _AfterFirstReply:
    """A stand-in for the progress bar that does something once rows have come back."""

    def __init__(self, action):
        self.action = action
        self.calls = 0

    def update(self, n):
        self.calls += 1
        if self.calls == 2:
            self.action()

    def close(self):
        pass


def _eval_stopped_by(monkeypatch, capsys, vp, csv, action, *argv):
    monkeypatch.setattr(present, "progress", lambda *a: _AfterFirstReply(action))
    start = time.monotonic()
    code = cli.main(["--port", vp.port, *argv, "eval", str(csv)])
    out, err = capsys.readouterr()
    return code, out, err, time.monotonic() - start


def test_a_board_killed_during_eval_keeps_the_rows_already_answered(tmp_path, big_csv, monkeypatch, capsys):
    vp = VirtualPico(tmp_path / "flash").start()
    try:
        with Client.open(vp.port) as board:
            board.upload(blob("iris6"), "iris6")
        code, out, err, took = _eval_stopped_by(monkeypatch, capsys, vp, big_csv, vp.stop)
    finally:
        vp.stop()
    assert code == 4 and took < 15
    line = _one_line(err)
    done = int(line.split(", after ")[1].split(" of ")[0])
    assert 0 < done < 2000 and "of 2000 rows (reported above)" in line
    assert "stopped at %s line %d" % (big_csv, done + 2) in line  # the header is line 1
    assert "reading from" in line or "writing to" in line  # the link, named
    assert "(stopped: the first %d of 2000 rows)" % done in out
    assert "accuracy " in out and "(%d)" % done not in out


def test_a_killed_board_still_gives_the_partial_json(tmp_path, big_csv, monkeypatch, capsys):
    vp = VirtualPico(tmp_path / "flash").start()
    try:
        with Client.open(vp.port) as board:
            board.upload(blob("iris6"), "iris6")
        code, out, err, _ = _eval_stopped_by(monkeypatch, capsys, vp, big_csv, vp.stop, "--json")
    finally:
        vp.stop()
    result = json.loads(out)
    assert code == 4 and result["complete"] is False
    assert result["stopped_at_line"] == result["samples"] + 2 and 0 < result["samples"] < 2000
    assert sum(map(sum, result["confusion_matrix"])) == result["samples"]


def test_a_frozen_board_is_given_up_in_bounded_time_and_answers_again_later(tmp_path):
    samples = csvdata.load(ROWS, 4, need_labels=True)
    samples.x = np.repeat(samples.x, 100, axis=0)
    samples.y = samples.y * 100
    samples.lines = list(range(2, 2002))
    with VirtualPico(tmp_path) as vp:
        with Client.open(vp.port, timeout=1) as board:
            board.upload(blob("iris6"), "iris6")
            model = board.model()
            start = time.monotonic()
            run = evaluate.stream(board, samples, model, _AfterFirstReply(vp.pause).update)
            took = time.monotonic() - start
        assert isinstance(run.error, LinkError) and "stopped answering" in str(run.error)
        assert 0 < run.done < 2000 and took < 1 + 2 + 2 + 3
        vp.resume()  # it thaws: the next host finds it working, with the same model
        with Client.open(vp.port) as board:
            assert board.hello()["active"] == "iris6"
            assert board.infer([5.9, 3.0, 5.1, 1.8])[1] == 1


def test_ctrl_c_during_eval_reports_what_was_evaluated(with_iris6, big_csv, monkeypatch, capsys):
    def interrupt():
        raise KeyboardInterrupt

    code, out, err, _ = _eval_stopped_by(monkeypatch, capsys, with_iris6, big_csv, interrupt)
    assert code == 130
    assert "interrupted" in _one_line(err) and "(stopped: the first " in out


@pytest.mark.parametrize("text, message", [
    ("a,b,c,d,species\n1,2,3,4,versicolor\n1,,3,4,virginica\n", "bad.csv:3: column 'b' is empty"),
    ("a,b,c,d,species\n1,2,3,4,versicolor\n1,2,3,virginica\n", "bad.csv:3: 4 cells, but the header has 5 columns"),
    ("a,b,c,d,species\n1,2,3,4,versicolor\n1,2,3,4,5,virginica\n", "bad.csv:3: 6 cells, but the header has 5 columns"),
    ("a,b,c,d,species\n1,2,x,4,versicolor\n", "bad.csv:2: column 'c' holds 'x', which is not a number"),
    ("a,b,c,d,species\n1,2,3,4,setosa\n", "bad.csv:2: label 'setosa' is not one of the model's labels"),
    ("a,b,c,d,species\n1,2,3e39,4,virginica\n", "beyond the board's float32 range"),
    ("", "bad.csv: the file is empty"),
])
def test_a_csv_mistake_is_one_line_naming_file_and_line(with_iris6, tmp_path, capsys, text, message):
    bad = tmp_path / "bad.csv"
    bad.write_text(text)
    code = cli.main(["--port", with_iris6.port, "eval", str(bad)])
    out, err = capsys.readouterr()
    assert code == 3 and out == ""
    assert message in _one_line(err)


def test_a_csv_that_does_not_exist_is_one_line(with_iris6, tmp_path, capsys):
    code = cli.main(["--port", with_iris6.port, "predict", str(tmp_path / "none.csv")])
    assert code == 3 and "none.csv: no such file" in _one_line(capsys.readouterr()[1])
