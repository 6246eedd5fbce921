# The yardstick for training: backpropagation written the plain-Python way
# (the AI-ANNE paper's and MicroMLP's style) -- weights as lists of lists of
# floats, a Python loop per neuron, math for the activations. Nothing from ANNE
# is used, so it measures plain MicroPython.
#
# Written to be fair, not to lose on purpose: each neuron's weights are one
# list (inner loops `s += row[i] * x[i]`); a sample's activations are lists;
# the gradient sums are lists of the same shape as the weights, accumulated over
# the batch and applied once (SGD with momentum, Keras' formula), as a careful
# hand-written trainer does.
import math


def _relu(v):
    return v if v > 0.0 else 0.0


def _softmax(y):
    top = max(y)
    e = [math.exp(v - top) for v in y]
    total = sum(e)
    return [v / total for v in e]


class Net:
    def __init__(self, layers):
        """``layers``: [(rows, bias, activation)], rows[j] the weights of unit j
        (lists), activation "relu", "linear" or "softmax" (the last layer)."""
        self.layers = layers
        self.vel = [([[0.0] * len(r) for r in rows], [0.0] * len(bias)) for rows, bias, _ in layers]

    def step(self, xs, ys, lr, momentum):
        """One SGD step on a batch: xs lists of inputs, ys class indices;
        categorical cross-entropy on the softmax output. Returns the batch loss."""
        layers = self.layers
        grads = [([[0.0] * len(r) for r in rows], [0.0] * len(bias)) for rows, bias, _ in layers]
        loss = 0.0
        n = len(xs)
        for x, y in zip(xs, ys):
            outs = [x]
            for rows, bias, act in layers:
                x = outs[-1]
                z = []
                for row, b in zip(rows, bias):
                    s = b
                    for i in range(len(x)):
                        s += row[i] * x[i]
                    z.append(s)
                if act == "relu":
                    z = [_relu(v) for v in z]
                elif act == "softmax":
                    z = _softmax(z)
                outs.append(z)
            p = outs[-1]
            loss -= math.log(p[y] if p[y] > 1e-7 else 1e-7)
            delta = [(p[j] - (1.0 if j == y else 0.0)) / n for j in range(len(p))]
            for k in range(len(layers) - 1, -1, -1):
                rows, bias, act = layers[k]
                gw, gb = grads[k]
                a = outs[k]
                for j in range(len(rows)):
                    d = delta[j]
                    g = gw[j]
                    for i in range(len(a)):
                        g[i] += d * a[i]
                    gb[j] += d
                if k:
                    prev = [0.0] * len(a)
                    for j in range(len(rows)):
                        d = delta[j]
                        row = rows[j]
                        for i in range(len(a)):
                            prev[i] += d * row[i]
                    if layers[k - 1][2] == "relu":
                        prev = [prev[i] if a[i] > 0.0 else 0.0 for i in range(len(a))]
                    delta = prev
        for (rows, bias, _), (gw, gb), (vw, vb) in zip(layers, grads, self.vel):
            for j in range(len(rows)):
                row, g, v = rows[j], gw[j], vw[j]
                for i in range(len(row)):
                    v[i] = momentum * v[i] - lr * g[i]
                    row[i] += v[i]
                vb[j] = momentum * vb[j] - lr * gb[j]
                bias[j] += vb[j]
        return loss / n
