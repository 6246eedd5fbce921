# The serial server: frames in on stdin, one reply frame out per request.
#
#   import anne.server; anne.server.run()      (firmware/main.py does this at boot)
#
# Ctrl-C is turned off while serving, so a 0x03 inside a binary frame is data.
# Between frames, a 0x03 followed by at most 4 of the bytes CR, 0x01 and 0x02 and
# then 50 ms of silence is someone asking for the REPL: a person's Ctrl-C, Thonny's
# Stop (0x03 0x01), mpremote (CR 0x03 CR 0x01). The server returns to the REPL
# and hands it the bytes that followed the 0x03, so that the REPL does what the
# tool asked for: 0x01 enters the raw REPL (PROTOCOL.md, "Leaving the server").
#
# Whatever arrives, the server keeps serving: garbage is skipped, a request it
# cannot read gets a bad_request reply, and every failure of a command -- even a
# firmware bug -- becomes an error reply (PROTOCOL.md, "Error codes").
import gc
import select
import sys

import micropython
from micropython import const

# Importing the firmware leaves garbage (the loader's buffers) between the code it
# keeps. Collecting every KB meanwhile lets what is kept fill those gaps, so
# that the free heap after the imports is one block, the room a model's weights
# need (see _settle_heap): on the virtual Pico, 13 KB more of it in one piece.
if hasattr(gc, "threshold"):  # a MicroPython extension, on by default in its ports
    gc.collect()
    gc.threshold(1024)

from . import kernels, service
from .refused import Refused, is_int
from .protocol import framing, mpack

_SYNC0 = const(0xA7)
_CTRL_C = const(3)
_CTRL_C_QUIET_MS = const(50)
_TAIL_MAX = const(4)
_TAIL = b"\r\x01\x02"  # what tools send after Ctrl-C: Enter, raw REPL, friendly REPL
# Large single USB writes have been reported to lose data (above about 8 KB): a
# write is one frame, at most framing.MAX_FRAME (4,104) bytes.
_GC_EVERY = const(32768)  # bytes allocated between collections (see _settle_heap)


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
        self.first = self.mv[0:1]  # hunting for a sync byte reads here: no slice per byte
        self.have = 0
        self.used = 0  # length of the frame handed out last, dropped on the next call
        self.tail = None  # after a REPL request: the bytes that followed its 0x03

    def fill(self, n):
        while self.have < n:  # the rp2 port never reads short; the Unix port may
            self.have += self.inp.readinto(self.mv[self.have:n]) or 0

    def read_first(self):
        if not self.poll.poll(0):
            # Nothing waiting: collect now, while idle, so that the next request is
            # decoded into a clean heap and what it keeps (a model's name) takes the
            # lowest free blocks, not a place inside the block that a model's weights
            # need. Requests that are already waiting (pipelined batches) go on at once.
            gc.collect()
        while not self.inp.readinto(self.first):
            pass
        self.have = 1

    def drop(self, k):
        rest = self.have - k
        if rest > 0:
            self.mv[0:rest] = self.mv[k:self.have]
        self.have = rest if rest > 0 else 0

    def write(self, data):
        # One frame, written as it is: nothing allocated.
        try:
            self.out.write(data)
        except OSError:
            pass  # the host has gone; it resynchronises when it comes back


def _interrupt(link, stats):
    """After a 0x03 between frames: True when it asks for the REPL (link.tail then holds
    the bytes that followed it). False when more came: the 0x03 and those bytes were
    garbage, and buf[0] holds the first byte that is not, still to be looked at."""
    tail = b""
    while link.poll.poll(_CTRL_C_QUIET_MS):
        link.read_first()
        c = link.buf[0]
        stats["garbage_bytes"] += 1  # the byte read before c (the 0x03 or its tail's last)
        if c == _CTRL_C:
            tail = b""  # Ctrl-C again (Thonny repeats its interrupt): it counts from here
        elif c in _TAIL and len(tail) < _TAIL_MAX:
            tail += bytes((c,))
        else:
            return False
    link.tail = tail
    return True


def _next_frame(link, stats):
    """The next good frame's body (a memoryview into the link's buffer), or None
    when someone asked for the REPL. Garbage and damaged frames are counted and skipped."""
    buf, mv = link.buf, link.mv
    link.drop(link.used)
    link.used = 0
    while True:
        if link.have == 0:
            link.read_first()
            if buf[0] == _CTRL_C and _interrupt(link, stats):
                return None
            if buf[0] != _SYNC0:
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
        # Drop the byte that looked like a start, and everything up to the next sync byte.
        i = 1
        while i < link.have and buf[i] != _SYNC0:
            i += 1
        stats["garbage_bytes"] += i
        link.drop(i)


def _error(code, message, request_id=None):
    # With its id from the start: setting it later may have to grow the dict.
    return {"ok": False, "error": code, "message": message[:service.MAX_MESSAGE], "id": request_id}


def _out_of_memory(what, request_id=None):
    gc.collect()
    return _error("no_memory", "out of memory %s; %d bytes of heap free" % (what, gc.mem_free()),
                  request_id)


