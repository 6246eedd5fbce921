"""ONNX graph -> ANNE model document.

The graph must be one chain from its single input to the chosen output: Gemm or
MatMul (+ Add) for dense layers, element-wise activations, and per-feature constant
scaling (BatchNormalization; Mul, Add, Sub, Div by constants) that is folded into the
neighbouring dense weights as host/export.py folds Keras' layers. The chain is found by
walking back from the output, so side branches that compute something else (the label
of a scikit-learn classifier converted by skl2onnx) are left out.
"""

from pathlib import Path

import numpy as np

from . import need
from .common import Act, Affine, Dense, ExportError, document

# ONNX ops that do nothing at inference, or nothing to a float32 vector.
_DROPPED = ("Identity", "Dropout")
# Element-wise activations with no parameters: ONNX op -> ANNE activation.
_PLAIN = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "Softplus": "softplus",
          "Softsign": "softsign", "HardSwish": "hard_silu", "Mish": "mish"}
_SUPPORTED = sorted(["Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "BatchNormalization", "Flatten",
                     "Reshape", "Cast", "Scaler", "LeakyRelu", "Elu", "Selu", "Celu", "HardSigmoid", "Gelu",
                     "Softmax", "LogSoftmax", "Clip", "PRelu"] + list(_DROPPED) + list(_PLAIN))
# ONNX Selu's default parameters (float32), which are Keras' (and ANNE's) selu.
_SELU = (1.67326319217681884765625, 1.05070102214813232421875)
_FLOAT, _DOUBLE = 1, 11  # TensorProto element types


def export_onnx(model, name=None, labels=None, features=None, input_mean=None, input_std=None,
                threshold=None, output=None, source=None):
    """The ANNE model document of an ONNX model (a path, the file's bytes, or an
    ``onnx.ModelProto``). ``output`` names the graph output to export when the graph has
    several float outputs; labels default to the class labels the graph holds (from a
    scikit-learn classifier converted by skl2onnx)."""
    proto, stem = _load(model)
    graph = _Graph(proto)
    out_name, notes, graph_labels = graph.output(output)
    chain, tail = graph.chain(out_name)
    ops, dropped = [], notes[:]
    shape = graph.input_shape
    for node in chain:
        shape = _convert(node, graph, shape, ops, dropped)
    dropped += tail
    src = dict(source or {})
    src.setdefault("format", "onnx")
    return document(ops, int(np.prod(graph.input_shape[1:])), name or stem or graph.name,
                    labels=labels if labels is not None else graph_labels, features=features,
                    input_mean=input_mean, input_std=input_std, threshold=threshold, source=src,
                    dropped=dropped)


def _load(model):
    onnx = need("onnx", "onnx")
    if isinstance(model, onnx.ModelProto):
        return model, None
    try:
        if isinstance(model, (bytes, bytearray)):
            return onnx.load_from_string(bytes(model)), None
        return onnx.load(str(model)), Path(model).stem
    except OSError as e:
        raise ExportError("%s: cannot read (%s)" % (model, e.strerror or e))
    except Exception as e:  # protobuf's DecodeError and friends: the file is no ONNX model
        raise ExportError("%s: cannot read as an ONNX model (%s)" % (model, str(e).splitlines()[0] if str(e) else
                                                                     type(e).__name__))


def _where(node):
    return "node %r (%s)" % (node.name or node.output[0], node.op_type)


