"""Every command on bad inputs: one line on stderr naming what is wrong, the documented
exit code, nothing on stdout and no traceback (issue 13, item 3)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from anne_host import cli, commands, model_doc
from anne_host.client import Client

from .conftest import anne_host

MODELS = Path(__file__).resolve().parents[2] / "models"
TEST_ROWS = MODELS / "iris_binary_test.csv"


@pytest.fixture(scope="module")
def files(pico, tmp_path_factory):
    """The module's virtual Pico with iris6 active and a copy without labels or feature
    names stored ("plain"); and files a user might get wrong."""
    d = tmp_path_factory.mktemp("bad")
    plain = model_doc.read(MODELS / "iris6.json")
    del plain["labels"], plain["features"]
    three = model_doc.read(MODELS / "iris3.json")
    three["labels"] = ["a", "b"]
    (d / "two_labels.json").write_text(json.dumps(three))
    (d / "junk.anne").write_bytes(b"JUNK" * 10)
    rows = TEST_ROWS.read_text().splitlines()
    (d / "id.csv").write_text("\n".join(["id," + rows[0]] + ["%d,%s" % (i, r) for i, r in enumerate(rows[1:])]))
    (d / "six.csv").write_text("a,b,c,d,e,f\n" + "1,2,3,4,5,6\n")
    (d / "monitor_bad.json").write_text(json.dumps({"model": "iris6", "inputs": [{"adc": 4}], "features": ["mean"]}))
    with Client.open(pico.port) as board:
        board.upload(model_doc.pack(plain), "plain", activate=False)
        board.upload(model_doc.pack(model_doc.read(MODELS / "iris6.json")), "iris6")
    return d


CASES = [
    # (command line, exit code, what the line must say); D is the files' folder, M models/
    ("export M/iris3.keras --labels a,b -o D/x.json", 1, "--labels names 2 classes (a, b), but the model has 3 outputs"),
    ("export M/iris6.keras --features p,q -o D/x.json", 1, "--features names 2 inputs (p, q), but the model takes 4"),
    ("export D/missing.keras", 1, "missing.keras: no such file"),
    ("export M/iris6.json --int8 --calibrate D/six.csv -o D/x.json", 3,
     "six.csv: 6 columns (not 4, or 5 with the label last), but the model takes 4 inputs; choose them with --columns"),
    ("ports extra", 2, "unrecognized arguments: extra"),
    ("info --port D/ttyACM9", 4, "ttyACM9: no such port"),
    ("upload D/two_labels.json", 1, "two_labels.json: \"labels\" names 2 classes (a, b), but the model has 3 outputs"),
    ("upload D/missing.json", 1, "missing.json: cannot read"),
    ("upload D/junk.anne", 1, "junk.anne: not an ANNE model file"),
    ("upload M/iris3.json --name iris6", 2, "a different model is stored as 'iris6'"),
    ("ls --port D/ttyACM9", 4, "no such port"),
    ("rm no-such-model", 5, "no-such-model"),
    ("select no-such-model", 5, "no stored model named 'no-such-model'"),
    ("infer 1 2", 3, "the model takes 4 inputs, but 2 numbers were given"),
    ("infer --csv D/six.csv", 3, "six.csv: 6 columns"),
    ("predict D/id.csv --columns a,b", 3, "--columns names 2 columns; the model takes 4 inputs"),
    ("eval D/id.csv --model plain", 3, "id.csv: 5 columns besides the label column 'species', but the model takes 4"),
    ("eval M/iris_binary_test.csv --model plain", 3,
     "label 'versicolor' is not one of the model's labels: 0, 1 (a model exported without --labels"),
    ("eval M/iris_binary_test.csv --threshold x", 2, "invalid float value: 'x'"),
    ("bench --model no-such-model", 5, "no stored model named 'no-such-model'"),
    ("train M/iris.csv --model no-such-model", 5, "no stored model named 'no-such-model'"),
    ("train M/iris.csv --model fresh --new 4-8-2", 2, "iris.csv holds 3 classes"),
    ("train M/iris.csv --model fresh --new 4-8-3 --lr 0", 2, "--lr above 0"),
    ("train M/iris.csv --model fresh --new 4-8-3 --batch 500", 2, "--batch is at most 144"),
    ("trace 1 2", 3, "the model takes 4 inputs, but 2 numbers were given"),
    ("monitor --configure D/monitor_bad.json", 5,
     "1 inputs x features mean over a window of 10 give 1 numbers; the model takes 4 (bad_config)"),
    ("events --port D/ttyACM9", 4, "ttyACM9: no such port"),
    ("upload-data D/six.csv --model iris6", 3, "six.csv: 6 columns"),
    ("pull no-such-model -o D/x.json", 5, "no stored model named 'no-such-model'"),
    ("pull plain", 2, "say where to write the model"),
    ("sim --heap lots", 2, "invalid int value: 'lots'"),
    ("deploy --port sim", 1, "deploy needs a running board"),
    ("demo --port D/ttyACM9", 4, "ttyACM9: no such port"),
    ("eval M/iris_binary_test.csv --port all --compare", 2, "expected one argument"),
]


def _argv(line, files):
    return [w.replace("D/", str(files) + "/").replace("M/", str(MODELS) + "/") for w in line.split()]


@pytest.mark.parametrize("line, code, message", CASES, ids=[c[0].split()[0] + ": " + c[2][:30] for c in CASES])
def test_a_bad_input_is_one_line_with_its_exit_code(pico, files, capfd, line, code, message):
    try:
        got = cli.main(["--port", pico.port, *_argv(line, files)])
    except SystemExit as e:  # argparse leaves through sys.exit; a user sees the same line
        got = e.code
    out, err = capfd.readouterr()  # the file descriptors: TensorFlow's C++ log would show here
    assert got == code, err
    assert out == ""
    assert err.startswith("anne-host: ") and "Traceback" not in err and err.count("\n") == 1, err
    assert message in err, err


def test_every_command_is_among_the_cases():
    tried = {line.split()[0] for line, _, _ in CASES}
    # repl hands the terminal to mpremote; its own tests cover it.
    assert tried == set(commands.COMMANDS) - {"repl"}


def test_the_export_of_bad_labels_prints_one_line_in_its_own_process(files):
    done = anne_host("export", str(MODELS / "iris3.keras"), "--labels", "a,b", "-o", str(files / "x.json"))
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("anne-host: --labels names 2 classes") and done.stderr.count("\n") == 1
    assert not (files / "x.json").exists()


def test_a_reader_that_leaves_early_gets_no_traceback(pico, files, tmp_path):
    # `anne-host predict many.csv | head -1`: more output than a pipe holds.
    rows = TEST_ROWS.read_text().splitlines()
    (tmp_path / "many.csv").write_text("\n".join([rows[0]] + rows[1:] * 200) + "\n")
    script = Path(sys.executable).with_name("anne-host")
    proc = subprocess.Popen([str(script), "--port", pico.port, "predict", str(tmp_path / "many.csv")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141
    assert first.startswith("features from columns") and err == ""
