# Training a float32 dense net on the board: forward with saved activations,
# backward, SGD (with momentum) or Adam, as Keras 3 computes them.
#
#   >>> from anne import train
#   >>> hist = train.fit(net, X, Y, epochs=20, batch=8, lr=0.05, optimizer="adam")
#   >>> train.evaluate(net, X, Y)          # {"loss": ..., "accuracy": ...}
#   >>> train.save(net, "mynet")           # atomic: the old file or the new, never half
#   >>> train.fit(net, X, Y, epochs=5, last=1)   # fine-tuning: only the output layer learns
#
# The net must hold float weights: one made by anne.new (build.new), or loaded
# with anne.load(name, kernel="reference") (the fast kernel converts weights in
# place when it binds them, which loses bits).
#
# Labels (Y): with categorical cross-entropy, a class index per row or a one-hot
# row; with binary cross-entropy, 0/1 per row (or a row of them, one per output);
# with mean squared error, a target row (or a number for a one-output net).
#
# Keras' losses, as its fit computes them (TensorFlow backend): a softmax or
# sigmoid output hands its logits to the loss (keras.activations keeps them as
# _keras_logits), so cross-entropy is taken from the logits, unclipped, and the
# output gradient is (p - y) / batch. MSE is mean((a - y)^2) over outputs.
# Every loss is the batch mean; gradients are of that mean.
#
# Memory (per parameter): the net's own weights, updated in place (4 B), the
# optimizer state (SGD 0 B, momentum 4 B, Adam 8 B), and no gradient arrays:
# a weight row's gradient is computed and applied at once (one row of scratch).
# Plus one batch's activations and two delta buffers (batch x widest layer),
# and the bfp kernel's scratch, which holds what one step's transposed inputs
# need ((widest + 1) x batch): a layer's weights go through it a block of rows
# at a time, so no layer needs a copy of its own (tools/bench_train.py).
#
# Fine-tuning (last=N): only the last N layers learn. The frozen ones before
# them get no optimizer state and keep no activations or deltas: per batch
# they run forward only, in the first trained layer's input buffer (through
# a delta buffer, which the forward pass does not use), and their weights are
# never written. So their parameters cost 4 B each, their own weights.
#
# Speed: the three products of a step (forward, deltas, weight gradients) run
# on the bfp kernel's exact integer dot products (firmware/bfp.py) under
# MicroPython; elsewhere (CPython) on plain float loops. See tools/bench_train.py.
import math
import sys
from array import array

from . import activations

_INF = float("inf")
_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805
_SQRT_2_OVER_PI = 0.7978845608028654
_INV_SQRT_2PI = 0.3989422804014327
_FAST = sys.implementation.name == "micropython"

# Derivatives by activation: (needs z, f) where f(z_or_a, params) -> da/dz.
# Most are computed from the output a, as TensorFlow's own gradients are; the
# rest (needs z True) keep the layer's pre-activations for the backward pass.


def _d_relu(a, p):
    return 1.0 if a > 0 else 0.0


def _d_leaky(a, p):
    return 1.0 if a > 0 else p[0]


def _d_elu(a, p):
    return 1.0 if a > 0 else a + p[0]


def _d_silu(z, p):
    s = activations._sigmoid(z)
    return s * (1.0 + z * (1.0 - s))


def _d_gelu(z, p):
    if p[0]:  # approximate: 0.5 z (1 + tanh(u)), u = c (z + 0.044715 z^3)
        t = math.tanh(_SQRT_2_OVER_PI * (z + 0.044715 * z * z * z))
        return 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * _SQRT_2_OVER_PI * (1.0 + 0.134145 * z * z)
    return 0.5 * (1.0 + activations._erf(z * 0.7071067811865476)) + z * _INV_SQRT_2PI * math.exp(-0.5 * z * z)


def _d_softsign(z, p):
    d = 1.0 + (z if z > 0 else -z)  # from z: 1 - |a| loses bits where |a| nears 1
    return 1.0 / (d * d)


_DERIVATIVES = {
    "linear": (False, None),
    "relu": (False, _d_relu),
    "leaky_relu": (False, _d_leaky),
    "elu": (False, _d_elu),
    "selu": (False, lambda a, p: _SELU_SCALE if a > 0 else a + _SELU_SCALE * _SELU_ALPHA),
    "sigmoid": (False, lambda a, p: a * (1.0 - a)),
    "tanh": (False, lambda a, p: 1.0 - a * a),
    "softsign": (True, _d_softsign),
    "exponential": (False, lambda a, p: a),
    "softplus": (True, lambda z, p: activations._sigmoid(z)),
    "silu": (True, _d_silu),
    "gelu": (True, _d_gelu),
    "softmax": (False, None),  # its Jacobian acts on the whole row (_softmax_back)
}
LOSSES = ("categorical_crossentropy", "binary_crossentropy", "mse")
# Activations whose value at each unit depends on that unit's input alone, with
# the same parameters for every unit: activations.build's function (x, n) can
# take a batch of rows as one vector.
_ELEMENTWISE = tuple(k for k in _DERIVATIVES if k != "softmax")


