"""The virtual Pico behaves the same wherever its flash folder lies on this PC."""

import os
import subprocess
import sys

from anne_host.client import Client
from anne_host.sim import VirtualPico


def _free_heap_at_server_start(flash_dir):
    with VirtualPico(flash_dir) as vp, Client.open(vp.port) as board:
        return board.hello()["mem_free"]


def test_the_free_heap_does_not_depend_on_the_flash_folders_path(tmp_path):
    # A Pico's paths are short and fixed; a user's TMPDIR may be long (macOS). Models at
    # the heap's edge must fit or not alike in both.
    short = tmp_path / "s"
    long = tmp_path.joinpath(*["d" * 49] * 4)  # 200 characters beyond tmp_path
    assert len(str(long)) - len(str(tmp_path)) == 200
    assert _free_heap_at_server_start(short) == _free_heap_at_server_start(long)


_FREE_HEAP = """
import tempfile
from anne_host.client import Client
from anne_host.sim import VirtualPico
with tempfile.TemporaryDirectory() as flash, VirtualPico(flash) as vp, Client.open(vp.port) as board:
    print(board.hello()["mem_free"])
"""


def test_the_free_heap_does_not_depend_on_the_temporary_folder(tmp_path):
    # The firmware is compiled in a temporary folder; a module's name must be its path on
    # the board, not that folder's (a long TMPDIR once took 1.6 KB of the heap).
    free = []
    for tmpdir in (tmp_path / "t", tmp_path.joinpath(*["d" * 49] * 2)):
        tmpdir.mkdir(parents=True)
        done = subprocess.run([sys.executable, "-c", _FREE_HEAP], capture_output=True, text=True,
                              env=dict(os.environ, TMPDIR=str(tmpdir)), timeout=120)
        assert done.returncode == 0, done.stderr
        free.append(int(done.stdout.split()[-1]))
    assert free[0] == free[1]
