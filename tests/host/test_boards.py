"""The board profile is what the host reads: finding boards, sizing the virtual Pico."""

import serial.tools.list_ports
from serial.tools.list_ports_common import ListPortInfo

from anne_host import boards, transport, unixport
from anne_host.sim import VirtualPico, pico_flash_free
from anne_host.client import Client


def _port(device, vid):
    port = ListPortInfo(device, skip_link_detection=True)
    port.vid = vid
    return port


def test_a_board_is_found_by_a_profiled_usb_vendor_and_nothing_else(monkeypatch):
    monkeypatch.delenv(transport.EXTRA_PORTS, raising=False)
    monkeypatch.setattr(serial.tools.list_ports, "comports", lambda: [
        _port("/dev/ttyUSB0", 0x0403),  # an FTDI adapter
        _port("/dev/ttyACM0", boards.PICO.usb_vendor),
        _port("/dev/ttyS0", None),
    ])
    assert transport.board_ports() == ["/dev/ttyACM0"]
    assert transport.find_board() == "/dev/ttyACM0"


def test_the_virtual_pico_has_the_profiled_heap(tmp_path, monkeypatch):
    monkeypatch.delenv("ANNE_HEAP", raising=False)
    assert unixport.heap_size() == boards.VIRTUAL.heap
    with VirtualPico(tmp_path) as vp, Client.open(vp.port) as board:
        info = board.hello()
    # MicroPython's heap, less the allocator's own table (about 1/33 of it), is what
    # the live and the free blocks share.
    total = info["mem_free"] + info["mem_alloc"]
    assert 0.95 * boards.VIRTUAL.heap < total <= boards.VIRTUAL.heap


def test_an_empty_virtual_flash_counts_a_pico_file_system(tmp_path):
    free = pico_flash_free(tmp_path)
    assert boards.VIRTUAL.fs_bytes - 8 * boards.VIRTUAL.fs_block <= free < boards.VIRTUAL.fs_bytes
