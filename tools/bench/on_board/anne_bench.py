# The board side of tools/bench: runs inside MicroPython (the Unix port with
# the Pico's heap), one job per process, and prints one JSON line of results.
# The host writes the models and inputs as files and reads the results back;
# nothing here needs the host, so the same jobs could run on a real Pico.
#
# Methods (README "Speed and memory" documents them):
# - time: time.ticks_us around n inferences, n chosen so that one round lasts
#   `round_us` (long enough to include the collections an implementation's
#   garbage causes); the rounds of the implementations loaded together alternate,
#   and each one's median round is its time.
# - heap held by a model: gc.mem_alloc() after gc.collect(), before and after
#   building it. Every module the load needs is imported (and a small model with
#   every activation loaded once) beforehand, so only the model is counted.
# - load peak: the highest gc.mem_alloc() after gc.collect() at any read of the
#   model file, or at the end (watched.py), less the heap in use before.
# - bytes allocated per inference: micropython.mem_total() counts every byte
#   ever allocated, garbage included; its growth over n inferences, less its
#   growth over the same loop with no inference, divided by n.
import gc
import json
import time
from array import array

import micropython

import paper_baseline
from watched import Watched
from anne.engine import Net
from anne.kernels import DEFAULT
from anne.protocol import modelfile

# Bytes ever allocated: only in builds with MICROPY_MEM_STATS (the Unix port has it,
# board firmware usually not); without it the allocation figures are left out.
_mem_total = getattr(micropython, "mem_total", lambda: 0)


def _engine(path, kernel=None, stream=None):
    # What anne.load does with a file path, with the stream replaceable so that
    # the load can be watched (watched.py).
    with open(path, "rb") as f:
        meta, layers = modelfile.load(stream(f) if stream else f)
    return Net(meta, layers, kernel or DEFAULT)


def _baseline(path, shapes, stream=None):
    with open(path, "rb") as f:
        return paper_baseline.load(stream(f) if stream else f, shapes)


def _warm_up(spec, int8=True):
    # Load and run a tiny model once with each kernel and the baseline (and its
    # int8 twin, unless not needed), so that the modules they import lazily are in
    # place before anything is measured.
    for kernel in ("bfp", "reference"):
        net = _engine(spec["warm"], kernel, Watched)
        net.forward(array("f", range(net.inputs)))
    if int8:
        _warm_up_int8(spec)
    base = _baseline(spec["warm_base"], spec["warm_shapes"], Watched)
    paper_baseline.predict(base, [0.5] * spec["warm_shapes"][0][0])
    net = base = None
    gc.collect()


def _warm_up_int8(spec):
    # The int8 module's code stays in the heap once imported: a job measuring the
    # largest float model imports it only after that model is measured.
    net = _engine(spec["warm8"], None, Watched)
    net.forward(array("f", range(net.inputs)))
    net = None
    gc.collect()


def _held(build):
    # (object built, heap bytes it holds, peak of live heap while building it);
    # MemoryError passes to the caller.
    gc.collect()
    before = Watched.peak = gc.mem_alloc()
    obj = build()
    gc.collect()
    held = gc.mem_alloc() - before
    return obj, held, max(Watched.peak - before, held)


def _rows(spec, count):
    # The first `count` input rows as tuples of floats, so that reading an input
    # makes no new float object; fewer (down to one) where the heap left beside
    # the largest model has no room for them.
    n = spec["n_in"]
    while True:
        try:
            x = array("f", range(count * n))
            with open(spec["inputs"], "rb") as f:
                f.readinto(x)
            return x, [tuple(x[r * n:(r + 1) * n]) for r in range(count)]
        except MemoryError:
            if count == 1:
                raise
            x = None
            gc.collect()
            count = 1


def _outputs(spec, fn, arg, path, typecode):
    # Every input row through fn(arg, x), the outputs written to `path`. Rows are
    # read one at a time: the largest model leaves no room for all of them.
    n, k = spec["n_in"], spec["n_out"]
    x = array("f", range(n))
    out = open(path, "wb")
    with open(spec["inputs"], "rb") as f:
        for _ in range(spec["rows"]):
            f.readinto(x)
            y = fn(arg, x)
            out.write(array(typecode, [y[j] for j in range(k)]))
    out.close()


def _run(fn, arg, xs, n):
    # n inferences over the rows xs; microseconds taken.
    m = len(xs)
    t0 = time.ticks_us()
    for i in range(n):
        fn(arg, xs[i % m])
    return time.ticks_diff(time.ticks_us(), t0)


def _allocated(fn, arg, xs, n):
    # Bytes allocated by n inferences: what _run allocates, less what the same
    # loop allocates with no inference (its range, its timing).
    total = _mem_total()
    _run(fn, arg, xs, 0)
    harness = _mem_total() - total
    total = _mem_total()
    _run(fn, arg, xs, n)
    return _mem_total() - total - harness


