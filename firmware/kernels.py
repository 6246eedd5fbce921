# Dense-layer kernels: y[j] = b[j] + sum_i w[j*n_in + i] * x[i], for j < n_out.
# Weights are row-major [unit][input] (see protocol/MODEL_FORMAT.md). Kernels check
# nothing: the loader has proved the shapes, and the engine sized the buffers.


def dense_reference(w, b, x, y, n_in, n_out):
    # Plain interpreted floats: the yardstick every fast kernel is tested against.
    k = 0
    for j in range(n_out):
        s = 0.0
        for i in range(n_in):
            s += w[k + i] * x[i]
        y[j] = s + b[j]
        k += n_in


KERNELS = {"reference": dense_reference}
DEFAULT = "reference"
