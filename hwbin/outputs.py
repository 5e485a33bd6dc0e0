"""One output policy for every verb (README, "What the CLI promises").

- An output is built under a fresh temporary name beside its target and moved into place
  only when it is complete, so a failed or interrupted run leaves nothing behind: no partial
  output, no temporary folder.
- An existing target is replaced only when it is hwbin's own earlier output: a folder that
  carries hwbin's marker (or the manifest of an output written before the marker existed)
  and nothing hwbin did not write, an empty folder, or an IR file. Anything else is refused
  with one line that says how to proceed (a new path, or ``--force``).
- Never, even with ``--force``: a file turned into a folder or a folder into a file, the
  current folder or one of its parents replaced, an input overwritten, a symbolic link
  followed.
"""
from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import shutil
import tempfile
from pathlib import Path

from . import __version__
from .errors import HwbinError

#: The file every output folder carries: which hwbin wrote it, and which entries.
MARKER = ".hwbin-output.json"
#: Entries other verbs add to an output folder later (sim, synth, firmware builds).
BY_PRODUCTS = ("sim_build", "waves-*", "synth-*", "build", "footprint.md", "footprint.json")
#: Folders written before the marker existed: manifest -> (how to recognise it, its entries).
LEGACY = {
    "manifest.json": (lambda d: str(d.get("tool", "")).startswith("hwbin ") and "model_hash" in d,
                      lambda d: {"hwbin_top.v", "report.json", "report.md", "manifest.json", "model.hwbin",
                                 "verilator.vlt"}),
    "plan.json": (lambda d: "hwbin" in d and "model_hash" in d,
                  lambda d: {"main.c", "Makefile", "hwbin.mk", "hwbin.cmake", "hwbin_rt.h", "hwbin_rt.c", "boards",
                             "plan.json", *(f"{d.get('prefix')}_{n}" for n in ("model.h", "model.c", "vectors.h"))}),
    "metrics.json": (lambda d: "options" in d and "final" in d,
                     lambda d: {"model.pt", "metrics.json", "curves.png"}),
}


class OutputError(HwbinError):
    """An output path hwbin refuses to write (it would destroy something it did not create)."""


def _name_max(folder: Path) -> int:
    with contextlib.suppress(OSError, ValueError):
        return os.pathconf(folder, "PC_NAME_MAX")
    return 255