def _calls(fn, arg, xs, round_us):
    # How many inferences make a round of about round_us.
    fn(arg, xs[0])
    n = 1
    while True:
        t = _run(fn, arg, xs, n)
        if t >= round_us // 4 or n >= 1 << 20:
            return max(1, n * round_us // max(t, 1))
        n *= 4


def _engine_figures(spec, path, name, res):
    # The engine's figures for the model at `path`, as res[name + "_..."]: heap
    # held, load peak, kernel, outputs on every row, and heap in use and bytes
    # allocated across many inferences (the same after as before, if nothing leaks).
    net, res[name + "_held"], res[name + "_peak"] = _held(lambda: _engine(path, None, Watched))
    res[name + "_kernel"] = net.kernel
    _outputs(spec, Net.forward, net, spec["out"] + "." + name, "f")
    x, xs = _rows(spec, 4)
    gc.collect()
    before = gc.mem_alloc()
    allocated = _allocated(Net.forward, net, xs, spec["flat"])
    gc.collect()
    res[name + "_flat_before"], res[name + "_flat_after"] = before, gc.mem_alloc()
    res[name + "_alloc_per_inference"] = allocated / spec["flat"]
    net = x = xs = None
    gc.collect()


def memory(spec):
    """Heap held by the engine (on the float model and its int8 twin), the
    reference kernel and the baseline; each one's outputs on every input row; the
    engine's heap across many inferences."""
    _warm_up(spec, int8=False)
    gc.collect()
    res = {"mem_free": gc.mem_free(), "mem_alloc": gc.mem_alloc(), "flat_n": spec["flat"]}
    _engine_figures(spec, spec["anne"], "engine", res)
    _warm_up_int8(spec)
    _engine_figures(spec, spec["anne8"], "int8", res)
    try:
        net, res["reference_held"], _ = _held(lambda: _engine(spec["anne"], "reference"))
        _outputs(spec, Net.forward, net, spec["out"] + ".reference", "f")
    except MemoryError:
        res["reference_held"] = None  # after the engine's load and drop, the heap may be in pieces
    net = None
    gc.collect()
    try:
        base, res["baseline_held"], res["baseline_peak"] = _held(
            lambda: _baseline(spec["base"], spec["shapes"], Watched))
        _outputs(spec, paper_baseline.predict, base, spec["out"] + ".baseline", "d")
        x, xs = _rows(spec, 4)
        res["baseline_alloc_per_inference"] = _allocated(paper_baseline.predict, base, xs, 100) / 100
    except MemoryError:
        res["baseline_held"] = res["baseline_peak"] = None  # it does not fit this heap
    base = x = xs = None
    gc.collect()
    print(json.dumps(res))


def timing(spec):
    """Microseconds per inference of the implementations spec["which"] (baseline,
    engine, reference, int8: the engine on the int8 twin), loaded together in this process and timed in alternating
    rounds; each one's median round. Outputs named in spec["outputs"] are written
    too (those the memory job could not write, its heap being too small)."""
    _warm_up(spec, "int8" in spec["which"])
    runs = []
    res = {}
    for name in spec["which"]:
        if name == "baseline":
            base, res["baseline_held"], _ = _held(lambda: _baseline(spec["base"], spec["shapes"]))
            runs.append((name, paper_baseline.predict, base))
        else:
            path = spec["anne8"] if name == "int8" else spec["anne"]
            runs.append((name, Net.forward, _engine(path, "reference" if name == "reference" else None)))
        if name in spec["outputs"]:
            _outputs(spec, runs[-1][1], runs[-1][2], spec["out"] + "." + name,
                     "d" if name == "baseline" else "f")
    x, xs = _rows(spec, 4)
    counts = [_calls(fn, arg, xs, spec["round_us"]) for _, fn, arg in runs]
    rounds = {name: [] for name, _, _ in runs}
    for _ in range(spec["rounds"]):
        for (name, fn, arg), n in zip(runs, counts):
            rounds[name].append(_run(fn, arg, xs, n) / n)
    for name, us in rounds.items():
        us.sort()
        res[name] = us[len(us) // 2]
        res[name + "_rounds"] = us
    res["calls"] = counts
    print(json.dumps(res))


def probe(spec):
    """Whether the engine loads the model and runs it once in this heap: the
    first steps of `memory`, exactly, so that a model found to fit here fits there."""
    _warm_up(spec, spec.get("int8"))
    gc.collect()
    res = {"mem_free": gc.mem_free()}
    try:
        net, res["held"], _ = _held(lambda: _engine(spec["anne"], None, Watched))
        net.forward(array("f", range(spec["n_in"])))
        res["ok"] = True
    except MemoryError:
        res["ok"] = False
    net = None
    print(json.dumps(res))


def main(job, spec_json):
    globals()[job](json.loads(spec_json))
