# Dense-layer kernels: y[j] = b[j] + sum_i w[j*n_in + i] * x[i], for j < n_out.
# Weights are row-major [unit][input] (see protocol/MODEL_FORMAT.md). A kernel is
# chosen when a model loads: bind(layer, workspace, relu), which may convert the
# layer's weights in place (once: a model's layers are bound once), returns
# (run, state, fused): run(src, dst, state) computes the layer, and the
# following relu too if fused.
# Kernels check nothing: the loader has proved the shapes, and the engine sized
# the buffers.
import sys


def reference(src, dst, layer):
    # Plain interpreted floats: the yardstick every fast kernel is tested against.
    w, b, n_in = layer.weights, layer.bias, layer.inputs
    k = 0
    for j in range(layer.units):
        s = 0.0
        for i in range(n_in):
            s += w[k + i] * src[i]
        dst[j] = s + b[j]
        k += n_in


def _bind_reference(layer, ws, relu=False):
    return reference, layer, False


class Kernel:
    # activation(layer): None, or (act, arg) computing the layer's activation as
    # act(x, arg) in place of activations.build's act(x, units).
    def __init__(self, name, bind, workspace=None, activation=None):
        self.name = name
        self.bind = bind
        self.workspace = workspace or (lambda width: None)
        self.activation = activation


def _bfp(name):
    # "bfp" (or "bfp-thumb") is the choice: the Thumb assembler kernel where the
    # port has it (same bits), else the viper one, which "bfp-viper" asks for.
    if name != "bfp-viper" and thumb():
        try:
            from . import bfp_thumb

            # no workspace: a layer's scratch is in its own program
            return Kernel("bfp-thumb", bfp_thumb.bind, None, bfp_thumb.activation)
        except (SyntaxError, ImportError):  # no inline assembler; the file not installed
            pass
    from . import bfp

    return Kernel("bfp", bfp.bind, bfp.Workspace)


def get(name):
    """The kernel called ``name``; ValueError for an unknown name, at load time."""
    if name == "reference":
        return Kernel("reference", _bind_reference)
    if name in ("bfp", "bfp-thumb", "bfp-viper"):
        return _bfp(name)
    raise ValueError("unknown kernel %r; kernels: reference, bfp, bfp-thumb, bfp-viper" % name)


# Viper exists only in MicroPython; elsewhere (CPython tests) the reference kernel runs.
DEFAULT = "bfp" if sys.implementation.name == "micropython" else "reference"


def thumb():
    """True where MicroPython runs on a Thumb core (the .mpy architecture of
    py/persistentcode.h: armv6m to armv7emdp), whose ports have the inline
    Thumb assembler; False on the Unix port, x86 or xtensa, and CPython."""
    return 4 <= getattr(sys.implementation, "_mpy", 0) >> 10 & 15 <= 8


def int8(name):
    """(kernel name, module with prepare, run and span) for an int8 model: the
    Thumb assembler kernel where the port has it, else the viper one; ``name``
    "int8" asks for the viper one."""
    if name != "int8" and thumb():
        try:
            from . import int8_thumb

            return "int8-thumb", int8_thumb
        except SyntaxError:  # a Thumb port built without the inline assembler
            pass
    from . import int8 as viper

    return "int8", viper
