"""PyTorch module -> ANNE model document, read straight from the module's parameters.

An ``nn.Sequential`` (nested ones are flattened) of Linear layers, element-wise
activations, BatchNorm1d (folded into the neighbouring Linear weights, with its running
statistics: the module's inference behaviour) and Dropout. A model saved with
``torch.onnx.export`` goes through the ONNX importer instead, which needs no torch.
"""

import numpy as np

from . import need
from .common import Act, Affine, Dense, ExportError, document

# Modules that do nothing at inference, or nothing to a flat vector.
_DROPPED = ("Dropout", "AlphaDropout", "FeatureAlphaDropout", "Identity", "Flatten")
# Parameterless activations: torch module -> ANNE activation.
_PLAIN = {"ReLU": "relu", "ReLU6": "relu6", "Sigmoid": "sigmoid", "Tanh": "tanh", "SELU": "selu",
          "Softsign": "softsign", "SiLU": "silu", "Mish": "mish", "Hardswish": "hard_silu",
          "Hardsigmoid": "hard_sigmoid", "LogSigmoid": "log_sigmoid"}
_SUPPORTED = sorted(["Linear", "BatchNorm1d", "LeakyReLU", "ELU", "CELU", "GELU", "Softplus", "Softmax",
                     "LogSoftmax", "Hardtanh", "PReLU"] + list(_PLAIN) + list(_DROPPED))


def export_module(module, name=None, labels=None, features=None, input_mean=None, input_std=None,
                  threshold=None, source=None):
    """The ANNE model document of a PyTorch ``nn.Sequential`` of Linear layers, activations,
    BatchNorm1d and Dropout (computed as in ``module.eval()``)."""
    torch = need("torch", "torch")
    if not isinstance(module, torch.nn.Module):
        raise ExportError("export_module takes a torch.nn.Module, not %s" % type(module).__name__)
    ops, dropped = [], []
    width = None
    for path, child in _flat(module):
        where = "module %r (%s)" % (path, type(child).__name__)
        width = _convert(child, where, width, ops, dropped)
    first = next((op for op in ops if isinstance(op, Dense)), None)
    if first is None:
        raise ExportError("the module has no Linear layer")
    src = dict(source or {})
    src.setdefault("format", "pytorch %s" % type(module).__name__)
    return document(ops, first.kernel.shape[0], name or type(module).__name__.lower(), labels=labels,
                    features=features, input_mean=input_mean, input_std=input_std, threshold=threshold,
                    source=src, dropped=dropped)


def _flat(module, prefix=""):
    kind = type(module).__name__
    if kind == "Sequential":
        for key, child in module.named_children():
            yield from _flat(child, prefix + key if not prefix else prefix + "." + key)
    elif prefix == "":
        raise ExportError("export_module takes an nn.Sequential (its forward is a chain of its "
                          "modules); this is %s, whose forward ANNE cannot read: export it with "
                          "torch.onnx.export and export the .onnx file" % kind)
    else:
        yield prefix, module


def _array(tensor):
    return tensor.detach().cpu().double().numpy()


def _convert(m, where, width, ops, dropped):
    """Append module ``m``'s operation; returns the width of the vector after it."""
    kind = type(m).__name__
    if kind in _DROPPED:
        if kind == "Flatten" and width is not None and (m.start_dim, m.end_dim) != (1, -1):
            raise ExportError("%s: only a Flatten of (batch, ...) to (batch, n) is supported" % where)
        dropped.append("%s: it does nothing at inference" % where)
        return width
    if kind == "Linear":
        w = _array(m.weight)  # [out][in]
        b = _array(m.bias) if m.bias is not None else np.zeros(w.shape[0])
        if width is not None and w.shape[1] != width:
            raise ExportError("%s takes %d inputs where %d come in" % (where, w.shape[1], width))
        ops.append(Dense(where, w.T, b, {"name": "linear"}))
        return w.shape[0]
    if kind == "BatchNorm1d":
        if m.running_mean is None:
            raise ExportError("%s keeps no running statistics (track_running_stats=False), so it "
                              "normalises each batch by itself and cannot be folded" % where)
        n = m.num_features
        gamma = _array(m.weight) if m.weight is not None else np.ones(n)
        beta = _array(m.bias) if m.bias is not None else np.zeros(n)
        s = gamma / np.sqrt(_array(m.running_var) + m.eps)
        ops.append(Affine(where, s, beta - _array(m.running_mean) * s))
        return width
    ops.append(Act(where, _activation(m, kind, where, width)))
    return width


def _activation(m, kind, where, width):
    if kind in _PLAIN:
        return {"name": _PLAIN[kind]}
    if kind == "LeakyReLU":
        return {"name": "leaky_relu", "negative_slope": float(m.negative_slope)}
    if kind in ("ELU", "CELU"):
        return {"name": kind.lower(), "alpha": float(m.alpha)}
    if kind == "GELU":
        return {"name": "gelu", "approximate": m.approximate == "tanh"}
    if kind == "Softplus":
        # torch's threshold returns x itself above 20 / beta, where log(1 + e^x) differs by < 3e-9.
        if m.beta != 1:
            raise ExportError("%s has beta=%g; ANNE's softplus is log(1 + exp(x)) (beta=1)" % (where, m.beta))
        return {"name": "softplus"}
    if kind in ("Softmax", "LogSoftmax"):
        if m.dim not in (-1, 1, None):  # None: torch's implicit dim, 1 for (batch, n)
            raise ExportError("%s must act on the features (dim -1 or 1), not dim %s" % (where, m.dim))
        return {"name": "softmax" if kind == "Softmax" else "log_softmax"}
    if kind == "Hardtanh":
        if (m.min_val, m.max_val) == (-1.0, 1.0):
            return {"name": "hard_tanh"}
        if m.min_val == 0 and m.max_val > 0:
            return {"name": "relu", "negative_slope": 0.0, "max_value": float(m.max_val), "threshold": 0.0}
        raise ExportError("%s clips to %g..%g; supported: -1..1 and 0..max" % (where, m.min_val, m.max_val))
    if kind == "PReLU":
        alpha = _array(m.weight).reshape(-1)
        if alpha.size == 1 and width:
            alpha = np.full(width, alpha[0])
        return {"name": "prelu", "alpha": alpha}
    raise ExportError("%s is not supported; supported modules: %s" % (where, ", ".join(_SUPPORTED)))
