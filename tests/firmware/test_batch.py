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
