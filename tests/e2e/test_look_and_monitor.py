"""The paper's two other uses through anne-host and the virtual Pico: a look inside a net
(trace, its picture) and condition monitoring (configure, replay, events, the pump demo);
and neither leaves heap behind on the board when it is done."""

import json
from pathlib import Path

import numpy as np

from anne_host import features, model_doc, quantize

MODELS = Path(__file__).resolve().parents[2] / "models"
PUMP = MODELS / "pump"
SAMPLE = ["6.1", "2.8", "4.7", "1.2"]


def test_trace_gives_every_layer_and_a_picture(anne, tmp_path):
    assert anne("upload", str(MODELS / "iris3.json"))[0] == 0
    out = anne.json("trace", *SAMPLE, "--plot", str(tmp_path / "net.png"))
    doc = model_doc.read(MODELS / "iris3.json")
    x = np.array([[float(v) for v in SAMPLE]], np.float32)
    assert [(t["kind"], t["activation"], t["units"]) for t in out["layers"]] == [
        ("dense", "relu", 8), ("dense", "softmax", 3)]
    np.testing.assert_allclose(out["layers"][-1]["out"], quantize.run_float(doc, x)[0], rtol=1e-6, atol=1e-7)
    hidden = out["layers"][0]
    assert np.allclose(hidden["out"], np.maximum(hidden["pre"], 0))  # relu of its own sums
    assert (tmp_path / "net.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, text, _ = anne("trace", *SAMPLE)
    assert code == 0 and "layer 1: dense softmax, 3 units" in text and "versicolor" in text


def test_a_configuration_is_checked_on_the_board_and_stored(anne, tmp_path):
    assert anne("upload", str(PUMP / "pump.json"))[0] == 0
    bad = json.loads((PUMP / "monitor.json").read_text())
    bad["features"] = ["mean", "std"]  # 4 numbers for a net of 6 inputs
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    code, _, err = anne("monitor", "--configure", str(tmp_path / "bad.json"))
    assert code == 5 and "give 4 numbers; the model takes 6" in err and "Traceback" not in err
    out = anne.json("monitor", "--configure", str(PUMP / "monitor.json"))
    assert out["stored"] == "monitor.json" and out["bytes"] > 100


def test_the_virtual_pico_has_no_sensors_and_says_to_replay(anne):
    assert anne("upload", str(PUMP / "pump.json"))[0] == 0
    assert anne("monitor", "--configure", str(PUMP / "monitor.json"))[0] == 0
    code, _, err = anne("monitor", "--duration", "1")
    assert code == 5 and "replay recorded readings" in err and "Traceback" not in err


def test_a_replay_gives_the_boards_decisions_on_the_hosts_features(anne, tmp_path):
    # The first 20 windows of the day, one JSON line each: the board's features are the
    # host's (host/features.py), and its classes are the model's on them.
    rows = (PUMP / "pump_day.csv").read_text().splitlines()
    (tmp_path / "part.csv").write_text("\n".join(rows[:1 + 20 * 32]) + "\n")
    assert anne("upload", str(PUMP / "pump.json"))[0] == 0
    assert anne("monitor", "--configure", str(PUMP / "monitor.json"))[0] == 0
    code, out, err = anne("--json", "monitor", "--replay", str(tmp_path / "part.csv"), "--fast")
    assert code == 0, err
    windows = [json.loads(line) for line in out.splitlines()]
    readings = np.array([[float(c) for c in r.split(",")[1:3]] for r in rows[1:1 + 20 * 32]], np.float32)
    expected = features.windows(readings, 32, ["mean", "std", "max"], 5)
    assert len(windows) == 20
    np.testing.assert_allclose([w["features"] for w in windows], expected, rtol=1e-5, atol=1e-5)
    doc = model_doc.read(PUMP / "pump.json")
    assert [w["class"] for w in windows] == quantize.decisions(
        quantize.run_float(doc, expected.astype(np.float32)), 0.5).tolist()
    assert all(w["label"] == doc["labels"][w["class"]] for w in windows)


def test_demo_monitor_and_its_events(anne, tmp_path):
    result = anne.json("demo", "monitor", "--plot", str(tmp_path))
    recorded = json.loads((PUMP / "training.json").read_text())
    a = result["actions"]
    assert result["windows"] == recorded["day_windows"] == 288
    assert sum(map(sum, a["confusion_matrix"])) == 288 and a["accuracy"] >= 0.9
    # the net's class on the board is the Keras model's on the day's windows
    assert round(result["classes"]["accuracy"], 4) == recorded["day_accuracy_keras"]
    assert result["reaction_us"]["max"] > 0 and (tmp_path / "pump-day.png").exists()
    # the log is the board's (earlier replays here logged too): the demo's are the newest
    events = anne.json("events")[:result["events"]]
    assert len(events) == result["events"] >= 3
    assert [e["seq"] for e in events] == list(range(events[0]["seq"], events[0]["seq"] - len(events), -1))
    assert events[-1]["label"] == "normal" and events[0]["label"] == "failing"


def test_looking_and_monitoring_leave_no_heap_behind(anne, tmp_path):
    assert anne("upload", str(PUMP / "pump.json"))[0] == 0
    assert anne("monitor", "--configure", str(PUMP / "monitor.json"))[0] == 0
    rows = (PUMP / "pump_day.csv").read_text().splitlines()
    (tmp_path / "part.csv").write_text("\n".join(rows[:1 + 4 * 32]) + "\n")
    before = anne.json("info")["mem_free"]
    for _ in range(2):
        assert anne("monitor", "--replay", str(tmp_path / "part.csv"), "--fast", "--json")[0] == 0
        assert anne("trace", "1", "2", "3", "4", "5", "6")[0] == 0
        assert anne("events")[0] == 0
    # names the interpreter interned stay (under 3 KB); the modules' code goes
    assert before - anne.json("info")["mem_free"] < 3000


def test_the_live_view_shows_features_outputs_actions_and_events(anne, tmp_path):
    rows = (PUMP / "pump_day.csv").read_text().splitlines()
    (tmp_path / "part.csv").write_text("\n".join(rows[:1 + 6 * 32]) + "\n")
    assert anne("upload", str(PUMP / "pump.json"))[0] == 0
    assert anne("monitor", "--configure", str(PUMP / "monitor.json"))[0] == 0
    code, out, err = anne("monitor", "--replay", str(tmp_path / "part.csv"), "--fast",
                          "--plot", str(tmp_path / "m.png"))
    assert code == 0, err
    for text in ("pump on the board", "windows: 6", "features of the last window", "vibration_g",
                 "temperature_c", "the net's outputs", "normal", "LED (worn)", "GPIO 15 (failing)",
                 "board reaction time", "events (newest first)"):
        assert text in out, text
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
