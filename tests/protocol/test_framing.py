"""protocol/framing.py: layout, verification, and the resynchronising Decoder.

The CPython tests use hypothesis; the MicroPython tests run the same module in the
real interpreter on streams made here, and send frames made there back to the host.
"""

import json
import random
import re
import struct
import zlib
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from anne_host.protocol import framing
from anne_host.protocol.decoder import Decoder

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAX = framing.MAX_BODY
SPEC = Path(framing.__file__).with_name("PROTOCOL.md")

bodies = st.binary(max_size=300) | st.binary(min_size=MAX - 8, max_size=MAX)
# Garbage that looks like frames: REPL text, stray sync bytes, headers with lying lengths.
garbage_atoms = st.sampled_from([
    b"\xa7", b"\x4e", b"\xa7\x4e", b"\xa7\x4e\xff\xff", b"\xa7\x4e\x00\x10", b"\xa7\x4e\x05\x00",
    b"\xa7\x4e\x01\x10", b"\xa7\x4e\x00\x00", b">>> ", b"MicroPython v1.29 on rp2\r\n", b"\x00" * 9,
]) | st.binary(max_size=40)
garbage = st.lists(garbage_atoms, max_size=6).map(b"".join)


def decode_all(stream, chunks=None, flush=True):
    """Feed ``stream`` in pieces; return (bodies, decoder)."""
    dec = Decoder()
    out = []
    pos = 0
    for size in chunks or [len(stream)]:
        dec.feed(stream[pos:pos + size])
        pos += size
        out += dec.frames()
    dec.feed(stream[pos:])
    if flush:
        dec.flush()
    out += list(dec)
    return out, dec


def test_layout_matches_the_spec_example():
    body = msgpack.packb([1, "hi"])
    frame = framing.encode(body)
    assert frame[:2] == b"\xa7\x4e" and framing.HEADER_SIZE == 4 and framing.TRAILER_SIZE == 4
    assert frame[2:4] == struct.pack("<H", len(body)) and frame[4:-4] == body
    assert frame[-4:] == struct.pack("<I", zlib.crc32(frame[2:4] + body))
    assert frame.hex(" ") == "a7 4e 05 00 92 01 a2 68 69 91 52 98 9f"
    spec = SPEC.read_text()
    assert "a7 4e 05 00 92 01 a2 68 69 91 52 98 9f" in spec
    assert framing.encode(b"").hex(" ") in spec  # the empty-body example
    assert re.search(r"MAX_BODY\D+4096", spec)


@FAST
@given(bodies, st.lists(st.integers(1, 600), max_size=12))
def test_round_trip(body, chunks):
    frame = framing.encode(body)
    assert len(frame) == len(body) + 8
    header, trailer = framing.frame_parts(body)
    assert header + body + trailer == frame
    n = framing.parse_length(frame[:4])
    assert n == len(body)
    assert framing.body_ok(frame[:4], frame[4:4 + n], frame[4 + n:])
    view = memoryview(bytearray(frame))  # the board passes slices of its receive buffer
    assert framing.body_ok(view[:4], view[4:4 + n], view[4 + n:])
    got, dec = decode_all(frame * 2, chunks, flush=False)
    assert got == [body, body] and dec.dropped == 0 and dec.buffered == 0


@FAST
@given(bodies)
def test_a_frame_sealed_in_place_is_the_encoded_frame(body):
    buf = bytearray(framing.HEADER_SIZE + len(body) + framing.TRAILER_SIZE + 5)
    buf[framing.HEADER_SIZE:framing.HEADER_SIZE + len(body)] = body
    frame = memoryview(buf)[:len(body) + 8]  # a view of a larger buffer, as the board passes
    assert framing.seal(frame) is frame
    assert bytes(frame) == framing.encode(body)


def test_size_limit():
    assert len(framing.encode(bytes(MAX))) == MAX + 8
    with pytest.raises(ValueError, match="MAX_BODY"):
        framing.encode(bytes(MAX + 1))
    with pytest.raises(ValueError, match="MAX_BODY"):
        framing.seal(bytearray(MAX + 9))
    assert framing.parse_length(b"\xa7\x4e" + struct.pack("<H", MAX)) == MAX
    for bad in (b"\xa7\x4e\x01\x10", b"\xa7\x4e\xff\xff", b"\x4e\xa7\x01\x00", b"\xa7\x4f\x01\x00"):
        assert framing.parse_length(bad) is None


