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


# float32 arithmetic on bit patterns, for the optimizers' per-weight updates.
# Interpreted floats make a heap object per operation (and are double precision
# on some ports); here each operation is IEEE 754 binary32 with round to nearest
# even, subnormals included, as Keras' float32 variables compute it, with no
# object made. Results are bit for bit numpy's float32 (tests/firmware/
# test_train.py), but a NaN out is always the quiet NaN 0x7FC00000 (its sign and
# payload are the CPU's choice elsewhere too; training stops on a NaN loss).
#
# Portable between the 32-bit board and the 64-bit host (docs/KERNELS.md): fields
# are taken out with shifts and masks that read the same whether a ptr32 load
# sign-extends or not, every intermediate stays below 2^28, and constants of 2^30
# or more are built at run time.


@micropython.viper
def mul(dst, d: int, a, ka: int, b, kb: int, sb: int, n: int):
    # dst[d + i] = a[ka + i] * b[kb + i * sb] for i < n: sb = 0 multiplies by
    # one number, sb = 1 element by element (dst may be a or b, in place).
    y = ptr32(dst)
    x = ptr32(a)
    z = ptr32(b)
    one = 1
    inf = ((one << 8) - 1) << 23
    nan = ((one << 9) - 1) << 22
    i = 0
    while i < n:
        v = x[ka + i]
        c = z[kb + i * sb]
        ea = (v >> 23) & 255
        ma = v & 0x7FFFFF
        eb = (c >> 23) & 255
        mb = c & 0x7FFFFF
        s = (((v >> 31) ^ (c >> 31)) & 1) << 31
        if ea == 255 or eb == 255:
            if (ea == 255 and ma) or (eb == 255 and mb):
                r = nan
            elif (ea == 0 and ma == 0) or (eb == 0 and mb == 0):
                r = nan  # inf * 0
            else:
                r = s | inf
        elif (ea == 0 and ma == 0) or (eb == 0 and mb == 0):
            r = s  # a signed zero
        else:
            # Mantissas in [2^23, 2^24), subnormals normalized (exponent <= 0).
            if ea:
                ma |= 0x800000
            else:
                ea = 1
                while ma < 0x800000:
                    ma <<= 1
                    ea -= 1
            if eb:
                mb |= 0x800000
            else:
                eb = 1
                while mb < 0x800000:
                    mb <<= 1
                    eb -= 1
            # The 48-bit product ma * mb as hi * 2^24 + lo, lo < 2^24, from
            # 12-bit halves: every partial product is below 2^24.
            ah = ma >> 12
            al = ma & 4095
            bh = mb >> 12
            bl = mb & 4095
            mid = ah * bl + al * bh
            lo = al * bl + ((mid & 4095) << 12)
            hi = ah * bh + (mid >> 12) + (lo >> 24)
            lo &= 0xFFFFFF
            # 24 bits kept (hi is 23 or 24 bits long), the rest decides rounding.
            e = ea + eb - 126
            if hi >> 23:
                m = hi
                rem = lo
                half = 0x800000
            else:
                m = (hi << 1) | (lo >> 23)
                rem = lo & 0x7FFFFF
                half = 0x400000
                e -= 1
            if e >= 1:
                if rem > half or (rem == half and (m & 1)):
                    m += 1
                    if m >> 24:
                        m >>= 1
                        e += 1
                if e >= 255:
                    r = s | inf
                else:
                    r = s | (e << 23) | (m & 0x7FFFFF)
            else:  # below the normal range: m shifted right by 1 - e, rounded
                sh = 1 - e
                if sh > 24:
                    r = s  # under half the smallest subnormal
                else:
                    q = m >> sh
                    rb = m & ((1 << sh) - 1)
                    hp = 1 << (sh - 1)
                    if rb > hp or (rb == hp and (rem or (q & 1))):
                        q += 1  # 2^23 is the smallest normal: the bits say so
                    r = s | q
        y[d + i] = r
        i += 1


