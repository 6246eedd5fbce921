#!/usr/bin/env python3
"""Training speed and memory on the board side: anne.train against plain-Python lists.

    .venv/bin/python tools/bench_train.py            # 16-64-64-8, batch 32
    .venv/bin/python tools/bench_train.py --steps 5 --sizes 16,64,64,8 --batch 32

Runs inside the real MicroPython (its Unix port) with the Pico's heap
(host/unixport.PICO_HEAP), one process per job. Per job: microseconds per training
step (one batch, SGD with momentum, categorical cross-entropy on softmax, the same
initial weights and data), median of the timed steps after one warm-up step; and
for anne.train the heap the training state takes (gc.mem_alloc after setting it
up for one batch, minus before), per parameter, with its parts.
Host times: ratios carry over to a board better than absolute microseconds.
"""

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from anne_host import board_files, unixport

_COMMON = """
import gc, json, time
sizes, B, steps = %r, %d, %d
def rnd(s):
    s ^= (s << 13) & 0xFFFFFFFF; s ^= s >> 17; s ^= (s << 5) & 0xFFFFFFFF
    return s
s = 7
def uni():
    global s
    s = rnd(s)
    return (s >> 8) / 16777216.0 - 0.5
def data():  # made after the weights (the large arrays first, before the heap is cut up)
    return [[uni() * 2 for i in range(sizes[0])] for r in range(B)], [r %% sizes[-1] for r in range(B)]
acts = ["relu"] * (len(sizes) - 2) + ["softmax"]
def timed(f):
    f()
    ts = []
    for _ in range(steps):
        gc.collect()
        t = time.ticks_us()
        f()
        ts.append(time.ticks_diff(time.ticks_us(), t))
    ts.sort()
    return ts[len(ts) // 2]
"""

_ANNE = _COMMON + """
from array import array
from anne import build, train
from anne.engine import Net
layers = build.layers(sizes, acts)
for layer in layers:  # the same weights as the baseline's, in the same order
    w = layer.weights
    for k in range(len(w)):
        w[k] = uni() * 0.4
net = Net({"name": "bench"}, layers, "reference")
params = net.param_count()
gc.collect()
before = gc.mem_alloc()
tr = train.Trainer(net, B, train.SGD(0.01, 0.9))
gc.collect()
state = gc.mem_alloc() - before
free = gc.mem_free()
X, Y = data()
t = train._targets(net, X, Y, "categorical_crossentropy")
x = train._flat(X, net.inputs)
width = max(sizes)
parts = {"velocity": 4 * params,
         "batch activations": 4 * B * (sum(sizes) + sizes[-1]),
         "deltas": 8 * B * width, "bfp scratch": 4 * max(width * width, (width + 1) * B)}
us = timed(lambda: tr.train_batch(x, t, 0, B))
print(json.dumps({"us": us, "params": params, "state_bytes": state, "parts": parts, "free": free}))
"""

_BASELINE = _COMMON + """
import train_baseline
init = [([[uni() * 0.4 for i in range(a)] for j in range(b)], [0.0] * b) for a, b in zip(sizes, sizes[1:])]
X, Y = data()
net = train_baseline.Net([(rows, b, a) for (rows, b), a in zip(init, acts)])
us = timed(lambda: net.step(X, Y, 0.01, 0.9))
print(json.dumps({"us": us}))
"""


def run(code, lib, heap=None):
    out = unixport.run(code, lib, heap=heap, timeout=1800)
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="16,64,64,8")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--heap", type=int, default=None, help="heap bytes (default: the Pico's)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per job (median)")
    args = ap.parse_args()
    sizes = [int(v) for v in args.sizes.split(",")]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        lib = board_files.stage(Path(tmp) / "lib")
        (lib / "train_baseline.py").write_bytes((ROOT / "tools/bench/on_board/train_baseline.py").read_bytes())
        try:
            ours = run(_ANNE % (sizes, args.batch, args.steps), lib, heap=args.heap)
            ours_heap = "the Pico's heap" if not args.heap else "a %d B heap" % args.heap
        except unixport.UnixPortError as e:
            if "MemoryError" not in str(e):
                raise
            # This port's objects and code are 64-bit: larger than on the board.
            ours_heap = "a 16 MB heap: it does not fit this 64-bit port's Pico-sized heap"
            ours = run(_ANNE % (sizes, args.batch, args.steps), lib, heap=16 << 20)
        try:
            base = run(_BASELINE % (sizes, args.batch, args.steps), lib)
            heap = "the Pico's heap"
        except unixport.UnixPortError as e:
            if "MemoryError" not in str(e):
                raise
            # Lists of boxed floats: weights, velocities and gradient sums at about
            # 24 B per value on this 64-bit port (16 B float + 8 B slot) do not fit.
            heap = "a 16 MB heap: it does not fit the Pico's"
            base = run(_BASELINE % (sizes, args.batch, args.steps), lib, heap=16 << 20)
    p = ours["params"]
    print("net %s, batch %d, SGD with momentum, CCE on softmax; MicroPython Unix port, Pico heap"
          % ("-".join(map(str, sizes)), args.batch))
    print("  plain-Python lists (tools/bench/on_board/train_baseline.py): %10d us per step (with %s)" % (base["us"], heap))
    print("  anne.train (firmware/train.py):                      %10d us per step (with %s)" % (ours["us"], ours_heap))
    print("  ratio: %.1fx" % (base["us"] / ours["us"]))
    print("  heap free after setting up: %d bytes" % ours["free"])
    print("  training state: %d bytes for %d parameters = %.1f B/param; with the weights (4 B/param): %.1f B/param"
          % (ours["state_bytes"], p, ours["state_bytes"] / p, ours["state_bytes"] / p + 4))
    for name, n in ours["parts"].items():
        print("    %-18s %7d B  %.2f B/param" % (name, n, n / p))


if __name__ == "__main__":
    main()
