# The board's command table: one handler per protocol command (protocol/PROTOCOL.md).
# The commands a board seldom gets (training, pull, trace, monitoring) are served by
# one method, occasional, from modules imported for them and forgotten after them.
#
# A handler takes the decoded request (a dict) and returns the reply's fields, or
# raises Refused with a stable code and a message. Nothing a client sends is
# executed, evaluated or imported: models are data, names are checked, commands
# are looked up in COMMANDS or matched by occasional. Every handler checks its request's fields (types and
# ranges) before the board's state (an active model, an open upload), then the
# values against that state; what a request does to the models is lifecycle.py's.
# One handler returns its whole reply frame instead of fields: batch, which
# `eval` sends many times, builds it in place.
import gc
import os
import sys
import time

from micropython import const

from . import lifecycle, listing, store
from .lifecycle import BATCH_KEYS, UPLOAD_FILE, Upload, forget
from .protocol import framing, modelcheck, mpack
from .refused import Refused, field, flash_error, int_field, is_int, name_field, sample

VERSION = "0.1.0"
PROTOCOL = 2  # 2: hello gives model_count, list is paged (PROTOCOL.md)
_MIN_FILE = const(34)  # header, one layer record, CRC: the smallest model file
_MAX_REPEAT = const(100000)
# A batch reply holds 4 bytes per output, a class byte and 4 bytes of time per row,
# plus at most BATCH_KEYS bytes of keys, headers and id.
_BATCH_ROOM = framing.MAX_BODY - BATCH_KEYS
_DECODE_ROOM = const(512)  # heap a request takes while it is decoded and handled, beyond its reply
_BIN = (bytes, memoryview)
_LIST_PAGE = const(32)  # entries per list reply at most: the smallest names are kept while scanning
_LIST_ROOM = const(3600)  # bytes of entries per list reply, for foreign names up to 255 bytes
_ENTRY = const(64)  # an entry's bytes besides its name
_ENTRY_HEAP = const(256)  # heap a listed name and its entry take while a list reply is made
MAX_MESSAGE = const(200)  # messages may quote what was sent: cut, so replies stay small
TRAINING_MODULES = ("train_commands", "train_session", "train", "build")
MONITOR_MODULES = ("monitor_session", "monitoring", "eventlog")


