"""Post-training int8 quantization of a model document, and the exact reference of
the int8 arithmetic (protocol/MODEL_FORMAT.md, "Int8 models").

The scheme is TensorFlow Lite's full-integer one:

* weights: int8, symmetric, one scale per output unit (``max|w_row| / 127``);
* activations (every layer's output): int8, asymmetric, one scale and zero point
  per tensor from the calibration data's min/max, widened to include 0 so that 0
  is exactly representable; the inputs alike, but with a scale per input where
  their ranges differ by more than a factor 4 (``_input``), which TFLite has not;
* bias: int32 in the accumulator's scale ``s_in * s_w[j]``;
* requantization: ``acc * s_in * s_w[j] / s_out`` as ``M / 2^S`` per unit, with
  ``2^14 <= M < 2^15`` and ``S`` in 17..46.

Clamping activations (linear, relu without slope or threshold, relu6, hard_tanh)
become the integer range ``lo..hi`` of the requantized value, in the activation's
output scale. Every other element-wise activation becomes a 256-entry table that
maps the pre-activation (in its own calibrated scale) to the output: computed with
the board's own activation functions (firmware/activations.py), so the table holds
what the board's float path would compute, rounded to int8. Softmax becomes the
EXP table of the spec, output scale 1/256 and zero point -128; sigmoid and tanh
get TensorFlow Lite's fixed output scales (1/256 at -128, 1/128 at 0).

``run_int8`` computes an int8 document's outputs with int64 numpy arithmetic,
exactly as the spec defines them: the board's kernel must give the same bits.
``run_float`` computes a float document's outputs with the board's activations.
"""

import copy
import math

import numpy as np

from . import model_doc
from .errors import AnneError
from .firmware import activations
from .protocol import modelfile


class QuantizeError(AnneError):
    pass


# Multiplier M in [2^14, 2^15), shift S in 17..46 (MODEL_FORMAT.md).
M_MIN, M_LIMIT = 1 << 14, 1 << 15
S_MIN, S_MAX = modelfile.SHIFT_MIN, modelfile.SHIFT_MAX
ACC_LIMIT = 1 << 31
# Output scales fixed in advance, as TensorFlow Lite fixes them: (scale, zero point).
FIXED_OUTPUT = {"sigmoid": (1.0 / 256, -128), "tanh": (1.0 / 128, 0), "softmax": (1.0 / 256, -128)}
# Activations computed per row, not per value.
_ROW_WISE = ("softmax", "log_softmax", "prelu")
_INF = float("inf")


def _f32(v):
    # The float32 value nearest v, as a Python float: scales are stored as float32,
    # so every scale is rounded to float32 before anything is computed from it.
    return float(np.float32(v))


def _shown(v):
    # How a float32 value is written in a document: the shortest decimal that reads
    # back as the same float32 (as model_doc writes weights).
    return float(str(np.float32(v)))


def _round(v):
    # Round half away from zero (std::round, as TensorFlow Lite rounds).
    return np.sign(v) * np.floor(np.abs(v) + 0.5)


# -- the float network -------------------------------------------------------

def _apply(layer, values):
    """``layer``'s activation on a (rows, units) float64 array, with the board's
    own definitions (firmware/activations.py), returned as a new array."""
    fn = activations.build(layer)
    out = np.array(values, np.float64)
    if fn is None:
        return out
    if layer.activation in _ROW_WISE:
        for r in range(out.shape[0]):
            row = out[r].tolist()
            fn(row, len(row))
            out[r] = row
        return out
    flat = out.ravel().tolist()
    fn(flat, len(flat))
    return np.array(flat, np.float64).reshape(out.shape)


def _trace(layers, x):
    """Every layer's (pre-activation, output) on rows ``x``, in float64."""
    h = np.asarray(x, np.float64)
    trace = []
    with np.errstate(all="ignore"):
        for layer in layers:
            if layer.kind == "dense":
                w = np.asarray(layer.weights, np.float64).reshape(layer.units, layer.inputs)
                pre = h @ w.T + np.asarray(layer.bias, np.float64)
            else:
                pre = h
            h = _apply(layer, pre)
            trace.append((pre, h))
    return trace