class _Graph:
    def __init__(self, proto):
        from onnx import helper, numpy_helper

        self._helper = helper
        g = proto.graph
        self.name = g.name or "model"
        self.nodes = list(g.node)
        self.consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        self.producer = {}
        for node in self.nodes:
            for out in node.output:
                self.producer[out] = node
            # Constants computed inside the graph (torch's exporter copies weights with Identity).
            if node.op_type == "Constant":
                self.consts[node.output[0]] = self._constant(node)
            elif node.op_type in ("Identity", "Cast") and node.input and node.input[0] in self.consts:
                self.consts[node.output[0]] = self.consts[node.input[0]]
        inputs = [i for i in g.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise ExportError("the graph has %d inputs (%s); only graphs with one input are supported"
                              % (len(inputs), ", ".join(i.name for i in inputs)))
        self.input_name = inputs[0].name
        self.input_shape = self._shape(inputs[0])
        self.outputs = list(g.output)

    def _constant(self, node):
        attrs = {a.name: self._helper.get_attribute_value(a) for a in node.attribute}
        if "value" in attrs:
            from onnx import numpy_helper

            return numpy_helper.to_array(attrs["value"])
        for key in ("value_float", "value_int"):
            if key in attrs:
                return np.asarray(attrs[key])
        for key in ("value_floats", "value_ints"):
            if key in attrs:
                return np.asarray(list(attrs[key]))
        raise ExportError("%s: a constant of this kind is not supported" % _where(node))

    def _shape(self, value_info):
        t = value_info.type
        if not t.HasField("tensor_type") or t.tensor_type.elem_type not in (_FLOAT, _DOUBLE):
            raise ExportError("the graph's input %r must be a float tensor" % value_info.name)
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.tensor_type.shape.dim]
        if len(dims) == 1 and dims[0]:  # a graph of one sample: treat it as a batch of one
            dims = [1] + dims
        if len(dims) < 2 or any(not d for d in dims[1:]):
            raise ExportError("the graph's input %r must have a known size per sample, as (batch, n); "
                              "its shape is %s" % (value_info.name, dims))
        return dims

    def output(self, wanted):
        """The tensor to export, notes on what was left out, and class labels if the graph has them."""
        names = [o.name for o in self.outputs]
        candidates = []
        for o in self.outputs:
            node = self.producer.get(o.name)
            if node is not None and node.op_type == "ZipMap":
                candidates.append(o.name)
            elif o.type.HasField("tensor_type") and o.type.tensor_type.elem_type in (_FLOAT, _DOUBLE):
                candidates.append(o.name)
        if wanted is None:
            if len(candidates) != 1:
                raise ExportError("the graph has outputs %s, %s of them float probabilities or values; "
                                  "name the one to export (output=NAME, or --onnx-output NAME)"
                                  % (", ".join(names), len(candidates) or "none"))
            wanted = candidates[0]
        elif wanted not in names:
            raise ExportError("the graph has no output %r; its outputs: %s" % (wanted, ", ".join(names)))
        notes, labels = [], None
        node = self.producer.get(wanted)
        if node is not None and node.op_type == "ZipMap":
            # skl2onnx's ZipMap turns the probability tensor into {label: p} maps: take the tensor.
            attrs = {a.name: self._helper.get_attribute_value(a) for a in node.attribute}
            labels = attrs.get("classlabels_strings") or attrs.get("classlabels_int64s")
            labels = [v.decode() if isinstance(v, bytes) else str(v) for v in labels] if labels else None
            notes.append("%s: the probabilities are exported as a tensor; the labels are the "
                         "model's labels" % _where(node))
            wanted = node.input[0]
        if labels is None:
            labels = self._label_table(wanted)
        return wanted, notes, labels

    def _label_table(self, probabilities):
        # skl2onnx's label output: ArrayFeatureExtractor(classes, ArgMax(probabilities)).
        argmax = [n.output[0] for n in self.nodes if n.op_type == "ArgMax" and n.input[0] == probabilities]
        for n in self.nodes:
            if n.op_type == "ArrayFeatureExtractor" and n.input[1] in argmax and n.input[0] in self.consts:
                return [v.decode() if isinstance(v, bytes) else str(v) for v in self.consts[n.input[0]].tolist()]
        return None

    def chain(self, out_name):
        """The nodes from the input to ``out_name``, in order, and notes on nodes left out."""
        chain, tail, t = [], [], out_name
        while t != self.input_name:
            node = self.producer.get(t)
            if node is None:
                raise ExportError("tensor %r is neither computed by the graph nor its input" % t)
            data = [i for i in node.input if i and i not in self.consts]
            if node.op_type == "Concat" and self._one_minus_p(node, data):
                # skl2onnx's binary classifier: [1 - p, p] from one logistic output. ANNE keeps p,
                # the decision of one output against the threshold, with the two labels.
                tail.append("%s: the two columns (1 - p, p) of a binary classifier; the model keeps "
                            "p, one output with two labels (below, above the threshold)" % _where(node))
                t = data[1]
                continue
            gate = (self._gated(data) if node.op_type == "Mul" else
                    self._softsign(data) if node.op_type == "Div" else None)
            if gate:
                # x * sigmoid(x), x * tanh(softplus(x)), x / (1 + |x|): how torch's exporter writes
                # SiLU, Mish and Softsign; ANNE has each as one activation.
                chain.append(_Gated(node, gate[0]))
                t = gate[1]
                continue
            if len(data) != 1:
                raise ExportError("%s combines %d computed tensors (%s); only a single chain of "
                                  "operations from the input is supported"
                                  % (_where(node), len(data), ", ".join(data) or "none"))
            chain.append(node)
            t = data[0]
        chain.reverse()
        return chain, tail

    def _gated(self, data):
        """(activation, x) when ``data`` is x and f(x) for f sigmoid or tanh(softplus), else None."""
        if len(data) != 2:
            return None
        for x, y in (data, data[::-1]):
            ops, t = [], y
            while t != x and t in self.producer and len(ops) < 2:
                ops.append(self.producer[t].op_type)
                t = self.producer[t].input[0]
            if t == x and ops in (["Sigmoid"], ["Tanh", "Softplus"]):
                return ("silu" if ops == ["Sigmoid"] else "mish"), x
        return None

    def _softsign(self, data):
        """("softsign", x) when ``data`` is x and 1 + |x|, else None."""
        if len(data) != 2 or data[1] not in self.producer:
            return None
        add, x = self.producer[data[1]], data[0]
        if add.op_type != "Add" or len(add.input) != 2:
            return None
        one = [i for i in add.input if i in self.consts]
        absx = [self.producer.get(i) for i in add.input if i not in self.consts]
        if (len(one) == 1 and self.consts[one[0]].size == 1 and float(self.consts[one[0]].reshape(-1)[0]) == 1.0
                and len(absx) == 1 and absx[0] is not None and absx[0].op_type == "Abs" and absx[0].input[0] == x):
            return "softsign", x
        return None

    def _one_minus_p(self, node, data):
        if len(data) != 2:
            return False
        sub = self.producer.get(data[0])
        if sub is None or sub.op_type != "Sub" or list(sub.input) != [sub.input[0], data[1]]:
            return False
        one = self.consts.get(sub.input[0])
        return one is not None and one.size == 1 and float(one.reshape(-1)[0]) == 1.0

    def attrs(self, node):
        return {a.name: self._helper.get_attribute_value(a) for a in node.attribute}


