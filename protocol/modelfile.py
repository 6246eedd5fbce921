# The binary model file (".anne"): pack on the host, stream-load on the board.
# The format is specified in MODEL_FORMAT.md beside this file; this is its only
# implementation, and it runs under CPython and MicroPython alike.
import json
import struct
from array import array
from binascii import crc32

MAGIC = b"ANNE"
VERSION = 1
# Version 2: an int8 file whose inputs have rules of their own (MODEL_FORMAT.md).
# Everything else is written as version 1, and both are read.
VERSION_PER_INPUT = 2
DTYPE_FLOAT32 = 0
DTYPE_INT8 = 1
DTYPES = ("float32", "int8")

KIND_DENSE = 0
KIND_ACTIVATION = 1
KINDS = ("dense", "activation")

# An activation's number in the file is its index here: append, never reorder.
ACTIVATIONS = (
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "sigmoid",
    "hard_sigmoid", "tanh", "softmax", "softplus", "softsign", "silu", "gelu",
    "exponential", "prelu", "hard_silu", "mish", "log_softmax", "celu",
    "hard_tanh", "log_sigmoid",
)
# Names of the three float parameter slots each activation uses (unused slots are 0).
PARAMS = {
    "relu": ("negative_slope", "max_value", "threshold"),
    "leaky_relu": ("negative_slope",),
    "elu": ("alpha",),
    "celu": ("alpha",),
    "gelu": ("approximate",),
}

_HEADER = "<4sBBHHH"  # magic, version, dtype, layer count, input count, meta length
_HEADER_SIZE = 12
_LAYER = "<BBHHfff"  # kind, activation, inputs, units, three parameters
_LAYER_SIZE = 18
_INPUT_QUANT = "<fbHb"  # int8: input scale, zero point, multiplier, shift
_INPUT_QUANT_SIZE = 8
_INPUT_QUANT_2 = "<fb3x"  # version 2: scale, zero point; per input rules follow
# An input rule on the board: two halfwords, its multiplier and its shift + 149 (the
# kernels' k = sh + 149 - e then needs no signed load; -128..127 -> 21..276).
RULE_BIAS = 149
_QUANT = "<fbbbbB"  # int8: output scale, output zero point, req_zp, lo, hi, flags
_QUANT_SIZE = 9
MAX_UNITS = 65535
FLAG_LUT = 1
FLAG_SOFTMAX = 2
SHIFT_MIN, SHIFT_MAX = 17, 46
# An int8 layer's output scale: within 2^-100..2^100, so that scale * (q - zp) is
# 0 or a normal float32 (the board computes the output floats in integers).
OUT_SCALES = (2.0 ** -100, 2.0 ** 100)
# (A name in a module's globals costs heap on the board: its table grows with them.)
NO_INT8 = ("prelu", "log_softmax")  # activations without an int8 form


class ModelFileError(ValueError):
    pass


class Layer:
    """One layer as the file holds it. Dense weights are row-major [unit][input].

    What most layers do not have is a class attribute, set on the instance only
    where a layer has it: an instance's attributes live in a hash table that
    grows with their number, and on a board every layer's table is heap."""

    kind = "dense"  # or "activation"
    alpha = None  # per-unit slopes of prelu
    # Int8 layers only (see "Int8 models" in MODEL_FORMAT.md): the quantization
    # record, and weights as signed bytes in rows of stride() bytes.
    quant = None  # (out_scale, out_zp, req_zp, lo, hi, flags)
    multiplier = None  # array('H'), per unit
    shift = None  # bytearray, per unit
    table = None  # bytearray(256) lookup table, or array('I') softmax table

    def __init__(self, kind, activation, inputs, units, params=(0.0, 0.0, 0.0),
                 weights=None, bias=None, alpha=None):
        if kind != "dense":
            self.kind = kind
        self.activation = activation
        self.inputs = inputs
        self.units = units
        self.params = _shared(tuple(params))
        self.weights = weights
        self.bias = bias
        if alpha is not None:
            self.alpha = alpha

    def arrays(self):
        """The arrays of this layer, in file order."""
        return [a for a in (self.weights, self.bias, self.alpha, self.multiplier, self.shift,
                            self.table) if a is not None]

    def param_count(self):
        """Weights and biases (and prelu slopes): the parameters Keras counts."""
        n = self.units * self.inputs + self.units if self.kind == "dense" else 0
        return n + (self.units if self.activation == "prelu" else 0)


