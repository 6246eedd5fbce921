#!/usr/bin/env python3
"""Fuzz an ANNE board's serial server, and prove after every burst that it survived.

    python tools/fuzz.py --cases 100000                 # a private virtual Pico
    python tools/fuzz.py --port /dev/ttyACM0 --cases 20000 --json

Cases come in bursts of one category (see CATEGORIES): random bytes, frames with
flipped bits, truncated frames, frames whose length field lies (up to the maximum),
bodies that are not msgpack or not a map, bad ids, unknown commands, fields missing,
extra or of the wrong type, hostile model names, wrong samples, out-of-order upload
chunks, and valid requests between noise. After each burst the board must answer
hello, keep its active model (same checksum), have the same heap in use (within
HEAP_TOLERANCE), and must have answered every request it could read with exactly
the reply predicted: ok, or an error with a stable code (PROTOCOL.md).

How the fuzzer knows which frames the board must answer: every byte sent is also
fed to the host's frame decoder (protocol/framing.py), the reference of the reader
the board runs. The frames it finds are the frames the board must answer, in order;
every other byte is garbage that the board must count (``garbage_bytes`` in
``stats`` must equal the decoder's count). When the decoder is left inside a frame
(a lying length), the fuzzer sends the resynchronisation filler (client.FILLER).

Ctrl-C: a 0x03 between frames followed by 50 ms of silence is a person asking for
the REPL, and the server leaves. That is the protocol working, not a fault, so the
fuzzer never provokes it: every write ends with a complete frame, so a 0x03 in
garbage is always followed at once by more bytes. A server that leaves anyway is
restarted through the client's recovery and counted in ``restarts`` (expected: 0).
tests/robustness/test_recovery.py shows the client recovering from a real one.

Exit status: 0 when every check passed, 1 when one failed, 2 for bad arguments.
"""

import argparse
import collections
import datetime
import hashlib
import json
import random
import struct
import sys
import time
import zlib
from pathlib import Path

from anne_host import model_doc
from anne_host.client import FILLER, Client
from anne_host.protocol import commands, framing, mpack
from anne_host.protocol.decoder import Decoder

MODELS = Path(__file__).resolve().parents[1] / "models"
# Every error code of PROTOCOL.md; "internal" (a firmware bug) is deliberately absent.
STABLE_CODES = frozenset((
    "bad_request", "unknown_command", "bad_name", "no_model", "bad_model", "bad_checksum",
    "no_upload", "bad_offset", "too_long", "incomplete", "no_space", "flash_error",
    "no_memory", "bad_input", "too_big", "no_training", "cannot_train", "diverged",
    "bad_config", "no_config", "no_monitor", "no_sensor", "no_data", "bad_data"))
# Heap in use after a burst (measured by stats after gc.collect()) may differ from
# its level after the warm-up (one burst of every category: a command used for the
# first time may import a module or build a table once, which is not a leak) by this much. The collector is exact for the heap but scans the C stack
# conservatively: a stale pointer there can keep a few dead blocks alive until the
# next request overwrites it (a few 32-byte blocks on the 64-bit Unix port; 0 bytes
# after the warm-up were measured over 100,000 cases). A leak of one block per request
# exceeds this within one burst of 250, and the deltas are taken from one level for
# the whole run, so any leak keeps growing past it.
HEAP_TOLERANCE = 1024
WINDOW = 16  # requests in flight: their replies fit the link's buffers
REPLY_WAIT = 10.0  # s before the board counts as silent
MAX_FAILURES = 20  # the run stops after this many: the first ones tell the story
_COMMANDS = commands.NAMES  # the protocol's list (protocol/commands.py)
# Commands the fuzzer never sends, and why; every other command must be sent by some
# category (commands_sent checks it before a run), so a new command cannot be missed.
UNSENT = {"exit": "it ends the server: nothing after its reply would be answered",
          "reset": "it zeroes the counts that the checks after each burst compare"}

Expect = collections.namedtuple("Expect", "id code keep")
STRAY = Expect(None, None, False)  # a frame no case built (a CRC collision): any stable reply
Case = collections.namedtuple("Case", "data expects")  # expects: [(body, Expect)]


# -- random values ---------------------------------------------------------------

def rand_text(rng, n=None):
    n = rng.randint(0, 24) if n is None else n
    alphabet = "abcXYZ019_-./\\:~ \t\n\x00é€😀"
    return "".join(rng.choice(alphabet) for _ in range(n))


def rand_scalar(rng):
    kind = rng.randrange(7)
    if kind == 0:
        return None
    if kind == 1:
        return rng.random() < 0.5
    if kind == 2:
        return rng.choice((0, -1, 127, 128, -33, 2**31, -2**63, 2**64 - 1, rng.randint(-2**40, 2**40)))
    if kind == 3:
        return rng.choice((0.5, -1e300, float("nan"), float("inf"), rng.uniform(-1e6, 1e6)))
    if kind == 4:
        return rand_text(rng)
    if kind == 5:
        return rng.randbytes(rng.randint(0, 24))
    return rand_text(rng, rng.randint(200, 900))  # long text: replies must stay small


