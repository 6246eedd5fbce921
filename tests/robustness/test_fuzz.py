"""The fuzz tool (tools/fuzz.py), shortened: thousands of hostile cases of every
category against a virtual Pico, and proof that its checks catch a board that
leaks heap or answers with the wrong code."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from anne_host import board_files
from anne_host.client import Client
from anne_host.sim import VirtualPico

from ..tools.tool_file import load_tool

FUZZ = Path(__file__).resolve().parents[2] / "tools" / "fuzz.py"


fuzz = load_tool("fuzz")


def test_fuzz_board_survives_every_category():
    done = subprocess.run([sys.executable, str(FUZZ), "--cases", "30000", "--seed", "4", "--json"],
                          capture_output=True, text=True, timeout=300)
    doc = json.loads(done.stdout)
    assert done.returncode == 0 and doc["ok"], doc["first_failures"]
    assert doc["failures"] == 0 and doc["restarts"] == 0 and doc["flash_changed"] == []
    assert abs(doc["heap"]["min_delta"]) <= fuzz.HEAP_TOLERANCE >= doc["heap"]["max_delta"]
    for name, t in doc["categories"].items():
        assert t["cases"] >= 1500, name
        # The board skipped exactly the bytes the reference decoder calls garbage.
        assert t["garbage_bytes"] == t["garbage_bytes_predicted"], name
        assert set(t["codes"]) <= fuzz.STABLE_CODES | {"ok"}, name
        if t["kind"] == "wire":
            assert t["frames"] == t["replies"] == 0 and t["garbage_bytes"] > 0, name
        else:
            assert t["replies"] == t["frames"] >= t["cases"], name
    categories = doc["categories"]
    assert categories["lying_length"]["resyncs"] > 0 and categories["max_length"]["resyncs"] > 0
    assert set(categories["upload_order"]["codes"]) >= {
        "ok", "no_upload", "bad_offset", "too_long", "incomplete", "bad_model", "bad_checksum", "bad_request"}
    assert set(categories["bad_fields"]["codes"]) >= {"bad_request", "bad_input", "no_space", "too_big", "no_upload"}
    assert set(categories["bad_cmd"]["codes"]) == {"bad_request", "unknown_command"}


def _patched_board(tmp_path, module, edits):
    """A virtual Pico whose firmware module (e.g. "service.py") has each (old, new) of
    ``edits`` applied."""
    lib = board_files.stage(tmp_path / "lib")
    path = lib / "anne" / module
    source = path.read_text()
    for old, new in edits:
        assert old in source
        source = source.replace(old, new, 1)
    path.write_text(source)
    return VirtualPico(tmp_path, flash_firmware=False)


@pytest.mark.parametrize("module, edits, symptom", [
    # Every hello keeps 64 bytes: a leak the heap check must see.
    ("service.py", [("import gc\n", "import gc\n_KEPT = []\n"),
                    ("    def hello(self, req):\n", "    def hello(self, req):\n        _KEPT.append(bytearray(64))\n")],
     "heap in use"),
    # A renamed code: no longer the predicted, stable one.
    ("service.py", [('"unknown_command", "unknown command', '"unknown", "unknown command')],
     "expected 'unknown_command'"),
    # A reader that skips one byte too many after a damaged frame loses frames.
    ("server.py", [("        stats[\"garbage_bytes\"] += i\n        link.drop(i)",
                    "        stats[\"garbage_bytes\"] += i\n        link.drop(i + 1 if i < link.have else i)")],
     "garbage"),
])
def test_fuzz_catches_a_broken_board(tmp_path, module, edits, symptom, monkeypatch):
    monkeypatch.setattr(fuzz, "REPLY_WAIT", 1.0)
    monkeypatch.setattr(fuzz, "MAX_FAILURES", 3)
    with _patched_board(tmp_path, module, edits) as vp, Client.open(vp.port) as client:
        doc = fuzz.fuzz(client, 3000, seed=2, burst=100)
    assert not doc["ok"]
    assert any(symptom in failure for failure in doc["first_failures"]), doc["first_failures"]
