"""Shared fixtures: the firmware staged as the board's ``anne`` package, and ways
to run code under the real MicroPython interpreter or, for quick feedback, CPython."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from anne_host import board_files, unixport
from anne_host.client import Client
from anne_host.sim import VirtualPico

SHIMS = Path(__file__).parent / "shims"

try:
    from xdist.scheduler import LoadScopeScheduling
except ImportError:  # without pytest-xdist the suite runs in one process
    LoadScopeScheduling = None

if LoadScopeScheduling is not None:

    class _FilesAndOneBoard(LoadScopeScheduling):
        # The README's test command runs a worker per core (pytest -n auto). Each test
        # file goes whole to one worker, so that its module fixtures (a virtual Pico, a
        # trained model) are made once; the board tier, whose files share one board in
        # file order, goes whole to one worker.
        def _split_scope(self, nodeid):
            path = nodeid.split("::", 1)[0]
            return "tests/board" if path.startswith("tests/board/") else path

    def pytest_xdist_make_scheduler(config, log):
        return _FilesAndOneBoard(config, log)


@pytest.fixture(scope="session")
def board_lib(tmp_path_factory):
    """A folder holding ``anne/`` exactly as it is laid out on a board."""
    return board_files.stage(tmp_path_factory.mktemp("lib"))


@pytest.fixture(scope="session")
def run_mpy(board_lib):
    """Run MicroPython code with the firmware importable; returns its stdout.

    The last line the code prints is often JSON: ``run_mpy.json(code)`` parses it.
    """

    def run(code, heap=None, cwd=None, stdin=None):
        return unixport.run(code, board_lib, heap=heap, cwd=cwd, stdin=stdin)

    def run_json(code, **kw):
        return json.loads(run(code, **kw).strip().splitlines()[-1])

    run.json = run_json
    return run


# MicroPython's time.ticks_* for CPython, so timing code runs unchanged.
_CPYTHON_PRELUDE = """import sys, time
sys.path[:0] = %r
time.ticks_us = lambda: int(time.perf_counter() * 1e6)
time.ticks_diff = lambda a, b: a - b
"""


@pytest.fixture(scope="session")
def run_cpython(board_lib):
    """The same as run_mpy, but under CPython with a stand-in ``micropython`` module."""

    def run(code, heap=None, cwd=None, stdin=None):
        path = [str(board_lib), str(SHIMS)]
        proc = subprocess.run(
            [sys.executable, "-c", _CPYTHON_PRELUDE % path + code],
            cwd=cwd, input=stdin, capture_output=True, timeout=300,
        )
        if proc.returncode:
            raise RuntimeError((proc.stdout + proc.stderr).decode(errors="replace"))
        return proc.stdout.decode()

    def run_json(code, **kw):
        return json.loads(run(code, **kw).strip().splitlines()[-1])

    run.json = run_json
    return run


@pytest.fixture(params=["micropython", "cpython"])
def run_any(request, run_mpy, run_cpython):
    """Parametrised over both interpreters; the MicroPython run is the one that counts."""
    return run_mpy if request.param == "micropython" else run_cpython


@pytest.fixture(scope="session")
def keras():
    """Keras with TensorFlow, seeded; tests that compare with Keras use this."""
    import keras  # the dev extra installs it: the comparison is the point of these tests

    keras.utils.set_random_seed(1234)
    return keras


@pytest.fixture(scope="module")
def pico(tmp_path_factory):
    """A virtual Pico for one test module: the real MicroPython running the
    firmware behind a pseudo-terminal, reached through pyserial like a board."""
    vp = VirtualPico(tmp_path_factory.mktemp("flash")).start()
    yield vp
    vp.stop()


@pytest.fixture
def board(pico):
    with Client.open(pico.port) as client:
        yield client
