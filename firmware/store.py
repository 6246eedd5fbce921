# The model store: one file per model in a folder on the board's flash.
#
# On a board the folder is /models. The Unix port (the virtual Pico) runs inside
# a folder that stands for the flash, so there the path is relative to it.
# Reading the folder (listing, counting, foreign files) is in listing.py, imported
# only for the requests that need it.
import os
import sys

ROOT = "models" if sys.platform in ("linux", "darwin") else "/models"
SUFFIX = ".anne"
MAX_NAME = 32
TRAIN_TMP = ROOT + "/.train"  # train.save writes here, then renames over the model
_ALLOWED = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-."


def check_name(name):
    """Model names are names, not paths: letters, digits, '_', '-', '.', no leading
    dot, at most MAX_NAME characters. Raises ValueError saying what is wrong."""
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
        raise ValueError("a model name has 1 to %d characters" % MAX_NAME)
    if name[0] == ".":
        raise ValueError("a model name may not start with '.'")
    for c in name:
        if c not in _ALLOWED:
            raise ValueError("a model name may hold only letters, digits, '_', '-' and '.'")
    return name


def path(name):
    return ROOT + "/" + check_name(name) + SUFFIX


def remove(path):
    try:
        os.remove(path)
    except OSError:
        pass  # already gone: nothing to clean


def flash_free():
    """Bytes free on the store's file system, or None where the port cannot say."""
    try:
        st = os.statvfs(ROOT)
    except (OSError, AttributeError):  # no statvfs on this port: the write will tell
        return None
    return st[0] * st[3]
