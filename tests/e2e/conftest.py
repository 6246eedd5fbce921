"""A virtual Pico for the end-to-end tests: the real MicroPython running the
firmware behind a pseudo-terminal, reached through pyserial like a board."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from anne_host import cli
from anne_host.client import Client
from anne_host.sim import VirtualPico


@pytest.fixture(scope="module")
def pico(tmp_path_factory):
    vp = VirtualPico(tmp_path_factory.mktemp("flash")).start()
    yield vp
    vp.stop()


@pytest.fixture
def board(pico):
    with Client.open(pico.port) as client:
        yield client


@pytest.fixture
def anne(pico, capsys):
    """Run anne-host in this process against the module's virtual Pico:
    returns (exit code, stdout, stderr); ``anne.json(...)`` parses stdout."""

    def run(*argv):
        code = cli.main(["--port", pico.port, *argv])
        out, err = capsys.readouterr()
        return code, out, err

    def run_json(*argv):
        code, out, err = run("--json", *argv)
        assert code == 0, err
        return json.loads(out)

    run.json = run_json
    return run


def anne_host(*argv, env=None, timeout=120):
    """anne-host as a user runs it: a separate process."""
    script = Path(sys.executable).with_name("anne-host")  # the installed console script
    return subprocess.run([str(script), *argv], capture_output=True, text=True, env=env, timeout=timeout)
