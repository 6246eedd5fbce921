"""The benchmark on the virtual Pico, every part in order.

Everything on the board side runs inside the real MicroPython interpreter (its Unix port)
with the Pico's heap (host/unixport.PICO_HEAP), one process per job, so that no model's
garbage lands in another's figures. The board-side code is on_board/: paper_baseline.py
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

import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from anne_host import model_doc, unixport

from end_to_end import end_to_end
from firmware_costs import import_costs, thumb_counts
from largest import diagnose, largest_bare, largest_int8
from measure import measure
from nets import (MODELS, ROWS, SEED, TARGET_INT8_PARAMS, TARGET_PARAMS, dense_doc, family_doc, family_int8,
                  first_with, iris_inputs, largest_family, params)
from runner import Runner


def environment():
    mp = subprocess.run([unixport.executable(), "-c", "import sys; print(sys.version)"],
                        capture_output=True, text=True).stdout.strip()
    return {"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(), "nproc": os.cpu_count(),
            "python": platform.python_version(), "micropython": mp, "heap": unixport.PICO_HEAP,
            "command": " ".join([".venv/bin/python tools/bench"] + sys.argv[1:])}


def run(opts, log):
    """Everything the flags ask for: the result as one dictionary (--json prints it)."""
    started = time.perf_counter()
    result = {"environment": environment(), "models": []}
    with tempfile.TemporaryDirectory(prefix="anne-bench-") as tmp:
        runner = Runner(tmp)
        largest = {}
        if not opts.no_e2e:
            log("through the serial protocol: eval, the largest model, upload ...")
            result["end_to_end"] = e2e = end_to_end(Path(tmp), opts)
            for key, h in (("server", e2e["largest_h"]), ("server_py", e2e["largest_h_py"])):
                largest[key] = {"h": h, "name": family_doc(h)["name"], "params": params(family_doc(h))}
            largest["server_free"], largest["server_free_py"] = e2e["server_free"], e2e["server_free_py"]
            largest["through_server"] = e2e["target"]
        log("finding the largest model anne.load loads in the Pico heap ...")
        h = largest_bare(runner, opts.step)
        largest["repl"] = {"h": h, "name": family_doc(h)["name"], "params": params(family_doc(h))}
        log("finding the largest int8 model anne.load loads in the Pico heap ...")
        h8 = largest_int8(runner, opts.step)
        largest["int8"] = {"h": h8, "name": family_doc(h8)["name"], "params": params(family_doc(h8))}
        h8 = first_with(TARGET_INT8_PARAMS)
        probe = runner.probe(family_int8(h8))
        largest["int8_target"] = {"h": h8, "name": family_doc(h8)["name"], "params": params(family_doc(h8)),
                                  "ok": probe["ok"], "held": probe.get("held")}
        target = first_with(TARGET_PARAMS)
        largest["target"] = {"h": target, "name": family_doc(target)["name"],
                             "params": params(family_doc(target))}
        # Why the server takes no larger model: the next size, and the target's size.
        if "server" in largest:
            log("replaying the server's upload path ...")
            largest["diagnosis"] = [diagnose(runner, hh) for hh in sorted({largest["server"]["h"] + opts.step,
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
                result["models"].append(measure(runner, name, doc, x, opts))
        log("counting Thumb instructions, timing imports ...")
        result["thumb"] = thumb_counts()
        result["imports"] = import_costs(runner, 3 if opts.quick else 5)
        result["seconds"] = time.perf_counter() - started
        result["processes"] = runner.processes
    return result
