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
from .protocol.decoder import Decoder
from .protocol.commands import REPEATABLE
from .transport import LinkError, NoAnswer, SerialTransport, find_board

PROTOCOL = 2  # the firmware this anne-host deploys speaks it
UPLOAD_CHUNK = 1024  # bytes of model per upload_chunk request
# A batch request carries as many samples as one frame holds (less room for the map's
# keys and id), and so does its reply: every request costs the board a fixed time
# (reading and checking the frame, decoding it, building and writing the reply), so
# the fewer requests the better. With two in flight the board always has the next
# request when it finishes one; when the host writes a request, at most one other
# waits unread on the link (in the board's 512-byte receive buffer and the host's
# USB buffers), which keeps the host from blocking on a write while the board
# waits for it to read a reply.
_REQUEST_BUDGET = framing.MAX_BODY - 64
_REPLY_BUDGET = framing.MAX_BODY - 96
_WINDOW = 2
# Typed at the friendly REPL, so that a Ctrl-C that stops the server leaves a person
# there (from the raw REPL, the server would return to the raw REPL).
_SERVER_START = "import anne.server;anne.server.run()"
# Bytes that make the REPL act (raw REPL, interrupt, reset, paste, enter, escape):
# the first hello must not contain them, in case no server is listening.
_REPL_ACTIVE = frozenset(b"\x01\x02\x03\x04\x05\r\x1b")
# Resynchronisation (PROTOCOL.md): a frame's worth of zero bytes completes any frame
# the board's reader may be waiting for, and can itself never start one. Zero is
# not the sync byte, not Ctrl-C, and the REPL ignores it if no server is running.
FILLER = bytes(framing.MAX_FRAME)
_PROBE_WAIT = 0.7  # s: a running server answers hello at once
_RESYNC_WAIT = 2.0  # s: a board reads the filler a byte at a time (about 0.2 s on a Pico)
# s: from the first hello, how long a silent board may be a server still importing at
# boot (main.py): 0.4 s on a Pico, a few s on the emulated one, which runs at ~20 %.
BOOT_WAIT = 10.0
_IMPORT_WAIT = 10.0  # s: for the server started from the REPL to answer
# Requests that do the same when sent twice: repeated after a resync (protocol/commands.py).
_REPEATABLE = REPEATABLE


class BoardError(AnneError):
    """The board answered with an error reply."""

    exit_code = 5

    def __init__(self, code, message):
        super().__init__("board refused: %s (%s)" % (message, code))
        self.code = code
        self.message = message