@FAST
@given(bodies.filter(len), st.data())
def test_any_single_bit_flip_is_caught(body, data):
    frame = bytearray(framing.encode(body))
    bit = data.draw(st.integers(0, 8 * len(frame) - 1))
    frame[bit // 8] ^= 1 << (bit % 8)
    n = framing.parse_length(frame[:4])
    assert n is None or n != len(body) or not framing.body_ok(frame[:4], frame[4:4 + n], frame[4 + n:])


@FAST
@given(st.lists(st.tuples(garbage, bodies), max_size=5), garbage, st.lists(st.integers(1, 300), max_size=20))
def test_resync_through_garbage(pairs, tail, chunks):
    stream = b"".join(g + framing.encode(b) for g, b in pairs) + tail
    got, dec = decode_all(stream, chunks)
    assert got == [b for _, b in pairs]
    assert dec.dropped == sum(len(g) for g, _ in pairs) + len(tail)  # every byte accounted for
    assert dec.buffered == 0


@FAST
@given(st.lists(bodies, min_size=1, max_size=4), st.data())
def test_a_bit_flip_loses_only_its_frame(frames, data):
    encoded = [framing.encode(b) for b in frames]
    hit = data.draw(st.integers(0, len(frames) - 1))
    bit = data.draw(st.integers(0, 8 * len(encoded[hit]) - 1))
    damaged = bytearray(encoded[hit])
    damaged[bit // 8] ^= 1 << (bit % 8)
    encoded[hit] = bytes(damaged)
    got, _ = decode_all(b"".join(encoded), data.draw(st.lists(st.integers(1, 500), max_size=10)))
    assert got == frames[:hit] + frames[hit + 1:]


@FAST
@given(st.lists(bodies.filter(len), min_size=2, max_size=4), st.data())
def test_a_truncated_frame_does_not_hide_the_next(frames, data):
    encoded = [framing.encode(b) for b in frames]
    hit = data.draw(st.integers(0, len(frames) - 2))
    whole = encoded[hit]
    encoded[hit] = whole[:data.draw(st.integers(1, len(whole) - 1))]
    stream = b"".join(encoded)
    # If the bytes that follow happen to equal the missing tail (a CRC ending in 0xA7,
    # cut by one byte), the frame is intact after all and the next one loses its sync.
    assume(not stream[sum(map(len, encoded[:hit])):].startswith(whole))
    got, _ = decode_all(stream)
    assert got == frames[:hit] + frames[hit + 1:]


def test_lying_lengths():
    frame = framing.encode(b"\x93\x01\x02\x03")
    # 0xFFFF is over MAX_BODY: refused at once, one byte at a time, no flush needed.
    got, dec = decode_all(b"\xa7\x4e\xff\xff" + frame, flush=False)
    assert got == [b"\x93\x01\x02\x03"] and dec.dropped == 4
    # A plausible length (4096) makes the decoder wait for 4104 bytes ...
    dec = Decoder()
    dec.feed(b"\xa7\x4e\x00\x10" + frame)
    assert dec.frames() == [] and dec.buffered == 4 + len(frame)
    # ... which either arrive (then the CRC fails and the frame behind is found) ...
    dec.feed(frame * 400)
    assert len(dec.frames()) == 401 and dec.dropped == 4
    # ... or never do: flush() after a read timeout gives up on the lying header.
    dec = Decoder()
    dec.feed(b"\xa7\x4e\x00\x10" + frame)
    dec.flush()
    assert dec.frames() == [b"\x93\x01\x02\x03"] and dec.dropped == 4 and dec.buffered == 0


def test_a_frame_fed_byte_by_byte():
    frame = framing.encode(b"\xc0")
    dec = Decoder()
    for i in range(len(frame)):
        dec.feed(frame[i:i + 1])
    assert dec.frames() == [b"\xc0"] and dec.dropped == 0
    dec.feed(b"xx\xa7")  # a trailing 0xA7 is kept: it may start the next sync pair
    assert dec.buffered == 1 and dec.dropped == 2
    dec.feed(frame[1:])
    assert dec.frames() == [b"\xc0"]


def test_decoder_memory_stays_bounded():
    rng = random.Random(3)
    atoms = [b"\xa7\x4e\x00\x10", b"\xa7\x4e\xf0\x0f", b"\xa7", b"\xa7\x4e", b">>> \r\n"]
    dec = Decoder()
    fed = 0
    for _ in range(400):
        chunk = b"".join(rng.choice(atoms) if rng.random() < 0.3 else bytes([rng.randrange(256)])
                         for _ in range(rng.randrange(1, 6000)))
        dec.feed(chunk)
        fed += len(chunk)
        assert dec.buffered < framing.MAX_FRAME
        assert dec.frames() == []
    dec.feed(bytes(rng.randrange(256) for _ in range(1 << 20)))  # one huge feed
    fed += 1 << 20
    assert dec.buffered < framing.MAX_FRAME
    assert dec.dropped + dec.buffered == fed
    dec.flush()
    dec.feed(framing.encode(b"\xc3"))
    assert dec.frames() == [b"\xc3"]


# --- under the real MicroPython interpreter ------------------------------------------

def mixed_stream(seed):
    rng = random.Random(seed)
    bodies_ = [msgpack.packb({"seq": i, "data": bytes(rng.randrange(256) for _ in range(rng.randrange(2100)))})
               for i in range(25)]
    junk = [b"", b">>> ", b"\xa7\x4e\xff\xff", b"\xa7\x4e\x10\x00", b"\xa7", b"\r\nTraceback...\r\n"]
    stream = b"".join(rng.choice(junk) + framing.encode(b) for b in bodies_)
    return bodies_, stream


MPY_DECODE = r'''
import sys, json
from binascii import hexlify
from anne.protocol import framing, mpack
from anne.protocol.decoder import Decoder
stream = sys.stdin.buffer.read()
dec = Decoder()
for i in range(0, len(stream), 61):  # awkward chunk sizes, as serial reads arrive
    dec.feed(stream[i:i + 61])
    for body in dec:
        print(hexlify(body).decode())  # one line each: nothing piles up on the small heap
dec.flush()
for body in dec:
    print(hexlify(body).decode())
print(json.dumps([dec.dropped, dec.buffered]))
'''


def test_micropython_decodes_host_frames(run_mpy):
    bodies_, stream = mixed_stream(11)
    *got, last = run_mpy(MPY_DECODE, stdin=stream).splitlines()
    dropped, buffered = json.loads(last)
    assert [bytes.fromhex(h) for h in got] == bodies_
    host, dec = decode_all(stream)
    assert host == bodies_ and dropped == dec.dropped > 0 and buffered == 0


MPY_BOARD_READ = r'''
import sys, json
from anne.protocol import framing, mpack
# The board's pattern: a header, then exactly length + 4 bytes, all as slices of one
# preallocated buffer; bodies are decoded with bin fields as views into it.
stream = sys.stdin.buffer.read()
buf = bytearray(framing.MAX_FRAME)
mv = memoryview(buf)
pos = 0
sizes = []
while pos < len(stream):
    mv[:4] = stream[pos:pos + 4]
    n = framing.parse_length(mv[:4])
    mv[4:n + 8] = stream[pos + 4:pos + n + 8]
    assert framing.body_ok(mv[:4], mv[4:4 + n], mv[4 + n:8 + n])
    msg = mpack.unpackb(mv[4:4 + n], bin_view=True)
    sizes.append([msg["seq"], len(msg["data"]), isinstance(msg["data"], memoryview)])
    pos += n + 8
print(json.dumps(sizes))
'''


def test_micropython_board_read_pattern(run_mpy):
    bodies_ = [msgpack.packb({"seq": i, "data": bytes(range(256)) * 8}) for i in range(5)]
    got = run_mpy.json(MPY_BOARD_READ, stdin=b"".join(framing.encode(b) for b in bodies_))
    assert got == [[i, 2048, True] for i in range(5)]


MPY_ENCODE = r'''
import sys, json
from binascii import hexlify
from anne.protocol import framing, mpack
data = sys.stdin.buffer.read()
frames = []
pos = 0
while pos < len(data):
    n = data[pos] | (data[pos + 1] << 8)
    body = data[pos + 2:pos + 2 + n]
    pos += 2 + n
    header, trailer = framing.frame_parts(body)
    frame = framing.encode(body)
    assert frame == header + body + trailer
    room = bytearray(n + 9)
    room[4:4 + n] = body
    assert bytes(framing.seal(memoryview(room)[:n + 8])) == frame
    frames.append(hexlify(frame).decode())
try:
    framing.encode(bytes(framing.MAX_BODY + 1))
    refused = False
except ValueError:
    refused = True
print(json.dumps([frames, refused]))
'''


def test_host_decodes_micropython_frames(run_mpy):
    rng = random.Random(5)
    bodies_ = [bytes(rng.randrange(256) for _ in range(n)) for n in (0, 1, 2, 255, 256, 2048, MAX)]
    stdin = b"".join(struct.pack("<H", len(b)) + b for b in bodies_)
    frames, refused = run_mpy.json(MPY_ENCODE, stdin=stdin)
    frames = [bytes.fromhex(f) for f in frames]
    assert refused
    assert frames == [framing.encode(b) for b in bodies_]
    got, dec = decode_all(b"junk".join(frames))
    assert got == bodies_ and dec.dropped == 4 * (len(frames) - 1)
