# A msgpack codec for the subset the ANNE protocol uses (PROTOCOL.md, "Message
# encoding"). Written for both CPython and MicroPython: the board cannot install the
# msgpack package, and the host uses the real one only in tests, to prove that this
# codec writes the same bytes and reads what it writes.
#
# Supported: nil, bool, int (-2**63 .. 2**64-1), float (reads float32 and float64,
# writes float64 like msgpack.packb's default), str, bin, array, map (keys str or
# int). Refused with ValueError: ext and timestamp types, 0xc1, bad UTF-8, truncated
# input, trailing bytes, nesting deeper than MAX_DEPTH. The board decodes whatever
# arrives on the serial line, so the decoder checks every declared length against the
# bytes actually present before it allocates, and neither side recurses: the board's
# C stack overflows (RuntimeError) after about a dozen nested Python calls, so open
# containers wait on an explicit stack and any depth up to MAX_DEPTH works there.
#
# Written for MicroPython's costs: a call costs more than a few bytecodes, so the
# decoder is one loop over the bytes with its state in locals (the fastest names).
# Encoding writes into one bytearray that doubles when full; nothing is allocated per
# scalar. A Packer given a buffer large enough writes in place: the board builds a
# reply frame that way, header room, body and CRC room in one buffer, with a sample's
# outputs written straight into their bin (Packer.bin_room).
from struct import pack_into, unpack_from

# Containers nested deeper than this are refused both ways (PROTOCOL.md). Requests are
# flat maps and replies at most 3 levels deep; the limit bounds the heap that a hostile
# document can make the decoder hold open (a list or dict per level).
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
_BIN, _STR, _ARRAY, _MAP = 0, 1, 2, 3  # _BIN and _STR first: kind <= _STR is "bytes follow"

# Type tuples built once: a tuple written inside isinstance() is allocated per call.
_KEY_TYPES = (str, int)
_BUFFERS = (bytes, bytearray, memoryview)
_CONTAINERS = (list, tuple, dict)


def packb(obj):
    """Encode ``obj`` as msgpack bytes (tuples become arrays, bytes-likes bin)."""
    packer = Packer()
    packer.pack(obj)
    return bytes(memoryview(packer.buf)[:packer.n])


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
        self.view = memoryview(self.buf)  # of buf, for raw(); replaced when buf is
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
        buf[:self.n] = self.view[:self.n]
        self.buf = buf
        self.view = memoryview(buf)

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
        # Through a view of just these bytes: assigning to a slice of the whole buffer
        # also moves every byte after the slice onto itself (MicroPython's memmove: on
        # the board 0.05-0.3 ms per str or bin in a 4 KB reply buffer, however short).
        self.view[at:self.n][:] = data

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

    def pack(self, obj):
        # A dict first: the server packs every reply as one, and the scalar tests would all fail.
        if isinstance(obj, dict) or not self.scalar(obj):
            self.tree(obj)

    def scalar(self, obj):
        # Writes obj unless it is a list, tuple or dict (then False, nothing written).
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
        elif isinstance(obj, _CONTAINERS):
            return False
        else:
            raise TypeError("mpack: cannot encode %s" % type(obj).__name__)
        return True

    def tree(self, obj):
        # A list, tuple or dict, written without recursion: the board's C stack
        # overflows after about a dozen nested Python calls, so the containers still
        # being written wait on an explicit stack (at most MAX_DEPTH of them) with
        # the state of their loop. A dict is walked by its keys, counted (no
        # StopIteration), each value looked up: no tuple is made per entry.
        depth = 0
        stack = None  # (cur, keys, i, n) of each enclosing container; made when first needed
        while True:
            # obj is a container: its head, then it is the innermost one being written.
            if depth >= MAX_DEPTH:
                raise ValueError("mpack: nesting deeper than %d" % MAX_DEPTH)
            if depth:
                if stack is None:
                    stack = []
                stack.append(cur)
                stack.append(keys)
                stack.append(i)
                stack.append(n)
            depth += 1
            cur, n, i = obj, len(obj), 0
            if isinstance(obj, dict):
                self.head(n, _MAP_HEAD)
                keys = iter(obj)
            else:
                self.head(n, _ARRAY_HEAD)
                keys = None
            while True:
                if i < n:
                    if keys is None:
                        obj = cur[i]
                    else:
                        obj = next(keys)
                        # bool first: an int subclass in CPython but not in MicroPython, and
                        # refused everywhere to keep both interpreters in agreement.
                        if obj is True or obj is False or not isinstance(obj, _KEY_TYPES):
                            raise TypeError("mpack: map keys must be str or int, not %s"
                                            % type(obj).__name__)
                        self.scalar(obj)
                        obj = cur[obj]
                    i += 1
                    if not self.scalar(obj):
                        break  # a container: opened by the outer loop
                    continue
                # cur is complete: back to the container that holds it.
                depth -= 1
                if not depth:
                    return
                n = stack.pop()
                i = stack.pop()
                keys = stack.pop()
                cur = stack.pop()


