"""On the chip: a look inside and the monitor through the server, in the Pico's own float32:
trace gives what the host's reference gives, and a replayed stretch of the pump's day gives
the board's features and decisions as the host computes them."""

import json
from pathlib import Path

import numpy as np

from anne_host import features, model_doc, quantize
from anne_host.client import Client

MODELS = Path(__file__).resolve().parents[2] / "models"
PUMP = MODELS / "pump"


def test_trace_and_a_monitor_replay_on_the_chip(chip):
    doc = model_doc.read(MODELS / "iris3.json")
    pump = model_doc.read(PUMP / "pump.json")
    config = json.loads((PUMP / "monitor.json").read_text())
    config["inputs"] = [{"replay": src["name"], "name": src["name"]} for src in config["inputs"]]
    rows = (PUMP / "pump_day.csv").read_text().splitlines()[1:1 + 12 * 32]
    readings = np.array([[float(c) for c in r.split(",")[1:3]] for r in rows], np.float32)
    with Client.open(chip.port, timeout=60) as board:
        board.upload(model_doc.pack(doc), "iris3")
        x = [6.1, 2.8, 4.7, 1.2]
        layers = board.trace(x)
        np.testing.assert_allclose(layers[-1]["out"], quantize.run_float(doc, np.array([x], np.float32))[0],
                                   rtol=1e-5, atol=1e-6)
        board.upload(model_doc.pack(pump), "pump")
        board.monitor_start(replay=True, config=config)
        try:
            windows = board.monitor_feed(readings, 0)
        finally:
            board.monitor_stop()
        for name in ("pump", "iris3"):  # the REPL tests after this one list the store
            board.delete(name)
    expected = features.windows(readings, 32, config["features"], config["period_ms"])
    assert len(windows) == 12
    np.testing.assert_allclose([w["features"] for w in windows], expected, rtol=1e-4, atol=1e-4)
    assert [w["class"] for w in windows] == quantize.decisions(
        quantize.run_float(pump, expected.astype(np.float32)), 0.5).tolist()
    assert all(w["reaction_us"] > 0 for w in windows)  # measured in board time (tools/bench_monitor.py)
