"""tools/tflite_compare.py: ANNE's int8 against TensorFlow Lite's int8 on one small net.
The two quantizers are not bit-identical (see the tool's docstring), so only what must
hold is checked: the figures are present and sane, and the decisions agree."""

import json

import pytest

from .tool_file import load_tool


@pytest.fixture(scope="module")
def tool(keras):
    tf = pytest.importorskip("tensorflow")  # the keras fixture has imported it once for the session
    if not hasattr(tf, "lite") or not hasattr(tf.lite, "TFLiteConverter"):
        pytest.skip("TensorFlow Lite's converter is not available")
    return load_tool("tflite_compare")


def test_iris3_int8_agrees_with_tflite(tool, capsys):
    assert tool.main(["--models", "iris3", "--json"]) == 0
    (r,) = json.loads(capsys.readouterr().out)
    assert r["model"] == "iris3" and r["rows"] == 150 and r["calibration_rows"] == 120
    assert r["outputs"] == 3 and r["anne_step"] == r["tflite_step"] == 1 / 256  # softmax, both
    assert r["decision_agreement"] >= 0.95
    assert r["anne_float_agreement"] >= 0.95 and r["tflite_float_agreement"] >= 0.95
    # probabilities: a few output steps apart at most, and mostly the same
    assert 0 <= r["mean_abs_diff"] <= 0.01 and r["max_abs_diff"] <= 0.1
    assert r["anne_vs_float_max"] <= 0.1 and r["tflite_vs_float_max"] <= 0.1


def test_unknown_nets_are_named(tool):
    with pytest.raises(SystemExit, match="unknown net 'iris9'"):
        tool.case("iris9")
