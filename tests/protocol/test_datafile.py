"""The data-set file (protocol/DATA_FORMAT.md), one implementation for host and board:
a file the host packs is read by the board's MicroPython to the bit, with the CRC the
host computed; every damage the spec lists is refused with a message, on both."""

import io
import json
import struct
import zlib

import numpy as np
import pytest

from anne_host.protocol import datafile

LABELS = ["setosa", "versicolor", "virginica"]


def _rows(n=7, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 100, (n, 4)).astype("<f4")
    t = np.eye(3, dtype="<f4")[rng.integers(0, 3, n)]
    return x, t


def _pack(x, t, targets="classes", meta=None):
    body = np.hstack([x, t]).astype("<f4").tobytes()
    return datafile.pack(targets, x.shape[1], t.shape[1], body,
                         {"labels": LABELS, "features": ["a", "b", "c", "d"]} if meta is None else meta)


def test_host_pack_and_load_round_trip_with_the_spec_layout():
    x, t = _rows()
    blob = _pack(x, t)
    # The layout as DATA_FORMAT.md gives it, read here without datafile.py.
    magic, version, kind, rows, n, k, m = struct.unpack("<4sBBIHHH", blob[:16])
    assert (magic, version, kind, rows, n, k) == (b"ANND", 1, 0, 7, 4, 3)
    assert json.loads(blob[16:16 + m]) == {"labels": LABELS, "features": ["a", "b", "c", "d"]}
    body = np.frombuffer(blob[16 + m:-4], "<f4").reshape(7, 7)
    assert np.array_equal(body[:, :4], x) and np.array_equal(body[:, 4:], t)
    assert struct.unpack("<I", blob[-4:])[0] == zlib.crc32(blob[:-4])
    h, xs, ts = datafile.load(io.BytesIO(blob))
    assert np.array_equal(np.frombuffer(xs, "<f4"), x.ravel()) and np.array_equal(np.frombuffer(ts, "<f4"), t.ravel())
    assert (h.rows, h.inputs, h.outputs, h.targets, h.size) == (7, 4, 3, "classes", len(blob))


def test_the_board_reads_what_the_host_wrote_to_the_bit(run_mpy, tmp_path):
    x, t = _rows(40)
    blob = _pack(x, t)
    (tmp_path / "d.data").write_bytes(blob)
    got = run_mpy.json(
        "import json, binascii\nfrom anne.protocol import datafile\n"
        "with open('d.data', 'rb') as f:\n h, x, t = datafile.load(f)\n"
        "with open('d.data', 'rb') as f:\n c = datafile.check(f)\n"
        "print(json.dumps([binascii.hexlify(bytes(x)).decode(), binascii.hexlify(bytes(t)).decode(), h.meta,"
        " h.rows, h.crc & 0xffffffff, c.crc & 0xffffffff]))", cwd=tmp_path)
    xs, ts, meta, rows, crc, checked = got
    assert bytes.fromhex(xs) == x.tobytes() and bytes.fromhex(ts) == t.tobytes()
    assert meta["labels"] == LABELS and rows == 40
    assert crc == checked == zlib.crc32(blob[:-4])


def _damaged(blob, at, value):
    out = bytearray(blob)
    out[at:at + len(value)] = value
    return bytes(out)


def _recrc(blob):
    return blob[:-4] + struct.pack("<I", zlib.crc32(blob[:-4]))


def _cases():
    x, t = _rows(3)
    good = _pack(x, t, meta={})
    start = 18  # header, then the metadata {}
    nan = struct.pack("<f", float("nan"))
    two = struct.pack("<f", 2.0)
    zero = struct.pack("<f", 0.0)
    return [
        ("bad magic", _damaged(good, 0, b"ANNE"), "bad magic"),
        ("version", _recrc(_damaged(good, 4, b"\x02")), "version 2"),
        ("targets kind", _recrc(_damaged(good, 5, b"\x07")), "targets kind 7"),
        ("no rows", _recrc(_damaged(good, 6, b"\x00\x00\x00\x00")), "no rows"),
        ("NaN input", _recrc(_damaged(good, start + 28 + 4, nan)), "row 1, input 1 is not a finite number"),
        ("target 2", _recrc(_damaged(good, start + 16, two)), "row 0, target 0 is 2.0"),
        ("no class", _recrc(_damaged(_damaged(_damaged(good, start + 16, zero), start + 20, zero),
                                    start + 24, zero)), "row 0's targets name 0 classes"),
        ("crc", _damaged(good, start + 2, b"\x55"), "checksum does not match"),
        ("truncated", good[:-9], "truncated"),
        ("after", good + b"\x00", "bytes after its checksum"),
    ]


@pytest.mark.parametrize("what,blob,message", _cases(), ids=[c[0] for c in _cases()])
def test_damaged_files_are_refused_with_their_reason_on_host_and_board(run_mpy, tmp_path, what, blob, message):
    with pytest.raises(datafile.DataFileError, match=message):
        datafile.check(io.BytesIO(blob))
    (tmp_path / "d.data").write_bytes(blob)
    out = run_mpy("from anne.protocol import datafile\n"
                  "for read in (datafile.check, datafile.load):\n"
                  " try:\n  read(open('d.data', 'rb'))\n  print('read')\n"
                  " except ValueError as e:\n  print('refused', e)\n", cwd=tmp_path).splitlines()
    assert len(out) == 2 and all(line.startswith("refused") and message in line for line in out), out


def test_pack_refuses_rows_that_break_the_spec():
    x, t = _rows(2)
    with pytest.raises(datafile.DataFileError, match="labels"):
        _pack(x, t, meta={"labels": ["a", "b"]})  # two names for three targets
    with pytest.raises(datafile.DataFileError, match="not whole rows"):
        datafile.pack("classes", 4, 3, b"\x00" * 30, {})
    with pytest.raises(datafile.DataFileError, match="not a finite number"):
        _pack(np.full((2, 4), np.inf, "<f4"), t)