def rand_value(rng, depth=0):
    if depth < 3 and rng.random() < 0.3:
        if rng.random() < 0.5:
            return [rand_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
        return {rand_key(rng): rand_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    return rand_scalar(rng)


def rand_key(rng):
    return rng.randint(-5, 99) if rng.random() < 0.2 else "x_" + rand_text(rng, rng.randint(0, 8))


def wrong(rng, kind):
    """A value of any type but ``kind`` ("int", "str", "bin" or "map")."""
    while True:
        v = rand_value(rng)
        if kind == "int" and (type(v) is int):
            continue
        if kind == "str" and isinstance(v, str):
            continue
        if kind == "bin" and isinstance(v, bytes):
            continue
        if kind == "map" and isinstance(v, dict):
            continue
        return v


def f32(values):
    return struct.pack("<%df" % len(values), *values)


# -- cases -----------------------------------------------------------------------

class Gen:
    """Builds the cases; knows the board's model and its open upload, so that it
    can predict each reply."""

    def __init__(self, rng, model, stored, blob):
        self.rng = rng
        self.inputs = model["inputs"]
        self.outputs = model["outputs"]
        self.active = model["name"]
        self.stored = set(stored)
        self.blob = blob  # a valid model file, the raw material of bad uploads
        self.next_id = 1 << 20
        self.up = None  # the open upload: {"size", "received", "data", "code"}

    def new_id(self):
        self.next_id += 1
        return self.next_id

    def request(self, fields, code, with_id=True, keep=False):
        """A Case for one request map: its frame and the reply it must get."""
        request_id = self.new_id() if with_id else None
        if with_id:
            fields = dict(fields, id=request_id)
        return self.raw(mpack.packb(fields), Expect(request_id, code, keep))

    def raw(self, body, expect):
        if len(body) > framing.MAX_BODY:
            return None  # drawn too large for one frame: the runner draws again
        return Case(framing.encode(body), [(body, expect)])

    def harmless(self):
        """A valid request that changes nothing, and its "ok"."""
        rng = self.rng
        kind = rng.randrange(6)
        if kind < 4:
            fields = {"cmd": ("hello", "model", "list", "stats")[kind]}
            if kind == 2 and rng.random() < 0.5:  # a page of the listing, from any name on
                fields["after"] = rand_text(rng, rng.randint(0, 8))
            return fields
        if kind == 4:
            return {"cmd": "infer", "x": f32([rng.gauss(0, 3) for _ in range(self.inputs)])}
        rows = rng.randint(1, 8)
        return {"cmd": "batch", "x": f32([rng.gauss(0, 3) for _ in range(rows * self.inputs)])}

    def harmless_frame(self):
        fields = dict(self.harmless(), id=self.new_id())
        return framing.encode(mpack.packb(fields))

    def absent_name(self):
        while True:
            name = "fz-%06x" % self.rng.getrandbits(24)
            if name not in self.stored:
                return name


# Wire cases: bytes that are not a frame the board can read. No reply is due.

def case_noise(g):
    rng = g.rng
    n = rng.randint(1, 200)
    if rng.random() < 0.5:
        data = rng.randbytes(n)
    else:  # many sync bytes, small lengths and Ctrl-C: fake headers everywhere
        data = bytes(rng.choice(b"\xa7\x4e\x00\x03\x10\x01\xff") for _ in range(n))
    return Case(data, [])


def case_flipped(g):
    frame = bytearray(g.harmless_frame())
    # Distinct bits (a bit flipped twice is no error); CRC-32 catches any 1 to 3 here.
    for bit in g.rng.sample(range(8 * len(frame)), g.rng.randint(1, 3)):
        frame[bit // 8] ^= 1 << (bit % 8)
    return Case(bytes(frame), [])


def case_truncated(g):
    frame = g.harmless_frame()
    return Case(frame[:g.rng.randrange(1, len(frame))], [])


def case_lying_length(g):
    frame = bytearray(g.harmless_frame())
    true_n = len(frame) - 8
    n = true_n
    while n == true_n:
        n = g.rng.choice((g.rng.randint(0, framing.MAX_BODY), g.rng.randint(0, 2 * true_n)))
    frame[2:4] = struct.pack("<H", min(n, framing.MAX_BODY))
    return Case(bytes(frame), [])


def case_max_length(g):
    rng = g.rng
    if rng.random() < 0.5:
        n = framing.MAX_BODY  # the largest length there is: the board waits for 4100 bytes
    else:
        n = rng.randint(framing.MAX_BODY + 1, 0xFFFF)  # not a header at all
    return Case(framing.SYNC + struct.pack("<H", n) + rng.randbytes(rng.randint(0, 64)), [])


# Request cases: frames the board reads, each with its predicted reply.

def case_valid(g):
    fields = g.harmless()
    for _ in range(g.rng.randint(0, 3)):  # fields a command does not know are ignored
        fields[rand_key(g.rng)] = rand_value(g.rng)
    return g.request(fields, "ok")


def case_not_a_map(g):
    value = {}
    while isinstance(value, dict):
        value = rand_value(g.rng)
    return g.raw(mpack.packb(value), Expect(None, "bad_request", False))


_BAD_DOCUMENTS = (b"\xc1", b"\xd4\x00\x00", b"\xc7\x01\x05\x00", b"\x81\xa2id", b"\x92\x01",
                  b"\xa3\xff\xfe\xfd", b"\xdb\xff\xff\xff\xff", b"\xdd\x7f\xff\xff\xff",
                  b"\x81\xc0\x01", b"\x81\x91\x01\x01", b"\x80\x00")


def case_bad_msgpack(g):
    while True:
        body = _bad_body(g)
        code = _bad_body_code(body)
        if code:
            return g.raw(body, Expect(None, code, False))


def _bad_body(g):
    rng = g.rng
    kind = rng.randrange(5)
    if kind == 0:
        body = rng.choice(_BAD_DOCUMENTS)
    elif kind == 1:  # a request cut short
        whole = mpack.packb(dict(g.harmless(), id=1))
        body = whole[:rng.randrange(1, len(whole))]
    elif kind == 2:  # a request with bytes after it
        body = mpack.packb(dict(g.harmless(), id=1)) + rng.randbytes(rng.randint(1, 9))
    elif kind == 3:  # nested deeper than MAX_DEPTH
        depth = rng.randint(mpack.MAX_DEPTH + 1, 200)
        body = b"\x91" * depth + b"\x01"
    else:
        body = rng.randbytes(rng.randint(1, 64))
    return body


def _bad_body_code(body):
    # Decoded with the same codec as the board: anything that is not a map with an
    # int id is refused the same way.
    try:
        req = mpack.unpackb(body)
    except ValueError:
        return "bad_request"
    if isinstance(req, dict) and type(req.get("id")) is int:
        return None  # random bytes that form a request: the caller draws again
    return "bad_request"


def case_bad_id(g):
    rng = g.rng
    fields = g.harmless()
    if rng.random() < 0.3:
        return g.request(fields, "bad_request", with_id=False)  # no id at all
    fields["id"] = wrong(rng, "int")
    return g.raw(mpack.packb(fields), Expect(None, "bad_request", False))


def case_bad_cmd(g):
    rng = g.rng
    kind = rng.randrange(4)
    if kind == 0:
        return g.request({"name": "x"}, "bad_request")  # no cmd
    if kind == 1:
        return g.request({"cmd": wrong(rng, "str")}, "bad_request")
    cmd = rng.choice(("Hello", "hello ", "_load", "_activate", "__init__", "stats_", "upload",
                      "COMMANDS", "exit\x00", "", "running", "__class__", "net"))
    if kind == 3:
        cmd = rand_text(rng, rng.choice((1, 8, 300, 900)))
    if cmd in _COMMANDS:
        cmd += "?"
    return g.request({"cmd": cmd}, "unknown_command")


def case_bad_fields(g):
    return g.rng.choice((_bad_upload_begin, _bad_name_field, _bad_infer, _bad_batch, _bad_bench,
                         _no_upload, _bad_list))(g)


def _bad_list(g):
    return g.request({"cmd": "list", "after": wrong(g.rng, "str")}, "bad_request")


def _mutate(rng, fields, key, kind):
    """Drop ``key`` or give it a value of another type."""
    if rng.random() < 0.3:
        del fields[key]
    else:
        fields[key] = wrong(rng, kind)
    return fields


def _bad_upload_begin(g):
    rng = g.rng
    fields = {"cmd": "upload_begin", "name": g.absent_name(), "size": 500, "checksum": 7}
    kind = rng.randrange(6)
    if kind < 3:
        key, type_ = (("name", "str"), ("size", "int"), ("checksum", "int"))[kind]
        return g.request(_mutate(rng, fields, key, type_), "bad_request")
    if kind == 3:
        fields["size"] = rng.choice((-2**63, -1, 0, 33))
    elif kind == 4:
        fields["checksum"] = rng.choice((-1, 2**32, 2**64 - 1))
    else:
        fields["size"] = rng.choice((2**40, 2**64 - 1))
        return g.request(fields, "no_space")
    return g.request(fields, "bad_request")


def _bad_name_field(g):
    fields = {"cmd": g.rng.choice(("select", "delete")), "name": g.active}
    return g.request(_mutate(g.rng, fields, "name", "str"), "bad_request")


def _bad_infer(g):
    rng = g.rng
    fields = {"cmd": "infer"}
    if rng.random() < 0.5:
        return g.request(_mutate(rng, fields | {"x": b""}, "x", "bin"), "bad_request")
    fields["x"] = rng.randbytes(_wrong_length(rng, 4 * g.inputs))
    return g.request(fields, "bad_input")


def _wrong_length(rng, right):
    n = right
    while n == right:
        n = rng.randint(0, 2 * right + 8)
    return n


def _bad_batch(g):
    rng = g.rng
    row = 4 * g.inputs
    kind = rng.randrange(3)
    if kind == 0:
        return g.request(_mutate(rng, {"cmd": "batch", "x": b""}, "x", "bin"), "bad_request")
    most = (4096 - 48) // (4 * g.outputs + 5)  # rows whose reply still fits a frame
    if kind == 1 and (most + 1) * row < 4000:
        return g.request({"cmd": "batch", "x": bytes((most + 1) * row)}, "too_big")
    n = 0 if rng.random() < 0.2 else rng.randint(1, 20) * row + rng.randint(1, row - 1)
    return g.request({"cmd": "batch", "x": bytes(n)}, "bad_input")


def _bad_bench(g):
    rng = g.rng
    kind = rng.randrange(3)
    if kind == 0:
        repeat = rng.choice((0, -1, 100001, 2**64 - 1, wrong(rng, "int")))
        return g.request({"cmd": "bench", "repeat": repeat}, "bad_request")
    if kind == 1:
        return g.request({"cmd": "bench", "repeat": 1, "x": wrong(rng, "bin")}, "bad_request")
    x = rng.randbytes(_wrong_length(rng, 4 * g.inputs))
    return g.request({"cmd": "bench", "repeat": 1, "x": x}, "bad_input")


def _no_upload(g):
    fields = {"cmd": g.rng.choice(("upload_chunk", "upload_end")), "offset": 0, "data": b"x"}
    return g.request(fields, "no_upload")


_HOSTILE_NAMES = ("", ".", "..", "../x", "../../lib/anne/server", "a/b", "/models/x", "\\x",
                  "a\\b", ".hidden", ".upload", ".active", "x" * 33, "é", "a b", "a\x00b",
                  "con:", "*", "~", "$HOME", "%s%s", "\n", "models/x", "lib/anne/service",
                  "main.py/", "a;rm -rf /", "\U0001f600", "A" * 4000)


def case_bad_names(g):
    rng = g.rng
    cmd = rng.choice(("select", "delete", "upload_begin"))
    if cmd != "upload_begin" and rng.random() < 0.2:
        return g.request({"cmd": cmd, "name": g.absent_name()}, "no_model")
    if rng.random() < 0.6:
        name = rng.choice(_HOSTILE_NAMES)
    else:  # a good name spoilt by one character that makes it a path or hides it
        name = g.absent_name()
        i = rng.randrange(len(name) + 1)
        name = name[:i] + rng.choice("/\\.:\x00 é") + name[i:]
        if name[0] != "." and all(c.isalnum() and c.isascii() or c in "_-." for c in name):
            name = "." + name  # the spoiler was a harmless '.' inside: hide it instead
    fields = {"cmd": cmd, "name": name, "size": 500, "checksum": 7}
    return g.request(fields, "bad_name")


_SPECIAL = (float("nan"), float("inf"), float("-inf"), 3.4e38, -3.4e38, 1e-45, 0.0, -0.0, 1e30)


def case_bad_inputs(g):
    rng = g.rng
    n = g.inputs
    kind = rng.randrange(4)
    if kind == 0:
        return g.request({"cmd": "infer", "x": rng.randbytes(_wrong_length(rng, 4 * n))}, "bad_input")
    if kind == 1:  # non-finite and absurd values: computed, never a crash
        x = [rng.choice(_SPECIAL) if rng.random() < 0.7 else rng.gauss(0, 1e6) for _ in range(n)]
        return g.request({"cmd": "infer", "x": f32(x)}, "ok")
    if kind == 2:
        rows = rng.randint(1, 6)
        x = [rng.choice(_SPECIAL) for _ in range(rows * n)]
        return g.request({"cmd": "batch", "x": f32(x)}, "ok")
    return g.request({"cmd": "batch", "x": rng.randbytes(rng.randint(1, 20) * 4 * n + rng.randint(1, 4 * n - 1))},
                     "bad_input")


# Training and pulling. No case opens a training session (one would change the
# active model), so every step, evaluation and end finds none; train_begin is
# refused on its fields or for a model that is not stored, and pull only reads.

def case_training(g):
    rng = g.rng
    kind = rng.randrange(7)
    if kind == 0:
        cmd = rng.choice(("train_step", "train_eval"))
        fields = {"cmd": cmd, "x": f32([1.0] * g.inputs), "y": f32([0.0] * g.outputs)}
        if rng.random() < 0.5:
            return g.request(_mutate(rng, fields, rng.choice(("x", "y")), "bin"), "bad_request")
        return g.request(fields, "no_training")
    if kind == 1:
        if rng.random() < 0.5:
            return g.request({"cmd": "train_end", "save": _not_bool(rng)}, "bad_request")
        return g.request({"cmd": "train_end", "save": rng.random() < 0.5}, "no_training")
    if kind < 5:
        fields = {"cmd": "train_begin", "name": g.absent_name(), "batch": 4, "lr": 0.1}
        if kind == 2:
            return g.request(fields, "no_model")
        if kind == 3:
            key = rng.choice(("batch", "lr", "optimizer", "momentum", "name"))
            fields[key] = {"batch": rng.choice((0, -1, 1025, 2**40)), "lr": rng.choice((0.0, -1.0, float("nan"))),
                           "optimizer": rng.choice(("", "SGD", "rmsprop")),
                           "momentum": rng.choice((1.0, -0.5, float("inf"))), "name": wrong(rng, "str")}[key]
            return g.request(fields, "bad_request")
        fields["sizes"] = rng.choice(([4], [4, 3], "4-3", [4, "3"]))
        fields["activations"] = rng.choice(([], ["relu", "softmax"], None))
        return g.request(fields, "bad_request")
    if kind == 5:
        fields = {"cmd": "pull", "name": g.absent_name(), "offset": 0}
        if rng.random() < 0.5:
            return g.request(_mutate(rng, fields, "offset", "int"), "bad_request")
        return g.request(fields, "no_model")
    if rng.random() < 0.5:
        return g.request({"cmd": "pull", "name": g.active, "offset": 0}, "ok")
    return g.request({"cmd": "pull", "name": g.active, "offset": 10**9}, "bad_offset")


# Uploads out of order: a small state machine predicts each reply.

def case_upload_order(g):
    if g.up is None:
        kind = g.rng.randrange(4)
        if kind == 0:
            return g.request({"cmd": "upload_chunk", "offset": 0, "data": b"\x00"}, "no_upload")
        if kind == 1:
            return g.request({"cmd": "upload_end", "activate": False}, "no_upload")
        return _begin(g)
    # Mostly good chunks, so that many uploads complete and reach upload_end's checks.
    return g.rng.choice((_chunk,) * 9 + (_wrong_chunk, _wrong_chunk, _end, _begin))(g)


def _bad_upload(g):
    """(file bytes, announced checksum, code upload_end must give): never a model
    that could be stored."""
    rng = g.rng
    blob = bytearray(g.blob)
    meta_len = struct.unpack_from("<H", blob, 10)[0]
    layer = 12 + meta_len  # the first layer record
    kind = rng.randrange(7)
    if kind == 0:
        data = rng.randbytes(rng.randint(34, 1500))
        return data, zlib.crc32(data[:-4]), "bad_model"
    if kind == 1:  # a good file, announced with another checksum
        return bytes(blob), zlib.crc32(blob[:-4]) ^ (1 + rng.getrandbits(31)), "bad_checksum"
    if kind == 2:  # one damaged byte: its CRC no longer matches
        blob[rng.randrange(len(blob) - 4)] ^= 1 << rng.randrange(8)
        return bytes(blob), zlib.crc32(blob[:-4]), "bad_model"
    if kind == 3:
        cut = rng.randint(34, len(blob) - 1)
        return bytes(blob[:cut]), zlib.crc32(blob[:cut - 4]), "bad_model"
    # Consistent CRC, inconsistent content: NaN weight, version, activation, shape.
    if kind == 4:
        struct.pack_into("<f", blob, layer + 18, rng.choice((float("nan"), float("inf"))))
    elif kind == 5:
        blob[4] = rng.choice((0, 2, 255))
    else:
        struct.pack_into("<BBH", blob, layer, 0, rng.choice((22, 99, 255)), g.inputs)
        if rng.random() < 0.5:
            struct.pack_into("<BBH", blob, layer, 0, 0, g.inputs + 1)  # a wrong shape
    struct.pack_into("<I", blob, len(blob) - 4, zlib.crc32(blob[:-4]))
    return bytes(blob), zlib.crc32(blob[:-4]), "bad_model"


def _begin(g):
    data, checksum, code = _bad_upload(g)
    # Also under the active model's name: a failed upload must leave it as it is.
    name = g.rng.choice((g.active, g.absent_name()))
    g.up = {"size": len(data), "received": 0, "data": data, "code": code}
    return g.request({"cmd": "upload_begin", "name": name, "size": len(data), "checksum": checksum}, "ok")


def _chunk(g):
    up = g.up
    left = up["size"] - up["received"]
    if left == 0:
        return _end(g)
    n = g.rng.randint(1, min(left, 1024))
    data = up["data"][up["received"]:up["received"] + n]
    fields = {"cmd": "upload_chunk", "offset": up["received"], "data": data}
    up["received"] += n
    return g.request(fields, "ok")


def _wrong_chunk(g):
    rng = g.rng
    up = g.up
    fields = {"cmd": "upload_chunk", "offset": up["received"], "data": b"\x00"}
    kind = rng.randrange(4)
    if kind == 0:
        fields["offset"] = rng.choice((up["received"] + rng.randint(1, 999), up["received"] - 1, -1, 2**64 - 1))
        if fields["offset"] == up["received"] - 1 and up["received"] == 0:
            fields["offset"] = -5
        return g.request(fields, "bad_offset")
    if kind == 1:
        fields["data"] = bytes(up["size"] - up["received"] + rng.randint(1, 64))
        return g.request(fields, "too_long")
    if kind == 2:
        return g.request(_mutate(rng, fields, "offset", "int"), "bad_request")
    return g.request(_mutate(rng, fields, "data", "bin"), "bad_request")


def _end(g, wrong_activate=0.1):
    up = g.up
    if g.rng.random() < wrong_activate:  # refused, and the upload stays open
        return g.request({"cmd": "upload_end", "activate": _not_bool(g.rng)}, "bad_request")
    g.up = None
    code = up["code"] if up["received"] == up["size"] else "incomplete"
    return g.request({"cmd": "upload_end", "activate": g.rng.random() < 0.5}, code)


def _not_bool(rng):
    v = True
    while v is True or v is False:
        v = rand_value(rng)
    return v


def close_upload(g):
    """The case that leaves no upload open at the end of a burst, or None."""
    return None if g.up is None else _end(g, wrong_activate=0)


def case_noise_between(g):
    rng = g.rng
    noise = bytes(rng.choice([b for b in range(256) if b != 0xA7]) for _ in range(rng.randint(1, 64)))
    case = g.request(g.harmless(), "ok")
    return Case(noise + case.data, case.expects)


_DAMAGE = (case_noise, case_flipped, case_truncated, case_lying_length, case_max_length)


def case_damage_then_request(g):
    """A damaged frame or noise, then at once a valid request. The request may be
    swallowed by a candidate frame that claims its bytes; the board must find it
    again when that candidate fails, as the reference decoder does."""
    damage = g.rng.choice(_DAMAGE)(g)
    case = g.request(g.harmless(), "ok")
    return Case(damage.data + case.data, case.expects)


# A look inside and monitoring. No case opens a monitor session (one would change the
# active model), so feeding, reading and stopping find none; configurations are refused
# on their fields or for a model that is not stored; trace and events only read.

def case_monitoring(g):
    rng = g.rng
    kind = rng.randrange(7)
    if kind == 0:
        cmd = rng.choice(("monitor_feed", "monitor_read", "monitor_stop"))
        fields = {"cmd": cmd, "x": f32([0.5] * 4), "start_ms": rng.randint(0, 10**6)}
        if cmd == "monitor_feed" and rng.random() < 0.5:
            key = rng.choice(("x", "start_ms"))
            return g.request(_mutate(rng, fields, key, "bin" if key == "x" else "int"), "bad_request")
        return g.request(fields, "no_monitor")
    if kind == 1:
        fields = {"cmd": rng.choice(("monitor_config", "monitor_start")), "config": {"model": g.absent_name(),
                  "inputs": [{"adc": 4}]}}
        return g.request(fields, "no_model")
    if kind == 2:
        cmd = rng.choice(("monitor_config", "monitor_start"))
        fields = {"cmd": cmd, "config": wrong(rng, "map")} if cmd == "monitor_config" else \
            {"cmd": cmd, "replay": _not_bool(rng)}
        return g.request(fields, "bad_request")
    if kind == 3:
        config = rng.choice(({}, {"model": 7}, {"inputs": []}))
        return g.request({"cmd": rng.choice(("monitor_config", "monitor_start")), "config": config}, "bad_config")
    if kind == 4:
        if rng.random() < 0.5:
            return g.request({"cmd": "events", "before": rng.choice((0, -3, "7", 1.5))}, "bad_request")
        return g.request({"cmd": "events"}, "ok")
    if kind == 5:
        return g.request({"cmd": "trace", "x": f32([rng.choice(_SPECIAL) for _ in range(g.inputs)])}, "ok")
    return g.request({"cmd": "trace", "x": rng.randbytes(4 * g.inputs + rng.choice((-4, -1, 1, 4)))},
                     "bad_input")


# Data sets stored on the board. No case opens a data upload or a training session
# (the model upload category has its own state machine; a session would change the
# active model), so chunks and ends find no upload, epochs and evaluations no session;
# data_begin is refused on its fields, data_delete for a name not stored, and
# data_list only reads.

def case_data_sets(g):
    rng = g.rng
    kind = rng.randrange(6)
    if kind == 0:
        if rng.random() < 0.5:
            fields = {"cmd": "data_chunk", "offset": 0, "data": b"\x00"}
            if rng.random() < 0.5:
                key = rng.choice(("offset", "data"))
                return g.request(_mutate(rng, fields, key, "int" if key == "offset" else "bin"), "bad_request")
            return g.request(fields, "no_upload")
        return g.request({"cmd": "data_end"}, "no_upload")
    if kind == 1:
        fields = {"cmd": "data_begin", "name": g.absent_name(), "size": 100, "checksum": 0}
        key = rng.choice(("size", "checksum", "name"))
        if key == "name":
            fields["name"] = rng.choice(("", ".hidden", "a/b", "x" * 33, "bad name"))
            return g.request(fields, "bad_name")
        fields[key] = {"size": rng.choice((0, 27, -1, "100", None)),
                       "checksum": rng.choice((-1, 2**32, 1.5, "0"))}[key]
        return g.request(fields, "bad_request")
    if kind == 2:
        if rng.random() < 0.5:
            return g.request({"cmd": "data_list", "after": wrong(rng, "str")}, "bad_request")
        return g.request({"cmd": "data_list", "after": rand_text(rng, rng.randint(0, 8))}, "ok")
    if kind == 3:
        if rng.random() < 0.5:
            return g.request({"cmd": "data_delete", "name": rng.choice(("../x", "", ".x"))}, "bad_name")
        return g.request({"cmd": "data_delete", "name": g.absent_name()}, "no_data")
    cmd = rng.choice(("data_train", "data_eval"))
    fields = {"cmd": cmd, "name": g.absent_name()}
    if kind == 4:
        return g.request(fields, "no_training")
    if cmd == "data_train" and rng.random() < 0.5:
        key = rng.choice(("epoch", "shuffle"))
        fields[key] = rng.choice(((0, -2, "1", 1.5) if key == "epoch" else ("1", 1.5, True, [3])))
        return g.request(fields, "bad_request")
    return g.request(_mutate(rng, fields, "name", "str"), "bad_request")


# name -> (wire or request, maker)
CATEGORIES = {
    "noise": ("wire", case_noise),
    "flipped_bits": ("wire", case_flipped),
    "truncated": ("wire", case_truncated),
    "lying_length": ("wire", case_lying_length),
    "max_length": ("wire", case_max_length),
    "valid_extra_fields": ("request", case_valid),
    "not_a_map": ("request", case_not_a_map),
    "bad_msgpack": ("request", case_bad_msgpack),
    "bad_id": ("request", case_bad_id),
    "bad_cmd": ("request", case_bad_cmd),
    "bad_fields": ("request", case_bad_fields),
    "bad_names": ("request", case_bad_names),
    "bad_inputs": ("request", case_bad_inputs),
    "upload_order": ("request", case_upload_order),
    "training": ("request", case_training),
    "monitoring": ("request", case_monitoring),
    "data_sets": ("request", case_data_sets),
    "noise_between": ("request", case_noise_between),
    "damage_then_request": ("request", case_damage_then_request),
}


# -- the line ----------------------------------------------------------------------

class Silent(Exception):
    """The board did not answer frames it had been sent in full."""


class Wire:
    """Bytes to the board and replies back. ``board`` is the reference decoder fed
    with everything sent: the frames it finds are the replies that are due."""

    def __init__(self, transport):
        self.transport = transport
        self.board = Decoder()
        self.replies = Decoder()
        self.expected = {}  # frame body -> deque of Expect, for frames not yet found
        self.due = collections.deque()  # Expect of each frame the board has in full
        self.out = []  # bytes not written yet
        self.frames = 0  # frames the board must have read, in all

    def send(self, case):
        for body, expect in case.expects:
            self.expected.setdefault(body, collections.deque()).append(expect)
        self.out.append(case.data)
        self.board.feed(case.data)
        for body in self.board.frames():
            self.frames += 1
            waiting = self.expected.get(body)
            self.due.append(waiting.popleft() if waiting else STRAY)
            if waiting is not None and not waiting:
                del self.expected[body]

    def inside_frame(self):
        """True when the board's reader waits for the rest of a frame."""
        return self.board.buffered > 0

    def flush(self):
        # One write per flush, always ending with a complete frame or the filler:
        # the line is never silent right after garbage (see the module docstring).
        if self.out:
            self.transport.write(b"".join(self.out))
            self.out = []

    def collect(self, keep=0):
        """(Expect, reply) for the oldest due replies, until ``keep`` remain due."""
        self.flush()
        got = []
        end = time.monotonic() + REPLY_WAIT
        while len(self.due) > keep:
            if time.monotonic() > end:
                raise Silent("no reply to %d frames in %.0f s" % (len(self.due), REPLY_WAIT))
            self.replies.feed(self.transport.read())
            for body in self.replies.frames():
                got.append((self.due.popleft() if self.due else STRAY, _decode_reply(body)))
        return got


def _decode_reply(body):
    try:
        reply = mpack.unpackb(body)
    except ValueError:
        return None
    return reply if isinstance(reply, dict) else None


def check_reply(expect, reply):
    """What is wrong with ``reply`` as the answer to ``expect``, or None."""
    if reply is None:
        return "a reply that is not a msgpack map"
    code = "ok" if reply.get("ok") is True else reply.get("error")
    if expect is STRAY:
        return None if code == "ok" or code in STABLE_CODES else "unstable code %r" % code
    if reply.get("id") != expect.id:
        return "reply id %r, expected %r" % (reply.get("id"), expect.id)
    if code != expect.code:
        return "got %r (%s), expected %r" % (code, reply.get("message"), expect.code)
    if code != "ok" and not isinstance(reply.get("message"), str):
        return "error %r without a message" % code
    return None


# -- the fuzzer --------------------------------------------------------------------

class Tally:
    """The counts of one category."""

    def __init__(self, kind):
        self.kind = kind
        self.cases = self.bytes = self.frames = self.replies = self.resyncs = 0
        self.garbage = self.garbage_predicted = self.bad_frames = 0
        self.codes = collections.Counter()

    def as_dict(self):
        return {"kind": self.kind, "cases": self.cases, "bytes": self.bytes, "frames": self.frames,
                "replies": self.replies, "codes": dict(sorted(self.codes.items())),
                "resyncs": self.resyncs, "garbage_bytes": self.garbage,
                "garbage_bytes_predicted": self.garbage_predicted, "bad_frames": self.bad_frames}


class Fuzzer:
    def __init__(self, client, gen, burst):
        self.client = client
        self.gen = gen
        self.burst_size = burst
        self.tallies = {name: Tally(kind) for name, (kind, _) in CATEGORIES.items()}
        self.failures = []
        self.bursts = 0
        self.restarts = 0
        self.heap_deltas = []
        self.wire = Wire(client.transport)
        self.baseline = None  # (stats reply, frames, garbage predicted) after the last check

    def fail(self, category, message):
        self.failures.append("%s: %s" % (category, message))

    def run(self, cases):
        self.baseline = self.check("start")
        self.heap_start = self.heap_level = self.baseline[0]["mem_alloc"]
        names = list(CATEGORIES)
        done = 0
        while done < cases and len(self.failures) < MAX_FAILURES:
            name = names[self.bursts % len(names)]
            n = min(self.burst_size, cases - done)
            self.burst(name, n)
            done += n
            self.bursts += 1
            if self.bursts == len(names):  # warmed up: the level every later burst keeps
                self.heap_level = self.baseline[0]["mem_alloc"]

    def burst(self, name, n):
        kind, make = CATEGORIES[name]
        tally = self.tallies[name]
        try:
            for _ in range(n):
                self.send(tally, _draw(make, self.gen))
                if kind == "request" and len(self.wire.due) >= WINDOW:
                    self.answered(name, self.wire.collect(WINDOW // 2))
            closing = close_upload(self.gen)
            if closing:
                self.send(tally, closing, count=False)
            if self.wire.inside_frame():
                self.send(tally, Case(FILLER, []), count=False)
                tally.resyncs += 1
            self.answered(name, self.wire.collect())
            if self.wire.expected:
                lost = sum(len(q) for q in self.wire.expected.values())
                raise Silent("%d frames sent were never found by the reference decoder" % lost)
        except Silent as e:
            self.fail(name, str(e))
            self.recover()
            return
        self.after(name, tally)

    def send(self, tally, case, count=True):
        tally.cases += count
        tally.bytes += len(case.data)
        before = self.wire.frames
        self.wire.send(case)
        tally.frames += self.wire.frames - before

    def answered(self, name, got):
        tally = self.tallies[name]
        for expect, reply in got:
            tally.replies += 1
            if reply is not None:
                tally.codes["ok" if reply.get("ok") is True else reply.get("error")] += 1
            problem = check_reply(expect, reply)
            if problem:
                self.fail(name, problem)

    def after(self, name, tally):
        """The checks after a burst: hello, the model, the heap, the board's counts."""
        previous = self.baseline
        try:
            self.baseline = self.check(name)
        except Silent as e:
            self.fail(name, "after the burst: %s" % e)
            self.recover()
            return
        stats, frames, dropped = self.baseline
        old_stats, old_frames, old_dropped = previous
        garbage = stats["garbage_bytes"] - old_stats["garbage_bytes"]
        tally.garbage += garbage
        tally.garbage_predicted += dropped - old_dropped
        if garbage != dropped - old_dropped:
            self.fail(name, "the board skipped %d garbage bytes, the reference decoder %d"
                      % (garbage, dropped - old_dropped))
        tally.bad_frames += stats["bad_frames"] - old_stats["bad_frames"]
        if stats["requests"] - old_stats["requests"] != frames - old_frames:
            self.fail(name, "the board read %d requests, the reference decoder found %d"
                      % (stats["requests"] - old_stats["requests"], frames - old_frames))
        if self.bursts < len(CATEGORIES):
            return  # warming up
        delta = stats["mem_alloc"] - self.heap_level
        self.heap_deltas.append(delta)
        if abs(delta) > HEAP_TOLERANCE:
            self.fail(name, "heap in use %+d bytes since the warm-up" % delta)

    def check(self, name):
        """hello (same model?) and stats: (stats reply, frames sent, bytes dropped)."""
        hello = self.gen.request({"cmd": "hello"}, "ok", keep=True)
        stats = self.gen.request({"cmd": "stats"}, "ok", keep=True)
        self.wire.send(hello)
        frames, dropped = self.wire.frames, self.wire.board.dropped
        self.wire.send(stats)
        got = self.wire.collect()
        replies = [reply for expect, reply in got if expect.keep]
        if len(replies) != 2 or any(check_reply(e, r) for e, r in got):
            raise Silent("hello and stats were not answered as expected: %r" % (got,))
        info = replies[0]
        if (info["active"], info["checksum"]) != (self.gen.active, self.model_checksum):
            self.fail(name, "active model is now %s (checksum %s)" % (info["active"], info["checksum"]))
        return replies[1], frames, dropped

    def recover(self):
        """The client's recovery (filler, hello, else a server restart); then the
        counts start again from the board's new state."""
        info = self.client.resync()
        if info is None:
            info = self.client.restart_server()
            self.restarts += 1
        if info is None:
            raise SystemExit("fuzz: the board does not answer any more: stopped")
        self.wire = Wire(self.client.transport)
        self.gen.up = None
        self.baseline = self.check("recovery")


def commands_sent(cases_per_category=400, seed=0):
    """The commands the categories send (a dry run of the generators, no board)."""
    gen = Gen(random.Random(seed), {"inputs": 4, "outputs": 3, "name": "m"}, ["m"], _blob())
    sent = set()
    for _, make in CATEGORIES.values():
        for _ in range(cases_per_category):
            for body, _ in _draw(make, gen).expects:
                try:
                    req = mpack.unpackb(body)
                except ValueError:
                    continue
                if isinstance(req, dict) and req.get("cmd") in _COMMANDS:
                    sent.add(req["cmd"])
    return sent


def check_commands():
    """Every command of the protocol is fuzzed or excused in UNSENT: else SystemExit."""
    missing = set(_COMMANDS) - commands_sent() - set(UNSENT)
    unknown = set(UNSENT) - set(_COMMANDS)
    if missing or unknown:
        raise SystemExit("fuzz: commands no category sends: %s; excused but not in the protocol: %s"
                         % (", ".join(sorted(missing)) or "none", ", ".join(sorted(unknown)) or "none"))


def _blob():
    return model_doc.pack(model_doc.read(MODELS / "iris3.json"))


def _draw(make, gen):
    while True:
        case = make(gen)
        if case is not None:
            return case



# -- running it ----------------------------------------------------------------------

def ensure_model(client, blob):
    """The active model's description; uploads one (iris3) if there is none."""
    if client.info["active"] is None:
        client.upload(blob, "fuzz-iris3")
    client.hello()
    return client.model()


def flash_snapshot(folder):
    """{path: sha256} of every file in a virtual Pico's flash, or None for a board."""
    if folder is None:
        return None
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def flash_changes(before, after):
    if before is None:
        return None
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))


def fuzz(client, cases, seed, burst, flash=None):
    """Run the fuzzer on a connected client; returns the result document."""
    check_commands()
    blob = _blob()
    model = ensure_model(client, blob)
    before = flash_snapshot(flash)
    gen = Gen(random.Random(seed), model, [m["name"] for m in client.list_models()], blob)
    fuzzer = Fuzzer(client, gen, burst)
    fuzzer.model_checksum = model["checksum"]
    start = time.perf_counter()
    fuzzer.run(cases)
    seconds = time.perf_counter() - start
    changed = flash_changes(before, flash_snapshot(flash))
    return result(fuzzer, model, cases, seed, seconds, changed)


def result(fuzzer, model, cases, seed, seconds, changed):
    deltas = fuzzer.heap_deltas or [0]
    ok = not fuzzer.failures and fuzzer.restarts == 0 and not changed
    return {
        "ok": ok, "cases": cases, "seed": seed, "seconds": round(seconds, 1),
        "date": datetime.date.today().isoformat(), "bursts": fuzzer.bursts,
        "model": model["name"], "checksum": model["checksum"],
        "categories": {name: t.as_dict() for name, t in fuzzer.tallies.items()},
        "heap": {"start": fuzzer.heap_start, "after_warm_up": fuzzer.heap_level,
                 "min_delta": min(deltas), "max_delta": max(deltas), "tolerance": HEAP_TOLERANCE},
        "restarts": fuzzer.restarts, "flash_changed": changed,
        "failures": len(fuzzer.failures), "first_failures": fuzzer.failures[:20],
    }


def text(doc):
    lines = ["fuzz: %d cases in %.1f s (seed %d, %d bursts), model %s (checksum %08x)"
             % (doc["cases"], doc["seconds"], doc["seed"], doc["bursts"], doc["model"], doc["checksum"]),
             "%-19s %7s %9s %7s %7s %7s %19s %6s  %s" % ("category", "cases", "bytes", "frames", "replies",
                                                        "resyncs", "garbage board/model", "bad", "codes")]
    for name, t in doc["categories"].items():
        codes = ", ".join("%s %d" % kv for kv in t["codes"].items()) or "-"
        lines.append("%-19s %7d %9d %7d %7d %7d %9d/%-9d %6d  %s"
                     % (name, t["cases"], t["bytes"], t["frames"], t["replies"], t["resyncs"],
                        t["garbage_bytes"], t["garbage_bytes_predicted"], t["bad_frames"], codes))
    heap = doc["heap"]
    lines.append("after every burst: hello answered, the model's checksum kept; heap in use %d bytes "
                 "at the start, %d after one burst of each category, then %+d to %+d (tolerance %d); "
                 "server restarts %d; flash %s"
                 % (heap["start"], heap["after_warm_up"], heap["min_delta"], heap["max_delta"],
                    heap["tolerance"],
                    doc["restarts"], "not inspected (a board)" if doc["flash_changed"] is None else
                    "changed: %s" % doc["flash_changed"] if doc["flash_changed"] else "unchanged"))
    lines.append("failures: %d" % doc["failures"])
    lines.extend("  " + f for f in doc["first_failures"])
    return "\n".join(lines)


def parse(argv):
    p = argparse.ArgumentParser(description="Fuzz an ANNE board's serial server (see the docstring).")
    p.add_argument("--cases", type=int, default=100000, help="cases to send (default 100000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--burst", type=int, default=250, help="cases per burst between checks (default 250)")
    p.add_argument("--port", default="sim",
                   help="serial port of a board, or 'sim' (default) for a private virtual Pico")
    p.add_argument("--json", action="store_true", help="print the result as one JSON document")
    args = p.parse_args(argv)
    if args.cases < 1 or args.burst < 1:
        p.error("--cases and --burst must be at least 1")
    return args


def main(argv=None):
    args = parse(argv)
    if args.port == "sim":
        import tempfile

        from anne_host.sim import VirtualPico

        with tempfile.TemporaryDirectory() as flash, VirtualPico(flash) as vp:
            with Client.open(vp.port) as client:
                doc = fuzz(client, args.cases, args.seed, args.burst, flash)
    else:
        with Client.open(args.port) as client:
            doc = fuzz(client, args.cases, args.seed, args.burst)
    print(json.dumps(doc, indent=1) if args.json else text(doc))
    return 0 if doc["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
