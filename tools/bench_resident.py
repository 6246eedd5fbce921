#!/usr/bin/env python3
"""What the commands a board seldom gets (training, pull, trace, monitoring) cost a board
that only infers: this checkout's firmware beside a baseline revision's, in one run.

    .venv/bin/python tools/bench_resident.py [--base REV] [--port PORT] [--json]

For each firmware: the free heap with the server started (hello's mem_free, after a
collection), and the time of the plain inference path for iris6 and its int8 twin, run
at the board's REPL: net.forward alone, and whole infer requests as the server handles
them (decode, the command table, the handler, the reply frame sealed; the serial line
left out, its timing being the host's). Each is the median of 5 runs of 100. The default baseline is f1d8262, the last
revision before training over the wire and monitoring landed. The figures are ratios
(this / base) where they are times: on the virtual Pico (the default) they are this PC's
CPU; with PORT (a Pico's serial port or an emulated RP2040's, whose firmware is replaced
twice: the baseline's, then this checkout's, which stays) they are the board's own
time.ticks_us. The heap is bytes either way; the virtual Pico's objects are twice a Pico's.
"""

import argparse
import json
import subprocess
import sys
import tarfile
import tempfile
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
BASE = "f1d8262"
SAMPLE = [5.9, 3.0, 5.1, 1.8]


def _extract(rev, into):
    # The firmware and protocol folders of ``rev``, as the repository holds them.
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "firmware", "protocol"],
                         capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(tar)) as t:
        t.extractall(into, filter="data")
    return Path(into)


def _use_firmware(tree):
    # Make the host's board_files lay out the firmware of ``tree`` (None: this checkout's).
    from anne_host import board_files

    if not hasattr(board_files, "_own"):
        board_files._own = (board_files.firmware_dir, board_files.protocol_dir)
    if tree is None:
        board_files.firmware_dir, board_files.protocol_dir = board_files._own
    else:
        board_files.firmware_dir = lambda: tree / "firmware"
        board_files.protocol_dir = lambda: tree / "protocol"


# Run at the board's REPL: each model's forward pass, and whole infer requests as the
# server handles them (decode, the command table, the handler, the reply frame sealed),
# without the serial line, whose timing is the host's. The server's own heap settling
# comes first, as when it starts.
_ON_BOARD = """
import anne, gc, json, struct, time
from anne import server, service
from anne.protocol import mpack
server._settle_heap()
svc = service.Service()
buf = bytearray(2048)
out = {}
for name in ("res_iris6", "res_iris6_int8"):
    svc.active.activate(name)
    x = struct.pack("<4f", *SAMPLE)
    body = mpack.packb({"cmd": "infer", "id": 7, "x": x})
    net = svc.active.need()
    from array import array
    xa = array("f", x)
    best = {}
    for what in ("forward", "request"):
        runs = []
        for r in range(5):
            gc.collect()
            t0 = time.ticks_us()
            for k in range(100):
                if what == "forward":
                    net.forward(xa)
                else:
                    rid, reply = server._handle(svc, body)
                    server._reply_frame(rid, reply, buf)
            runs.append(time.ticks_diff(time.ticks_us(), t0) / 100)
        runs.sort()
        best[what + "_us"] = runs[2]
    assert reply["ok"], reply
    out[name[4:]] = best
    net = None
print(json.dumps(out))
"""


def _measure(port, lib):
    from anne_host import deploy, model_doc, unixport
    from anne_host.client import Client

    with Client.open(port) as board:
        mem_free = board.info["mem_free"]
        for name in ("iris6", "iris6_int8"):
            board.upload(model_doc.pack(model_doc.read(MODELS / (name + ".json"))), "res_" + name,
                         activate=False)
        board.exit()
    code = _ON_BOARD.replace("SAMPLE", repr(SAMPLE))
    if lib is None:
        text = deploy.mpremote(port, "exec", code, what="timing inference on the board")
    else:  # the virtual Pico's REPL is its own process: run the code there
        text = unixport.run(code, lib, cwd=lib.parent / "flash")
    out = json.loads(text.strip().splitlines()[-1])
    out["mem_free"] = mem_free
    with Client.open(port) as board:
        for name in ("iris6", "iris6_int8"):
            board.delete("res_" + name)
    return out


def _run(tree, port):
    from anne_host import deploy
    from anne_host.sim import VirtualPico

    _use_firmware(tree)
    try:
        if port:
            deploy.deploy(port, log=lambda *a: None)
            return _measure(port, None)
        with tempfile.TemporaryDirectory() as tmp:
            from anne_host import board_files

            vp = VirtualPico(Path(tmp) / "flash").start()
            try:
                return _measure(vp.port, board_files.stage(Path(tmp) / "lib"))
            finally:
                vp.stop()
    finally:
        _use_firmware(None)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default=BASE, help="the baseline revision (default %s)" % BASE)
    ap.add_argument("--port", help="a board's serial port (default: two virtual Picos)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        base = _run(_extract(args.base, tmp), args.port)
        this = _run(None, args.port)
    clock = "board time (time.ticks_us)" if args.port else "virtual Pico: this PC's CPU, not a Pico's time"
    result = {"base": args.base, "clock": clock, "base_firmware": base, "this_firmware": this}
    if args.json:
        print(json.dumps(result))
        return
    print("free heap with the server started: %s %d B, this checkout %d B (%+d B)"
          % (args.base, base["mem_free"], this["mem_free"], this["mem_free"] - base["mem_free"]))
    print("inference, median of 5 runs of 100 (%s):" % clock)
    for name in ("iris6", "iris6_int8"):
        b, t = base[name], this[name]
        print("  %-11s forward %7.1f -> %7.1f us (x%.2f)   infer request %7.1f -> %7.1f us (x%.2f)"
              % (name, b["forward_us"], t["forward_us"], t["forward_us"] / b["forward_us"],
                 b["request_us"], t["request_us"], t["request_us"] / b["request_us"]))


if __name__ == "__main__":
    main()
