"""Checks of a model file that only listing and uploading need: whether a file is a
whole model (probe), and whether the board's replies about a model fit a frame
(replies_problem). Apart from modelfile.py, which the REPL's anne.load needs
without them (on a board, code is heap); the server keeps them imported, so that a
model at the heap's edge cannot leave it unable to list or take an upload."""
import struct
from binascii import crc32

from . import modelfile as mf


def probe(stream, buf):
    """The number type of the whole model file ``stream`` ("float32", "int8"), or None
    for a file that is not one: its magic, version, number type, layer records that
    chain and add up to its length, and its CRC are checked, its values are not.
    ``buf`` (a bytearray) is the room the CRC is computed through."""
    head = stream.read(mf._HEADER_SIZE)
    if not head or len(head) != mf._HEADER_SIZE:
        return None
    magic, version, dtype, count, inputs, meta_len = struct.unpack(mf._HEADER, head)
    if magic != mf.MAGIC or version != mf.VERSION or dtype >= len(mf.DTYPES) or count < 1 or inputs < 1:
        return None
    stream.seek(mf._HEADER_SIZE + meta_len + (mf._INPUT_QUANT_SIZE if dtype == mf.DTYPE_INT8 else 0))
    if mf._array_sizes(stream, dtype, count, inputs) is None:
        return None
    left = stream.seek(0, 2) - 4
    stream.seek(0)
    view = memoryview(buf)
    crc = 0
    while left > 0:
        n = stream.readinto(view[:min(left, len(buf))])
        if not n:
            return None
        crc = crc32(view[:n], crc)
        left -= n
    tail = stream.read(4)
    if len(tail) != 4 or struct.unpack("<I", tail)[0] != crc & 0xFFFFFFFF:
        return None
    return mf.DTYPES[dtype]


def _str_bytes(text):
    # A str in msgpack (PROTOCOL.md): its UTF-8 and the longest header it may need.
    return 3 + len(text.encode()) if isinstance(text, str) else 9


def replies_problem(meta, layers, room=4096):
    """Why a board's replies about this model could not fit in a frame of ``room``
    bytes, or None: ``model`` (and ``select``) carry its labels, features and a
    record per layer, ``bench`` a record per layer. Every number and name is counted
    at its largest, so a model that passes is always described."""
    sizes = [0, 0, 0]  # labels, features, layers
    for k, key in enumerate(("labels", "features")):
        for item in meta.get(key) or ():
            sizes[k] += _str_bytes(item)
    for layer in layers:
        sizes[2] += 4 + _str_bytes(layer.kind) + _str_bytes(layer.activation)
    model = 256 + sum(sizes)  # its other fields and keys: under 256 bytes
    bench = 128 + len(layers) * 48 + sizes[2]  # 5 keys and 3 ints more per layer
    if model <= room and bench <= room:
        return None
    what = "%d layers" % len(layers)
    if sizes[0] > sizes[2] or sizes[1] > sizes[2]:
        what = "labels" if sizes[0] >= sizes[1] else "features"
        what = "%s (%d bytes)" % (what, sizes[0 if what == "labels" else 1])
    return ("its %s make the %s reply %d bytes, more than a frame's %d: shorten %s"
            % (what, "model" if model >= bench else "bench", max(model, bench), room,
               "them" if what[0] in "lf" else "the model"))