class _Gated:
    # A Mul(x, f(x)) with its f, standing in the chain as one activation node.
    def __init__(self, mul, activation):
        self.op_type = {"silu": "x * sigmoid(x)", "mish": "x * tanh(softplus(x))",
                        "softsign": "x / (1 + |x|)"}[activation]
        self.activation = activation
        self.name = mul.name or mul.output[0]
        self.output = mul.output
        self.input = mul.input
        self.attribute = []


def _per_feature(value, width, node, what):
    """A constant that broadcasts over the features of a (batch, width) tensor, as a vector."""
    c = np.asarray(value, np.float64)
    if c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1) or c.size not in (1, width):
        raise ExportError("%s: its %s has shape %s; only a scalar or one value per feature (%d) "
                          "can be folded" % (_where(node), what, list(c.shape), width))
    return np.broadcast_to(c.reshape(-1), (width,)).copy()


def _convert(node, graph, shape, ops, dropped):
    """Append ``node``'s operation to ``ops``; returns the shape after it."""
    op, where, attrs = node.op_type, _where(node), graph.attrs(node)
    flat = len(shape) == 2
    width = int(np.prod(shape[1:]))
    consts = graph.consts
    if op in _DROPPED:
        dropped.append("%s: it does nothing at inference" % where)
        return shape
    if op == "Cast":
        if attrs.get("to") not in (_FLOAT, _DOUBLE):
            raise ExportError("%s casts to a type that is not float; only casts to float are supported" % where)
        dropped.append("%s: the board computes in float32" % where)
        return shape
    if op == "Flatten":
        if attrs.get("axis", 1) != 1:
            raise ExportError("%s: only a Flatten to (batch, n) (axis 1) is supported" % where)
        if not flat:
            dropped.append("%s: the board's input is the flat vector" % where)
        else:
            dropped.append("%s: its input is flat already" % where)
        return [shape[0], width]
    if op == "Reshape":
        target = [int(v) for v in np.asarray(consts[node.input[1]]).reshape(-1)] if node.input[1] in consts else None
        if target is None or not _to_vector(target, shape, width):
            raise ExportError("%s: only a Reshape to a vector per sample, (batch, %d), is supported; "
                              "this one's shape is %s" % (where, width, target if target is not None
                                                          else "computed in the graph"))
        dropped.append("%s: a reshape to the vector the board works on" % where)
        return [shape[0], width]
    if not flat:
        raise ExportError("%s acts on a tensor of shape %s; Flatten or Reshape it to (batch, n) first"
                          % (where, shape))
    data_first = node.input[0] not in consts
    if op in ("Gemm", "MatMul"):
        if not data_first:
            raise ExportError("%s multiplies the weights by the data (weights first); only data times "
                              "weights is supported" % where)
        w = np.asarray(consts.get(node.input[1]), np.float64) if node.input[1] in consts else None
        if w is None or w.ndim != 2:
            raise ExportError("%s: its weights must be a constant matrix" % where)
        if op == "Gemm":
            if attrs.get("transA", 0):
                raise ExportError("%s transposes its data input (transA=1); only transA=0 is supported" % where)
            if attrs.get("transB", 0):
                w = w.T
            w = w * attrs.get("alpha", 1.0)
            c = node.input[2] if len(node.input) > 2 and node.input[2] else None
            if c is not None and c not in consts:
                raise ExportError("%s: its bias C must be a constant" % where)
            bias = (_per_feature(consts[c], w.shape[1], node, "bias C") * attrs.get("beta", 1.0)
                    if c is not None else np.zeros(w.shape[1]))
        else:
            bias = np.zeros(w.shape[1])
        if w.shape[0] != width:
            raise ExportError("%s: its weights take %d inputs where %d come in" % (where, w.shape[0], width))
        ops.append(Dense(where, w, bias, {"name": "linear"}))
        return [shape[0], w.shape[1]]
    if op in ("Add", "Sub", "Mul", "Div"):
        c = _per_feature(consts[node.input[1] if data_first else node.input[0]], width, node, "constant")
        if op == "Add":
            ops.append(Affine(where, np.ones(width), c))
        elif op == "Sub":  # x - c, or c - x
            ops.append(Affine(where, np.ones(width), -c) if data_first else Affine(where, -np.ones(width), c))
        elif op == "Mul":
            ops.append(Affine(where, c, np.zeros(width)))
        else:
            if not data_first:
                raise ExportError("%s divides a constant by the data; only data / constant can be folded" % where)
            if np.any(c == 0):
                raise ExportError("%s divides by zero" % where)
            ops.append(Affine(where, 1.0 / c, np.zeros(width)))
        return shape
    if op == "Scaler":  # ai.onnx.ml's (x - offset) * scale: skl2onnx's StandardScaler
        offset = _per_feature(list(attrs.get("offset", [0.0])), width, node, "offset")
        scale = _per_feature(list(attrs.get("scale", [1.0])), width, node, "scale")
        ops.append(Affine(where, scale, -offset * scale))
        return shape
    if op == "BatchNormalization":
        if attrs.get("training_mode", 0):
            raise ExportError("%s is in training mode; export the model for inference (model.eval())" % where)
        if any(i not in consts for i in node.input[1:5]):
            raise ExportError("%s: its scale, bias, mean and variance must be constants" % where)
        gamma, beta, mean, var = (_per_feature(consts[i], width, node, "parameter") for i in node.input[1:5])
        s = gamma / np.sqrt(var + attrs.get("epsilon", 1e-5))
        ops.append(Affine(where, s, beta - mean * s))
        return shape
    ops.append(_activation(node, attrs, width, ops, consts))
    return shape


