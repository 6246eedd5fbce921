# Many samples in one call, for the server's batch command: inputs read straight
# from the request's bytes, outputs and decisions written straight into the
# reply's arrays, each sample timed with ticks_us. Viper, so that a row costs
# no heap allocation and little interpretation: what the board spends per
# sample beyond the network is what limits `eval` over the serial link.
import micropython
from time import ticks_diff, ticks_us

from .engine import layers


@micropython.viper
def _decide(o: ptr32, n_out: int, threshold: int) -> int:
    # Net.decide on float32 bits: a float's order is its magnitude's order with
    # the sign applied, so compare keys (NaN never wins, as in Python).
    one = 1
    magnitude = (one << 31) - 1  # 0x7FFFFFFF, built at run time
    nan = ((one << 8) - 1) << 23
    if n_out == 1:
        bits = o[0]
        if bits & magnitude > nan:
            return 0
        key = bits & magnitude
        if (bits >> 31) & 1:
            key = 0 - key
        limit = threshold & magnitude
        if (threshold >> 31) & 1:
            limit = 0 - limit
        return 1 if key > limit else 0
    best = 0
    best_key = 0
    j = 0
    while j < n_out:
        bits = o[j]
        key = bits & magnitude
        if (bits >> 31) & 1:
            key = 0 - key
        if j == 0:
            best_key = key
            if bits & magnitude > nan:
                return 0  # NaN first: nothing compares greater (Net.decide)
        elif bits & magnitude <= nan and key > best_key:
            best = j
            best_key = key
        j += 1
    return best


@micropython.viper
def run_rows(steps, data, rows: int, n_in: int, n_out: int, src, dst, ys, classes,
             times, threshold: int) -> int:
    d = ptr8(data)  # a bin inside the request frame: not word-aligned, so bytes
    s = ptr32(src)
    y = ptr32(ys)
    c = ptr8(classes)
    t = ptr32(times)
    total = 0
    r = 0
    while r < rows:
        k = 4 * n_in * r
        i = 0
        while i < n_in:
            s[i] = d[k] | (d[k + 1] << 8) | (d[k + 2] << 16) | (d[k + 3] << 24)
            k += 4
            i += 1
        t0 = ticks_us()
        out = layers(steps, src, dst)
        us = int(ticks_diff(ticks_us(), t0))
        o = ptr32(out)
        j = 0
        while j < n_out:
            y[r * n_out + j] = o[j]
            j += 1
        c[r] = int(_decide(o, n_out, threshold))
        t[r] = us
        total += us
        r += 1
    return total
