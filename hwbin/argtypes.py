"""Argument types for the CLI: every value's range is checked when the command line is
parsed, before any file is read or any work starts. A bad value is argparse's one-line
usage error ("argument --lr: expected a finite number > 0, found 'nan'"), exit status 2."""
from __future__ import annotations

import argparse
import math
import re

from . import limits

#: The widest seed any back end takes (nextpnr's is a C int).
MAX_SEED = 2**31 - 1


def int_in(lo: int, hi: int):
    """An integer in lo..hi."""
    def parse(text: str) -> int:
        try:
            v = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer in {lo}..{hi}, found {text!r}") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"expected an integer in {lo}..{hi}, found {v}")
        return v
    parse.__name__ = "integer"
    return parse


def float_in(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False):
    """A finite number between lo and hi (bounds open or closed)."""
    shown = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            v = math.nan
        above = v > lo if lo_open else v >= lo
        below = v < hi if hi_open else v <= hi
        if not (math.isfinite(v) and above and below):
            raise argparse.ArgumentTypeError(f"expected a finite number in {shown}, found {text!r}")
        return v
    parse.__name__ = "number"
    return parse


def ratios(text: str) -> tuple[float, ...]:
    """Binarization ratio stages: percentages (or fractions <= 1), increasing, 1 to 16 of them."""
    parts = text.split(",")
    if not 1 <= len(parts) <= 16:
        raise argparse.ArgumentTypeError(f"expected 1 to 16 comma-separated ratios, found {len(parts)}")
    out = []
    for part in parts:
        try:
            v = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected numbers like 50,75,100, found {part!r}") from None
        if not (math.isfinite(v) and 0 < v <= 100):
            raise argparse.ArgumentTypeError(f"expected ratios in (0, 100], found {part!r}")
        out.append(v / 100 if v > 1 else v)
    if any(b <= a for a, b in zip(out, out[1:])):
        raise argparse.ArgumentTypeError(f"expected increasing ratios, found {text!r}")
    if out[-1] != 1.0:
        raise argparse.ArgumentTypeError(f"the stages must end at 100%, found {text!r}")
    return tuple(out)


def indices(text: str) -> list[tuple[int, int]]:
    """Image indices like 0,3,5-9 as inclusive ranges (bounded: never expanded blindly)."""
    out, total = [], 0
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d{1,9})\s*(?:-\s*(\d{1,9})\s*)?", part)
        if not m:
            raise argparse.ArgumentTypeError(f"expected indices like 0,3,5-9, found {part!r}")
        a = int(m.group(1))
        b = int(m.group(2)) if m.group(2) is not None else a
        if b < a:
            raise argparse.ArgumentTypeError(f"expected a range low-high with low <= high, found {part!r}")
        total += b - a + 1
        if total > limits.MAX_VECTORS:
            raise argparse.ArgumentTypeError(f"expected at most {limits.MAX_VECTORS} indices, found more in {text!r}")
        out.append((a, b))
    return out


def c_prefix(text: str) -> str:
    """A C name prefix (lower case identifier, at most 31 characters)."""
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", text):
        raise argparse.ArgumentTypeError(f"expected a C identifier in lower case (a-z, 0-9, _; at most 31 "
                                         f"characters, starting with a letter), found {text!r}")
    return text


def path_text(text: str) -> str:
    """A path: not empty, no NUL byte (which no file system accepts)."""
    if not text or "\0" in text:
        raise argparse.ArgumentTypeError(f"expected a path, found {text!r}")
    return text


VECTORS = int_in(1, limits.MAX_VECTORS)
SEED = int_in(0, MAX_SEED)
