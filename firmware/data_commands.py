# The commands of data sets stored on the board (PROTOCOL.md, "Data sets"): data_begin,
# data_chunk and data_end upload one, data_list and data_delete look after them, and
# data_train and data_eval run the open training session (train_session.py) on one:
# a board trains from its own flash, the host only asks for each epoch.
#
# Service.occasional imports this module for each such request and forgets it after:
# nothing of it stays on the heap, not even during an upload, whose state is a tuple on
# the service (name, size, checksum) and the temporary file on the flash.
import os
import time

from micropython import const

from . import datasets, store
from .lifecycle import forget
from .protocol import datafile
from .refused import Refused, field, flash_error, int_field, is_int

_MIN_FILE = const(28)  # header, one row of one input and one target, CRC: the smallest data file
_FLASH_SPARE = const(4096)  # flash left free beyond an upload, as for models
_LIST_PAGE = const(16)  # entries per data_list reply at most
_LIST_ROOM = const(3600)  # bytes of entries per data_list reply
_ENTRY = const(160)  # an entry's bytes besides its name, labels and features
_NAMES_ROOM = const(2048)  # bytes of labels and features an entry may carry; more: nil
_BIN = (bytes, memoryview)


def handle(svc, req):
    cmd = req["cmd"]
    try:
        for name, run in (("data_begin", begin), ("data_chunk", chunk), ("data_end", end),
                          ("data_list", listing), ("data_delete", delete), ("data_train", train),
                          ("data_eval", evaluate)):
            if cmd == name:
                return run(svc, req)
        raise Refused("unknown_command", "unknown command %r" % cmd[:40])
    finally:
        # This module and what it imported go after each request (the service forgets
        # the others' modules; naming these there would be resident bytes).
        forget("data_commands", "datasets", "protocol.datafile")


def _name(req):
    name = field(req, "name", str, "a str")
    try:
        datasets.path(name)
    except ValueError as e:
        raise Refused("bad_name", str(e))
    return name


def _received():
    try:
        return os.stat(datasets.UPLOAD_FILE)[6]
    except OSError:
        return 0


def _upload(svc):
    up = getattr(svc, "data_upload", None)
    if not up:
        raise Refused("no_upload", "no data upload is open: send data_begin first")
    return up


def begin(svc, req):
    name = _name(req)
    size = int_field(req, "size")
    checksum = int_field(req, "checksum")
    if size < _MIN_FILE:
        raise Refused("bad_request", "a data file has at least %d bytes" % _MIN_FILE)
    if not 0 <= checksum <= 0xFFFFFFFF:
        raise Refused("bad_request", "a checksum is a CRC-32, 0 to 0xffffffff")
    free = store.flash_free()
    if free is not None:
        free += _received() if getattr(svc, "data_upload", None) else 0  # an open upload is discarded first
        if size + _FLASH_SPARE > free:
            raise Refused("no_space", "the data set needs %d bytes of flash; %d are free"
                          % (size, max(0, free - _FLASH_SPARE)))
    try:
        os.mkdir(datasets.ROOT)
    except OSError:
        pass  # it exists
    try:
        open(datasets.UPLOAD_FILE, "wb").close()
    except OSError as e:
        raise flash_error(e)
    svc.data_upload = (name, size, checksum)
    return {"received": 0}


def chunk(svc, req):
    offset = int_field(req, "offset")
    data = field(req, "data", _BIN, "bin")
    up = _upload(svc)
    received = _received()  # the file is the upload's state: closed between chunks, nothing half-open
    if offset != received:
        raise Refused("bad_offset", "chunk at offset %d, expected %d" % (offset, received))
    if received + len(data) > up[1]:
        raise Refused("too_long", "chunk goes past the announced size %d" % up[1])
    try:
        with open(datasets.UPLOAD_FILE, "ab") as f:
            f.write(data)
    except OSError as e:
        svc.data_upload = None
        store.remove(datasets.UPLOAD_FILE)
        raise flash_error(e)
    return {"received": received + len(data)}


def end(svc, req):
    name, size, checksum = _upload(svc)
    svc.data_upload = None  # closed whatever follows
    try:
        received = _received()
        if received != size:
            raise Refused("incomplete", "received %d of %d bytes" % (received, size))
        try:
            with open(datasets.UPLOAD_FILE, "rb") as f:
                h = datafile.check(f)
        except ValueError as e:
            raise Refused("bad_data", "%s: %s" % (name, e))
        if h.crc & 0xFFFFFFFF != checksum:
            raise Refused("bad_checksum", "data checksum %08x, announced %08x" % (h.crc & 0xFFFFFFFF, checksum))
        try:  # atomic: the old data set or the new, never half
            os.rename(datasets.UPLOAD_FILE, datasets.path(name))
        except OSError as e:
            raise flash_error(e)
    finally:
        store.remove(datasets.UPLOAD_FILE)
    return {"name": name, "rows": h.rows, "inputs": h.inputs, "outputs": h.outputs,
            "targets": h.targets, "checksum": checksum}


