# The dense-network engine: layers loaded from a model file, evaluated with two
# preallocated activation buffers, so an inference allocates nothing that grows
# with the network.
import sys
import time
from array import array

import micropython

from . import activations, kernels


@micropython.viper
def _run(steps, x, n_in: int, src, dst, code: int):
    # Copy the input in, then the layers. Viper: native code keeps its frame on
    # the C stack, so an inference makes no heap frame here (a bytecode function
    # of this size would get one from the heap on every call). code: the
    # address of x's typecode (an array or memoryview), or 0; 'f' items are
    # copied as words (x[i] would make a float object each).
    i = 0
    if code and ptr8(code)[0] & 0x7F == 102:
        s = ptr32(src)
        r = ptr32(x)
        while i < n_in:
            s[i] = r[i]
            i += 1
    else:
        while i < n_in:
            src[i] = x[i]
            i += 1
    return run_steps(steps, src, dst)


@micropython.viper
def _typecode(x) -> int:
    return int(ptr8(int(id(x)) + int(_TYPECODE))[0])


# An array object is its type, then a word whose low byte is the typecode
# (py/objarray.h; a memoryview's too, 0x80 set when writable). Checked here, once:
# where it is not so, every input is copied item by item.
_TYPECODE = 8 if sys.maxsize > 1 << 32 else 4
_ARRAYS = (array, memoryview)
try:
    if [_typecode(array(c, [0])) for c in "fdI"] != [102, 100, 73] \
            or _typecode(memoryview(array("f", [0]))) & 0x7F != 102:
        _ARRAYS = ()
except Exception:  # id() not an address
    _ARRAYS = ()


@micropython.viper
def run_steps(steps, src, dst):
    # Every layer in turn, ping-ponging between the two buffers; returns the
    # buffer that holds the outputs. steps is flat, four entries per layer
    # (dense or None, its state, activation or None, its argument: Net.__init__).
    # batch.run_rows is given it as an argument: batch does not import the engine.
    n = int(len(steps))
    i = 0
    while i < n:
        run = steps[i]
        if run:
            run(src, dst, steps[i + 1])
            src, dst = dst, src
        act = steps[i + 2]
        if act:
            act(src, steps[i + 3])
        i += 4
    return src


def _int8_reference(src, dst, net):
    # CPython has no viper: the int8 model runs on the spec's plain reference.
    from . import int8

    q = int8.reference([src[i] for i in range(net.inputs)], net.meta, net.layers)
    for j, v in enumerate(int8.dequantize(q, net.layers[-1])):
        dst[j] = v


# run_batch's threshold as float32 bits: struct.pack and unpack would make two
# objects a call; this makes none for thresholds in [0, 2), small ints on a board.
_threshold = array("f", (0,))
_batch = []  # batch.run_rows once run_batch has imported it (code is heap: not before)


@micropython.viper
def _bits(a) -> int:
    return ptr32(a)[0]


# What Net reads from the model's metadata, and the value where it says nothing.
_FROM_META = {"name": "", "labels": (), "threshold": 0.5, "dtype": "float32"}


