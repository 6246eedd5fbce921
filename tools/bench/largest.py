"""The largest model of the family 64-h-h/2-10 that loads: by bisection, with anne.load in
a MicroPython process or through a server; and what the server's heap holds at the edge."""

import numpy as np

from anne_host import model_doc
from anne_host.client import BoardError

from nets import BenchError, family_doc, family_int8, largest_family, params


def bisect_largest(fits, step, hi=512):
    """The largest h (a multiple of ``step``) of the family for which fits(h), by bisection
    between 64-32-16-10 (fits) and 64-hi-hi/2-10 (must not: 164k floats for the default).
    Near the limit, fitting depends on how the free heap lies in pieces, so it is not
    strictly monotone in h: the answer is a size that fits, with larger ones failing
    around it."""
    lo = 32
    if not fits(lo):
        raise BenchError("not even %s fits" % "-".join(map(str, largest_family(lo))))
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return lo


def largest_on_server(client, step):
    """The largest h whose model the board's server accepts: uploaded, verified and
    loaded (activated). Each try starts from a board without a model."""
    def fits(h):
        free_without_model(client)
        try:
            client.upload(model_doc.pack(family_doc(h)), "largest")
        except BoardError as e:
            if e.code != "no_memory":
                raise
            return False
        return True

    return bisect_largest(fits, step)


def largest_bare(runner, step):
    """The largest h whose model anne.load loads and runs in the Pico heap of a plain
    interpreter: the firmware as deployed, no server (using the REPL API)."""
    return bisect_largest(lambda h: runner.fits(family_doc(h)), step)


def largest_int8(runner, step):
    """The largest h whose int8 model anne.load loads and runs in the Pico heap (as
    largest_bare, for the int8 twins)."""
    return bisect_largest(lambda h: runner.fits(family_int8(h)), step, hi=1024)


def diagnose(runner, h):
    """What the server's heap holds for the family's model of size h: its upload path
    replayed (Runner.server_load)."""
    doc = family_doc(h)
    res = runner.server_load(doc)
    res.update(model=doc["name"], params=params(doc),
               largest_array=4 * max(np.asarray(l["weights"]).size for l in doc["layers"]))
    return res


def through_server(client, doc, n_params=None):
    """Upload ``doc`` to a server holding no model, without activating it, then select it
    (loading it from the store) and run one inference: whether all of it succeeds, and
    the heap free after. An int8 ``doc`` gives its float model's ``n_params``."""
    free_without_model(client)
    out = {"name": doc["name"], "params": n_params or params(doc), "dtype": doc.get("dtype", "float32")}
    try:
        client.upload(model_doc.pack(doc), "target", activate=False)
        client.select("target")
        client.infer(np.zeros(doc["inputs"], np.float32))
    except BoardError as e:
        out.update(ok=False, error=str(e))
        return out
    out.update(ok=True, mem_free=client.hello()["mem_free"])
    return out


def free_without_model(client):
    # The heap a model may use on this server: free after deleting every model.
    for stored in client.list_models():
        client.delete(stored["name"])
    return client.hello()["mem_free"]
