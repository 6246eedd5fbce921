"""On the board: the IRIS nets (float32 and int8) computing what
Keras and the int8 spec compute, through the server, as on the virtual Pico."""

from pathlib import Path

import numpy as np

from anne_host import evaluate, model_doc, quantize
from anne_host.demo import load_samples

# The repository's models folder: the installed package carries the exported
# documents and samples, not the Keras files they came from.
MODELS = Path(__file__).resolve().parents[2] / "models"


def _doc(name):
    return model_doc.read(MODELS / (name + ".json"))


def test_the_iris_nets_give_keras_outputs_and_the_int8_spec_bit_for_bit(board, keras):
    for name in ("iris6", "iris3"):
        doc, doc8 = _doc(name), _doc(name + "_int8")
        net = keras.models.load_model(MODELS / (name + ".keras"), compile=False)
        board.upload(model_doc.pack(doc), name)
        model = board.model()
        samples = load_samples(["iris.csv"] if name == "iris3" else ["iris_binary_test.csv"], model)
        run = evaluate.stream(board, samples, model)
        assert run.error is None and run.complete
        np.testing.assert_allclose(run.outputs, net(samples.x, training=False).numpy(), rtol=1e-5, atol=1e-6)
        board.upload(model_doc.pack(doc8), name + "_int8")
        run8 = evaluate.stream(board, samples, board.model())
        _, expected = quantize.run_int8(doc8, samples.x)
        assert np.array_equal(run8.outputs.astype(np.float32), expected)
