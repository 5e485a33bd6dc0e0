"""The FPGA parts and boards hwbin builds for: one table of each. The array config's part
check (``program.PARTS``), the resource model (rtl/resources.py), ``hwbin rtl --board`` and the
synthesis flow (rtl/synth.py) all read these."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Part:
    family: str
    luts: int
    ffs: int
    brams: int
    sprams: int
    dsps: int
    nextpnr: tuple[str, ...] = ()     # nextpnr-<family>'s device and package options


#: The parts, with their totals (LUT4s / LUTs, flip-flops, block RAMs, SPRAMs, DSPs).
PARTS = {
    "ice40-up5k": Part("ice40", 5280, 5280, 30, 4, 8, ("--up5k", "--package", "sg48")),
    "ecp5-25f": Part("ecp5", 24288, 24288, 56, 0, 28, ("--25k", "--package", "CABGA381")),
    "ecp5-85f": Part("ecp5", 83640, 83640, 208, 0, 156, ("--85k", "--package", "CABGA381")),
}


@dataclass(frozen=True)
class Board:
    part: str                   # a key of PARTS
    module: str                 # the amaranth-boards platform: module and class
    platform: str
    clock_mhz: float | None     # the core's clock by default (None: the oscillator's, no PLL)


#: The boards. The iCEBreaker's 12 MHz oscillator would waste half of what the core closes
#: at (about 25 MHz), so its core runs at 24 MHz through the PLL.
BOARDS = {
    "ulx3s": Board("ecp5-25f", "amaranth_boards.ulx3s", "ULX3S_25F_Platform", None),
    "icebreaker": Board("ice40-up5k", "amaranth_boards.icebreaker", "ICEBreakerPlatform", 24.0),
}

#: What ``--board`` takes: a board (its part, and a top for it) or a part alone.
BOARDS_AND_PARTS = tuple(BOARDS) + tuple(sorted(PARTS))


def board_part(name: str) -> str:
    """The part of a board, or a part named as itself."""
    return BOARDS[name].part if name in BOARDS else name
