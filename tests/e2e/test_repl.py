"""The board's REPL and the ANNE server, handed back and forth on the virtual Pico:
mpremote and a person's Ctrl-C after host commands, deploy over a running server,
`anne-host repl`, a server still starting at boot, and the REPL API's model listing."""

import os
import pty
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from anne_host import client
from anne_host.client import FILLER, PROTOCOL, Client
from anne_host.sim import VirtualPico
from anne_host.transport import LinkError

from .conftest import anne_host

MODELS = Path(__file__).resolve().parents[2] / "models"
BIN = Path(sys.executable).parent


def mpremote(port, *args):
    return subprocess.run([str(BIN / "mpremote"), "connect", port, *args], capture_output=True,
                          text=True, timeout=60)


class Terminal:
    """A program on a pseudo-terminal, as a person runs it in a terminal window."""

    def __init__(self, argv, env=None):
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True)
        os.close(slave)
        self.seen = b""
        self.cursor = 0  # where the last expect's match ended

    def type(self, keys):
        # Keys reach the program as typed once it has put the terminal in raw mode
        # (before, the terminal itself would take Ctrl-C).
        end = time.monotonic() + 10
        while termios.tcgetattr(self.master)[3] & termios.ICANON and time.monotonic() < end:
            time.sleep(0.05)
        os.write(self.master, keys)

    def expect(self, text, timeout=20):
        """Read until ``text`` shows after the last match; what was shown up to its end.
        (Output read past a match is kept for the next expect, not lost.)"""
        start, end = self.cursor, time.monotonic() + timeout
        while text not in self.seen[start:]:
            if time.monotonic() > end:
                raise AssertionError("no %r on the terminal; it shows %r" % (text, self.seen[-400:]))
            if select.select([self.master], [], [], 0.1)[0]:
                try:
                    self.seen += os.read(self.master, 4096)
                except OSError:  # the program ended
                    pass
        self.cursor = self.seen.index(text, start) + len(text)
        return self.seen[start:self.cursor]

    def close(self, timeout=20):
        code = self.proc.wait(timeout)
        os.close(self.master)
        return code


def test_after_each_host_command_mpremote_and_a_ctrl_c_reach_the_repl(pico):
    commands = [("upload", str(MODELS / "iris6.json")), ("info",), ("ls",),
                ("infer", "5.9", "3.0", "5.1", "1.8")]
    for command in commands:
        done = anne_host("--port", pico.port, *command)
        assert done.returncode == 0, done.stderr
        # mpremote takes the REPL from the server (its Ctrl-C, then Ctrl-A for the raw REPL).
        # `resume`: a soft reset ends the Unix port's process, so the virtual Pico cannot.
        ran = mpremote(pico.port, "resume", "exec", "import anne; print(anne.models())")
        assert ran.returncode == 0 and ran.stdout.strip() == "['iris6']", ran
    for command in commands[1:]:
        assert anne_host("--port", pico.port, *command).returncode == 0
        # A person in mpremote's terminal presses Ctrl-C: the friendly prompt, where typing shows.
        term = Terminal([str(BIN / "mpremote"), "connect", pico.port, "repl"])
        term.expect(b"Use Ctrl-] or Ctrl-x to exit this shell")
        term.type(b"\x03")
        assert b"ANNE server stopped" in term.expect(b"\n>>> ")
        term.type(b"print(6 * 7)\r")
        assert b"print(6 * 7)" in term.expect(b"42")
        term.type(b"\x1d")
        assert term.close() == 0


def test_deploy_twice_and_after_deploy_boot(tmp_path):
    with VirtualPico(tmp_path) as vp:
        for args in ((), (), ("--boot",), (), ("--boot",)):
            done = anne_host("--port", vp.port, "deploy", *args)
            assert done.returncode == 0, done.stderr
            info = anne_host("--port", vp.port, "--json", "info")  # the server runs (again)
            assert info.returncode == 0 and '"protocol": %d' % PROTOCOL in info.stdout, info.stderr
    assert (tmp_path / "main.py").exists()


