"""The line misbehaves, the host recovers (PROTOCOL.md, "Recovery"): a frame whose
length lies, a host killed in the middle of a frame, noise that ends in Ctrl-C and
silence (the server leaves) or in Ctrl-C and a frame (it stays), a request lost on the
line; and requests too large for the board."""

import struct
import time

import pytest

from anne_host.client import PROTOCOL, Client
from anne_host.protocol import framing, mpack
from anne_host.transport import LinkError

from .conftest import flash_files, request


def _stats(board):
    return board.call("stats")


def test_a_length_that_lies_at_the_maximum_is_recovered_by_a_resync(board):
    before = _stats(board)
    # A header claiming the largest body, then only 10 bytes: the board waits for 4090 more.
    board.transport.write(framing.SYNC + struct.pack("<H", framing.MAX_BODY) + bytes(range(10)))
    start = time.monotonic()
    reply = board.call("stats", timeout=1)  # swallowed, then repeated after the filler
    assert time.monotonic() - start < 1 + 2 + 1
    assert reply["bad_frames"] == before["bad_frames"] + 1
    # Counted since `before`: itself, the swallowed stats (found again once the filler
    # completed the lying frame: the reader rescans, it never skips a claimed length),
    # and the resync's hello. The late reply to the swallowed one was dropped.
    assert reply["requests"] == before["requests"] + 3


def test_a_host_killed_mid_frame_does_not_block_the_next_one(pico):
    with Client.open(pico.port) as first:
        requests = first.call("stats")["requests"]
        frame = framing.encode(b"\x82\xa2id\x01\xa3cmd\xa5stats" + bytes(2000))
        first.transport.write(frame[:1000])  # and the host dies
    start = time.monotonic()
    with Client.open(pico.port) as second:  # its hello is swallowed; the filler frees it
        took = time.monotonic() - start
        stats = second.call("stats")
    assert took < 0.7 + 2 + 1
    # The server was not restarted: its counters go on (one hello lost, one answered).
    assert stats["requests"] == requests + 3 and stats["bad_frames"] >= 1


@pytest.mark.parametrize("ending", [b"\x03", b"\x03\r\x01"], ids=["ctrl-c", "mpremote"])
def test_noise_ending_in_ctrl_c_and_silence_is_a_person_leaving_and_the_client_restarts(board, ending):
    # PROTOCOL.md, "Leaving the server": a 0x03 between frames, at most 4 of CR, 0x01 and
    # 0x02 after it, then 50 ms of nothing. After 0x01 the board is at the raw REPL.
    board.call("stats")
    board.transport.write(b"\x17noise" + ending)
    time.sleep(0.3)  # the server has returned to the REPL
    start = time.monotonic()
    stats = board.call("stats", timeout=1)  # no answer, no answer after a resync: restart
    assert time.monotonic() - start < 1 + 2 + 5
    assert stats["requests"] <= 2  # a new server: counting from its own start


def test_a_tool_interrupt_followed_at_once_by_a_frame_is_garbage_and_the_server_stays(board):
    # Ctrl-C and what tools send after it, then at once a request: no REPL request, and
    # every byte before the frame is counted as garbage, as the reference reader counts it.
    before = board.call("stats")
    noises = (b"\r\x03\r\x01", b"\x03\x01", b"\x03", b"\x03\r\x02\x03\x01", b"\x03\r\r\r\r\r")
    for noise in noises:
        request_id = board.next_id
        board.next_id += 1
        frame = framing.encode(mpack.packb({"id": request_id, "cmd": "stats"}))
        board.pending[request_id] = ("stats", frame)
        board.transport.write(noise + frame)  # one write: the frame follows at once
        assert board.result(request_id, timeout=2)["ok"]
    after = board.call("stats")
    assert after["garbage_bytes"] - before["garbage_bytes"] == sum(map(len, noises))
    assert after["requests"] - before["requests"] == 1 + len(noises)  # the same server answered


def test_a_lost_request_that_cannot_be_repeated_is_a_clear_error(board):
    board.transport.write(framing.SYNC + struct.pack("<H", 3000))  # swallows what follows
    with pytest.raises(LinkError, match="no reply to delete .*whether it did it is unknown"):
        board.call("delete", name="nothing", timeout=1)
    assert board.call("hello")["protocol"] == PROTOCOL  # and the link works again


def test_an_upload_larger_than_the_flash_is_refused_before_a_byte_is_written(board, pico):
    before = flash_files(pico.flash_dir / "models")
    reply = request(board, "upload_begin", name="huge", size=2**40, checksum=0)
    assert reply["error"] == "no_space" and "bytes of flash" in reply["message"]
    assert flash_files(pico.flash_dir / "models") == before  # no temporary file either


def test_a_batch_whose_reply_would_not_fit_is_refused_before_it_is_computed(board):
    # 1 input, 1000 outputs: 1000 rows would need 4 MB of heap for the outputs alone.
    blob = _wide_model(1000)
    board.upload(blob, "wide")
    before = _stats(board)
    reply = request(board, "batch", x=bytes(4 * 1000))
    assert reply["error"] == "too_big" and "send at most 1 rows" in reply["message"]
    after = _stats(board)
    assert after["inferences"] == before["inferences"]  # refused, not computed
    assert len(board.call("batch", x=bytes(4))["y"]) == 4000  # the largest reply there is
    board.upload(_wide_model(1100), "wide")
    reply = request(board, "batch", x=bytes(4))
    assert reply["error"] == "too_big" and "outputs do not fit one reply" in reply["message"]
    assert request(board, "infer", x=bytes(4))["error"] == "too_big"
    board.delete("wide")


def _wide_model(units):
    from anne_host import model_doc

    doc = {"format": "anne-model", "version": 1, "name": "wide", "inputs": 1,
           "layers": [{"type": "dense", "units": units, "activation": "linear",
                       "weights": [[0.5]] * units, "bias": [0.0] * units}]}
    return model_doc.pack(doc)


def test_error_replies_stay_small_whatever_the_request_quotes(board):
    reply = request(board, "x" * 3000)
    assert reply["error"] == "unknown_command" and len(reply["message"]) <= 200


def test_a_memory_error_outside_a_command_leaves_the_server_serving(tmp_path):
    # Running out of heap where no reply can be made (here: just after a reply was
    # written) must not end the server: the next requests are answered as before.
    from anne_host import board_files
    from anne_host.sim import VirtualPico

    lib = board_files.stage(tmp_path / "lib")
    server = lib / "anne" / "server.py"
    source = server.read_text()
    old = "    link.write(reply)\n    return True\n"
    assert old in source
    server.write_text(source.replace(old, "    link.write(reply)\n    if svc.stats['requests'] in (3, 4):\n"
                                          "        raise MemoryError\n    return True\n"))
    with VirtualPico(tmp_path, flash_firmware=False) as vp, Client.open(vp.port) as board:
        counts = [board.call("stats")["requests"] for _ in range(5)]
    # Every request answered by the same server: a restarted one would count from zero.
    assert counts == list(range(counts[0], counts[0] + 5)) and counts[0] >= 1
