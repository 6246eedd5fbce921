"""CPython stand-in for MicroPython's ``micropython`` module, so that firmware code
with plain (non-viper) paths can be exercised under CPython for quick feedback."""


def const(x):
    return x


def native(f):
    return f


def viper(f):
    return f


def kbd_intr(c):
    pass


def mem_current():
    return 0


def mem_peak():
    return 0
