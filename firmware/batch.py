# Many samples in one call, for the server's batch command: inputs read straight
# from the request's bytes, outputs, decisions and times written straight into
# the reply frame's bins, each sample timed with ticks_us. Viper, so that a row
# costs no heap allocation and little interpretation: what the board spends per
# sample beyond the network is what limits `eval` over the serial link.
# Every buffer is read and written a byte at a time: bins inside a frame have no
# alignment, and a Cortex-M0+ faults on a word access that is not word-aligned.
import micropython
from time import ticks_add, ticks_us


@micropython.viper
def run_rows(run_steps, steps, data, rows: int, n_in: int, n_out: int, src, dst, ys, classes,
             times, threshold: int) -> int:
    # run_steps: engine.run_steps, the layer loop (passed in: batch does not import
    # the engine, which imports batch). ys: rows * n_out float32, times: rows u32,
    # little-endian; classes: a byte per row.
    # Returns the sum of the times. Only the network is timed; the copies and the
    # decision around it are written out here rather than called, for speed.
    d = ptr8(data)
    s = ptr32(src)
    y = ptr8(ys)
    c = ptr8(classes)
    t = ptr8(times)
    period = int(ticks_add(0, -1))  # ticks count modulo period + 1: a mask
    # Net.decide on float32 bits: a float's order is its magnitude's order with
    # the sign applied, so its key is +-magnitude; NaN (a magnitude above inf's)
    # never wins, as no comparison with NaN is true in Python.
    one = 1
    magnitude = (one << 31) - 1  # 0x7FFFFFFF, built at run time
    nan = ((one << 8) - 1) << 23  # inf's magnitude
    limit = threshold & magnitude  # the key of the threshold, for one output
    if (threshold >> 31) & 1:
        limit = 0 - limit
    total = 0
    r = 0
    while r < rows:
        k = 4 * n_in * r
        i = 0
        while i < n_in:
            s[i] = d[k] | (d[k + 1] << 8) | (d[k + 2] << 16) | (d[k + 3] << 24)
            k += 4
            i += 1
        t0 = int(ticks_us())
        out = run_steps(steps, src, dst)
        us = (int(ticks_us()) - t0) & period
        o = ptr32(out)
        k = 4 * n_out * r
        best = 0
        best_key = 0
        first_nan = 0
        j = 0
        while j < n_out:
            bits = o[j]
            y[k] = bits
            y[k + 1] = bits >> 8
            y[k + 2] = bits >> 16
            y[k + 3] = bits >> 24
            k += 4
            key = bits & magnitude
            is_nan = 1 if key > nan else 0
            if (bits >> 31) & 1:
                key = 0 - key
            if j == 0:
                best_key = key
                first_nan = is_nan
            elif is_nan == 0 and key > best_key:
                best = j
                best_key = key
            j += 1
        if first_nan:  # nothing compares greater than NaN
            best = 0
        elif n_out == 1:
            best = 1 if best_key > limit else 0
        c[r] = best
        k = 4 * r
        t[k] = us
        t[k + 1] = us >> 8
        t[k + 2] = us >> 16
        t[k + 3] = us >> 24
        total += us
        r += 1
    return total