def run_float(doc, x):
    """The float document's outputs for rows ``x`` (float64; the board's activations)."""
    layers = model_doc.to_layers(doc)
    if doc.get("dtype") == "int8":
        raise QuantizeError("run_float needs a float model; this one is int8 (use run_int8)")
    return _trace(layers, _rows(x, layers[0].inputs, "input"))[-1][1]


def _rows(x, inputs, what):
    x = np.asarray(x, np.float32)
    if x.ndim == 1:
        x = x.reshape(1, -1)
    if x.ndim != 2 or x.shape[1] != inputs:
        raise QuantizeError("%s has %s values per row; the model takes %d inputs"
                            % (what, x.shape[1] if x.ndim == 2 else "no fixed number of", inputs))
    return x


# -- scales ------------------------------------------------------------------

def _range(values):
    """The finite min and max of ``values``, widened to include 0."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if not v.size:
        return 0.0, 0.0
    return min(0.0, float(v.min())), max(0.0, float(v.max()))


def _asymmetric(lo, hi, scale=None):
    """(scale, zero point) of an int8 tensor holding [lo, hi] (lo <= 0 <= hi).
    ``scale``, if given, replaces the range's own (a coarser one)."""
    if scale is None:
        if hi - lo < 1e-30:  # a tensor that is always 0 (a dead unit): any scale
            lo, hi = 0.0, 1.0
        scale = _f32((hi - lo) / 255.0)
        # float32 rounding must not shrink the range below what 255 steps reach
        while scale * 255.0 < hi - lo:
            scale = float(np.nextafter(np.float32(scale), np.float32(np.inf)))
    zp = int(np.clip(_round(-128.0 - lo / scale), -128, 127))
    return scale, zp


def multiplier(real):
    """``real`` > 0 as (M, S) with M / 2^S ~ real, 2^14 <= M < 2^15 and S >= 17;
    S is capped at 46 (M then smaller). None if ``real`` needs S < 17."""
    frac, exp = math.frexp(real)  # real = frac * 2^exp, 0.5 <= frac < 1
    m, s = int(_round(frac * M_LIMIT)), 15 - exp
    if m == M_LIMIT:
        m, s = M_MIN, s - 1
    if s < S_MIN:
        return None
    if s > S_MAX:
        m, s = int(_round(math.ldexp(real, S_MAX))), S_MAX
    return m, s


def input_rule(scale):
    """(multiplier, shift) of the input rule for a nominal input ``scale``:
    m_in / 2^sh_in ~ 1 / scale with 2^14 <= m_in < 2^15 and sh_in an int8."""
    frac, exp = math.frexp(1.0 / scale)
    m, sh = int(_round(frac * M_LIMIT)), 15 - exp
    if m == M_LIMIT:
        m, sh = M_MIN, sh - 1
    if not -128 <= sh <= 127:
        raise QuantizeError("the calibration inputs' range (scale %g) is beyond what the input "
                            "rule can represent" % scale)
    return m, sh


def _clamp_bounds(layer):
    """(a, b) if ``layer``'s activation is clamp(x, a, b), else None."""
    name, p = layer.activation, layer.params
    if name == "linear":
        return -_INF, _INF
    if name == "relu" and p[0] == 0 and p[2] == 0:
        return 0.0, p[1]
    if name == "relu6":
        return 0.0, 6.0
    if name == "hard_tanh":
        return -1.0, 1.0
    return None


def _level(value, scale, zp):
    # The int8 level of a real clamp value, saturated to the int8 range.
    if value in (_INF, -_INF):
        return 127 if value > 0 else -128
    return int(np.clip(zp + _round(value / scale), -128, 127))


# -- quantization ------------------------------------------------------------

