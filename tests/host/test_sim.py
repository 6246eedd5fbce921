"""The virtual Pico behaves the same wherever its flash folder lies on this PC."""

from anne_host.client import Client
from anne_host.sim import VirtualPico


def _free_heap_at_server_start(flash_dir):
    with VirtualPico(flash_dir) as vp, Client.open(vp.port) as board:
        return board.hello()["mem_free"]


def test_the_free_heap_does_not_depend_on_the_flash_folders_path(tmp_path):
    # A Pico's paths are short and fixed; a user's TMPDIR may be long (macOS). Models at
    # the heap's edge must fit or not alike in both.
    short = tmp_path / "s"
    long = tmp_path.joinpath(*["d" * 49] * 4)  # 200 characters beyond tmp_path
    assert len(str(long)) - len(str(tmp_path)) == 200
    assert _free_heap_at_server_start(short) == _free_heap_at_server_start(long)