def _shared(params, commons=((0.0, 0.0, 0.0), (0.0, float("inf"), 0.0))):
    # The parameter triples nearly every layer has (none; relu's no slope, no
    # limit, no threshold), kept once instead of as three new floats per layer
    # (on this 64-bit host 480 B less per three-layer model, for 320 B of code).
    for common in commons:
        if params == common:
            return common
    return params


def stride(inputs, dtype):
    """Bytes or values from one weight row to the next: int8 rows are padded to
    whole 32-bit words so a kernel can read four weights with one aligned load."""
    return (inputs + 3) & ~3 if dtype == DTYPE_INT8 else inputs


def _plan(dtype, kind, activation, inputs, units, flags):
    # (attribute, typecode, count) of each array of a layer, in file order.
    if dtype == DTYPE_FLOAT32:
        plan = [("weights", "f", units * inputs), ("bias", "f", units)] if kind == KIND_DENSE else []
        if activation == "prelu":
            plan.append(("alpha", "f", units))
        return plan
    plan = []
    if kind == KIND_DENSE:
        plan = [("weights", "b", units * stride(inputs, dtype)), ("bias", "i", units),
                ("multiplier", "H", units), ("shift", "B", units)]
    if flags == FLAG_LUT:
        plan.append(("table", "b", 256))
    elif flags == FLAG_SOFTMAX:
        plan.append(("table", "I", 256))
    return plan


_ITEMSIZE = {"f": 4, "b": 1, "B": 1, "i": 4, "H": 2, "I": 4}


def array_bytes(layer):
    """Heap bytes the arrays of ``layer`` take once loaded (with or without them)."""
    dtype = DTYPE_FLOAT32 if layer.quant is None else DTYPE_INT8
    flags = layer.quant[5] if layer.quant else 0
    plan = _plan(dtype, KINDS.index(layer.kind), layer.activation, layer.inputs, layer.units, flags)
    return sum(n * _ITEMSIZE[code] for _, code, n in plan)


def _new(code, n):
    # Sized without a temporary copy of n values.
    if code in "bB":
        return bytearray(n)
    return array(code, range(n))


def _padded_rows(values, inputs, units):
    # Int8 weight rows given unpadded (or already padded) -> rows of stride bytes.
    values = list(values)
    step = stride(inputs, DTYPE_INT8)
    if len(values) == units * step:
        return values
    out = []
    for j in range(units):
        out.extend(values[j * inputs:(j + 1) * inputs])
        out.extend([0] * (step - inputs))
    return out


def _rules(input_quant, inputs):
    # (multipliers, shifts), one each per input: from ints (one rule for all) or lists.
    _, _, m, sh = input_quant
    m = [m] * inputs if isinstance(m, int) else list(m)
    sh = [sh] * inputs if isinstance(sh, int) else list(sh)
    if len(m) != inputs or len(sh) != inputs:
        raise ModelFileError("the input rules name %d multipliers and %d shifts for %d inputs"
                             % (len(m), len(sh), inputs))
    return m, sh