def _existing_ancestor(p: Path) -> Path:
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def _check_place(final: Path, shown: str, option: str, inputs) -> None:
    """Refusals that no --force lifts: the path itself is unusable or would destroy a parent,
    the current folder or an input."""
    if not final.name or final.name in (".", ".."):
        raise OutputError(f"{option} {shown}: expected a path that names a new file or folder")
    cwd = Path(os.path.abspath(os.getcwd()))
    if final == cwd or final in cwd.parents or final == Path.home():
        raise OutputError(f"{option} {shown}: is the current folder, one of its parents or your home folder; "
                          f"expected a new path")
    for inp in inputs:
        inp = Path(os.path.abspath(inp))
        if inp == final or final in inp.parents:
            raise OutputError(f"{option} {shown}: would replace the input {inp}; expected another path")
    anc = _existing_ancestor(final.parent)
    if not anc.is_dir():
        raise OutputError(f"{option} {shown}: {anc} is a file, expected a folder to write in")
    most = _name_max(anc)
    for part in final.relative_to(anc).parts:
        if len(os.fsencode(part)) > most:
            raise OutputError(f"{option} {shown[:60]}...: a name of {len(os.fsencode(part))} bytes, "
                              f"expected at most {most}")
    if len(os.fsencode(str(final))) > 4000:
        raise OutputError(f"{option}: a path of {len(os.fsencode(str(final)))} bytes, expected at most 4000")
    if not os.access(anc, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {shown}: cannot write in {anc} (permission denied)")


def _small_json(path: Path):
    """A small JSON file's content, or None if it is missing, large or malformed."""
    from .reading import parse_json

    with contextlib.suppress(OSError, HwbinError):
        if path.is_file() and not path.is_symlink() and path.stat().st_size < 1 << 20:
            return parse_json(path.read_bytes(), str(path))
    return None


def _marker_entries(folder: Path) -> set[str] | None:
    """The entries hwbin wrote into ``folder``, if it is recognisably hwbin's output."""
    doc = _small_json(folder / MARKER)
    if isinstance(doc, dict) and str(doc.get("tool", "")).startswith("hwbin ") and isinstance(doc.get("files"), list):
        return {str(f) for f in doc["files"]} | {MARKER}
    for manifest, (recognise, entries) in LEGACY.items():
        doc = _small_json(folder / manifest)
        if isinstance(doc, dict) and recognise(doc):
            return entries(doc)
    return None


def foreign_entries(folder: Path) -> list[str] | None:
    """Entries of ``folder`` hwbin did not write (empty: all are hwbin's), or None when the
    folder is not recognisably hwbin's output at all. An empty folder counts as hwbin's."""
    entries = sorted(os.listdir(folder))
    if not entries:
        return []
    own = _marker_entries(folder)
    if own is None:
        return None
    return [e for e in entries if e not in own and not any(fnmatch.fnmatch(e, pat) for pat in BY_PRODUCTS)]


def _is_own_file(path: Path) -> bool:
    """An existing file hwbin may replace: an IR file (zip magic, manifest with hwbin's magic)."""
    from .ir import looks_like_ir

    return looks_like_ir(path)


def check_target(path, kind: str = "folder", force: bool = False, option: str = "-o", inputs=()) -> Path:
    """Raise a one-line ``OutputError`` unless ``path`` may receive a new output of ``kind``
    ("folder" or "file"); returns its absolute form. Run before any work, and again before
    the output is moved into place."""
    shown = str(path)
    if not shown:
        raise OutputError(f"{option}: expected a path, found an empty string")
    final = Path(os.path.abspath(path))
    _check_place(final, shown, option, inputs)
    if not os.path.lexists(final):
        return final
    how = "choose a new path, or pass --force to replace it"
    if final.is_symlink():
        raise OutputError(f"{option} {shown}: is a symbolic link; expected a new path (hwbin never follows one)")
    if kind == "folder" and not final.is_dir():
        raise OutputError(f"{option} {shown}: is a file, expected a folder (hwbin never turns a file into a folder)")
    if kind == "file" and final.is_dir():
        raise OutputError(f"{option} {shown}: is a folder, expected a file path (e.g. {shown.rstrip('/')}/model.hwbin)")
    if kind == "file":
        if not final.is_file():
            raise OutputError(f"{option} {shown}: is not a regular file; expected a new path")
        if not (force or _is_own_file(final)):
            raise OutputError(f"{option} {shown}: exists and is not an IR file hwbin wrote; {how}")
        return final
    foreign = foreign_entries(final)
    if force:
        return final
    if foreign is None:
        raise OutputError(f"{option} {shown}: the folder exists and is not hwbin's output (no {MARKER}); {how}")
    if foreign:
        raise OutputError(f"{option} {shown}: hwbin's earlier output, but it holds '{foreign[0]}' that hwbin did "
                          f"not write ({len(foreign)} such entr{'y' if len(foreign) == 1 else 'ies'}); {how}")
    return final


def _make_parents(folder: Path) -> list[Path]:
    """Create missing parent folders; returns those created (deepest last) to undo on failure."""
    made = []
    for p in reversed([folder, *folder.parents]):
        if not os.path.lexists(p):
            p.mkdir()
            made.append(p)
    return made


def _start(final: Path, option: str, shown: str) -> list[Path]:
    """Create the missing parent folders, as a one-line error if that fails."""
    try:
        return _make_parents(final.parent)
    except OSError as e:
        raise OutputError(f"{option} {shown}: cannot create {e.filename or final.parent} ({e.strerror})") from None


def _remove_empty(made: list[Path]) -> None:
    for p in reversed(made):
        with contextlib.suppress(OSError):
            p.rmdir()


def _temp_name(final: Path) -> str:
    return f".{final.name[:40]}."


def _move_into_place(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; an existing folder is moved aside first and deleted only
    once the new one is in place (put back if that fails)."""
    if not os.path.lexists(final):
        os.rename(tmp, final)
        return
    old = Path(tempfile.mkdtemp(prefix=_temp_name(final), suffix=".hwbin-old", dir=final.parent))
    os.rename(final, old / "x")
    try:
        os.rename(tmp, final)
    except BaseException:
        os.rename(old / "x", final)
        old.rmdir()
        raise
    shutil.rmtree(old, ignore_errors=True)


def _write_marker(tmp: Path, verb: str) -> None:
    files = sorted(e for e in os.listdir(tmp) if e != MARKER)
    (tmp / MARKER).write_text(json.dumps({"tool": f"hwbin {__version__}", "verb": verb, "files": files},
                                         indent=1) + "\n")


def _rename_in_error(e: HwbinError, tmp: Path, final: Path) -> HwbinError:
    """The same error with the temporary folder's name replaced by the target's."""
    text = str(e)
    if str(tmp) not in text:
        return e
    new = type(e).__new__(type(e))
    new.args = (text.replace(str(tmp), str(final)),)
    return new


def _temp_beside(make, final: Path, made, option: str, path):
    """``make`` (tempfile.mkdtemp or mkstemp) beside ``final``; on failure the folders
    ``_start`` created are removed again and the error is one line."""
    try:
        return make(prefix=_temp_name(final), suffix=".hwbin-tmp", dir=final.parent)
    except OSError as e:
        _remove_empty(made)
        raise OutputError(f"{option} {path}: cannot write in {final.parent} ({e.strerror})") from None
    except BaseException:
        _remove_empty(made)
        raise


@contextlib.contextmanager
def folder(path, verb: str = "output", force: bool = False, option: str = "-o", inputs=()):
    """Yield a fresh temporary folder beside ``path``; on success mark it as hwbin's output
    and move it into place (see the module docstring for what may be replaced)."""
    final = check_target(path, "folder", force, option, inputs)
    made = _start(final, option, shown=str(path))
    tmp = Path(_temp_beside(tempfile.mkdtemp, final, made, option, path))
    try:
        try:
            yield tmp
        except HwbinError as e:
            raise _rename_in_error(e, tmp, final) from None
        _write_marker(tmp, verb)
        os.chmod(tmp, 0o777 & ~_umask())  # as an ordinary new folder (mkdtemp makes it 0700)
        check_target(path, "folder", force, option, inputs)  # still safe after the work?
        _move_into_place(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        _remove_empty(made)
        raise


def write_file(path, data: bytes, force: bool = False, option: str = "-o", inputs=()) -> Path:
    """Write ``data`` to ``path`` through a temporary file beside it and a rename."""
    final = check_target(path, "file", force, option, inputs)
    made = _start(final, option, shown=str(path))
    fd, tmp = _temp_beside(tempfile.mkstemp, final, made, option, path)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # as an ordinary new file (mkstemp makes it 0600)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        _remove_empty(made)
        raise
    return final


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
