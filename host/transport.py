"""Moving bytes to and from a board: a pyserial port, and the raw REPL on it.

A virtual Pico is reached the same way, through the path of its pseudo-terminal.
"""

import os
import time

from .boards import USB_VENDORS
from .errors import AnneError


class LinkError(AnneError):
    """The port or the board on it did not do what was asked."""

    exit_code = 4


class NoAnswer(LinkError):
    """The board did not say what was waited for, in time (the port itself works)."""


# Ports to count as boards besides those found on USB, separated by os.pathsep: the
# pseudo-terminals of virtual Picos (`anne-host sim`), which no USB listing shows.
EXTRA_PORTS = "ANNE_EXTRA_PORTS"


def list_ports():
    """[(device, description, is_raspberry_pi)] for every serial port, and for every
    port named in $ANNE_EXTRA_PORTS (counted as boards)."""
    from serial.tools import list_ports as lp

    found = [(p.device, p.description or "", p.vid in USB_VENDORS) for p in sorted(lp.comports())]
    listed = {dev for dev, _, _ in found}
    extra = dict.fromkeys(dev.strip() for dev in os.environ.get(EXTRA_PORTS, "").split(os.pathsep))
    return found + [(dev, "named in $%s" % EXTRA_PORTS, True) for dev in extra if dev and dev not in listed]


def board_ports():
    """The ports of every attached Raspberry Pi board (and of $ANNE_EXTRA_PORTS)."""
    return [dev for dev, _, is_pi in list_ports() if is_pi]


def find_board():
    """The single attached Raspberry Pi board's port."""
    boards = board_ports()
    if not boards:
        raise LinkError("no Raspberry Pi board found on USB; plug one in, or use --port PORT "
                        "(or --port sim for a virtual Pico)")
    if len(boards) > 1:
        raise LinkError("several boards attached (%s): choose one with --port" % ", ".join(boards))
    return boards[0]


_EACCES = 13
_EBUSY = (11, 16)  # EAGAIN from the lock, EBUSY from a driver


def _open_error(port, e):
    """One line saying why ``port`` did not open and what to do."""
    code = getattr(e, "errno", None)
    # On Windows a port (COM3) is not a path: only errno tells there.
    if code == 2 or (os.name == "posix" and not os.path.exists(port)):
        return ("cannot open %s: no such port (is the board plugged in? `anne-host ports` lists "
                "the ports, --port sim uses a virtual Pico)" % port)
    if code in _EBUSY or "lock" in str(e):
        return ("%s is in use by another process (another anne-host, Thonny, mpremote?): the port "
                "is busy; close it and try again" % port)
    if code == _EACCES:
        return ("cannot open %s: permission denied (on Linux, add yourself to the dialout group "
                "and log in again)" % port)
    return "cannot open %s: %s (is another program using it?)" % (port, e)


class SerialTransport:
    def __init__(self, port):
        import serial

        self.port = port
        try:
            # exclusive: a second program reading the same port would take half the
            # replies. pyserial takes flock(LOCK_EX|LOCK_NB) on the open port before it
            # changes any setting, so a second anne-host (or mpremote, which locks too)
            # fails here having done nothing; on a pseudo-terminal (the virtual Pico, the
            # emulated chip) every open of the path shares one inode, so the lock holds there.
            self.serial = serial.Serial(port, 115200, timeout=0.05, write_timeout=5, exclusive=True)
        except (serial.SerialException, OSError) as e:
            raise LinkError(_open_error(port, e))
        self.serial.reset_input_buffer()

    def write(self, data):
        try:
            self.serial.write(data)
        except Exception as e:  # pyserial raises several types; all mean the link is gone
            raise LinkError("writing to %s failed: %s (board unplugged, reset or not reading? plug "
                            "it in again and retry)" % (self.port, e))

    def read(self):
        """Whatever has arrived, waiting at most the port's short timeout."""
        try:
            waiting = self.serial.in_waiting
            return self.serial.read(max(1, waiting))
        except Exception as e:
            raise LinkError("reading from %s failed: %s (board unplugged or reset? plug it in "
                            "and retry)" % (self.port, e))

    def read_until(self, marker, timeout):
        data = b""
        end = time.monotonic() + timeout
        while marker not in data:
            if time.monotonic() > end:
                raise NoAnswer("%s: no answer from the board's REPL (waited for %r, got %r)"
                                % (self.port, marker, data[-80:]))
            data += self.read()
        return data

    def interrupt(self):
        """Ctrl-C: a program stops, a server leaves (PROTOCOL.md, "Leaving the server");
        what the board says meanwhile is dropped."""
        self.write(b"\r\x03")
        # Silence after it, for the server's 50 ms. On a slow board the next bytes may still
        # come within them: CR and Ctrl-B, which the server hands back to the REPL too.
        time.sleep(0.25)
        self.discard_input()

    def friendly_repl(self, timeout=None):
        """Ctrl-B: the friendly REPL, from the raw one or from itself, which prints its
        banner and prompt. With a timeout: wait for them (LinkError if they do not come)."""
        self.write(b"\r\x02")
        if timeout:
            end, data = time.monotonic() + timeout, b""
            # The prompt after the banner ("MicroPython v1.28.0 on ..."), not one from before.
            while b"Python" not in data or b">>> " not in data[data.index(b"Python"):]:
                data += self.read_until(b">>> ", max(0.0, end - time.monotonic()))

    def type_line(self, line, timeout=5):
        """Run one line at the friendly REPL, as a person types it, without waiting for it
        to end: whatever runs is interrupted first. LinkError if no REPL answers."""
        self.interrupt()
        self.friendly_repl(timeout)
        self.write(line.encode() + b"\r")

    def soft_reset(self, timeout=5):
        """Ctrl-D at the friendly REPL: MicroPython starts again (main.py too, if there
        is one), with what is on the flash now."""
        self.interrupt()
        self.friendly_repl(timeout)
        self.write(b"\x04")

    def discard_input(self):
        try:
            self.serial.reset_input_buffer()
        except Exception as e:  # as in read: any pyserial failure means the link is gone
            raise LinkError("reading from %s failed: %s (board unplugged or reset?)" % (self.port, e))

    def close(self):
        try:
            self.serial.close()
        except Exception:
            pass