def _to_vector(target, shape, width):
    # Reshape targets that keep one row per sample: (-1|0|batch, width|-1) or, for a batch of one, (width).
    if len(target) == 1:
        return shape[0] == 1 and target[0] in (-1, width)
    if len(target) != 2:
        return False
    first_ok = target[0] in (-1, 0) or (shape[0] is not None and target[0] == shape[0])
    last_ok = target[1] in (-1, width) or (target[1] == 0 and len(shape) == 2)
    return first_ok and last_ok and not (target[0] == -1 and target[1] == -1)


def _close(a, b):
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


def _activation(node, attrs, width, ops, consts):
    op, where = node.op_type, _where(node)
    if isinstance(node, _Gated):
        return Act(where, {"name": node.activation})
    if op in _PLAIN:
        return Act(where, {"name": _PLAIN[op]})
    if op == "LeakyRelu":
        return Act(where, {"name": "leaky_relu", "negative_slope": float(attrs.get("alpha", 0.01))})
    if op == "Elu":
        return Act(where, {"name": "elu", "alpha": float(attrs.get("alpha", 1.0))})
    if op == "Celu":
        return Act(where, {"name": "celu", "alpha": float(attrs.get("alpha", 1.0))})
    if op == "Selu":
        alpha, gamma = attrs.get("alpha", _SELU[0]), attrs.get("gamma", _SELU[1])
        if not (_close(alpha, _SELU[0]) and _close(gamma, _SELU[1])):
            raise ExportError("%s has alpha=%g, gamma=%g; ANNE's selu has ONNX's defaults (alpha=%.6f, "
                              "gamma=%.6f) only" % (where, alpha, gamma, _SELU[0], _SELU[1]))
        return Act(where, {"name": "selu"})
    if op == "HardSigmoid":
        return _hard_sigmoid(where, attrs, ops)
    if op == "Gelu":
        approximate = attrs.get("approximate", b"none")
        approximate = approximate.decode() if isinstance(approximate, bytes) else approximate
        if approximate not in ("none", "tanh"):
            raise ExportError("%s: unknown approximate=%r" % (where, approximate))
        return Act(where, {"name": "gelu", "approximate": approximate == "tanh"})
    if op in ("Softmax", "LogSoftmax"):
        if attrs.get("axis", -1) not in (-1, 1):
            raise ExportError("%s must act on the features (axis -1 or 1), not axis %d" % (where, attrs["axis"]))
        return Act(where, {"name": "softmax" if op == "Softmax" else "log_softmax"})
    if op == "Clip":
        return _clip(node, attrs, consts, where)
    if op == "PRelu":
        if node.input[1] not in consts:
            raise ExportError("%s: its slope must be a constant" % where)
        return Act(where, {"name": "prelu", "alpha": _per_feature(consts[node.input[1]], width, node, "slope")})
    raise ExportError("%s is not supported; supported ops: %s" % (where, ", ".join(_SUPPORTED)))


