# A look inside a net: every layer's pre-activations and outputs for one input, and a
# text picture of them that fits Thonny's shell. For teaching and exploring, not speed:
# the model file is read again with its weights as stored (the fast kernels convert a
# loaded net's weights in place) and computed in plain Python, the kernels' reference.
# Imported only when asked (net.trace, the trace command): no heap while a board just infers.
import struct
from array import array

from . import activations, kernels, store
from .protocol import modelfile
from .refused import field, sample

_BAR = 20  # characters of the widest bar


def handle(svc, req):
    # The trace command: the active model's layers for the sample x (float32 bytes).
    x = field(req, "x", (bytes, memoryview), "bin")
    net = svc.active.need()
    sample(x, net.inputs)
    return {"layers": trace_file(store.path(net.name), struct.unpack("<%df" % net.inputs, x))}


def trace(net, x):
    """net.trace(x): every layer's pre-activations and outputs for ``x``, a list of dicts."""
    return trace_file(getattr(net, "path", None) or store.path(net.name), x)


def show(net, x):
    """net.show(x): print every layer's outputs for ``x``, a bar per neuron."""
    draw(trace(net, x), net.labels, net.meta.get("features"), x)


def trace_file(path, x):
    """The layers of the model file at ``path`` for the input ``x`` (a sequence of
    numbers), as a list with one dict per layer: kind, activation, units, and
    ``pre`` and ``out`` (floats). An int8 model's layers also give ``pre_q`` and
    ``out_q``, the int8 levels of the spec's arithmetic; its ``pre`` is None where
    the file does not hold the scale of the pre-activations (before a table)."""
    with open(path, "rb") as f:
        meta, layers = modelfile.load(f)
    if len(x) != layers[0].inputs:
        raise ValueError("the model takes %d inputs, got %d" % (layers[0].inputs, len(x)))
    if meta.get("dtype") == "int8":
        return _trace_int8(meta, layers, x)
    return _trace_float(layers, x)


def _trace_float(layers, x):
    out = []
    a = array("f", [float(v) for v in x])
    for layer in layers:
        if layer.kind == "dense":
            pre = array("f", range(layer.units))
            kernels.reference(a, pre, layer)
        else:
            pre = array("f", a)
        a = array("f", pre)
        act = activations.build(layer)
        if act:
            act(a, layer.units)
        out.append(_entry(layer, list(pre), list(a)))
    return out


def _trace_int8(meta, layers, x):
    from . import int8

    out = []
    q, z = int8.quantize_inputs(x, meta["input_quant"]), meta["input_quant"][1]
    for layer in layers:
        p = int8.requantized(q, z, layer)
        q = int8.activate(p, layer)
        z = layer.quant[1]
        entry = _entry(layer, int8.dequantize(p, layer) if layer.quant[5] == 0 else None,
                       int8.dequantize(q, layer))
        entry["pre_q"], entry["out_q"] = list(p), list(q)
        out.append(entry)
    return out


def _entry(layer, pre, out):
    return {"kind": layer.kind, "activation": layer.activation, "units": layer.units,
            "pre": pre, "out": out}


def draw(layers, labels=None, features=None, x=None):
    """Print a trace (trace_file's list) as one bar per neuron, scaled per layer, with
    the class names on the last layer and the feature names beside the input."""
    if x is not None:
        print("input")
        _bars(x, features)
    for k, layer in enumerate(layers):
        print("layer %d: %s %s, %d units" % (k, layer["kind"], layer["activation"], layer["units"]))
        _bars(layer["out"], labels if k == len(layers) - 1 else None)


def _bars(values, names=None):
    # '#' for a positive value, '-' for a negative one; NaN and infinities get no bar.
    finite = [abs(v) for v in values if v - v == 0]
    top = max(finite + [1e-30])
    for i, v in enumerate(values):
        name = names[i] if names and i < len(names) else str(i)
        bar = ("#" if v >= 0 else "-") * (int(abs(v) / top * _BAR + 0.5) if v - v == 0 else 0)
        print("  %-12s %s %.4g" % (name[:12], bar + " " * (_BAR - len(bar)), v))