def quantize(doc, x, calibration=None, name=None):
    """The int8 model document of float document ``doc``, calibrated on rows ``x``
    (raw inputs as the model takes them, shape (rows, inputs)). ``calibration``
    names where the rows came from (kept in the document's source); ``name`` is
    the int8 model's name (default: the float one's)."""
    if doc.get("dtype") == "int8":
        raise QuantizeError("the model is already int8; quantize its float document")
    layers = model_doc.to_layers(doc)
    for i, layer in enumerate(layers):
        if layer.activation in modelfile.NO_INT8:
            raise QuantizeError("layer %d: %s has no int8 form; export it as float"
                                % (i, layer.activation))
    x = _rows(x, layers[0].inputs, "the calibration data")
    if not len(x):
        raise QuantizeError("the calibration data has no rows")
    notes = []
    trace = _trace(layers, x)

    input_quant, s_prev, z_prev, first = _input(layers, x)

    out_layers = []
    for i, (layer, (pre, post)) in enumerate(zip(layers, trace)):
        where = "layer %d (%s %s)" % (i, layer.kind, layer.activation)
        entry = {"type": layer.kind}
        if layer.kind == "dense":
            entry["units"] = layer.units
        entry["activation"] = doc["layers"][i].get("activation", "linear")
        if layer.kind == "dense":
            quant, s_prev, z_prev = _dense(first if i == 0 else layer, pre, post, s_prev, where, notes)
        else:
            quant, s_prev, z_prev = _table_layer(layer, post, s_prev, z_prev)
        quant["out_scale"] = _shown(quant["out_scale"])
        entry["quant"] = quant
        out_layers.append(entry)

    out = {"format": model_doc.FORMAT, "version": model_doc.VERSION}
    out.update(model_doc.meta(doc))
    if name:
        out["name"] = name
    out["dtype"] = "int8"
    source = dict(doc.get("source") or {})
    source["quantized"] = {
        "scheme": "TFLite-style post-training int8: per-unit symmetric weights, per-tensor "
                  "asymmetric activations from the calibration min/max",
        "from": doc.get("name"), "calibration": calibration, "rows": int(len(x)), "notes": notes}
    out["source"] = source
    out["input_quant"] = input_quant
    out["layers"] = out_layers
    model_doc.to_layers(out, "the quantized model")  # the exporter's own output must validate
    return out


def _input(layers, x):
    """(input_quant, the first layer's input scale and zero point, the first layer as
    quantized). Each input has a rule of its own where the first layer is dense: input i
    is read in a scale proportional to its largest calibration magnitude d_i (rounded up
    to the widest input's over a power of two, then doubled), so that raw inputs of very different
    ranges (a cell's area and its smoothness) each take the int8 range, and the first
    layer's weights take the factor back (column i times s_i / s, s the common input
    scale): the layer computes the same sums. Before any other layer, every input has
    one rule."""
    spans = np.ones(x.shape[1])
    if layers[0].kind == "dense":
        finite = np.where(np.isfinite(x), np.abs(x), 0.0).max(axis=0)
        widest = finite.max()
        if widest > 0:
            # In powers of two below the widest input, one fewer than would fit: an input
            # within a factor 4 of it keeps its rule (inputs of one range share one, as
            # TFLite's one input scale has it, whatever the calibration rows' noise in
            # each maximum), and each input keeps at least twice its calibrated range,
            # room for fresh rows beyond the calibration's.
            k = np.maximum(np.floor(np.log2(widest / np.where(finite > 0, finite, widest))) - 1, 0)
            if k.any():  # else one rule, computed as for any layer's input
                spans = widest / 2.0 ** np.minimum(k, 60)
    lo, hi = _range(x / spans)
    scale, _ = _asymmetric(lo, hi)
    rules = [input_rule(scale * d) for d in spans]
    # the scale each rule really applies, 2^sh / m (within 2^-15 of the calibrated one):
    # everything downstream uses these
    real = np.array([math.ldexp(1.0, sh) / m for m, sh in rules])
    s_in = float(real[0] / spans[0])
    _, z_in = _asymmetric(lo, hi, scale=s_in)
    first = layers[0]
    if first.kind == "dense":
        first = copy.copy(first)
        w = np.asarray(first.weights, np.float64).reshape(first.units, first.inputs)
        first.weights = (w * (real / s_in)[None, :]).ravel()
    ms, shs = [m for m, _ in rules], [sh for _, sh in rules]
    if len(set(rules)) == 1:
        ms, shs = ms[0], shs[0]
    return ({"scale": _shown(s_in), "zero_point": z_in, "multiplier": ms, "shift": shs},
            s_in, z_in, first)


