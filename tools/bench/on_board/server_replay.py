# The server's upload path without the serial link, for tools/bench: runs
# inside MicroPython (the Unix port with the Pico's heap), in a folder standing for
# the flash, and prints one JSON line.
#
# Faithful to the server where it matters for the heap: anne.server is imported
# first (its imports, its collection settings), its receive buffer and service are
# built as run() builds them, and the requests reach the service's handlers as the
# server decodes them from frames. Measured:
# - before upload_end: heap free and its largest free block (micropython.mem_info
#   prints "max free sz" in blocks), the room a model's weights need;
# - the load's peak of live heap, as on_board/anne_bench.py measures anne.load:
#   every read of the model file first collects the garbage and notes gc.mem_alloc()
#   (the loader allocates each array just before it reads it), and the heap held
#   once the model is active counts too; both less the heap in use before
#   upload_end. The reads are those of lifecycle's open(), replaced for this job.
import gc
import sys

from anne import server  # first, as the board imports it

import json  # noqa: E402
import struct  # noqa: E402

import micropython  # noqa: E402

from anne import lifecycle, service  # noqa: E402
from anne.protocol import framing, mpack  # noqa: E402
from watched import Watched  # noqa: E402


def _watched_open(path, mode="r"):
    f = open(path, mode)
    return Watched(f) if mode == "rb" else f


def _request(svc, fields):
    # As the server: a frame's body decoded, the handler called, the reply's fields.
    # The host waits for each reply of an upload, so the server is idle before each
    # request and collects then (server._Link.read_first).
    body = memoryview(framing.encode(mpack.packb(fields)))[framing.HEADER_SIZE:-framing.TRAILER_SIZE]
    gc.collect()
    request_id, reply = server._handle(svc, body)
    return reply


def main(spec):
    server._settle_heap()
    link = server._Link()  # noqa: F841 (the receive buffer, held as the server holds it)
    svc = service.Service()
    res = {"block": 4 * struct.calcsize("P")}  # a GC block: 16 B on a Pico, 32 on a 64-bit host
    with open(spec["anne"], "rb") as f:
        size = f.seek(0, 2)
        f.seek(size - 4)
        checksum = struct.unpack("<I", f.read(4))[0]
        f.seek(0)
        _request(svc, {"id": 1, "cmd": "upload_begin", "name": "probe", "size": size,
                       "checksum": checksum})
        for offset in range(0, size, spec["chunk"]):
            _request(svc, {"id": 2, "cmd": "upload_chunk", "offset": offset,
                           "data": f.read(spec["chunk"])})
    gc.collect()
    res["mem_free"] = gc.mem_free()
    micropython.mem_info()  # its "max free sz" line: the host reads it
    before = Watched.peak = gc.mem_alloc()
    lifecycle.open = _watched_open
    reply = _request(svc, {"id": 3, "cmd": "upload_end", "activate": True})
    lifecycle.open = open
    gc.collect()
    res["ok"] = reply["ok"]
    if reply["ok"]:
        res["held"] = gc.mem_alloc() - before
        res["peak"] = max(Watched.peak - before, res["held"])
    else:
        res["refused"] = reply["message"]
    print(json.dumps(res))
    sys.stdout.flush()