@micropython.viper
def add(dst, d: int, a, ka: int, b, kb: int, how: int, n: int):
    # dst[d + i] = a[ka + i] + b[kb + i]; how: 1 subtracts, 2 takes b[kb] for
    # every i (3: both).
    # Three bits below the mantissa (guard, round, sticky) make the one rounding
    # exact: aligning the smaller operand ORs what it shifts out into the sticky
    # bit, so the computed sum lies on the same side of every rounding boundary
    # as the true one.
    y = ptr32(dst)
    p = ptr32(a)
    q = ptr32(b)
    one = 1
    inf = ((one << 8) - 1) << 23
    nan = ((one << 9) - 1) << 22
    neg = how & 1
    sv = 0 if how & 2 else 1
    i = 0
    while i < n:
        u = p[ka + i]
        v = q[kb + i * sv]
        sa = (u >> 31) & 1
        ea = (u >> 23) & 255
        ma = u & 0x7FFFFF
        sb = ((v >> 31) & 1) ^ neg
        eb = (v >> 23) & 255
        mb = v & 0x7FFFFF
        if ea == 255 or eb == 255:
            if (ea == 255 and ma) or (eb == 255 and mb):
                r = nan
            elif ea == 255 and eb == 255:
                r = (sa << 31) | inf if sa == sb else nan  # inf - inf
            elif ea == 255:
                r = (sa << 31) | inf
            else:
                r = (sb << 31) | inf
        elif ea == 0 and ma == 0:
            if eb == 0 and mb == 0:
                r = (sa & sb) << 31  # -0 + -0 is -0, any other zero sum +0
            else:
                r = (sb << 31) | (eb << 23) | mb
        elif eb == 0 and mb == 0:
            r = u
        else:
            if ea:
                ma |= 0x800000
            else:
                ea = 1  # subnormal: no hidden bit, the smallest normal's exponent
            if eb:
                mb |= 0x800000
            else:
                eb = 1
            if eb > ea or (eb == ea and mb > ma):  # a the larger in magnitude
                t = ma
                ma = mb
                mb = t
                t = ea
                ea = eb
                eb = t
                t = sa
                sa = sb
                sb = t
            ma <<= 3
            mb <<= 3
            sh = ea - eb
            if sh > 27:
                mb = 1  # nonzero, wholly below the sticky bit
            elif sh:
                st = 1 if mb & ((1 << sh) - 1) else 0
                mb = (mb >> sh) | st
            if sa == sb:
                m = ma + mb
            else:
                m = ma - mb
            if m == 0:
                r = 0  # x - x is +0
            else:
                e = ea
                if m >> 27:
                    m = (m >> 1) | (m & 1)
                    e += 1
                while not (m >> 26) and e > 1:
                    m <<= 1
                    e -= 1
                low = m & 7
                m >>= 3
                if low > 4 or (low == 4 and (m & 1)):
                    m += 1
                    if m >> 24:
                        m >>= 1
                        e += 1
                if e >= 255:
                    r = (sa << 31) | inf
                elif m >> 23:
                    r = (sa << 31) | (e << 23) | (m & 0x7FFFFF)
                else:
                    r = (sa << 31) | m  # subnormal
        y[d + i] = r
        i += 1


@micropython.viper
def relu_back(d, a, n: int):
    # d[k] *= relu'(a[k]): 1.0 where a[k] > 0, else 0.0, as a float32 multiply
    # gives it: d unchanged, or a zero of d's sign (NaN for an infinite or NaN d).
    x = ptr32(d)
    y = ptr32(a)
    one = 1
    sign = one << 31
    nan = ((one << 9) - 1) << 22
    k = 0
    while k < n:
        v = y[k]
        if (v >> 31) & 1 or v == 0 or ((v >> 23) & 255 == 255 and v & 0x7FFFFF):
            w = x[k]
            if (w >> 23) & 255 == 255:
                x[k] = nan
            else:
                x[k] = w & sign
        k += 1


