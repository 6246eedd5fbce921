"""Bad models and models too large are refused with a clear error before the stored
and the active model are touched; a MemoryError while loading leaves the previous
model active; a stored model the board cannot load never keeps the server down."""

import json
import struct
import zlib

import numpy as np
import pytest

from anne_host import model_doc
from anne_host.client import Client
from anne_host.sim import VirtualPico

from .conftest import blob, checksum, flash_files, request


def _resealed(data):
    """``data`` with its trailing CRC made right again: consistent, yet wrong inside."""
    data = bytearray(data)
    struct.pack_into("<I", data, len(data) - 4, zlib.crc32(data[:-4]))
    return bytes(data)


def _edit(data, offset, fmt, *values):
    data = bytearray(data)
    struct.pack_into(fmt, data, offset, *values)
    return _resealed(data)


def _layer0(data):
    return 12 + struct.unpack_from("<H", data, 10)[0]  # after the header and the metadata


def _with_meta(data, meta):
    raw = json.dumps(meta).encode()
    old = struct.unpack_from("<H", data, 10)[0]
    head = bytearray(data[:12])
    struct.pack_into("<H", head, 10, len(raw))
    return _resealed(bytes(head) + raw + data[12 + old:])


def _bad_models():
    good = blob("iris3")
    first = _layer0(good)
    meta = json.loads(good[12:first])
    damaged = bytearray(good)
    damaged[first + 30] ^= 0x10
    return {
        "wrong shape": (_edit(good, first + 2, "<H", 5), "takes 5 inputs but the previous layer gives 4"),
        "NaN weight": (_edit(good, first + 18, "<f", float("nan")), "not a finite number"),
        "infinite weight": (_edit(good, first + 18 + 4 * 7, "<f", float("-inf")), "not a finite number"),
        "unknown activation": (_edit(good, first + 1, "<B", 99), "unknown activation number 99"),
        "unknown layer kind": (_edit(good, first, "<B", 7), "unknown layer kind 7"),
        "damaged byte": (bytes(damaged), "checksum mismatch"),
        "wrong format": (_resealed(b"ONNX" + good[4:]), "not an ANNE model file"),
        "wrong version": (_edit(good, 4, "<B", 2), "model file version 2"),
        "wrong number type": (_edit(good, 5, "<B", 2), "number type 2"),
        "celu with alpha 0": (_edit(_edit(good, first + 1, "<B", 19), first + 6, "<fff", 0.0, 0.0, 0.0),
                              "celu needs a non-zero alpha"),
        "a value in an unused parameter slot": (_edit(_edit(good, first + 1, "<B", 6), first + 6, "<fff", 0.0, 0.0, 2.5),
                                                "slot 2 holds 2.5, not 0"),
        "metadata inputs against the header": (_with_meta(good, dict(meta, inputs=5)),
                                               "inputs 5 disagree with the header's 4"),
        "labels too long for a reply": (_with_meta(good, dict(meta, labels=["x" * 1500] * 3)),
                                        "labels (4509 bytes) make the model reply"),
        "truncated": (_resealed(good[:-40]), "truncated"),
        "bytes after the checksum": (good + b"\0", "bytes after its checksum"),
        "metadata not JSON": (_with_meta(good, {}).replace(b"{}", b"{,"), "not valid JSON"),
        "labels not strings": (_with_meta(good, dict(meta, labels=[1, 2, 3])), "'labels' must be a list of strings"),
        "threshold not a number": (_with_meta(good, dict(meta, threshold="0.5")), "'threshold' must be a number"),
    }


def _upload(board, name, data, announced=None, activate=True):
    """Every request of an upload, as sent; the reply to upload_end."""
    announced = checksum(data) if announced is None else announced
    board.call("upload_begin", name=name, size=len(data), checksum=announced)
    for offset in range(0, len(data), 1024):
        board.call("upload_chunk", offset=offset, data=data[offset:offset + 1024])
    return request(board, "upload_end", activate=activate)


def _state(board, pico):
    """What must not change: the active model, its answers, and the stored files."""
    info = board.hello()
    return (info["active"], info["checksum"], board.infer([5.9, 3.0, 5.1, 1.8])[0],
            flash_files(pico.flash_dir))


@pytest.mark.parametrize("case", sorted(_bad_models()))
def test_a_bad_model_is_refused_before_anything_changes(iris6, pico, case):
    data, message = _bad_models()[case]
    before = _state(iris6, pico)
    for name in ("iris6", "newcomer"):  # over the active model, and beside it
        reply = _upload(iris6, name, data)
        assert reply["error"] == "bad_model" and message in reply["message"], reply
        assert _state(iris6, pico) == before


def test_a_checksum_other_than_announced_is_refused(iris6, pico):
    before = _state(iris6, pico)
    good = blob("iris3")
    reply = _upload(iris6, "iris6", good, announced=checksum(good) ^ 1)
    assert reply["error"] == "bad_checksum" and "announced" in reply["message"]
    assert _state(iris6, pico) == before


def _dense_doc(widths, seed=0):
    rng = np.random.default_rng(seed)
    layers = [{"type": "dense", "units": o, "activation": "tanh",
               "weights": (rng.normal(size=(o, i)) * 0.1).tolist(), "bias": [0.0] * o}
              for i, o in zip(widths, widths[1:])]
    return {"format": "anne-model", "version": 1, "name": "dense", "inputs": widths[0], "layers": layers}


