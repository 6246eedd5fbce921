"""The condition monitor and its event log, run by the firmware under MicroPython: window
features against numpy, actions with hysteresis and hold time, the ring of events on
flash, and a power cut in the middle of writing one."""

import json
import os
import select
import signal
import subprocess
import time

import numpy as np
import pytest

from anne_host import features, model_doc, unixport

FEATURES = ["mean", "std", "min", "max", "rms", "slope", "raw"]


def _net_file(tmp_path, n_in, weights, bias, labels=None, act="linear", name="m"):
    layer = {"type": "dense", "activation": {"name": act}, "weights": np.asarray(weights, np.float64),
             "bias": np.asarray(bias, np.float64)}
    meta = {"name": name, "inputs": n_in}
    if labels:
        meta["labels"] = labels
    path = tmp_path / (name + ".anne")
    path.write_bytes(model_doc.pack(model_doc.build(meta, [layer])))
    return str(path)


def _feed(run_mpy, model, config, rows, times=None, log=None):
    """Each window's result for the readings ``rows`` fed one by one."""
    code = ("import anne, json\nfrom anne.monitoring import Monitor, Recorder\nfrom anne.eventlog import EventLog\n"
            "cfg = json.loads(%r)\nnet = anne.load(%r)\n"
            "outs = [Recorder() for _ in cfg.get('actions', [])]\n"
            "m = Monitor(cfg, net, outs, EventLog(%r, 8) if %r else None)\nres = []\n"
            "for k, row in enumerate(json.loads(%r)):\n"
            " r = m.feed(row, None if %r is None else %r[k])\n"
            " if r: res.append(r)\n"
            "print(json.dumps({'results': res, 'levels': [o.levels for o in outs]}))"
            % (json.dumps(config), model, log, log, json.dumps(rows), times, times))
    return run_mpy.json(code)


def test_window_features_are_numpys(run_mpy, tmp_path):
    rng = np.random.default_rng(3)
    window, period = 12, 50
    n_in = 2 * (len(FEATURES) - 1 + window)
    model = _net_file(tmp_path, n_in, np.ones((1, n_in)), [0.0])
    # a small spread on a large offset (a temperature), and a ramp with noise
    a = 25.0 + rng.normal(0, 0.01, 3 * window)
    b = 0.3 * np.arange(3 * window) + rng.normal(0, 1, 3 * window)
    rows = np.column_stack([a, b]).astype(np.float32)
    out = _feed(run_mpy, model, {"inputs": [{"replay": "a"}, {"replay": "b"}], "window": window,
                                 "period_ms": period, "features": FEATURES}, rows.tolist())
    assert len(out["results"]) == 3
    # the host's features (what a model is trained on) are the board's
    expected = features.windows(rows, window, FEATURES, period)
    assert expected.shape == (3, n_in)
    for k, r in enumerate(out["results"]):
        np.testing.assert_allclose(r["features"], expected[k], rtol=2e-6, atol=2e-6)
        assert r["outputs"][0] == pytest.approx(sum(r["features"]), rel=1e-5)


def test_a_threshold_action_has_hysteresis_and_a_hold_time(run_mpy, tmp_path):
    model = _net_file(tmp_path, 1, [[1.0]], [0.0])  # the output is the reading itself
    rule = {"output": 0, "above": 0.5, "hysteresis": 0.1, "pin": 15}
    cfg = {"inputs": [{"replay": "x"}], "window": 1, "features": ["mean"], "actions": [rule]}
    out = _feed(run_mpy, model, cfg, [[0.4], [0.6], [0.45], [0.39], [0.7]])
    assert [r["actions"] for r in out["results"]] == [0, 1, 1, 0, 1]
    assert out["levels"] == [[0, 1, 0, 1]]  # off at the start, then each switch once
    held = dict(cfg, actions=[dict(rule, hold_ms=250)])
    out = _feed(run_mpy, model, held, [[0.6], [0.3], [0.3], [0.3], [0.9]], times=[0, 100, 200, 300, 400])
    assert [r["actions"] for r in out["results"]] == [1, 1, 1, 0, 0]  # off only 250 ms after on
    assert all(r["reaction_us"] >= 0 for r in out["results"])


def test_in_idle_time_the_heap_is_collected_once_per_window_when_a_collection_fits(run_mpy, tmp_path):
    # The live loop collects after a reading when the next is far enough away, so that
    # a collection does not fall inside a window's last reading and delay its action.
    model = _net_file(tmp_path, 1, [[1.0]], [0.0])
    code = ("import anne, gc, json\nfrom anne.monitoring import Monitor, Recorder\n"
            "m = Monitor({'inputs': [{'replay': 'x'}], 'window': 2}, anne.load(%r), [])\n"
            "junk = [[k] * 50 for k in range(50)]\njunk = None\n"
            "before = gc.mem_free()\nm.idle(10 ** 6)\nafter = gc.mem_free()\n"
            "took, counts = m.gc_us, [m.collections]\n"
            "m.idle(10 ** 6); counts.append(m.collections)\n"  # once per window
            "m.feed([1.0]); m.feed([1.0]); m.idle(took); counts.append(m.collections)\n"  # no time
            "m.idle(0); counts.append(m.collections)\n"
            "m.idle(2 * took + 10); counts.append(m.collections)\n"  # a new window, time: again
            "print(json.dumps([after > before, took > 0, counts]))" % model)
    freed, timed, counts = run_mpy.json(code)
    assert freed and timed
    assert counts == [1, 1, 1, 1, 2]


