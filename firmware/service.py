# The board's command table: one handler per protocol command (protocol/PROTOCOL.md).
#
# A handler takes the decoded request (a dict) and returns the reply's fields, or
# raises Refused with a stable code and a message. Nothing a client sends is
# executed, evaluated or imported: models are data, names are checked, commands
# are looked up in COMMANDS. A request is checked completely before it changes
# anything, and a model replaces the stored or active one only once it has been
# verified (and, to become active, loaded). One handler returns its whole reply
# frame instead of fields: batch, which `eval` sends many times, builds it in place.
# Every handler checks its request's fields (types and ranges) before the board's
# state (an active model, an open upload), then the values against that state.
import gc
import os
import struct
import sys
import time

from micropython import const

from . import kernels, store
from .engine import Net
from .protocol import framing, modelfile, mpack

VERSION = "0.1.0"
PROTOCOL = 2  # 2: hello gives model_count, list is paged (PROTOCOL.md)
_ACTIVE_FILE = "active"
# Temporary files live in the store folder (the same file system, so a rename is
# atomic); the leading dot keeps them out of the model names.
_UPLOAD = store.ROOT + "/.upload"
_ACTIVE_TMP = store.ROOT + "/.active"
_MIN_FILE = const(34)  # header, one layer record, CRC: the smallest model file
_FLASH_SPARE = const(4096)  # flash left free beyond an upload, for the store's own writes
_ENOSPC = const(28)
_MAX_REPEAT = const(100000)
# A batch reply holds 4 bytes per output, a class byte and 4 bytes of time per row,
# plus at most 48 bytes of keys, headers and id.
_BATCH_KEYS = const(48)
_BATCH_ROOM = const(4096 - _BATCH_KEYS)
_DECODE_ROOM = const(512)  # heap a request takes while it is decoded and handled, beyond its reply
_REQUEST_ROOM = const(1024)  # heap the largest request but batch takes in all (hello: about 1 KB)
_BIN = (bytes, memoryview)
_LIST_PAGE = const(32)  # entries per list reply at most: the smallest names are kept while scanning
_LIST_ROOM = const(3600)  # bytes of entries per list reply, for foreign names up to 255 bytes
_ENTRY = const(64)  # an entry's bytes besides its name
_ENTRY_HEAP = const(256)  # heap a listed name and its entry take while a list reply is made
_MAX_MESSAGE = const(200)


class Refused(Exception):
    def __init__(self, code, message):
        self.code = code
        self.message = message


def is_int(value):
    # bool is an int subclass in CPython, not in MicroPython: refused on both.
    return isinstance(value, int) and value is not True and value is not False


def _int(req, key):
    value = req.get(key)
    if not is_int(value):
        raise Refused("bad_request", "field '%s' is missing or not an int" % key)
    return value


def _field(req, key, kind, what):
    value = req.get(key)
    if not isinstance(value, kind):
        raise Refused("bad_request", "field '%s' is missing or not %s" % (key, what))
    return value


def _name(req):
    name = _field(req, "name", str, "a str")
    try:
        return store.check_name(name)
    except ValueError as e:
        raise Refused("bad_name", str(e))


def _sample(data, n):
    # A sample travels as n little-endian float32 (a msgpack bin): its bytes.
    if len(data) != 4 * n:
        raise Refused("bad_input", "a sample needs %d float32 values (%d bytes), got %d bytes"
                      % (n, 4 * n, len(data)))
    return data


def _flash_free():
    try:
        st = os.statvfs(store.ROOT)
    except (OSError, AttributeError):  # no statvfs on this port: the write will tell
        return None
    return st[0] * st[3]


def _flash_error(e):
    if e.args and e.args[0] == _ENOSPC:
        return Refused("no_space", "the board's flash is full")
    return Refused("flash_error", "the board's flash refused: %s" % e)


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass  # already gone: nothing to clean


def _trailer(f):
    # The model's checksum: the CRC-32 in the file's last 4 bytes.
    f.seek(-4, 2)
    return struct.unpack("<I", f.read(4))[0]


