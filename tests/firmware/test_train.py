"""Training on the board (firmware/train.py, firmware/build.py) under the real MicroPython,
against Keras' own optimizers: the same initial weights, the same batches in the same order."""

import json

import numpy as np
import pytest

B = 4  # rows per batch
N = 16  # rows: four batches, so 100 steps are 25 epochs


def _data(n_in, n_out, loss, seed=7):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (N, n_in)).astype(np.float32)
    if loss == "categorical_crossentropy":
        y = rng.integers(0, n_out, N)
        return x, y.tolist(), np.eye(n_out, dtype=np.float32)[y]
    if loss == "binary_crossentropy":
        y = rng.integers(0, 2, (N, n_out)).astype(np.float32)
        return x, y.tolist(), y
    y = rng.normal(0, 1, (N, n_out)).astype(np.float32)
    return x, y.tolist(), y


def _initial(sizes, seed=3):
    # Glorot-uniform-like weights, [n_out][n_in] as the board keeps them; small biases.
    rng = np.random.default_rng(seed)
    out = []
    for n_in, n_out in zip(sizes, sizes[1:]):
        lim = np.sqrt(6 / (n_in + n_out))
        out.append((rng.uniform(-lim, lim, (n_out, n_in)).astype(np.float32),
                    rng.uniform(-0.1, 0.1, n_out).astype(np.float32)))
    return out


