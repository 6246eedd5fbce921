# The board's command table: one handler per protocol command (protocol/PROTOCOL.md).
#
# A handler takes the decoded request (a dict) and returns the reply's fields, or
# raises Refused with a stable code and a message. Nothing a client sends is
# executed, evaluated or imported: models are data, names are checked.
import gc
import os
import struct
import sys
import time
from array import array

from . import store
from .engine import Net
from .protocol import modelfile

VERSION = "0.1.0"
PROTOCOL = 1
_ACTIVE_FILE = "active"


class Refused(Exception):
    def __init__(self, code, message):
        self.code = code
        self.message = message


def _arg(req, key, kind, code="bad_request"):
    value = req.get(key)
    if not isinstance(value, kind):
        raise Refused(code, "field %r is missing or of the wrong type" % key)
    return value


def _name(req):
    try:
        return store.check_name(_arg(req, "name", str))
    except ValueError as e:
        raise Refused("bad_name", str(e))


def _floats(data, n, what):
    # Samples travel as little-endian float32 bytes (a msgpack bin).
    if len(data) != 4 * n:
        raise Refused("bad_input", "%s needs %d float32 values (%d bytes), got %d bytes"
                      % (what, n, 4 * n, len(data)))
    return struct.unpack("<%df" % n, data)