def _decode(body):
    """The request map in a frame body. Refused (bad_request) when there is none,
    and when its id is not an int: a reply must not echo an id of any size."""
    try:
        req = mpack.unpackb(body, bin_view=True)
    except ValueError as e:  # not msgpack, or outside the protocol's subset
        raise Refused("bad_request", str(e))
    if not isinstance(req, dict):
        raise Refused("bad_request", "a request is a msgpack map")
    if not is_int(req.get("id")):
        raise Refused("bad_request", "a request needs an int field 'id'")
    return req


def _handle(svc, body):
    """(request id, reply): the reply's fields (a dict), or a complete reply frame
    that the handler built itself (batch)."""
    request_id = None
    try:
        req = _decode(body)
        request_id = req["id"]
        cmd = req.get("cmd")
        if not isinstance(cmd, str):
            raise Refused("bad_request", "field 'cmd' is missing or not a str")
        # A table lookup, never getattr: only the listed commands can be reached, and
        # occasional serves a fixed few more, each from a module of its own.
        reply = service.COMMANDS.get(cmd, service.Service.occasional)(svc, req)
        if isinstance(reply, dict):
            reply["ok"] = True
    except Refused as e:
        reply = _error(e.code, e.message)
    except MemoryError:
        req = None  # let the collector take back what the request built
        reply = _out_of_memory("for this request")
    except Exception as e:  # a firmware bug: answer it and keep serving
        reply = _error("internal", "firmware error %s: %s" % (type(e).__name__, e))
    if isinstance(reply, dict) and not reply["ok"]:
        svc.stats["errors"] += 1
    svc.stats["requests"] += 1
    return request_id, reply


def _frame(fields, buf):
    # The reply encoded between room for the header and for the CRC, so that it
    # leaves as one write once sealed: into ``buf`` (a frame's room), or into a
    # buffer of its own when buf is None or too small.
    p = mpack.Packer(buf, framing.HEADER_SIZE)
    p.pack(fields)
    p.room(framing.TRAILER_SIZE)
    return memoryview(p.buf)[:p.n]


def _reply_frame(request_id, fields, buf):
    try:
        fields["id"] = request_id  # may grow the dict: inside the try
        frame = _frame(fields, buf)
    except MemoryError:
        fields = None  # the collector may take it back
        frame = _frame(_out_of_memory("writing the reply", request_id), buf)
    except (TypeError, ValueError) as e:  # a handler returned what msgpack cannot carry
        frame = _frame(_error("internal", "reply not encodable: %s" % e, request_id), buf)
    n = len(frame) - framing.HEADER_SIZE - framing.TRAILER_SIZE
    if n > framing.MAX_BODY:
        # Small whatever was asked: an int id and a cut message.
        frame = _frame(_error("too_big", "reply of %d bytes exceeds %d: ask for less"
                              % (n, framing.MAX_BODY), request_id), buf)
    return framing.seal(frame)


def _serve_one(link, svc):
    # One request in its own call, so that nothing of it stays referenced while
    # the server waits for the next: heap in use between requests is constant.
    body = _next_frame(link, svc.stats)
    if body is None:
        return False
    request_id, reply = _handle(svc, body)
    if isinstance(reply, dict):
        # The request has been read (replies hold no view of it): its buffer takes the
        # reply, so that answering allocates nothing, unless bytes of the next frame
        # wait behind it.
        reply = _reply_frame(request_id, reply, link.buf if link.have == link.used else None)
    link.write(reply)
    return True


def _settle_heap():
    # A model needs its weights in large contiguous blocks, so the server keeps the
    # high part of the heap in one piece:
    # - The engine imports its kernel when the first model loads, and that model
    #   and its first inference import a little more (fused activations, the batch
    #   loop). Importing them now (still collecting every KB) puts that code low in
    #   the heap instead of between a model's arrays, or nowhere once a large model
    #   has taken the rest.
    # - Collecting after every 32 KB allocated, rather than when the heap is full,
    #   keeps garbage -- and whatever happens to be alive at a collection, such as
    #   the request being served -- in the low part. Without it, on the virtual Pico,
    #   a freshly uploaded 100x160 layer failed to load with 174 KB free, because the
    #   upload_end request sat in the middle of the largest free block.
    kernels.get(kernels.DEFAULT)
    if kernels.DEFAULT == "bfp":
        from . import batch, fast_activations
    if hasattr(gc, "threshold"):  # a MicroPython extension, on by default in its ports
        gc.threshold(_GC_EVERY)
    gc.collect()


def run():
    _settle_heap()
    link = _Link()
    svc = service.Service()
    micropython.kbd_intr(-1)
    try:
        while svc.running:
            try:
                if not _serve_one(link, svc):
                    break
            except MemoryError:
                # Out of heap outside a command, where no reply could be made (reading a
                # frame, writing a reply): that request goes unanswered -- the host times
                # out and repeats it -- but the server stays.
                gc.collect()
    finally:
        svc.close()
        micropython.kbd_intr(_CTRL_C)
    if link.tail is not None:
        link.write(b"\r\nANNE server stopped (Ctrl-C): anne.models(), anne.load(name); "
                   b"anne.server.run() serves again\r\n")
        # Needed once, when the server leaves: not held while serving.
        from . import handback

        handback.hand_back(link.tail)