def first_trained(net, last=None):
    """The index of the first layer that learns when only the ``last`` layers
    do (None: all of them); ValueError for a count the model does not have."""
    n = len(net.layers)
    if last is None:
        return 0
    if not isinstance(last, int) or last is True or last is False or not 1 <= last <= n:
        raise ValueError("last=%r: the layers to train, counted from the output, are 1 to %d "
                         "for this model of %d layers" % (last, n, n))
    return n - last


def check_trainable(net, loss=None, last=None):
    """The loss to use for ``net``; ValueError naming what cannot be trained.
    With ``last``, only the last layers need derivatives (the others run forward only)."""
    if net.dtype != "float32":
        raise ValueError("only float32 models can be trained; this one is %s" % net.dtype)
    if net.kernel != "reference":
        raise ValueError("model %s is bound to the %s kernel, which converts its weights; "
                         "load it with anne.load(name, kernel='reference') to train it"
                         % (net.name or "?", net.kernel))
    first = first_trained(net, last)
    for i, layer in enumerate(net.layers):
        name = layer.activation
        if layer.kind != "dense":
            raise ValueError("layer %d: a separate activation layer cannot be trained yet" % i)
        if i < first:
            continue  # frozen: its forward pass is inference's
        if name not in _DERIVATIVES:
            raise ValueError("layer %d: activation %s cannot be trained on the board; trainable: %s"
                             % (i, name, ", ".join(sorted(_DERIVATIVES))))
        if name == "relu" and layer.params != (0.0, _INF, 0.0):
            raise ValueError("layer %d: relu with a slope, limit or threshold cannot be trained" % i)
        if name == "leaky_relu" and not layer.params[0] > 0:
            raise ValueError("layer %d: leaky_relu needs a positive slope to be trained" % i)
        if name == "elu" and not layer.params[0] > 0:
            raise ValueError("layer %d: elu needs a positive alpha to be trained" % i)
    last = net.layers[-1].activation
    if loss is None:
        loss = {"softmax": LOSSES[0], "sigmoid": LOSSES[1]}.get(last, "mse")
    if loss not in LOSSES:
        raise ValueError("unknown loss %r; losses: %s" % (loss, ", ".join(LOSSES)))
    if loss == LOSSES[0] and (last != "softmax" or net.outputs < 2):
        raise ValueError("categorical_crossentropy needs a softmax output of 2 or more units")
    if loss == LOSSES[1] and last != "sigmoid":
        raise ValueError("binary_crossentropy needs a sigmoid output")
    return loss


def _finite(v):
    return -3.5e38 < v < 3.5e38  # NaN fails both comparisons


def _targets(net, X, Y, loss):
    # Checks every row before any step, and returns the targets as one flat
    # array('f') of rows x outputs (one-hot for class indices).
    n_in, n_out = net.inputs, net.outputs
    if len(X) != len(Y):
        raise ValueError("%d input rows but %d labels" % (len(X), len(Y)))
    if not len(X):
        raise ValueError("no rows to train on")
    for r, x in enumerate(X):
        if len(x) != n_in:
            raise ValueError("row %d has %d values; model %s takes %d" % (r, len(x), net.name or "?", n_in))
        for v in x:
            if not _finite(v):
                raise ValueError("row %d holds %r: every input must be a finite number" % (r, v))
    t = array("f", bytearray(4 * len(Y) * n_out))
    for r, y in enumerate(Y):
        k = r * n_out
        if isinstance(y, (int, float)):
            if loss == LOSSES[0]:
                if not isinstance(y, int) or not 0 <= y < n_out:
                    raise ValueError("label %r of row %d is not a class index 0..%d" % (y, r, n_out - 1))
                t[k + y] = 1.0
                continue
            y = (y,)
        if len(y) != n_out:
            raise ValueError("label of row %d has %d values; model %s has %d outputs"
                             % (r, len(y), net.name or "?", n_out))
        for i, v in enumerate(y):
            if not _finite(v) or (loss != "mse" and not 0 <= v <= 1):
                raise ValueError("label of row %d holds %r: %s" % (
                    r, v, "targets must be finite" if loss == "mse" else "probabilities are 0..1"))
            t[k + i] = v
    return t


# Products of a step. Row-major flat arrays: W [n_out][n_in], A [batch][n_in],
# D (deltas) [batch][n_out].


def _forward_plain(w, bias, n_in, n_out, a, z, rows):
    # z[b][j] = bias[j] + sum_i w[j][i] a[b][i]
    for b in range(rows):
        ka = b * n_in
        kz = b * n_out
        kw = 0
        for j in range(n_out):
            s = 0.0
            for i in range(n_in):
                s += w[kw + i] * a[ka + i]
            z[kz + j] = s + bias[j]
            kw += n_in