def _dense(layer, pre, post, s_in, where, notes):
    """The quant object of a dense layer; returns it with the output's scale and zero point."""
    w = np.asarray(layer.weights, np.float64).reshape(layer.units, layer.inputs)
    b = np.asarray(layer.bias, np.float64)
    bounds = _clamp_bounds(layer)
    mode = "clamp" if bounds is not None else ("softmax" if layer.activation == "softmax" else "lut")
    # the requantized value's range: the output's for a clamp, else the pre-activation's
    lo, hi = _range(post if mode == "clamp" else pre)
    s_req, z_req = _asymmetric(lo, hi)
    if mode == "clamp":
        lo_q, hi_q = _level(bounds[0], s_req, z_req), _level(bounds[1], s_req, z_req)
        if lo_q >= hi_q:  # the clamp leaves a single level (a degenerate max_value)
            mode = "lut"
            notes.append("%s: the clamp to %g..%g collapses to one int8 level; it is a lookup "
                         "table instead" % (where, bounds[0], bounds[1]))
            lo, hi = _range(pre)
            s_req, z_req = _asymmetric(lo, hi)

    wmax = np.abs(w).max(axis=1)
    live = wmax > 0
    s_w = np.where(live, wmax / 127.0, 1.0)
    # TFLite needs M / 2^S < 1/4 as well (S >= 17 here): a requantized scale that
    # small is coarsened until every unit's multiplier fits.
    widest = float((s_in * s_w[live]).max()) if live.any() else 0.0
    if widest and multiplier(widest / s_req) is None:
        coarse = _f32(widest * 4.0 * (1.0 + 2.0 ** -14))
        while multiplier(widest / coarse) is None:
            coarse = float(np.nextafter(np.float32(coarse), np.float32(np.inf)))
        notes.append("%s: %s scale coarsened from %.6g to %.6g so that every requantization "
                     "multiplier stays below 1/4" % (where, "output" if mode == "clamp" else
                                                     "pre-activation", s_req, coarse))
        s_req, z_req = _asymmetric(lo, hi, scale=coarse)
        if mode == "clamp":
            lo_q, hi_q = _level(bounds[0], s_req, z_req), _level(bounds[1], s_req, z_req)
    # A unit whose weights are all 0 outputs its bias: any weight scale does; this
    # one gives a multiplier of 2^-8 (its bias saturated to what stays representable).
    s_w = np.where(live, s_w, s_req / s_in / 256.0)
    wq = np.clip(_round(w / s_w[:, None]), -127, 127).astype(np.int64)
    acc_scale = s_in * s_w
    bq = _round(b / acc_scale)
    bq = np.where(live, bq, np.clip(bq, -(1 << 30), 1 << 30))
    bound = np.abs(bq) + 255.0 * np.abs(wq).sum(axis=1)
    if np.any(bound >= ACC_LIMIT):
        j = int(np.argmax(bound))
        raise QuantizeError("%s unit %d: the int32 accumulator could overflow (|bias| + 255 * "
                            "sum|W| = %.4g, not below 2^31): its bias is too large for its "
                            "weights' scale; export the model as float" % (where, j, bound[j]))
    ms = [multiplier(float(r)) for r in acc_scale / s_req]
    quant = {}
    if mode == "clamp":
        s_out, z_out = s_req, z_req
        quant.update(out_scale=s_out, out_zp=z_out, req_zp=z_req, lo=lo_q, hi=hi_q)
    elif mode == "lut":
        s_out, z_out, table = _lut(layer, s_req, z_req, post)
        quant.update(out_scale=s_out, out_zp=z_out, req_zp=z_req, lo=-128, hi=127)
    else:
        s_out, z_out = FIXED_OUTPUT["softmax"]
        quant.update(out_scale=s_out, out_zp=z_out, req_zp=z_req, lo=-128, hi=127)
    quant["weights"] = wq.tolist()
    quant["bias"] = [int(v) for v in bq]
    quant["multiplier"] = [m for m, _ in ms]
    quant["shift"] = [s for _, s in ms]
    if mode == "lut":
        quant["lut"] = table
    elif mode == "softmax":
        quant["exp"] = exp_table(s_req)
    quant["weight_scale"] = [_shown(v) for v in s_w]
    return quant, s_out, z_out


def _table_layer(layer, post, s_in, z_in):
    """The quant object of an activation layer: a table on the previous layer's scale."""
    quant = {}
    if layer.activation == "softmax":
        s_out, z_out = FIXED_OUTPUT["softmax"]
        quant.update(out_scale=s_out, out_zp=z_out, req_zp=0, lo=-128, hi=127, exp=exp_table(s_in))
    else:
        s_out, z_out, table = _lut(layer, s_in, z_in, post)
        quant.update(out_scale=s_out, out_zp=z_out, req_zp=0, lo=-128, hi=127, lut=table)
    return quant, s_out, z_out


