#!/usr/bin/env python3
"""A pump whose bearing wears, simulated, and the condition-monitoring model trained on it.

The physics, per reading (every 5 ms, 200 Hz, from an accelerometer on the bearing
housing in g and a thermistor beside it in degrees C):

* Shaft speed 24.5 Hz (1,470 rpm) at full load, 10 % slower at no load.
* Vibration: the running-speed line (residual unbalance, 0.04-0.09 g, growing with load);
  an outer-race defect that, as the race spalls, sends an impact at every ball pass
  (BPFO = 3.58 x shaft speed, about 88 Hz) ringing the housing's resonance at 61 Hz
  with a 15 ms decay, its amplitude growing with the square of the wear; and sensor
  and structural noise (0.03 g). Wear makes the signal both stronger and spikier.
* Temperature: one thermal mass, time constant 20 min, heated by load and by bearing
  friction that grows with wear, cooled towards the ambient (which follows the day,
  18 +- 7 C); the thermistor adds 0.05 C of noise.
* The true state from the wear w: normal (w < 0.35), worn (< 0.7), failing.

The monitor takes windows of 32 readings (0.16 s) and per input the features mean, std
and max: six numbers, the vibration's and the temperature's, into a 6-10-3 net.

Written by this script, deterministic for a seed:
  models/pump/pump.keras (Keras 3), pump.json and pump_int8.json (exported),
  pump_day.csv (a day of accelerated wear, one window every 5 minutes: 288 windows),
  monitor.json (the board's configuration), training.json (what was trained, and how well).

Usage:  python tools/pump_sim.py [--out models/pump] [--seed 7]
"""

import argparse
import csv
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

RATE_HZ = 200
PERIOD_MS = 1000 // RATE_HZ
WINDOW = 32
FEATURES = ["mean", "std", "max"]
STATES = ["normal", "worn", "failing"]
COLUMNS = ["time_s", "vibration_g", "temperature_c", "state"]
TAU_S = 1200.0  # the housing's thermal time constant


def state_of(wear):
    return 0 if wear < 0.35 else 1 if wear < 0.7 else 2


def vibration(t, wear, load, rng, phase):
    """Accelerometer readings (g) at times ``t`` (s)."""
    shaft = 24.5 * (0.9 + 0.1 * load)
    signal = (0.04 + 0.05 * load) * np.sin(2 * np.pi * shaft * t + phase)
    bpfo = 3.58 * shaft
    since = np.mod(t + phase / (2 * np.pi * bpfo), 1.0 / bpfo)  # time since the last impact
    ring = np.exp(-since / 0.015) * np.sin(2 * np.pi * 61.0 * since)
    signal += 1.6 * wear ** 2 * (0.6 + 0.4 * load) * ring
    return signal + rng.normal(0, 0.03, len(t))


def steady_temperature(wear, load, ambient):
    # heat input over the cooling: 12 C at full load, friction adds up to 18 C more
    return ambient + 12.0 * load + 18.0 * wear ** 1.5 * (0.5 + 0.5 * load)


def window(start_s, wear, load, temperature, rng):
    """One window of readings: (WINDOW, 2) vibration and temperature."""
    t = start_s + np.arange(WINDOW) / RATE_HZ
    vib = vibration(t, wear, load, rng, rng.uniform(0, 2 * np.pi))
    temp = temperature + rng.normal(0, 0.05, WINDOW)
    return np.column_stack([vib, temp])


def training_windows(n, rng):
    """Random pumps in random conditions: windows and their true states."""
    xs, ys = [], []
    for _ in range(n):
        wear, load = rng.uniform(0, 1), rng.uniform(0.2, 1.0)
        ambient = rng.uniform(10, 30)
        steady = steady_temperature(wear, load, ambient)
        temperature = steady + rng.normal(0, 2.5)  # not yet settled after a load change
        xs.append(window(rng.uniform(0, 1000), wear, load, temperature, rng))
        ys.append(state_of(wear))
    return np.array(xs), np.array(ys)


