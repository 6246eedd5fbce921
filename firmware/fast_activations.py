# Activations that need no arithmetic, done on float32 bits in viper, so that
# they cost almost nothing and allocate nothing. MicroPython only (viper); the
# plain versions in activations.py give the same results everywhere.
import micropython


@micropython.viper
def relu(x: ptr32, n: int):
    # Negative (sign bit set, not NaN) -> +0.0; NaN and the rest pass unchanged.
    i = 0
    while i < n:
        bits = x[i]
        if (bits >> 31) & 1 and not ((bits >> 23) & 255 == 255 and bits & 0x7FFFFF):
            x[i] = 0
        i += 1
