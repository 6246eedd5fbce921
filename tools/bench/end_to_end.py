"""Through the serial protocol, against virtual Picos with the Pico's heap: the eval rate
against the board's own, the largest model the server takes, the target sizes, the upload rate."""

import os
import time
from pathlib import Path

import numpy as np

from anne_host import csvdata, evaluate, model_doc, quantize, unixport
from anne_host.client import UPLOAD_CHUNK, Client
from anne_host.sim import VirtualPico

from largest import free_without_model, largest_on_server, through_server
from nets import (COMPACT_TARGET, INT8_TARGET, MODELS, TARGET_PARAMS, BenchError, dense_doc, family_doc,
                  first_with, params)

EVAL_SAMPLES = 3000


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


def upload_rate(client, doc):
    """Upload ``doc`` packed: transfer rate (to the last chunk's reply), and the rate
    including upload_end's verification and load."""
    free_without_model(client)
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
        out["server_free"] = free_without_model(client)
    vpico = VirtualPico(work / "sim_py", compiled=False).start()  # the sources, compiled on import
    try:
        with Client.open(vpico.port) as client:
            out["largest_h_py"] = largest_on_server(client, opts.step)
            out["server_free_py"] = free_without_model(client)
    finally:
        vpico.stop()
    return out