@micropython.viper
def prepare(w: ptr32, scales: ptr8, n_in: int, n_out: int):
    # bfp.prepare, bit for bit (its column shifts, then its rows: see bfp.py),
    # with bfp._align written out in the loop. Training prepares a matrix per
    # product and step (the weights change), so the call per weight that bfp
    # makes once at load cost a step about as much as a product's arithmetic.
    total = n_in * n_out
    top = 0
    i = 0
    while i < n_in:  # each column's largest exponent, then its shift
        col = 0
        k = i
        while k < total:
            e = (w[k] >> 23) & 255
            if e > col:
                col = e
            k += n_in
        scales[i] = col
        if col > top:
            top = col
        i += 1
    i = 0
    while i < n_in:
        scales[i] = top - scales[i] if scales[i] else 0
        i += 1
    exps = ptr8(int(scales) + n_in)
    k = 0
    j = 0
    while j < n_out:
        top = 0
        i = 0
        while i < n_in:
            e = (w[k + i] >> 23) & 255
            if e and e + scales[i] > top:
                top = e + scales[i]
            i += 1
        exps[j] = top
        i = 0
        while i < n_in:
            bits = w[k + i]
            e = (bits >> 23) & 255
            m = 0
            flags = ((bits >> 31) & 1) << 14  # what inf/NaN inputs need: sign, zero
            if e == 0:
                flags |= 8192  # zero (or subnormal: nothing at this scale)
            else:
                shift = top - e - scales[i] - 2  # bfp._GUARD
                if shift <= 26:
                    m = (bits & 0x7FFFFF) | 0x800000
                    if shift > 0:
                        m = (m + (1 << (shift - 1))) >> shift
                    elif shift < 0:
                        m = m << (0 - shift)
                    if (bits >> 31) & 1:
                        m = 0 - m
            mh = (m + 4096) >> 13
            w[k + i] = ((mh + 8192) << 16) | (m - (mh << 13) + 4096) | flags
            i += 1
        k += n_in
        j += 1


@micropython.viper
def through(dense, st, a, la: int, z, kz: int, sz: int, n: int, rows: int, src, dst):
    # For each of rows vectors a[b * la:][:la]: copied to src, run through
    # dense(src, dst, st) (bfp.dense: it overwrites src), its n outputs copied
    # to z[kz + b * sz:]. The loop of a product, here to spare the interpreter
    # a loop turn and two calls per vector.
    s = ptr32(a)
    x = ptr32(src)
    y = ptr32(dst)
    t = ptr32(z)
    b = 0
    while b < rows:
        k = b * la
        i = 0
        while i < la:
            x[i] = s[k + i]
            i += 1
        dense(src, dst, st)
        k = kz + b * sz
        i = 0
        while i < n:
            t[k + i] = y[i]
            i += 1
        b += 1


@micropython.viper
def grads(dense, st, d, n_out: int, j: int, k: int, rows: int, src, g, n_in: int, out, gb):
    # The weight gradients of rows j..j+k-1 (train.py, _Bfp.grads): for each,
    # column r of the deltas d (rows x n_out) to src, dense(src, g, st) (the
    # gradients' matrix bound in st: n_in weights, then the bias), the weights'
    # to out[(r - j) * n_in:], the bias' to gb[r]. The loop here spares the
    # interpreter a loop turn and three calls per row.
    s = ptr32(d)
    x = ptr32(src)
    y = ptr32(g)
    t = ptr32(out)
    b = ptr32(gb)
    r = j
    while r < j + k:
        i = 0
        while i < rows:
            x[i] = s[i * n_out + r]
            i += 1
        dense(src, g, st)
        o = (r - j) * n_in
        i = 0
        while i < n_in:
            t[o + i] = y[i]
            i += 1
        b[r] = y[n_in]
        r += 1
