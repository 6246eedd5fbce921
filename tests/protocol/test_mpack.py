"""protocol/mpack.py against the real msgpack package, under CPython and MicroPython.

What is covered where:
- CPython (hypothesis): byte-identical encoding with ``msgpack.packb``, decoding of
  its output (float64 and float32 documents), errors on hostile input, and a
  differential fuzz against msgpack's own decoder.
- MicroPython Unix port (a fixed-seed corpus made by real msgpack): the same module
  decodes, re-encodes and rejects the same bytes in the interpreter the board runs.
  That port's floats are double precision; the board's are single, so there a float64
  value is rounded to float32 when decoded (and re-encoded as the float64 of that
  float32). That rounding is a property of the board's float type, not of this codec,
  and cannot be exercised on this PC.
- Nesting 1..100 deep, both ways, with little stack: under CPython with a low recursion
  limit, under MicroPython in a thread with a 16 KB C stack (the board's own test is
  tests/board/test_chip_msgpack.py).
"""

import contextlib
import json
import math
import random
import struct
import sys

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anne_host.protocol import mpack

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

BOUNDARY_INTS = [
    0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1, 2**63, 2**64 - 1,
    -1, -32, -33, -128, -129, -32768, -32769, -2**31, -2**31 - 1, -2**63,
]
EDGE_LENGTHS = [0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536]

# An order-independent text picture of a decoded value. The same source runs in both
# interpreters, so a MicroPython result can be compared with a CPython one: floats by
# their bits (nan and -0.0 included), str and bin as hex, map entries sorted. One flat
# string per value keeps the 64K-entry cases cheap to build and print under MicroPython.
DESCRIBE = r'''
import struct
from binascii import hexlify

def describe(v, view=False):
    if v is None:
        return "n"
    if v is True or v is False:
        return "t" if v else "f"
    if isinstance(v, int):
        return "i%d" % v
    if isinstance(v, float):
        return "d" + hexlify(struct.pack(">d", v)).decode()
    if isinstance(v, str):
        return "s" + hexlify(v.encode("utf-8")).decode()
    if isinstance(v, memoryview) if view else isinstance(v, bytes):
        return "b" + hexlify(bytes(v)).decode()
    if isinstance(v, list):
        return "[" + ",".join([describe(x, view) for x in v]) + "]"
    if isinstance(v, dict):
        return "{" + ",".join(sorted([describe(k) + ":" + describe(x, view) for k, x in v.items()])) + "}"
    raise TypeError("unexpected %s (view=%s)" % (type(v).__name__, view))
'''
exec(DESCRIBE)  # defines describe() here too


def depth(v):
    if isinstance(v, (list, tuple)):
        return 1 + max([depth(x) for x in v], default=0)
    if isinstance(v, dict):
        return 1 + max([depth(x) for x in v.values()], default=0)
    return 0


