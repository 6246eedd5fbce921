"""Once per run: Thumb instructions per multiply-accumulate of the fast kernels, and the
import time and heap of the firmware as .py and as .mpy."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Imports: what `anne.load` needs, and the whole server (which imports the rest).
ENGINE_MODULES = ["anne", "anne.protocol.modelfile", "anne.engine", "anne.kernels", "anne.bfp",
                  "anne.activations", "anne.store"]
SERVER_MODULES = ["anne.server"]


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


def import_costs(runner, repeats):
    """Import time and heap of the firmware from .py sources and from .mpy files
    (mpy-cross for the Unix port's x64 code, as deploy compiles for a board's arch)."""
    out = {}
    for kind, lib in (("py", runner.lib), ("mpy", runner.lib_mpy)):
        for what, modules in (("engine", ENGINE_MODULES), ("server", SERVER_MODULES)):
            # import_cost imports nothing of ANNE (anne_bench would import it first).
            code = "import import_cost\nimport_cost.measure(%r)" % (modules,)
            runs = [json.loads(runner.run(code, lib=lib).strip().splitlines()[-1]) for _ in range(repeats)]
            out["%s_%s" % (what, kind)] = {"us": min(r["us"] for r in runs), "heap": runs[0]["heap"],
                                           "mem_free": runs[0]["mem_free"]}
    return out