def test_anne_host_repl_stops_the_server_and_opens_the_repl(pico):
    assert anne_host("--port", pico.port, "upload", str(MODELS / "iris6.json")).returncode == 0
    term = Terminal([str(BIN / "anne-host"), "--port", pico.port, "repl"])
    assert b"Ctrl-] or Ctrl-X leaves" in term.expect(b"\n>>> ")
    term.type(b"anne.models()\r")
    term.expect(b"['iris6']")
    term.type(b"net = anne.load('iris6')\r")
    term.type(b"print('->', net.predict_class([5.9, 3.0, 5.1, 1.8]))\r")
    term.expect(b"-> virginica")
    term.expect(b"\n>>> ")  # the prompt after it, so that what follows is the next line's answer
    term.type(b"anne.load('nothere')\r")
    said = term.expect(b"\n>>> ")
    assert b"no model 'nothere' on the board; stored: iris6" in said
    term.type(b"\x1d")
    assert term.close() == 0
    info = anne_host("--port", pico.port, "info")  # and the next command starts the server again
    assert info.returncode == 0 and "stored models: iris6" in info.stdout


def test_anne_host_repl_on_sim_reaches_the_virtual_pico_of_the_other_commands(tmp_path):
    env = dict(os.environ, ANNE_SIM_DIR=str(tmp_path))
    assert anne_host("--port", "sim", "upload", str(MODELS / "iris3.json"), env=env).returncode == 0
    term = Terminal([str(BIN / "anne-host"), "--port", "sim", "repl"], env=env)
    assert b"stops the virtual Pico" in term.expect(b"\n>>> ")
    term.type(b"anne.models()\r")
    term.expect(b"['iris3']")
    term.type(b"\x18")  # Ctrl-X leaves too
    assert term.close() == 0


def test_a_server_still_starting_at_boot_is_waited_for(tmp_path):
    # main.py that takes 4 s before it serves: a slow import at boot.
    (tmp_path / "main.py").write_text("import time\ntime.sleep(4)\nimport anne.server\nanne.server.run()\n")
    with VirtualPico(tmp_path) as vp, Client.open(vp.port) as board:
        stats = board.call("stats")
    # main.py's server read the filler and the Ctrl-A that were sent while it started.
    assert stats["garbage_bytes"] >= len(FILLER) + 1


def test_a_board_silent_past_the_boot_wait_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(client, "BOOT_WAIT", 3.0)
    (tmp_path / "main.py").write_text("while True:\n    pass\n")  # busy, deaf to Ctrl-C here
    with VirtualPico(tmp_path) as vp:
        start = time.monotonic()
        with pytest.raises(LinkError) as error:
            Client.open(vp.port)
        assert time.monotonic() - start < 3 + 0.5 + 5 + 2
    assert "no ANNE server answered in 3 s (nor one starting at boot)" in str(error.value)
    assert "\n" not in str(error.value)


def test_models_lists_the_store_and_an_unknown_name_names_them(run_any, tmp_path):
    code = ("import anne\nprint(anne.models())\ntry:\n anne.load('nothere')\n"
            "except OSError as e:\n print(e.errno, e)\n")
    empty = run_any(code, cwd=tmp_path).splitlines()
    assert empty[0] == "[]" and "no model 'nothere' on the board; stored: none" in empty[1]
    (tmp_path / "models").mkdir()
    for name in ("iris6", "iris3"):
        (tmp_path / "models" / (name + ".anne")).write_bytes(b"")
    (tmp_path / "models" / ".upload").write_bytes(b"")  # an unfinished upload is no model
    out = run_any(code, cwd=tmp_path).splitlines()
    assert out[0] == "['iris3', 'iris6']"
    assert out[1].startswith("2 ") and "no model 'nothere' on the board; stored: iris3, iris6" in out[1]
