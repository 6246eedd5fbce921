"""On the board: the demo gives the accuracies models/README.md reports, a restart keeps
the stored models and the active one, and a fuzz sample leaves the server as it was."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from anne_host import model_doc
from anne_host.client import Client
from anne_host.demo import models_dir

TOOLS = Path(__file__).resolve().parents[2] / "tools"


def _anne_host(*argv, timeout=900):
    script = Path(sys.executable).with_name("anne-host")
    return subprocess.run([str(script), *argv], capture_output=True, text=True, timeout=timeout)


def test_the_demo_on_the_chip_reports_what_training_measured(chip):
    done = _anne_host("--port", chip.port, "--json", "demo")
    assert done.returncode == 0, done.stderr
    results = {r["model"]: r for r in json.loads(done.stdout)}
    trained = json.loads((models_dir() / "training.json").read_text())["models"]
    for name, model in trained.items():
        assert results[name]["test"]["confusion_matrix"] == model["test_confusion_matrix"], name
        assert results[name]["int8_agreement"]["decisions_agree"] >= results[name]["all"]["samples"] - 1


def test_a_restart_keeps_the_stored_models_and_the_active_one(chip):
    blobs = {n: model_doc.pack(model_doc.read(models_dir() / (n + ".json"))) for n in ("iris6", "iris3_int8")}
    with Client.open(chip.port) as board:
        for name, blob in blobs.items():
            board.upload(blob, name)
        before = board.hello()
        sums = {m["name"]: m for m in board.list_models()}
    if not chip.emulated:
        pytest.skip("restarting a real board needs a person: the rest was checked")
    chip.restart()
    with Client.open(chip.port) as board:
        after = board.hello()
        assert (after["active"], after["checksum"], after["dtype"]) == ("iris3_int8", before["checksum"], "int8")
        assert {m["name"]: m for m in board.list_models()} == sums
        board.select("iris6")
        assert board.infer([5.9, 3.0, 5.1, 1.8])[1] == 1


def test_a_fuzz_sample_leaves_the_server_as_it_was(chip):
    done = subprocess.run([sys.executable, str(TOOLS / "fuzz.py"), "--port", chip.port, "--cases", "2000",
                           "--seed", "7", "--json"], capture_output=True, text=True, timeout=900)
    doc = json.loads(done.stdout)
    assert doc["failures"] == 0 and doc["restarts"] == 0, doc["first_failures"]
    assert doc["ok"] and done.returncode == 0
