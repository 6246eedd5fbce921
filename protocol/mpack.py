# A msgpack codec for the subset the ANNE protocol uses (PROTOCOL.md, "Message
# encoding"). Written for both CPython and MicroPython: the board cannot install the
# msgpack package, and the host uses the real one only in tests, to prove that this
# codec writes the same bytes and reads what it writes.
#
# Supported: nil, bool, int (-2**63 .. 2**64-1), float (reads float32 and float64,
# writes float64 like msgpack.packb's default), str, bin, array, map (keys str or
# int). Refused with ValueError: ext and timestamp types, 0xc1, bad UTF-8, truncated
# input, trailing bytes, nesting deeper than MAX_DEPTH. The board decodes whatever
# arrives on the serial line, so the decoder never recurses without bound and checks
# every declared length against the bytes actually present before it allocates.
#
# Written for MicroPython's costs: a call whose frame (locals plus value stack) is over
# 11 words gets that frame from the heap, so the per-value methods below are kept
# small and loops live in the per-container methods. Encoding writes into one
# bytearray that doubles when full; nothing is allocated per scalar. A Packer given
# a buffer large enough writes in place: the board builds a reply frame that way,
# header room, body and CRC room in one buffer, with a sample's outputs written
# straight into their bin (Packer.bin_room).
from struct import pack_into, unpack_from

# Containers nested deeper than this are refused both ways. Protocol messages are a
# few levels deep; the limit keeps recursion on the board's small C stack bounded.
MAX_DEPTH = 16

# Typed encodings: (struct format of type byte + value, total size, type byte).
_U8, _U16, _U32, _U64 = (">BB", 2, 0xCC), (">BH", 3, 0xCD), (">BI", 5, 0xCE), (">BQ", 9, 0xCF)
_I8, _I16, _I32, _I64 = (">Bb", 2, 0xD0), (">Bh", 3, 0xD1), (">Bi", 5, 0xD2), (">Bq", 9, 0xD3)
_F64 = (">Bd", 9, 0xCB)
# Length prefixes: (fix type byte, fix limit, 8-bit, 16-bit, 32-bit encodings).
_STR_HEAD = (0xA0, 32, (">BB", 2, 0xD9), (">BH", 3, 0xDA), (">BI", 5, 0xDB))
_BIN_HEAD = (0, 0, (">BB", 2, 0xC4), (">BH", 3, 0xC5), (">BI", 5, 0xC6))
_ARRAY_HEAD = (0x90, 16, None, (">BH", 3, 0xDC), (">BI", 5, 0xDD))
_MAP_HEAD = (0x80, 16, None, (">BH", 3, 0xDE), (">BI", 5, 0xDF))

# Decoding. Fixed-size numbers: type byte -> (format, size).
_NUMBERS = {
    0xCA: (">f", 4), 0xCB: (">d", 8),
    0xCC: (">B", 1), 0xCD: (">H", 2), 0xCE: (">I", 4), 0xCF: (">Q", 8),
    0xD0: (">b", 1), 0xD1: (">h", 2), 0xD2: (">i", 4), 0xD3: (">q", 8),
}
_BIN, _STR, _ARRAY, _MAP = 0, 1, 2, 3
# Sized types: type byte -> (kind, format of the length, its size).
_SIZED = {
    0xC4: (_BIN, ">B", 1), 0xC5: (_BIN, ">H", 2), 0xC6: (_BIN, ">I", 4),
    0xD9: (_STR, ">B", 1), 0xDA: (_STR, ">H", 2), 0xDB: (_STR, ">I", 4),
    0xDC: (_ARRAY, ">H", 2), 0xDD: (_ARRAY, ">I", 4),
    0xDE: (_MAP, ">H", 2), 0xDF: (_MAP, ">I", 4),
}

# Type tuples built once: a tuple written inside isinstance() is allocated per call.
_KEY_TYPES = (str, int)
_BUFFERS = (bytes, bytearray, memoryview)
_SEQUENCES = (list, tuple)


def packb(obj):
    """Encode ``obj`` as msgpack bytes (tuples become arrays, bytes-likes bin)."""
    packer = Packer()
    packer.pack(obj)
    return bytes(memoryview(packer.buf)[:packer.n])


def _is_key(key):
    # bool is tested first: it is an int subclass in CPython but not in MicroPython,
    # and refusing it everywhere keeps both interpreters in agreement.
    return key is not True and key is not False and isinstance(key, _KEY_TYPES)