def day(rng, every_s=300):
    """A day of accelerated wear (0.1 to 0.9), the load following the shifts, the
    ambient the sun: one window every ``every_s`` seconds, and each window's state."""
    rows, states = [], []
    temperature = steady_temperature(0.1, 0.3, 11.0)
    for k in range(86400 // every_s):
        start = k * every_s
        hour = start / 3600.0
        wear = 0.1 + 0.8 * start / 86400.0
        load = 0.9 if 6 <= hour < 22 else 0.3
        ambient = 18.0 - 7.0 * np.cos(2 * np.pi * (hour - 3) / 24.0)
        target = steady_temperature(wear, load, ambient)
        temperature = target + (temperature - target) * np.exp(-every_s / TAU_S)
        w = window(start, wear, load, temperature, rng)
        rows.extend([start + i / RATE_HZ, v, c, STATES[state_of(wear)]] for i, (v, c) in enumerate(w))
        states.append(state_of(wear))
    return rows, states


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "models" / "pump")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    import keras

    from anne_host import export, features, model_doc, quantize

    rng = np.random.default_rng(args.seed)
    keras.utils.set_random_seed(args.seed)
    raw, y = training_windows(6000, rng)
    x = np.array([features.window_features(w, FEATURES, PERIOD_MS) for w in raw], np.float32)
    n_train = 5000
    mean, var = x[:n_train].mean(axis=0), x[:n_train].var(axis=0)
    L = keras.layers
    model = keras.Sequential([keras.Input((x.shape[1],)), L.Normalization(mean=mean, variance=var),
                              L.Dense(10, activation="relu"), L.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x[:n_train], y[:n_train], epochs=60, batch_size=64, verbose=0, shuffle=True)
    held = float(np.mean(model.predict(x[n_train:], verbose=0).argmax(axis=1) == y[n_train:]))
    model.save(args.out / "pump.keras")

    names = ["vibration_%s" % f for f in FEATURES] + ["temperature_%s" % f for f in FEATURES]
    doc = export.export_model(model, name="pump", labels=STATES, features=names,
                              source={"trained_by": "tools/pump_sim.py", "seed": args.seed})
    model_doc.write(doc, args.out / "pump.json")
    qdoc = quantize.quantize(doc, x[:n_train], name="pump_int8",
                             calibration="%d simulated training windows (tools/pump_sim.py)" % n_train)
    model_doc.write(qdoc, args.out / "pump_int8.json")

    rows, states = day(np.random.default_rng(args.seed + 1))
    with open(args.out / "pump_day.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(COLUMNS)
        for t, v, c, s in rows:
            w.writerow(["%.3f" % t, "%.4f" % v, "%.3f" % c, s])
    config = {"model": "pump", "inputs": [{"adc": 0, "name": "vibration_g"}, {"adc": 4, "name": "temperature_c"}],
              "period_ms": PERIOD_MS, "window": WINDOW, "features": FEATURES,
              "actions": [{"class": "worn", "above": 0.6, "hysteresis": 0.2, "hold_ms": 2000, "led": True},
                          {"class": "failing", "above": 0.7, "hysteresis": 0.2, "hold_ms": 5000, "pin": 15}],
              "log": 64}
    (args.out / "monitor.json").write_text(json.dumps(config, indent=1) + "\n")
    day_x = features.windows(np.array([[r[1], r[2]] for r in rows]), WINDOW, FEATURES, PERIOD_MS)
    day_acc = float(np.mean(model.predict(day_x.astype(np.float32), verbose=0).argmax(axis=1) == np.array(states)))
    report = {"generated_by": "tools/pump_sim.py", "seed": args.seed, "keras": keras.__version__,
              "training_windows": n_train, "held_out_windows": len(x) - n_train,
              "held_out_accuracy": round(held, 4), "day_windows": len(states),
              "day_accuracy_keras": round(day_acc, 4), "day_states":
              [int(np.sum(np.array(states) == k)) for k in range(3)]}
    (args.out / "training.json").write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
