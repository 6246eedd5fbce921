# The training commands (PROTOCOL.md, "Training"): train_begin, train_step, train_eval
# and train_end. The service imports this module for such a request and keeps it while
# a session is open; the session itself (train_session.py) lives on the service.
#
# Everything that can be refused without the training code is refused before it is
# imported (20 KB of heap, forgotten again when the session ends).
import os

from micropython import const

from . import store
from .refused import Refused, field, int_field, is_int, name_field

_MAX_BATCH = const(1024)  # rows per training step at most (a step's rows come in one request: fewer fit)
_BIN = (bytes, memoryview)


def handle(svc, req):
    cmd = req["cmd"]
    if cmd == "train_begin":
        return begin(svc, req)
    if cmd == "train_end":
        return end(svc, req)
    if cmd != "train_step" and cmd != "train_eval":
        raise Refused("unknown_command", "unknown command %r" % cmd[:40])
    field(req, "x", _BIN, "bin")  # the rows' fields, before the state
    field(req, "y", _BIN, "bin")
    session = _open(svc)
    if cmd == "train_step":
        return session.step(req["x"], req["y"])
    return session.evaluate(req["x"], req["y"])


def _open(svc):
    if not svc.training:
        raise Refused("no_training", "no training session is open: send train_begin first")
    return svc.training


def begin(svc, req):
    name = name_field(req)
    batch = int_field(req, "batch")
    if not 0 < batch <= _MAX_BATCH:
        raise Refused("bad_request", "batch must be 1 to %d rows" % _MAX_BATCH)
    kind = req.get("optimizer", "sgd")
    if kind not in ("sgd", "adam"):
        raise Refused("bad_request", "field 'optimizer' must be \"sgd\" or \"adam\"")
    lr = _number(req, "lr", None)
    momentum = _number(req, "momentum", 0.0)
    if not lr > 0 or not 0 <= momentum < 1:
        raise Refused("bad_request", "lr must be above 0, momentum 0 or more and below 1")
    loss = req.get("loss")
    if loss is not None and not isinstance(loss, str):
        raise Refused("bad_request", "field 'loss' must be a str")
    last = req.get("last")  # the layers to train, from the output; nil: all (the upper bound needs the model)
    if last is not None and (not is_int(last) or last < 1):
        raise Refused("bad_request", "field 'last' must be a whole number of layers to train, 1 or more")
    new = _new_fields(req)
    if not new:
        try:
            os.stat(store.path(name))
        except OSError:
            raise Refused("no_model", "no stored model named %r" % name)
    # An open session is discarded first, as upload_begin discards an open upload, and
    # so is a monitor session (the two are never open at once). The session gets the
    # heap: the active model is dropped for it (so a model being trained is never in
    # memory twice, and a session of any size finds the room it would find without
    # one) and brought back at its end.
    svc.monitoring = None
    previous = close(svc)
    previous = svc.active.drop() or previous
    try:
        from . import train_session

        svc.training = train_session.Session(name, new, batch, kind, lr, momentum, loss, last)
    except BaseException:
        svc.training = None
        if previous:
            svc.forget_occasional()  # the training code goes before the model comes back
            bring_back(svc, previous)
        raise
    svc.training.previous = previous
    return svc.training.describe()


def end(svc, req):
    save = req.get("save", True)
    if save is not True and save is not False:
        raise Refused("bad_request", "field 'save' must be true or false")
    session = _open(svc)
    name = session.name
    # A session that cannot be saved (diverged, no flash) is refused and stays open:
    # the host may still evaluate it, or end it without saving.
    size = session.save() if save else None
    session = None  # its arrays must go before a model is loaded in their place
    previous = close(svc)
    svc.forget_occasional()
    if save:
        bring_back(svc, name)  # the stored file of the active model is the active model
    elif previous and svc.active.net is None:  # unless one was selected meanwhile
        bring_back(svc, previous)
    return {"name": name, "saved": save, "size": size, "active": svc.active.name}


def close(svc):
    # The open session goes; returns the active model it dropped, for the caller to
    # bring back.
    if not svc.training:
        return None
    previous = svc.training.previous
    svc.training = None
    return previous


def bring_back(svc, name):
    # Make ``name`` active again; when it does not load, no model is active (hello says
    # so): the stored files are as they were.
    try:
        svc.active.activate(name)
    except Refused:
        pass


def _number(req, key, default):
    # An int or a float; ``default`` when the field is absent (None: it must be there).
    value = req.get(key, default)
    if not isinstance(value, (int, float)) or value is True or value is False:
        raise Refused("bad_request", "field '%s' is missing or not a number" % key)
    return value


def _new_fields(req):
    # (sizes, activations, seed, labels, features) of a new net, or None for a stored one.
    sizes = req.get("sizes")
    if sizes is None:
        return None
    acts = req.get("activations")
    if not isinstance(sizes, list) or not isinstance(acts, list) or len(sizes) < 2 or \
            len(acts) != len(sizes) - 1:
        raise Refused("bad_request", "a new net needs 'sizes' (inputs, then each layer's units) and "
                                     "'activations' (one per layer)")
    for n in sizes:
        if not is_int(n):
            raise Refused("bad_request", "'sizes' holds whole numbers")
    for a in acts:
        if not isinstance(a, str):
            raise Refused("bad_request", "'activations' holds names")
    seed = req.get("seed", 0)
    if not is_int(seed):
        raise Refused("bad_request", "field 'seed' must be an int")
    names = []
    for key in ("labels", "features"):
        value = req.get(key)
        if value is not None and (not isinstance(value, list) or
                                  [v for v in value if not isinstance(v, str)]):
            raise Refused("bad_request", "field '%s' must be a list of str" % key)
        names.append(value)
    labels, features = names
    if features and len(features) != sizes[0]:
        raise Refused("bad_request", "%d features for %d inputs" % (len(features), sizes[0]))
    if labels and len(labels) != max(2, sizes[-1]):
        raise Refused("bad_request", "%d labels for %d outputs" % (len(labels), sizes[-1]))
    return sizes, acts, seed, labels, features