def unpackb(buf, bin_view=False):
    """Decode one msgpack document that fills ``buf`` (bytes, bytearray, memoryview).

    With ``bin_view`` true, bin values are memoryview slices of ``buf`` instead of
    copies: the board uses this for upload chunks. They stay valid only while the
    caller leaves ``buf`` unchanged (do not reuse a receive buffer while they live).
    """
    # One loop, no call per value: the containers still open are kept on an explicit
    # stack, so that nesting costs heap (bounded by MAX_DEPTH) and never the C stack,
    # which on the board overflows after about a dozen nested Python calls. Locals,
    # not attributes: they are the fastest names MicroPython has.
    if not isinstance(buf, _BUFFERS):
        raise TypeError("mpack: cannot decode from %s" % type(buf).__name__)
    mv = memoryview(buf)
    end = len(mv)
    pos = 0
    depth = 0  # containers open: cur, and depth - 1 more saved on ``stack``
    cur = None  # the innermost open container
    is_map = False
    left = 0  # values still to read into cur; a map counts its keys and values
    key = None  # in a map: the key read last, waiting for its value
    stack = None  # (container, left, key) of each enclosing one; made when first needed
    try:
        while True:
            if pos >= end:
                raise _truncated(pos, 1, end)
            code = mv[pos]
            pos += 1
            kind = -1  # a scalar, unless a string, bin or container head is read
            if code < 0x80:  # positive fixint
                v = code
            elif code >= 0xE0:  # negative fixint
                v = code - 0x100
            elif code < 0xC0:  # fixmap 0x8_, fixarray 0x9_, fixstr 0xa0-0xbf
                if code >= 0xA0:
                    kind, n = _STR, code & 0x1F
                else:
                    kind, n = (_MAP if code < 0x90 else _ARRAY), code & 0x0F
            elif code == 0xC0:
                v = None
            elif code == 0xC2:
                v = False
            elif code == 0xC3:
                v = True
            elif 0xCA <= code <= 0xD3:  # float 32/64, uint 8-64, int 8-64
                if code < 0xCC:
                    size = 4 if code == 0xCA else 8
                    if size > end - pos:
                        raise _truncated(pos, size, end)
                    v = unpack_from(">f" if code == 0xCA else ">d", mv, pos)[0]
                else:
                    k = code - 0xCC
                    size = 1 << (k & 3)
                    if size > end - pos:
                        raise _truncated(pos, size, end)
                    # Read with its type byte, the byte before the value: one table for both ways.
                    v = unpack_from(_TYPED[k], mv, pos - 1)[1]
                pos += size
            else:
                # bin 8/16/32, str 8/16/32, array 16/32, map 16/32: kind, then k (_TYPED) of the length.
                if 0xC4 <= code <= 0xC6:
                    kind, k = _BIN, code - 0xC4
                elif 0xD9 <= code <= 0xDB:
                    kind, k = _STR, code - 0xD9
                elif 0xDC <= code <= 0xDF:
                    kind, k = (_ARRAY if code < 0xDE else _MAP), 1 + (code & 1)
                else:  # 0xc1, ext 0xc7-0xc9, fixext 0xd4-0xd8 (timestamps too)
                    raise ValueError("mpack: unsupported type byte 0x%02x at offset %d" % (code, pos - 1))
                size = 1 << k
                if size > end - pos:
                    raise _truncated(pos, size, end)
                n = unpack_from(_TYPED[k], mv, pos - 1)[1]
                pos += size
            if kind >= 0:
                if kind <= _STR:  # bin or str: its n bytes, checked before anything is built
                    if n > end - pos:
                        raise _truncated(pos, n, end)
                    v = mv[pos:pos + n]
                    pos += n
                    if kind == _STR:
                        v = str(v, "utf-8")
                    elif not bin_view:
                        v = bytes(v)
                else:
                    if depth >= MAX_DEPTH:
                        raise ValueError("mpack: nesting deeper than %d at offset %d" % (MAX_DEPTH, pos))
                    size = n if kind == _ARRAY else 2 * n
                    # Each element takes at least one byte: a count beyond what is left
                    # is a lie, refused before anything is built for it.
                    if size > end - pos:
                        raise ValueError("mpack: truncated input: container at offset %d needs at least"
                                         " %d bytes, %d left" % (pos, size, end - pos))
                    v = [] if kind == _ARRAY else {}
                    if size:  # open it: the values that follow are its own
                        if depth:
                            if stack is None:
                                stack = []
                            stack.append(cur)
                            stack.append(left)
                            stack.append(key)
                        cur, is_map, left = v, kind == _MAP, size
                        depth += 1
                        continue
            # v is complete: into the container it belongs to, closing every
            # container that it completes.
            while True:
                if not depth:
                    if pos != end:
                        raise ValueError("mpack: %d trailing bytes after the document" % (end - pos))
                    return v
                if not is_map:
                    cur.append(v)
                elif left & 1:  # odd: the value of the key before it
                    cur[key] = v
                elif v is True or v is False or not isinstance(v, _KEY_TYPES):
                    # bool first, as in Packer.tree.
                    raise ValueError("mpack: map key before offset %d is %s, not str or int"
                                     % (pos, type(v).__name__))
                else:
                    key = v
                left -= 1
                if left:
                    break
                v = cur
                depth -= 1
                if depth:
                    key = stack.pop()
                    left = stack.pop()
                    cur = stack.pop()
                    is_map = isinstance(cur, dict)
    except UnicodeError:  # from str(): the only decode error not raised above
        raise ValueError("mpack: invalid UTF-8 in a str")


def _truncated(pos, size, end):
    return ValueError("mpack: truncated input at offset %d: needs %d bytes, %d left"
                      % (pos, size, end - pos))
