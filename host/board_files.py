"""Where the board's files are, and how they are laid out on a board.

On a board the firmware is one package, ``/lib/anne``, with the shared protocol
code inside it as ``anne.protocol``. The repository keeps them apart (``firmware/``
and ``protocol/``), so every consumer -- the virtual Pico, ``deploy``, the tests --
lays them out with :func:`stage`.
"""

import importlib.util
import shutil
from pathlib import Path


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
