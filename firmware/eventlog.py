# The monitor's event log: a file of a fixed number of fixed-size records on flash, the
# newest overwriting the oldest. A record carries its sequence number and a CRC, and
# is written in place with one write: a power cut in the middle of one leaves that
# record failing its CRC (it is skipped) and every other record as it was. The file
# never grows, so the log cannot fill the flash.
import struct
from binascii import crc32

from .store import ROOT

EVENTS = ROOT + "/.events"  # in the store's folder, where only *.anne files are models

_HEAD = "<IIbB"  # sequence number, time (ms since boot), class (-1: none), action bits
_HEAD_SIZE = 10
PROBS = 8  # the first outputs' values a record keeps
RECORD = _HEAD_SIZE + 4 * PROBS + 4  # then the CRC-32 of everything before it


class EventLog:
    """A ring of ``slots`` records in the file at ``path``; with ``slots`` None, the
    log as it is (to read it: an absent log reads as empty)."""

    def __init__(self, path, slots=None):
        self.path = path
        try:
            with open(path, "rb") as f:
                size = f.seek(0, 2)
        except OSError:
            size = 0
        self.slots = size // RECORD if slots is None else slots
        if slots is not None and size != slots * RECORD:  # a new log, or another size
            with open(path, "wb") as f:
                blank = bytes(RECORD)
                for _ in range(slots):
                    f.write(blank)
        newest = self.read(1)
        self.next = newest[0][0] + 1 if newest else 1

    def write(self, ms, cls, values, actions):
        """Append an event: board time in ms, the class index (or -1), the model's
        outputs (the first PROBS kept) and the action bits (bit k: rule k is on)."""
        seq = self.next
        body = struct.pack(_HEAD, seq, ms & 0xFFFFFFFF, cls, actions & 0xFF)
        kept = [float(values[i]) if i < len(values) else 0.0 for i in range(PROBS)]
        body += struct.pack("<%df" % PROBS, *kept)
        record = body + struct.pack("<I", crc32(body) & 0xFFFFFFFF)
        with open(self.path, "r+b") as f:
            f.seek((seq % self.slots) * RECORD)
            f.write(record)
        self.next = seq + 1
        return seq

    def read(self, newest=None):
        """The valid records, newest first: (sequence, ms, class, action bits, values);
        at most ``newest`` of them."""
        out = []
        if not self.slots:
            return out
        with open(self.path, "rb") as f:
            for _ in range(self.slots):
                record = f.read(RECORD)
                if len(record) != RECORD:
                    break
                (crc,) = struct.unpack("<I", record[-4:])
                if crc != crc32(record[:-4]) & 0xFFFFFFFF:
                    continue  # never written, or cut by a power loss
                seq, ms, cls, actions = struct.unpack(_HEAD, record[:_HEAD_SIZE])
                if seq == 0:
                    continue
                values = struct.unpack("<%df" % PROBS, record[_HEAD_SIZE:-4])
                out.append((seq, ms, cls, actions, list(values)))
        out.sort(key=lambda r: -r[0])
        return out[:newest] if newest else out


def events(newest=None):
    """anne.events(): the logged events, newest first: (sequence, ms, class, action
    bits, outputs)."""
    return EventLog(EVENTS).read(newest)
