"""anne-host as a user runs it, in this process or as a separate command,
against the virtual Pico fixtures of tests/conftest.py."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from anne_host import cli


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
