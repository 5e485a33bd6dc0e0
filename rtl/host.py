"""``hwbin board run``: the host side of the UART bridge (rtl/board.py), with no extra packages.

It opens the serial port raw at 115200 8N1 (termios), sends each image's input beats as bytes
and reads back 4 bytes per output beat, then compares with the golden model.
"""
from __future__ import annotations

import os
import select
import termios
import time
import tty

from hwbin import program as pg
from hwbin.errors import HwbinError

from .synth import BAUD


def open_port(port: str, baud: int = BAUD) -> int:
    try:
        fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
    except OSError as e:
        raise HwbinError(f"{port}: cannot open the serial port ({e.strerror})") from None
    if os.isatty(fd):
        tty.setraw(fd)
        attrs = termios.tcgetattr(fd)
        speed = getattr(termios, f"B{baud}")
        attrs[4] = attrs[5] = speed
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    return fd


def read_exact(fd: int, n: int, timeout: float, port: str) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout
    while len(data) < n:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise HwbinError(f"{port}: timeout after {timeout:g} s: {len(data)} of {n} result bytes received "
                             f"(is the board programmed with this model's bitstream?)")
        data += os.read(fd, n - len(data))
    return data


def run_image(fd: int, image, out_beats: int, port: str, timeout: float = 5.0) -> list[int]:
    """Send one image, return its output beats (scores, then the class, per position)."""
    os.write(fd, bytes(pg.input_beats(image)))
    raw = read_exact(fd, 4 * out_beats, timeout, port)
    return [int.from_bytes(raw[i:i + 4], "little", signed=True) for i in range(0, len(raw), 4)]
