"""tools/ is a folder of scripts, not a package: the tests load a tool by its path."""

import importlib.util
from pathlib import Path

TOOLS = Path(__file__).resolve().parents[2] / "tools"


def load_tool(name):
    """The module of tools/<name>.py, under a name of its own (not the script's)."""
    spec = importlib.util.spec_from_file_location(name + "_under_test", TOOLS / (name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
