# The binary model file (".anne"): pack on the host, stream-load on the board.
# The format is specified in MODEL_FORMAT.md beside this file; this is its only
# implementation, and it runs under CPython and MicroPython alike.
import json
import struct
from array import array
from binascii import crc32

MAGIC = b"ANNE"
VERSION = 1
DTYPE_FLOAT32 = 0

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
MAX_UNITS = 65535


class ModelFileError(ValueError):
    pass


class Layer:
    """One layer as the file holds it. Dense weights are row-major [unit][input]."""

    def __init__(self, kind, activation, inputs, units, params=(0.0, 0.0, 0.0),
                 weights=None, bias=None, alpha=None):
        self.kind = kind
        self.activation = activation
        self.inputs = inputs
        self.units = units
        self.params = tuple(params)
        self.weights = weights
        self.bias = bias
        self.alpha = alpha  # per-unit slopes of prelu, else None

    def arrays(self):
        """The float arrays of this layer, in file order."""
        return [a for a in (self.weights, self.bias, self.alpha) if a is not None]

    def param_count(self):
        return sum(len(a) for a in self.arrays())


def pack(meta, layers):
    """The file's bytes for ``layers`` (a list of Layer) and a ``meta`` dict
    (name, features, labels, ...: small, never weights)."""
    meta_raw = json.dumps(meta).encode()
    if len(meta_raw) > 65535:
        raise ModelFileError("model metadata is %d bytes; at most 65535" % len(meta_raw))
    parts = [struct.pack(_HEADER, MAGIC, VERSION, DTYPE_FLOAT32, len(layers),
                         layers[0].inputs if layers else 0, len(meta_raw)), meta_raw]
    for layer in layers:
        parts.append(struct.pack(_LAYER, KINDS.index(layer.kind),
                                 ACTIVATIONS.index(layer.activation), layer.inputs,
                                 layer.units, *layer.params))
        for values in layer.arrays():
            parts.append(bytes(array("f", values)))
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

    def _fill(self, values, count, index):
        if self.stream.readinto(values) != 4 * count:
            raise ModelFileError("model file is truncated")
        self.crc = crc32(values, self.crc)
        for v in values:
            # NaN fails every comparison, infinities fail the bound.
            if not -3.5e38 < v < 3.5e38:
                raise ModelFileError("layer %d holds a weight that is not a finite number (%r)"
                                     % (index, v))

    def floats(self, n, index):
        values = self.ready.pop(0) if self.ready else _floats(n)
        if n:
            self._fill(values, n, index)
        return values

    def skip_floats(self, n, index):
        # Check without keeping: through a small scratch array, so verifying a
        # stored model costs no memory however large it is.
        if self.scratch is None:
            self.scratch = array("f", range(64))
        while n >= 64:
            self._fill(self.scratch, 64, index)
            n -= 64
        if n:
            self._fill(array("f", range(n)), n, index)


def _floats(n):
    return array("f", range(n))  # sized without a temporary copy of n floats


def _array_sizes(stream, count, inputs):
    # Every array's length, in file order, from the layer headers alone; None
    # if the headers do not chain or do not add up to the file's length (the
    # checked pass then says what is wrong, before anything large is allocated).
    sizes = []
    width = inputs
    for _ in range(count):
        head = stream.read(_LAYER_SIZE)
        if len(head) != _LAYER_SIZE:
            return None
        kind, act, n_in, units = struct.unpack_from("<BBHH", head)
        if kind >= len(KINDS) or act >= len(ACTIVATIONS) or n_in != width:
            return None
        n = [units * n_in, units] if kind == KIND_DENSE else []
        if ACTIVATIONS[act] == "prelu":
            n.append(units)
        sizes.extend(n)
        stream.seek(4 * sum(n), 1)
        width = units
    here = stream.tell()
    if stream.seek(0, 2) != here + 4:  # exactly the CRC must follow
        return None
    return sizes


def _allocate(stream, count, inputs):
    # The largest arrays are allocated first, before the heap is cut up by the
    # smaller ones: on a 240 KB heap a model's biggest weight matrix is often
    # most of the largest free block. Needs a seekable stream (a flash file).
    try:
        start = stream.tell()
    except (AttributeError, OSError):
        return None
    sizes = _array_sizes(stream, count, inputs)
    stream.seek(start)
    if sizes is None:
        return None
    arrays = [None] * len(sizes)
    for k in sorted(range(len(sizes)), key=lambda k: -sizes[k]):
        arrays[k] = _floats(sizes[k])
    return arrays


def _check_layer(kind, act, inputs, units, expected_inputs, index):
    where = "layer %d: " % index
    if kind >= len(KINDS):
        raise ModelFileError(where + "unknown layer kind %d" % kind)
    if act >= len(ACTIVATIONS):
        raise ModelFileError(where + "unknown activation number %d; "
                             "update the firmware or re-export the model" % act)
    if inputs != expected_inputs:
        raise ModelFileError(where + "takes %d inputs but the previous layer gives %d"
                             % (inputs, expected_inputs))
    if units < 1 or (kind == KIND_ACTIVATION and units != inputs):
        raise ModelFileError(where + "has %d units for %d inputs" % (units, inputs))


def load(stream, keep=True):
    """Stream a model file: returns (meta, [Layer]). Arrays are read straight from
    ``stream`` into their final place; every check happens before anything is
    returned. With ``keep=False`` the file is only verified and the layers carry
    no arrays."""
    r = _CheckedReader(stream)
    magic, version, dtype, count, inputs, meta_len = struct.unpack(_HEADER, r.read(_HEADER_SIZE))
    if magic != MAGIC:
        raise ModelFileError("not an ANNE model file (bad magic); export one with anne-host export")
    if version != VERSION:
        raise ModelFileError("model file version %d; this firmware reads version %d"
                             % (version, VERSION))
    if dtype != DTYPE_FLOAT32:
        raise ModelFileError("model number type %d is not supported by this firmware" % dtype)
    if count < 1 or inputs < 1:
        raise ModelFileError("model has no layers or no inputs")
    try:
        meta = json.loads(r.read(meta_len))
    except ValueError:
        raise ModelFileError("model metadata is not valid JSON")
    if keep:
        r.ready = _allocate(stream, count, inputs)
    layers = []
    width = inputs
    for i in range(count):
        kind, act, n_in, units, p0, p1, p2 = struct.unpack(_LAYER, r.read(_LAYER_SIZE))
        _check_layer(kind, act, n_in, units, width, i)
        layer = Layer(KINDS[kind], ACTIVATIONS[act], n_in, units, (p0, p1, p2))
        sizes = []
        if kind == KIND_DENSE:
            sizes = [units * n_in, units]
        if layer.activation == "prelu":
            sizes.append(units)
        if keep:
            arrays = [r.floats(n, i) for n in sizes]
            if kind == KIND_DENSE:
                layer.weights, layer.bias = arrays[0], arrays[1]
            if layer.activation == "prelu":
                layer.alpha = arrays[-1]
        else:
            for n in sizes:
                r.skip_floats(n, i)
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