def pack(meta, layers, input_quant=None):
    """The file's bytes for ``layers`` (a list of Layer) and a ``meta`` dict
    (name, features, labels, ...: small, never weights). An int8 model passes
    ``input_quant`` (scale, zero point, multiplier, shift; the multiplier and
    shift an int, or a list with one per input) and layers with ``quant`` and
    integer arrays. Version 2 is written only where the inputs' rules differ."""
    meta_raw = json.dumps(meta).encode()
    if len(meta_raw) > 65535:
        raise ModelFileError("model metadata is %d bytes; at most 65535" % len(meta_raw))
    dtype = DTYPE_FLOAT32 if input_quant is None else DTYPE_INT8
    inputs = layers[0].inputs if layers else 0
    version, rules = VERSION, None
    if dtype == DTYPE_INT8:
        m, sh = _rules(input_quant, inputs)
        if len(set(m)) > 1 or len(set(sh)) > 1:
            version = VERSION_PER_INPUT
            rules = bytes(array("H", m)) + bytes(array("b", sh))
        else:
            input_quant = (input_quant[0], input_quant[1], m[0], sh[0])
    parts = [struct.pack(_HEADER, MAGIC, version, dtype, len(layers), inputs, len(meta_raw)), meta_raw]
    if rules:
        parts += [struct.pack(_INPUT_QUANT_2, input_quant[0], input_quant[1]), rules]
    elif dtype == DTYPE_INT8:
        parts.append(struct.pack(_INPUT_QUANT, *input_quant))
    for layer in layers:
        parts.append(struct.pack(_LAYER, KINDS.index(layer.kind),
                                 ACTIVATIONS.index(layer.activation), layer.inputs,
                                 layer.units, *layer.params))
        flags = 0
        if dtype == DTYPE_INT8:
            parts.append(struct.pack(_QUANT, *layer.quant))
            flags = layer.quant[5]
        plan = _plan(dtype, KINDS.index(layer.kind), layer.activation, layer.inputs,
                     layer.units, flags)
        for attr, code, n in plan:
            values = getattr(layer, attr)
            if attr == "weights" and dtype == DTYPE_INT8:
                values = _padded_rows(values, layer.inputs, layer.units)
            values = array(code, values)
            if len(values) != n:
                raise ModelFileError("layer %s has %d values; expected %d" % (attr, len(values), n))
            parts.append(bytes(values))
    body = b"".join(parts)
    return body + struct.pack("<I", crc32(body) & 0xFFFFFFFF)


class _CheckedReader:
    # Reads exactly what was asked for and keeps the running CRC of it.
    def __init__(self, stream):
        self.stream = stream
        self.crc = 0
        self.scratch = None
        self.ready = None  # arrays allocated in advance, in file order

    def read(self, n):
        data = self.stream.read(n)
        if data is None or len(data) != n:
            raise ModelFileError("model file is truncated")
        self.crc = crc32(data, self.crc)
        return data

    def _fill(self, values, code, n, index):
        if self.stream.readinto(values) != n * _ITEMSIZE[code]:
            raise ModelFileError("model file is truncated")
        self.crc = crc32(values, self.crc)
        if code == "f":
            for v in values:
                # NaN fails every comparison, infinities fail the bound.
                if not -3.5e38 < v < 3.5e38:
                    raise ModelFileError("layer %d holds a weight that is not a finite number (%r)"
                                         % (index, v))

    def values(self, code, n, index):
        values = self.ready.pop(0) if self.ready else _new(code, n)
        if n:
            self._fill(values, code, n, index)
        return values

    def skip(self, code, n, index):
        # Check without keeping: through a small scratch array, so verifying a
        # stored model costs no memory however large it is. Integer arrays are
        # only read (their ranges are checked when kept).
        if code != "f":
            n *= _ITEMSIZE[code]
            code = "b"
        step = 64 if code == "f" else 256
        scratch = _new(code, step)
        while n >= step:
            self._fill(scratch, code, step, index)
            n -= step
        if n:
            self._fill(_new(code, n), code, n, index)


def _array_sizes(stream, dtype, count, inputs):
    # Every array's (typecode, length), in file order, from the layer headers
    # alone; None if the headers do not chain or do not add up to the file's
    # length (the checked pass then says what is wrong, before anything large
    # is allocated).
    sizes = []
    width = inputs
    for _ in range(count):
        head = stream.read(_LAYER_SIZE)
        if len(head) != _LAYER_SIZE:
            return None
        kind, act, n_in, units = struct.unpack_from("<BBHH", head)
        if kind >= len(KINDS) or act >= len(ACTIVATIONS) or n_in != width:
            return None
        flags = 0
        if dtype == DTYPE_INT8:
            quant = stream.read(_QUANT_SIZE)
            if len(quant) != _QUANT_SIZE:
                return None
            flags = quant[8]
        plan = _plan(dtype, kind, ACTIVATIONS[act], n_in, units, flags)
        sizes.extend((code, n) for _, code, n in plan)
        stream.seek(sum(n * _ITEMSIZE[code] for _, code, n in plan), 1)
        width = units
    here = stream.tell()
    if stream.seek(0, 2) != here + 4:  # exactly the CRC must follow
        return None
    return sizes


