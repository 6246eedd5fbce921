"""On the chip: the REPL and the ANNE server handed back and forth as people and tools
do it (mpremote, Thonny's interrupt, deploy over a running server, a restart with
main.py). The tests share the board in file order: few, as the emulator is slow."""

import subprocess
import sys
import time
from pathlib import Path

from anne_host import model_doc
from anne_host.client import PROTOCOL, Client
from anne_host.transport import SerialTransport

MODELS = Path(__file__).resolve().parents[2] / "models"
BIN = Path(sys.executable).parent
RAW_PROMPT = b"raw REPL; CTRL-B to exit\r\n>"


def run(*argv):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=180)


def test_deploy_over_a_running_server_and_after_deploy_boot(chip):
    with Client.open(chip.port) as board:  # a server runs, with a model stored
        board.upload(model_doc.pack(model_doc.read(MODELS / "iris6.json")), "iris6")
    for args in ((), ("--boot",), ()):
        done = run(BIN / "anne-host", "--port", chip.port, "deploy", *args)
        assert done.returncode == 0, done.stderr
        info = run(BIN / "anne-host", "--port", chip.port, "info")
        assert info.returncode == 0 and "stored models: iris6" in info.stdout, info.stderr


def test_mpremote_and_thonny_take_the_repl_from_the_server(chip):
    with Client.open(chip.port) as board:
        assert board.info["active"] == "iris6"
    # mpremote as a user runs it: Ctrl-C, Ctrl-A, then a soft reset in the raw REPL.
    ran = run(BIN / "mpremote", "connect", chip.port, "exec", "import anne; print(anne.models())")
    assert ran.returncode == 0 and ran.stdout.strip() == "['iris6']", ran
    with Client.open(chip.port) as board:  # the server starts again
        assert board.hello()["protocol"] == PROTOCOL
    # Thonny's Stop: Ctrl-C and Ctrl-A, repeated with longer waits until the raw prompt shows.
    t = SerialTransport(chip.port)
    try:
        seen = b""
        for wait in (0.05, 0.5, 0.1, 1.0, 3.0, 5.0):
            t.write(b"\x03")
            t.write(b"\x01")
            time.sleep(wait)
            seen += t.read()
            while t.serial.in_waiting:
                seen += t.read()
            if seen.endswith(RAW_PROMPT):
                break
        assert seen.endswith(RAW_PROMPT), seen
        t.write(b"import anne\nnet = anne.load('iris6')\nprint('->', net.predict_class([5.9, 3.0, 5.1, 1.8]))\n"
                b"try:\n anne.load('nothere')\nexcept OSError as e:\n print(e)\n\x04")
        said = t.read_until(b"\x04>", 30)
        assert b"-> virginica" in said
        assert b"no model 'nothere' on the board; stored: iris6" in said
        t.friendly_repl(10)
    finally:
        t.close()


def test_info_right_after_a_restart_with_main_py_and_the_models_kept(chip):
    chip.restart()  # power off and on: main.py (deploy --boot) starts the server
    start = time.monotonic()
    info = run(BIN / "anne-host", "--port", chip.port, "info")
    assert info.returncode == 0, info.stderr
    assert "stored models: iris6" in info.stdout and "active model: iris6" in info.stdout
    print("info after a restart: %.1f s wall" % (time.monotonic() - start))