def _back_plain(w, n_in, n_out, d, p, rows):
    # p[b][i] = sum_j d[b][j] w[j][i]
    for b in range(rows):
        kd = b * n_out
        kp = b * n_in
        for i in range(n_in):
            s = 0.0
            k = i
            for j in range(n_out):
                s += d[kd + j] * w[k]
                k += n_in
            p[kp + i] = s


def _grad_plain(a, n_in, n_out, d, rows, j, g):
    # g[i] = sum_b d[b][j] a[b][i] for i < n_in, g[n_in] = sum_b d[b][j]
    for i in range(n_in + 1):
        g[i] = 0.0
    for b in range(rows):
        v = d[b * n_out + j]
        if v:
            k = b * n_in
            for i in range(n_in):
                g[i] += v * a[k + i]
            g[n_in] += v


class _Bfp:
    # The three products on the bfp kernel's dot products: each prepares a
    # matrix (rows of W, of W transposed, or A transposed with a row of ones for
    # the bias) into one scratch array, then runs a row vector through it per
    # sample or per unit. The scratch is as large as the weight gradients'
    # matrix needs ((n_in + 1) x batch): a layer whose weights do not fit it
    # goes through a block of rows at a time (each block aligned on its own:
    # every sum is still exact, then rounded once), so no layer is copied whole.
    @staticmethod
    def size(widest_in, widest_out, trained_in, rows):
        # One row of W and one of W transposed at least; the gradients' matrix.
        return max(widest_in, widest_out, (trained_in + 1) * rows)

    def __init__(self, width, rows, m):
        from . import bfp

        self.bfp = bfp
        self.m = m
        w = max(width, rows) + 1
        self.src = array("f", bytearray(4 * (w + w // 2 + 1)))
        self.dst = array("f", bytearray(4 * w))
        self.zero = array("f", bytearray(4 * w))
        self.bias = array("f", bytearray(4 * w))  # one block's biases
        self.ws = bfp.Workspace(w)
        self.ws[1] = len(self.src)  # the input's low limbs go after it in src
        self.layer = _Matrix(self.m, self.zero)

    def _bind(self, n_in, n_out, bias):
        # bfp.bind's state, with the weights converted by train_words.prepare
        # (bfp.prepare's words, faster: see there). The low limbs' room: bind's
        # choice, which is always "after the input in src" here, as src holds
        # half a row more than any product's input (__init__).
        lay = self.layer
        lay.inputs, lay.units, lay.bias = n_in, n_out, bias
        scales = bytearray(n_in + n_out)  # made per call, as bfp.prepare does: none held
        _prepare(self.m, scales, n_in, n_out)
        return (self.m, scales, self.ws, bias, n_in, n_out, lay, 0, 0, n_in)

    def forward(self, w, bias, n_in, n_out, a, z, rows):
        # z and a must be different arrays (a block's outputs are written while
        # the next block still reads the inputs).
        m = self.m
        per = min(n_out, len(m) // n_in)  # weight rows per block
        src, dst, dense = self.src, self.dst, self.bfp.dense
        j = 0
        while j < n_out:
            n = min(per, n_out - j)
            _copy(w, j * n_in, m, 0, n * n_in)
            _copy(bias, j, self.bias, 0, n)
            st = self._bind(n_in, n, self.bias)
            _through(dense, st, a, n_in, z, j, n_out, n, rows, src, dst)
            j += n

    def back(self, w, n_in, n_out, d, p, rows):
        m = self.m
        per = min(n_in, len(m) // n_out)  # columns of W per block
        src, dst, dense = self.src, self.dst, self.bfp.dense
        i = 0
        while i < n_in:
            n = min(per, n_in - i)
            if n == n_in:
                _transpose(w, n_out, n_in, m)
            else:
                for c in range(n):
                    _column(w, n_in, i + c, n_out, dst)
                    _copy(dst, 0, m, c * n_out, n_out)
            st = self._bind(n_out, n, self.zero)
            _through(dense, st, d, n_out, p, i, n_in, n, rows, src, dst)
            i += n

    def grad_start(self, a, n_in, rows):
        _transpose(a, rows, n_in, self.m)
        _ones(self.m, n_in * rows, rows)
        self.st = self._bind(rows, n_in + 1, self.zero)

    def grad(self, a, n_in, n_out, d, rows, j, g):
        _column(d, n_out, j, rows, self.src)
        self.bfp.dense(self.src, g, self.st)

    def grads(self, d, n_out, j, k, rows, g, n_in, out, gb):
        # grad() of rows j..j+k-1: each row's weight gradients to out[(r - j) n_in:],
        # its bias gradient to gb[r].
        _grads(self.bfp.dense, self.st, d, n_out, j, k, rows, self.src, g, n_in, out, gb)


class _Matrix:
    # What bfp.bind reads of a layer.
    def __init__(self, weights, bias):
        self.weights = weights
        self.bias = bias
        self.inputs = self.units = 0


if _FAST:
    # Viper, in a module of their own that stays loaded: MicroPython never frees
    # native code, so importing it again with this module would leak it each time.
    from .train_words import add as _add, column as _column, copy as _copy, mul as _mul, ones as _ones
    from .train_words import grads as _grads, prepare as _prepare, relu_back as _relu_back
    from .train_words import through as _through, transpose as _transpose
else:
    def _copy(src, at, dst, to, n):
        dst[to:to + n] = src[at:at + n]


class _Plain:
    forward = staticmethod(_forward_plain)
    back = staticmethod(_back_plain)
    grad = staticmethod(_grad_plain)

    def grad_start(self, a, n_in, rows):
        pass


# Optimizers: update(w, bias, state, g, j, n_in, n_out) applies row j's
# gradient g (n_in weights, then the bias) to weight row j and bias j.


class SGD:
    def __init__(self, lr, momentum=0.0):
        if not lr > 0 or not 0 <= momentum < 1:
            raise ValueError("sgd needs lr > 0 and 0 <= momentum < 1")
        self.lr = lr
        self.momentum = momentum
        self.slots = 1 if momentum else 0
        # Keras casts both to the variables' dtype: float32, as the word kernels read them.
        self.coef = array("f", (lr, momentum))

    def begin(self, step):
        pass

    def words(self, var, kv, s, ks, g, n, tmp, kt):
        # update() in float32 words (train_words: each operation rounded once,
        # as Keras' float32 ops are; no float object per parameter), for n
        # parameters var[kv:] with gradients g[:n] and state s[..][ks:]. g is
        # spent (it takes g * lr); tmp[kt:] is scratch of n words.
        c = self.coef
        _mul(g, 0, g, 0, c, 0, 0, n)
        if not self.momentum:  # variable -= gradient * lr
            _add(var, kv, var, kv, g, 0, 1, n)
            return
        v = s[0]  # velocity = velocity * momentum - gradient * lr; variable += velocity
        _mul(v, ks, v, ks, c, 1, 0, n)
        _add(v, ks, v, ks, g, 0, 1, n)
        _add(var, kv, var, kv, v, ks, 0, n)

    def update(self, w, bias, s, g, j, n_in, n_out):
        lr, mom = self.lr, self.momentum
        k = j * n_in
        if not mom:  # variable -= gradient * lr
            for i in range(n_in):
                w[k + i] -= g[i] * lr
            bias[j] -= g[n_in] * lr
            return
        v = s[0]  # velocity = velocity * momentum - gradient * lr; variable += velocity
        for i in range(n_in):
            m = v[k + i] * mom - g[i] * lr
            v[k + i] = m
            w[k + i] += v[k + i]  # the float32 velocity, as Keras stores it
        kb = n_in * n_out + j
        v[kb] = v[kb] * mom - g[n_in] * lr
        bias[j] += v[kb]


class Adam:
    def __init__(self, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
        if not lr > 0 or not 0 <= beta_1 < 1 or not 0 <= beta_2 < 1:
            raise ValueError("adam needs lr > 0 and betas in 0..1")
        self.lr, self.b1, self.b2, self.eps = lr, beta_1, beta_2, epsilon
        self.slots = 2
        # words(): 1 - beta_1, 1 - beta_2, alpha (per step), epsilon, in float32
        # as Keras casts them (the differences in double, as Keras takes them).
        self.coef = array("f", (1 - beta_1, 1 - beta_2, 0.0, epsilon))
        if _FAST:
            # loaded once, for Adam only (see there)
            from .train_adam import div, sqrt

            self.div, self.sqrt = div, sqrt

    def begin(self, step):
        # Keras: local_step = iterations + 1; alpha = lr sqrt(1 - b2^t) / (1 - b1^t)
        t = step + 1
        self.alpha = self.lr * math.sqrt(1 - self.b2 ** t) / (1 - self.b1 ** t)
        self.coef[2] = self.alpha

    def words(self, var, kv, s, ks, g, n, tmp, kt):
        # update() in float32 words (see SGD.words); g is spent (it takes
        # sqrt(v) + epsilon), tmp[kt:] holds each formula's terms in turn.
        m, v = s
        c = self.coef
        _add(tmp, kt, g, 0, m, ks, 1, n)  # m += (g - m) * (1 - beta_1)
        _mul(tmp, kt, tmp, kt, c, 0, 0, n)
        _add(m, ks, m, ks, tmp, kt, 0, n)
        _mul(tmp, kt, g, 0, g, 0, 1, n)  # v += (g^2 - v) * (1 - beta_2)
        _add(tmp, kt, tmp, kt, v, ks, 1, n)
        _mul(tmp, kt, tmp, kt, c, 1, 0, n)
        _add(v, ks, v, ks, tmp, kt, 0, n)
        self.sqrt(g, 0, v, ks, n)  # variable -= m alpha / (sqrt(v) + epsilon)
        _add(g, 0, g, 0, c, 3, 2, n)
        _mul(tmp, kt, m, ks, c, 2, 0, n)
        self.div(tmp, kt, tmp, kt, g, 0, n)
        _add(var, kv, var, kv, tmp, kt, 1, n)

    def update(self, w, bias, s, g, j, n_in, n_out):
        m, v = s
        c1, c2, alpha, eps = 1 - self.b1, 1 - self.b2, self.alpha, self.eps
        sqrt = math.sqrt
        k = j * n_in
        for i in range(n_in + 1):
            if i == n_in:
                k = n_in * n_out + j - i  # the bias' state follows the weights'
            gi = g[i]
            m[k + i] += (gi - m[k + i]) * c1
            v[k + i] += (gi * gi - v[k + i]) * c2
            step = m[k + i] * alpha / (sqrt(v[k + i]) + eps)
            if i == n_in:
                bias[j] -= step
            else:
                w[k + i] -= step


def _optimizer(optimizer, lr, momentum, beta_1, beta_2, epsilon):
    if optimizer == "sgd":
        return SGD(lr, momentum)
    if optimizer == "adam":
        return Adam(lr, beta_1, beta_2, epsilon)
    raise ValueError("unknown optimizer %r; optimizers: sgd, adam" % optimizer)


def _zeros(n):
    return array("f", bytearray(4 * n))


class Trainer:
    """The training state of a net: optimizer state and one batch's
    activations. Steps update the net's own weights, in place. With ``last``,
    only the last layers learn (see the top of this file)."""

    def __init__(self, net, batch, optimizer, loss=None, fast=_FAST, last=None):
        self.net = net
        self.loss = check_trainable(net, loss, last)
        if not isinstance(batch, int) or batch < 1:
            raise ValueError("batch must be a whole number of rows, 1 or more")
        self.rows = batch
        self.opt = optimizer
        self.step = 0
        layers = net.layers
        self.first = first = first_trained(net, last)
        # Widths: what the trained layers' deltas need, and what the frozen
        # forward pass needs (the inputs and every frozen layer's outputs).
        trained = layers[first:]
        width = trained[0].inputs
        widest_out = 0
        for layer in trained:
            width = max(width, layer.units)
            widest_out = max(widest_out, layer.units)
        frozen = net.inputs if first else 0
        widest_in = 0
        for layer in layers:
            widest_in = max(widest_in, layer.inputs)
        for layer in layers[:first]:
            frozen = max(frozen, layer.units)
        # The net's own weights (no copy: on a Pico's heap the copy does not
        # fit beside everything else), then each trained layer's optimizer
        # state (weights then bias, one float each per slot).
        self.w = [layer.weights for layer in layers]
        self.b = [layer.bias for layer in layers]
        # Every array is sized first and allocated largest first, as the
        # model loader does: on a Pico's heap the large ones need the large
        # free blocks before the small ones cut them up.
        last_l = len(layers) - 1
        sizes = [layer.param_count() if l >= first else 0
                 for l, layer in enumerate(layers) for _ in range(optimizer.slots)]
        # a[0] is the batch's inputs, a[l+1] layer l's outputs; z[l+1] its
        # pre-activations where the derivative needs them (and the last
        # layer's for cross-entropy, which reads the logits). The frozen
        # layers keep neither: a[0] is then also a[first], wide enough for
        # every frozen layer's outputs.
        sizes += [batch * max(net.inputs, frozen)]
        sizes += [batch * layer.units if l >= first else 0 for l, layer in enumerate(layers)]
        sizes += [batch * layer.units if l >= first and (
                  _DERIVATIVES[layer.activation][0] or (l == last_l and self.loss != "mse")) else 0
                  for l, layer in enumerate(layers)]
        # Two delta buffers, which take turns (the backward pass writes each
        # layer's input deltas into the one it does not read), each as wide as
        # its turns need; the second also takes each frozen layer's outputs.
        turns = [layers[-1].units, 0]
        k = 1
        for l in range(len(layers) - 1, first, -1):
            turns[k] = max(turns[k], layers[l].inputs)
            k = 1 - k
        sizes += [batch * turns[0], batch * max(turns[1], frozen), width + 1, max(width, frozen)]
        if fast:
            sizes.append(_Bfp.size(widest_in, widest_out, width, batch))
        arrays = [None] * len(sizes)
        for k in sorted(range(len(sizes)), key=lambda k: -sizes[k]):
            if sizes[k]:
                arrays[k] = _zeros(sizes[k])
        k = 0
        self.state = []
        for l in range(len(layers)):
            self.state.append(arrays[k:k + optimizer.slots] if l >= first else None)  # frozen: none
            k += optimizer.slots
        n = len(layers) + 1
        self.a = arrays[k:k + n]
        if first:
            self.a[first] = self.a[0]
        self.z = [None] + arrays[k + n:k + 2 * n - 1]
        k += 2 * n - 1
        self.d, self.p, self.g, self.row = arrays[k:k + 4]
        self.acts = [activations.build(layer) for layer in layers]
        # The word updates' bias gradients, one layer's (self.row is their scratch).
        self.gb = _zeros(widest_out) if _FAST else None
        self.c = array("f", (0.0,))  # the output deltas' factor, for the word kernels
        self.mm = _Bfp(max(width, frozen, widest_in), batch, arrays[-1]) if fast else _Plain()

    def _activate(self, l, out, rows, n_out):
        act = self.acts[l]
        if act and self.net.layers[l].activation in _ELEMENTWISE:
            act(out, rows * n_out)  # the whole batch in one call: no copies
        elif act:
            row = self.row
            for b in range(rows):
                _copy(out, b * n_out, row, 0, n_out)
                act(row, n_out)
                _copy(row, 0, out, b * n_out, n_out)

    def _forward(self, rows):
        net = self.net
        x, p = self.a[0], self.p
        for l in range(self.first):
            # Frozen: into the delta buffer (free until the backward pass), then
            # back over the inputs, which the next layer reads.
            layer = net.layers[l]
            n_out = layer.units
            self.mm.forward(self.w[l], self.b[l], layer.inputs, n_out, x, p, rows)
            self._activate(l, p, rows, n_out)
            _copy(p, 0, x, 0, rows * n_out)
        for l in range(self.first, len(net.layers)):
            layer = net.layers[l]
            n_in, n_out = layer.inputs, layer.units
            a, out = self.a[l], self.a[l + 1]
            self.mm.forward(self.w[l], self.b[l], n_in, n_out, a, out, rows)
            z = self.z[l + 1]
            if z is not None:
                _copy(out, 0, z, 0, rows * n_out)
            self._activate(l, out, rows, n_out)

    def _loss(self, t, at, rows):
        # Cross-entropy: the sum over the batch of each row's loss and of right
        # decisions; the output deltas dL/dz of the batch mean into self.d.
        n_out = self.net.outputs
        y, z, d = self.a[-1], self.z[-1], self.d
        total = 0.0
        right = 0
        scale = 1.0 / rows
        cce = self.loss == LOSSES[0]
        c = scale if cce else scale / n_out
        plain = not _FAST
        log, exp = math.log, math.exp
        for b in range(rows):
            k = b * n_out
            kt = (at + b) * n_out
            row = 0.0
            if cce:
                # sum_i t_i (logsumexp(z) - z_i): from the logits, as
                # softmax_cross_entropy_with_logits computes it
                top = z[k]
                for i in range(1, n_out):
                    if z[k + i] > top:
                        top = z[k + i]
                s = 0.0
                for i in range(n_out):
                    s += exp(z[k + i] - top)
                lse = top + log(s)
                for i in range(n_out):
                    ti = t[kt + i]
                    if ti:
                        row += ti * (lse - z[k + i])
                    if plain:
                        d[k + i] = (y[k + i] - ti) * scale
            else:
                for i in range(n_out):
                    v = z[k + i]
                    # max(z, 0) - z t + log(1 + e^-|z|): sigmoid_cross_entropy_with_logits
                    row += (v if v > 0 else 0.0) - v * t[kt + i] + log(1.0 + exp(-(v if v > 0 else -v)))
                    if plain:
                        d[k + i] = (y[k + i] - t[kt + i]) * c
                row /= n_out
            total += row
            right += self._right(y, k, t, kt, n_out)
        if not plain:  # the same deltas in float32 words, the whole batch in two calls
            self.c[0] = c
            n = rows * n_out
            _add(d, 0, y, 0, t, at * n_out, 1, n)
            _mul(d, 0, d, 0, self.c, 0, 0, n)
        return total, right

    def _right(self, y, k, t, kt, n_out):
        if n_out == 1:
            return 1 if (y[k] > 0.5) == (t[kt] > 0.5) else 0
        best = bt = 0
        for i in range(1, n_out):
            if y[k + i] > y[k + best]:
                best = i
            if t[kt + i] > t[kt + bt]:
                bt = i
        return 1 if best == bt else 0

    def _times_derivative(self, l, d, rows):
        # d (dL/da of layer l-1's outputs, batch rows) times da/dz, in place.
        layer = self.net.layers[l - 1]
        n = layer.units
        name = layer.activation
        needs_z, f = _DERIVATIVES[name]
        a = self.a[l]
        if name == "softmax":
            for b in range(rows):
                _softmax_back(a, d, b * n, n)
            return
        if f is None:
            return
        if _FAST and name == "relu":
            _relu_back(d, a, rows * n)  # in words: no float object per value
            return
        src = self.z[l] if needs_z else a
        p = layer.params
        for k in range(rows * n):
            d[k] *= f(src[k], p)

    def train_batch(self, x, t, at, rows):
        """One step on rows at..at+rows of the flat inputs x and targets t;
        returns (loss sum, right decisions) of the batch before the step."""
        net = self.net
        n0 = net.inputs
        _copy(x, at * n0, self.a[0], 0, rows * n0)
        self._forward(rows)
        if self.loss == "mse":
            total, right = self._mse(t, at, rows)
        else:
            total, right = self._loss(t, at, rows)
        if not _finite(total):
            return total, right
        self.opt.begin(self.step)
        d, p = self.d, self.p
        mm = self.mm
        for l in range(len(net.layers) - 1, self.first - 1, -1):
            layer = net.layers[l]
            n_in, n_out = layer.inputs, layer.units
            w = self.w[l]
            a = self.a[l]
            if l > self.first:  # the previous layer's deltas, with this layer's weights before the step
                mm.back(w, n_in, n_out, d, p, rows)
                self._times_derivative(l, p, rows)
            mm.grad_start(a, n_in, rows)
            g = self.g
            bias, state = self.b[l], self.state[l]
            if _FAST:
                # Blocks of k rows: their gradients (train_words.grads), then
                # the optimizer on the block's weights at once; the biases after
                # the last block (their gradients kept in gb). The block and the
                # optimizer's scratch go in this layer's outputs, a[l + 1], which
                # nothing reads again in this step (the layer after it has taken
                # its derivative and its gradients' inputs from them).
                words, gb = self.opt.words, self.gb
                out = self.a[l + 1]
                per = len(out) // (2 * n_in)
                j = 0
                while j < n_out:
                    if per:
                        k = min(per, n_out - j)
                        mm.grads(d, n_out, j, k, rows, g, n_in, out, gb)
                        words(w, j * n_in, state, j * n_in, out, k * n_in, out, k * n_in)
                    else:  # a row at a time, in g (scratch: self.row)
                        k = 1
                        mm.grad(a, n_in, n_out, d, rows, j, g)
                        _copy(g, n_in, gb, j, 1)
                        words(w, j * n_in, state, j * n_in, g, n_in, self.row, 0)
                    j += k
                words(bias, 0, state, n_in * n_out, gb, n_out, self.row, 0)
            else:
                update = self.opt.update
                for j in range(n_out):
                    mm.grad(a, n_in, n_out, d, rows, j, g)
                    update(w, bias, state, g, j, n_in, n_out)
            d, p = p, d
        self.step += 1
        return total, right

    def _mse(self, t, at, rows):
        net = self.net
        n_out = net.outputs
        y, d = self.a[-1], self.d
        total = 0.0
        right = 0
        c = 2.0 / rows / n_out
        for b in range(rows):
            k = b * n_out
            kt = (at + b) * n_out
            row = 0.0
            for i in range(n_out):
                e = y[k + i] - t[kt + i]
                row += e * e
                d[k + i] = c * e
            total += row / n_out
            right += self._right(y, k, t, kt, n_out)
        self._times_derivative(len(net.layers), d, rows)
        return total, right


def _softmax_back(a, d, k, n):
    # dz_i = a_i (d_i - sum_j a_j d_j)
    s = 0.0
    for i in range(n):
        s += a[k + i] * d[k + i]
    for i in range(n):
        d[k + i] = a[k + i] * (d[k + i] - s)


def _flat(X, n):
    x = array("f", bytearray(4 * len(X) * n))
    k = 0
    for row in X:
        for v in row:
            x[k] = v
            k += 1
    return x


def _order(n, seed, epoch):
    # A row order per epoch from a small xorshift generator: the same on every
    # port, so a run can be repeated (and compared with Keras in that order).
    order = list(range(n))
    if seed is None or seed is False:
        return order
    s = (seed * 2654435761 + epoch * 40503 + 1) & 0xFFFFFFFF or 1
    for i in range(n - 1, 0, -1):
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        j = s % (i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def fit(net, X, Y=None, epochs=1, batch=32, lr=0.01, optimizer="sgd", momentum=0.0, loss=None,
        shuffle=False, beta_1=0.9, beta_2=0.999, epsilon=1e-7, verbose=False, last=None):
    """Train ``net`` on rows X (lists of inputs) and labels Y (see the top of
    this file); returns [{"epoch", "loss", "accuracy"}] per epoch, loss the mean
    over the epoch's rows of each batch's loss before its step (as Keras reports
    it). shuffle: False keeps the rows' order, an int seeds a new order each
    epoch. The last batch of an epoch may be smaller (as in Keras).
    Everything is checked before the first step, so bad data changes nothing.
    Steps update the net's weights in place (a copy to fall back on would cost
    4 B per parameter). A batch whose loss is NaN or infinite stops training
    with ArithmeticError before its step: the net keeps the weights of the last
    finite step, and nothing is saved (save() is separate; the stored model is
    untouched until then: anne.load gets it back). last=N trains only the last
    N layers (fine-tuning: Keras' trainable=False on the others), whose
    weights stay as they were, bit for bit; None trains them all. X may be
    a stored data set's name (Y left out), or anne.data(name)'s X and Y."""
    opt = _optimizer(optimizer, lr, momentum, beta_1, beta_2, epsilon)
    loss = check_trainable(net, loss, last)
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError("epochs must be a whole number, 1 or more")
    flat = None
    if isinstance(X, str) or hasattr(X, "flat"):  # a stored data set (datasets.py): its own arrays, no copy
        from .datasets import arrays

        flat, t = arrays(net, X, Y, loss)
    else:
        t = _targets(net, X, Y, loss)
    n = len(t) // net.outputs
    tr = Trainer(net, min(batch, n), opt, loss, last=last)
    x = _flat(X, net.inputs) if flat is None else flat
    if shuffle is not False and shuffle is not None:
        # Rows are copied in epoch order; the flat arrays are reordered per epoch.
        xs, ts = array("f", x), array("f", t)
    history = []
    for epoch in range(epochs):
        if shuffle is not False and shuffle is not None:
            _reorder(xs, x, _order(n, shuffle, epoch), net.inputs)
            _reorder(ts, t, _order(n, shuffle, epoch), net.outputs)
            xe, te = x, t
            x, t = xs, ts
            xs, ts = xe, te
        total = 0.0
        right = 0
        at = 0
        while at < n:
            rows = min(tr.rows, n - at)
            s, r = tr.train_batch(x, t, at, rows)
            if not _finite(s):
                raise ArithmeticError("training diverged in epoch %d at row %d: the loss is %r; "
                                      "stopped before that step, nothing saved" % (epoch + 1, at, s))
            total += s
            right += r
            at += rows
        history.append({"epoch": epoch + 1, "loss": total / n, "accuracy": right / n})
        if verbose:
            print("epoch %d  loss %.6f  accuracy %.4f" % (epoch + 1, total / n, right / n))
    return history


def _reorder(dst, src, order, n):
    for r, o in enumerate(order):
        _copy(src, o * n, dst, r * n, n)


def evaluate(net, X, Y, loss=None, batch=32):
    """{"loss", "accuracy"} of ``net`` on rows X, labels Y, as Keras' evaluate
    reports them (the loss the net would be trained on)."""
    # Forward only: the output layer decides the loss, and a Trainer of it
    # alone keeps no state or activations of the layers before it.
    loss = check_trainable(net, loss, 1)
    t = _targets(net, X, Y, loss)
    n = len(X)
    x = _flat(X, net.inputs)
    tr = Trainer(net, min(batch, n), SGD(1.0), loss, last=1)
    total = 0.0
    right = 0
    at = 0
    while at < n:
        rows = min(tr.rows, n - at)
        _copy(x, at * net.inputs, tr.a[0], 0, rows * net.inputs)
        tr._forward(rows)
        s, r = (tr._mse if loss == "mse" else tr._loss)(t, at, rows)
        total += s
        right += r
        at += rows
    return {"loss": total / n, "accuracy": right / n}


def save(net, name):
    """Write ``net`` to the model store as ``name``, atomically: the file is
    written under a temporary name, checked, and renamed over the old one."""
    import os

    from . import store
    from .protocol import modelfile

    store.check_name(name)
    # float32 weights not converted by a kernel; frozen layers need no derivative
    check_trainable(net, None if net.layers[-1].activation in ("softmax", "sigmoid") else "mse", 1)
    try:
        os.mkdir(store.ROOT)
    except OSError:
        pass  # it exists
    tmp = store.TRAIN_TMP
    meta = dict(net.meta)
    meta["name"] = name
    try:
        with open(tmp, "wb") as f:
            _write(f, meta, net.layers)
        with open(tmp, "rb") as f:
            modelfile.load(f, keep=False)  # every check the loader makes, before it replaces anything
        os.rename(tmp, store.path(name))
    finally:
        try:
            os.remove(tmp)
        except OSError:
            pass  # renamed, or never written


def _write(f, meta, layers):
    # The float32 model file (MODEL_FORMAT.md), written piece by piece with a
    # running CRC: no copy of the weights is made (modelfile.pack joins them).
    import json
    import struct
    from binascii import crc32

    from .protocol import modelfile as mf

    crc = 0
    raw = json.dumps(meta).encode()
    parts = [struct.pack(mf._HEADER, mf.MAGIC, mf.VERSION, mf.DTYPE_FLOAT32, len(layers),
                         layers[0].inputs, len(raw)), raw]
    for layer in layers:
        parts.append(struct.pack(mf._LAYER, mf.KINDS.index(layer.kind),
                                 mf.ACTIVATIONS.index(layer.activation), layer.inputs,
                                 layer.units, *layer.params))
        parts += [a for a in layer.arrays()]
        for part in parts:
            f.write(part)
            crc = crc32(part, crc)
        parts = []
    for part in parts:
        f.write(part)
        crc = crc32(part, crc)
    f.write(struct.pack("<I", crc & 0xFFFFFFFF))