def _allocate(stream, dtype, count, inputs):
    # The largest arrays are allocated first, before the heap is cut up by the
    # smaller ones: on a 240 KB heap a model's biggest weight matrix is often
    # most of the largest free block. Needs a seekable stream (a flash file).
    try:
        start = stream.tell()
    except (AttributeError, OSError):
        return None
    sizes = _array_sizes(stream, dtype, count, inputs)
    stream.seek(start)
    if sizes is None:
        return None
    arrays = [None] * len(sizes)
    nbytes = [n * _ITEMSIZE[code] for code, n in sizes]
    for k in sorted(range(len(sizes)), key=lambda k: -nbytes[k]):
        arrays[k] = _new(*sizes[k])
    return arrays


def _check_layer(kind, act, inputs, units, expected_inputs, index, params):
    where = "layer %d: " % index
    if kind >= len(KINDS):
        raise ModelFileError(where + "unknown layer kind %d" % kind)
    if act >= len(ACTIVATIONS):
        raise ModelFileError(where + "unknown activation number %d; "
                             "update the firmware or re-export the model" % act)
    # A slot the activation does not use must be 0: a value there is a writer's mistake.
    for k in range(len(PARAMS.get(ACTIVATIONS[act], ())), 3):
        if params[k] != 0:
            raise ModelFileError(where + "%s uses %d parameter slot%s; slot %d holds %r, not 0"
                                 % (ACTIVATIONS[act], k, "" if k == 1 else "s", k, params[k]))
    if inputs != expected_inputs:
        raise ModelFileError(where + "takes %d inputs but the previous layer gives %d"
                             % (inputs, expected_inputs))
    if units < 1 or (kind == KIND_ACTIVATION and units != inputs):
        raise ModelFileError(where + "has %d units for %d inputs" % (units, inputs))


def _check_quant(layer, index):
    # The ranges the int8 arithmetic relies on (MODEL_FORMAT.md, "Int8 models").
    where = "layer %d: " % index
    out_scale, _, _, lo, hi, flags = layer.quant
    if not OUT_SCALES[0] <= out_scale <= OUT_SCALES[1]:  # NaN too
        raise ModelFileError(where + "output scale %r is outside 2^-100..2^100" % out_scale)
    if layer.activation in NO_INT8:
        raise ModelFileError(where + "%s has no int8 form" % layer.activation)
    if flags > FLAG_SOFTMAX or lo > hi:
        raise ModelFileError(where + "bad quantization record (flags %d, range %d..%d)"
                             % (flags, lo, hi))
    if layer.kind == "activation" and not flags:
        raise ModelFileError(where + "an int8 activation layer needs a table")


def _check_int8_arrays(layer, index):
    where = "layer %d: " % index
    if layer.quant[5] == FLAG_SOFTMAX:
        # What keeps the kernel's softmax sums positive and below 2^31.
        table = layer.table
        if table[0] == 0 or max(table) > 65536:  # 65536 = round(2^16 * exp(0))
            raise ModelFileError(where + "softmax table values must be 1..65536 at 0 and at most 65536")
        if layer.units >= 32768:
            raise ModelFileError(where + "an int8 softmax takes at most 32767 units")
    if layer.kind != "dense":
        return
    for m in layer.multiplier:
        if m > 32767:
            raise ModelFileError(where + "requantization multiplier %d is above 32767" % m)
    for s in layer.shift:
        if not SHIFT_MIN <= s <= SHIFT_MAX:
            raise ModelFileError(where + "requantization shift %d is outside %d..%d"
                                 % (s, SHIFT_MIN, SHIFT_MAX))


def _input_rules(r, version, inputs):
    # [scale, zero point, rules]: rules an array('H') of (multiplier, shift + RULE_BIAS),
    # one pair for every input alike (version 1) or a pair per input (version 2).
    if version == VERSION:
        scale, z, m, sh = struct.unpack(_INPUT_QUANT, r.read(_INPUT_QUANT_SIZE))
        ms, shs = (m,), (sh,)
    else:
        scale, z = struct.unpack(_INPUT_QUANT_2, r.read(_INPUT_QUANT_SIZE))
        ms, shs = r.read(2 * inputs), r.read(inputs)
        ms = [ms[2 * i] | ms[2 * i + 1] << 8 for i in range(inputs)]
        shs = [v - 256 if v > 127 else v for v in shs]
    rules = array("H", (0 for _ in range(2 * len(ms))))
    for i in range(len(ms)):
        if not 16384 <= ms[i] < 32768:
            raise ModelFileError("input multiplier %d is outside 16384..32767" % ms[i])
        rules[2 * i] = ms[i]
        rules[2 * i + 1] = shs[i] + RULE_BIAS
    return [scale, z, rules]


