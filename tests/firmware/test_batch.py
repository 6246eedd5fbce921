"""Net.run_batch, the server's per-sample loop in viper, against Net.forward and
Net.decide one sample at a time."""


import numpy as np
import pytest

from anne_host import model_doc


def _doc(outputs, act):
    rng = np.random.default_rng(outputs)
    return {"format": "anne-model", "version": 1, "inputs": 5, "threshold": 0.25,
            "layers": [{"type": "dense", "units": 7, "activation": "relu",
                        "weights": rng.normal(size=(7, 5)).tolist(), "bias": rng.normal(size=7).tolist()},
                       {"type": "dense", "units": outputs, "activation": act,
                        "weights": rng.normal(size=(outputs, 7)).tolist(), "bias": [0.0] * outputs}]}


@pytest.mark.parametrize("outputs, act", [(1, "sigmoid"), (3, "softmax"), (4, "linear")])
def test_batch_matches_one_sample_at_a_time(run_mpy, tmp_path, outputs, act):
    (tmp_path / "m.anne").write_bytes(model_doc.pack(_doc(outputs, act)))
    x = np.random.default_rng(2).normal(0, 2, (40, 5)).astype("<f4")
    x[3] = np.nan
    (tmp_path / "x.bin").write_bytes(b"\x00" + x.tobytes())  # one byte in: not word-aligned
    got = run_mpy.json(
        "import anne, json\nfrom array import array\n"
        "net = anne.load(%r)\n"
        "data = memoryview(open(%r, 'rb').read())[1:]\n"
        "rows = len(data) // 20\n"
        "ys = array('f', range(rows * net.outputs)); cls = bytearray(rows); us = array('I', range(rows))\n"
        "total = net.run_batch(data, rows, ys, cls, us)\n"
        "one = []\n"
        "import struct\n"
        "for r in range(rows):\n"
        "    out = net.forward(struct.unpack_from('<5f', data, 20 * r))\n"
        "    one.append([net.decide(out)] + [out[j] for j in range(net.outputs)])\n"
        "print(json.dumps([list(cls), [repr(v) for v in ys], [[o[0]] + [repr(v) for v in o[1:]] for o in one],"
        " total == sum(us)]))" % (str(tmp_path / "m.anne"), str(tmp_path / "x.bin")))
    classes, ys, one, total_ok = got
    assert classes == [o[0] for o in one]
    assert ys == [v for o in one for v in o[1:]]
    assert total_ok


_DECISIONS = """
import json, struct
from array import array
from anne.batch import run_rows
from anne.engine import run_steps
from anne.engine import Net

class Rows:
    # Stands in for a network: each call writes the next row of chosen outputs.
    def __init__(self, rows):
        self.rows, self.i = rows, 0

    def __call__(self, src, dst, state):
        for j, v in enumerate(self.rows[self.i]):
            dst[j] = v
        self.i += 1

class Decider:
    decide = Net.decide

def check(rows, threshold):
    n_out = len(rows[0])
    fake = Decider()
    fake.outputs, fake.threshold = n_out, threshold
    expected = [fake.decide(array('f', r)) for r in rows]
    bits = struct.unpack('<i', struct.pack('<f', threshold))[0]
    steps = (Rows(rows), None, None, n_out)  # one layer's step, as Net.__init__ lays them out
    ys, classes, times = bytearray(4 * n_out * len(rows)), bytearray(len(rows)), bytearray(4 * len(rows))
    data = bytes(4 * len(rows))
    run_rows(run_steps, steps, data, len(rows), 1, n_out, array('f', [0] * 8), array('f', [0] * 8), ys, classes, times, bits)
    same = bytes(ys) == bytes(array('f', [v for r in rows for v in r]))
    return [list(classes), expected, same]

print(json.dumps([check(ROWS3, 0.5), check(ROWS1, 0.25), check(ROWS1, -0.5), check(ROWS1, -0.0)]))
"""


def test_batch_decisions_follow_net_decide_on_every_kind_of_output(run_mpy):
    # The viper loop decides on float32 bits; Net.decide compares floats. Rows
    # chosen for the corners: NaN first or later, infinities, signed zeros, ties.
    rows3 = ("[[nan, 1, 2], [1, nan, 2], [1, 2, nan], [-0.0, 0.0, -0.0], [0.0, -0.0, 0.0], [inf, inf, 1],"
             " [-inf, -inf, -inf], [-inf, nan, 3], [2, 2, 1], [-1, -2, -0.5], [-3e38, -1e-45, -2e-45],"
             " [1e-45, 0.0, 2e-45], [nan, nan, nan], [-1, inf, nan]]")
    rows1 = "[[0.25], [0.2500001], [0.2499999], [nan], [inf], [-inf], [-0.5], [-0.4], [-0.6], [0.0], [-0.0], [1e-45], [-1e-45]]"
    got = run_mpy.json("inf, nan = float('inf'), float('nan')\nROWS3 = %s\nROWS1 = %s\n" % (rows3, rows1)
                       + _DECISIONS)
    for classes, expected, same in got:
        assert classes == expected
        assert same