class Packer:
    """Encodes into one bytearray, ``buf``, from offset ``start`` on: ``buf[start:n]``
    is what has been packed so far. A full buffer is replaced by one twice as large;
    given a buffer large enough, the packer writes in place. Besides ``pack``, a
    document can be built a piece at a time: ``map_head(k)`` starts a map of k
    entries (k keys and k values packed next, in turn), and ``bin_room(size)``
    writes a bin's header and returns the offset of its ``size`` bytes, for the
    caller to fill (they are left as they were in the buffer)."""

    def __init__(self, buf=None, start=0):
        self.buf = bytearray(64) if buf is None else buf
        self.n = start

    def room(self, size):
        # Offset for the next ``size`` bytes; doubling keeps packing linear.
        at = self.n
        if at + size > len(self.buf):
            self.grow(at + size)
        self.n = at + size
        return at

    def grow(self, need):
        buf = bytearray(max(need, 2 * len(self.buf)))
        buf[:self.n] = memoryview(self.buf)[:self.n]
        self.buf = buf

    # room() may replace self.buf, so it is called before self.buf is read.
    def byte(self, value):
        at = self.room(1)
        self.buf[at] = value

    def typed(self, spec, value):
        at = self.room(spec[1])
        pack_into(spec[0], self.buf, at, spec[2], value)

    def raw(self, data):
        at = self.room(len(data))
        self.buf[at:self.n] = data

    def head(self, n, spec):
        if n < spec[1]:
            self.byte(spec[0] | n)
        elif n < 0x100 and spec[2]:
            self.typed(spec[2], n)
        elif n < 0x10000:
            self.typed(spec[3], n)
        elif n < 0x100000000:
            self.typed(spec[4], n)
        else:
            raise ValueError("mpack: length %d does not fit msgpack" % n)

    def int(self, n):
        # The smallest encoding, as msgpack chooses it.
        if -32 <= n < 0x80:
            self.byte(n & 0xFF)  # positive or negative fixint
        elif n >= 0:
            if n < 0x10000:
                self.typed(_U8 if n < 0x100 else _U16, n)
            elif n < 0x100000000:
                self.typed(_U32, n)
            elif n < 0x10000000000000000:
                self.typed(_U64, n)
            else:
                raise ValueError("mpack: int %d is above the msgpack range (2**64-1)" % n)
        elif n >= -0x8000:
            self.typed(_I8 if n >= -0x80 else _I16, n)
        elif n >= -0x80000000:
            self.typed(_I32, n)
        elif n >= -0x8000000000000000:
            self.typed(_I64, n)
        else:
            raise ValueError("mpack: int %d is below the msgpack range (-2**63)" % n)

    def map_head(self, k):
        self.head(k, _MAP_HEAD)

    def bin_room(self, size):
        self.head(size, _BIN_HEAD)
        return self.room(size)

    def pack(self, obj, depth=0):
        if obj is None:
            self.byte(0xC0)
        elif obj is True:  # before int: bool is an int subclass in CPython
            self.byte(0xC3)
        elif obj is False:
            self.byte(0xC2)
        elif isinstance(obj, int):
            self.int(obj)
        elif isinstance(obj, float):
            self.typed(_F64, obj)
        elif isinstance(obj, str):
            obj = obj.encode("utf-8")
            self.head(len(obj), _STR_HEAD)
            self.raw(obj)
        elif isinstance(obj, _BUFFERS):
            self.head(len(obj), _BIN_HEAD)
            self.raw(obj)
        elif isinstance(obj, _SEQUENCES):
            self.array(obj, depth)
        elif isinstance(obj, dict):
            self.map(obj, depth)
        else:
            raise TypeError("mpack: cannot encode %s" % type(obj).__name__)

    def array(self, items, depth):
        if depth >= MAX_DEPTH:
            raise ValueError("mpack: nesting deeper than %d" % MAX_DEPTH)
        self.head(len(items), _ARRAY_HEAD)
        i = 0
        while i < len(items):  # not a for loop: its iterator would push the frame to the heap
            self.pack(items[i], depth + 1)
            i += 1

    def map(self, items, depth):
        if depth >= MAX_DEPTH:
            raise ValueError("mpack: nesting deeper than %d" % MAX_DEPTH)
        self.head(len(items), _MAP_HEAD)
        for key, value in items.items():
            if not _is_key(key):
                raise TypeError("mpack: map keys must be str or int, not %s" % type(key).__name__)
            self.pack(key, depth + 1)
            self.pack(value, depth + 1)