def input_rule(input_quant, i):
    """(multiplier, shift) of input ``i`` in a loaded model's input_quant."""
    rules = input_quant[2]
    k = 2 * i if len(rules) > 2 else 0
    return rules[k], rules[k + 1] - RULE_BIAS


def load(stream, keep=True):
    """Stream a model file: returns (meta, [Layer]). Arrays are read straight from
    ``stream`` into their final place; every check happens before anything is
    returned. With ``keep=False`` the file is only verified and the layers carry
    no arrays. An int8 model's meta gains "dtype": "int8" and "input_quant":
    [scale, zero point, rules] (see _input_rules and input_rule)."""
    r = _CheckedReader(stream)
    magic, version, dtype, count, inputs, meta_len = struct.unpack(_HEADER, r.read(_HEADER_SIZE))
    if magic != MAGIC:
        raise ModelFileError("not an ANNE model file (bad magic); export one with anne-host export")
    if version != VERSION and not (version == VERSION_PER_INPUT and dtype == DTYPE_INT8):
        raise ModelFileError("model file version %d; this firmware reads versions %d and %d "
                             "(int8)" % (version, VERSION, VERSION_PER_INPUT))
    if dtype >= len(DTYPES):
        raise ModelFileError("model number type %d is not supported by this firmware" % dtype)
    if count < 1 or inputs < 1:
        raise ModelFileError("model has no layers or no inputs")
    try:
        meta = json.loads(r.read(meta_len))
    except ValueError:
        raise ModelFileError("model metadata is not valid JSON")
    if not isinstance(meta, dict):
        raise ModelFileError("model metadata is not a JSON object")
    if "inputs" in meta and (type(meta["inputs"]) is not int or meta["inputs"] != inputs):
        raise ModelFileError("the metadata's inputs %r disagree with the header's %d"
                             % (meta["inputs"], inputs))
    if dtype == DTYPE_INT8:
        meta["dtype"] = "int8"
        meta["input_quant"] = _input_rules(r, version, inputs)
    if keep:
        r.ready = _allocate(stream, dtype, count, inputs)
    layers = []
    width = inputs
    for i in range(count):
        kind, act, n_in, units, p0, p1, p2 = struct.unpack(_LAYER, r.read(_LAYER_SIZE))
        _check_layer(kind, act, n_in, units, width, i, (p0, p1, p2))
        layer = Layer(KINDS[kind], ACTIVATIONS[act], n_in, units, (p0, p1, p2))
        flags = 0
        if dtype == DTYPE_INT8:
            layer.quant = struct.unpack(_QUANT, r.read(_QUANT_SIZE))
            flags = layer.quant[5]
            _check_quant(layer, i)
        for attr, code, n in _plan(dtype, kind, layer.activation, n_in, units, flags):
            # Verifying keeps the small per-unit int8 arrays, to check their ranges.
            if keep or (dtype == DTYPE_INT8 and attr != "weights"):
                setattr(layer, attr, r.values(code, n, i))
            else:
                r.skip(code, n, i)
        if dtype == DTYPE_INT8:
            _check_int8_arrays(layer, i)
        layers.append(layer)
        width = units
    expected = r.crc & 0xFFFFFFFF
    tail = stream.read(4)
    if not tail or len(tail) != 4:
        raise ModelFileError("model file is truncated")
    (stored,) = struct.unpack("<I", tail)
    if stored != expected:
        raise ModelFileError("model checksum mismatch: the file is damaged; upload it again")
    if stream.read(1):
        raise ModelFileError("model file has bytes after its checksum")
    return meta, layers


def checksum(blob):
    """The model's identity: the CRC-32 stored in its last four bytes."""
    return struct.unpack("<I", blob[-4:])[0]
