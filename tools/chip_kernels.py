#!/usr/bin/env python3
"""Inference speed on a board, in board time: the int8 kernels (Thumb assembler and viper),
the float kernels (bfp-thumb, the board's choice, and bfp-viper), with where a net's time goes.

    .venv/bin/python tools/chip_kernels.py --port PORT [--deploy] [--repeat N] [--only float|int8] [--json]

PORT is a Pico's serial port (or an emulated RP2040's). --deploy installs the firmware
first (as `anne-host deploy`). Every time is the board's own time.ticks_us, per inference,
the mean over --repeat inferences (default 300) after one warm-up call; the cost of the
timing loop itself (an empty `for` loop, measured first) is taken off. The models:
iris6 (float32 and its int8 twin, models/), and random 16-64-64-8 and 64-128-64-10 nets
(relu, relu, softmax; Glorot-uniform weights, seed 1) as float32 and quantized with
anne_host.quantize.quantize on 300 N(0, 1) rows, packed with anne_host.model_doc.pack;
and the same 16-64-64-8 weights with tanh, sigmoid, softmax ("-tss"), float32.

For each model and kernel it prints:
  kernel   the kernel's run(src, dst, state) alone (int8 models);
  layers   anne.engine.run_steps(), the layer loop the server's infer and batch time ("us");
  forward  Net.forward(x) with x a list of floats, as `anne-host bench` times it;
  f32      Net.forward(x) with x an array('f');
  predict  Net.predict(x), forward plus the list of outputs;
  infer    Net.run_batch() of one row, the board's side of an infer request (no framing);
  per layer: Net.profile(x), and for the float net the dense step and the activation apart.
"""

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

_BOARD = r"""
import gc, time
from array import array
import anne
from anne.engine import run_steps
R = %(repeat)d
ticks, diff = time.ticks_us, time.ticks_diff

def per(f, *a):
    f(*a)
    gc.collect()
    t0 = ticks()
    for _ in range(R):
        f(*a)
    return diff(ticks(), t0) / R

def empty():
    gc.collect()
    t0 = ticks()
    for _ in range(R):
        pass
    return diff(ticks(), t0) / R

def noop(*a):
    pass

loop = empty()
call = per(noop) - loop
tick = 0
for _ in range(R):
    t0 = ticks()
    t1 = ticks()
    tick += diff(t1, t0)
tick /= R
print('LOOP', loop, call, tick)
for name, kernel in %(jobs)r:
    gc.collect()
    net = anne.load('ck/' + name + '.anne', kernel)
    x = [0.25 * (i %% 7) - 0.5 for i in range(net.inputs)]
    a, b = net._a, net._b
    for i in range(net.inputs):
        a[i] = x[i]
    st = net._steps
    out = {'model': name, 'kernel': net.kernel, 'loop_us': loop}
    if net.dtype == 'int8':
        out['kernel_us'] = per(st[0], a, a, st[1]) - loop
    out['layers_us'] = per(run_steps, st, a, b) - loop
    out['forward_us'] = per(net.forward, x) - loop
    out['forward_f32_us'] = per(net.forward, array('f', x)) - loop
    out['predict_us'] = per(net.predict, x) - loop
    data = bytes(array('f', x))
    y, c, t = bytearray(4 * net.outputs), bytearray(1), bytearray(4)
    out['infer_us'] = per(net.run_batch, data, 1, y, c, t) - loop
    prof = [0] * len(net.layers)
    for _ in range(R):
        for i, us in enumerate(net.profile(x)):
            prof[i] += us
    out['profile_us'] = [v / R for v in prof]
    if net.dtype != 'int8':
        # each layer's dense step and activation apart, in order (the float
        # kernel overwrites its input), less what an empty timed region reads
        n = len(st) // 4
        d, f = [0] * n, [0] * n
        for _ in range(R):
            for i in range(net.inputs):
                a[i] = x[i]
            src, dst = a, b
            for k in range(n):
                run, state, act, units = st[4 * k:4 * k + 4]
                t0 = ticks()
                if run:
                    run(src, dst, state)
                    src, dst = dst, src
                t1 = ticks()
                if act:
                    act(src, units)
                t2 = ticks()
                d[k] += diff(t1, t0)
                f[k] += diff(t2, t1)
        out['steps_us'] = [(d[k] / R - tick, f[k] / R - tick) for k in range(n)]
    out['macs'] = sum(l.inputs * l.units for l in net.layers if l.kind == 'dense')
    out['free'] = gc.mem_free()
    print('JOB', json.dumps(out))
    net = st = a = b = None
"""


def dense_doc(name, sizes, rng, hidden=("relu", "relu")):
    """Random dense net: ``hidden`` activations, softmax output, Glorot-uniform weights."""
    from anne_host import model_doc

    layers = []
    for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        limit = np.sqrt(6.0 / (n_in + n_out))
        layers.append({"type": "dense",
                       "activation": {"name": "softmax" if k == len(sizes) - 2 else hidden[k]},
                       "weights": rng.uniform(-limit, limit, (n_out, n_in)).astype(np.float32),
                       "bias": rng.uniform(-0.1, 0.1, n_out).astype(np.float32)})
    return model_doc.build({"name": name, "inputs": sizes[0]}, layers)


