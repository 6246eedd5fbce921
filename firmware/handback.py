# When the server leaves for the REPL: the bytes a tool sent after its Ctrl-C (which
# the server read to tell a REPL request from garbage) are given to the REPL, so that
# it does what the tool asked (0x01: the raw REPL). PROTOCOL.md, "Leaving the server".
import io
import os
import select


class _Replay(io.IOBase):
    # A console input (os.dupterm) that gives the REPL a few bytes once, then detaches.
    def __init__(self, data, previous):
        self.data = data
        self.previous = previous

    def readinto(self, b):
        if not self.data:
            return None  # nothing now (EAGAIN): an empty read would print a notice
        b[0] = self.data[0]
        self.data = self.data[1:]
        if not self.data:
            os.dupterm(self.previous)  # the REPL's console is the USB one alone again
        return 1

    def write(self, b):
        return len(b)  # the REPL's output goes to USB as well: nothing to do here

    def ioctl(self, request, arg):
        return arg & select.POLLIN if request == 3 and self.data else 0  # 3: MP_STREAM_POLL


def hand_back(tail):
    """Give the REPL the bytes that followed the Ctrl-C, which the server read to
    tell a REPL request from garbage: the REPL then acts on them (0x01: raw REPL)."""
    if not tail:
        return
    if hasattr(os, "dupterm"):  # a board: a one-shot console input
        previous = os.dupterm(None)
        os.dupterm(_Replay(tail, previous))
        return
    fd = os.getenv("ANNE_CONSOLE_INPUT")  # the Unix port (virtual Pico): its console's input end
    if fd:
        global _console_input
        if _console_input is None:
            _console_input = open(int(fd), "wb")  # kept open: closing it would close the fd
        _console_input.write(tail)  # unbuffered: a write(2) on the Unix port


_console_input = None
