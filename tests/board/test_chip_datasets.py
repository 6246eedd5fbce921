"""On the chip: the scikit-learn data sets' models (models/datasets/), float and int8, through
the same upload-and-eval path as on the virtual Pico (tests/e2e/test_datasets_board.py), so
that the Thumb kernels' answers are checked on data no one here wrote: every float decision
on the held-out rows is the training framework's own, every int8 output the host reference's."""

import numpy as np
import pytest

from anne_host import quantize
from anne_host.client import Client

from ..e2e.test_datasets_board import MODELS, evaluated, write_held_out


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    return write_held_out(tmp_path_factory.mktemp("datasets"))


@pytest.fixture(scope="module")
def chip_board(chip):
    with Client.open(chip.port, timeout=120) as client:
        yield client
        for name in [m["name"] for m in client.list_models() if m["name"] in MODELS
                     or m["name"].removesuffix("_int8") in MODELS]:
            client.delete(name)  # the later tests list the store


@pytest.mark.parametrize("model", MODELS)
def test_the_chip_decides_as_the_framework_and_the_int8_reference(chip_board, held_out, model):
    r, _, run, summary, _, y, _ = evaluated(chip_board, held_out, model, "document")
    wrong = np.flatnonzero(run.classes != np.asarray(r["predictions"]))
    assert not wrong.size, "%s on the chip decides otherwise than %s on held-out rows %s" % (
        model, r["framework"], wrong)
    assert summary["correct"] == r["correct"]
    r, qdoc, run, summary, x, _, _ = evaluated(chip_board, held_out, model, "int8_document")
    assert np.array_equal(run.outputs, quantize.run_int8(qdoc, x)[1])
    assert summary["correct"] == r["anne_host"]["int8_correct"]