def unpackb(buf, bin_view=False):
    """Decode one msgpack document that fills ``buf`` (bytes, bytearray, memoryview).

    With ``bin_view`` true, bin values are memoryview slices of ``buf`` instead of
    copies: the board uses this for upload chunks. They stay valid only while the
    caller leaves ``buf`` unchanged (do not reuse a receive buffer while they live).
    """
    if not isinstance(buf, _BUFFERS):
        raise TypeError("mpack: cannot decode from %s" % type(buf).__name__)
    reader = _Reader(buf, bin_view)
    try:
        obj = reader.value(0)
    except UnicodeError:  # caught here, not per str, to keep read_str's frame small
        raise ValueError("mpack: invalid UTF-8 in a str")
    if reader.pos != reader.end:
        raise ValueError("mpack: %d trailing bytes after the document" % (reader.end - reader.pos))
    return obj


class _Reader:
    def __init__(self, buf, bin_view):
        self.mv = memoryview(buf)
        self.pos = 0
        self.end = len(self.mv)
        self.bin_view = bin_view

    def take(self, size):
        # Offset of the next ``size`` bytes. Every read and every declared length is
        # checked here against what is left, before anything is built from it.
        at = self.pos
        if size > self.end - at:
            raise self.truncated(size)
        self.pos = at + size
        return at

    def truncated(self, size):
        return ValueError("mpack: truncated input at offset %d: needs %d bytes, %d left"
                          % (self.pos, size, self.end - self.pos))

    def value(self, depth):
        code = self.mv[self.take(1)]
        if code < 0x80:  # positive fixint
            return code
        if code >= 0xE0:  # negative fixint
            return code - 0x100
        if code < 0x90:
            return self.read_map(code & 0x0F, depth)
        if code < 0xA0:
            return self.read_array(code & 0x0F, depth)
        if code < 0xC0:
            return self.read_str(code & 0x1F)
        if code == 0xC0:
            return None
        if code == 0xC2:
            return False
        if code == 0xC3:
            return True
        if code in _NUMBERS:
            return self.number(_NUMBERS[code])
        return self.sized(code, depth)

    def number(self, spec):
        return unpack_from(spec[0], self.mv, self.take(spec[1]))[0]

    def sized(self, code, depth):
        spec = _SIZED.get(code)
        if spec is None:  # 0xc1, ext 0xc7-0xc9, fixext 0xd4-0xd8 (timestamps too)
            raise ValueError("mpack: unsupported type byte 0x%02x at offset %d" % (code, self.pos - 1))
        n = unpack_from(spec[1], self.mv, self.take(spec[2]))[0]
        if spec[0] == _STR:
            return self.read_str(n)
        if spec[0] == _ARRAY:
            return self.read_array(n, depth)
        if spec[0] == _MAP:
            return self.read_map(n, depth)
        view = self.mv[self.take(n):self.pos]
        return view if self.bin_view else bytes(view)

    def read_str(self, n):
        return str(self.mv[self.take(n):self.pos], "utf-8")

    def enter(self, n, depth):
        # Each element takes at least one byte: a count beyond what is left is a lie,
        # refused before the loop can build anything.
        if depth >= MAX_DEPTH:
            raise ValueError("mpack: nesting deeper than %d at offset %d" % (MAX_DEPTH, self.pos))
        if n > self.end - self.pos:
            raise ValueError("mpack: truncated input: container at offset %d needs at least"
                             " %d bytes, %d left" % (self.pos, n, self.end - self.pos))

    # Counting down in a while loop keeps these frames small enough for the C stack.
    def read_array(self, n, depth):
        self.enter(n, depth)
        items = []
        while n:
            n -= 1
            items.append(self.value(depth + 1))
        return items

    def read_map(self, n, depth):
        self.enter(2 * n, depth)
        items = {}
        while n:
            n -= 1
            key = self.value(depth + 1)
            if not _is_key(key):
                raise ValueError("mpack: map key before offset %d is %s, not str or int"
                                 % (self.pos, type(key).__name__))
            items[key] = self.value(depth + 1)
        return items
