# The data sets stored on the board's flash (protocol/DATA_FORMAT.md): one file per
# data set, NAME.data, in a folder of their own beside the models' (so never listed,
# counted or loaded as models). Read at the REPL (anne.data, net.fit("NAME")) and by
# the commands of data_commands.py; imported when asked for and forgotten after
# (code is heap).
#
#   >>> X, Y = anne.data("iris")        # rows of inputs and of targets, two float32 arrays
#   >>> net.fit(X, Y, epochs=20)        # or net.fit("iris", epochs=20)
import os
import sys

from . import store
from .protocol import datafile

ROOT = "data" if sys.platform in ("linux", "darwin") else "/data"
SUFFIX = ".data"
UPLOAD_FILE = ROOT + "/.upload"  # a dot: never a data set's name


def path(name):
    """The file of the data set ``name``; ValueError for a name that is not one (the
    rules of model names: letters, digits, '_', '-', '.', 1 to 32, no leading dot)."""
    try:
        store.check_name(name)
    except ValueError as e:
        raise ValueError(str(e).replace("model", "data set"))
    return ROOT + "/" + name + SUFFIX


def names():
    """The stored data sets' names, sorted."""
    try:
        files = os.listdir(ROOT)
    except OSError:
        return []
    out = []
    for f in files:
        stem = f[:-len(SUFFIX)]
        if f.endswith(SUFFIX) and stem:
            try:
                out.append(store.check_name(stem))
            except ValueError:
                pass  # another tool's file: not a data set
    out.sort()
    return out


def unknown(name):
    # What a missing data set's error says: which ones are stored.
    return "no stored data set named %r; stored: %s" % (name, ", ".join(names()) or "none")


def open_file(name):
    """The stored data set's file, open for reading; OSError naming the stored ones."""
    p = path(name)
    try:
        return open(p, "rb")
    except OSError as e:
        raise OSError(e.args[0] if e.args else 2, unknown(name))


class Rows:
    """Rows of ``width`` values in one flat float32 array, as net.fit takes X and Y:
    len() rows, rows[r] a memoryview of row r (no list or float object per row)."""

    def __init__(self, flat, width, names=None):
        self.flat, self.width = flat, width
        self.names = names  # the features of X, the classes of Y (the file's metadata)

    def __len__(self):
        return len(self.flat) // self.width

    def __getitem__(self, r):
        if not 0 <= r < len(self):
            raise IndexError(r)  # ends iteration
        return memoryview(self.flat)[r * self.width:(r + 1) * self.width]


def load(name):
    """(X, Y): the stored data set's inputs and targets as Rows, every value and the
    CRC checked. ValueError for a damaged file, OSError for a missing one."""
    with open_file(name) as f:
        try:
            h, x, t = datafile.load(f)
        except ValueError as e:
            raise ValueError("data set %s: %s" % (name, e))
    Y = Rows(t, h.outputs, h.meta.get("labels"))
    Y.targets = h.targets
    return Rows(x, h.inputs, h.meta.get("features")), Y


def misfit(net, inputs, outputs, labels, targets, loss):
    """Why rows of ``inputs`` inputs and ``outputs`` targets of the kind ``targets`` (and
    the classes ``labels``) cannot train ``net`` with ``loss``, or None when they can."""
    if inputs != net.inputs or outputs != net.outputs:
        return "the data set has %d inputs and %d targets per row; model %s takes %d inputs and gives %d outputs" % (
            inputs, outputs, net.name or "?", net.inputs, net.outputs)
    if labels and net.labels and list(labels) != list(net.labels):
        # The targets' order is the classes': another order would teach the wrong class.
        return "the data set's classes are %s; model %s's are %s" % (
            ", ".join(labels), net.name or "?", ", ".join(net.labels))
    if targets == "values" and loss != "mse":
        return "a data set of values trains with the mse loss, not %s" % loss
    return None


def arrays(net, X, Y, loss):
    """(inputs, targets) flat float32 arrays for train.fit from a stored data set: its
    name, or anne.data's (X, Y). The arrays themselves: no copy is made."""
    if isinstance(X, str):
        X, Y = load(X)
    why = misfit(net, X.width, Y.width, Y.names, getattr(Y, "targets", "values"), loss)
    if why:
        raise ValueError(why)
    return X.flat, Y.flat
