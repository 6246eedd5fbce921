# A model's life on the board: uploaded into a temporary file, verified, stored,
# loaded and made active; and the active model brought back after a reset.
# A model replaces the stored or active one only once it has been verified (and,
# to become active, loaded): when anything fails, the store and the active model
# are as they were.
import gc
import os
import struct
import sys

from micropython import const

from . import kernels, store
from .engine import Net
from .protocol import framing, modelcheck, modelfile
from .refused import Refused, flash_error

_ACTIVE_FILE = store.ROOT + "/active"
# Temporary files live in the store folder (the same file system, so a rename is
# atomic); the leading dot keeps them out of the model names.
UPLOAD_FILE = store.ROOT + "/.upload"
_ACTIVE_TMP = store.ROOT + "/.active"
_FLASH_SPARE = const(4096)  # flash left free beyond an upload, for the store's own writes
BATCH_KEYS = const(48)  # a batch reply's keys, headers and id, at most
# Heap left free beside a loaded model, for the requests that build objects while
# they are handled: an upload's verification (its metadata decoded, its weights
# checked 64 at a time), a list page, hello. Less, and a model at the heap's edge
# left the board unable to take the next upload.
_REQUEST_ROOM = const(4096)


def forget(*names):
    # Modules needed for one request (or one kind of model) are dropped from the module
    # table after it, so that their code is collected: on a board, code is heap.
    # Returns how many were loaded.
    gone = 0
    for name in names:
        full = "anne." + name
        if full in sys.modules:
            gone += 1
            del sys.modules[full]
            parent, _, leaf = full.rpartition(".")
            package = sys.modules.get(parent)
            if package is not None and hasattr(package, leaf):
                delattr(package, leaf)
    return gone


class Upload:
    """An upload in progress: the announced name, size and checksum, the open
    temporary file and the bytes written to it so far."""

    def __init__(self, name, size, checksum):
        self.name, self.size, self.checksum = name, size, checksum
        self.received = 0
        try:
            self.file = open(UPLOAD_FILE, "wb")
        except OSError as e:
            raise flash_error(e)

    def close(self):
        self.file.close()


def check_space(size, upload):
    # Refused before a byte is written: the upload and the store's spare must fit.
    free = store.flash_free()
    if free is None:
        return
    if upload:
        free += upload.received  # the open upload is discarded first
    if size + _FLASH_SPARE > free:
        raise Refused("no_space", "model needs %d bytes of flash; %d are free"
                      % (size, max(0, free - _FLASH_SPARE)))


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


def _check_replies(name, meta, layers):
    # A model whose description could not fit a reply frame could never be selected.
    problem = modelcheck.replies_problem(meta, layers, framing.MAX_BODY)
    if problem:
        raise Refused("bad_model", "%s: %s" % (name, problem))


def reply_room(inputs, outputs):
    # The buffer for a model's batch replies, allocated with the model and kept with
    # it: its largest reply (as many samples as one request frame holds), so that a
    # batch allocates nothing that grows with it, and a model that loads but leaves
    # no room to answer does not fit (MemoryError, as for its arrays).
    rows = (framing.MAX_BODY - 32) // (4 * inputs)
    size = framing.HEADER_SIZE + BATCH_KEYS + rows * (4 * outputs + 5) + framing.TRAILER_SIZE
    return bytearray(min(size, framing.MAX_FRAME))


def _weights_bytes(layers):
    # Heap the model's arrays need: what decides whether a model fits.
    return sum(modelfile.array_bytes(layer) for layer in layers)


def verify(path, name):
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


def _load(path, name):
    """(net, checksum, batch reply buffer) of the model file at ``path``; Refused
    when it is not one."""
    gc.collect()  # the arrays are allocated largest first, into a clean heap
    try:
        with open(path, "rb") as f:
            # A kernel's code is imported before the model's arrays, so that it
            # lies below them, not in the gap they leave when they go; the other
            # number type's kernel is forgotten (code is heap: 4 KB and more).
            if _dtype(f.read(6)) == "int8":
                forget("bfp_thumb", "bfp")
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
    reply = reply_room(layers[0].inputs, layers[-1].units)
    try:
        net = Net(meta, layers)
    except ValueError as e:  # an activation or kernel this firmware does not have
        raise Refused("bad_model", "%s: %s" % (name, e))
    net.meta["name"] = name  # the store name is the identity on the board
    gc.collect()
    if gc.mem_free() < _REQUEST_ROOM:
        raise MemoryError
    return net, checksum, reply


class Active:
    """The active model: its net, its file's checksum and its batch reply buffer
    (reply_room), or None for each; load_error says why the model active at the
    last reset could not be loaded again."""

    def __init__(self):
        self.net = self.checksum = self.reply = None
        self.load_error = None
        try:
            os.mkdir(store.ROOT)
        except OSError:
            pass  # it exists
        # A reset during an upload leaves its temporary file: it is never a model.
        store.remove(UPLOAD_FILE)
        store.remove(_ACTIVE_TMP)
        store.remove(store.TRAIN_TMP)  # a reset during a training session's save leaves it
        try:
            with open(_ACTIVE_FILE) as f:
                name = f.read().strip()
        except OSError:
            name = None
        try:
            if name:
                try:
                    store.check_name(name)
                except ValueError:
                    raise Refused("bad_name", "the active-model file names %r, not a model" % name[:40])
                self.activate(name, remember=False)
        except Refused as e:
            self.load_error = e.message
        except Exception as e:  # a stored model must never keep the server from starting
            self.load_error = "%s: %s" % (type(e).__name__, e)

    @property
    def name(self):
        return self.net.name if self.net else None

    def need(self):
        if self.net is None:
            raise Refused("no_model", "no active model: upload one or select a stored one")
        return self.net

    def remember(self, name):
        # Which model is active survives a reset: written beside, then renamed over.
        with open(_ACTIVE_TMP, "w") as f:
            f.write(name or "")
        os.rename(_ACTIVE_TMP, _ACTIVE_FILE)

    def drop(self):
        previous = self.name
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
        forget("int8", "int8_thumb")

    def activate(self, name, path=None, remember=True):
        """Make a model active: the stored ``name``, or the verified upload at
        ``path``, which is stored as ``name`` once it has loaded. When anything
        fails, the store and the active model are as they were."""
        previous = self.name
        loaded = self._load_fitting(path or store.path(name), name)
        if path:
            try:
                os.rename(path, store.path(name))  # atomic: the old file or the new, never half
            except OSError as e:
                loaded = None
                if self.net is None:
                    self._restore(previous)
                raise flash_error(e)
        self.net, self.checksum, self.reply = loaded
        self._forget_int8()
        gc.collect()
        if remember:
            self.remember(name)

    def _load_fitting(self, path, name):
        # Beside the active model when the heap allows; otherwise in its place, and
        # if the new one still does not fit, the previous one is loaded back.
        try:
            return _load(path, name)
        except MemoryError:
            pass  # retried below without the active model
        previous = self.drop()
        try:
            return _load(path, name)
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
            self.net, self.checksum, self.reply = _load(store.path(previous), previous)
        except (MemoryError, Refused):
            self.net = self.checksum = self.reply = None
            gc.collect()
            return False
        return True

    def check_fits(self, name, need):
        # Refused at once: a model whose weights exceed the heap even without the active model.
        gc.collect()
        room = gc.mem_free() + (_weights_bytes(self.net.layers) if self.net else 0)
        if need > room:
            raise Refused("no_memory", "model %s needs %d bytes of heap for its weights; this board "
                          "has %d without a model" % (name, need, room))
