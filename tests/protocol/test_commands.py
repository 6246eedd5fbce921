"""One list of commands (issue 14, item 7): protocol/commands.py is what the board's
table is built from, what the host repeats after a resync and what the fuzzer must
cover; PROTOCOL.md's command table names exactly those commands."""

import importlib.util
import re
from pathlib import Path

import pytest

from anne_host import client
from anne_host.protocol import commands

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "protocol" / "PROTOCOL.md"
# tools/ is a folder of scripts (this folder is no package): the fuzzer loaded by its path.
_spec = importlib.util.spec_from_file_location("fuzz_commands_test", ROOT / "tools" / "fuzz.py")
fuzz = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz)


def _section(title):
    text = SPEC.read_text()
    start = text.index("\n" + title + "\n")
    end = text.find("\n#", start + len(title) + 2)
    return text[start:end if end > 0 else None]


def test_the_spec_table_names_exactly_the_commands():
    rows = re.findall(r"^\| `([a-z_]+)` \|", _section("### Commands"), re.M)
    assert rows == list(commands.NAMES)


def test_the_spec_repeats_exactly_the_repeatable_commands():
    recovery = _section("## Recovery")
    listed = recovery[recovery.index("safe to repeat"):recovery.index("is sent again")]
    assert set(re.findall(r"`([a-z_]+)`", listed)) == set(commands.REPEATABLE)


def test_the_board_serves_exactly_the_commands_and_lets_the_list_go(run_mpy):
    got = run_mpy.json("import json, sys\nimport anne.service as s\n"
                       "print(json.dumps([sorted(s.COMMANDS), 'anne.protocol.commands' in sys.modules,"
                       " hasattr(sys.modules['anne.protocol'], 'commands')]))")
    assert got == [sorted(commands.NAMES), False, False]


def test_the_host_repeats_what_the_list_says():
    assert client._REPEATABLE == commands.REPEATABLE
    assert commands.REPEATABLE < set(commands.NAMES)
    assert {"upload_chunk", "upload_end", "delete", "exit"}.isdisjoint(commands.REPEATABLE)


def test_the_fuzzer_sends_every_command_it_does_not_excuse():
    assert fuzz._COMMANDS == commands.NAMES
    assert fuzz.commands_sent() | set(fuzz.UNSENT) == set(commands.NAMES)
    fuzz.check_commands()


def test_a_command_the_fuzzer_misses_stops_it(monkeypatch):
    monkeypatch.setattr(fuzz, "_COMMANDS", commands.NAMES + ("calibrate",))
    with pytest.raises(SystemExit, match="commands no category sends: calibrate"):
        fuzz.check_commands()


def test_the_spec_points_to_the_model_format_for_infinite_logits():
    samples = SPEC.read_text()
    where = samples.index("Non-finite values")
    assert "softmax" in samples[where:where + 200] and "MODEL_FORMAT.md" in samples[where - 200:where]
    assert not re.search(r"tests/\S+\.py", samples)
