"""What ANNE knows about each board it runs on, in one place.

The host finds boards by their USB vendor id, sizes the virtual Pico's heap from
the Pico's, and counts a virtual Pico's flash as a Pico's file system would. A new
board is a new ``Board`` here (docs/CONTRIBUTING.md, "A new board"). Where models
live on a board is the firmware's to say (firmware/store.py, ROOT), the same on
every board: the host never names that folder.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Board:
    name: str
    usb_vendor: int  # as MicroPython's rp2 port enumerates
    usb_product: int
    heap: int | None  # MicroPython's GC heap in bytes (gc.mem_free() + gc.mem_alloc() at boot)
    flash_bytes: int
    fs_bytes: int  # the littlefs file system's share of the flash (mpconfigboard.h)
    fs_block: int = 4096


# Measured on the emulated RP2040 running MicroPython 1.28's RPI_PICO firmware:
# 241,000 bytes free at boot of a 245,888-byte heap.
PICO = Board("Raspberry Pi Pico (RP2040)", 0x2E8A, 0x0005, heap=245888,
             flash_bytes=2 * 1024 * 1024, fs_bytes=1408 * 1024)
# The Pico 2's heap is roughly twice the Pico's; not measured here, so not claimed.
PICO2 = Board("Raspberry Pi Pico 2 (RP2350)", 0x2E8A, 0x0005, heap=None,
              flash_bytes=4 * 1024 * 1024, fs_bytes=3 * 1024 * 1024)

BOARDS = (PICO, PICO2)
# The virtual Pico is a Pico: its heap and its flash are the Pico's.
VIRTUAL = PICO
USB_VENDORS = frozenset(b.usb_vendor for b in BOARDS)
