# pull (PROTOCOL.md, "Training"): a stored model file, a chunk at a time; the host joins
# the chunks and checks the file's CRC. Imported for the request and forgotten after it.
import os

from micropython import const

from . import store
from .refused import Refused, int_field, name_field

_CHUNK = const(3072)  # bytes of a stored file per reply: with its keys, well inside a frame


def handle(svc, req):
    offset = int_field(req, "offset")
    if offset < 0:
        raise Refused("bad_request", "field 'offset' must be 0 or more")
    path = store.path(name_field(req))
    try:
        size = os.stat(path)[6]
    except OSError:
        raise Refused("no_model", "no stored model named %r" % req["name"])
    if offset > size:
        raise Refused("bad_offset", "offset %d is past the file's %d bytes" % (offset, size))
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(min(_CHUNK, size - offset))
    return {"size": size, "offset": offset, "data": data}
