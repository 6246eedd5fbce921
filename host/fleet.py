"""``--port all``: one command on every attached board at once (a classroom of Picos),
one line or report per board.

Each board gets its own thread and its own copy of the arguments; what the command
prints there is kept per board and printed afterwards in port order, so reports do
not interleave. The ports are those ``anne-host ports`` marks as boards, which
includes the ports named in $ANNE_EXTRA_PORTS (virtual Picos, for tests and demos).
"""

import argparse
import contextlib
import io
import json
import sys
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

from .errors import AnneError, UsageError
from .transport import LinkError, board_ports

COMMANDS = ("upload", "info", "select", "eval")


class _PerThread(io.TextIOBase):
    """Stands in for sys.stdout or sys.stderr: a board's thread writes into its own buffer."""

    def __init__(self, fallback):
        self.fallback = fallback
        self.local = threading.local()

    def write(self, text):
        buffer = getattr(self.local, "buffer", None)
        (self.fallback if buffer is None else buffer).write(text)
        return len(text)

    def isatty(self):
        return False  # progress bars of several threads would garble one terminal line


def run(handler, args):
    """Run ``handler`` for every board; the exit code is the first board's failure in port order, else 0."""
    if args.command not in COMMANDS:
        raise UsageError("--port all works with %s; %s takes one board (--port PORT)"
                         % (", ".join(COMMANDS), args.command))
    ports = board_ports()
    if not ports:
        raise LinkError("--port all: no Raspberry Pi board found on USB (nor named in $ANNE_EXTRA_PORTS)")
    out, err = _PerThread(sys.stdout), _PerThread(sys.stderr)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        with ThreadPoolExecutor(len(ports)) as pool:
            results = list(pool.map(lambda port: _one(handler, args, port, out, err), ports))
    (_print_json if args.json else _print_text)(results)
    return next((code for _, code, _, _ in results if code), 0)


def _one(handler, args, port, out, err):
    out.local.buffer, err.local.buffer = io.StringIO(), io.StringIO()
    try:
        code = handler(argparse.Namespace(**dict(vars(args), port=port))) or 0
    except AnneError as e:
        print("anne-host: %s" % e, file=sys.stderr)
        code = e.exit_code
    return port, code, out.local.buffer.getvalue(), err.local.buffer.getvalue()


def _print_text(results):
    for port, _, out, err in results:
        lines = out.strip("\n").splitlines()
        if len(lines) == 1:
            print("%s: %s" % (port, lines[0]))
        elif lines:
            print("%s:\n%s\n" % (port, textwrap.indent("\n".join(lines), "  ")))
        for line in err.strip("\n").splitlines():
            # Each board's error stays one line, naming the board.
            print("anne-host: %s: %s" % (port, line.removeprefix("anne-host: ")), file=sys.stderr)


def _print_json(results):
    document = {}
    for port, code, out, err in results:
        entry = json.loads(out) if out.strip() else None
        if code:
            entry = {"error": err.strip().removeprefix("anne-host: "), "exit_code": code,
                     **({"partial": entry} if entry is not None else {})}
            for line in err.strip("\n").splitlines():
                print("anne-host: %s: %s" % (port, line.removeprefix("anne-host: ")), file=sys.stderr)
        document[port] = entry
    print(json.dumps(document, indent=1))
