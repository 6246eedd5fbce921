"""On the board: requests nested 1..40 deep, sent as raw frames (the client's encoder
refuses to write them). Within MAX_DEPTH (PROTOCOL.md, "Nesting limit") the server
reads them and answers; beyond it, it answers bad_request. The RP2040's C stack,
which overflows after about a dozen nested Python calls, plays no part: no depth
gets an `internal` reply, and the board keeps answering."""

import time

import pytest

from anne_host.protocol import framing, mpack
from anne_host.protocol.decoder import Decoder

DEPTHS = range(1, 41)


def nested_request(request_id, depth, maps=True):
    """A hello request (a map: one level) whose field "v" holds depth - 1 more
    containers inside one another, maps and arrays in turn or arrays only."""
    body = b"\x83\xa2id" + bytes([request_id]) + b"\xa3cmd\xa5hello\xa1v"
    for k in range(depth - 1):
        body += b"\x81\xa1k" if maps and k % 2 == 0 else b"\x91"
    return body + b"\xc0"


def exchange(board, body, timeout=30.0):
    """The board's reply, decoded, to one frame holding ``body`` as it is."""
    board.transport.write(framing.encode(body))
    decoder = Decoder()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        decoder.feed(board.transport.read())
        for reply in decoder.frames():
            return mpack.unpackb(reply)
    pytest.fail("no reply to a request nested %r in %.0f s" % (body[:24], timeout))


@pytest.mark.parametrize("maps", [True, False], ids=["maps-and-arrays", "arrays"])
def test_every_nesting_depth_is_answered_or_refused_as_documented(board, maps):
    errors_before = board.stats()["errors"]
    for depth in DEPTHS:
        body = nested_request(depth, depth, maps)
        reply = exchange(board, body)
        if depth <= mpack.MAX_DEPTH:
            assert mpack.unpackb(body)["id"] == depth  # the host reads it too
            assert reply["ok"] is True, (depth, reply)
            assert reply["id"] == depth and reply["protocol"] == board.info["protocol"]
        else:
            assert reply["ok"] is False, (depth, reply)
            assert reply["error"] == "bad_request", (depth, reply)
            assert reply["id"] is None
            assert "nesting deeper than %d" % mpack.MAX_DEPTH in reply["message"], (depth, reply)
    # The board still serves, and counted exactly the refusals as errors.
    assert board.hello()["protocol"] == board.info["protocol"]
    refused = sum(1 for d in DEPTHS if d > mpack.MAX_DEPTH)
    assert board.stats()["errors"] - errors_before == refused
