"""`anne-host demo monitor`: the worked example of condition monitoring. A day of a pump
whose bearing wears (models/pump/, simulated by tools/pump_sim.py) is replayed through the
board's monitor as fast as the link goes; what the board's actions said is set against
the pump's true state, window by window, with the board's reaction times."""

import json

import numpy as np

from . import board_files, evaluate, metrics, model_doc, monitor, report
from .errors import AnneError


def folder():
    return board_files._package_dir("anne_host.models") / "pump"


def run(board, dtype="float32"):
    """Replay the day on ``board``; returns the result (see report). The model active
    before is made active again."""
    before = board.hello().get("active")
    name = "pump" if dtype == "float32" else "pump_int8"
    doc = model_doc.read(folder() / (name + ".json"))
    config = monitor.read_config(folder() / "monitor.json")
    config["model"] = name
    config["inputs"] = [{"replay": src["name"], "name": src["name"]} for src in config["inputs"]]
    board.upload(model_doc.pack(doc), name)
    session = board.monitor_start(replay=True, config=config)
    labels = doc["labels"]
    try:
        data = monitor.load_replay(folder() / "pump_day.csv", session, labels, label_column="state")
        watch = monitor.replay(board, data, fast=True)
    finally:
        board.monitor_stop()
        if before and before != name:
            board.select(before)
    window = session["window"]
    truth = [data.truth[(k + 1) * window - 1] for k in range(len(watch.windows))]
    acted = [monitor.acted_state(w["actions"], config["actions"], labels) for w in watch.windows]
    decided = [labels[w["class"]] for w in watch.windows]
    reaction = np.array([w["reaction_us"] for w in watch.windows], np.float64)
    return {"model": name, "windows": len(watch.windows), "labels": labels,
            "actions": metrics.evaluate(truth, acted, labels),
            "classes": metrics.evaluate(truth, decided, labels),
            "reaction_us": metrics.latency(reaction.tolist()), "clock": evaluate.clock_of(board.info),
            "events": sum(1 for w in watch.windows if w["event"] is not None),
            "series": [[w["ms"], w["outputs"], w["actions"]] for w in watch.windows]}


def report_text(result):
    a, c = result["actions"], result["classes"]
    lines = ["a day of a pump's bearing wearing (%d windows of readings), replayed through the "
             "board's monitor running %s" % (result["windows"], result["model"]),
             "actions taken against the pump's true state: %s" % report.accuracy(a),
             report.confusion_table(a["confusion_matrix"], a["labels"]),
             "the net's class against the true state: %s" % report.accuracy(c),
             "reaction time, from a window's last reading to its actions set (%s): %s" % (
                 "the board's time.ticks_us" if result["clock"] == evaluate.BOARD_CLOCK
                 else "virtual Pico: this PC's CPU, not a Pico's time",
                 ", ".join("%s %.0f µs" % (k, result["reaction_us"][k]) for k in ("mean", "p50", "p95", "max"))),
             "events logged on the board: %d" % result["events"]]
    return "\n\n".join(lines)


def show(result, as_json, plot_dir=None):
    if plot_dir:
        from pathlib import Path

        from . import monitor_view

        watch = monitor.Watch([{"ms": ms, "outputs": out, "actions": acts} for ms, out, acts in result["series"]])
        Path(plot_dir).mkdir(parents=True, exist_ok=True)
        monitor_view.plot(watch, result["labels"], Path(plot_dir) / "pump-day.png",
                          title="%s: a day of bearing wear, replayed" % result["model"])
    if as_json:
        print(json.dumps({k: v for k, v in result.items() if k != "series"}, indent=1))
        return
    if not result["windows"]:
        raise AnneError("the replay gave no window")
    print(report_text(result))