class Net:
    kernel = kernels.DEFAULT  # an instance that runs another kernel says so

    def __init__(self, meta, layers, kernel=kernels.DEFAULT):
        # What meta already holds is read from it (__getattr__ below): every
        # attribute of an instance costs heap on the board.
        self.meta = meta
        self.layers = layers
        self.inputs = layers[0].inputs
        if self.dtype == "int8":
            self._bind_int8(kernel)
            return
        k = kernels.get(kernel)
        if k.name != Net.kernel:
            self.kernel = k.name
        width = self.inputs
        for layer in layers:
            width = max(width, layer.units)
        self._a = array("f", range(width))
        self._b = array("f", range(width))
        ws = k.workspace(width)
        # One step per layer, everything bound in advance: dense or None, its
        # state, activation or None, its argument (units, or the kernel's own).
        # forward() then only calls. The steps are one flat tuple, not a tuple
        # per layer: fewer objects on the heap.
        steps = []
        for layer in layers:
            run = state = None
            act, arg = activations.build(layer), layer.units
            own = k.activation and k.activation(layer)
            if own:  # the kernel's own sigmoid, tanh or softmax
                act, arg = own
            if layer.weights is not None:
                run, state, fused = k.bind(layer, ws, activations.is_plain_relu(layer))
                if fused:
                    act = None
            steps += (run, state, act, arg)
        self._steps = tuple(steps)

    def __getattr__(self, name):
        # Only called for what the instance does not hold: the model's outputs,
        # and what its metadata says (one method instead of a property each:
        # code is heap on the board too).
        if name == "outputs":
            return self.layers[-1].units
        if name in _FROM_META:
            value = self.meta.get(name)
            return _FROM_META[name] if value is None else value
        # The REPL's look inside (net.trace(x), net.show(x)) and training (net.fit(X, Y,
        # ...), net.evaluate(X, Y), net.save(name)): functions of trace.py and train.py,
        # given this net, from modules imported when first asked for. A method each would
        # be code held while a board only infers.
        if name == "trace" or name == "show":
            from . import trace as module
        elif name == "fit" or name == "evaluate" or name == "save":
            from . import train as module
        else:
            raise AttributeError(name)
        f = getattr(module, name)
        return lambda *args, **options: f(self, *args, **options)

    def _bind_int8(self, kernel):
        # An int8 model is one step: the int8 kernel quantizes the float input,
        # runs every layer in bytes and writes float outputs (firmware/int8.py).
        # It has read all of its input before it writes an output, so one float
        # buffer serves as both.
        self._a = self._b = array("f", range(max(self.inputs, self.outputs)))
        if kernel == "reference":
            self.kernel = "int8-reference"
            self._steps = (_int8_reference, self, None, self.outputs)
            return
        self.kernel, k = kernels.int8(kernel)
        self._steps = (k.run, k.prepare(self.meta, self.layers), None, self.outputs)

    def forward(self, x):
        """Run the network on ``x`` (a sequence of ``inputs`` numbers); returns the
        internal buffer whose first ``outputs`` values are the result. It is
        overwritten by the next call: copy what you keep."""
        if len(x) != self.inputs:
            raise ValueError("model %s takes %d inputs, got %d" % (self.name, self.inputs, len(x)))
        return _run(self._steps, x, self.inputs, self._a, self._b,
                    id(x) + _TYPECODE if type(x) in _ARRAYS else 0)

    def profile(self, x):
        """Like forward, timing each layer: returns its microseconds per layer.
        An int8 model's first layer includes quantizing the input, its last
        writing the output floats."""
        times = []
        src, dst = self._a, self._b
        for i in range(self.inputs):
            src[i] = x[i]
        steps = self._steps
        if self.dtype == "int8":
            return self._profile_int8(src, steps[1], times)
        for k in range(0, len(steps), 4):
            run, state, act, units = steps[k:k + 4]
            t0 = time.ticks_us()
            if run:
                run(src, dst, state)
                src, dst = dst, src
            if act:
                act(src, units)
            times.append(time.ticks_diff(time.ticks_us(), t0))
        return times

    def _profile_int8(self, buf, state, times):
        # The int8 kernels run a whole model per call: span() makes a call run
        # one layer, from and to the state's own buffers.
        n = len(self.layers)
        if self.kernel == "int8-reference":
            from . import int8

            quant = self.meta["input_quant"]
            q, z = None, quant[1]
            for k, layer in enumerate(self.layers):
                t0 = time.ticks_us()
                if k == 0:
                    q = int8.quantize_inputs(buf[:self.inputs], quant)
                q = int8.reference_layer(q, z, layer)
                if k == n - 1:
                    int8.dequantize(q, layer)
                times.append(time.ticks_diff(time.ticks_us(), t0))
                z = layer.quant[1]
            return times
        k = kernels.int8(self.kernel)[1]
        run = self._steps[0]
        try:
            for i in range(n):
                k.span(state, i, i + 1)
                t0 = time.ticks_us()
                run(buf, buf, state)
                times.append(time.ticks_diff(time.ticks_us(), t0))
        finally:
            k.span(state, 0, n)
        return times

    def run_batch(self, data, rows, ys, classes, times):
        """Run ``rows`` samples given as little-endian float32 bytes in ``data``:
        outputs into ``ys`` (array('f')), class indices into ``classes``
        (bytearray), board microseconds into ``times`` (array('I')); returns
        the total microseconds. MicroPython only (viper); allocates nothing."""
        if not _batch:  # an import statement makes an object each time it runs
            from .batch import run_rows

            _batch.append(run_rows)
        # What __getattr__ would give, read directly: it costs a Python call each.
        t = self.meta.get("threshold")
        _threshold[0] = _FROM_META["threshold"] if t is None else t
        return _batch[0](run_steps, self._steps, data, rows, self.inputs, self.layers[-1].units, self._a,
                         self._b, ys, classes, times, _bits(_threshold))

    def predict(self, x):
        """The output values for one sample, as a list of floats."""
        out = self.forward(x)
        return [out[i] for i in range(self.outputs)]

    def decide(self, out):
        """Class index for output values: one sigmoid output is compared with the
        model's threshold (default 0.5), several outputs take the largest."""
        if self.outputs == 1:
            return 1 if out[0] > self.threshold else 0
        best = 0
        for i in range(1, self.outputs):
            if out[i] > out[best]:
                best = i
        return best

    def predict_class(self, x):
        """The label of the class the network picks for ``x``."""
        k = self.decide(self.forward(x))
        return self.labels[k] if k < len(self.labels) else k

    def param_count(self):
        return sum(layer.param_count() for layer in self.layers)

    def param_bytes(self):
        """Bytes one parameter takes in this model's file: 4 (float32) or 1 (int8)."""
        return 1 if self.dtype == "int8" else 4

    def summary(self):
        print("Model: %s  (%d inputs -> %d outputs, %s, kernel %s)"
              % (self.name or "?", self.inputs, self.outputs, self.dtype, self.kernel))
        features = self.meta.get("features")
        if features:
            print("Features:", ", ".join(features))
        if self.labels:
            print("Labels:  ", ", ".join(str(label) for label in self.labels))
        print(" #  layer       units  activation      params    bytes")
        for i, layer in enumerate(self.layers):
            n = layer.param_count()
            print("%2d  %-10s %6d  %-13s %8d %8d"
                  % (i, layer.kind, layer.units, layer.activation, n, self.param_bytes() * n))
        n = self.param_count()
        print("Total params: %d (%d bytes as %s)" % (n, self.param_bytes() * n, self.dtype))
