"""What PROTOCOL.md now says where it was silent or contradicted the board (issue 14,
items 2 and 6), checked against the virtual Pico: fields before state, a request
succeeds or changes nothing, a model every reply can describe, empty batches, deleting
the active model, what stats counts, whole microseconds."""

import pytest

from anne_host import model_doc
from anne_host.client import Client
from anne_host.model_doc import ModelDocError
from anne_host.protocol import modelfile

from .conftest import MODELS, blob, checksum, flash_files, request


def _wordy():
    """iris3 with 3 labels of 1,500 characters: a valid file whose model reply cannot fit."""
    doc = model_doc.read(MODELS / "iris3.json")
    doc["labels"] = [c * 1500 for c in "abc"]
    return doc, modelfile.pack(model_doc.meta(doc), model_doc.to_layers(doc))


def _codes(board, cases):
    return [request(board, cmd, **fields).get("error") for cmd, fields in cases]


def test_fields_are_checked_before_the_boards_state(board):
    board.call("reset")
    assert board.hello()["active"] is None
    wrong_types = [("infer", {"x": [1.0, 2.0]}), ("batch", {"x": "rows"}), ("bench", {"repeat": 0}),
                   ("bench", {"x": [0.5]}), ("upload_chunk", {"offset": "0", "data": b"x"}),
                   ("upload_chunk", {"offset": 0}), ("upload_end", {"activate": "yes"})]
    assert _codes(board, wrong_types) == ["bad_request"] * len(wrong_types)
    # The same commands with fields of the right types: now the state answers.
    right_types = [("infer", {"x": b"\0" * 16}), ("batch", {"x": b"\0" * 16}), ("bench", {"repeat": 1}),
                   ("model", {}), ("upload_chunk", {"offset": 0, "data": b"x"}), ("upload_end", {})]
    assert _codes(board, right_types) == ["no_model"] * 4 + ["no_upload"] * 2


def test_out_of_range_values_are_bad_request_and_names_bad_name(board):
    fields = {"name": "ok", "size": 500, "checksum": 7}
    cases = [("upload_begin", dict(fields, size=33)), ("upload_begin", dict(fields, checksum=-1)),
             ("upload_begin", dict(fields, checksum=2 ** 32)), ("bench", {"repeat": 100001}),
             ("upload_begin", dict(fields, name="a/b")), ("upload_begin", dict(fields, name="a/b", size=3))]
    assert _codes(board, cases) == ["bad_request"] * 4 + ["bad_name", "bad_request"]


def test_a_refused_upload_end_leaves_the_upload_open_and_a_checked_one_closes_it(board, pico):
    data = blob("iris6")
    board.call("upload_begin", name="late", size=len(data), checksum=checksum(data))
    board.call("upload_chunk", offset=0, data=data)
    assert request(board, "upload_end", activate="yes")["error"] == "bad_request"
    assert board.call("upload_end", activate=False)["name"] == "late"  # still open: it completes
    board.call("upload_begin", name="short", size=len(data), checksum=checksum(data))
    assert request(board, "upload_end", activate=False)["error"] == "incomplete"
    assert request(board, "upload_chunk", offset=0, data=data)["error"] == "no_upload"  # closed
    board.delete("late")


def test_a_model_whose_reply_cannot_fit_is_refused_at_upload(iris6, pico):
    doc, data = _wordy()
    assert 4500 < len(data) < 5200
    before = (iris6.hello()["active"], iris6.info["checksum"], flash_files(pico.flash_dir))
    reply = request(iris6, "upload_begin", name="wordy", size=len(data), checksum=checksum(data))
    for offset in range(0, len(data), 1024):
        iris6.call("upload_chunk", offset=offset, data=data[offset:offset + 1024])
    reply = request(iris6, "upload_end", activate=False)
    assert reply["error"] == "bad_model" and "labels (4509 bytes)" in reply["message"], reply
    assert "more than a frame's 4096" in reply["message"]
    assert (iris6.hello()["active"], iris6.info["checksum"], flash_files(pico.flash_dir)) == before
    # anne-host says so before it sends a byte.
    with pytest.raises(ModelDocError, match="labels"):
        model_doc.pack(doc)


def test_a_failed_select_changes_nothing(iris6, pico):
    # Stored by a firmware that did not check: selecting it must not switch.
    (pico.flash_dir / "models" / "wordy.anne").write_bytes(_wordy()[1])
    try:
        before = iris6.hello()
        reply = request(iris6, "select", name="wordy")
        assert reply["error"] == "bad_model" and "labels" in reply["message"]
        after = iris6.hello()
        assert (after["active"], after["checksum"], after["dtype"]) == ("iris6", before["checksum"], "float32")
        assert iris6.model()["name"] == "iris6"
        assert {m["name"]: m["active"] for m in iris6.list_models()} == {"iris6": True, "wordy": False}
    finally:
        iris6.delete("wordy")


def test_a_batch_of_no_rows_is_bad_input(iris6):
    reply = request(iris6, "batch", x=b"")
    assert reply["error"] == "bad_input" and "whole samples" in reply["message"]


def test_deleting_the_active_model_leaves_none_active_even_after_a_reset(iris6, pico):
    iris6.delete("iris6")
    info = iris6.hello()
    assert (info["active"], info["checksum"], info["dtype"], info["model_count"]) == (None, None, None, 0)
    assert request(iris6, "infer", x=b"\0" * 16)["error"] == "no_model"
    iris6.close()
    pico.reset()
    with Client.open(pico.port) as again:
        assert again.info["active"] is None and again.info["load_error"] is None


def test_stats_counts_the_requests_before_it_and_the_reset(board):
    board.call("reset")
    assert board.stats()["requests"] == 1  # the reset
    assert board.stats()["requests"] == 2  # the reset and the first stats, not itself
    request(board, "nonsense")
    stats = board.stats()
    assert (stats["requests"], stats["errors"]) == (4, 1)


def test_every_time_is_whole_microseconds(iris6):
    assert type(iris6.infer([5.9, 3.0, 5.1, 1.8])[2]) is int
    bench = iris6.bench(repeat=7)
    assert type(bench["us"]) is int and all(type(layer["us"]) is int for layer in bench["layers"])
    assert type(iris6.stats()["board_us"]) is int
