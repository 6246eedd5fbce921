# Import time and heap of firmware modules, measured from a clean interpreter: this
# file imports nothing of ANNE, so everything counted is what the import brings.
import gc
import time


def measure(modules):
    gc.collect()
    before = gc.mem_alloc()
    t0 = time.ticks_us()
    for module in modules:
        __import__(module)
    us = time.ticks_diff(time.ticks_us(), t0)
    gc.collect()
    print('{"us": %d, "heap": %d, "mem_free": %d}' % (us, gc.mem_alloc() - before, gc.mem_free()))
