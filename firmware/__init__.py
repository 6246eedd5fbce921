# ANNE on the board: the REPL API.
#
#   >>> import anne
#   >>> anne.models()                     # the stored models: ['iris3', 'iris6']
#   >>> net = anne.load("iris6")          # from the model store on flash
#   >>> net.predict([5.9, 3.0, 5.1, 1.8])  # raw measurements: scaling is in the model
#   >>> net.predict_class([5.9, 3.0, 5.1, 1.8])
#   >>> net.summary()
#   >>> net.show([5.9, 3.0, 5.1, 1.8])     # every layer's outputs, a bar per neuron
#   >>> net.trace([5.9, 3.0, 5.1, 1.8])    # ... and pre-activations, as numbers
#   >>> net = anne.new([4, 8, 3], ["relu", "softmax"], seed=1)   # untrained, to fit
#   >>> net.fit(X, Y, epochs=20, batch=8, lr=0.05, optimizer="adam"); net.save("mine")
#   >>> X, Y = anne.data("iris")         # a data set stored by anne-host upload-data
#   >>> anne.monitor()                    # condition monitoring as monitor.json says
#   >>> anne.events()                     # its log, newest first
# Nothing is imported until load() is called, so `import anne` costs almost no RAM.


def load(name, kernel=None):
    """Load a model by store name, or from a file path (any name containing '/')."""
    from . import store
    from .engine import Net
    from .kernels import DEFAULT
    from .protocol import modelfile

    path = name if "/" in name else store.path(name)
    try:
        f = open(path, "rb")
    except OSError as e:
        if "/" in name:
            raise
        # The name is checked: the model is not stored. Say which are.
        raise OSError(e.errno, "no model %r on the board; stored: %s" % (name, ", ".join(models()) or "none"))
    with f:
        meta, layers = modelfile.load(f)
    net = Net(meta, layers, kernel or DEFAULT)
    net.path = path  # for trace(), which reads the weights as stored
    return net


def models():
    """The names of the models stored on the board, for load()."""
    from . import listing

    return listing.names()


def data(name=None):
    """The stored data set ``name`` (anne-host upload-data) as (X, Y), its rows of inputs
    and of targets, for net.fit(X, Y); without a name, the stored data sets' names."""
    from . import datasets

    return datasets.load(name) if name is not None else datasets.names()


def new(sizes, activations, seed=0, **meta):
    """An untrained net of layer widths ``sizes`` (inputs first) and one activation per
    layer, Glorot-uniform weights from ``seed``; name, labels, features by keyword."""
    from .build import new as build

    return build(sizes, activations, seed, **meta)


def monitor(config=None, duration_ms=None, quiet=False):
    """Run the condition monitor: ``config`` a dict or a JSON file's path (default
    monitor.json), for ``duration_ms`` or until Ctrl-C; prints a line per window
    unless ``quiet``. Returns the Monitor (its log, its rules' states)."""
    from .monitoring import monitor

    return monitor(config, duration_ms, quiet)


def events(newest=None):
    """The monitor's logged events, newest first: (sequence, ms, class, action bits, outputs)."""
    from .eventlog import events

    return events(newest)


def boot():
    """What main.py runs: the monitor if monitor.json asks for it at boot, then the server."""
    import sys

    from .monitoring import at_boot

    at_boot()
    for name in ("monitoring", "eventlog"):  # code is heap: the server's now
        sys.modules.pop("anne." + name, None)
        globals().pop(name, None)
    from . import server

    server.run()