class Client:
    def __init__(self, transport, timeout=10.0, vpico=None):
        self.transport = transport
        self.timeout = timeout
        self.vpico = vpico  # the private virtual Pico this client started, if any
        self.decoder = Decoder()
        self.next_id = 1
        self.pending = {}  # id -> (cmd, frame) of requests sent and not answered yet
        self.replies = {}
        self.received = 0  # bytes read from the board, frames or not
        self.heard = b""  # the last bytes read, to quote what a REPL said
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
        """Say hello. If no server answers: resynchronise (a reader may be waiting
        for the rest of a frame a previous host never finished); if the board stays
        silent, wait up to BOOT_WAIT for a server starting at boot; and if still none
        answers, start the server from the board's friendly REPL."""
        start = time.monotonic()
        info = waited = None
        try:
            before = self.received
            info = self._probe()
            if info is None and self.received == before:
                # Silence, not a REPL echoing the probe: a server may be waiting for
                # the rest of a frame that a previous host never finished.
                info = self.resync()
            if info is None and self.received == before:
                info = self._await_boot(start + BOOT_WAIT)
                waited = time.monotonic() - start
        except LinkError:
            info = None
        self.info = info or self._start_server(waited)
        if self.info.get("protocol") != PROTOCOL:
            raise LinkError("the board's firmware speaks protocol %r, this anne-host %d: "
                            "run anne-host deploy" % (self.info.get("protocol"), PROTOCOL))
        return self.info

    def _start_server(self, waited=None, repl_wait=5.0):
        try:
            self.transport.type_line(_SERVER_START, repl_wait)
        except NoAnswer:
            raise LinkError("%s: no ANNE server answered%s, and the board's REPL did not answer "
                            "either; reset the board (unplug it) and retry"
                            % (self.transport.port, " in %.0f s (nor one starting at boot)" % waited
                               if waited else ""))
        self.decoder = Decoder()
        info = self._probe(timeout=_IMPORT_WAIT)  # importing the firmware takes a moment on a board
        if info is None:
            said = [line for line in self.heard.decode(errors="replace").splitlines() if "Error" in line]
            raise LinkError("%s: the ANNE server did not start from the board's REPL%s; is the "
                            "firmware installed? (anne-host deploy)"
                            % (self.transport.port, " (it said: %s)" % said[-1].strip() if said else ""))
        return info

    def _hello(self):
        """Send a hello that is harmless at a REPL; its id."""
        while True:
            request_id = self.next_id
            self.next_id += 1
            frame = framing.encode(mpack.packb({"id": request_id, "cmd": "hello"}))
            if not _REPL_ACTIVE.intersection(frame):
                break
        self.pending[request_id] = ("hello", frame)
        self.transport.write(frame)
        return request_id

    def _probe(self, timeout=_PROBE_WAIT):
        """A hello that is harmless at a REPL: its reply, or None after ``timeout``."""
        return self._wait(self._hello(), timeout, quiet=True)

    def _await_boot(self, deadline):
        """The board is silent: a server may still be importing at boot (main.py), the
        board may sit at the raw REPL (which echoes nothing) or run a program. Ctrl-A
        makes a raw REPL answer (a server takes it for garbage); a hello every second
        until ``deadline`` finds a server once it reads. Its reply, or None."""
        before = self.received
        self.transport.write(b"\x01")
        sent, next_hello, heard = [], 0.0, None
        try:
            while time.monotonic() < deadline:
                if time.monotonic() >= next_hello:
                    sent.append(self._hello())
                    next_hello = time.monotonic() + 1.0
                self._receive()
                for request_id in sent:
                    if request_id in self.replies:
                        return self.replies.pop(request_id)
                if self.received > before:
                    # Bytes, but no reply yet: a REPL or a program, unless a reply is arriving.
                    heard = heard or time.monotonic()
                    if time.monotonic() - heard > 0.5:
                        return None
            return None
        finally:
            for request_id in sent:
                self.pending.pop(request_id, None)
                self.replies.pop(request_id, None)

    def resync(self):
        """Send the filler, then hello: the hello's reply, or None if none came."""
        self.transport.write(FILLER)
        return self._probe(_RESYNC_WAIT)

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
        frame = framing.encode(mpack.packb(fields))
        self.pending[request_id] = (cmd, frame)
        self.transport.write(frame)
        return request_id

    def result(self, request_id, timeout=None):
        reply = self._wait(request_id, timeout or self.timeout)
        if not reply.get("ok"):
            raise BoardError(reply.get("error"), reply.get("message"))
        return reply

    def call(self, cmd, timeout=None, **fields):
        return self.result(self.send(cmd, **fields), timeout)

    def _wait(self, request_id, timeout, quiet=False):
        recovered = quiet  # a quiet probe never recovers: its silence is the answer
        end = time.monotonic() + timeout
        while request_id not in self.replies:
            if time.monotonic() > end:
                self.decoder.flush()
                if recovered:
                    self.pending.pop(request_id, None)
                    if quiet:
                        return None
                    raise self._silent(timeout)
                self._recover(timeout)
                recovered = True
                end = time.monotonic() + timeout
            self._receive()
        self.pending.pop(request_id, None)
        return self.replies.pop(request_id)

    def _receive(self):
        data = self.transport.read()
        self.received += len(data)
        self.heard = (self.heard + data)[-300:]
        self.decoder.feed(data)
        for body in self.decoder.frames():
            try:
                reply = mpack.unpackb(body)
            except ValueError:
                continue
            # Replies to requests given up on (or answered twice after a repeat) are dropped.
            if isinstance(reply, dict) and reply.get("id") in self.pending:
                self.replies[reply.get("id")] = reply

    def _silent(self, timeout):
        return LinkError("%s: the board stopped answering (no reply in %.0f s, nor after a resync); "
                         "is it still connected? Unplug it, plug it in again and retry"
                         % (self.transport.port, timeout))

    def _recover(self, timeout):
        """After a timeout (PROTOCOL.md, "Recovery"): resynchronise the board's reader,
        restart the server if none answers, then send again the unanswered requests
        that are safe to repeat. LinkError if the board does not come back or a lost
        request cannot be repeated."""
        lost = [(rid, sent) for rid, sent in self.pending.items() if rid not in self.replies]
        for rid, _ in lost:
            del self.pending[rid]
        if not (self.resync() or self.restart_server()):
            raise self._silent(timeout)
        unsafe = [sent[0] for _, sent in lost if sent[0] not in _REPEATABLE]
        if unsafe:
            raise LinkError("%s: no reply to %s in %.0f s; the board answers again, but whether it "
                            "did it is unknown: check with anne-host info or ls, and run the command "
                            "again" % (self.transport.port, unsafe[0], timeout))
        for rid, sent in lost:
            self.pending[rid] = sent
            self.transport.write(sent[1])

    def restart_server(self):
        """For when no server answers even after a resync: it has left (Ctrl-C from
        noise on the line, a reset). Start it again; its hello reply, or None."""
        try:
            return self._start_server(repl_wait=_RESYNC_WAIT)  # a REPL answers at once
        except LinkError:
            return None

    # -- commands ----------------------------------------------------------
    def hello(self):
        self.info = self.call("hello")
        return self.info

    def model(self):
        return self.call("model")

    def list_models(self):
        """Every stored model (and foreign file), page by page (PROTOCOL.md, list)."""
        return self._pages("list", "models")

    def _pages(self, cmd, key):
        # Every entry of a paged listing: each reply's ``key``, until its "next" is nil.
        found, after = [], ""
        while True:
            reply = self.call(cmd, after=after)
            found.extend(reply[key])
            after = reply.get("next")
            if after is None:
                return found

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
        self._send_file("upload", blob, name, progress)
        return self.call("upload_end", activate=activate, timeout=max(self.timeout, 60))

    def _send_file(self, kind, blob, name, progress):
        # A file's begin and its chunks: kind "upload" (a model) or "data" (a data set).
        checksum = zlib.crc32(blob[:-4]) & 0xFFFFFFFF
        self.call(kind + "_begin", name=name, size=len(blob), checksum=checksum)
        for offset in range(0, len(blob), UPLOAD_CHUNK):
            chunk = blob[offset:offset + UPLOAD_CHUNK]
            self.call(kind + "_chunk", offset=offset, data=chunk)
            if progress:
                progress(len(chunk))

    def infer(self, x):
        """(outputs, class index, board microseconds) for one sample."""
        reply = self.call("infer", x=_f32(x))
        return list(np.frombuffer(reply["y"], "<f4")), reply["class"], reply["us"]

    def batch(self, rows, outputs, window=_WINDOW):
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

    def pull(self, name):
        """The stored model file ``name``, as the board holds it (its CRC unchecked)."""
        blob = bytearray()
        while True:
            reply = self.call("pull", name=name, offset=len(blob))
            blob += reply["data"]
            if len(blob) >= reply["size"] or not reply["data"]:
                return bytes(blob)

    # -- training (PROTOCOL.md, "Training") --------------------------------
    def train_begin(self, name, batch, lr, optimizer="sgd", momentum=0.0, loss=None, new=None, last=None):
        """Open a training session on the stored model ``name``, or with ``new`` (a dict of
        sizes, activations, seed, labels, features) on a new net to be saved as ``name``.
        ``last``: train only the last N layers (the others stay as they are); None: all."""
        fields = {"name": name, "batch": batch, "lr": float(lr), "optimizer": optimizer,
                  "momentum": float(momentum)}
        if loss:
            fields["loss"] = loss
        if last is not None:
            fields["last"] = last
        fields.update({k: v for k, v in (new or {}).items() if v is not None})
        return self.call("train_begin", timeout=max(self.timeout, 60), **fields)

    @staticmethod
    def step_rows(inputs, outputs):
        """The most rows a training step can carry: its rows travel in one request frame."""
        return _REQUEST_BUDGET // (4 * (inputs + outputs))

    def train_epoch(self, x, t, batch, window=_WINDOW):
        """One step per ``batch`` rows of inputs ``x`` and targets ``t``, in order, keeping
        ``window`` steps in flight; yields each step's reply (loss sum, right, us)."""
        x, t = np.ascontiguousarray(x, "<f4"), np.ascontiguousarray(t, "<f4")
        pending = []
        for start in range(0, len(x), batch):
            pending.append(self.send("train_step", x=x[start:start + batch].tobytes(),
                                     y=t[start:start + batch].tobytes()))
            if len(pending) >= window:
                yield self.result(pending.pop(0))
        for request_id in pending:
            yield self.result(request_id)

    def train_eval(self, x, t):
        """(loss, accuracy, board µs) of the session's net on inputs ``x``, targets ``t``."""
        x, t = np.ascontiguousarray(x, "<f4"), np.ascontiguousarray(t, "<f4")
        per = max(1, _REQUEST_BUDGET // (4 * (x.shape[1] + t.shape[1])))
        total = right = us = 0
        for start in range(0, len(x), per):
            reply = self.call("train_eval", x=x[start:start + per].tobytes(), y=t[start:start + per].tobytes())
            total += reply["loss"]
            right += reply["right"]
            us += reply["us"]
        return total / len(x), right / len(x), us

    def train_end(self, save=True):
        return self.call("train_end", save=save, timeout=max(self.timeout, 60))

    # -- data sets stored on the board (PROTOCOL.md, "Data sets") -----------
    def data_upload(self, blob, name, progress=None):
        """Store ``blob`` (a packed data file, protocol/datafile.py) on the board as ``name``."""
        self._send_file("data", blob, name, progress)
        return self.call("data_end", timeout=max(self.timeout, 60))

    def data_list(self):
        """Every stored data set: name, size, rows, inputs, outputs, targets; page by page."""
        return self._pages("data_list", "data")

    def data_delete(self, name):
        return self.call("data_delete", name=name)

    def data_train(self, name, epoch, shuffle=None, timeout=600):
        """One epoch of the open session on the stored data set ``name``, run by the board:
        the epoch's loss sum, right decisions, rows, board µs."""
        fields = {"name": name, "epoch": epoch}
        if shuffle is not None:
            fields["shuffle"] = shuffle
        return self.call("data_train", timeout=max(self.timeout, timeout), **fields)

    def data_eval(self, name, timeout=600):
        """(loss, accuracy, board µs) of the session's net on every row of the stored data set."""
        reply = self.call("data_eval", name=name, timeout=max(self.timeout, timeout))
        return reply["loss"] / reply["rows"], reply["right"] / reply["rows"], reply["us"]

    # -- a look inside, and monitoring (PROTOCOL.md, "Monitoring") ----------
    def trace(self, x):
        """Every layer of the active model for one sample: [{kind, activation, units,
        pre, out (and pre_q, out_q for int8)}], computed on the board."""
        return self.call("trace", x=_f32(x))["layers"]

    def monitor_configure(self, config):
        """Store ``config`` (a dict) as the board's monitor.json, checked by the board."""
        return self.call("monitor_config", config=config)

    def monitor_start(self, replay=False, config=None):
        """Open a monitor session (replayed readings, or the board's own sensors) with the
        stored configuration or ``config``; returns what it monitors."""
        fields = {"replay": replay}
        if config is not None:
            fields["config"] = config
        self.monitor_info = self.call("monitor_start", timeout=max(self.timeout, 60), **fields)
        return self.monitor_info

    def monitor_feed(self, readings, start_ms):
        """Feed readings (rows x inputs) from board time ``start_ms``; the windows they end."""
        return self.call("monitor_feed", x=np.ascontiguousarray(readings, "<f4").tobytes(),
                         start_ms=int(start_ms))["windows"]

    def monitor_read(self):
        """A window of the board's own readings, read at its sampling period."""
        info = getattr(self, "monitor_info", None) or {}
        wait = (info.get("window", 10) * info.get("period_ms", 100)) / 1000.0
        return self.call("monitor_read", timeout=max(self.timeout, wait + 10))["windows"]

    def monitor_stop(self):
        return self.call("monitor_stop")

    def events(self):
        """The monitor's event log, newest first: [seq, ms, class, action bits, outputs]."""
        out, before = [], None
        while True:
            reply = self.call("events", **({} if before is None else {"before": before}))
            out += reply["events"]
            if not reply["more"] or not reply["events"]:
                return out
            before = reply["events"][-1][0]

    def exit(self):
        """Leave the server: the board is back at its friendly REPL."""
        self.call("exit")
        self.transport.friendly_repl()


def stop_server(port):
    """Leave the board on ``port`` with no ANNE server running, for tools that use its
    REPL (mpremote, a person): a server that answers is sent ``exit``, whatever
    firmware version it runs. Nothing is done to a board whose server does not answer:
    a REPL, a busy program, a server still starting (Ctrl-C stops each of them)."""
    with Client(SerialTransport(port)) as board:
        before = board.received
        info = board._probe()
        if info is None and board.received == before:
            info = board.resync()
        if info is not None:
            board.exit()


def _f32(x):
    return struct.pack("<%df" % len(x), *x)
