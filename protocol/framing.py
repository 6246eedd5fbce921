"""Frames for msgpack bodies on a byte stream that may also carry garbage or REPL text.

Layout of one frame (all integers little-endian)::

    offset  size  field
    0       2     sync: 0xA7 0x4E
    2       2     body length n, u16, at most MAX_BODY (4096)
    4       n     body: one msgpack document
    4+n     4     CRC-32 (binascii.crc32, as zlib) of the 2 length bytes and the body, u32

A reader that loses its place drops ONE byte and scans for the next sync pair; it
never skips a claimed length, because after garbage the length is garbage too.
PROTOCOL.md ("Framing") is the specification; this module runs on host and board.
"""
import struct
from binascii import crc32

SYNC = b"\xa7\x4e"
MAX_BODY = 4096
HEADER_SIZE = 4
TRAILER_SIZE = 4
MAX_FRAME = HEADER_SIZE + MAX_BODY + TRAILER_SIZE


def _crc(header4, body):
    # Covers the length bytes too, so a corrupted length fails the check instead of
    # framing a different body that happens to match.
    return crc32(body, crc32(header4[2:4])) & 0xFFFFFFFF


def frame_parts(body):
    """(header, trailer) for ``body``: the board writes header, body, trailer in turn
    rather than copying a large body into one frame."""
    n = len(body)
    if n > MAX_BODY:
        raise ValueError("framing: body of %d bytes exceeds MAX_BODY %d" % (n, MAX_BODY))
    header = struct.pack("<BBH", 0xA7, 0x4E, n)
    return header, struct.pack("<I", _crc(header, body))


def seal(frame):
    """Complete a frame built in place: ``frame`` (a writable buffer, such as a
    memoryview of a bytearray) holds HEADER_SIZE bytes of room, the body, then
    TRAILER_SIZE bytes of room; the header and the CRC are written into the room.
    Returns ``frame``. The body must be at most MAX_BODY bytes."""
    n = len(frame) - HEADER_SIZE - TRAILER_SIZE
    if not 0 <= n <= MAX_BODY:
        raise ValueError("framing: body of %d bytes exceeds MAX_BODY %d" % (n, MAX_BODY))
    struct.pack_into("<BBH", frame, 0, 0xA7, 0x4E, n)
    view = memoryview(frame)
    struct.pack_into("<I", frame, HEADER_SIZE + n, _crc(view, view[HEADER_SIZE:HEADER_SIZE + n]))
    return frame


def encode(body):
    """One complete frame for ``body`` (bytes-like, at most MAX_BODY bytes)."""
    header, trailer = frame_parts(body)
    return header + bytes(body) + trailer


def parse_length(header4):
    """Body length from a header (the first 4 bytes of ``header4``), or None if
    those bytes are not a frame header."""
    if header4[0] != 0xA7 or header4[1] != 0x4E:
        return None
    n = header4[2] | (header4[3] << 8)
    return n if n <= MAX_BODY else None


def body_ok(header4, body, crc4):
    """True if ``body`` and the CRC bytes that followed it match ``header4``."""
    if parse_length(header4) != len(body):
        return False
    return struct.unpack("<I", crc4)[0] == _crc(header4, body)

