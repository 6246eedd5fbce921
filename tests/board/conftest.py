"""The board tier: tests against a serial port, on the emulated RP2040 or a real Pico.

    ANNE_RP2040=/path/to/rp2040 pytest tests/board   # an emulated chip from that rig's start/stop
    ANNE_BOARD_PORT=/dev/ttyACM0 pytest tests/board  # your own Pico (its /lib/anne and models change)

Without either, each test here is skipped and says why. The tier deploys the firmware
once (as `anne-host deploy` does) and its tests then share the board, in file order.
"""

import os
import subprocess
import time
from pathlib import Path

import pytest

from anne_host import deploy
from anne_host.client import Client

_WHY = ("no board: set ANNE_RP2040 to an rp2040 emulator rig (its start/stop scripts) or "
        "ANNE_BOARD_PORT to a Pico's serial port")


class Chip:
    """One board on a serial port. ``emulated``: it can be restarted and cut off."""

    def __init__(self, port=None, rig=None, run_dir=None):
        self.port, self.rig, self.run_dir = port, rig and Path(rig), run_dir and Path(run_dir)
        self.emulated = rig is not None

    def start(self, fresh=False):
        if self.emulated:
            args = [str(self.rig / "start")] + (["--fresh"] if fresh else []) + [str(self.run_dir)]
            self.port = subprocess.run(args, capture_output=True, text=True, check=True,
                                       timeout=60).stdout.split()[-1]
        return self

    def stop(self):
        """Power off. The emulator keeps its flash as it is at this moment (the rig's
        state file), whatever the board was doing: a power cut."""
        if self.emulated:
            subprocess.run([str(self.rig / "stop"), str(self.run_dir)], timeout=60)

    def restart(self):
        """Power off and on again; the flash is kept."""
        if not self.emulated:
            deploy.mpremote(self.port, "exec", "import machine; machine.reset()", what="reset")
            time.sleep(3)
            return self
        self.stop()
        return self.start()

    def exec(self, code):
        """Run ``code`` at the board's REPL (mpremote exec); its printed output."""
        return deploy.mpremote(self.port, "exec", code, what="running code on the board")


def _chip_from_environment(tmp_path_factory):
    if os.environ.get("ANNE_BOARD_PORT"):
        return Chip(port=os.environ["ANNE_BOARD_PORT"])
    rig = os.environ.get("ANNE_RP2040")
    if rig:
        if not (Path(rig) / "start").exists():
            pytest.fail("ANNE_RP2040=%s holds no start script" % rig)
        return Chip(rig=rig, run_dir=tmp_path_factory.mktemp("rp2040")).start(fresh=True)
    pytest.skip(_WHY)


@pytest.fixture(scope="session")
def chip(tmp_path_factory):
    """The board, with the firmware deployed as `anne-host deploy` installs it."""
    c = _chip_from_environment(tmp_path_factory)
    deploy.deploy(c.port, log=lambda *a: None)
    yield c
    c.stop()


@pytest.fixture
def board(chip):
    with Client.open(chip.port) as client:
        yield client
