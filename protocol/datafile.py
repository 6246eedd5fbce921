# The data-set file (".data"): training rows stored on the board's flash, each row
# its inputs then its targets. The format is specified in DATA_FORMAT.md beside this
# file; this is its only implementation, run by the host (pack, and check before an
# upload) and by the board (check after an upload, read for training) under CPython
# and MicroPython alike.
import json
import struct
from array import array
from binascii import crc32

MAGIC = b"ANND"
VERSION = 1
# What a row's targets are; the number in the file is the index here: append, never reorder.
TARGETS = ("classes", "binary", "values")
_HEADER = "<4sBBIHHH"  # magic, version, targets, rows, inputs, outputs, metadata length
HEADER_SIZE = 16
MAX_WIDTH = 65535


class DataFileError(ValueError):
    pass


class Header:
    """What a data file's header and metadata say: its rows' shape and where they are."""

    def __init__(self, targets, rows, inputs, outputs, meta, start):
        self.targets, self.rows, self.inputs, self.outputs = targets, rows, inputs, outputs
        self.meta = meta
        self.start = start  # the offset of the first row
        self.row_bytes = 4 * (inputs + outputs)
        self.size = start + rows * self.row_bytes + 4  # the whole file, its CRC included


def _check_meta(meta, targets, inputs, outputs):
    if not isinstance(meta, dict):
        raise DataFileError("the data set's metadata is not a JSON object")
    for key in ("labels", "features"):
        items = meta.get(key)
        if items is not None and (not isinstance(items, list) or [v for v in items if not isinstance(v, str)]):
            raise DataFileError("the data set's '%s' must be a list of strings" % key)
    features, labels = meta.get("features"), meta.get("labels")
    if features and len(features) != inputs:
        raise DataFileError("the data set names %d features for its %d inputs" % (len(features), inputs))
    # As a model's labels: one per output, two (negative, positive) for one 0/1 output.
    if labels and (targets == "values" or len(labels) != max(2, outputs)):
        raise DataFileError("the data set names %d labels for %d %s targets" % (len(labels), outputs, targets))


def head(targets, rows, inputs, outputs, meta):
    """The header and metadata of a data file of ``rows`` rows (the bytes before its rows)."""
    if targets not in TARGETS:
        raise DataFileError("targets are one of %s, not %r" % (", ".join(TARGETS), targets))
    if not 0 < rows <= 0xFFFFFFFF or not 0 < inputs <= MAX_WIDTH or not 0 < outputs <= MAX_WIDTH:
        raise DataFileError("a data set has 1 or more rows, and 1 to %d inputs and targets" % MAX_WIDTH)
    _check_meta(meta, targets, inputs, outputs)
    raw = json.dumps(meta).encode()
    return struct.pack(_HEADER, MAGIC, VERSION, TARGETS.index(targets), rows, inputs, outputs, len(raw)) + raw