def sized_text(n):
    """Strings whose UTF-8 form is exactly n bytes, ASCII and multi-byte."""
    return st.sampled_from(["a" * n, "é" * (n // 2) + "a" * (n % 2), "€" * (n // 3) + "z" * (n % 3)])


ints = st.integers(-2**63, 2**64 - 1) | st.sampled_from(BOUNDARY_INTS)
texts = st.text() | st.sampled_from([0, 31, 32, 33, 255, 256]).flatmap(sized_text)
binaries = st.binary() | st.sampled_from([31, 32, 255, 256]).map(lambda n: bytes(range(256)) * (n // 256) + bytes(n % 256))
scalars = st.none() | st.booleans() | ints | st.floats() | texts | binaries
keys = st.text(max_size=6) | ints
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=18) | st.dictionaries(keys, inner, max_size=18),
    max_leaves=40,
).filter(lambda v: depth(v) <= mpack.MAX_DEPTH)
float_trees = st.recursive(
    st.floats(width=32),  # msgpack refuses to narrow values beyond the float32 range
    lambda inner: st.lists(inner, max_size=8) | st.dictionaries(st.text(max_size=3), inner, max_size=8),
    max_leaves=20,
)


def reference_unpack(data):
    return msgpack.unpackb(data, strict_map_key=False)


# --- CPython: against the real msgpack -------------------------------------------------

@FAST
@given(values)
def test_packb_is_byte_identical_to_msgpack(v):
    assert mpack.packb(v) == msgpack.packb(v, use_bin_type=True)


@FAST
@given(values)
def test_unpackb_reads_msgpack_and_msgpack_reads_packb(v):
    data = msgpack.packb(v, use_bin_type=True)
    got = mpack.unpackb(data)
    assert describe(got) == describe(v)  # types and float bits, not just ==
    assert msgpack.packb(got) == data
    assert describe(reference_unpack(mpack.packb(v))) == describe(v)


@FAST
@given(float_trees)
def test_float32_documents_decode(v):
    data = msgpack.packb(v, use_single_float=True)
    assert describe(mpack.unpackb(data)) == describe(reference_unpack(data))


@pytest.mark.parametrize("n", EDGE_LENGTHS)
@pytest.mark.parametrize("kind", ["str", "str-utf8", "bin", "array", "map"])
def test_length_classes(kind, n):
    v = {
        "str": "x" * n,
        "str-utf8": "é" * (n // 2) + "a" * (n % 2),  # n bytes, n//2 + n%2 characters
        "bin": bytes(i & 0xFF for i in range(n)),
        "array": [i & 0x7F for i in range(n)],
        "map": {i: None for i in range(n)},
    }[kind]
    data = msgpack.packb(v, use_bin_type=True)
    assert mpack.packb(v) == data
    assert mpack.unpackb(data) == v


@pytest.mark.parametrize("n", BOUNDARY_INTS)
def test_int_boundaries(n):
    assert mpack.packb(n) == msgpack.packb(n)
    assert mpack.unpackb(msgpack.packb(n)) == n


def test_special_floats():
    for x in [math.inf, -math.inf, math.nan, -0.0, 0.0, 5e-324, 1.7976931348623157e308]:
        data = msgpack.packb(x)
        assert data[0] == 0xCB and mpack.packb(x) == data
        assert struct.pack(">d", mpack.unpackb(data)) == struct.pack(">d", x)
    assert mpack.unpackb(b"\xca\x7f\x80\x00\x00") == math.inf
    assert mpack.unpackb(struct.pack(">Bf", 0xCA, 0.1)) == struct.unpack(">f", struct.pack(">f", 0.1))[0]


def test_tuples_and_buffers_encode_as_arrays_and_bin():
    assert mpack.packb((1, (2, "a"))) == msgpack.packb([1, [2, "a"]])
    for buf in (b"ab\x00", bytearray(b"ab\x00"), memoryview(b"ab\x00")):
        assert mpack.packb(buf) == b"\xc4\x03ab\x00"


def test_input_buffer_types():
    data = msgpack.packb({"k": [1, b"xy"]})
    for buf in (data, bytearray(data), memoryview(data)):
        assert mpack.unpackb(buf) == {"k": [1, b"xy"]}
    with pytest.raises(TypeError, match="list"):
        mpack.unpackb([0xC0])


def test_bin_view_is_zero_copy():
    buf = bytearray(msgpack.packb({"chunk": bytes(2048), "n": 1}))
    got = mpack.unpackb(buf, bin_view=True)
    view = got["chunk"]
    assert isinstance(view, memoryview) and len(view) == 2048 and view.obj is buf
    buf[-4] ^= 0xFF  # the chunk's last byte (the document ends a1 6e 01): the view sees it
    assert view[-1] == 0xFF
    assert isinstance(mpack.unpackb(bytes(buf))["chunk"], bytes)


@FAST
@given(st.dictionaries(st.text(max_size=8), values, max_size=4), st.lists(st.integers(0, 70000), max_size=3),
       st.integers(0, 8))
def test_a_document_built_in_place_is_what_msgpack_writes(head, sizes, start):
    # What the board does for a batch reply: a map's header, values packed in
    # turn, bins whose room is reserved and filled afterwards, all written into one
    # preallocated buffer from an offset on, without growing it.
    fields = dict(head)
    for k, size in enumerate(sizes):
        fields["bin%d" % k] = bytes((k + i) & 0xFF for i in range(size))
    expected = msgpack.packb(fields, use_bin_type=True)
    buf = bytearray(start + len(expected))
    packer = mpack.Packer(buf, start)
    packer.map_head(len(fields))
    for key, value in head.items():
        packer.pack(key)
        packer.pack(value)
    for k, size in enumerate(sizes):
        packer.pack("bin%d" % k)
        at = packer.bin_room(size)
        buf[at:at + size] = fields["bin%d" % k]
    assert packer.buf is buf and packer.n == len(buf)
    assert bytes(buf[start:]) == expected


def test_a_packer_grows_its_buffer_when_it_is_too_small():
    packer = mpack.Packer(bytearray(3), 2)
    packer.pack({"k": bytes(100)})
    assert bytes(packer.buf[2:packer.n]) == msgpack.packb({"k": bytes(100)})


# --- errors ----------------------------------------------------------------------------

@FAST
@given(values)
def test_every_truncation_and_any_trailing_byte_is_refused(v):
    data = msgpack.packb(v)
    for cut in range(len(data)) if len(data) < 200 else random.Random(0).sample(range(len(data)), 200):
        with pytest.raises(ValueError, match="truncated"):
            mpack.unpackb(data[:cut])
    with pytest.raises(ValueError, match="trailing"):
        mpack.unpackb(data + b"\xc0")


def in_subset(v, level=0):
    """Could mpack decode this msgpack-decoded value? (no ext, str/int keys, depth)"""
    if isinstance(v, (list, dict)):
        if level >= mpack.MAX_DEPTH:
            return False
        if isinstance(v, dict):
            if not all(type(k) in (str, int) for k in v):
                return False
            v = list(v.values())
        return all(in_subset(x, level + 1) for x in v)
    return v is None or type(v) in (bool, int, float, str, bytes)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=40) | values.map(msgpack.packb).flatmap(
    lambda d: st.tuples(st.integers(0, len(d) - 1), st.integers(0, 255)).map(
        lambda p: d[:p[0]] + bytes([p[1]]) + d[p[0] + 1:])))
def test_random_bytes_only_raise_valueerror_and_agree_with_msgpack(data):
    try:
        got = mpack.unpackb(data)
    except ValueError:
        got = ValueError
    try:
        ref = reference_unpack(data)
    except Exception:
        ref = ValueError
    if got is not ValueError:
        assert describe(got) == describe(ref)
    elif ref is not ValueError:
        assert not in_subset(ref)


@pytest.mark.parametrize("data, message", [
    (b"\xc1", "0xc1"),
    (b"\xd4\x00\x00", "0xd4"),  # fixext 1
    (b"\xd6\xff\x00\x00\x00\x00", "0xd6"),  # the timestamp ext type, 32-bit form
    (b"\xc7\x00\x05", "0xc7"),  # ext 8
    (b"\xc8\x00\x00\x05", "0xc8"),
    (b"\xc9\x00\x00\x00\x00\x05", "0xc9"),
    (b"\xdb\xff\xff\xff\xffab", "truncated"),  # lying lengths, refused before allocating
    (b"\xc6\xff\xff\xff\xffab", "truncated"),
    (b"\xdd\xff\xff\xff\xff\xc0", "at least 4294967295 bytes"),
    (b"\xdf\xff\xff\xff\xff\xc0\xc0", "at least 8589934590 bytes"),
    (b"\xda\xff\xff", "truncated"),
    (b"\xa2\xc3\x28", "UTF-8"),
    (b"\x81\xc0\x01", "NoneType"),  # map keys must be str or int
    (b"\x81\xc3\x01", "bool"),
    (b"\x81\xcb" + bytes(8) + b"\x01", "float"),
    (b"\x81\x90\x01", "list"),
    (b"\x93\xc0\xc0", "at least 3 bytes, 2 left"),  # counts are checked before the loop
    (b"\x82\xc0\xc0\xc0", "at least 4 bytes, 3 left"),
    (b"\xcf\x00", "truncated"),
    (b"", "truncated"),
    (b"\xc0\xc0", "trailing"),
])
def test_refused_inputs(data, message):
    with pytest.raises(ValueError, match=message):
        mpack.unpackb(data)


def test_nesting_limit():
    ok = b"\x91" * mpack.MAX_DEPTH + b"\xc0"
    assert mpack.unpackb(ok) is not None
    with pytest.raises(ValueError, match="nesting"):
        mpack.unpackb(b"\x91" * (mpack.MAX_DEPTH + 1) + b"\xc0")
    with pytest.raises(ValueError, match="nesting"):
        mpack.unpackb(b"\x81\xa1k" * 200000)  # never recurses without bound
    nested = None
    for _ in range(mpack.MAX_DEPTH):
        nested = [nested]
    assert mpack.packb(nested) == ok
    with pytest.raises(ValueError, match="nesting"):
        mpack.packb([nested])
    cycle = []
    cycle.append(cycle)
    with pytest.raises(ValueError, match="nesting"):
        mpack.packb(cycle)


# --- nesting at every depth, without the C stack -------------------------------------

def nested_documents(depth):
    """msgpack documents whose deepest value sits ``depth`` arrays/maps deep: every
    container form, an empty innermost container (it counts), and a request."""
    inner = b"".join(bytes([0x91]) if k % 2 else bytes([0x81, 0xA1, 0x6B]) for k in range(depth - 1))
    return {
        "fixarray": b"\x91" * depth + b"\x01",
        "fixmap": b"\x81\xa1k" * depth + b"\x01",
        "array16": b"\xdc\x00\x01" * depth + b"\xa1s",
        "map32": b"\xdf\x00\x00\x00\x01\x00" * depth + b"\xc3",
        "empty": b"\x91" * (depth - 1) + b"\x90",
        "request": b"\x83\xa2id\x01\xa3cmd\xa5hello\xa1v" + inner + b"\xc0",
    }


NESTING = [(d, kind, doc) for d in range(1, 101) for kind, doc in nested_documents(d).items()]


@contextlib.contextmanager
def little_stack(frames=12):
    """Only ``frames`` more Python calls allowed: a decoder that recursed per
    container would need more than twice that for MAX_DEPTH levels."""
    here = 0
    frame = sys._getframe()
    while frame:
        here, frame = here + 1, frame.f_back
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(here + frames)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def test_nesting_at_every_depth_decodes_or_is_refused_as_documented():
    for d, kind, doc in NESTING:
        with little_stack():
            try:
                got = mpack.unpackb(doc)
            except ValueError as e:
                got = e
        if d <= mpack.MAX_DEPTH:
            assert not isinstance(got, Exception), (d, kind, got)
            assert describe(got) == describe(reference_unpack(doc)), (d, kind)
        else:
            assert isinstance(got, ValueError), (d, kind, got)
            assert "nesting deeper than %d" % mpack.MAX_DEPTH in str(got), (d, kind)


def nested_value(depth):
    v = "leaf"
    for k in range(depth):
        v = [v, 1] if k % 2 else {"k": v, 2: None}
    return v


def test_encoding_at_every_depth_matches_msgpack_or_is_refused():
    for d in range(1, 101):
        v = nested_value(d)
        with little_stack():
            try:
                got = mpack.packb(v)
            except ValueError as e:
                got = e
        if d <= mpack.MAX_DEPTH:
            assert got == msgpack.packb(v, use_bin_type=True), d
        else:
            assert isinstance(got, ValueError) and "nesting" in str(got), (d, got)


# A thread of MicroPython's Unix port can be given a small C stack, as the board has:
# in one of 16 KB the old codec, which recursed per container, failed within 8 levels
# (RuntimeError) both ways; in the main thread it reached MAX_DEPTH.
MPY_NESTING = DESCRIBE + r'''
import sys, json, _thread, time
from anne.protocol import mpack
data = sys.stdin.buffer.read()
docs = []
pos = 0
while pos < len(data):
    n = struct.unpack_from("<I", data, pos)[0]
    docs.append(data[pos + 4:pos + 4 + n])
    pos += 4 + n
values = []
v = "leaf"
for k in range(100):
    v = [v, 1] if k % 2 else {"k": v, 2: None}
    values.append(v)

def verdict(f, x):
    try:
        return ["ok", f(x)]
    except Exception as e:  # the test asserts which: ValueError only, past the limit
        return [type(e).__name__, str(e)]

def run(out):
    out.append([verdict(mpack.unpackb, d) for d in docs])
    out.append([verdict(mpack.packb, x) for x in values])

def shown(out):
    # Outside the small stack: describe() recurses.
    decoded = [[k, describe(v) if k == "ok" else v] for k, v in out[0]]
    return [decoded, [[k, hexlify(v).decode() if k == "ok" else v] for k, v in out[1]]]

main, thread = [], []
run(main)
_thread.stack_size(16 * 1024)
_thread.start_new_thread(run, (thread,))
while len(thread) < 2:
    time.sleep_ms(5)
print(json.dumps([shown(main), shown(thread)]))
'''


def test_nesting_at_every_depth_under_micropython(run_mpy):
    # All 600 verdicts are kept for one JSON line: more heap than a Pico's, which is
    # not what is tested here.
    got = run_mpy.json(MPY_NESTING, stdin=pack_stream([doc for _, _, doc in NESTING]),
                       heap=16 * 1024 * 1024)
    for decoded, encoded in got:  # the main thread, then a thread with a small stack
        for (d, kind, doc), (verdict, text) in zip(NESTING, decoded):
            if d <= mpack.MAX_DEPTH:
                assert [verdict, text] == ["ok", describe(reference_unpack(doc))], (d, kind)
            else:
                assert verdict == "ValueError" and "nesting deeper than 16" in text, (d, kind, text)
        assert len(decoded) == len(NESTING)
        for d, (verdict, text) in enumerate(encoded, 1):
            if d <= mpack.MAX_DEPTH:
                # MicroPython's dicts may list their two entries in the other order.
                assert verdict == "ok" and describe(reference_unpack(bytes.fromhex(text))) == \
                    describe(nested_value(d)), d
            else:
                assert verdict == "ValueError" and "nesting" in text, (d, text)
        assert len(encoded) == 100


@pytest.mark.parametrize("v, error, name", [
    (object(), TypeError, "object"),
    ({1, 2}, TypeError, "set"),
    (1j, TypeError, "complex"),
    ([1, {"a": object()}], TypeError, "object"),
    ({1.5: 1}, TypeError, "float"),
    ({None: 1}, TypeError, "NoneType"),
    ({True: 1}, TypeError, "bool"),
    ({b"k": 1}, TypeError, "bytes"),
    (2**64, ValueError, "range"),
    (-2**63 - 1, ValueError, "range"),
])
def test_unencodable_values(v, error, name):
    with pytest.raises(error, match=name):
        mpack.packb(v)


# --- the same codec under the real MicroPython interpreter ---------------------------

def random_value(rng, level=0):
    kind = rng.randrange(10 if level < 4 else 7)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        n = rng.choice(BOUNDARY_INTS) + rng.choice([0, 1, -1])
        return n if -2**63 <= n < 2**64 else 0
    if kind == 2:
        return rng.randrange(-2**63, 2**64) >> rng.randrange(64)
    if kind == 3:
        return rng.choice([rng.uniform(-1e6, 1e6), rng.random(), -0.0, math.inf, -math.inf,
                           math.nan, 5e-324, 1e308, 3.4e38, 1e39, 1e-46])
    if kind == 4:
        alphabet = "az09 _é€𝄞\x00\n"
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(40)))
    if kind == 5:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(300)))
    if kind == 6:
        return rng.choice(["", b""])
    if kind in (7, 8):
        return [random_value(rng, level + 1) for _ in range(rng.randrange(20))]
    keys = [rng.choice([rng.randrange(-300, 70000), "k%d" % rng.randrange(99), "é"]) for _ in range(rng.randrange(12))]
    return {k: random_value(rng, level + 1) for k in keys}


