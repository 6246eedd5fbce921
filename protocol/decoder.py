"""The host's incremental frame reader (PROTOCOL.md, "Reading and resynchronisation").

It runs under MicroPython as well (the tests check it there), but the board reads
frames its own way (firmware/server.py) and never imports it.
"""
from .framing import HEADER_SIZE, SYNC, TRAILER_SIZE, body_ok, parse_length


class Decoder:
    """Incremental frame reader for the host: ``feed(data)``, then ``frames()``.

    Holds fewer than MAX_FRAME unparsed bytes between calls, whatever arrives, plus the
    verified bodies not yet collected. ``dropped`` counts the bytes that were not part
    of any valid frame.
    """

    def __init__(self):
        self._buf = bytearray()
        self._ready = []
        self.dropped = 0

    @property
    def buffered(self):
        """Bytes held that may still begin a frame."""
        return len(self._buf)

    def feed(self, data):
        self._buf.extend(data)
        self._scan(False)

    def flush(self):
        """Call after a read timeout: a header whose claimed body never arrived is
        garbage, so drop it a byte at a time and recover any frames buffered behind it."""
        self._scan(True)

    def frames(self):
        """The verified bodies decoded so far (each once), oldest first."""
        ready, self._ready = self._ready, []
        return ready

    def __iter__(self):
        return iter(self.frames())

    def _scan(self, final):
        buf = self._buf
        pos = 0
        end = len(buf)
        while True:
            sync = buf.find(SYNC, pos)
            if sync < 0:
                # Keep a trailing 0xA7: it may be the first half of a sync pair.
                keep = 1 if end > pos and buf[end - 1] == 0xA7 and not final else 0
                self.dropped += end - keep - pos
                pos = end - keep
                break
            self.dropped += sync - pos
            pos = sync
            n = None
            if end - pos >= HEADER_SIZE:
                n = parse_length(buf[pos:pos + HEADER_SIZE])
            elif not final:
                break  # wait for the rest of the header
            if n is not None:
                stop = pos + HEADER_SIZE + n + TRAILER_SIZE
                if stop <= end:
                    body = bytes(memoryview(buf)[pos + HEADER_SIZE:stop - TRAILER_SIZE])
                    if body_ok(buf[pos:pos + HEADER_SIZE], body, buf[stop - TRAILER_SIZE:stop]):
                        self._ready.append(body)
                        pos = stop
                        continue
                elif not final:
                    break  # wait for the rest of the frame (bounded: n <= MAX_BODY)
            # Bad length, bad CRC, or (on flush) a frame that never completed.
            self.dropped += 1
            pos += 1
        if pos:
            # Slicing rather than del: MicroPython's bytearray has no slice deletion.
            self._buf = buf[pos:]
