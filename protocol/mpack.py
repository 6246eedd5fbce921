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

# Tables are kept few and small: on the board every tuple and dict entry is heap.
# A type byte and a big-endian value, for struct: uint 8/16/32/64 (type bytes
# 0xcc-0xcf) then int 8/16/32/64 (0xd0-0xd3), entry k for a value of 1 << (k & 3)
# bytes. Lengths use the first three.
_TYPED = (">BB", ">BH", ">BI", ">BQ", ">Bb", ">Bh", ">Bi", ">Bq")
# Length prefixes: fix type byte, fix limit, then the type bytes of the 8-, 16- and
# 32-bit lengths (0: no such form).
_STR_HEAD = b"\xa0\x20\xd9\xda\xdb"
_BIN_HEAD = b"\x00\x00\xc4\xc5\xc6"
_ARRAY_HEAD = b"\x90\x10\x00\xdc\xdd"
_MAP_HEAD = b"\x80\x10\x00\xde\xdf"
_BIN, _STR, _ARRAY, _MAP = 0, 1, 2, 3

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

    def typed(self, code, k, value):
        # Type byte ``code``, then ``value`` as _TYPED[k] says.
        at = self.room(1 + (1 << (k & 3)))
        pack_into(_TYPED[k], self.buf, at, code, value)

    def raw(self, data):
        at = self.room(len(data))
        self.buf[at:self.n] = data

    def head(self, n, spec):
        if n < spec[1]:
            self.byte(spec[0] | n)
        elif n < 0x100 and spec[2]:
            self.typed(spec[2], 0, n)
        elif n < 0x10000:
            self.typed(spec[3], 1, n)
        elif n < 0x100000000:
            self.typed(spec[4], 2, n)
        else:
            raise ValueError("mpack: length %d does not fit msgpack" % n)

    def int(self, n):
        # The smallest encoding, as msgpack chooses it.
        if -32 <= n < 0x80:
            self.byte(n & 0xFF)  # positive or negative fixint
        elif n >= 0:
            if n < 0x10000:
                k = 0 if n < 0x100 else 1
            elif n < 0x100000000:
                k = 2
            elif n < 0x10000000000000000:
                k = 3
            else:
                raise ValueError("mpack: int %d is above the msgpack range (2**64-1)" % n)
            self.typed(0xCC + k, k, n)
        elif n >= -0x80000000:
            k = 4 if n >= -0x80 else (5 if n >= -0x8000 else 6)
            self.typed(0xCC + k, k, n)
        elif n >= -0x8000000000000000:
            self.typed(0xD3, 7, n)
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
            at = self.room(9)
            pack_into(">Bd", self.buf, at, 0xCB, obj)
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
        if 0xCA <= code <= 0xD3:
            return self.number(code)
        return self.sized(code, depth)

    def number(self, code):
        if code == 0xCA:
            return unpack_from(">f", self.mv, self.take(4))[0]
        if code == 0xCB:
            return unpack_from(">d", self.mv, self.take(8))[0]
        k = code - 0xCC
        # Read with its type byte, the byte before the value: one table for both ways.
        return unpack_from(_TYPED[k], self.mv, self.take(1 << (k & 3)) - 1)[1]

    def sized(self, code, depth):
        # bin 8/16/32, str 8/16/32, array 16/32, map 16/32: kind, then k (_TYPED) of the length.
        if 0xC4 <= code <= 0xC6:
            kind, k = _BIN, code - 0xC4
        elif 0xD9 <= code <= 0xDB:
            kind, k = _STR, code - 0xD9
        elif 0xDC <= code <= 0xDF:
            kind, k = _ARRAY if code < 0xDE else _MAP, 1 + (code & 1)
        else:  # 0xc1, ext 0xc7-0xc9, fixext 0xd4-0xd8 (timestamps too)
            raise ValueError("mpack: unsupported type byte 0x%02x at offset %d" % (code, self.pos - 1))
        n = unpack_from(_TYPED[k], self.mv, self.take(1 << k) - 1)[1]
        if kind == _STR:
            return self.read_str(n)
        if kind == _ARRAY:
            return self.read_array(n, depth)
        if kind == _MAP:
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
