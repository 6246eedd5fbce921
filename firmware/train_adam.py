# float32 division and square root on bit patterns, for Adam's update in words
# (train.py, Adam.words), beside train_words' multiply and add: the same rules
# (IEEE 754 binary32, round to nearest even, subnormals; a NaN out is 0x7FC00000;
# portable between the 32-bit board and the 64-bit host: train_words.py).
#
# A module of its own, imported when an Adam optimizer is made, so that SGD's
# training does not hold their code (about 3 kB of native code on a Pico's
# heap). Like train_words it is never dropped from the module table once
# loaded: MicroPython keeps the native code of every viper function it loads,
# so importing it again would leak it.
import micropython


@micropython.viper
def div(dst, d: int, a, ka: int, b, kb: int, n: int):
    # dst[d + i] = a[ka + i] / b[kb + i]: a restoring division gives 24 bits
    # and a round bit, the remainder the sticky bit.
    y = ptr32(dst)
    x = ptr32(a)
    z = ptr32(b)
    one = 1
    inf = ((one << 8) - 1) << 23
    nan = ((one << 9) - 1) << 22
    i = 0
    while i < n:
        v = x[ka + i]
        c = z[kb + i]
        ea = (v >> 23) & 255
        ma = v & 0x7FFFFF
        eb = (c >> 23) & 255
        mb = c & 0x7FFFFF
        s = (((v >> 31) ^ (c >> 31)) & 1) << 31
        if (ea == 255 and ma) or (eb == 255 and mb):
            r = nan
        elif ea == 255:
            r = nan if eb == 255 else s | inf  # inf / inf
        elif eb == 255:
            r = s  # finite / inf
        elif eb == 0 and mb == 0:
            r = nan if (ea == 0 and ma == 0) else s | inf  # 0 / 0; x / 0
        elif ea == 0 and ma == 0:
            r = s
        else:
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
            e = ea - eb + 127  # the exponent of a quotient in [1, 2)
            if ma < mb:
                ma <<= 1
                e -= 1
            q = 0  # 25 bits: ma / mb in [1, 2) to 24 bits, then the round bit
            k = 25
            while k:
                q <<= 1
                if ma >= mb:
                    ma -= mb
                    q |= 1
                ma <<= 1  # below 2 mb < 2^25
                k -= 1
            sh = 0 if e >= 1 else 1 - e  # below the normal range: shifted further
            if sh > 24:
                r = s  # under half the smallest subnormal
            else:
                m = q >> (sh + 1)
                rb = q & ((2 << sh) - 1)
                hp = 1 << sh
                if rb > hp or (rb == hp and (ma or (m & 1))):
                    m += 1
                if sh:
                    r = s | m  # 2^23 is the smallest normal: the bits say so
                else:
                    if m >> 24:
                        m >>= 1
                        e += 1
                    r = s | inf if e >= 255 else s | (e << 23) | (m & 0x7FFFFF)
        y[d + i] = r
        i += 1


@micropython.viper
def sqrt(dst, d: int, a, ka: int, n: int):
    # dst[d + i] = sqrt(a[ka + i]): the mantissa shifted to M of 49 or 50 bits
    # (the exponent left even), its integer square root digit by digit, two of
    # M's bits per step: 25 bits, 24 and the round bit, the remainder the sticky
    # bit. sqrt(-0) is -0, of anything else negative NaN.
    y = ptr32(dst)
    x = ptr32(a)
    one = 1
    inf = ((one << 8) - 1) << 23
    nan = ((one << 9) - 1) << 22
    i = 0
    while i < n:
        v = x[ka + i]
        e = (v >> 23) & 255
        m = v & 0x7FFFFF
        if e == 255 and m:
            r = nan
        elif e == 0 and m == 0:
            r = v  # +0 or -0
        elif (v >> 31) & 1:
            r = nan
        elif e == 255:
            r = inf
        else:
            if e:
                m |= 0x800000
            else:
                e = 1
                while m < 0x800000:
                    m <<= 1
                    e -= 1
            # v = m 2^(e - 150); M = m 2^s with e - 150 - s even.
            s = 25 if (e - 150 - 25) & 1 == 0 else 26
            root = 0
            rem = 0
            k = 24
            while k >= 0:
                t = 2 * k - s  # M's bits 2k+1, 2k are m's bits t+1, t
                p = 0
                if t >= 0:
                    p = (m >> t) & 3
                elif t == -1:
                    p = (m << 1) & 3
                rem = (rem << 2) | p  # rem <= 2 root: below 2^28
                trial = (root << 2) | 1
                root <<= 1
                if rem >= trial:
                    rem -= trial
                    root |= 1
                k -= 1
            e = ((e - 150 - s) >> 1) + 151  # root 2^((e - 150 - s) / 2), 25 bits
            q = root >> 1
            if root & 1 and (rem or (q & 1)):
                q += 1
                if q >> 24:
                    q >>= 1
                    e += 1
            r = (e << 23) | (q & 0x7FFFFF)
        y[d + i] = r
        i += 1
