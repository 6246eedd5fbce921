# The model store's folder as it is read: every *.anne file, model names and foreign
# ones (files with other names, left by Thonny or mpremote: listed, deletable, never
# loaded), and the pages of the protocol's `list`. Apart from store.py because the
# REPL's anne.load needs only the store. The server keeps it imported: importing it
# for a request needs room for its code, which a model at the heap's edge had taken.
import os

from .store import ROOT, SUFFIX, check_name

_DIR = 0x4000  # ilistdir's type of a folder


def is_name(name):
    try:
        check_name(name)
    except ValueError:
        return False
    return True


def stems():
    """Every file in the store named *.anne, as the name before the suffix (model
    names and foreign ones), one at a time: nothing grows with the store."""
    try:
        if hasattr(os, "ilistdir"):
            entries = os.ilistdir(ROOT)
        else:  # CPython, where the tests run the REPL API too
            entries = [(e.name, _DIR * e.is_dir()) for e in os.scandir(ROOT)]
    except OSError:
        return
    for entry in entries:
        name = entry[0]
        if entry[1] != _DIR and name.endswith(SUFFIX) and len(name) > len(SUFFIX):
            yield name[: -len(SUFFIX)]


def count():
    n = 0
    for _ in stems():
        n += 1
    return n


def names():
    """The stored models' names, sorted (foreign files left out)."""
    return sorted(s for s in stems() if is_name(s))


def foreign_path(name):
    """The path of the store's file ``name`` + SUFFIX when it exists and ``name`` is
    not a model name, else None. Only a name the folder itself lists matches, so
    no name (a path, a NUL) reaches any other file."""
    for stem in stems():
        if stem == name:
            return ROOT + "/" + stem + SUFFIX
    return None


def page(after, most):
    """The first ``most`` names (model and foreign) that sort after ``after``, sorted,
    and whether more follow. Only the page's names are held while the folder is read."""
    found = []
    more = False
    for name in stems():
        if name <= after:
            continue
        if len(found) == most:
            more = True
            if name > found[-1]:
                continue
            found.pop()
        i = len(found)
        while i and found[i - 1] > name:
            i -= 1
        found.insert(i, name)
    return found, more


def entry(name, active, buf, probe):
    """The `list` entry of the store's file ``name``, or None if it has gone."""
    try:
        with open(ROOT + "/" + name + SUFFIX, "rb") as f:
            dtype = probe(f, buf)  # a damaged file is no model: nil
            size = f.seek(0, 2)
    except OSError:
        return None
    foreign = not is_name(name)
    return {"name": name, "size": size, "dtype": dtype, "active": not foreign and name == active,
            "foreign": foreign}
