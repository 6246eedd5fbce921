"""anne-host's command line: parse arguments, call a command, print errors in one line.

Each command is one row of COMMANDS (in commands.py): its name, help, the function
that adds its arguments, and its handler.
"""

import argparse
import os
import sys

from . import __version__
from .commands import COMMANDS
from .errors import AnneError


def _global_options(parser, default):
    # Accepted before or after the command name; the later one wins.
    parser.add_argument("--port", "-p", default=default,
                        help="serial port of the board, 'sim' for a private virtual Pico, or 'all' "
                             "for every attached board (upload, info, select, eval) "
                             "(default: $ANNE_PORT, else the single attached board)")
    parser.add_argument("--json", action="store_true", default=default,
                        help="print one JSON document on stdout instead of a report")


class _Parser(argparse.ArgumentParser):
    # A mistake in the arguments is one line, like every other error (exit code 2).
    def error(self, message):
        self.exit(2, "anne-host: %s (see %s --help)\n" % (message, self.prog))


def build_parser():
    parser = _Parser(
        prog="anne-host", description="Put a Keras dense network on a Raspberry Pi Pico and prove it works there.")
    parser.add_argument("--version", action="version", version="anne-host " + __version__)
    _global_options(parser, None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (summary, add_arguments, _) in COMMANDS.items():
        cmd = sub.add_parser(name, help=summary, description=summary)
        _global_options(cmd, argparse.SUPPRESS)
        add_arguments(cmd)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.port = args.port or os.environ.get("ANNE_PORT")
    handler = COMMANDS[args.command][2]
    try:
        if args.port == "all":
            from . import fleet

            return fleet.run(handler, args)
        code = handler(args) or 0
        sys.stdout.flush()  # a reader that left shows here, not at exit
        return code
    except BrokenPipeError:
        # The reader left (`anne-host eval ... | head -1`): the rest is dropped, silently as
        # cat does, with 128 + SIGPIPE (13) as exit code.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except AnneError as e:
        print("anne-host: %s" % e, file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("anne-host: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