def has_multikey_map(v):
    # MicroPython's dict does not keep insertion order, so re-encoding such a map
    # there may list its entries in another order: same value, other bytes.
    if isinstance(v, dict):
        return len(v) > 1 or any(has_multikey_map(x) for x in v.values())
    if isinstance(v, list):
        return any(has_multikey_map(x) for x in v)
    return False


def build_corpus():
    rng = random.Random(20240607)
    docs = []  # (msgpack document, float32 document?)
    for n in BOUNDARY_INTS:
        docs.append((msgpack.packb(n), False))
    for n in [31, 32, 255, 256, 65535, 65536]:
        for v in ["q" * n, "é" * (n // 2) + "a" * (n % 2), bytes(i & 0xFF for i in range(n)),
                  [i & 0x7F for i in range(n)], {i: i & 1 for i in range(n)}]:
            docs.append((msgpack.packb(v), False))
    for _ in range(400):
        docs.append((msgpack.packb(random_value(rng)), False))
    for _ in range(60):
        v = [rng.uniform(-1e30, 1e30) for _ in range(rng.randrange(1, 9))] + [math.inf, -0.0, 1e-40]
        docs.append((msgpack.packb({"w": v, "b": 0.1}, use_single_float=True), True))
    return docs


def pack_stream(docs):
    return b"".join(struct.pack("<I", len(d)) + d for d in docs)


MPY_CORPUS = DESCRIBE + r'''
import sys, json
from anne.protocol import mpack
data = sys.stdin.buffer.read()
pos = 0
while pos < len(data):
    n = struct.unpack_from("<I", data, pos)[0]
    doc = data[pos + 4:pos + 4 + n]
    pos += 4 + n
    v = mpack.unpackb(doc)
    back = mpack.packb(v)
    desc = describe(v)
    view_ok = describe(mpack.unpackb(doc, bin_view=True), True) == desc
    # One line per document, printed at once: the results never pile up in the heap.
    print(json.dumps([desc, True if back == doc else hexlify(back).decode(), view_ok]))
    v = back = desc = None
'''


def test_corpus_under_micropython(run_mpy):
    docs = build_corpus()
    assert len(docs) > 500
    # The 64 KB edge cases need more than a Pico's heap; they are here for the length
    # classes, not for memory behaviour (the board's bodies are at most 4 KB).
    out = run_mpy(MPY_CORPUS, stdin=pack_stream([d for d, _ in docs]), heap=64 * 1024 * 1024)
    results = [json.loads(line) for line in out.splitlines()]
    assert len(results) == len(docs)
    reordered = 0
    for (doc, single), (desc, back, view_ok) in zip(docs, results):
        expected = reference_unpack(doc)
        assert desc == describe(expected)
        assert view_ok
        if back is not True:
            back = bytes.fromhex(back)
            assert single or has_multikey_map(expected), (doc[:40], back[:40])
            assert describe(reference_unpack(back)) == describe(expected)
            if not single:
                assert len(back) == len(doc)
                reordered += 1
    assert reordered < len(docs) // 2  # most documents were byte-identical


MPY_IN_PLACE = r'''
import json
from binascii import hexlify
from anne.protocol import mpack
out = []
for rows, request_id in ((1, 7), (60, 300), (255, -5), (256, 2**40), (1000, 0)):
    buf = bytearray(4 + 48 + 9 * rows + 4)
    p = mpack.Packer(buf, 4)
    p.map_head(5)
    p.pack("ok")
    p.pack(True)
    p.pack("id")
    p.pack(request_id)
    p.pack("y")
    y = p.bin_room(4 * rows)
    p.pack("class")
    c = p.bin_room(rows)
    p.pack("us")
    t = p.bin_room(4 * rows)
    for i in range(4 * rows):
        buf[y + i] = i & 255
        buf[t + i] = (i * 7) & 255
    for i in range(rows):
        buf[c + i] = i % 3
    out.append(hexlify(buf[4:p.n]).decode() if p.buf is buf else "grew")
print(json.dumps(out))
'''


def test_a_batch_reply_built_in_place_under_micropython(run_mpy):
    got = run_mpy.json(MPY_IN_PLACE)
    for hexed, (rows, request_id) in zip(got, ((1, 7), (60, 300), (255, -5), (256, 2**40), (1000, 0))):
        y = bytes(i & 255 for i in range(4 * rows))
        us = bytes((i * 7) & 255 for i in range(4 * rows))
        expected = msgpack.packb({"ok": True, "id": request_id, "y": y, "class": bytes(i % 3 for i in range(rows)),
                                  "us": us}, use_bin_type=True)
        assert bytes.fromhex(hexed) == expected


MPY_ERRORS = DESCRIBE + r'''
import sys, json
from anne.protocol import mpack
data = memoryview(sys.stdin.buffer.read())
pos = 0
while pos < len(data):
    n = struct.unpack_from("<I", data, pos)[0]
    doc = data[pos + 4:pos + 4 + n]
    pos += 4 + n
    try:
        print(json.dumps(describe(mpack.unpackb(doc))))
    except Exception as e:
        print(json.dumps(type(e).__name__))
'''


def test_hostile_input_under_micropython(run_mpy):
    rng = random.Random(7)
    hostile = [
        b"\xc1", b"\xd4\x00\x00", b"\xd6\xff\x00\x00\x00\x00", b"\xc7\x00\x05",
        b"\xdb\xff\xff\xff\xffab", b"\xc6\xff\xff\xff\xff", b"\xdd\xff\xff\xff\xff\xc0",
        b"\xdf\xff\xff\xff\xff", b"\xa2\xc3\x28", b"\x81\xc0\x01", b"\x81\x90\x01",
        b"\x91" * 20000 + b"\xc0", b"\x81\xa1k" * 5000, b"", b"\xc0\xc0",
    ]
    sample = msgpack.packb({"op": "upload", "seq": 3, "data": bytes(100), "w": [0.5, -1, 2**40]})
    hostile += [sample[:cut] for cut in range(len(sample))]
    fuzz = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))) for _ in range(1500)]
    fuzz += [sample[:i] + bytes([rng.randrange(256)]) + sample[i + 1:] for i in range(len(sample))]
    # Run with the Pico's heap: a lying length must fail cleanly, not as MemoryError.
    out = run_mpy(MPY_ERRORS, stdin=pack_stream(hostile + fuzz))
    results = [json.loads(line) for line in out.splitlines()]
    assert results[:len(hostile)] == ["ValueError"] * len(hostile)
    for data, got in zip(fuzz, results[len(hostile):]):
        try:
            expected = describe(mpack.unpackb(data))  # CPython: the same verdict
        except ValueError:
            expected = "ValueError"
        assert got == expected, data.hex()
    assert sum(r != "ValueError" for r in results) > 100  # the fuzz did reach valid decodes
