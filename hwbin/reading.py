"""Bounded reading of files a user hands hwbin: sizes, zip entries, JSON and .npy headers are
checked before anything is read into memory, inflated or parsed, so a hostile or damaged file
is a one-line ``HwbinError`` naming it, never a traceback, an out-of-memory kill or a hang.

The limits are in ``hwbin.limits``. Nothing here ever unpickles.
"""
from __future__ import annotations

import io
import json
import os
import re
import struct
import zipfile
from pathlib import Path

import numpy as np

from . import limits
from .errors import HwbinError

_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"')
_OPEN = np.frombuffer(b"[{", np.uint8)
_CLOSE = np.frombuffer(b"]}", np.uint8)
#: Entries one zip may hold (an IR file has at most 4 arrays per layer and its manifest).
MAX_ZIP_ENTRIES = 8192


def check_file(path, what: str, limit: int = limits.MAX_FILE_BYTES) -> Path:
    """``path`` as a Path, if it is a regular file no larger than ``limit``."""
    p = Path(path)
    if not p.exists():
        raise HwbinError(f"{path}: {what} not found")
    if not p.is_file():
        raise HwbinError(f"{path}: expected a regular file ({what}), found a folder or special file")
    size = p.stat().st_size
    if size > limit:
        raise HwbinError(f"{path}: {what} of {size:,} bytes, expected at most {limit:,} (hwbin.limits)")
    return p


def read_bounded(path, what: str, limit: int = limits.MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file, refused before reading if larger than ``limit``."""
    p = check_file(path, what, limit)
    with open(p, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:  # the file grew while we read it
        raise HwbinError(f"{path}: {what} larger than {limit:,} bytes, expected at most that (hwbin.limits)")
    return data


def json_depth(data: bytes) -> int:
    """The deepest nesting of objects and lists in JSON text (strings skipped), found with
    numpy so that a few MiB take milliseconds and no recursion is involved."""
    skeleton = np.frombuffer(_JSON_STRING.sub(b'""', data), np.uint8)
    step = np.isin(skeleton, _OPEN).astype(np.int32) - np.isin(skeleton, _CLOSE)
    return int(np.cumsum(step).max()) if step.size else 0


def parse_json(data: bytes, where: str):
    """Parse a JSON document after checking its size and nesting; ``where`` names it."""
    if len(data) > limits.MAX_JSON_BYTES:
        raise HwbinError(f"{where}: JSON of {len(data):,} bytes, expected at most {limits.MAX_JSON_BYTES:,}")
    depth = json_depth(data)
    if depth > limits.MAX_JSON_DEPTH:
        raise HwbinError(f"{where}: JSON nested {depth} deep, expected at most {limits.MAX_JSON_DEPTH}")
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise HwbinError(f"{where}: not valid UTF-8 (byte {e.start})") from None
    except (ValueError, RecursionError) as e:
        raise HwbinError(f"{where}: not valid JSON ({str(e)[:120]})") from None


def open_zip(source, where: str) -> zipfile.ZipFile:
    """A zip (a path, or bytes) whose directory was checked first: a sane entry count (read
    from the end record before the directory is parsed), no duplicate names, and a bounded
    total size."""
    src = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        if isinstance(src, io.BytesIO):
            end = zipfile._EndRecData(src)
        else:
            with open(src, "rb") as fp:
                end = zipfile._EndRecData(fp)  # the end record: entry count, directory size
        if end is None:
            raise HwbinError(f"{where}: not a zip file (no end-of-directory record)")
        if end[zipfile._ECD_ENTRIES_TOTAL] > MAX_ZIP_ENTRIES:
            raise HwbinError(f"{where}: zip with {end[zipfile._ECD_ENTRIES_TOTAL]:,} entries, "
                             f"expected at most {MAX_ZIP_ENTRIES:,}")
        z = zipfile.ZipFile(src)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, struct.error) as e:
        raise HwbinError(f"{where}: not a readable zip file ({type(e).__name__}: {str(e)[:100]})") from None
    try:
        _check_directory(z, where)
    except HwbinError:
        z.close()
        raise
    return z


def _check_directory(z: zipfile.ZipFile, where: str) -> None:
    infos = z.infolist()
    if len(infos) > MAX_ZIP_ENTRIES:
        raise HwbinError(f"{where}: zip with {len(infos):,} entries, expected at most {MAX_ZIP_ENTRIES:,}")
    seen = set()
    for info in infos:
        if info.filename in seen:
            raise HwbinError(f"{where}: entry '{info.filename[:80]}' appears twice, expected unique names")
        seen.add(info.filename)
    total = sum(info.file_size for info in infos)
    if total > limits.MAX_UNZIPPED_BYTES:
        raise HwbinError(f"{where}: entries inflate to {total:,} bytes, expected at most "
                         f"{limits.MAX_UNZIPPED_BYTES:,} (hwbin.limits)")


def read_member(z: zipfile.ZipFile, name: str, where: str, limit: int = limits.MAX_UNZIPPED_BYTES) -> bytes:
    """One entry's bytes, inflating no more than its declared size (checked against ``limit``)."""
    try:
        info = z.getinfo(name)
    except KeyError:
        raise HwbinError(f"{where}: entry '{name}' missing from the file") from None
    if info.file_size > limit:
        raise HwbinError(f"{where}: entry '{name}' inflates to {info.file_size:,} bytes, expected at most {limit:,}")
    try:
        with z.open(info) as f:
            data = f.read(info.file_size + 1)
    except Exception as e:  # zipfile raises BadZipFile, zlib.error, EOFError, NotImplementedError, ...
        raise HwbinError(f"{where}: entry '{name}' unreadable ({type(e).__name__}: {str(e)[:100]})") from None
    if len(data) != info.file_size:
        raise HwbinError(f"{where}: entry '{name}' holds {len(data):,} bytes, its header says {info.file_size:,}")
    return data


def npy_from_bytes(raw: bytes, where: str) -> np.ndarray:
    """An array from .npy bytes: no pickles, no object dtypes, and a header whose shape and
    dtype account for exactly the bytes that follow it (checked before any allocation)."""
    f = io.BytesIO(raw)
    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"npy format version {version}")
    except (ValueError, EOFError, OSError, SyntaxError, TypeError, MemoryError) as e:
        raise HwbinError(f"{where}: not a readable .npy array ({type(e).__name__}: {str(e)[:100]})") from None
    if dtype.hasobject:
        raise HwbinError(f"{where}: array of Python objects, expected numbers (hwbin never unpickles)")
    count = 1
    for d in shape:
        count *= d
    expected = count * dtype.itemsize
    if expected != len(raw) - f.tell():
        raise HwbinError(f"{where}: .npy header declares {expected:,} bytes of data ({dtype} {list(shape)[:6]}), "
                         f"found {len(raw) - f.tell():,}")
    f.seek(0)
    try:
        return np.load(f, allow_pickle=False)
    except (ValueError, EOFError, OSError) as e:
        raise HwbinError(f"{where}: not a readable .npy array ({type(e).__name__}: {str(e)[:100]})") from None