class Service:
    def __init__(self):
        self.active = lifecycle.Active()
        self.upload = None  # an Upload while one is open
        self.training = None  # a train_session.Session while one is open (train_commands.py)
        self.monitoring = None  # a monitor_session.Session while one is open
        self.running = True
        self.reset(None)

    def close(self):
        self._close_upload()
        self.training = self.monitoring = None

    def hello(self, req):
        active = self.active
        gc.collect()
        return {"protocol": PROTOCOL, "firmware": VERSION, "micropython": sys.version,
                "machine": sys.implementation._machine, "platform": sys.platform,
                "mem_free": gc.mem_free(), "mem_alloc": gc.mem_alloc(),
                "flash_free": store.flash_free(), "model_count": listing.count(),
                "active": active.name, "checksum": active.checksum,
                "dtype": active.net.dtype if active.net else None,
                "load_error": active.load_error[:MAX_MESSAGE] if active.load_error else None}

    def model(self, req):
        net = self.active.need()
        return {"name": net.name, "inputs": net.inputs, "outputs": net.outputs,
                "labels": net.labels, "features": net.meta.get("features"),
                "threshold": net.threshold, "params": net.param_count(), "dtype": net.dtype,
                "checksum": self.active.checksum, "kernel": net.kernel,
                "layers": [[l.kind, l.activation, l.units] for l in net.layers]}

    def list(self, req):
        # One page: the entries whose names sort after `after`, as many as fit one
        # reply; `next` is the `after` of the next page, nil after the last one.
        # Only the page's names are held while the folder is scanned.
        after = req.get("after", "")
        if not isinstance(after, str):
            raise Refused("bad_request", "field 'after' must be a str")
        # A page takes heap for its names and entries: smaller when little is free
        # (a large model active), so that listing always works.
        gc.collect()
        most = max(1, min(_LIST_PAGE, (gc.mem_free() - _DECODE_ROOM) // _ENTRY_HEAP))
        page, more = listing.page(after, most)
        models = []
        room = _LIST_ROOM
        buf = bytearray(256)
        active = self.active.name
        last = None
        for name in page:
            room -= _ENTRY + len(name.encode())
            if room < 0:
                more = True
                break
            last = name
            entry = listing.entry(name, active, buf, modelcheck.probe)
            if entry:
                models.append(entry)
        return {"models": models, "next": last if more else None}

    def upload_begin(self, req):
        field(req, "name", str, "a str")
        size = int_field(req, "size")
        checksum = int_field(req, "checksum")
        if size < _MIN_FILE:
            raise Refused("bad_request", "a model file has at least %d bytes" % _MIN_FILE)
        if not 0 <= checksum <= 0xFFFFFFFF:
            raise Refused("bad_request", "a checksum is a CRC-32, 0 to 0xffffffff")
        name = name_field(req)
        lifecycle.check_space(size, self.upload)
        self._close_upload()
        self.upload = Upload(name, size, checksum)
        return {"received": 0}

    def _open_upload(self):
        if not self.upload:
            raise Refused("no_upload", "no upload is open: send upload_begin first")
        return self.upload

    def upload_chunk(self, req):
        offset = int_field(req, "offset")
        data = field(req, "data", _BIN, "bin")
        up = self._open_upload()
        if offset != up.received:
            raise Refused("bad_offset", "chunk at offset %d, expected %d" % (offset, up.received))
        if up.received + len(data) > up.size:
            raise Refused("too_long", "chunk goes past the announced size %d" % up.size)
        try:
            up.file.write(data)
        except OSError as e:
            self._close_upload()
            raise flash_error(e)
        up.received += len(data)
        return {"received": up.received}

    def upload_end(self, req):
        activate = req.get("activate", True)
        if activate is not True and activate is not False:
            raise Refused("bad_request", "field 'activate' must be true or false")
        up = self._open_upload()
        self._close_upload()
        try:
            if up.received != up.size:
                raise Refused("incomplete", "received %d of %d bytes" % (up.received, up.size))
            need, stored = lifecycle.verify(UPLOAD_FILE, up.name)
            if stored != up.checksum:
                raise Refused("bad_checksum", "model checksum %08x, announced %08x"
                              % (stored, up.checksum))
            self.active.check_fits(up.name, need)
            # The stored file of the active model is the active model: replacing it activates.
            if activate or self.active.name == up.name:
                self.active.activate(up.name, UPLOAD_FILE)
            else:
                try:  # atomic: the old file or the new, never half
                    os.rename(UPLOAD_FILE, store.path(up.name))
                except OSError as e:
                    raise flash_error(e)
        finally:
            store.remove(UPLOAD_FILE)
        return {"name": up.name, "checksum": up.checksum}

    def _close_upload(self):
        if self.upload:
            self.upload.close()
            self.upload = None

    def select(self, req):
        name = name_field(req)
        # The active model is its stored file (an upload under its name replaces both):
        # selecting it again loads nothing, and a model too large for two copies
        # stays active instead of being dropped and loaded again.
        if self.active.name != name:
            self.active.activate(name)
        return self.model(req)

    def delete(self, req):
        # A foreign file (a name no model may have, left by another tool) can be
        # deleted by its exact name too: the only thing done to it.
        name = field(req, "name", str, "a str")
        path = listing.foreign_path(name) if not listing.is_name(name) else None
        if path is None:
            name = name_field(req)
            path = store.path(name)
        try:
            os.remove(path)
        except OSError:
            raise Refused("no_model", "no stored model named %r" % name)
        if self.active.name == name:
            self.active.drop()
            self.active.remember(None)
        return {"deleted": name}

    def infer(self, req):
        # A batch of one: no float object is made (on the board a float is a heap
        # object), so a model that leaves little heap can still be asked.
        data = field(req, "x", _BIN, "bin")
        net = self.active.need()
        sample(data, net.inputs)
        y = bytearray(4 * net.outputs)
        c = bytearray(1)
        us = net.run_batch(data, 1, y, c, bytearray(4))
        self.stats["inferences"] += 1
        self.stats["board_us"] += us
        return {"y": y, "class": c[0], "us": us}

    def batch(self, req):
        data = field(req, "x", _BIN, "bin")
        net = self.active.need()
        n, k = net.inputs, net.outputs
        rows = len(data) // (4 * n)
        if rows < 1 or rows * 4 * n != len(data):
            raise Refused("bad_input", "a batch is whole samples of %d float32 values; got %d bytes"
                          % (n, len(data)))
        most = _BATCH_ROOM // (4 * k + 5)
        if rows > most:  # refused before anything is allocated or computed
            raise Refused("too_big", "the reply to %d rows would exceed %d bytes: %s"
                          % (rows, framing.MAX_BODY, "send at most %d rows" % most if most
                             else "this model's outputs do not fit one reply"))
        # The reply {ok, id, y, class, us} as one frame in the model's reply buffer
        # (a larger request than the buffer was sized for, which only a request with
        # a shorter id may be, gets its own): the viper loop writes the outputs,
        # classes and times straight into their bins, and the server writes the
        # frame as it is (PROTOCOL.md: the map's order is free).
        ny, nt = 4 * rows * k, 4 * rows
        size = framing.HEADER_SIZE + BATCH_KEYS + ny + rows + nt + framing.TRAILER_SIZE
        reply = self.active.reply
        p = mpack.Packer(reply if len(reply) >= size else bytearray(size),
                         framing.HEADER_SIZE)
        p.map_head(5)
        p.pack("ok")
        p.pack(True)
        p.pack("id")
        p.pack(req["id"])
        p.pack("y")
        y = p.bin_room(ny)
        p.pack("class")
        c = p.bin_room(rows)
        p.pack("us")
        t = p.bin_room(nt)
        frame = memoryview(p.buf)
        total = net.run_batch(data, rows, frame[y:y + ny], frame[c:c + rows], frame[t:t + nt])
        self.stats["inferences"] += rows
        self.stats["board_us"] += total
        return framing.seal(frame[:p.n + framing.TRAILER_SIZE])

    def bench(self, req):
        repeat = req.get("repeat", 100)
        if not is_int(repeat) or not 0 < repeat <= _MAX_REPEAT:
            raise Refused("bad_request", "repeat must be a whole number from 1 to %d" % _MAX_REPEAT)
        data = field(req, "x", _BIN, "bin") if "x" in req else None
        net = self.active.need()
        x = [0.5] * net.inputs
        if data is not None:
            from array import array

            # Raw float32 in an array: a tuple would hold a float object per input.
            x = array("f", bytes(sample(data, net.inputs)))
        gc.collect()
        before = gc.mem_alloc()
        totals = [0] * len(net.layers)
        t0 = time.ticks_us()
        for _ in range(repeat):
            net.forward(x)
        whole = time.ticks_diff(time.ticks_us(), t0)
        for _ in range(repeat):
            for i, us in enumerate(net.profile(x)):
                totals[i] += us
        # Whole microseconds, as every time the protocol carries: means rounded to nearest.
        half = repeat // 2
        layers = []
        for layer, us in zip(net.layers, totals):
            layers.append({"kind": layer.kind, "activation": layer.activation,
                           "units": layer.units, "params": layer.param_count(),
                           "us": (us + half) // repeat})
        gc.collect()
        return {"repeat": repeat, "us": (whole + half) // repeat, "layers": layers,
                "mem_alloc": gc.mem_alloc(), "mem_free": gc.mem_free(), "mem_model_before": before}

    def stats_(self, req):
        gc.collect()  # heap in use between requests, comparable from call to call
        out = dict(self.stats)
        out["mem_alloc"] = gc.mem_alloc()
        out["mem_free"] = gc.mem_free()
        out["ticks_us"] = time.ticks_us()  # the board's clock: rates in board time
        return out

    def reset(self, req):
        # The statistics back to zero (also how __init__ sets them up).
        self.stats = {"inferences": 0, "board_us": 0, "requests": 0, "errors": 0,
                      "bad_frames": 0, "garbage_bytes": 0}
        return {}

    # -- commands a board seldom gets: training, pull, trace and monitoring live in
    # modules imported for the request and forgotten after it (code is heap), or when
    # the session they open ends. One resident method serves them all.

    def occasional(self, req):
        # Every command not in COMMANDS comes here (a table entry is heap too): the
        # names below, each a fixed module's (whose handle refuses a name it does not
        # serve as unknown_command), and any other is unknown.
        cmd = req["cmd"]
        try:
            if cmd.startswith("train_"):
                from . import train_commands as handler
            elif cmd.startswith("monitor_") or cmd == "events":
                from . import monitor_session as handler
            elif cmd == "pull":
                from . import pull as handler
            elif cmd == "trace":
                from . import trace as handler
            elif cmd.startswith("data_"):
                from . import data_commands as handler
            else:
                raise Refused("unknown_command", "unknown command %r" % cmd[:40])
            return handler.handle(self, req)
        finally:
            self.forget_occasional()

    def forget_occasional(self):
        # The code of what no open session needs; collected when any went.
        gone = forget("pull", "trace")
        if not self.training:
            gone += forget(*TRAINING_MODULES)
        if not self.monitoring:
            gone += forget(*MONITOR_MODULES)
        if gone:
            gc.collect()

    def exit(self, req):
        self.running = False
        return {}


def _table():
    # command name -> method, for the names of protocol/commands.py (the one list) that
    # have one; the method of "stats" is stats_, since the counts are self.stats. The
    # others are occasional's. The list's module is let go afterwards: its names live
    # on in the table's keys.
    from .protocol import commands

    table = {}
    for name in commands.NAMES:
        method = getattr(Service, "stats_" if name == "stats" else name, None)
        if method is not None:
            table[name] = method
    forget("protocol.commands")
    return table


COMMANDS = _table()
