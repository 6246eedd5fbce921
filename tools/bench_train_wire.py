#!/usr/bin/env python3
"""Training over the wire, in board time: what `anne-host train` costs on a board.

    .venv/bin/python tools/bench_train_wire.py                    # a private virtual Pico
    .venv/bin/python tools/bench_train_wire.py --port PORT --json # a Pico, or the emulated one

Two figures per run, each from the board's own clock (the `us` of its replies):
- IRIS (models/iris.csv, 150 rows) from seeded random weights, 4-8-3 relu/softmax, Adam:
  µs per sample per epoch, and the board time until the net decides at least 95 % of the
  150 rows right (measured with train_eval after each epoch; that evaluation is not counted).
- A wider net (default 16-64-64-8) on random rows: µs per sample per epoch, and the heap the
  board has free while the session is open.
Nothing is saved: every session ends with save false. Wall times on the virtual Pico or the
emulated chip measure this PC, so none is reported.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

from anne_host import csvdata  # noqa: E402
from anne_host.client import Client  # noqa: E402

LABELS = ["setosa", "versicolor", "virginica"]


def _epoch(board, x, t, batch, rng):
    order = rng.permutation(len(x))
    return sum(r["us"] for r in board.train_epoch(x[order], t[order], batch))


def iris(board, epochs, batch, lr):
    rows = csvdata.load(ROOT / "models" / "iris.csv", 4, None, LABELS, need_labels=True)
    x, t = rows.x, np.eye(3, dtype=np.float32)[[LABELS.index(v) for v in rows.y]]
    board.train_begin("bench_iris", batch, lr, "adam", new={
        "sizes": [4, 8, 3], "activations": ["relu", "softmax"], "seed": 1})
    rng = np.random.default_rng(0)
    spent, reached, per_epoch = 0, None, []
    try:
        for epoch in range(1, epochs + 1):
            us = _epoch(board, x, t, batch, rng)
            spent += us
            per_epoch.append(us / len(x))
            if reached is None and board.train_eval(x, t)[1] >= 0.95:
                reached = {"epoch": epoch, "board_s": spent / 1e6}
    finally:
        board.train_end(save=False)
    return {"net": "4-8-3", "batch": batch, "lr": lr, "us_per_sample_epoch": float(np.median(per_epoch)),
            "to_95_percent": reached, "epochs": epochs}


def wide(board, sizes, rows, batch, epochs):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(rows, sizes[0])).astype(np.float32)
    t = np.eye(sizes[-1], dtype=np.float32)[rng.integers(0, sizes[-1], rows)]
    acts = ["relu"] * (len(sizes) - 2) + ["softmax"]
    begun = board.train_begin("bench_wide", batch, 0.01, "sgd", momentum=0.9,
                              new={"sizes": sizes, "activations": acts, "seed": 2})
    try:
        per = [_epoch(board, x, t, batch, rng) / rows for _ in range(epochs)]
    finally:
        board.train_end(save=False)
    return {"net": "-".join(map(str, sizes)), "params": begun["params"], "batch": batch, "rows": rows,
            "us_per_sample_epoch": float(np.median(per)), "mem_free_in_session": begun["mem_free"]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", default="sim", help="the board's port (default: a private virtual Pico)")
    ap.add_argument("--epochs", type=int, default=60, help="IRIS epochs (default 60)")
    ap.add_argument("--sizes", default="16,64,64,8", help="the wider net (default 16,64,64,8)")
    ap.add_argument("--rows", type=int, default=64, help="its random rows (default 64)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with Client.open(args.port, timeout=120) as board:
        clock = "board" if board.info["platform"] not in ("linux", "darwin") else "host-cpu"
        result = {"machine": board.info["machine"], "clock": clock,
                  "iris": iris(board, args.epochs, 8, 0.02),
                  "wide": wide(board, [int(v) for v in args.sizes.split(",")], args.rows, 16, 2)}
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    i, w = result["iris"], result["wide"]
    print("%s (%s clock)" % (result["machine"], result["clock"]))
    print("IRIS 4-8-3, batch %d, Adam lr %g: %.0f µs per sample per epoch; >= 95 %% of 150 rows %s"
          % (i["batch"], i["lr"], i["us_per_sample_epoch"],
             "after epoch %d, %.2f s of board time" % (i["to_95_percent"]["epoch"], i["to_95_percent"]["board_s"])
             if i["to_95_percent"] else "not reached in %d epochs" % i["epochs"]))
    print("%s (%d parameters), batch %d, SGD momentum: %.0f µs per sample per epoch; %d B heap free in the session"
          % (w["net"], w["params"], w["batch"], w["us_per_sample_epoch"], w["mem_free_in_session"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