def _lut(layer, s_pre, z_pre, post):
    """(output scale, zero point, table): table[p + 128] is the activation of the
    pre-activation level p, by the board's own activation, in the output's scale."""
    if layer.activation in FIXED_OUTPUT:
        s_out, z_out = FIXED_OUTPUT[layer.activation]
    else:
        s_out, z_out = _asymmetric(*_range(post))
    levels = np.arange(-128, 128, dtype=np.float64)
    with np.errstate(all="ignore"):
        y = _apply(layer, (s_pre * (levels - z_pre)).reshape(1, -1))[0]
        q = z_out + _round(y / s_out)
    q = np.where(np.isnan(q), z_out, q)
    return s_out, z_out, [int(v) for v in np.clip(q, -128, 127)]


def exp_table(scale):
    """Softmax's EXP table: round(2^16 * exp(-scale * k)) for k = 0..255."""
    k = np.arange(256, dtype=np.float64)
    return [int(v) for v in np.floor(65536.0 * np.exp(-scale * k) + 0.5)]


# -- the integer reference ---------------------------------------------------

def quantize_input(x, zero_point, multiplier_, shift):
    """The input rule on float32 ``x``: r = floor(|x| * m / 2^sh + 1/2), exactly
    (float32 times a 15-bit integer is exact in float64, and so are the power-of-two
    scaling and the +1/2 that floor sees); q = clamp(zp + sign(x) * r); NaN -> zp."""
    x = np.asarray(x, np.float32).astype(np.float64)
    with np.errstate(all="ignore"):
        r = np.floor(np.abs(x) * multiplier_ / 2.0 ** shift + 0.5)
        r = np.minimum(r, 1024.0)  # beyond any int8 (and inf): it saturates either way
        q = zero_point + np.sign(x) * r
    q = np.where(np.isnan(x), zero_point, q)
    return np.clip(q, -128, 127).astype(np.int64)


def run_int8(doc, x):
    """An int8 document's outputs for rows ``x``: (int8 levels of the last layer as
    int64, float32 outputs), computed exactly as MODEL_FORMAT.md specifies."""
    if doc.get("dtype") != "int8":
        raise QuantizeError("run_int8 needs an int8 model document")
    layers = model_doc.to_layers(doc)
    iq = doc["input_quant"]
    x = _rows(x, layers[0].inputs, "the input")
    q = quantize_input(x, iq["zero_point"], np.asarray(iq["multiplier"]), np.asarray(iq["shift"]))
    z = iq["zero_point"]
    for layer in layers:
        out_scale, out_zp, req_zp, lo, hi, flags = layer.quant
        if layer.kind == "dense":
            w = np.asarray(layer.weights, np.int64).reshape(layer.units, layer.inputs)
            m = np.asarray(layer.multiplier, np.int64)
            s = np.asarray(layer.shift, np.int64)
            acc = np.asarray(layer.bias, np.int64) + (q - z) @ w.T
            y = (acc * m + np.left_shift(np.int64(1), s - 1)) >> s  # arithmetic: floor
            p = np.clip(req_zp + y, lo, hi)
        else:
            p = q
        if flags == modelfile.FLAG_LUT:
            q = np.asarray(layer.table, np.int64)[p + 128]
        elif flags == modelfile.FLAG_SOFTMAX:
            table = np.asarray(layer.table, np.int64)
            e = table[p.max(axis=1, keepdims=True) - p]
            total = e.sum(axis=1, keepdims=True)
            q = np.clip(-128 + (256 * e + total // 2) // total, -128, 127)
        else:
            q = p
        z = out_zp
    out_scale, out_zp = layers[-1].quant[:2]
    return q, np.float32(out_scale) * (q - out_zp).astype(np.float32)


def decisions(outputs, threshold=0.5):
    """Class decisions as the board takes them: one output -> 1 above the
    threshold, else the first largest output."""
    outputs = np.asarray(outputs)
    if outputs.shape[1] == 1:
        return (outputs[:, 0] > threshold).astype(np.int64)
    return np.argmax(outputs, axis=1)
