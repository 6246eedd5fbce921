# A model file whose reads note the live heap, for the board-side benchmark jobs
# (anne_bench.py, server_replay.py): every read first collects the garbage and
# notes gc.mem_alloc(), and the loaders allocate each array before they read it,
# so the highest note (Watched.peak) is a load's peak of live heap.
import gc


class Watched:
    peak = 0

    def __init__(self, f):
        self.f = f

    def _note(self):
        gc.collect()
        Watched.peak = max(Watched.peak, gc.mem_alloc())

    def read(self, n=-1):
        self._note()
        return self.f.read(n)

    def readinto(self, buf):
        self._note()
        return self.f.readinto(buf)

    # The loader allocates a model's largest arrays first when it can seek (as it
    # can in a flash file): the watched file must let it, or the load measured
    # would be a different, more fragmenting one.
    def seek(self, *args):
        return self.f.seek(*args)

    def tell(self):
        return self.f.tell()

    def close(self):
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()