def listing(svc, req):
    after = req.get("after", "")
    if not isinstance(after, str):
        raise Refused("bad_request", "field 'after' must be a str")
    later = [n for n in datasets.names() if n > after]
    out = []
    room = _LIST_ROOM
    for name in later[:_LIST_PAGE]:
        p = datasets.path(name)
        entry = {"name": name, "size": os.stat(p)[6], "rows": None, "inputs": None, "outputs": None,
                 "targets": None, "labels": None, "features": None}
        try:  # the header only: data_end checked the rest, data_train checks it again
            with open(p, "rb") as f:
                h = datafile.read_header(f)
            entry.update({"rows": h.rows, "inputs": h.inputs, "outputs": h.outputs, "targets": h.targets})
            names = (h.meta.get("labels") or []) + (h.meta.get("features") or [])
            if sum(len(v.encode()) + 3 for v in names) <= _NAMES_ROOM:  # else nil: the entry must fit a reply
                entry.update({"labels": h.meta.get("labels"), "features": h.meta.get("features")})
        except (OSError, ValueError):
            pass  # not a readable data file: listed with nil figures, so that it can be deleted
        h = names = None
        room -= _ENTRY + len(name) + sum(len(v.encode()) + 3 for v in (entry["labels"] or []) + (entry["features"] or []))
        if room < 0 and out:
            break
        out.append(entry)
    return {"data": out, "next": out[-1]["name"] if len(later) > len(out) else None}


def delete(svc, req):
    name = _name(req)
    try:
        os.remove(datasets.path(name))
    except OSError:
        raise Refused("no_data", datasets.unknown(name))
    return {"deleted": name}


def _session(svc, req):
    # The fields, then the open session, then the stored data set checked whole (CRC,
    # every value) and against the session's net: nothing is computed on bad data.
    name = _name(req)
    session = svc.training
    if not session:
        raise Refused("no_training", "no training session is open: send train_begin first")
    try:
        f = open(datasets.path(name), "rb")
    except OSError:
        raise Refused("no_data", datasets.unknown(name))
    try:
        h = datafile.check(f)
        why = datasets.misfit(session.net, h.inputs, h.outputs, h.meta.get("labels"), h.targets, session.tr.loss)
    except ValueError as e:
        f.close()
        raise Refused("bad_data", "%s: %s" % (name, e))
    if why:
        f.close()
        raise Refused("bad_input", "%s: %s" % (name, why))
    return session, f, h


def _order(session, name, n, seed, epoch, step):
    # The rows of epoch ``epoch`` in net.fit(..., shuffle=seed)'s order: it applies each
    # epoch's order (train._order) to the rows as the previous epoch left them. The
    # session keeps the last epoch's order, so that epochs asked for in turn cost one step.
    kept = getattr(session, "data_order", None)
    if kept and kept[:3] == (name, n, seed) and kept[3] <= epoch:
        done, order = kept[3], kept[4]
    else:
        done, order = 0, list(range(n))
    for e in range(done, epoch):
        order = [order[o] for o in step(n, seed, e)]
    session.data_order = (name, n, seed, epoch, order)
    return order


def train(svc, req):
    """One epoch of the open session on the stored data set: batches of the session's
    rows in the file's order, or with ``shuffle`` (a seed) in the order net.fit's
    shuffle gives epoch ``epoch`` (1 the first). The epoch's loss sum, right decisions and board time."""
    shuffle = req.get("shuffle")
    epoch = req.get("epoch", 1)
    if shuffle is not None and not is_int(shuffle):
        raise Refused("bad_request", "field 'shuffle' must be an int (a seed) or nil")
    if not is_int(epoch) or epoch < 1:
        raise Refused("bad_request", "field 'epoch' must be a whole number, 1 or more")
    session, f, h = _session(svc, req)
    if session.diverged:
        f.close()
        raise Refused("diverged", session.diverged)
    from . import train as tr_module

    tr = session.tr
    x, t = tr.a[0], session.t
    order = None if shuffle is None else _order(session, req["name"], h.rows, shuffle, epoch, tr_module._order)
    total = 0.0
    right = steps_us = at = 0
    t0 = time.ticks_us()
    with f:
        f.seek(h.start)
        while at < h.rows:
            rows = min(tr.rows, h.rows - at)
            if order is None:
                datafile.read_rows(f, h, rows, x, t, 0)
            else:
                for b in range(rows):
                    f.seek(h.start + order[at + b] * h.row_bytes)
                    datafile.read_rows(f, h, 1, x, t, b)
            s0 = time.ticks_us()
            s, r = tr.train_batch(x, t, 0, rows)
            steps_us += time.ticks_diff(time.ticks_us(), s0)
            if not tr_module._finite(s):
                session.diverged = ("training diverged in epoch %d at row %d: the batch's loss is %r; stopped "
                                    "before that step, and nothing can be saved" % (epoch, at, s))
                raise Refused("diverged", session.diverged)
            session.steps += 1
            total += s
            right += r
            at += rows
    return {"loss": total, "right": right, "rows": h.rows, "step": session.steps,
            "us": time.ticks_diff(time.ticks_us(), t0), "steps_us": steps_us}


def evaluate(svc, req):
    """The loss sum and right decisions of the session's net on every row of the
    stored data set, a batch at a time; no weight changes."""
    session, f, h = _session(svc, req)
    tr = session.tr
    x, t = tr.a[0], session.t
    total = 0.0
    right = at = 0
    t0 = time.ticks_us()
    with f:
        f.seek(h.start)
        while at < h.rows:
            rows = min(tr.rows, h.rows - at)
            datafile.read_rows(f, h, rows, x, t, 0)
            tr._forward(rows)
            s, r = (tr._mse if tr.loss == "mse" else tr._loss)(t, 0, rows)
            total += s
            right += r
            at += rows
    return {"loss": total, "right": right, "rows": h.rows, "us": time.ticks_diff(time.ticks_us(), t0)}
