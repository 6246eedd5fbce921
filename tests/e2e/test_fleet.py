"""``--port all``: a classroom of boards, here three virtual Picos that $ANNE_EXTRA_PORTS
names, as the USB listing never shows a pseudo-terminal."""

import json
from pathlib import Path

import pytest
import serial.tools.list_ports

from anne_host import cli
from anne_host.sim import VirtualPico

MODELS = Path(__file__).resolve().parents[2] / "models"
TEST_ROWS = MODELS / "iris_binary_test.csv"


@pytest.fixture(scope="module")
def classroom(tmp_path_factory):
    picos = [VirtualPico(tmp_path_factory.mktemp("pico%d" % i)).start() for i in range(3)]
    yield picos
    for vp in picos:
        vp.stop()


@pytest.fixture
def anne_all(classroom, monkeypatch, capsys):
    """anne-host --port all, seeing the three virtual Picos and no real board."""
    monkeypatch.setattr(serial.tools.list_ports, "comports", lambda: [])
    monkeypatch.setenv("ANNE_EXTRA_PORTS", ":".join(vp.port for vp in classroom))
    monkeypatch.delenv("ANNE_PORT", raising=False)

    def run(*argv):
        code = cli.main(["--port", "all", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def test_ports_lists_the_extra_ports_as_boards(anne_all, classroom, capsys):
    assert cli.main(["--json", "ports"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [p["device"] for p in listed] == [vp.port for vp in classroom]
    assert all(p["raspberry_pi"] for p in listed)


def test_upload_info_select_eval_on_every_board(anne_all, classroom):
    ports = [vp.port for vp in classroom]
    code, out, err = anne_all("upload", str(MODELS / "iris6.json"), "--replace")
    assert code == 0, err
    lines = out.splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == ports  # one line per board, in port order
    assert all(line.split(": ", 1)[1].startswith("uploaded iris6: 319 bytes") for line in lines)
    code, _, _ = anne_all("upload", str(MODELS / "iris8.json"), "--no-activate", "--replace")
    assert code == 0

    code, out, err = anne_all("select", "iris8")
    assert code == 0, err
    assert out.splitlines() == ["%s: active model: iris8 (4 inputs, 1 outputs, 30 parameters)" % p for p in ports]

    code, out, _ = anne_all("--json", "info")
    infos = json.loads(out)
    assert list(infos) == ports and all(i["active"] == "iris8" for i in infos.values())

    code, out, err = anne_all("--json", "eval", str(TEST_ROWS), "--model", "iris6")
    assert code == 0, err
    results = json.loads(out)
    assert list(results) == ports
    assert all(r["model"] == "iris6" and r["samples"] == 20 and r["correct"] == 18 for r in results.values())

    code, out, _ = anne_all("eval", str(TEST_ROWS))
    assert code == 0
    for p in ports:  # a report per board, under its port
        assert "\n%s:\n  iris6 on %s\n" % (p, TEST_ROWS) in "\n" + out


def test_a_board_that_fails_is_one_line_and_the_others_still_answer(anne_all, classroom, tmp_path, monkeypatch):
    gone = str(tmp_path / "ttyACM9")  # unplugged
    monkeypatch.setenv("ANNE_EXTRA_PORTS", ":".join([classroom[0].port, gone, classroom[1].port]))
    code, out, err = anne_all("select", "iris6")
    assert code == 4
    assert [line.split(": ", 1)[0] for line in out.splitlines()] == [classroom[0].port, classroom[1].port]
    assert err.startswith("anne-host: %s: cannot open %s: no such port" % (gone, gone)) and err.count("\n") == 1


@pytest.mark.parametrize("argv", [("ls",), ("rm", "iris6"), ("demo",)])
def test_other_commands_take_one_board(anne_all, argv):
    code, out, err = anne_all(*argv)
    assert code == 2 and out == ""
    assert "--port all works with upload, info, select, eval" in err and err.count("\n") == 1