# 60 x 1000 weights and 1000 biases: 244,000 bytes of float32, more than the whole
# 245,888-byte heap once the server is in it.
HUGE = model_doc.pack(_dense_doc([60, 1000]))


@pytest.mark.parametrize("activate", [True, False])
def test_a_model_larger_than_the_heap_is_refused_before_anything_changes(iris6, pico, activate):
    before = _state(iris6, pico)
    reply = _upload(iris6, "huge", HUGE, activate=activate)
    assert reply["error"] == "no_memory"
    assert "needs 244000 bytes of heap" in reply["message"] and "without a model" in reply["message"]
    assert _state(iris6, pico) == before


def test_a_memory_error_while_loading_leaves_the_previous_model_active(iris6, pico):
    # As if copied by a board with more heap (a Pico 2): selecting it loads it for real,
    # which raises MemoryError beside iris6 and again in its place.
    (pico.flash_dir / "models" / "huge.anne").write_bytes(HUGE)
    before = _state(iris6, pico)
    reply = request(iris6, "select", name="huge")
    assert reply["error"] == "no_memory" and "does not fit in the heap" in reply["message"]
    assert _state(iris6, pico) == before
    assert [m["name"] for m in iris6.list_models()] == ["huge", "iris6"]  # refused, not deleted
    iris6.delete("huge")


def test_a_model_that_fits_only_in_place_of_the_active_one_replaces_it(board):
    a = model_doc.pack(_dense_doc([100, 240]))  # 24,240 weights: 96,960 bytes
    b = model_doc.pack(_dense_doc([100, 240], seed=1))
    board.upload(a, "a")
    # b's weights alone exceed the heap left beside a: it can only load in a's place.
    assert board.stats()["mem_free"] < 4 * 24240
    board.upload(b, "b")
    assert (board.hello()["active"], board.info["checksum"]) == ("b", checksum(b))
    assert [m["name"] for m in board.list_models()][:2] == ["a", "b"]  # a stays stored
    board.delete("a")
    board.delete("b")


def test_a_large_upload_loads_on_a_fresh_board(tmp_path):
    # 16,160 weights (64 KB in one array) with 174 KB free: the request being served
    # must not sit in the middle of the largest free block (server.py, _settle_heap).
    data = model_doc.pack(_dense_doc([100, 160]))
    with VirtualPico(tmp_path) as vp, Client.open(vp.port) as board:
        board.upload(data, "large")
        assert board.hello()["checksum"] == checksum(data)
        assert len(board.infer([0.5] * 100)[0]) == 160


def _boot(tmp_path, files):
    """The server's hello on a virtual Pico whose flash holds ``files`` at power-on."""
    models = tmp_path / "models"
    models.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (models / name).write_bytes(data)
    with VirtualPico(tmp_path) as vp, Client.open(vp.port) as board:
        info = board.hello()
        info["names"] = [m["name"] for m in board.list_models()]
        return info, board.call("stats")


def test_an_active_model_too_large_for_the_heap_does_not_keep_the_server_down(tmp_path):
    info, stats = _boot(tmp_path, {"huge.anne": HUGE, "active": b"huge"})
    assert info["active"] is None and "does not fit in the heap" in info["load_error"]
    assert stats["mem_free"] > 100000  # and the heap it tried is free again


def test_a_damaged_active_file_or_model_does_not_keep_the_server_down(tmp_path):
    info, _ = _boot(tmp_path, {"active": b"../../main"})
    assert info["active"] is None and "not a model" in info["load_error"]
    info, _ = _boot(tmp_path / "2", {"broken.anne": _bad_models()["NaN weight"][0], "active": b"broken"})
    assert info["active"] is None and "not a finite number" in info["load_error"]


def test_a_reset_during_an_upload_leaves_no_temporary_file(tmp_path):
    info, _ = _boot(tmp_path, {".upload": b"half a model", "iris6.anne": blob("iris6"), "active": b"iris6"})
    assert info["active"] == "iris6" and info["names"] == ["iris6"]
    assert not (tmp_path / "models" / ".upload").exists()


_ROOM = """
import gc, json
import anne
from anne import lifecycle
net = anne.load(%r)
# Every name bound now (a new global would need heap), and the list made at its full
# size: a growing list leaves its old storage free, a hole the size of a reply.
keep, seen, i, n, step = [None] * 6000, [], 0, 0, 0
try:
    while True:  # the heap filled with small blocks
        keep[n] = bytearray(64)
        n += 1
except MemoryError:
    pass
i = n - 200
while i < n:  # a while loop: a range would need heap
    keep[i] = None  # some room again, but in pieces smaller than a reply
    i += 2
gc.collect()
for step in range(2):
    try:
        lifecycle.reply_room(net.inputs, net.outputs)
        seen.append("room")
    except MemoryError:
        seen.append("no room")
    keep = None  # then the whole heap again
    gc.collect()
print(json.dumps(seen))
"""


def test_a_model_that_would_leave_no_room_to_answer_does_not_fit(run_mpy, tmp_path):
    # With a model, the service allocates the buffer for its largest reply, in one
    # block (iris6's: a batch of 1,016 rows, 4 KB): the heap in pieces does not do.
    path = tmp_path / "iris6.anne"
    path.write_bytes(blob("iris6"))
    assert run_mpy.json(_ROOM % str(path)) == ["no room", "room"]
