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
    # Each listed command, sent with no fields, gets anything but unknown_command (most
    # answer bad_request: a field is missing); a name not listed gets unknown_command.
    names = list(commands.NAMES) + ["calibrate", "train_", "train_x", "monitor",
                                  "monitor_x", "_load", "__init__", "occasional"]
    got = run_mpy.json("import json, sys\nfrom anne import server, service\nfrom anne.protocol import mpack\n"
                       "svc = service.Service()\nout = {}\n"
                       "for k, cmd in enumerate(%r):\n"
                       " rid, reply = server._handle(svc, mpack.packb({'cmd': cmd, 'id': k}))\n"
                       " out[cmd] = reply.get('error') if isinstance(reply, dict) else 'frame'\n"
                       "print(json.dumps([out, 'anne.protocol.commands' in sys.modules,"
                       " hasattr(sys.modules['anne.protocol'], 'commands')]))" % names)
    served, module_kept, attribute_kept = got
    assert {cmd for cmd, error in served.items() if error != "unknown_command"} == set(commands.NAMES)
    assert not module_kept and not attribute_kept


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