def _check_meta(name, meta):
    # The metadata is JSON written by a client: the engine and the replies rely on its types.
    if not isinstance(meta, dict):
        raise Refused("bad_model", "%s: the metadata is not a JSON object" % name)
    for key in ("labels", "features"):
        items = meta.get(key)
        ok = items is None or isinstance(items, list)
        for item in items if ok and items else ():
            ok = ok and isinstance(item, str)
        if not ok:
            raise Refused("bad_model", "%s: '%s' must be a list of strings" % (name, key))
    threshold = meta.get("threshold", 0.5)
    if not isinstance(threshold, (int, float)) or threshold is True or threshold is False:
        raise Refused("bad_model", "%s: 'threshold' must be a number" % name)


def _forget(*names):
    # Modules needed for one request (or one kind of model) are dropped from the module
    # table after it, so that their code is collected: on a board, code is heap.
    for name in names:
        full = "anne." + name
        if full in sys.modules:
            del sys.modules[full]
            parent, _, leaf = full.rpartition(".")
            package = sys.modules.get(parent)
            if package is not None and hasattr(package, leaf):
                delattr(package, leaf)


def _count():
    from . import listing

    n = listing.count()
    _forget("listing")
    return n


def _check_replies(name, meta, layers):
    # A model whose description could not fit a reply frame could never be selected.
    from .protocol import modelcheck

    problem = modelcheck.replies_problem(meta, layers, framing.MAX_BODY)
    _forget("protocol.modelcheck")
    if problem:
        raise Refused("bad_model", "%s: %s" % (name, problem))


def _reply_room(inputs, outputs):
    # The buffer for a model's batch replies, allocated with the model and kept with
    # it: its largest reply (as many samples as one request frame holds), so that a
    # batch allocates nothing that grows with it, and a model that loads but leaves
    # no room to answer does not fit (MemoryError, as for its arrays).
    rows = (framing.MAX_BODY - 32) // (4 * inputs)
    size = framing.HEADER_SIZE + _BATCH_KEYS + rows * (4 * outputs + 5) + framing.TRAILER_SIZE
    return bytearray(min(size, framing.MAX_FRAME))


def _weights_bytes(layers):
    # Heap the model's arrays need: what decides whether a model fits.
    return sum(modelfile.array_bytes(layer) for layer in layers)



def _verify(path, name):
    """(heap bytes its arrays need, checksum) of an uploaded file, checked completely
    (format, shapes, finite weights, metadata, CRC) without loading its weights.
    Only numbers come back: a reference to the verified layers left in the caller's
    frame would keep them alive through the load, in the middle of the free heap."""
    with open(path, "rb") as f:
        try:
            meta, layers = modelfile.load(f, keep=False)
        except ValueError as e:
            raise Refused("bad_model", str(e))
        checksum = _trailer(f)
    _check_meta(name, meta)
    _check_replies(name, meta, layers)
    return _weights_bytes(layers), checksum


def _dtype(head):
    # The number type named by a model file's first 6 bytes (to the number type
    # byte), or None for a file that is not a model.
    if len(head) == 6 and head[:4] == modelfile.MAGIC and head[5] < len(modelfile.DTYPES):
        return modelfile.DTYPES[head[5]]
    return None


