"""Two hosts on one port (issue 14, item 4): the first takes the port exclusively; a
second anne-host, even in the middle of the first one's eval, gets one line saying the
port is in use (exit 4) and sends the board nothing."""

import numpy as np
import pytest

from anne_host.client import Client
from anne_host.transport import LinkError

from ..e2e.conftest import anne_host
from .conftest import blob

ROW = [5.9, 3.0, 5.1, 1.8]


def test_a_second_client_on_the_port_is_refused_and_sends_nothing(pico):
    with Client.open(pico.port) as first:
        first.upload(blob("iris6"), "iris6")
        before = first.stats()
        with pytest.raises(LinkError) as refused:
            Client.open(pico.port)
        assert str(refused.value) == ("%s is in use by another process (another anne-host, Thonny, "
                                      "mpremote?): the port is busy; close it and try again" % pico.port)
        assert refused.value.exit_code == 4
        after = first.stats()
        # Only the first one's own stats request in between: no byte of the second.
        assert after["requests"] == before["requests"] + 1
        assert after["garbage_bytes"] == before["garbage_bytes"]
        assert first.infer(ROW)[1] == 1


def test_a_second_anne_host_during_an_eval_leaves_it_alone(pico):
    rows = np.tile(np.array([ROW, [5.0, 3.4, 1.5, 0.2]], "<f4"), (400, 1))
    with Client.open(pico.port) as first:
        first.upload(blob("iris6"), "iris6")
        results, second = [], None
        for y, classes, us in first.batch(rows, 1):
            results.append(classes)
            if second is None:  # the eval is under way: another anne-host tries the board
                second = anne_host("--port", pico.port, "info")
        assert second.returncode == 4
        assert second.stderr.strip() == "anne-host: %s is in use by another process (another anne-host, " \
                                        "Thonny, mpremote?): the port is busy; close it and try again" % pico.port
        classes = np.concatenate(results)
        assert len(classes) == len(rows) and len(results) > 2
        assert list(classes[:2]) == [1, 0] and (classes[::2] == 1).all()
        assert first.stats()["errors"] == 0
    # Once the first has closed the port, the next host has it.
    done = anne_host("--port", pico.port, "--json", "info")
    assert done.returncode == 0, done.stderr
