"""Fixtures for the robustness tests: a virtual Pico with a model on it, requests
sent as they are (not through the client's checks), and the flash as files."""

import hashlib
import zlib
from pathlib import Path

import pytest

from anne_host import model_doc

MODELS = Path(__file__).resolve().parents[2] / "models"


def blob(name):
    """The model file of models/<name>.json."""
    return model_doc.pack(model_doc.read(MODELS / (name + ".json")))


def checksum(data):
    return zlib.crc32(data[:-4]) & 0xFFFFFFFF


def flash_files(folder):
    """{path: sha256} of every file under a virtual Pico's flash folder."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def request(board, cmd, **fields):
    """The board's reply to one request, whatever it is (no BoardError)."""
    return board._wait(board.send(cmd, **fields), board.timeout)


@pytest.fixture
def iris6(board):
    """The board with iris6 stored and active; returns the client."""
    board.upload(blob("iris6"), "iris6")
    board.hello()
    return board
