"""Per model: speed, heap and outputs of the paper-style baseline, the engine (its default
and reference kernels) and its int8 twin, on the same weights and inputs."""

import numpy as np

from anne_host import unixport

from nets import BenchError, params

BIG_HEAP = 4 * 1024 * 1024  # for timing a baseline that does not fit the Pico heap


def decide(y):
    # The engine's rule: one output against 0.5, else the largest.
    return (y[:, 0] > 0.5).astype(int) if y.shape[1] == 1 else y.argmax(1)


def measure(runner, name, doc, x, opts):
    spec = runner.add(name, doc, x)
    p = params(doc)
    row = {"model": name, "params": p, "weight_bytes": 4 * p,
           "macs": sum(s[0] * s[1] for s in spec["shapes"])}
    mem, _ = runner.job("memory", dict(spec, flat=opts.flat))
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
    srv = runner.server_load(doc)
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
                    res = runner.job("timing", job, heap=heap)[0]
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
