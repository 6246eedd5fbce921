# What a handler refuses, and the checks of a request's fields that refuse it.
# A refusal carries a stable code (PROTOCOL.md, "Errors") and a message for a person.
from micropython import const

from . import store

_ENOSPC = const(28)


class Refused(Exception):
    def __init__(self, code, message):
        self.code = code
        self.message = message


def is_int(value):
    # bool is an int subclass in CPython, not in MicroPython: refused on both.
    return isinstance(value, int) and value is not True and value is not False


def int_field(req, key):
    value = req.get(key)
    if not is_int(value):
        raise Refused("bad_request", "field '%s' is missing or not an int" % key)
    return value


def field(req, key, kind, what):
    value = req.get(key)
    if not isinstance(value, kind):
        raise Refused("bad_request", "field '%s' is missing or not %s" % (key, what))
    return value


def name_field(req):
    name = field(req, "name", str, "a str")
    try:
        return store.check_name(name)
    except ValueError as e:
        raise Refused("bad_name", str(e))


def sample(data, n):
    # A sample travels as n little-endian float32 (a msgpack bin): its bytes.
    if len(data) != 4 * n:
        raise Refused("bad_input", "a sample needs %d float32 values (%d bytes), got %d bytes"
                      % (n, 4 * n, len(data)))
    return data


def flash_error(e):
    if e.args and e.args[0] == _ENOSPC:
        return Refused("no_space", "the board's flash is full")
    return Refused("flash_error", "the board's flash refused: %s" % e)
