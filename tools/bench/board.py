"""Speed and memory on a board through its serial port, every time taken by the board.

    .venv/bin/python tools/bench --port /dev/ttyACM0      # a Pico with the firmware deployed
    .venv/bin/python tools/bench --port PORT --deploy     # deploy first (anne-host deploy)
    .venv/bin/python tools/bench --port PORT --json       # one JSON document

The emulated RP2040's port works the same. The board's stored models named ``bench*``
are replaced and deleted, its active model is selected again at the end.

Per model, float32 and its int8 twin, uploaded and asked through the server: microseconds
per inference and per multiply-accumulate from the server's `bench` command (the board's
`time.ticks_us` around `repeat` inferences, and per layer), the `infer` request's own time,
and the heap the model holds. The paper-style list baseline (on_board/paper_baseline.py)
runs at the board's REPL on the same weights and inputs, timed the same way. Once: the
free heap with the server started, the upload rate and the eval rate in board time (the
difference of the board clock that `stats` reports, around the whole upload or stream)
against the board-only rate (samples over the sum of the board's per-sample times), and
the largest model of the family 64-h-h/2-10 that the server uploads and activates, float
and int8.
"""

import tempfile
from pathlib import Path

import numpy as np

from anne_host import csvdata, deploy, evaluate, model_doc, quantize
from anne_host.client import BoardError, Client

from largest import bisect_largest
from nets import MODELS, SEED, baseline_bytes, dense_doc, family_doc, family_int8, iris_inputs, params, shapes
from runner import BOARD_CODE

TICKS_PERIOD = 1 << 30  # MicroPython's ticks wrap here
BOARD_US = 200000  # board time per timing: repeats are chosen to fill it
EVAL_ROWS = 1000
# In a function, so that nothing stays in the REPL's globals (mpremote exec keeps them).
_BASELINE_RUN = """
def _baseline():
    import gc, time
    import bench_baseline as pb
    with open('bench.base', 'rb') as f:
        net = pb.load(f, %r)
    x = %r
    pb.predict(net, x)
    t0 = time.ticks_us()
    for _ in range(%d):
        pb.predict(net, x)
    dt = time.ticks_diff(time.ticks_us(), t0)
    print('RESULT', dt)
_baseline()
del _baseline
"""


def _ticks(client):
    return client.stats()["ticks_us"]


def _since(client, t0):
    return (_ticks(client) - t0) % TICKS_PERIOD


def models():
    """(name, float document, inputs): the IRIS nets and random nets, as on the virtual Pico."""
    rng = np.random.default_rng(SEED)
    out = [(n, model_doc.read(MODELS / (n + ".json")), iris_inputs(rng, 64))
           for n in ("iris6", "iris8", "iris3")]
    for sizes, acts in (([16, 64, 64, 8], None), ([16, 64, 64, 8], ("tanh", "sigmoid", "softmax")),
                        ([64, 128, 64, 10], None)):
        name = "-".join(map(str, sizes)) + ("" if acts is None else " " + "/".join(acts))
        doc = dense_doc(name, sizes, rng)
        if acts:
            for layer, act in zip(doc["layers"], acts):
                layer["activation"] = {"name": act}
        out.append((name, doc, rng.standard_normal((64, sizes[0])).astype(np.float32)))
    return out


def macs(doc):
    return sum(np.asarray(l["weights"]).size for l in doc["layers"] if l["type"] == "dense")


def time_model(client, doc, x):
    """Upload ``doc`` as 'bench' and time it on the board."""
    before = client.hello()
    client.upload(model_doc.pack(doc), "bench")
    held = before["mem_free"] - client.hello()["mem_free"]
    probe = client.bench(repeat=3, x=x[0].tolist())
    repeat = int(max(5, min(2000, BOARD_US / max(probe["us"], 1))))
    res = client.bench(repeat=repeat, x=x[0].tolist())
    infer_us = sorted(client.infer(row.tolist())[2] for row in x[:15])[7]
    return {"us": res["us"], "repeat": repeat, "infer_us": infer_us, "held": held,
            "layers": [round(l["us"], 1) for l in res["layers"]]}


