"""Power cuts on the chip's own flash (littlefs on NOR flash, as a Pico holds it): the
emulator is stopped at random moments during uploads, deletes and selects, and started
again on the same flash. Every model stored before loads with its checksum, the model
being written is the old or the new one, never a part, and the server starts.

ANNE_POWER_CUTS sets the number of cuts (default 6)."""

import json
import os
import random
import threading
import time
import zlib

import numpy as np
import pytest

from anne_host import model_doc
from anne_host.client import BoardError, Client
from anne_host.transport import LinkError

from .conftest import Chip

CUTS = int(os.environ.get("ANNE_POWER_CUTS", "6"))


def _doc(seed, sizes=(32, 96, 64, 8)):
    rng = np.random.default_rng(seed)
    layers = [{"type": "dense", "units": o, "activation": "relu" if o != sizes[-1] else "softmax",
               "weights": rng.normal(size=(o, i)).astype(np.float32).tolist(),
               "bias": rng.normal(size=o).astype(np.float32).tolist()}
              for i, o in zip(sizes, sizes[1:])]
    return {"format": "anne-model", "version": 1, "name": "m%d" % seed, "inputs": sizes[0], "layers": layers}


def _crc(blob):
    return zlib.crc32(blob[:-4]) & 0xFFFFFFFF


@pytest.fixture(scope="module")
def own_chip(chip, tmp_path_factory):
    """A chip of its own, started and stopped by this test: never the user's board."""
    if not chip.emulated:
        pytest.skip("power cuts need the emulated chip: a real board's power is a person's job")
    c = Chip(rig=chip.rig, run_dir=tmp_path_factory.mktemp("power-cut")).start(fresh=True)
    from anne_host import deploy

    deploy.deploy(c.port, log=lambda *a: None)
    yield c
    c.stop()


def _operation(port, kind, blobs, errors):
    # The work that the cut interrupts; its failures are the cut's doing.
    try:
        with Client.open(port, timeout=30) as board:
            if kind == "upload":
                board.upload(blobs["next"], "victim")
            elif kind == "delete":
                board.delete("spare")
            else:
                board.select(random.choice(["keep", "victim"]))
    except (BoardError, LinkError, OSError) as e:
        errors.append(e)


def test_power_cuts_during_uploads_deletes_and_selects_lose_nothing(own_chip):
    rng = random.Random(2026)
    versions = [model_doc.pack(_doc(s)) for s in (1, 2)]
    keep = model_doc.pack(_doc(3, (4, 16, 3)))
    with Client.open(own_chip.port) as board:
        board.upload(keep, "keep")
        board.upload(versions[0], "victim")
    counts = {"upload": 0, "delete": 0, "select": 0, "new": 0, "old": 0}
    for cut in range(CUTS):
        kind = ("upload", "delete", "select")[cut % 3]
        with Client.open(own_chip.port) as board:
            current = board.select("victim")["checksum"]
            if kind == "delete":
                board.upload(keep, "spare", activate=False)
        blobs = {"next": versions[1] if current == _crc(versions[0]) else versions[0]}
        errors = []
        worker = threading.Thread(target=_operation, args=(own_chip.port, kind, blobs, errors))
        worker.start()
        time.sleep(rng.uniform(0.5, 4.0))  # wall time: the chip is at 2-10 % of it by then
        own_chip.stop()  # the power goes: the flash stays as it is at this instant
        worker.join(60)
        own_chip.start()
        counts[kind] += 1
        with Client.open(own_chip.port, timeout=30) as board:  # the server starts
            stored = {m["name"]: m for m in board.list_models()}
            assert board.select("keep")["checksum"] == _crc(keep), cut
            assert board.infer([0.5, 1.0, -1.0, 2.0])[1] in (0, 1, 2)
            got = board.select("victim")["checksum"]
            assert got in (_crc(versions[0]), _crc(versions[1])), "victim is a part: cut %d" % cut
            if kind == "upload":
                counts["new" if got == _crc(blobs["next"]) else "old"] += 1
            assert set(stored) <= {"keep", "victim", "spare"} and {"keep", "victim"} <= set(stored)
            if "spare" in stored:
                assert board.select("spare")["checksum"] == _crc(keep)
                board.delete("spare")
    print("power cuts:", counts)
    assert counts["upload"] == 0 or counts["new"] + counts["old"] == counts["upload"]


_WRITER = """
import os
from anne.eventlog import EventLog
try:
    os.mkdir('models')
except OSError:
    pass
log = EventLog('models/.events', 16)
while True:
    k = log.next
    log.write(k * 10, k % 5, [k / 7, -k / 3], k % 256)
"""
_READER = "import json\nfrom anne.eventlog import EventLog\nprint(json.dumps(EventLog('models/.events').read()))"


def test_power_cuts_while_the_monitor_logs_leave_every_readable_event_whole(own_chip):
    # The monitor's event log (a ring of CRC-checked records, written in place) on the
    # chip's littlefs: the power goes while events are written, three times.
    from anne_host import deploy

    rng = random.Random(7)
    for _ in range(3):
        writer = threading.Thread(target=lambda: _quietly(own_chip.exec, _WRITER), daemon=True)
        writer.start()
        time.sleep(4 + rng.uniform(0, 3))
        own_chip.stop()
        writer.join(60)
        own_chip.start()
    text = deploy.mpremote(own_chip.port, "exec", _READER, what="reading the event log")
    events = json.loads(text.strip().splitlines()[-1])
    assert len(events) >= 15  # the ring holds 16: at most the record being written is lost
    seqs = [e[0] for e in events]
    assert seqs == sorted(set(seqs), reverse=True)
    for seq, ms, cls, bits, values in events:
        assert (ms, cls, bits) == (seq * 10, seq % 5, seq % 256)
        assert values[:2] == pytest.approx([seq / 7, -seq / 3], rel=1e-6)
    with Client.open(own_chip.port) as board:  # and the server still starts
        assert board.hello()["protocol"] >= 2


def _quietly(f, *args):
    try:
        f(*args)
    except Exception:  # the power cut ends it
        pass
