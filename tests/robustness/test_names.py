"""Model names are names, not paths, and models are data: nothing a client sends can
write outside the model store, and nothing received is executed, evaluated or imported."""

import json
import re
import struct
import zlib
from pathlib import Path

import pytest

from anne_host import board_files

from .conftest import blob, flash_files, request

HOSTILE = ["", ".", "..", "../x", "../../lib/anne/server", "../main", "a/b", "/models/x", "\\x",
           "a\\b", ".hidden", ".upload", ".active", "x" * 33, "é", "a b", "a\x00b", "con:", "*",
           "~", "$HOME", "\n", "models/x", "lib/anne/service", "main.py/", "a;rm -rf /", "\U0001f600"]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_name_that_is_not_a_plain_name_is_refused_and_nothing_is_written(iris6, pico, name):
    before = flash_files(pico.flash_dir)
    data = blob("iris3")
    begin = request(iris6, "upload_begin", name=name, size=len(data), checksum=zlib.crc32(data[:-4]))
    assert begin["error"] == "bad_name", begin
    for cmd in ("select", "delete"):
        assert request(iris6, cmd, name=name)["error"] == "bad_name"
    assert flash_files(pico.flash_dir) == before  # firmware, boot file and store alike


def test_names_up_to_32_characters_of_the_allowed_set_are_stored_in_the_store(iris6, pico):
    for name in ("a" * 32, "main.py", "server", "x-1_2.b"):
        iris6.upload(blob("iris3"), name, activate=False)
        assert (pico.flash_dir / "models" / (name + ".anne")).exists()
        iris6.delete(name)
    # Stored as main.py.anne inside the store: never the board's main.py, never imported.
    assert not (pico.flash_dir / "main.py").exists()


def test_metadata_is_data_even_when_it_looks_like_code(iris6, pico):
    good = blob("iris6")
    meta_len = struct.unpack_from("<H", good, 10)[0]
    meta = json.loads(good[12:12 + meta_len])
    firmware = sorted((pico.flash_dir / "lib" / "anne").glob("server.*"))  # .mpy, or .py
    assert firmware
    code = "__import__('os').remove('lib/anne/%s')" % firmware[0].name
    meta.update(labels=[code, "exec('1/0')"], features=["eval"] * 4, name=code)
    raw = json.dumps(meta).encode()
    data = bytearray(good[:12] + raw + good[12 + meta_len:])
    struct.pack_into("<H", data, 10, len(raw))
    struct.pack_into("<I", data, len(data) - 4, zlib.crc32(data[:-4]))
    iris6.upload(bytes(data), "looks-like-code")
    model = iris6.model()
    assert model["labels"] == [code, "exec('1/0')"] and model["features"] == ["eval"] * 4
    assert iris6.infer([5.9, 3.0, 5.1, 1.8])[1] == 1  # class 1: the label is only a string
    assert sorted((pico.flash_dir / "lib" / "anne").glob("server.*")) == firmware
    iris6.select("iris6")
    iris6.delete("looks-like-code")


def test_the_firmware_never_executes_evaluates_or_imports_what_it_receives():
    # Every import in the firmware names a fixed module and nothing calls eval, exec,
    # compile or __import__. (Commands are looked up in a table: tools/fuzz.py sends
    # names such as "_load" and "__init__" and gets unknown_command.)
    forbidden = re.compile(r"\b(eval|exec|compile|__import__)\s*\(|\bimportlib\b")
    for _, source in board_files.board_sources():
        text = Path(source).read_text()
        assert not forbidden.search(text), source
        for line in text.splitlines():
            line = line.strip()
            if line.startswith(("import ", "from ")):
                assert re.fullmatch(r"(from [\w.]+ )?import [\w., ]+( as \w+)?", line), (source, line)
