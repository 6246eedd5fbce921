# The serial server: frames in on stdin, one reply frame out per request.
#
#   import anne.server; anne.server.run()      (firmware/main.py does this at boot)
#
# Ctrl-C is turned off while serving, so a 0x03 inside a binary frame is data. A
# 0x03 that arrives between frames and is followed by 50 ms of silence is a person
# pressing Ctrl-C (Thonny, mpremote): the server returns to the REPL.
import gc
import select
import sys

import micropython
from micropython import const

from . import service
from .protocol import framing, mpack

_SYNC0 = const(0xA7)
_CTRL_C = const(3)
_CTRL_C_QUIET_MS = const(50)
_WRITE_CHUNK = const(1024)  # large single USB writes have been seen to lose data


class _Link:
    # The input side keeps buf[0:have] as bytes received but not yet consumed, so
    # a damaged frame's bytes are rescanned for the next sync instead of lost.
    def __init__(self):
        self.inp = sys.stdin.buffer
        self.out = sys.stdout.buffer
        self.poll = select.poll()
        self.poll.register(sys.stdin, select.POLLIN)
        # One buffer for the largest frame, allocated once and reused.
        self.buf = bytearray(framing.MAX_FRAME)
        self.mv = memoryview(self.buf)
        self.have = 0
        self.used = 0  # length of the frame handed out last, dropped on the next call

    def fill(self, n):
        while self.have < n:  # the rp2 port never reads short; the Unix port may
            self.have += self.inp.readinto(self.mv[self.have:n]) or 0

    def drop(self, k):
        rest = self.have - k
        if rest > 0:
            self.mv[0:rest] = self.mv[k:self.have]
        self.have = rest if rest > 0 else 0

    def interrupted(self):
        return not self.poll.poll(_CTRL_C_QUIET_MS)

    def write(self, data):
        mv = memoryview(data)
        for i in range(0, len(mv), _WRITE_CHUNK):
            self.out.write(mv[i:i + _WRITE_CHUNK])


def _next_frame(link, stats):
    """The next good frame's body (a memoryview into the link's buffer), or None
    when a person pressed Ctrl-C. Garbage and damaged frames are counted and skipped."""
    buf, mv = link.buf, link.mv
    link.drop(link.used)
    link.used = 0
    while True:
        if link.have == 0:
            link.fill(1)
            if buf[0] != _SYNC0:
                if buf[0] == _CTRL_C and link.interrupted():
                    return None
                stats["garbage_bytes"] += 1
                link.have = 0
                continue
        link.fill(4)
        n = framing.parse_length(buf)
        if n is not None:
            link.fill(8 + n)
            if framing.body_ok(mv[0:4], mv[4:4 + n], mv[4 + n:8 + n]):
                link.used = 8 + n
                return mv[4:4 + n]
            stats["bad_frames"] += 1
        _skip(link, stats)


def _skip(link, stats):
    # Drop the byte that looked like a start, and everything up to the next sync byte.
    i = 1
    while i < link.have and link.buf[i] != _SYNC0:
        i += 1
    stats["garbage_bytes"] += i
    link.drop(i)


def _reply(link, request_id, fields):
    fields["id"] = request_id
    body = mpack.packb(fields)
    if len(body) > framing.MAX_BODY:
        body = mpack.packb({"id": request_id, "ok": False, "error": "too_big",
                            "message": "reply of %d bytes exceeds %d: ask for less"
                                       % (len(body), framing.MAX_BODY)})
    header, trailer = framing.frame_parts(body)
    link.write(header)
    link.write(body)
    link.write(trailer)


def _handle(svc, body):
    request_id = None
    try:
        req = mpack.unpackb(body, bin_view=True)
        if not isinstance(req, dict):
            raise service.Refused("bad_request", "a request is a msgpack map")
        request_id = req.get("id")
        cmd = req.get("cmd")
        handler = service.COMMANDS.get(cmd) if isinstance(cmd, str) else None
        if handler is None:
            raise service.Refused("unknown_command", "unknown command %r" % (cmd,))
        fields = handler(svc, req)
        fields["ok"] = True
    except service.Refused as e:
        fields = {"ok": False, "error": e.code, "message": e.message}
    except MemoryError:
        gc.collect()
        fields = {"ok": False, "error": "no_memory", "message": "out of memory; free heap %d bytes" % gc.mem_free()}
    except ValueError as e:  # a malformed msgpack body
        fields = {"ok": False, "error": "bad_request", "message": str(e)}
    if not fields["ok"]:
        svc.stats["errors"] += 1
    svc.stats["requests"] += 1
    return request_id, fields


def run():
    link = _Link()
    svc = service.Service()
    micropython.kbd_intr(-1)
    try:
        while svc.running:
            body = _next_frame(link, svc.stats)
            if body is None:
                break
            request_id, fields = _handle(svc, body)
            _reply(link, request_id, fields)
    finally:
        micropython.kbd_intr(_CTRL_C)