def test_a_class_action_and_the_event_log(run_mpy, tmp_path):
    # two outputs, softmax over (0, 4x): "worn" wins when the reading is above 0
    model = _net_file(tmp_path, 1, [[0.0], [4.0]], [0.0, 0.0], labels=["ok", "worn"], act="softmax")
    cfg = {"inputs": [{"replay": "x"}], "window": 2, "features": ["mean"],
           "actions": [{"class": "worn", "above": 0.8, "hysteresis": 0.2, "led": True}]}
    rows = [[-1], [-1], [1], [1], [0.2], [0.2], [-2], [-2]]
    log = str(tmp_path / "events")
    out = _feed(run_mpy, model, cfg, rows, times=list(range(0, 800, 100)), log=log)
    assert [r["class"] for r in out["results"]] == [0, 1, 1, 0]
    assert [r["actions"] for r in out["results"]] == [0, 1, 1, 0]  # p(worn) 0.69 keeps it on
    assert [r["event"] for r in out["results"]] == [1, 2, None, 3]  # changes only
    events = run_mpy.json("import json\nfrom anne.eventlog import EventLog\n"
                          "print(json.dumps(EventLog(%r).read()))" % log)
    assert [e[0] for e in events] == [3, 2, 1] and [e[1] for e in events] == [700, 300, 100]
    assert [e[2] for e in events] == [0, 1, 0] and [e[3] for e in events] == [0, 1, 0]
    assert events[1][4][:2] == pytest.approx(out["results"][1]["outputs"], rel=1e-6)
    assert out["levels"] == [[0, 1, 0]]


def test_the_ring_keeps_the_newest_and_skips_a_damaged_record(run_mpy, tmp_path):
    log = str(tmp_path / "events")
    code = ("import json\nfrom anne.eventlog import EventLog, RECORD\nlog = EventLog(%r, 4)\n"
            "for k in range(10):\n log.write(10 * k, k %% 3, [k / 10], k)\n"
            "print(json.dumps([e[0] for e in EventLog(%r).read()]))\n"
            "with open(%r, 'r+b') as f:\n f.seek(2 * RECORD + 5)\n f.write(b'x')\n"
            "print(json.dumps([e[0] for e in EventLog(%r).read()]))\n"
            "again = EventLog(%r, 4)\nagain.write(999, 2, [], 0)\n"
            "print(json.dumps([e[:2] for e in EventLog(%r).read()]))" % ((log,) * 6))
    full, damaged, after = (json.loads(line) for line in run_mpy(code).strip().splitlines()[-3:])
    assert full == [10, 9, 8, 7]  # 10 events in 4 slots: the newest 4
    assert damaged == [9, 8, 7]  # event 10's slot fails its CRC and is skipped
    assert after == [[10, 999], [9, 80], [8, 70], [7, 60]]  # the sequence goes on from 9


def test_a_configuration_that_does_not_fit_the_model_says_what_is_wrong(run_mpy, tmp_path):
    model = _net_file(tmp_path, 3, [[1.0, 1.0, 1.0]], [0.0])
    code = ("import anne\nfrom anne.monitoring import Monitor\nnet = anne.load(%r)\n"
            "for cfg in [{'inputs': [{'adc': 4}], 'window': 4, 'features': ['mean', 'std']},\n"
            "            {'inputs': [{'adc': 4}], 'features': ['mean', 'median']},\n"
            "            {'inputs': [{'adc': 4}], 'features': ['mean', 'std', 'max'],\n"
            "             'actions': [{'class': 'hot', 'pin': 2}]},\n"
            "            {'inputs': [{'call': 'os.remove'}], 'features': ['mean', 'std', 'max']},\n"
            "            {'inputs': [{'call': '__init__'}], 'features': ['mean', 'std', 'max']},\n"
            "            {'inputs': [{'call': 'read'}], 'features': ['mean', 'std', 'max']}]:\n"
            " try:\n  Monitor(cfg, net).run(1)\n except ValueError as e:\n  print('refused:', e)" % model)
    lines = run_mpy(code).strip().splitlines()
    assert lines == [
        "refused: 1 inputs x features mean,std over a window of 4 give 2 numbers; the model takes 3",
        "refused: 'features' must list some of raw, mean, std, min, max, rms, slope",
        "refused: action 0: class 'hot' is not one of the model's (none)",
        # a function of the user's sensors.py, never another module's
        "refused: 'call' names a function of sensors.py, such as \"read\", not 'os.remove'",
        "refused: 'call' names a function of sensors.py, such as \"read\", not '__init__'",
        "refused: input {'call': 'read'} needs sensors.py on the board, beside main.py"]