def _hard_sigmoid(where, attrs, ops):
    # ONNX: clip(alpha * x + beta, 0, 1), alpha 0.2 by default; ANNE (Keras 3): clip(x / 6 + 0.5, 0, 1).
    alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
    if _close(alpha, 1.0 / 6) and _close(beta, 0.5):
        return Act(where, {"name": "hard_sigmoid"})
    prev = ops[-1] if ops else None
    if isinstance(prev, Dense) and prev.activation["name"] == "linear":
        # clip(alpha x + beta) = hard_sigmoid(6 alpha x + 6 (beta - 0.5)): the affine folds into the Dense.
        ops.append(Affine("%s's alpha=%g, beta=%g" % (where, alpha, beta), np.full(prev.kernel.shape[1], 6 * alpha),
                          np.full(prev.kernel.shape[1], 6 * (beta - 0.5))))
        return Act(where, {"name": "hard_sigmoid"})
    raise ExportError("%s has alpha=%g, beta=%g, and ANNE's hard_sigmoid is Keras 3's (alpha=1/6, beta=0.5); "
                      "other parameters are supported only right after a Gemm or MatMul, where they fold "
                      "into its weights" % (where, alpha, beta))


def _clip(node, attrs, consts, where):
    # Opset 11+ gives min and max as inputs, earlier opsets as attributes.
    def bound(index, key, default):
        if len(node.input) > index and node.input[index]:
            if node.input[index] not in consts:
                raise ExportError("%s: its bounds must be constants" % where)
            return float(np.asarray(consts[node.input[index]]).reshape(-1)[0])
        return float(attrs.get(key, default))

    lo, hi = bound(1, "min", -np.inf), bound(2, "max", np.inf)
    if lo == 0 and hi == 6:
        return Act(where, {"name": "relu6"})
    if lo == 0 and hi > 0:
        return Act(where, {"name": "relu", "negative_slope": 0.0, "max_value": None if hi == np.inf else hi,
                           "threshold": 0.0})
    if lo == -1 and hi == 1:
        return Act(where, {"name": "hard_tanh"})
    raise ExportError("%s clips to %g..%g; supported: 0..max (relu with a maximum) and -1..1 (hard_tanh)"
                      % (where, lo, hi))
