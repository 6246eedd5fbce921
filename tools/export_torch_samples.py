"""Write the small PyTorch-made ONNX files the test suite reads (tests/data/torch/).

PyTorch is not in the dev extra (its default Linux wheel pulls several GB), so the suite
tests the ONNX path on these committed files with onnxruntime, and checks them against
the outputs torch itself computed, stored beside them in expected.json. Rerun after
changing the nets here, in a venv that has torch (a CPU-only build is enough, and
much smaller than the default wheel; PyTorch's install page names its index):

    .venv/bin/pip install torch          # or the CPU-only build
    .venv/bin/python tools/export_torch_samples.py

The files are exported with the TorchScript exporter (``dynamo=False``), which needs no
onnxscript; at opset 20 it writes GELU as one Gelu op.
"""

import io
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "torch"
OPSET = 20


def nets():
    """name -> (nn.Sequential in eval mode, number of inputs); fixed seeds, random BatchNorm statistics."""
    import torch
    from torch import nn

    torch.manual_seed(17)

    def bn(n):
        # Fresh BatchNorm1d has mean 0 and variance 1: random statistics make the folding show.
        layer = nn.BatchNorm1d(n)
        with torch.no_grad():
            layer.running_mean.uniform_(-1, 1)
            layer.running_var.uniform_(0.3, 2)
            layer.weight.uniform_(0.5, 1.5)
            layer.bias.uniform_(-0.5, 0.5)
        return layer

    def L(i, o):
        return nn.Linear(i, o)

    made = {
        # The classic: Linear, BatchNorm1d, ReLU, Dropout, softmax over 3 classes.
        "mlp_bn_softmax": (nn.Sequential(L(4, 8), bn(8), nn.ReLU(), nn.Dropout(0.2), L(8, 3), nn.Softmax(dim=1)), 4),
        # Normalisation on the raw input, one sigmoid output.
        "bn_first_sigmoid": (nn.Sequential(bn(3), L(3, 6), nn.Tanh(), nn.Dropout(0.5), L(6, 1), nn.Sigmoid()), 3),
        # Every activation torch writes as one ONNX op the importer maps (SiLU as x * sigmoid(x)).
        "activations": (nn.Sequential(
            L(5, 8), nn.GELU(), L(8, 8), nn.GELU(approximate="tanh"), L(8, 8), nn.Hardsigmoid(),
            L(8, 8), nn.ReLU6(), L(8, 8), nn.ELU(alpha=0.7), L(8, 8), nn.LeakyReLU(0.1),
            L(8, 8), nn.SELU(), L(8, 8), nn.Softplus(), L(8, 8), nn.Softsign(), L(8, 8), nn.SiLU(),
            L(8, 8), nn.Hardswish(), L(8, 8), nn.Mish(), L(8, 8), nn.CELU(alpha=1.3),
            L(8, 4), nn.LogSoftmax(dim=-1)), 5),
    }
    return {name: (net.eval(), n) for name, (net, n) in made.items()}


def inputs(n_in):
    """The rows whose torch outputs are stored: random, large, and zero."""
    import torch

    g = torch.Generator().manual_seed(5)
    rows = [torch.randn(12, n_in, generator=g) * 2, torch.full((1, n_in), 1e3), torch.full((1, n_in), -1e3),
            torch.zeros(1, n_in)]
    return torch.cat(rows)


def main():
    import torch

    OUT.mkdir(parents=True, exist_ok=True)
    expected = {}
    for name, (net, n_in) in nets().items():
        buf = io.BytesIO()
        torch.onnx.export(net, (torch.zeros(2, n_in),), buf, dynamo=False, opset_version=OPSET,
                          input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
        (OUT / (name + ".onnx")).write_bytes(buf.getvalue())
        x = inputs(n_in)
        with torch.no_grad():
            y = net(x)
        # float32 values written as Python floats read back exactly.
        expected[name] = {"inputs": x.tolist(), "outputs": y.tolist()}
        print("wrote %s (%d bytes)" % (OUT / (name + ".onnx"), len(buf.getvalue())))
    (OUT / "expected.json").write_text(json.dumps({"torch": torch.__version__, "opset": OPSET,
                                                   "nets": expected}, indent=0) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
