"""The Python client of an ANNE board: one method per protocol command.

    from anne_host.client import Client
    with Client.open("sim") as board:      # or "/dev/ttyACM0", or None for the attached board
        board.upload(model_doc.pack(doc), "iris6")
        outputs, label_index, us = board.infer([5.9, 3.0, 5.1, 1.8])

It speaks PROTOCOL.md over any transport with write/read (a serial port, a
virtual Pico's pseudo-terminal): the client cannot tell the two apart.
"""

import struct
import time
import zlib

import numpy as np

from .errors import AnneError
from .protocol import framing, mpack
from .transport import LinkError, SerialTransport, find_board

PROTOCOL = 1
UPLOAD_CHUNK = 1024  # bytes of model per upload_chunk request
_REQUEST_BUDGET = 2048  # largest batch request: two in flight fit the link's buffers
_REPLY_BUDGET = framing.MAX_BODY - 96
_SERVER_START = "import anne.server\nanne.server.run()"
# Bytes that make the REPL act (raw REPL, interrupt, reset, paste, enter, escape):
# the first hello must not contain them, in case no server is listening.
_REPL_ACTIVE = frozenset(b"\x01\x02\x03\x04\x05\r\x1b")


class BoardError(AnneError):
    """The board answered with an error reply."""

    exit_code = 5

    def __init__(self, code, message):
        super().__init__("board refused: %s (%s)" % (message, code))
        self.code = code


class Client:
    def __init__(self, transport, timeout=10.0, vpico=None):
        self.transport = transport
        self.timeout = timeout
        self.vpico = vpico  # the private virtual Pico this client started, if any
        self.decoder = framing.Decoder()
        self.next_id = 1
        self.replies = {}
        self.info = None

    # -- connection --------------------------------------------------------
    @classmethod
    def open(cls, port=None, **kw):
        """Connect to ``port``: a device path, "sim" for a private virtual Pico,
        or None for the single attached Raspberry Pi board."""
        vpico = None
        if port == "sim":
            from .sim import VirtualPico

            vpico = VirtualPico().start()
            port = vpico.port
        try:
            client = cls(SerialTransport(port or find_board()), vpico=vpico, **kw)
            client.connect()
        except BaseException:
            if vpico:
                vpico.stop()
            raise
        return client

    def connect(self):
        """Say hello; start the server through the raw REPL if none answers."""
        try:
            self.info = self._probe()
        except LinkError:
            self.info = None
        if self.info is None:
            self.transport.raw_exec(_SERVER_START)
            self.decoder = framing.Decoder()
            self.info = self.call("hello", timeout=10)
        if self.info.get("protocol") != PROTOCOL:
            raise LinkError("the board's firmware speaks protocol %r, this anne-host %d: "
                            "run anne-host deploy" % (self.info.get("protocol"), PROTOCOL))
        return self.info

    def _probe(self):
        while True:
            request_id = self.next_id
            self.next_id += 1
            frame = framing.encode(mpack.packb({"id": request_id, "cmd": "hello"}))
            if not _REPL_ACTIVE.intersection(frame):
                break
        self.transport.write(frame)
        return self._wait(request_id, 0.7, quiet=True)

    def close(self):
        self.transport.close()
        if self.vpico:
            self.vpico.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- requests ----------------------------------------------------------
    def send(self, cmd, **fields):
        """Send a request without waiting; returns its id for ``result``."""
        request_id = self.next_id
        self.next_id += 1
        fields["id"] = request_id
        fields["cmd"] = cmd
        self.transport.write(framing.encode(mpack.packb(fields)))
        return request_id

    def result(self, request_id, timeout=None):
        reply = self._wait(request_id, timeout or self.timeout)
        if not reply.get("ok"):
            raise BoardError(reply.get("error"), reply.get("message"))
        return reply

    def call(self, cmd, timeout=None, **fields):
        return self.result(self.send(cmd, **fields), timeout)

    def _wait(self, request_id, timeout, quiet=False):
        end = time.monotonic() + timeout
        while request_id not in self.replies:
            if time.monotonic() > end:
                self.decoder.flush()
                if quiet:
                    return None
                raise LinkError("%s: the board stopped answering (no reply in %.0f s); "
                                "is it still connected and running the ANNE server?"
                                % (self.transport.port, timeout))
            self.decoder.feed(self.transport.read())
            for body in self.decoder.frames():
                try:
                    reply = mpack.unpackb(body)
                except ValueError:
                    continue
                if isinstance(reply, dict):
                    self.replies[reply.get("id")] = reply
        return self.replies.pop(request_id)

    # -- commands ----------------------------------------------------------
    def hello(self):
        self.info = self.call("hello")
        return self.info

    def model(self):
        return self.call("model")

    def list_models(self):
        return self.call("list")["models"]

    def select(self, name):
        return self.call("select", name=name)

    def delete(self, name):
        return self.call("delete", name=name)

    def stats(self):
        return self.call("stats")

    def reset_stats(self):
        self.call("reset")

    def bench(self, repeat=100, x=None):
        fields = {"repeat": repeat}
        if x is not None:
            fields["x"] = _f32(x)
        return self.call("bench", timeout=max(self.timeout, 120), **fields)

    def upload(self, blob, name, activate=True, progress=None):
        """Store ``blob`` (a packed model file) on the board as ``name``."""
        checksum = zlib.crc32(blob[:-4]) & 0xFFFFFFFF
        self.call("upload_begin", name=name, size=len(blob), checksum=checksum)
        for offset in range(0, len(blob), UPLOAD_CHUNK):
            chunk = blob[offset:offset + UPLOAD_CHUNK]
            self.call("upload_chunk", offset=offset, data=chunk)
            if progress:
                progress(len(chunk))
        return self.call("upload_end", activate=activate, timeout=max(self.timeout, 60))

    def infer(self, x):
        """(outputs, class index, board microseconds) for one sample."""
        reply = self.call("infer", x=_f32(x))
        return list(np.frombuffer(reply["y"], "<f4")), reply["class"], reply["us"]

    def batch(self, rows, outputs, window=2):
        """Run every row of ``rows`` (rows x inputs) on the board, keeping
        ``window`` requests in flight. Yields (outputs array, classes, us) per
        request, in order, so a caller keeps what arrived if the link fails."""
        rows = np.ascontiguousarray(rows, "<f4")
        n = rows.shape[1]
        per = max(1, min(_REQUEST_BUDGET // (4 * n), _REPLY_BUDGET // (4 * outputs + 5)))
        pending = []
        for start in range(0, len(rows), per):
            pending.append(self.send("batch", x=rows[start:start + per].tobytes()))
            if len(pending) >= window:
                yield self._batch_result(pending.pop(0), outputs)
        for request_id in pending:
            yield self._batch_result(request_id, outputs)

    def _batch_result(self, request_id, outputs):
        reply = self.result(request_id)
        y = np.frombuffer(reply["y"], "<f4").reshape(-1, outputs)
        classes = np.frombuffer(reply["class"], np.uint8)
        us = np.frombuffer(reply["us"], "<u4")
        return y, classes, us

    def exit(self):
        """Leave the server: the board is back at its REPL."""
        self.call("exit")
        self.transport.friendly_repl()


def _f32(x):
    return struct.pack("<%df" % len(x), *x)