def pack(targets, inputs, outputs, body, meta):
    """The data file of ``body``: whole rows of ``inputs`` then ``outputs`` little-endian
    float32 values. Every value is checked (check) before the file is returned."""
    row = 4 * (inputs + outputs)
    if not body or len(body) % row:
        raise DataFileError("the rows are %d bytes, not whole rows of %d values" % (len(body), inputs + outputs))
    blob = head(targets, len(body) // row, inputs, outputs, meta) + bytes(body)
    blob += struct.pack("<I", crc32(blob) & 0xFFFFFFFF)
    from io import BytesIO

    check(BytesIO(blob))
    return blob


def read_header(stream):
    """The Header of the data file ``stream`` (at its start), checked, with ``crc``
    the running CRC-32 of its bytes so far."""
    data = stream.read(HEADER_SIZE)
    if not data or len(data) != HEADER_SIZE:
        raise DataFileError("the data file is truncated")
    magic, version, kind, rows, inputs, outputs, meta_len = struct.unpack(_HEADER, data)
    if magic != MAGIC:
        raise DataFileError("not an ANNE data file (bad magic): upload one with anne-host upload-data")
    if version != VERSION:
        raise DataFileError("data file version %d; this firmware reads version %d" % (version, VERSION))
    if kind >= len(TARGETS):
        raise DataFileError("data file targets kind %d is unknown" % kind)
    if rows < 1 or inputs < 1 or outputs < 1:
        raise DataFileError("the data file has no rows, no inputs or no targets")
    raw = stream.read(meta_len)
    if meta_len and (not raw or len(raw) != meta_len):
        raise DataFileError("the data file is truncated")
    try:
        meta = json.loads(raw) if meta_len else {}
    except ValueError:
        raise DataFileError("the data set's metadata is not valid JSON")
    _check_meta(meta, TARGETS[kind], inputs, outputs)
    h = Header(TARGETS[kind], rows, inputs, outputs, meta, HEADER_SIZE + meta_len)
    h.crc = crc32(raw, crc32(data))
    return h


def check_row(h, x, xa, t, ta, r):
    """DataFileError unless row ``r`` (its inputs at x[xa:], targets at t[ta:]) holds
    finite inputs and targets of the file's kind."""
    for i in range(h.inputs):
        if not -3.5e38 < x[xa + i] < 3.5e38:  # NaN fails both comparisons
            raise DataFileError("row %d, input %d is not a finite number (%r)" % (r, i, x[xa + i]))
    ones = 0
    for k in range(h.outputs):
        v = t[ta + k]
        if h.targets == "values":
            if not -3.5e38 < v < 3.5e38:
                raise DataFileError("row %d, target %d is not a finite number (%r)" % (r, k, v))
        elif v == 1.0:
            ones += 1
        elif v != 0.0:
            raise DataFileError("row %d, target %d is %r: %s targets are 0 or 1" % (r, k, v, h.targets))
    if h.targets == "classes" and ones != 1:
        raise DataFileError("row %d's targets name %d classes: one is 1, the others 0" % (r, ones))


def read_rows(stream, h, count, x, t, at):
    """The next ``count`` rows of the file (``stream`` at the first one's offset) into
    x (inputs) and t (targets) from row ``at`` on: their bytes, unchecked."""
    n, k = h.inputs, h.outputs
    xs, ts = memoryview(x), memoryview(t)
    for b in range(at, at + count):
        if stream.readinto(xs[b * n:(b + 1) * n]) != 4 * n or stream.readinto(ts[b * k:(b + 1) * k]) != 4 * k:
            raise DataFileError("the data file is truncated")


def _finish(stream, h):
    # The CRC-32 stored last must be that of every byte before it, and nothing follows.
    tail = stream.read(4)
    if not tail or len(tail) != 4:
        raise DataFileError("the data file is truncated")
    if struct.unpack("<I", tail)[0] != h.crc & 0xFFFFFFFF:
        raise DataFileError("the data file's checksum does not match: it is damaged; upload it again")
    if stream.read(1):
        raise DataFileError("the data file has bytes after its checksum")


def check(stream):
    """The Header of the data file ``stream``, every row and the CRC checked through
    one row of scratch (so a data set of any size is checked in a few bytes of heap)."""
    h = read_header(stream)
    x, t = array("f", bytearray(4 * h.inputs)), array("f", bytearray(4 * h.outputs))
    for r in range(h.rows):
        read_rows(stream, h, 1, x, t, 0)
        h.crc = crc32(t, crc32(x, h.crc))
        check_row(h, x, 0, t, 0, r)
    _finish(stream, h)
    return h


def load(stream):
    """(Header, inputs, targets) of the data file ``stream``: two flat float32 arrays,
    rows x inputs and rows x outputs, read straight into place and checked."""
    h = read_header(stream)
    x = array("f", bytearray(4 * h.rows * h.inputs))
    t = array("f", bytearray(4 * h.rows * h.outputs))
    read_rows(stream, h, h.rows, x, t, 0)
    xs, ts = memoryview(x), memoryview(t)
    n, k = h.inputs, h.outputs
    for r in range(h.rows):
        h.crc = crc32(ts[r * k:(r + 1) * k], crc32(xs[r * n:(r + 1) * n], h.crc))
        check_row(h, x, r * n, t, r * k, r)
    _finish(stream, h)
    return h, x, t