def baseline(port, doc, x):
    """The paper-style list code at the board's REPL (no server running, the port free):
    microseconds per inference, or why it could not run (a MemoryError for models whose
    lists exceed the heap)."""
    layer_shapes = shapes(doc)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "bench.base"
        weights.write_bytes(baseline_bytes(doc))
        deploy.mpremote(port, "fs", "cp", str(BOARD_CODE / "paper_baseline.py"),
                        ":bench_baseline.py", "+", "fs", "cp", str(weights), ":bench.base",
                        what="copying the baseline")
    try:
        out = deploy.mpremote(port, "exec", _BASELINE_RUN % (layer_shapes, x[0].tolist(), 20),
                              what="running the baseline")
        dt = out.split("RESULT")[-1].split()[0]
        return {"us": int(dt) / 20}
    except deploy.DeployError as e:
        return {"us": None, "error": "MemoryError" if "MemoryError" in str(e) else str(e)}
    finally:
        deploy.mpremote(port, "exec", "import os\nfor f in ('bench_baseline.py', 'bench.base'):\n"
                        "    try: os.remove(f)\n    except OSError: pass", what="cleaning up")


def eval_rates(client, doc, rows):
    """(samples per board second through eval, board-only samples per board second)."""
    client.upload(model_doc.pack(doc), "bench")
    model = client.model()
    samples = csvdata.Samples(x=rows, y=None, lines=list(range(len(rows))), path="bench")
    t0 = _ticks(client)
    run = evaluate.stream(client, samples, model)
    elapsed = _since(client, t0)
    if run.error:
        raise run.error
    return len(rows) / (elapsed * 1e-6), len(rows) / (run.us.sum() * 1e-6)


def upload_rate(client, doc):
    blob = model_doc.pack(doc)
    t0 = _ticks(client)
    client.upload(blob, "bench", activate=False)
    return len(blob) / (_since(client, t0) * 1e-6)


def largest(client, int8, step, log):
    """The largest h whose 64-h-h/2-10 model the server uploads and activates."""
    def fits(h):
        doc = family_int8(h) if int8 else family_doc(h)
        try:
            client.upload(model_doc.pack(doc), "bench-big")
            ok = True
        except BoardError as e:
            if e.code != "no_memory":
                raise
            ok = False
        try:
            client.delete("bench-big")
        except BoardError:
            pass
        log("  %s %s: %s" % ("int8" if int8 else "float", doc["name"], "fits" if ok else "does not fit"))
        return ok
    h = bisect_largest(fits, step, hi=1024 if int8 else 512)
    doc = family_doc(h)  # the float twin: parameters are counted on float weights
    return {"h": h, "name": doc["name"], "params": params(doc)}


def run(port, opts, log):
    if opts.deploy:
        log("deploying the firmware ...")
        deploy.deploy(port, log=log)
    result = {"port": port, "models": []}
    work = models()
    with Client.open(port, timeout=120) as client:
        info = client.info
        result["board"] = info["machine"]
        result["micropython"] = info["micropython"]
        was_active = info["active"]
        for name in [m["name"] for m in client.list_models() if m["name"].startswith("bench")]:
            client.delete(name)
        result["free_at_start"] = client.hello()["mem_free"]
        if not opts.no_largest:
            # First, into the heap as the server left it at start: at the edge, models
            # that came and went before change what fits.
            log("the largest model through the server ...")
            result["largest"] = {"float": largest(client, False, opts.step, log),
                                 "int8": largest(client, True, opts.step, log)}
        for name, doc, x in work:
            log("timing %s ..." % name)
            doc8 = quantize.quantize(doc, x, name=name + "_int8")
            result["models"].append({"model": name, "macs": macs(doc), "params": params(doc),
                                     "float": time_model(client, doc, x), "int8": time_model(client, doc8, x)})
            client.delete("bench")
        log("eval and upload rates in board time ...")
        iris = model_doc.read(MODELS / "iris6.json")
        rows = np.tile(iris_inputs(np.random.default_rng(1), 250), (EVAL_ROWS // 250, 1))
        result["eval"] = {}
        for dtype, doc in (("float", iris), ("int8", quantize.quantize(iris, rows[:64]))):
            e2e, only = eval_rates(client, doc, rows)
            result["eval"][dtype] = {"rows": len(rows), "eval_per_s": e2e, "board_only_per_s": only,
                                     "ratio": e2e / only}
        result["upload_bytes_per_s"] = upload_rate(client, family_doc(128))
        client.delete("bench")
        if was_active and was_active in [m["name"] for m in client.list_models()]:
            client.select(was_active)
        client.exit()  # the REPL, for the baseline
    for row, (name, doc, x) in zip(result["models"], work):
        log("the paper-style code on %s ..." % name)
        row["baseline"] = {"us": None} if opts.no_baseline else baseline(port, doc, x)
    return result