class Service:
    def __init__(self):
        self.net = None
        self.checksum = None
        self.reply = None  # the active model's batch reply buffer (_reply_room)
        self.upload = None  # [name, size, checksum, file, received] while one is open
        self.running = True
        self.reset(None)
        self.load_error = None
        try:
            os.mkdir(store.ROOT)
        except OSError:
            pass  # it exists
        # A reset during an upload leaves its temporary file: it is never a model.
        _remove(_UPLOAD)
        _remove(_ACTIVE_TMP)
        # The model that was active when the board stopped, loaded again.
        try:
            with open(store.ROOT + "/" + _ACTIVE_FILE) as f:
                name = f.read().strip()
        except OSError:
            name = None
        try:
            if name:
                try:
                    store.check_name(name)
                except ValueError:
                    raise Refused("bad_name", "the active-model file names %r, not a model" % name[:40])
                self._activate(name, remember=False)
        except Refused as e:
            self.load_error = e.message
        except Exception as e:  # a stored model must never keep the server from starting
            self.load_error = "%s: %s" % (type(e).__name__, e)

    # -- state -------------------------------------------------------------

    def _write_active(self, name):
        with open(_ACTIVE_TMP, "w") as f:
            f.write(name or "")
        os.rename(_ACTIVE_TMP, store.ROOT + "/" + _ACTIVE_FILE)

    def _load(self, path, name):
        """(net, checksum, batch reply buffer) of the model file at ``path``; Refused
        when it is not one."""
        gc.collect()  # the arrays are allocated largest first, into a clean heap
        try:
            with open(path, "rb") as f:
                # A kernel's code is imported before the model's arrays, so that it
                # lies below them, not in the gap they leave when they go; the other
                # number type's kernel is forgotten (code is heap: 4 KB and more).
                if _dtype(f.read(6)) == "int8":
                    _forget("bfp_thumb", "bfp")
                    if "anne.int8" not in sys.modules:
                        kernels.int8(None)  # the kernel this port runs (and the viper one it builds on)
                elif "anne.bfp" not in sys.modules:
                    kernels.get(kernels.DEFAULT)
                f.seek(0)
                meta, layers = modelfile.load(f)
                checksum = _trailer(f)
        except OSError:
            raise Refused("no_model", "no stored model named %r" % name)
        except ValueError as e:
            raise Refused("bad_model", "%s: %s" % (name, e))
        _check_meta(name, meta)
        _check_replies(name, meta, layers)
        # The loader's garbage (a float object per weight it checks) lies among what
        # it kept: collected first, the reply buffer (the largest block left to
        # allocate) finds one, and what the engine keeps takes the lowest free blocks.
        gc.collect()
        reply = _reply_room(layers[0].inputs, layers[-1].units)
        try:
            net = Net(meta, layers)
        except ValueError as e:  # an activation or kernel this firmware does not have
            raise Refused("bad_model", "%s: %s" % (name, e))
        net.meta["name"] = name  # the store name is the identity on the board
        gc.collect()
        # The other requests are answered in the receive buffer, but need heap while
        # they are handled: up to _REQUEST_ROOM (beside a small reply buffer), and
        # _DECODE_ROOM for a batch.
        if gc.mem_free() < max(_DECODE_ROOM, _REQUEST_ROOM - len(reply)):
            raise MemoryError
        return net, checksum, reply

    def _drop_active(self):
        previous = self.net.name if self.net else None
        self.net = self.checksum = self.reply = None
        self._forget_int8()
        gc.collect()
        return previous

    def _forget_int8(self):
        # The int8 kernel's code (4.3 KB on the virtual Pico) is needed only while
        # an int8 model is active: forgotten, it is collected, and a float model has
        # that room again. The next int8 model imports it again (see _load).
        if self.net and self.net.dtype == "int8":
            return
        _forget("int8", "int8_thumb")

    def _activate(self, name, path=None, remember=True):
        """Make a model active: the stored ``name``, or the verified upload at
        ``path``, which is stored as ``name`` once it has loaded. When anything
        fails, the store and the active model are as they were."""
        previous = self.net.name if self.net else None
        loaded = self._load_fitting(path or store.path(name), name)
        if path:
            try:
                os.rename(path, store.path(name))  # atomic: the old file or the new, never half
            except OSError as e:
                loaded = None
                if self.net is None:
                    self._restore(previous)
                raise _flash_error(e)
        self.net, self.checksum, self.reply = loaded
        self._forget_int8()
        gc.collect()
        if remember:
            self._write_active(name)

    def _load_fitting(self, path, name):
        # Beside the active model when the heap allows; otherwise in its place, and
        # if the new one still does not fit, the previous one is loaded back.
        try:
            return self._load(path, name)
        except MemoryError:
            pass  # retried below without the active model
        previous = self._drop_active()
        try:
            return self._load(path, name)
        except MemoryError as e:
            error = str(e)  # "memory allocation failed, allocating N bytes": the block missing
        except Refused as e:
            error = e
        gc.collect()
        if not isinstance(error, Refused):
            error = Refused("no_memory", "model %s does not fit in the heap (%d bytes free without "
                            "a model; %s)" % (name, gc.mem_free(), error))
        if not self._restore(previous):
            error.message += "; the previous model %s could not be loaded back" % previous
        raise error

    def _restore(self, previous):
        if previous is None:
            return True
        try:
            self.net, self.checksum, self.reply = self._load(store.path(previous), previous)
        except (MemoryError, Refused):
            self.net = self.checksum = self.reply = None
            gc.collect()
            return False
        return True

    def _check_fits(self, name, need):
        # Refused at once: a model whose weights exceed the heap even without the active model.
        gc.collect()
        room = gc.mem_free() + (_weights_bytes(self.net.layers) if self.net else 0)
        if need > room:
            raise Refused("no_memory", "model %s needs %d bytes of heap for its weights; this board "
                          "has %d without a model" % (name, need, room))

    def _need_net(self):
        if self.net is None:
            raise Refused("no_model", "no active model: upload one or select a stored one")
        return self.net

    def close(self):
        self._close_upload()

    # -- commands ----------------------------------------------------------
    def hello(self, req):
        gc.collect()
        return {"protocol": PROTOCOL, "firmware": VERSION, "micropython": sys.version,
                "machine": sys.implementation._machine, "platform": sys.platform,
                "mem_free": gc.mem_free(), "mem_alloc": gc.mem_alloc(),
                "flash_free": _flash_free(), "model_count": _count(),
                "active": self.net.name if self.net else None, "checksum": self.checksum,
                "dtype": self.net.dtype if self.net else None,
                "load_error": self.load_error[:_MAX_MESSAGE] if self.load_error else None}

    def model(self, req):
        net = self._need_net()
        return {"name": net.name, "inputs": net.inputs, "outputs": net.outputs,
                "labels": net.labels, "features": net.meta.get("features"),
                "threshold": net.threshold, "params": net.param_count(), "dtype": net.dtype,
                "checksum": self.checksum, "kernel": net.kernel,
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
        from . import listing
        from .protocol import modelcheck

        page, more = listing.page(after, most)
        models = []
        room = _LIST_ROOM
        buf = bytearray(256)
        active = self.net.name if self.net else None
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
        _forget("listing", "protocol.modelcheck")
        return {"models": models, "next": last if more else None}

    def upload_begin(self, req):
        _field(req, "name", str, "a str")
        size = _int(req, "size")
        checksum = _int(req, "checksum")
        if size < _MIN_FILE:
            raise Refused("bad_request", "a model file has at least %d bytes" % _MIN_FILE)
        if not 0 <= checksum <= 0xFFFFFFFF:
            raise Refused("bad_request", "a checksum is a CRC-32, 0 to 0xffffffff")
        name = _name(req)
        self._check_space(size)
        self._close_upload()
        try:
            f = open(_UPLOAD, "wb")
        except OSError as e:
            raise _flash_error(e)
        self.upload = [name, size, checksum, f, 0]
        return {"received": 0}

    def _check_space(self, size):
        # Refused before a byte is written: the upload and the store's spare must fit.
        free = _flash_free()
        if free is None:
            return
        if self.upload:
            free += self.upload[4]  # the open upload is discarded first
        if size + _FLASH_SPARE > free:
            raise Refused("no_space", "model needs %d bytes of flash; %d are free"
                          % (size, max(0, free - _FLASH_SPARE)))

    def _open_upload(self):
        if not self.upload:
            raise Refused("no_upload", "no upload is open: send upload_begin first")
        return self.upload

    def upload_chunk(self, req):
        offset = _int(req, "offset")
        data = _field(req, "data", _BIN, "bin")
        up = self._open_upload()
        if offset != up[4]:
            raise Refused("bad_offset", "chunk at offset %d, expected %d" % (offset, up[4]))
        if up[4] + len(data) > up[1]:
            raise Refused("too_long", "chunk goes past the announced size %d" % up[1])
        try:
            up[3].write(data)
        except OSError as e:
            self._close_upload()
            raise _flash_error(e)
        up[4] += len(data)
        return {"received": up[4]}

    def upload_end(self, req):
        activate = req.get("activate", True)
        if activate is not True and activate is not False:
            raise Refused("bad_request", "field 'activate' must be true or false")
        name, size, checksum, _, received = self._open_upload()
        self._close_upload()
        try:
            if received != size:
                raise Refused("incomplete", "received %d of %d bytes" % (received, size))
            need, stored = _verify(_UPLOAD, name)
            if stored != checksum:
                raise Refused("bad_checksum", "model checksum %08x, announced %08x" % (stored, checksum))
            self._check_fits(name, need)
            # The stored file of the active model is the active model: replacing it activates.
            if activate or (self.net and self.net.name == name):
                self._activate(name, _UPLOAD)
            else:
                try:  # atomic: the old file or the new, never half
                    os.rename(_UPLOAD, store.path(name))
                except OSError as e:
                    raise _flash_error(e)
        finally:
            _remove(_UPLOAD)
        return {"name": name, "checksum": checksum}

    def _close_upload(self):
        if self.upload:
            self.upload[3].close()
            self.upload = None

    def select(self, req):
        name = _name(req)
        # The active model is its stored file (an upload under its name replaces both):
        # selecting it again loads nothing, and a model too large for two copies
        # stays active instead of being dropped and loaded again.
        if not (self.net and self.net.name == name):
            self._activate(name)
        return self.model(req)

    def delete(self, req):
        # A foreign file (a name no model may have, left by another tool) can be
        # deleted by its exact name too: the only thing done to it.
        name = _field(req, "name", str, "a str")
        from . import listing

        path = listing.foreign_path(name) if not listing.is_name(name) else None
        _forget("listing")
        if path is None:
            name = _name(req)
            path = store.path(name)
        try:
            os.remove(path)
        except OSError:
            raise Refused("no_model", "no stored model named %r" % name)
        if self.net and self.net.name == name:
            self._drop_active()
            self._write_active(None)
        return {"deleted": name}

    def infer(self, req):
        # A batch of one: no float object is made (on the board a float is a heap
        # object), so a model that leaves little heap can still be asked.
        data = _field(req, "x", _BIN, "bin")
        net = self._need_net()
        _sample(data, net.inputs)
        y = bytearray(4 * net.outputs)
        c = bytearray(1)
        us = net.run_batch(data, 1, y, c, bytearray(4))
        self.stats["inferences"] += 1
        self.stats["board_us"] += us
        return {"y": y, "class": c[0], "us": us}

    def batch(self, req):
        data = _field(req, "x", _BIN, "bin")
        net = self._need_net()
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
        size = framing.HEADER_SIZE + _BATCH_KEYS + ny + rows + nt + framing.TRAILER_SIZE
        p = mpack.Packer(self.reply if len(self.reply) >= size else bytearray(size),
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
        data = _field(req, "x", _BIN, "bin") if "x" in req else None
        net = self._need_net()
        x = [0.5] * net.inputs
        if data is not None:
            from array import array

            # Raw float32 in an array: a tuple would hold a float object per input.
            x = array("f", bytes(_sample(data, net.inputs)))
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

    def exit(self, req):
        self.running = False
        return {}


def _table():
    # command name -> handler, for the names of protocol/commands.py (the one list);
    # the method of "stats" is stats_, since the counts are self.stats. The list's
    # module is let go afterwards: its names live on in the table's keys.
    from .protocol import commands

    table = {}
    for name in commands.NAMES:
        table[name] = getattr(Service, "stats_" if name == "stats" else name)
    _forget("protocol.commands")
    return table


COMMANDS = _table()
