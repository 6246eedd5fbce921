"""The virtual Pico: the real MicroPython interpreter running the unmodified
firmware, its console on a pseudo-terminal that pyserial opens like /dev/ttyACM0.

Two pseudo-terminals are bridged: MicroPython owns one as its stdin/stdout (as the
board's USB CDC console), a client opens the other by its path. The bridge keeps
the client's side alive between clients, as a board stays up between commands.

Its flash is a folder on disk: the firmware is copied to ``lib/`` in it at every
start (like flashing the board), and models are stored under ``models/``, so they
survive a restart of the virtual Pico.
"""

import os
import pty
import select
import signal
import subprocess
import termios
import threading
import tty
from pathlib import Path

from . import board_files, unixport
from .errors import AnneError


def default_flash_dir():
    """ANNE_SIM_DIR, else a folder in the user's data directory."""
    if os.environ.get("ANNE_SIM_DIR"):
        return Path(os.environ["ANNE_SIM_DIR"])
    import platformdirs

    return Path(platformdirs.user_data_dir("anne-host")) / "virtual-pico"


class VirtualPico:
    def __init__(self, flash_dir=None, heap=None, flash_firmware=True):
        self.flash_dir = Path(flash_dir or default_flash_dir())
        self.flash_firmware = flash_firmware  # False: boot what `deploy` left in the flash
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
            board_files.stage(lib)
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
        lib = self.flash_dir / "lib"
        args = ["-i", "main.py"] if (self.flash_dir / "main.py").exists() else []
        argv, env = unixport.command(lib, self.heap, args)
        slave = self._fds[1]
        # A board loses what was in its USB buffer when it resets.
        termios.tcflush(slave, termios.TCIFLUSH)
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave,
                                     cwd=self.flash_dir, env=env, close_fds=True,
                                     start_new_session=True)

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