def model_files():
    """name -> model file bytes."""
    from anne_host import model_doc, quantize

    files = {name: model_doc.pack(model_doc.read(ROOT / "models" / (name + ".json")))
             for name in ("iris6", "iris6_int8")}
    for sizes in ((16, 64, 64, 8), (64, 128, 64, 10)):
        name = "-".join(map(str, sizes))
        doc = dense_doc(name, sizes, np.random.default_rng(1))
        rows = np.random.default_rng(2).standard_normal((300, sizes[0])).astype(np.float32)
        files[name] = model_doc.pack(quantize.quantize(doc, rows))
        files[name + "-f32"] = model_doc.pack(doc)
    doc = dense_doc("16-64-64-8-tss", (16, 64, 64, 8), np.random.default_rng(1), ("tanh", "sigmoid"))
    files["16-64-64-8-tss"] = model_doc.pack(doc)
    return files


def jobs(only=None):
    """(model, kernel) pairs; kernel None: the board's choice."""
    out = []
    if only != "int8":
        for name in ("iris6", "16-64-64-8-f32", "16-64-64-8-tss", "64-128-64-10-f32"):
            out += [(name, None), (name, "bfp-viper")]
    if only != "float":
        for name in ("iris6_int8", "16-64-64-8", "64-128-64-10"):
            out += [(name, None), (name, "int8")]
    return out


def measure(port, repeat=300, install=False, only=None):
    from anne_host import deploy

    if install:
        deploy.deploy(port, log=lambda *a: None)
    files = model_files()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "ck"
        folder.mkdir()
        for name, blob in files.items():
            (folder / (name + ".anne")).write_bytes(blob)
        deploy.mpremote(port, "cp", "-r", str(folder), ":", what="copying the models")
    results = []
    loop = None
    for job in jobs(only):  # one run each, from a soft reset: a whole heap for each model,
        # and mpremote allows a run two minutes of wall time
        text = deploy.mpremote(port, "soft-reset", "exec",
                               "import json\n" + _BOARD % {"repeat": repeat, "jobs": [job]},
                               what="timing on the board")
        for line in text.splitlines():
            if line.startswith("LOOP ") and loop is None:
                loop = [float(v) for v in line.split()[1:]]
            elif line.startswith("JOB "):
                results.append(json.loads(line[4:]))
    return {"repeat": repeat, "loop_us": loop[0], "python_call_us": loop[1], "tick_us": loop[2],
            "jobs": results}


def report(doc):
    print("Board time (the board's time.ticks_us), µs per inference, mean of %d; the timing "
          "loop's %.1f µs taken off (a Python call costs %.1f µs more)"
          % (doc["repeat"], doc["loop_us"], doc["python_call_us"]))
    print("%-16s %-11s %6s %9s %9s %9s %9s %9s %9s %8s %8s  %s"
          % ("model", "kernel", "MACs", "kernel", "layers", "forward", "f32", "predict", "infer",
             "µs/MAC", "fwd/MAC", "per layer (profile)"))
    for job in doc["jobs"]:
        main = job.get("kernel_us", job["layers_us"])
        print("%-16s %-11s %6d %9s %9.1f %9.1f %9.1f %9.1f %9.1f %8.4f %8.4f  %s"
              % (job["model"], job["kernel"], job["macs"],
                 "%.1f" % job["kernel_us"] if "kernel_us" in job else "-", job["layers_us"],
                 job["forward_us"], job["forward_f32_us"], job["predict_us"], job["infer_us"],
                 main / job["macs"], job["forward_us"] / job["macs"],
                 " ".join("%.1f" % v for v in job["profile_us"])))
        if "steps_us" in job:
            parts = ", ".join("layer %d: dense %.1f + activation %.1f" % (i, d, a)
                              for i, (d, a) in enumerate(job["steps_us"]))
            fixed = job["forward_us"] - sum(d + a for d, a in job["steps_us"])
            print("%-16s   where it goes: %s; forward's own overhead %.1f" % ("", parts, fixed))
    print("µs/MAC: the kernel column (the layers column for float), over the dense layers' "
          "multiply-accumulates; fwd/MAC: the forward column over them.")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", required=True, help="the board's serial port")
    parser.add_argument("--deploy", action="store_true", help="install the firmware first")
    parser.add_argument("--repeat", type=int, default=300, help="inferences per figure")
    parser.add_argument("--only", choices=("float", "int8"), help="one kind of model only")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    doc = measure(args.port, args.repeat, args.deploy, args.only)
    if args.json:
        json.dump(doc, sys.stdout, indent=1)
        print()
    else:
        report(doc)


if __name__ == "__main__":
    main()
