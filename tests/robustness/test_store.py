"""A store of any size stays manageable (issue 14, items 1 and 3): hello does not grow
with it, list pages through it, anne-host ls and info show every model; files that
other tools leave in the model folder are listed as foreign and can be removed, and a
damaged model file is no model."""

import json

import pytest

from anne_host import cli, model_doc
from anne_host.client import Client
from anne_host.protocol import framing, mpack
from anne_host.sim import VirtualPico

from .conftest import MODELS, blob, request

MANY = 520


def _twin(i):
    """iris6 under a 32-character name; its metadata names it, so every copy differs."""
    name = "m%031d" % i
    doc = dict(model_doc.read(MODELS / "iris6.json"), name=name)
    return name, model_doc.pack(doc)


@pytest.fixture(scope="module")
def crowded(tmp_path_factory):
    """A virtual Pico whose flash holds MANY models, written straight into its folder."""
    flash = tmp_path_factory.mktemp("crowded")
    folder = flash / "models"
    folder.mkdir()
    names = []
    for i in range(MANY):
        name, data = _twin(i)
        (folder / (name + ".anne")).write_bytes(data)
        names.append(name)
    with VirtualPico(flash) as vp:
        yield vp, names


def _size(reply):
    return len(mpack.packb(reply))


def test_hello_and_every_list_page_fit_whatever_the_store_holds(crowded):
    vp, names = crowded
    with Client.open(vp.port) as board:
        info = board.hello()
        assert info["ok"] and info["model_count"] == MANY
        pages, after = [], ""
        while after is not None:
            reply = board.call("list", after=after)
            assert _size(reply) <= framing.MAX_BODY
            pages.append([m["name"] for m in reply["models"]])
            after = reply["next"]
        assert len(pages) > 1 and all(pages)
        assert [n for page in pages for n in page] == names  # each once, in order
        assert [m["name"] for m in board.list_models()] == names
        # The copies are real models: any of them loads and answers.
        chosen = names[MANY // 2]
        model = board.select(chosen)
        assert model["name"] == chosen and len(board.infer([5.9, 3.0, 5.1, 1.8])[0]) == 1
        entries = {m["name"]: m for m in board.list_models()}
        assert entries[chosen]["active"] and entries[names[0]]["dtype"] == "float32"
        # The handshake is as large with 520 models as the reply to the first hello with none.
        assert _size(board.hello()) < 600


def test_anne_host_ls_and_info_show_every_model(crowded, capsys):
    vp, names = crowded
    assert cli.main(["--port", vp.port, "--json", "ls"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in listed] == names
    assert cli.main(["--port", vp.port, "info"]) == 0
    out = capsys.readouterr().out
    line = [x for x in out.splitlines() if x.startswith("stored models: ")][0]
    assert line == "stored models: %s (%d)" % (", ".join(names), MANY)


def test_a_page_is_what_follows_the_name_given(crowded):
    vp, names = crowded
    with Client.open(vp.port) as board:
        reply = board.call("list", after=names[-2])
        assert [m["name"] for m in reply["models"]] == names[-1:] and reply["next"] is None
        assert board.call("list", after=names[-1])["models"] == []
        assert request(board, "list", after=7)["error"] == "bad_request"


def test_foreign_files_are_listed_and_can_be_removed(pico, capsys):
    folder = pico.flash_dir / "models"
    foreign = {"Bad Name": b"not a model", ".hidden": blob("iris3")}
    with Client.open(pico.port) as board:
        board.upload(blob("iris6"), "iris6")
        for name, data in foreign.items():
            (folder / (name + ".anne")).write_bytes(data)
        entries = {m["name"]: m for m in board.list_models()}
        assert entries["Bad Name"] == {"name": "Bad Name", "size": 11, "dtype": None, "active": False,
                                       "foreign": True}
        assert entries[".hidden"]["foreign"] and entries[".hidden"]["dtype"] == "float32"
        assert entries["iris6"]["active"] and not entries["iris6"]["foreign"]
        assert board.hello()["model_count"] == 3
        # Never loaded: a foreign name is no model name.
        assert request(board, "select", name=".hidden")["error"] == "bad_name"
        # The protocol removes one by its exact name.
        assert board.delete("Bad Name")["deleted"] == "Bad Name"
        # A name that is no file there stays a bad name, however close to one.
        assert request(board, "delete", name="Bad Name")["error"] == "bad_name"
        assert request(board, "delete", name="active\x00")["error"] == "bad_name"
        assert (folder / "active").exists()
    # anne-host ls says what it is, and rm removes it.
    assert cli.main(["--port", pico.port, "ls"]) == 0
    line = [x for x in capsys.readouterr().out.splitlines() if ".hidden" in x][0]
    assert "foreign file '.hidden.anne'" in line and "rm" in line
    assert cli.main(["--port", pico.port, "rm", ".hidden"]) == 0
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".anne") == ["iris6.anne"]


def test_a_damaged_model_file_has_no_dtype(iris6, pico):
    folder = pico.flash_dir / "models"
    good = blob("iris3")
    damaged = bytearray(good)
    damaged[len(good) // 2] ^= 0x40  # a weight's bit: only the CRC sees it
    files = {"flipped": bytes(damaged), "cut": good[:-9], "longer": good + b"\0",
             "v2": good[:4] + b"\x02" + good[5:], "whole": good}
    for name, data in files.items():
        (folder / (name + ".anne")).write_bytes(data)
    try:
        dtypes = {m["name"]: m["dtype"] for m in iris6.list_models()}
        assert dtypes == {"flipped": None, "cut": None, "longer": None, "v2": None,
                          "whole": "float32", "iris6": "float32"}
    finally:
        for name in files:
            iris6.delete(name)
