"""anne-host deploy with the real mpy-cross and mpremote, onto the virtual Pico."""

import time

from anne_host.client import PROTOCOL, Client
from anne_host.sim import VirtualPico
from anne_host.transport import SerialTransport

from .conftest import anne_host


def test_deploy_installs_mpy_files_that_boot_the_server(tmp_path):
    with VirtualPico(tmp_path) as vp:
        done = anne_host("--port", vp.port, "deploy", "--boot")
        assert done.returncode == 0, done.stderr
        assert "the server starts at boot" in done.stdout
    lib = tmp_path / "lib" / "anne"
    assert sorted(p.name for p in lib.glob("*.py")) == []
    assert {"engine.mpy", "server.mpy", "__init__.mpy"} <= {p.name for p in lib.glob("*.mpy")}
    assert (lib / "protocol" / "mpack.mpy").exists()
    assert (tmp_path / "main.py").exists()

    # Power on with only what deploy left: main.py starts the server from .mpy files,
    # so the first hello is answered without going through the REPL.
    with VirtualPico(tmp_path, flash_firmware=False) as vp:
        time.sleep(1.0)  # boot
        with Client(SerialTransport(vp.port)) as board:
            assert board._probe()["protocol"] == PROTOCOL


def test_deploy_without_a_board_says_what_to_do(tmp_path):
    done = anne_host("--port", str(tmp_path / "ttyNONE"), "deploy")
    assert done.returncode != 0
    assert done.stderr.startswith("anne-host: ") and "Traceback" not in done.stderr
