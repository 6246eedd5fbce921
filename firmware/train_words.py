# Word copies for training (train.py) and its wire session (train_session.py),
# in viper: rows of float32 moved as 32-bit words, so that no float object is
# made per value.
#
# A module of its own that is imported once and kept while train and
# train_session are forgotten after each session: MicroPython keeps the native
# code of every viper function it loads until it resets, so importing these again
# with each session would leak it (about 170 bytes a session on the Unix port).
import micropython


@micropython.viper
def copy(src, at: int, dst, to: int, n: int):
    s = ptr32(src)
    t = ptr32(dst)
    i = 0
    while i < n:
        t[to + i] = s[at + i]
        i += 1


@micropython.viper
def transpose(src, rows: int, cols: int, dst):
    # dst[c][r] = src[r][c]
    s = ptr32(src)
    t = ptr32(dst)
    r = 0
    while r < rows:
        c = 0
        k = r * cols
        while c < cols:
            t[c * rows + r] = s[k + c]
            c += 1
        r += 1


@micropython.viper
def ones(dst, at: int, n: int):
    t = ptr32(dst)
    one = 127 << 23  # 1.0f
    i = 0
    while i < n:
        t[at + i] = one
        i += 1


@micropython.viper
def column(src, cols: int, c: int, rows: int, dst):
    s = ptr32(src)
    t = ptr32(dst)
    r = 0
    while r < rows:
        t[r] = s[r * cols + c]
        r += 1


@micropython.viper
def unpack(data, at: int, dst, n: int) -> int:
    # n little-endian float32 from byte `at` of data into the array dst. A bin in
    # a frame has no alignment (a Cortex-M0+ faults on an unaligned word), so it
    # is read a byte at a time. Returns the index of the first value that is not
    # finite (exponent all ones: NaN or an infinity), or -1: checked here, no
    # float object is made per value.
    s = ptr8(data)
    d = ptr32(dst)
    bad = -1
    i = 0
    k = at
    while i < n:
        w = s[k] | (s[k + 1] << 8) | (s[k + 2] << 16) | (s[k + 3] << 24)
        d[i] = w
        if bad < 0 and (w >> 23) & 0xFF == 0xFF:
            bad = i
        k += 4
        i += 1
    return bad
