"""Moving bytes to and from a board: a pyserial port, and the raw REPL on it.

A virtual Pico is reached the same way, through the path of its pseudo-terminal.
"""

import os
import time

from .errors import AnneError

RPI_VID = 0x2E8A  # Raspberry Pi's USB vendor id (Pico: PID 0x0005 under MicroPython)


class LinkError(AnneError):
    """The port or the board on it did not do what was asked."""

    exit_code = 4


def list_ports():
    """[(device, description, is_raspberry_pi)] for every serial port."""
    from serial.tools import list_ports as lp

    return [(p.device, p.description or "", p.vid == RPI_VID) for p in sorted(lp.comports())]


def find_board():
    """The single attached Raspberry Pi board's port."""
    boards = [dev for dev, _, is_pi in list_ports() if is_pi]
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
        return ("cannot open %s: the port is busy, another program has it open (Thonny, mpremote, "
                "another anne-host?): close it and try again" % port)
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
            # replies; the lock makes it a clear "busy" error instead (POSIX).
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
                raise LinkError("%s: no answer from the board's REPL (waited for %r, got %r)"
                                % (self.port, marker, data[-80:]))
            data += self.read()
        return data

    def raw_exec(self, code, timeout=5):
        """Start ``code`` through the raw REPL (mpremote's protocol) and return
        without waiting for it to end."""
        self.write(b"\r\x03")  # interrupt whatever runs: a server returns to the REPL
        time.sleep(0.15)
        self.discard_input()
        self.write(b"\r\x01")  # enter the raw REPL
        self.read_until(b"raw REPL; CTRL-B to exit\r\n>", timeout)
        self.write(code.encode() + b"\x04")
        self.read_until(b"OK", timeout)

    def discard_input(self):
        try:
            self.serial.reset_input_buffer()
        except Exception as e:  # as in read: any pyserial failure means the link is gone
            raise LinkError("reading from %s failed: %s (board unplugged or reset?)" % (self.port, e))

    def friendly_repl(self):
        self.write(b"\r\x02")

    def close(self):
        try:
            self.serial.close()
        except Exception:
            pass
