"""Speed and memory of ANNE on the virtual Pico, against dense nets written the paper's way.

    .venv/bin/python tools/bench              # the full run (about 60 s)
    .venv/bin/python tools/bench --quick      # a short run (about 30 s: fewer rounds)
    .venv/bin/python tools/bench --json       # one JSON document instead of the tables
    .venv/bin/python tools/bench --markdown   # the tables as Markdown, for the README
    .venv/bin/python tools/bench --port PORT [--deploy]   # on a board, in its own time

The modules beside this one import each other by their plain names: `python tools/bench`
puts this folder first on sys.path. virtual_pico.py runs the virtual Pico's benchmark
(nets.py, runner.py, measure.py, largest.py, end_to_end.py, firmware_costs.py), board.py a
board's, report.py prints either; on_board/ holds the code that runs inside MicroPython.
(on_board/train_baseline.py is tools/bench_train.py's baseline.)
"""

import argparse
import json
import sys
import time

import board
import report
import virtual_pico

FLAT = 10000  # inferences across which heap in use must not grow


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a short run: fewer and shorter rounds")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--markdown", action="store_true", help="the table as Markdown (for the README)")
    ap.add_argument("--no-e2e", action="store_true", help="skip the runs through the serial protocol")
    ap.add_argument("--models", help="comma-separated subset of the models, by name (e.g. iris6)")
    on_board = ap.add_argument_group("on a board (tools/bench/board.py)")
    on_board.add_argument("--port", help="measure the board on this serial port instead, in its own time")
    on_board.add_argument("--deploy", action="store_true", help="deploy the firmware to it first")
    on_board.add_argument("--no-baseline", action="store_true", help="skip the paper-style code at its REPL")
    on_board.add_argument("--no-largest", action="store_true", help="skip the search for the largest model")
    opts = ap.parse_args(argv)
    opts.step = 16 if opts.quick else 8
    opts.rounds = 5
    opts.passes = 1 if opts.quick else 3
    opts.round_us = 20000 if opts.quick else 60000
    opts.flat = FLAT
    opts.eval_runs = 3 if opts.quick else 5
    log = (lambda *a: None) if opts.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    if opts.port:
        started = time.perf_counter()
        result = board.run(opts.port, opts, log)
        result["seconds"] = time.perf_counter() - started
    else:
        result = virtual_pico.run(opts, log)  # it times itself, its temporary folder not counted
    if opts.json:
        print(json.dumps(result, indent=1))
    elif opts.port:
        report.print_board_report(result, md=opts.markdown)
    else:
        report.print_report(result, md=opts.markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