class Service:
    def __init__(self):
        self.net = None
        self.checksum = None
        self.upload = None  # (name, size, checksum, file, received) while one is open
        self.running = True
        self.reset_stats()
        self.load_error = None
        try:
            os.mkdir(store.ROOT)
        except OSError:
            pass
        active = self._read_active()
        if active:
            try:
                self._activate(active)
            except Refused as e:
                self.load_error = e.message

    # -- state -------------------------------------------------------------
    def reset_stats(self):
        self.stats = {"inferences": 0, "board_us": 0, "requests": 0, "errors": 0,
                      "bad_frames": 0, "garbage_bytes": 0}

    def _read_active(self):
        try:
            with open(store.ROOT + "/" + _ACTIVE_FILE) as f:
                return f.read().strip()
        except OSError:
            return None

    def _write_active(self, name):
        tmp = store.ROOT + "/.active"
        with open(tmp, "w") as f:
            f.write(name or "")
        os.rename(tmp, store.ROOT + "/" + _ACTIVE_FILE)

    def _load(self, name):
        try:
            with open(store.path(name), "rb") as f:
                meta, layers = modelfile.load(f)
                f.seek(-4, 2)
                checksum = struct.unpack("<I", f.read(4))[0]
        except OSError:
            raise Refused("no_model", "no stored model named %r" % name)
        except ValueError as e:
            raise Refused("bad_model", "%s: %s" % (name, e))
        net = Net(meta, layers)
        net.name = name  # the store name is the identity on the board
        return net, checksum

    def _activate(self, name):
        # The new model loads beside the old one when the heap allows; otherwise
        # the old one is dropped first, and reloaded if the new one still fails.
        try:
            net, checksum = self._load(name)
        except MemoryError:
            previous = self.net.name if self.net else None
            self.net = None
            gc.collect()
            try:
                net, checksum = self._load(name)
            except MemoryError:
                net = None
                gc.collect()
                if previous:
                    self.net, self.checksum = self._load(previous)
                raise Refused("no_memory", "model %s does not fit in the free heap (%d bytes free)"
                              % (name, gc.mem_free()))
        self.net, self.checksum = net, checksum
        gc.collect()

    def _need_net(self):
        if self.net is None:
            raise Refused("no_model", "no active model: upload one or select a stored one")
        return self.net

    # -- commands ----------------------------------------------------------
    def hello(self, req):
        gc.collect()
        try:
            st = os.statvfs(store.ROOT)
            flash_free = st[0] * st[3]
        except (OSError, AttributeError):
            flash_free = None
        return {"protocol": PROTOCOL, "firmware": VERSION, "micropython": sys.version,
                "machine": sys.implementation._machine, "platform": sys.platform,
                "mem_free": gc.mem_free(), "mem_alloc": gc.mem_alloc(),
                "flash_free": flash_free, "models": store.names(),
                "active": self.net.name if self.net else None, "checksum": self.checksum,
                "load_error": self.load_error}

    def model(self, req):
        net = self._need_net()
        return {"name": net.name, "inputs": net.inputs, "outputs": net.outputs,
                "labels": net.labels, "features": net.meta.get("features"),
                "threshold": net.threshold, "params": net.param_count(),
                "checksum": self.checksum, "kernel": net.kernel,
                "layers": [[l.kind, l.activation, l.units] for l in net.layers]}

    def list(self, req):
        models = []
        for name in store.names():
            size = os.stat(store.path(name))[6]
            models.append({"name": name, "size": size, "active": bool(self.net and self.net.name == name)})
        return {"models": models}

    def upload_begin(self, req):
        name = _name(req)
        size = _arg(req, "size", int)
        checksum = _arg(req, "checksum", int)
        if size < 16:
            raise Refused("bad_request", "a model file has at least 16 bytes")
        self._close_upload()
        try:
            st = os.statvfs(store.ROOT)
            if st[0] * st[3] < size + 4096:
                raise Refused("no_space", "model needs %d bytes of flash; %d are free"
                              % (size, st[0] * st[3]))
        except AttributeError:
            pass
        self.upload = [name, size, checksum, open(store.ROOT + "/.upload", "wb"), 0]
        return {"received": 0}

    def upload_chunk(self, req):
        if not self.upload:
            raise Refused("no_upload", "no upload is open: send upload_begin first")
        offset = _arg(req, "offset", int)
        data = _arg(req, "data", (bytes, memoryview))
        up = self.upload
        if offset != up[4]:
            raise Refused("bad_offset", "chunk at offset %d, expected %d" % (offset, up[4]))
        if up[4] + len(data) > up[1]:
            raise Refused("too_long", "chunk goes past the announced size %d" % up[1])
        up[3].write(data)
        up[4] += len(data)
        return {"received": up[4]}

    def upload_end(self, req):
        up = self.upload
        if not up:
            raise Refused("no_upload", "no upload is open: send upload_begin first")
        name, size, checksum, f, received = up
        self._close_upload()
        tmp = store.ROOT + "/.upload"
        try:
            if received != size:
                raise Refused("incomplete", "received %d of %d bytes" % (received, size))
            with open(tmp, "rb") as f:
                try:
                    modelfile.load(f, keep=False)  # verify everything, allocate nothing
                except ValueError as e:
                    raise Refused("bad_model", str(e))
                f.seek(-4, 2)
                stored = struct.unpack("<I", f.read(4))[0]
            if stored != checksum:
                raise Refused("bad_checksum", "model checksum %08x, announced %08x" % (stored, checksum))
            os.rename(tmp, store.path(name))  # atomic: the old file or the new, never half
        finally:
            try:
                os.remove(tmp)
            except OSError:
                pass
        if req.get("activate", True):
            self._activate(name)
            self._write_active(name)
        return {"name": name, "checksum": checksum}

    def _close_upload(self):
        if self.upload:
            self.upload[3].close()
            self.upload = None

    def select(self, req):
        name = _name(req)
        self._activate(name)
        self._write_active(name)
        return self.model(req)

    def delete(self, req):
        name = _name(req)
        try:
            os.remove(store.path(name))
        except OSError:
            raise Refused("no_model", "no stored model named %r" % name)
        if self.net and self.net.name == name:
            self.net = None
            self.checksum = None
            self._write_active(None)
            gc.collect()
        return {"deleted": name}

    def infer(self, req):
        net = self._need_net()
        x = _floats(_arg(req, "x", (bytes, memoryview), "bad_input"), net.inputs, "a sample")
        t0 = time.ticks_us()
        out = net.forward(x)
        us = time.ticks_diff(time.ticks_us(), t0)
        self._count(1, us)
        y = array("f", out[:net.outputs]) if len(out) != net.outputs else out
        return {"y": bytes(y), "class": net.decide(out), "us": us}

    def batch(self, req):
        net = self._need_net()
        data = _arg(req, "x", (bytes, memoryview), "bad_input")
        n = net.inputs
        rows = len(data) // (4 * n)
        if rows < 1 or rows * 4 * n != len(data):
            raise Refused("bad_input", "a batch is whole samples of %d float32 values; got %d bytes"
                          % (n, len(data)))
        k = net.outputs
        ys = array("f", range(rows * k))
        classes = bytearray(rows)
        times = array("I", range(rows))
        total = 0
        for r in range(rows):
            x = struct.unpack_from("<%df" % n, data, 4 * n * r)
            t0 = time.ticks_us()
            out = net.forward(x)
            us = time.ticks_diff(time.ticks_us(), t0)
            for j in range(k):
                ys[r * k + j] = out[j]
            classes[r] = net.decide(out)
            times[r] = us
            total += us
        self._count(rows, total)
        return {"y": bytes(ys), "class": bytes(classes), "us": bytes(times)}

    def _count(self, n, us):
        self.stats["inferences"] += n
        self.stats["board_us"] += us

    def bench(self, req):
        net = self._need_net()
        repeat = req.get("repeat", 100)
        if not isinstance(repeat, int) or not 0 < repeat <= 100000:
            raise Refused("bad_request", "repeat must be a whole number from 1 to 100000")
        x = [0.5] * net.inputs
        if "x" in req:
            x = _floats(req["x"], net.inputs, "a sample")
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
        layers = []
        for layer, us in zip(net.layers, totals):
            layers.append({"kind": layer.kind, "activation": layer.activation,
                           "units": layer.units, "params": layer.param_count(), "us": us / repeat})
        gc.collect()
        return {"repeat": repeat, "us": whole / repeat, "layers": layers,
                "mem_alloc": gc.mem_alloc(), "mem_free": gc.mem_free(), "mem_model_before": before}

    def stats_(self, req):
        out = dict(self.stats)
        out["mem_alloc"] = gc.mem_alloc()
        out["mem_free"] = gc.mem_free()
        return out

    def reset(self, req):
        self.reset_stats()
        return {}

    def exit(self, req):
        self.running = False
        return {}


# command name -> handler; adding a command is adding a row.
COMMANDS = {
    "hello": Service.hello, "model": Service.model, "list": Service.list,
    "upload_begin": Service.upload_begin, "upload_chunk": Service.upload_chunk,
    "upload_end": Service.upload_end, "select": Service.select, "delete": Service.delete,
    "infer": Service.infer, "batch": Service.batch, "bench": Service.bench,
    "stats": Service.stats_, "reset": Service.reset, "exit": Service.exit,
}