def _keras_run(keras, sizes, acts, init, loss, opt, x, y, steps, frozen=0):
    """Weights after each of ``steps`` (a list of step counts), trained with
    train_on_batch over the batches in order; and the loss before the first step.
    The first ``frozen`` layers are trainable=False."""
    model = keras.Sequential([keras.Input((sizes[0],))] +
                             [keras.layers.Dense(n, activation=a, trainable=k >= frozen)
                              for k, (n, a) in enumerate(zip(sizes[1:], acts))])
    model.set_weights([v for w, b in init for v in (w.T, b)])
    name, kw = opt
    optimizer = keras.optimizers.SGD(**kw) if name == "sgd" else keras.optimizers.Adam(**kw)
    model.compile(optimizer=optimizer, loss=loss)
    first = model.evaluate(x[:B], y[:B], batch_size=B, verbose=0)
    out = {}
    for step in range(max(steps)):
        k = step % (N // B)
        model.train_on_batch(x[k * B:(k + 1) * B], y[k * B:(k + 1) * B])
        if step + 1 in steps:
            ws = model.get_weights()
            out[step + 1] = [(ws[2 * i].T, ws[2 * i + 1]) for i in range(len(ws) // 2)]
    return first, out


_BOARD = """
import binascii, json, anne
from array import array
from anne import build, train
from anne.engine import Net
sizes, acts, init = %r, %r, %r
def net():
    layers = build.layers(sizes, acts)
    for layer, (w, b) in zip(layers, init):
        layer.weights[:] = array('f', w)
        layer.bias[:] = array('f', b)
    return Net({"name": "t"}, layers, "reference")
X, Y = %r, %r
for epochs, rows in %r:
    n = net()
    h = train.fit(n, X[:rows], Y[:rows], epochs=epochs, batch=%d, loss=%r, %s)
    # A line per run: one string of all runs (10 kB) needs a free block that the
    # heap, cut up by fit, may not have left (by chance of its layout, which even
    # the length of the import path changes).
    print(json.dumps([h[0]["loss"], [[list(l.weights), list(l.bias)] for l in n.layers],
                      [binascii.hexlify(bytes(l.weights) + bytes(l.bias)).decode() for l in n.layers]]))
"""


def _board_run(run_mpy, sizes, acts, init, loss, opt, x, y_board, steps, last=None):
    plan = [(1, B) if s == 1 else (s // (N // B), N) for s in steps]
    name, kw = opt
    args = "optimizer=%r, lr=%r" % (name, kw["learning_rate"])
    if "momentum" in kw:
        args += ", momentum=%r" % kw["momentum"]
    if last is not None:
        args += ", last=%d" % last
    code = _BOARD % (sizes, acts, [[w.ravel().tolist(), b.tolist()] for w, b in init],
                     x.tolist(), y_board, plan, B, loss, args)
    return [json.loads(line) for line in run_mpy(code).strip().splitlines()[-len(plan):]]


def _rel(a, b):
    # The largest difference, relative to the largest weight of the array.
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def _check(run_mpy, keras, sizes, acts, loss, opt, tol, steps=(1, 100)):
    init = _initial(sizes)
    x, y_board, y_keras = _data(sizes[0], sizes[-1], loss)
    first, want = _keras_run(keras, sizes, acts, init, loss, opt, x, y_keras, steps)
    got = _board_run(run_mpy, sizes, acts, init, loss, opt, x, y_board, steps)
    assert got[0][0] == pytest.approx(first, rel=1e-5)  # the loss before the first step
    for (_, layers, _), step in zip(got, steps):
        for k, ((gw, gb), (kw, kb), (iw, ib)) in enumerate(zip(layers, want[step], init)):
            moved = max(_rel(kw, iw), _rel(kb, ib))
            assert moved > 20 * tol, "step %d layer %d barely moved: the test would prove nothing" % (step, k)
            assert _rel(gw, kw) <= tol, ("weights", step, k, _rel(gw, kw))
            assert _rel(gb, kb) <= tol, ("bias", step, k, _rel(gb, kb))


SGD = ("sgd", {"learning_rate": 0.05})
MOMENTUM = ("sgd", {"learning_rate": 0.05, "momentum": 0.9})
ADAM = ("adam", {"learning_rate": 0.01})


@pytest.mark.parametrize("opt, tol", [(SGD, 1e-5), (MOMENTUM, 1e-5), (ADAM, 1e-4)], ids=["sgd", "momentum", "adam"])
@pytest.mark.parametrize("loss, acts", [
    ("categorical_crossentropy", ["relu", "softmax"]),
    ("binary_crossentropy", ["tanh", "sigmoid"]),
    ("mse", ["sigmoid", "linear"]),
], ids=["cce-softmax", "bce-sigmoid", "mse-linear"])
def test_weights_match_keras_after_1_and_100_steps(run_mpy, keras, loss, acts, opt, tol):
    sizes = [5, 7, 3] if loss != "binary_crossentropy" else [5, 7, 1]
    _check(run_mpy, keras, sizes, acts, loss, opt, tol)


@pytest.mark.parametrize("act", ["linear", "relu", "sigmoid", "tanh", "leaky_relu", "elu", "selu",
                                 "softplus", "softsign", "silu", "gelu", "exponential", "softmax"])
def test_every_trainable_hidden_activation_matches_keras(run_mpy, keras, act):
    _check(run_mpy, keras, [5, 6, 3], [act, "softmax"], "categorical_crossentropy", MOMENTUM, 1e-5)


def test_deeper_net_with_adam_and_mse_through_softmax(run_mpy, keras):
    # Two hidden layers; MSE through a softmax output takes softmax's full Jacobian.
    _check(run_mpy, keras, [6, 8, 8, 4], ["elu", "tanh", "softmax"], "mse", ADAM, 1e-4)


@pytest.mark.parametrize("opt, tol", [(MOMENTUM, 1e-5), (ADAM, 1e-4)], ids=["momentum", "adam"])
@pytest.mark.parametrize("last", [1, 2])
def test_fine_tuning_the_last_layers_matches_keras_and_leaves_the_others_bit_for_bit(run_mpy, keras, opt, tol, last):
    # Keras' trainable=False on the first layers against fit(..., last=N): the trained
    # layers as Keras trains them, the frozen ones the same bytes as before. The first
    # layer's mish has no derivative on the board: frozen, it needs none.
    sizes, acts = [5, 7, 6, 3], ["mish", "tanh", "softmax"]
    loss, steps = "categorical_crossentropy", (1, 8)
    init = _initial(sizes)
    x, y_board, y_keras = _data(sizes[0], sizes[-1], loss)
    frozen = len(acts) - last
    first, want = _keras_run(keras, sizes, acts, init, loss, opt, x, y_keras, steps, frozen=frozen)
    got = _board_run(run_mpy, sizes, acts, init, loss, opt, x, y_board, steps, last=last)
    assert got[0][0] == pytest.approx(first, rel=1e-5)
    for (_, layers, raw), step in zip(got, steps):
        for k, ((gw, gb), (kw, kb), (iw, ib)) in enumerate(zip(layers, want[step], init)):
            if k < frozen:
                assert raw[k] == (iw.astype("<f4").tobytes() + ib.astype("<f4").tobytes()).hex(), (step, k)
                assert np.array_equal(kw, iw) and np.array_equal(kb, ib)  # Keras froze it too
                continue
            assert max(_rel(kw, iw), _rel(kb, ib)) > 20 * tol, "step %d layer %d barely moved" % (step, k)
            assert _rel(gw, kw) <= tol, ("weights", step, k, _rel(gw, kw))
            assert _rel(gb, kb) <= tol, ("bias", step, k, _rel(gb, kb))


def test_fine_tuning_takes_no_training_memory_for_the_frozen_layers(run_mpy):
    # 16-64-64-8 with momentum, batch 32: with last=1 the Trainer holds the last layer's
    # velocity and the buffers of one batch, nothing per frozen parameter; trained whole,
    # it holds a velocity for every parameter as well. (A 1 MB heap: the test imports the
    # firmware's sources, whose compiling a board never does; what the Trainer allocates
    # is the same.)
    out = run_mpy.json("""
import gc, json
from anne import build, train
net = build.new([16, 64, 64, 8], ["relu", "relu", "softmax"], seed=1)
def held(last):
    gc.collect()
    before = gc.mem_alloc()
    tr = train.Trainer(net, 32, train.SGD(0.01, 0.9), last=last)
    gc.collect()
    used = gc.mem_alloc() - before
    frozen = [tr.state[l] for l in range(tr.first)] + [tr.z[l] for l in range(1, tr.first + 1)]
    return used, [v for v in frozen if v]
whole, _ = held(None)
last1, kept = held(1)
print(json.dumps([whole, last1, len(kept), net.param_count()]))
""", heap=1 << 20)
    whole, last1, kept, params = out
    assert kept == 0  # no optimizer state, no pre-activations of a frozen layer
    trained = 64 * 8 + 8
    batch = 32 * 4 * (64 + 8 + 8 + 8 + 64)  # inputs (and frozen outputs), outputs, logits, deltas
    scratch = 4 * (64 + 1) * 32  # the weight gradients' matrix (transposed inputs and ones)
    assert last1 <= 4 * trained + batch + scratch + 4096, last1  # 4 KB: the objects and small rows
    assert whole - last1 >= 4 * (params - trained)  # at least the frozen layers' velocities


def _refused(run_mpy, code):
    return run_mpy("import anne\nfrom anne import build, train\n"
                   "try:\n" + "".join(" " + line + "\n" for line in code.splitlines()) +
                   " print('NOT REFUSED')\nexcept (ValueError, ArithmeticError) as e:\n print('refused:', e)\n")


def test_what_cannot_be_trained_is_refused_with_a_message(run_mpy):
    out = _refused(run_mpy, "n = build.new([3, 4, 2], ['mish', 'softmax'])\n"
                            "train.fit(n, [[1, 2, 3]], [0])")
    assert "refused: layer 0: activation mish cannot be trained" in out
    out = _refused(run_mpy, "n = build.new([3, 2], ['relu'])\n"
                            "train.fit(n, [[1, 2, 3]], [[0, 1]], loss='categorical_crossentropy')")
    assert "refused: categorical_crossentropy needs a softmax output" in out
    out = _refused(run_mpy, "n = build.new([3, 2], ['softmax'])\n"
                            "train.fit(n, [[1, 2, 3]], [0], optimizer='rmsprop')")
    assert "refused: unknown optimizer 'rmsprop'" in out
    for last in (0, 3, "1"):
        out = _refused(run_mpy, "n = build.new([3, 4, 2], ['relu', 'softmax'])\n"
                                "train.fit(n, [[1, 2, 3]], [0], last=%r)" % (last,))
        assert "refused: last=%r: the layers to train, counted from the output, are 1 to 2" % (last,) in out, out


def test_bad_data_is_refused_before_any_step(run_mpy):
    base = "n = build.new([3, 4, 2], ['relu', 'softmax'], seed=2)\nw = list(n.layers[0].weights)\n"
    cases = {
        "[[1, 2, 3], [1, float('nan'), 3]], [0, 1]": "row 1 holds nan",
        "[[1, 2, 3], [1, 2]], [0, 1]": "row 1 has 2 values; model ? takes 3",
        "[[1, 2, 3], [4, 5, 6]], [0, 2]": "label 2 of row 1 is not a class index 0..1",
        "[[1, 2, 3], [4, 5, 6]], [0]": "2 input rows but 1 labels",
    }
    for args, message in cases.items():
        out = _refused(run_mpy, base + "try:\n train.fit(n, %s, epochs=3, lr=0.5)\n"
                                       "finally:\n print('same', w == list(n.layers[0].weights))" % args)
        assert "refused: " + message in out and "same True" in out, out


def test_a_diverging_run_stops_before_the_bad_step_and_saves_nothing(run_mpy, tmp_path):
    # Steps update the net in place (no 4 B/param copy): a diverging run stops before
    # the step whose loss is not finite, the net holds finite weights, and the stored
    # model is untouched.
    out = run_mpy(
        "import anne, json\nfrom anne import build, train\n"
        "n = build.new([2, 8, 1], ['exponential', 'linear'], seed=1)\n"
        "train.save(n, 'd')\n"
        "try:\n train.fit(n, [[3, 4], [4, 5]] * 4, [1e6, -1e6] * 4, epochs=50, batch=2, lr=1.0)\n"
        "except ArithmeticError as e:\n print('refused:', e)\n"
        "w = [v for l in n.layers for v in list(l.weights) + list(l.bias)]\n"
        "print('finite', all(-3.5e38 < v < 3.5e38 for v in w))\n"
        "m = anne.load('d', kernel='reference')\n"
        "print('stored', [list(l.weights) for l in m.layers] == [list(l.weights) for l in build.new([2, 8, 1], ['exponential', 'linear'], seed=1).layers])\n",
        cwd=tmp_path)
    assert "refused: training diverged in epoch" in out and "nothing saved" in out, out
    assert "finite True" in out and "stored True" in out, out


def test_save_replaces_the_stored_model_and_loads_with_the_same_predictions(run_mpy, tmp_path):
    out = run_mpy.json(
        "import anne, json, os\nfrom anne import build, train\n"
        "n = build.new([4, 6, 3], ['tanh', 'softmax'], seed=5, labels=['a', 'b', 'c'])\n"
        "X = [[i * 0.1, 1 - i * 0.05, (i % 3) - 1, 0.5] for i in range(12)]\n"
        "Y = [i % 3 for i in range(12)]\n"
        "train.save(n, 'mine')\n"
        "h = train.fit(n, X, Y, epochs=30, batch=4, lr=0.1, optimizer='adam')\n"
        "train.save(n, 'mine')\n"
        "m = anne.load('mine')\n"
        "r = anne.load('mine', kernel='reference')\n"
        "print(json.dumps([h[0]['loss'], h[-1]['loss'], h[-1]['accuracy'], [n.predict(x) for x in X],"
        " [m.predict(x) for x in X], [r.predict(x) for x in X], m.predict_class(X[0]), sorted(os.listdir('models'))]))",
        cwd=tmp_path)
    first, last, acc, trained, loaded, loaded_ref, label, files = out
    assert last < first and acc > 0.5  # it learned
    assert loaded_ref == trained  # the same float32 weights, bit for bit
    np.testing.assert_allclose(loaded, trained, rtol=1e-5, atol=1e-6)  # the fast kernel
    assert label in ("a", "b", "c")
    assert files == ["mine.anne"]  # no temporary file left


def test_new_builds_a_glorot_net_that_predicts(run_mpy):
    out = run_mpy.json(
        "import json\nfrom anne import build\n"
        "n = build.new([16, 64, 8], ['relu', 'softmax'], seed=9)\n"
        "m = build.new([16, 64, 8], ['relu', 'softmax'], seed=9)\n"
        "y = n.predict([0.5] * 16)\n"
        "w = list(n.layers[0].weights)\n"
        "print(json.dumps([y, sum(y), max(abs(v) for v in w), sum(w) / len(w), list(n.layers[0].bias),"
        " w == list(m.layers[0].weights), w == list(build.new([16, 64, 8], ['relu', 'softmax'], seed=8).layers[0].weights)]))")
    y, total, top, mean, bias, same_seed, other_seed = out
    assert len(y) == 8 and total == pytest.approx(1, abs=1e-5)
    limit = (6 / (16 + 64)) ** 0.5
    assert 0.9 * limit < top <= limit and abs(mean) < 0.05  # uniform in +-limit
    assert bias == [0.0] * 64
    assert same_seed and not other_seed


def test_shuffle_reorders_repeatably_and_trains(run_mpy):
    out = run_mpy.json(
        "import json\nfrom anne import build, train\n"
        "X = [[i * 0.1, (i % 2) * 1.0] for i in range(10)]\nY = [i % 2 for i in range(10)]\n"
        "def run(seed):\n"
        " n = build.new([2, 4, 2], ['tanh', 'softmax'], seed=1)\n"
        " train.fit(n, X, Y, epochs=3, batch=3, lr=0.2, shuffle=seed)\n"
        " return list(n.layers[0].weights)\n"
        "print(json.dumps([run(4) == run(4), run(4) == run(5), run(False) == run(4)]))")
    assert out == [True, False, False]


def test_the_repl_api_makes_fits_evaluates_and_saves_a_net(run_mpy, tmp_path):
    # anne.new, net.fit, net.evaluate, net.save and anne.load, as a person types them.
    (tmp_path / "models").mkdir()
    out = run_mpy.json("""
import json, anne
X = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]] * 4
Y = [0, 1, 1, 0] * 4
net = anne.new([2, 8, 2], ["tanh", "softmax"], seed=3, labels=["even", "odd"])
history = net.fit(X, Y, epochs=150, batch=4, lr=0.05, optimizer="adam")
score = net.evaluate(X, Y)
net.save("xor")
again = anne.load("xor", "reference")
print(json.dumps({"first": history[0]["loss"], "last": history[-1]["loss"], "epochs": len(history),
                  "accuracy": score["accuracy"], "same": again.predict(X[1]) == net.predict(X[1]),
                  "label": again.predict_class([1.0, 0.0]), "models": anne.models()}))
""", cwd=tmp_path)
    assert out["epochs"] == 150 and out["last"] < 0.5 * out["first"]
    assert out["accuracy"] == 1.0 and out["same"] and out["label"] == "odd"
    assert out["models"] == ["xor"]


# The optimizers' float32 arithmetic on bit patterns (firmware/train_words.py,
# train_adam.py): bit for bit numpy's float32 on random operands and on the edges
# (zeros, subnormals, the ends of the normal range, inf and NaN). NaN's bits are
# not compared (a CPU's choice too). Operands are made on the board side
# by a xorshift generator (a few thousand would not fit a command line), in kinds:
# any bits; exponents close together (cancellation, rounding ties); subnormals;
# products near the bottom and the top of the range; and every pair of edge values.
_F32_OPS = """
import binascii
from array import array
from anne.train_adam import div, sqrt
from anne.train_words import add, mul
s = 0x2545F491
def rnd():
    global s
    s ^= (s << 13) & 0xFFFFFFFF; s ^= s >> 17; s ^= (s << 5) & 0xFFFFFFFF
    return s
def bits(sign, e, m):
    return (sign << 31) | (e << 23) | (m & 0x7FFFFF)
EDGE = [0, 1 << 31, 1, 0x7FFFFF, 0x800000, 0x7F7FFFFF, 0x3F800000, 0x3F7FFFFF, 0x3F800001,
        0x7F800000, 0xFF800000, 0x7FC00000, 0x00400000, 0x33800000, 0x0B800000, 0x3F000000]
EDGE += [v | (1 << 31) for v in EDGE[2:10]]
A, Bs = [], []
for u in EDGE:
    for v in EDGE:
        A.append(u); Bs.append(v)
for k in range(%d):
    kind = k %% 6
    r = rnd()
    if kind == 0:
        u, v = r, rnd()
    elif kind == 1:  # exponents within a few binades: cancellation, ties
        e = 1 + r %% 254
        u = bits(r >> 31, e, rnd())
        e2 = e + (rnd() %% 5) - 2
        v = bits(rnd() & 1, min(max(e2, 0), 254), (u & 0x7FFFFF) ^ (rnd() & (0xFF >> (rnd() %% 8))))
    elif kind == 2:  # subnormals against anything small
        u = bits(r & 1, 0, rnd())
        v = bits(rnd() & 1, rnd() %% 30, rnd())
    elif kind == 3:  # products at the bottom of the range: rounding into subnormals
        e = 1 + r %% 120
        u = bits(r >> 31, e, rnd())
        v = bits(rnd() & 1, max(1, 127 - e - 30 + rnd() %% 40), rnd())
    elif kind == 4:  # products at the top: overflow to inf
        e = 128 + r %% 126
        u = bits(r >> 31, e, rnd())
        v = bits(rnd() & 1, max(1, 254 - e + 127 - 5 + rnd() %% 10), rnd())
    else:  # far apart: the sticky bit
        e = 30 + r %% 200
        u = bits(r >> 31, e, rnd())
        v = bits(rnd() & 1, e - 20 - rnd() %% 15, rnd())
    A.append(u); Bs.append(v)
n = len(A)
a = array("I", A); b = array("I", Bs)
def new():
    return array("I", bytes(4 * n))
p, q, d, o, r, h, g = new(), new(), new(), new(), new(), new(), new()
mul(p, 0, a, 0, b, 0, 1, n)
add(q, 0, a, 0, b, 0, 0, n)
add(d, 0, a, 0, b, 0, 1, n)
div(o, 0, a, 0, b, 0, n)
sqrt(r, 0, a, 0, n)
for i in range(n):  # the scalar forms, one call per pair
    mul(h, i, a, i, b, i, 0, 1)
    add(g, i, a, i, b, i, 3, 1)
c = array("I", a)
mul(c, 0, c, 0, b, 0, 0, n)  # in place, one scalar for the whole row
e = array("I", a)
add(e, 0, e, 0, b, 1, 2, n)
for x in (a, b, p, q, d, o, r, h, g, c, e):
    print(binascii.hexlify(bytes(x)).decode())
"""


def test_float32_words_are_numpys_float32_bit_for_bit(run_mpy):
    out = run_mpy(_F32_OPS % 6000, heap=8 << 20).split()
    a, b, p, q, d, o, r, h, g, c, e = (np.frombuffer(bytes.fromhex(x), "<u4") for x in out[-11:])
    fa, fb = a.view(np.float32), b.view(np.float32)
    with np.errstate(all="ignore"):
        want = {"mul": fa * fb, "add": fa + fb, "sub": fa - fb, "div": fa / fb, "sqrt": np.sqrt(fa),
                "mul one": fa * fb, "sub one": fa - fb, "mul row": fa * fb[0], "add row": fa + fb[1]}
    for name, got in (("mul", p), ("add", q), ("sub", d), ("div", o), ("sqrt", r), ("mul one", h),
                      ("sub one", g), ("mul row", c), ("add row", e)):
        w = want[name]
        nan = np.isnan(w)
        assert np.array_equal(np.isnan(got.view(np.float32)), nan), name  # NaN's bits are the CPU's
        bad = np.nonzero(got[~nan] != w.view("<u4")[~nan])[0]
        assert not len(bad), "%s: %s" % (name, [(hex(x), hex(y), hex(g), hex(v)) for x, y, g, v in zip(
            a[~nan][bad][:5], b[~nan][bad][:5], got[~nan][bad][:5], w.view("<u4")[~nan][bad][:5])])
    # The kinds meant to reach them do: subnormal and infinite results, ties.
    assert (np.abs(want["mul"]) < np.finfo(np.float32).tiny).sum() > 100
    assert np.isinf(want["mul"]).sum() > 100
    assert (want["sub"] == 0).sum() > 10
    assert (np.abs(want["div"]) < np.finfo(np.float32).tiny).sum() > 100
    assert np.isinf(want["div"]).sum() > 100
    assert ((np.abs(fa) < np.finfo(np.float32).tiny) & (fa > 0)).sum() > 100  # sqrt of subnormals


def test_relu_back_is_the_float32_product_with_relus_derivative(run_mpy):
    vals = [0.0, -0.0, 1.5, -2.0, 1e-45, -1e-45, float("inf"), -float("inf"), float("nan"), 3.0e38]
    out = run_mpy.json("""
import json
from array import array
from anne.train_words import relu_back
v = [float(x) for x in %r]
d = array("f", [x for x in v for y in v]); a = array("f", [y for x in v for y in v])
relu_back(d, a, len(d))
print(json.dumps([str(x) for x in d]))
""" % [repr(x) for x in vals])
    with np.errstate(all="ignore"):
        d = np.array([x for x in vals for y in vals], np.float32)
        a = np.array([y for x in vals for y in vals], np.float32)
        want = d * np.where(a > 0, np.float32(1), np.float32(0))
    got = np.array([float(s) for s in out], np.float32)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    assert np.array_equal(got[ok].view("<u4"), want[ok].view("<u4"))


def test_train_words_prepare_converts_a_matrix_as_bfp_prepare_does(run_mpy):
    # Signs, zeros, subnormals, and columns and rows of very different scales
    # (the column shifts, and terms that round or vanish against a row's top).
    rng = np.random.default_rng(5)
    mats = []
    for n_in, n_out in ((7, 5), (33, 17), (64, 3), (1, 9)):
        w = (rng.normal(0, 1, (n_out, n_in)) * 2.0 ** rng.integers(-40, 40, (n_out, n_in))).astype(np.float32)
        w[rng.random((n_out, n_in)) < 0.15] = 0
        w[rng.random((n_out, n_in)) < 0.05] = np.float32(1e-40)  # subnormal
        w[:, 0] *= np.float32(2.0 ** -60)  # a column far below the others
        mats.append((n_in, n_out, w.ravel().view("<u4").tolist()))
    out = run_mpy.json("""
import binascii, json
from array import array
from anne import bfp, train_words
class L:
    pass
out = []
for n_in, n_out, bits in %r:
    a = array("I", bits); b = array("I", bits)
    lay = L(); lay.inputs, lay.units, lay.weights = n_in, n_out, a
    s = bfp.prepare(lay)
    t = bytearray(n_in + n_out + 3)
    train_words.prepare(b, t, n_in, n_out)
    out.append([bytes(a) == bytes(b), bytes(s) == bytes(t[:n_in + n_out]), bytes(a) != bytes(array("I", bits))])
print(json.dumps(out))
""" % mats)
    assert out == [[True, True, True]] * len(mats)