def test_a_power_cut_while_logging_leaves_every_readable_event_whole(tmp_path, board_lib):
    # The interpreter writing events is killed at random moments, ten times over; every
    # record that reads back is one that was written, whole, and the sequence goes on.
    log = tmp_path / "events"
    code = ("from anne.eventlog import EventLog\nlog = EventLog(%r, 16)\n"
            "while True:\n k = log.next\n log.write(k * 10, k %% 5, [k / 7, -k / 3], k %% 256)\n" % str(log))
    script = tmp_path / "writer.py"
    script.write_text(code)
    rng = np.random.default_rng(5)
    for _ in range(10):
        argv, env = unixport.command(board_lib, args=[str(script)])
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                preexec_fn=os.setsid)
        time.sleep(0.3 + rng.uniform(0, 0.4))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    read = unixport.run("import json\nfrom anne.eventlog import EventLog\n"
                        "print(json.dumps(EventLog(%r).read()))" % str(log), board_lib)
    events = json.loads(read.strip().splitlines()[-1])
    assert len(events) >= 14  # at most the slot being written is lost
    seqs = [e[0] for e in events]
    assert seqs == sorted(set(seqs), reverse=True) and seqs[0] - seqs[-1] < 16 + 10
    for seq, ms, cls, bits, values in events:
        assert (ms, cls, bits) == (seq * 10, seq % 5, seq % 256)
        assert values[:2] == pytest.approx([seq / 7, -seq / 3], rel=1e-6)


def test_anne_monitor_runs_live_from_monitor_json_and_logs(run_mpy, tmp_path):
    # A board's flash: monitor.json, the model in the store, and a user's sensor module
    # read through {"call": ...} (an I2C sensor's place); the run ends after 1 s.
    (tmp_path / "models").mkdir()
    _net_file(tmp_path / "models", 1, [[0.0], [4.0]], [0.0, 0.0], labels=["ok", "hot"],
              act="softmax", name="temp")
    (tmp_path / "sensors.py").write_text(
        "_k = [0]\ndef read():\n    _k[0] += 1\n    return 1.0 if (_k[0] // 20) % 2 else -1.0\n")
    (tmp_path / "monitor.json").write_text(json.dumps({
        "model": "temp", "inputs": [{"call": "read"}], "period_ms": 10, "window": 5,
        "features": ["mean"], "actions": [{"class": "hot", "pin": 25}], "log": 16}))
    out = run_mpy("import anne\nm = anne.monitor(duration_ms=1000)\n"
                  "print('events', [e[2] for e in anne.events()][:4], m.windows_done)",
                  cwd=str(tmp_path)).strip().splitlines()
    windows = [line for line in out if " ms  class " in line]
    assert 18 <= len(windows) <= 20  # 100 readings at 10 ms, windows of 5
    assert windows[0].split()[3] == "ok" and any(line.split()[3] == "hot" for line in windows)
    # the class flips every 4 windows, and each flip is an event: the newest first
    assert out[-1].startswith("events [") and out[-1].endswith(" %d" % len(windows))
    assert eval(out[-1][len("events "):out[-1].rindex("]") + 1]) in ([0, 1, 0, 1], [1, 0, 1, 0])


def test_at_boot_the_monitor_runs_until_a_host_speaks_then_the_server_answers(tmp_path, board_lib):
    # main.py's anne.boot(): monitor.json says "at_boot", so the monitor runs with no host,
    # logging as it goes; a byte from a host stops it and the server then answers hello.
    import msgpack

    from anne_host.protocol import framing

    (tmp_path / "models").mkdir()
    _net_file(tmp_path / "models", 1, [[0.0], [4.0]], [0.0, 0.0], labels=["ok", "hot"],
              act="softmax", name="temp")
    (tmp_path / "sensors.py").write_text(
        "_k = [0]\ndef read():\n    _k[0] += 1\n    return 1.0 if (_k[0] // 10) % 2 else -1.0\n")
    (tmp_path / "monitor.json").write_text(json.dumps({
        "model": "temp", "inputs": [{"call": "read"}], "period_ms": 5, "window": 5,
        "features": ["mean"], "actions": [{"class": "hot", "pin": 25}], "at_boot": True}))
    argv, env = unixport.command(board_lib, args=["-c", "import anne\nanne.boot()"])
    proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        time.sleep(1.5)
        assert proc.poll() is None  # still monitoring
        events = unixport.run("import anne, json\nprint(json.dumps(anne.events()))", board_lib, cwd=tmp_path)
        assert len(json.loads(events.strip().splitlines()[-1])) >= 3  # the class flips, logged
        proc.stdin.write(b"\x00")  # a host's first byte (the filler's)
        proc.stdin.flush()
        time.sleep(0.5)
        proc.stdin.write(framing.encode(msgpack.packb({"cmd": "hello", "id": 1})))
        proc.stdin.flush()
        ready, _, _ = select.select([proc.stdout], [], [], 20)
        assert ready, "the server did not answer"
        reply = os.read(proc.stdout.fileno(), 4096)
        assert b"protocol" in reply and b"mem_free" in reply  # the server took over
    finally:
        proc.kill()
        proc.wait()
