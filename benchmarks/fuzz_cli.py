"""Damaged and hostile inputs through every verb of the CLI, with the promises as checks.

    .venv/bin/python benchmarks/fuzz_cli.py --cases 2400 --subprocess 60

Every case runs ``hwbin.cli.main`` in this process (a sample also as a real subprocess) in a
fresh work folder that holds, besides the case's inputs, files hwbin did not write (a
project folder, a plain file) and hwbin's own earlier outputs. After each case:

- tracebacks: any exception escaping ``main`` (in process) or "Traceback" on stderr;
- internal errors: exit status 3;
- code executions: a marker file that the pickles' payloads would create;
- lost files: any file that existed before and changed or vanished, unless the case replaced
  hwbin's own earlier output at its target;
- partial outputs: anything new in the work folder after a failure (temporary folders
  included), or outside the target after a success;
- unnamed errors: an error line that names no file, option, field or entry of the case;
- not one line: a failure whose stderr is not exactly one line, or exits other than 2;
- peak memory (this process's, and the subprocesses') and the longest case.
"""
from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import json
import os
import pickle
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MARKER_NAME = "PWNED"


# --------------------------------------------------------------------------- hostile payloads

class Evil:
    """A pickle whose loading creates the marker file (what a malicious model file would do)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def npy(a, allow_pickle=False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=allow_pickle)
    return buf.getvalue()


def evil_npy(marker: str) -> bytes:
    a = np.empty(1, dtype=object)
    a[0] = Evil(marker)
    return npy(a, allow_pickle=True)


def zip_bytes(entries: list[tuple[str, bytes]], deflate=False) -> bytes:
    buf = io.BytesIO()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duplicate names are the point of some cases
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED) as z:
            for name, data in entries:
                z.writestr(name, data)
    return buf.getvalue()


def zip_entries(data: bytes) -> list[tuple[str, bytes]]:
    z = zipfile.ZipFile(io.BytesIO(data))
    return [(i.filename, z.read(i)) for i in z.infolist()]


_BOMB: dict[str, bytes] = {}


def deflate_bomb(name: str, size: int = 1 << 30) -> bytes:
    """A ~1 MiB zip whose one entry inflates to ``size`` zero bytes (built once)."""
    key = f"{name}:{size}"
    if key not in _BOMB:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            with z.open(name, "w", force_zip64=True) as f:
                chunk = bytes(1 << 22)
                for _ in range(size // len(chunk)):
                    f.write(chunk)
        _BOMB[key] = buf.getvalue()
    return _BOMB[key]


def gzip_bomb(size: int = 1 << 30) -> bytes:
    if "gz" not in _BOMB:
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=9) as f:
            f.write(bytes([0, 0, 8, 3]) + (60000).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2)
            chunk = bytes(1 << 22)
            for _ in range(size // len(chunk)):
                f.write(chunk)
        _BOMB["gz"] = buf.getvalue()
    return _BOMB["gz"]


def bitflips(data: bytes, rng: random.Random, n: int) -> bytes:
    b = bytearray(data)
    for _ in range(n):
        i = rng.randrange(len(b))
        b[i] ^= 1 << rng.randrange(8)
    return bytes(b)


def deep_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# --------------------------------------------------------------------------- fixtures

@dataclass
class Fixtures:
    base: Path
    ir: bytes
    ckpt: bytes
    manifest: dict
    rtl: Path           # a good rtl folder (read-only template)
    fw: Path            # a good firmware folder (hwbin's own earlier output)

    @property
    def good_ir(self) -> Path:
        return self.base / "good.hwbin"

    @property
    def good_ckpt(self) -> Path:
        return self.base / "good.pt"


def make_fixtures(base: Path) -> Fixtures:
    """A fully binary digits-tiny with random parameters: checkpoint, IR, rtl and firmware."""
    import torch

    from hwbin import cli, ir
    from hwbin.export import export_model
    from hwbin.models import build_model, save_checkpoint
    from tests.helpers import randomize

    torch.manual_seed(0)
    net = randomize(build_model("digits-tiny", (1, 8, 8), 10), seed=3)
    save_checkpoint(base / "good.pt", net, {"method": "srb", "dataset": "digits"})
    irm = export_model(net, {"method": "srb", "dataset": "digits"})
    ir.save(irm, base / "good.hwbin")
    with _quiet():
        assert cli.main(["rtl", str(base / "good.hwbin"), "-o", str(base / "rtl"),
                         "--rows", "8", "--cols", "2", "--lanes", "8"]) == 0
        assert cli.main(["firmware", str(base / "good.hwbin"), "-o", str(base / "fw"), "--target", "host",
                         "--vectors", "2"]) == 0
    data = (base / "good.hwbin").read_bytes()
    man = json.loads(dict(zip_entries(data))["manifest.json"])
    return Fixtures(base, data, (base / "good.pt").read_bytes(), man, base / "rtl", base / "fw")


@contextlib.contextmanager
def _quiet():
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


# --------------------------------------------------------------------------- the cases

@dataclass
class Case:
    """One command line, the files it needs in its work folder, and what it may write."""
    kind: str
    argv: list[str]
    files: dict[str, bytes] = field(default_factory=dict)   # relative path -> content
    setup: list = field(default_factory=list)               # callables(ws) run after files
    target: str | None = None     # the output path it may create or replace on success
    replaceable: bool = False     # the target is hwbin's own earlier output
    names: list[str] = field(default_factory=list)         # what its error should mention


def _ir_with(fx: Fixtures, edit) -> bytes:
    """The good IR with its manifest edited (arrays kept, hash kept)."""
    entries = zip_entries(fx.ir)
    man = json.loads(json.dumps(fx.manifest))
    edit(man)
    return zip_bytes([(n, json.dumps(man).encode() if n == "manifest.json" else b) for n, b in entries])


def _many_layers_ir(n: int) -> bytes:
    """A valid-looking IR of ``n`` layers (identity shuffles between two dense layers), with a
    correct hash: only the layer-count limit refuses it."""
    import torch

    from hwbin import ir
    from hwbin.export import export_model
    from hwbin.models import build_model
    from tests.helpers import randomize

    torch.manual_seed(0)
    net = randomize(build_model("digits-mlp", (1, 8, 8), 10), seed=2)
    m = export_model(net)
    first, rest = m.layers[0], m.layers[1:]
    c = first.out_shape
    shuffles = [ir.Layer(f"s{i}", "shuffle", c, c, arrays={"perm": np.arange(c[0], dtype=np.int32)})
                for i in range(n - len(m.layers))]
    m.layers = [first, *shuffles, *rest]
    man = ir._manifest(m)
    man["hash"] = ir.model_hash(m)
    entries = ir._entries(m)
    return zip_bytes([("manifest.json", json.dumps(man).encode())] + sorted(entries.items()))


IR_EDITS = {
    "input.order 3": lambda m: m["input"].__setitem__("order", 3),
    "input.order '8'": lambda m: m["input"].__setitem__("order", "8"),
    "input.order missing": lambda m: m["input"].pop("order"),
    "extra field": lambda m: m.__setitem__("extra", 1),
    "extra layer field": lambda m: m["layers"][0].__setitem__("dilation", [2, 2]),
    "huge input": lambda m: m["input"].__setitem__("shape", [1, 100000, 100000]),
    "huge channels": lambda m: m["layers"][0].__setitem__("out_shape", [10 ** 9, 8, 8]),
    "num_classes huge": lambda m: m.__setitem__("num_classes", 10 ** 12),
    "unknown kind": lambda m: m["layers"][1].__setitem__("kind", "lstm"),
    "layers not a list": lambda m: m.__setitem__("layers", {"a": 1}),
    "layer 10k copies": lambda m: m.__setitem__("layers", m["layers"] * 2500),
    "source list": lambda m: m.__setitem__("source", [1, 2]),
    "kernel huge": lambda m: m["layers"][0].__setitem__("kernel", [10 ** 6, 10 ** 6]),
    "bool version": lambda m: m.__setitem__("version", True),
    "array name path": lambda m: m["layers"][0]["arrays"].__setitem__("weight", "../../etc/passwd"),
}


def ir_variants(fx: Fixtures, rng: random.Random, marker: str) -> tuple[str, bytes]:
    """A damaged or hostile IR file: (what, bytes)."""
    entries = zip_entries(fx.ir)
    choice = rng.randrange(16)
    if choice == 0:
        return "bit flips", bitflips(fx.ir, rng, rng.randint(1, 16))
    if choice == 1:
        return "truncated", fx.ir[: rng.randrange(len(fx.ir))]
    if choice == 2:
        return "random bytes", rng.randbytes(rng.randrange(0, 5000))
    if choice == 3:
        name = rng.choice([n for n, _ in entries])
        return "duplicate entry", zip_bytes(entries + [(name, dict(entries)[name])])
    if choice == 4:
        return "deflate bomb", deflate_bomb("conv0.weight.npy")
    if choice == 5:
        return "manifest bomb", deflate_bomb("manifest.json", 1 << 28)
    if choice == 6:
        return "deep JSON", zip_bytes([("manifest.json", deep_json(rng.choice([100, 5000, 100000])))] + entries[1:])
    if choice == 7:
        return "manifest not UTF-8", zip_bytes([("manifest.json", b"\xff\xfe{\x00")] + entries[1:])
    if choice == 8:
        return "manifest a list", zip_bytes([("manifest.json", b"[1, 2, 3]")] + entries[1:])
    if choice == 9:
        what = rng.choice(sorted(IR_EDITS))
        return f"edited: {what}", _ir_with(fx, IR_EDITS[what])
    if choice == 10:
        name = rng.choice([n for n, _ in entries if n.endswith(".npy")])
        return "pickled array", zip_bytes([(n, evil_npy(marker) if n == name else b) for n, b in entries])
    if choice == 11:
        name = rng.choice([n for n, _ in entries if n.endswith(".npy")])
        head = b"\x93NUMPY\x01\x00v\x00{'descr': '|u1', 'fortran_order': False, 'shape': (4000000000, 4000000000), }"
        head = head.ljust(6 + 2 + 2 + 118, b" ") + b"\n"
        return "npy huge header", zip_bytes([(n, head + b"\0" * 16 if n == name else b) for n, b in entries])
    if choice == 12:
        return "extra entry", zip_bytes(entries + [("notes.txt", b"hello")])
    if choice == 13:
        return "10,000 layers", _cached("many", lambda: _many_layers_ir(10_000))
    if choice == 14:
        return "empty", b""
    return "lying size", _lying_size(fx.ir)


_CACHE: dict[str, bytes] = {}


def _cached(key, make):
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


def _lying_size(data: bytes) -> bytes:
    """The central directory claims a 3 GB uncompressed size for the first entry."""
    b = bytearray(data)
    i = b.rfind(b"PK\x01\x02")
    first = b.find(b"PK\x01\x02")
    b[first + 24:first + 28] = (3 << 30).to_bytes(4, "little")
    return bytes(b) if i >= 0 else data


CONFIG_EDITS = {
    "spec a string": lambda c: c.__setitem__("spec", "conv"),
    "spec empty": lambda c: c.__setitem__("spec", []),
    "negative channels": lambda c: c["spec"][0].__setitem__("out", -5),
    "huge channels": lambda c: c["spec"][0].__setitem__("out", 10 ** 9),
    "huge kernel": lambda c: c["spec"][0].__setitem__("k", 10 ** 6),
    "unknown kind": lambda c: c["spec"][1].__setitem__("kind", "lstm"),
    "in_shape short": lambda c: c.__setitem__("in_shape", [1, 8]),
    "in_shape huge": lambda c: c.__setitem__("in_shape", [1, 100000, 100000]),
    "num_classes 0": lambda c: c.__setitem__("num_classes", 0),
    "order 99": lambda c: c.__setitem__("order", 99),
    "max_base huge": lambda c: c.__setitem__("max_base", 10 ** 9),
    "task odd": lambda c: c.__setitem__("task", "regress"),
    "config missing spec": lambda c: c.pop("spec"),
    "bool channels": lambda c: c["spec"][0].__setitem__("out", True),
    "groups 3": lambda c: c["spec"][1].__setitem__("g", 3),
    "thousand layers": lambda c: c.__setitem__("spec", c["spec"] * 200),
}


def ckpt_variants(fx: Fixtures, rng: random.Random, marker: str) -> tuple[str, bytes]:
    import torch

    choice = rng.randrange(10)
    if choice == 0:
        return "bit flips", bitflips(fx.ckpt, rng, rng.randint(1, 16))
    if choice == 1:
        return "truncated", fx.ckpt[: rng.randrange(len(fx.ckpt))]
    if choice == 2:
        buf = io.BytesIO()
        torch.save({"config": Evil(marker), "state_dict": {}}, buf)
        return "evil pickle (zip)", buf.getvalue()
    if choice == 3:
        return "evil pickle (raw)", pickle.dumps({"config": Evil(marker)})
    ck = torch.load(io.BytesIO(fx.ckpt), weights_only=True)
    if choice in (4, 5, 6):
        what = rng.choice(sorted(CONFIG_EDITS))
        CONFIG_EDITS[what](ck["config"])
    elif choice == 7:
        what = rng.choice(["state_dict list", "state_dict str", "state_dict int keys", "nan weights",
                           "wrong shapes", "missing keys"])
        sd = ck["state_dict"]
        if what == "state_dict list":
            ck["state_dict"] = list(sd.values())
        elif what == "state_dict str":
            ck["state_dict"] = "weights"
        elif what == "state_dict int keys":
            ck["state_dict"] = {i: v for i, v in enumerate(sd.values())}
        elif what == "nan weights":
            k = next(k for k, v in sd.items() if v.is_floating_point() and v.numel() > 1)
            sd[k] = torch.full_like(sd[k], float("nan"))
        elif what == "wrong shapes":
            k = next(k for k, v in sd.items() if v.is_floating_point() and v.numel() > 1)
            sd[k] = torch.zeros(3, 3)
        else:
            sd.pop(next(iter(sd)))
    elif choice == 8:
        what = rng.choice(["a list", "no config", "method int", "dataset unknown"])
        if what == "a list":
            ck = [1, 2]
        elif what == "no config":
            ck.pop("config")
        elif what == "method int":
            ck["method"] = 5
        else:
            ck["dataset"] = "cifar"
    else:
        return "random bytes", rng.randbytes(rng.randrange(0, 5000))
    buf = io.BytesIO()
    torch.save(ck, buf)
    return f"edited: {what}", buf.getvalue()


def idx(arr: np.ndarray) -> bytes:
    return bytes([0, 0, 8, arr.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in arr.shape) + arr.tobytes()


def mnist_variants(rng: random.Random, marker: str) -> tuple[str, dict[str, bytes], str]:
    """(what, files, data path) of a damaged local MNIST."""
    x = np.zeros((5, 28, 28), np.uint8)
    y = np.arange(5, dtype=np.uint8)
    good = {"x_train": x, "y_train": y, "x_test": x[:2], "y_test": y[:2]}
    choice = rng.randrange(12)

    def npz(arrays, pickled=False):
        return zip_bytes([(f"{k}.npy", evil_npy(marker) if (pickled and k == "x_test") else npy(v))
                          for k, v in arrays.items()])
    if choice == 0:
        return "npz truncated", {"m.npz": npz(good)[: rng.randrange(200)]}, "m.npz"
    if choice == 1:
        return "npz pickled array", {"m.npz": npz(good, pickled=True)}, "m.npz"
    if choice == 2:
        return "npz bomb", {"m.npz": deflate_bomb("x_train.npy")}, "m.npz"
    if choice == 3:
        what = rng.choice(["float images", "labels 11", "labels float", "images 2-D", "lengths differ", "missing"])
        bad = dict(good)
        if what == "float images":
            bad["x_train"] = x.astype(np.float32)
        elif what == "labels 11":
            bad["y_train"] = y + 11
        elif what == "labels float":
            bad["y_test"] = y[:2].astype(np.float64)
        elif what == "images 2-D":
            bad["x_test"] = x[0]
        elif what == "lengths differ":
            bad["y_train"] = y[:3]
        else:
            bad.pop("y_test")
        return f"npz {what}", {"m.npz": npz(bad)}, "m.npz"
    stems = {"train-images-idx3-ubyte": idx(x), "train-labels-idx1-ubyte": idx(y),
             "t10k-images-idx3-ubyte": idx(x[:2]), "t10k-labels-idx1-ubyte": idx(y[:2])}
    victim = rng.choice(sorted(stems))
    if choice == 4:
        stems[victim] = stems[victim][: rng.randrange(len(stems[victim]))]
        what = "IDX truncated"
    elif choice == 5:
        stems[victim] = b"\x01\x02" + stems[victim][2:]
        what = "IDX bad magic"
    elif choice == 6:
        stems[victim] = bytes([0, 0, 8, 2]) + (1 << 31).to_bytes(4, "big") * 2
        what = "IDX huge dims"
    elif choice == 7:
        stems[victim] = bytes([0, 0, 8, 255]) + b"\xff" * 1020
        what = "IDX 255 dims"
    elif choice == 8:
        stems.pop(victim)
        stems[victim + ".gz"] = gzip.compress(idx(x))[: rng.randrange(10, 60)]
        what = "gz truncated"
    elif choice == 9:
        stems.pop(victim)
        stems[victim + ".gz"] = gzip_bomb()
        what = "gz bomb"
    elif choice == 10:
        stems.pop(victim)
        stems[victim + ".gz"] = b"\x1f\x8b" + rng.randbytes(40)
        what = "gz garbage"
    else:
        stems.pop(victim)
        what = "IDX missing"
    return what, {f"mnist/{k}": v for k, v in stems.items()}, "mnist"


def rtl_variants(fx: Fixtures, rng: random.Random) -> tuple[str, list]:
    """A damaged rtl folder, as setup steps on a copy of the good one (always invalid)."""
    man = json.loads((fx.rtl / "manifest.json").read_text())
    choice = rng.randrange(12)

    def write_manifest(data: bytes):
        return lambda ws: (ws / "rtl" / "manifest.json").write_bytes(data)

    def edited(edit):
        m = json.loads(json.dumps(man))
        edit(m)
        return write_manifest(json.dumps(m).encode())
    edits = {
        "rows -1": lambda m: m["config"].__setitem__("rows", -1),
        "rows '8'": lambda m: m["config"].__setitem__("rows", "8"),
        "lanes 10^9": lambda m: m["config"].__setitem__("lanes", 10 ** 9),
        "clock NaN": lambda m: m["config"].__setitem__("clock_mhz", float("nan")),
        "no config": lambda m: m.pop("config"),
        "no output": lambda m: m.pop("output"),
        "beats 0": lambda m: m["output"].__setitem__("beats", 0),
        "model hash": lambda m: m.__setitem__("model_hash", "0" * 64),
        "tool": lambda m: m.__setitem__("tool", "vivado"),
        "cols changed": lambda m: m["config"].__setitem__("cols", 4),
        "extra": lambda m: m.__setitem__("extra", {"a": 1}),
        "task": lambda m: m.__setitem__("task", "segment"),
    }
    if choice == 0:
        return "manifest not UTF-8", [write_manifest(b"{\"tool\": \"\xff\xfe\"}")]
    if choice == 1:
        return "manifest a list", [write_manifest(b"[1, 2]")]
    if choice == 2:
        return "manifest deep", [write_manifest(deep_json(rng.choice([1000, 50000])))]
    if choice == 3:
        return "manifest 5 MB", [write_manifest(b'{"a": "' + b"x" * (5 << 20) + b'"}')]
    if choice in (4, 5, 6):
        what = rng.choice(sorted(edits))
        return f"manifest {what}", [edited(edits[what])]
    if choice == 7:
        return "Verilog missing", [lambda ws: (ws / "rtl" / "hwbin_top.v").unlink()]
    if choice == 8:
        return "model.hwbin damaged", [lambda ws: (ws / "rtl" / "model.hwbin").write_bytes(
            bitflips(fx.ir, rng, 4))]
    if choice == 9:
        return "manifest a folder", [lambda ws: ((ws / "rtl" / "manifest.json").unlink(),
                                                 (ws / "rtl" / "manifest.json").mkdir())]
    if choice == 10:
        return "rtl a file", [lambda ws: (shutil.rmtree(ws / "rtl"), (ws / "rtl").write_bytes(b"x"))]
    return "manifest empty", [write_manifest(b"")]


def _copy_rtl(fx):
    return lambda ws: shutil.copytree(fx.rtl, ws / "rtl", ignore=shutil.ignore_patterns("sim_build"))


def _copy_own(src: Path, name: str):
    return lambda ws: shutil.copytree(src, ws / name)


BAD_VALUES = ["0", "-1", "nan", "inf", "-inf", "1e400", "99999999999999999999", "abc", "", "1.5", "0x10",
              "--", "1,2", "-0.5", "2", "1e-400", "100000", "\u0663", "9" * 5000]
OPTIONS = {
    "train": ["--epochs", "--order", "--seed", "--lr", "--batch-size", "--ratios"],
    "golden": ["--indices"], "firmware": ["--vectors", "--prefix"], "rtl": ["--rows", "--cols", "--lanes", "--clock-mhz"],
    "sim": ["--vectors", "--gap", "--seed"], "synth": ["--seed"], "board run": ["--vectors"],
}
RATIO_VALUES = ["a,b", "50,75", "100,50", ",", "0,100", "nan,100", "50,,100", "-5,100", "1e9"]
INDEX_VALUES = ["0-100000000", "a", "5-2", "-1", "0,,1", "1-2-3", "99999999999", "0-9999", " "]


def _rejects(verb: str, option: str, value: str) -> bool:
    """Whether the parser's own type for ``option`` refuses ``value`` (so no case accidentally
    starts a long valid run)."""
    from hwbin.cli import build_parser

    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices[verb.split()[0]]
    if verb == "board run":
        sub = sub._subparsers._group_actions[0].choices["run"]
    action = next(a for a in sub._actions if option in a.option_strings)
    try:
        action.type(value)
    except Exception:
        return True
    return False


def arg_case(fx: Fixtures, rng: random.Random) -> Case:
    verb = rng.choice(sorted(OPTIONS))
    option = rng.choice(OPTIONS[verb])
    pool = RATIO_VALUES if option == "--ratios" else INDEX_VALUES if option == "--indices" else BAD_VALUES
    if option == "--prefix":
        pool = ["1abc", "ABC", "a-b", "", "a" * 40, "a b", "é"]
    value = rng.choice(pool)
    tries = 0
    while not _rejects(verb, option, value) and tries < 50:
        value, tries = rng.choice(pool), tries + 1
    if not _rejects(verb, option, value):
        value = "abc"
    good = str(fx.good_ir)
    base = {"train": ["train", "--model", "digits-tiny", "--out", "run"], "golden": ["golden", good],
            "firmware": ["firmware", good, "-o", "fw", "--target", "host"], "rtl": ["rtl", good, "-o", "rtlout"],
            "sim": ["sim", "rtl"], "synth": ["synth", "rtl", "--board", "ecp5-25f"],
            "board run": ["board", "run", "--port", "/dev/hwbin-no-such-tty", "--rtl-dir", "rtl"]}[verb]
    setup = [_copy_rtl(fx)] if verb in ("sim", "synth", "board run") else []
    return Case(f"argument {verb} {option}", base + [f"{option}={value}"], setup=setup, names=[option])


def output_case(fx: Fixtures, rng: random.Random) -> Case:
    """An output path a careless or hostile user might give, among files hwbin did not write
    and hwbin's own earlier outputs."""
    verb = rng.choice(["export", "rtl", "firmware", "train", "golden", "synth"])
    good_ir, good_ckpt = str(fx.good_ir), str(fx.good_ckpt)
    files = {"afile": b"user data\n", "proj/keep.txt": b"user project\n", "proj/sub/notes.md": b"notes\n"}
    setup = [_copy_own(fx.rtl, "oldrtl"), _copy_own(fx.fw, "oldfw")]
    paths = [".", "..", "/", "afile", "afile/sub", "proj", "proj/", "a" * 300, "x/" + "b" * 300 + "/c",
             "/proc/hwbin-x", "/sys/hwbin-x", "link", "oldrtl", "oldfw", "oldrtl+user file", "new/deep/out",
             "proj/keep.txt", "~", os.path.expanduser("~")]
    path = rng.choice(paths)
    replaceable = path in ("oldrtl", "oldfw")
    if path == "link":
        setup.append(lambda ws: os.symlink(ws / "proj", ws / "link"))
    if path == "oldrtl+user file":
        path = "oldrtl"
        setup.append(lambda ws: (ws / "oldrtl" / "mine.txt").write_text("user file\n"))
    if verb == "export":
        if replaceable and rng.random() < 0.5:
            path = "good-copy.hwbin"   # an IR file hwbin wrote: may be replaced
            setup.append(lambda ws: shutil.copyfile(fx.good_ir, ws / "good-copy.hwbin"))
        argv = ["export", good_ckpt, "-o", path]
    elif verb == "golden":
        argv = ["golden", good_ir, "--dump-layers", path, "--indices", "0-2"]
    elif verb == "rtl":
        argv = ["rtl", good_ir, "-o", path, "--rows", "8", "--cols", "2", "--lanes", "8"]
    elif verb == "firmware":
        argv = ["firmware", good_ir, "-o", path, "--target", "host", "--vectors", "2"]
    elif verb == "train":
        argv = ["train", "--model", "digits-tiny", "--method", "fp", "--epochs", "1", "--no-plot", "--out", path]
    else:
        argv = ["synth", "rtl", "--board", "ecp5-25f", "-o", path, "--seed", "-1"]  # refused seed: never builds
        setup.append(_copy_rtl(fx))
    return Case(f"output {verb} -o {path[:20]}", argv, files=files, setup=setup, target=path,
                replaceable=replaceable, names=[path[:30], "-o", "--out", "--dump-layers", "argument"])


def input_case(fx: Fixtures, rng: random.Random, marker: str) -> Case:
    family = rng.choices(["ir", "ckpt", "data", "rtl"], weights=[5, 3, 2, 2])[0]
    if family == "ir":
        what, data = ir_variants(fx, rng, marker)
        verb = rng.choices(["inspect", "golden", "firmware", "rtl"], weights=[4, 3, 2, 2])[0]
        argv = {"inspect": ["inspect", "bad.hwbin"], "golden": ["golden", "bad.hwbin"],
                "firmware": ["firmware", "bad.hwbin", "-o", "fw", "--target", "host", "--vectors", "2"],
                "rtl": ["rtl", "bad.hwbin", "-o", "rtlout", "--rows", "8", "--cols", "2", "--lanes", "8"]}[verb]
        target = {"firmware": "fw", "rtl": "rtlout"}.get(verb)
        return Case(f"IR {what} -> {verb}", argv, files={"bad.hwbin": data}, target=target, names=["bad.hwbin"])
    if family == "ckpt":
        what, data = ckpt_variants(fx, rng, marker)
        if rng.random() < 0.75:
            argv, target = ["export", "bad.pt", "-o", "out.hwbin"], "out.hwbin"
        else:
            argv, target = ["train", "--model", "digits-tiny", "--init", "bad.pt", "--epochs", "14", "--out", "run"], "run"
        return Case(f"checkpoint {what} -> {argv[0]}", argv, files={"bad.pt": data}, target=target, names=["bad.pt"])
    if family == "data":
        what, files, path = mnist_variants(rng, marker)
        verb = rng.choice(["golden", "train", "export", "firmware"])
        argv = {"golden": ["golden", str(fx.good_ir)],
                "train": ["train", "--model", "digits-tiny", "--out", "run", "--epochs", "14"],
                "export": ["export", str(fx.good_ckpt), "-o", "out.hwbin"],
                "firmware": ["firmware", str(fx.good_ir), "-o", "fw", "--target", "host"]}[verb]
        target = {"train": "run", "export": "out.hwbin", "firmware": "fw"}.get(verb)
        return Case(f"data {what} -> {verb}", argv + ["--dataset", "mnist", "--data-path", path], files=files,
                    target=target, names=[path, "m.npz", "mnist", "data set"])
    what, steps = rtl_variants(fx, rng)
    verb = rng.choice(["sim", "synth", "board"])
    argv = {"sim": ["sim", "rtl", "--vectors", "2"], "synth": ["synth", "rtl", "--board", "ecp5-25f"],
            "board": ["board", "run", "--port", "/dev/hwbin-no-such-tty", "--rtl-dir", "rtl"]}[verb]
    return Case(f"rtl folder {what} -> {verb}", argv, setup=[_copy_rtl(fx), *steps], target=None,
                names=["rtl"])


def make_cases(fx: Fixtures, n: int, seed: int, marker: str) -> list[Case]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        r = i % 10
        if r < 6:
            out.append(input_case(fx, rng, marker))
        elif r < 8:
            out.append(arg_case(fx, rng))
        else:
            out.append(output_case(fx, rng))
    return out


# --------------------------------------------------------------------------- running and checking

def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` -> a digest of its content (or 'dir' / 'link')."""
    snap = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            p = Path(dirpath) / d
            snap[str(p.relative_to(root))] = "link" if p.is_symlink() else "dir"
        for f in filenames:
            p = Path(dirpath) / f
            if p.is_symlink():
                snap[str(p.relative_to(root))] = "link"
            else:
                snap[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return snap


@dataclass
class Outcome:
    case: Case
    status: int
    stderr: str
    seconds: float
    traceback: bool = False
    rss_kib: int = 0
    problems: list[str] = field(default_factory=list)


def run_in_process(argv: list[str]) -> tuple[int, str, bool]:
    from hwbin import cli

    err = io.StringIO()
    tb = False
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            status = cli.main(argv)
        except SystemExit as e:
            status = e.code if isinstance(e.code, int) else 2
        except BaseException:  # a traceback reached the user
            import traceback

            traceback.print_exc()
            status, tb = 99, True
    return status, err.getvalue(), tb


def run_subprocess(argv: list[str], cwd: Path) -> tuple[int, str, bool, int]:
    """A real ``python -m hwbin.cli`` run; also returns its peak RSS in KiB (from wait4)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "hwbin.cli", *argv], cwd=cwd, stdout=subprocess.DEVNULL,
                                stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        text = err.read().decode("utf-8", "replace")
    return proc.returncode, text, "Traceback" in text, usage.ru_maxrss


def _inside(path: str, target: str | None) -> bool:
    """``path`` is the target, inside it, or one of the parent folders made for it."""
    if target is None:
        return False
    t = os.path.normpath(target)
    return path == t or path.startswith(t + os.sep) or t.startswith(path + os.sep)


def check(case: Case, status: int, stderr: str, tb: bool, before: dict, after: dict, marker: Path,
          base_before: dict, base_after: dict) -> list[str]:
    problems = []
    if tb or "Traceback" in stderr:
        problems.append("traceback")
    if status == 3:
        problems.append("internal error")
    if marker.exists():
        problems.append("code execution")
    target = os.path.normpath(case.target) if case.target and not os.path.isabs(case.target) else None
    replaced_ok = status == 0 and case.replaceable
    for path, digest in before.items():
        if after.get(path) != digest and not (replaced_ok and _inside(path, target)):
            problems.append(f"lost or replaced: {path}")
            break
    if base_after != base_before:
        problems.append("lost or replaced: a fixture")
    new = [p for p in after if p not in before]
    if status != 0 and new:
        problems.append(f"partial output: {new[0]}")
    if status == 0 and any(not _inside(p, target) for p in new):
        problems.append(f"stray output: {next(p for p in new if not _inside(p, target))}")
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    if status not in (0, 1):
        if status != 2 or len(lines) != 1:
            problems.append(f"not one line with exit 2 (exit {status}, {len(lines)} lines)")
        elif not any(n and n.lower() in lines[0].lower() for n in case.names + ["field", "entry", "argument"]):
            problems.append("error names nothing of the case")
    return problems


def run_case(case: Case, work: Path, marker: Path, fx: Fixtures, subprocess_mode: bool,
             base_before: dict) -> Outcome:
    ws = Path(tempfile.mkdtemp(dir=work))
    for rel, data in case.files.items():
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_bytes(data)
    for step in case.setup:
        step(ws)
    before = snapshot(ws)
    old = os.getcwd()
    t0 = time.perf_counter()
    os.chdir(ws)
    try:
        rss = 0
        if subprocess_mode:
            status, stderr, tb, rss = run_subprocess(case.argv, ws)
        else:
            status, stderr, tb = run_in_process(case.argv)
    finally:
        os.chdir(old)
    seconds = time.perf_counter() - t0
    after = snapshot(ws)
    out = Outcome(case, status, stderr, seconds, tb, rss_kib=rss)
    out.problems = check(case, status, stderr, tb, before, after, marker, base_before, base_before)
    if seconds > 60:
        out.problems.append(f"slow: {seconds:.0f} s")
    if marker.exists():
        marker.unlink()
    shutil.rmtree(ws, ignore_errors=True)
    return out


def summarize(outcomes: list[Outcome]) -> dict:
    def count(prefix):
        return sum(any(p.startswith(prefix) for p in o.problems) for o in outcomes)
    return {
        "cases": len(outcomes),
        "exit_0": sum(o.status == 0 for o in outcomes), "exit_1": sum(o.status == 1 for o in outcomes),
        "exit_2": sum(o.status == 2 for o in outcomes),
        "tracebacks": count("traceback"), "internal_errors": count("internal error"),
        "code_executions": count("code execution"), "lost_files": count("lost or replaced"),
        "partial_outputs": count("partial output") + count("stray output"),
        "not_one_line": count("not one line"), "unnamed_errors": count("error names nothing"),
        "max_case_s": round(max((o.seconds for o in outcomes), default=0), 2),
        "slowest": [f"{o.case.kind}: {o.seconds:.1f} s" for o in sorted(outcomes, key=lambda o: -o.seconds)[:3]],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=2400)
    ap.add_argument("--subprocess", type=int, default=60, help="of them also run as real subprocesses")
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "fuzz_cli.json"))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="hwbin-fuzz-"))
    try:
        t0 = time.perf_counter()
        fx = make_fixtures(Path(tempfile.mkdtemp(dir=work)))
        marker = work / MARKER_NAME
        cases = make_cases(fx, args.cases, args.seed, str(marker))
        base_before = snapshot(fx.base)
        outcomes = []
        from hwbin.util import progress

        for case in progress(cases, desc="fuzz", unit="case"):
            outcomes.append(run_case(case, work, marker, fx, False, base_before))
        sample = random.Random(args.seed).sample(cases, min(args.subprocess, len(cases)))
        sub = [run_case(c, work, marker, fx, True, base_before) for c in progress(sample, desc="subprocess")]
        if snapshot(fx.base) != base_before:
            print("FIXTURES CHANGED")
        res = {"in_process": summarize(outcomes), "subprocess": summarize(sub),
               "peak_rss_mib_in_process": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
               "peak_rss_mib_subprocess": max((o.rss_kib for o in sub), default=0) // 1024,
               "wall_s": round(time.perf_counter() - t0, 1),
               "kinds": sorted({o.case.kind.split(" -> ")[0].split(":")[0] for o in outcomes}),
               "problems": [{"case": o.case.kind, "argv": o.case.argv[:8], "problems": o.problems,
                             "stderr": o.stderr[-400:]} for o in outcomes + sub if o.problems][:50]}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
        print(json.dumps({k: v for k, v in res.items() if k not in ("problems", "kinds")}, indent=1))
        for p in res["problems"][:20]:
            print(p)
        bad = sum(res["in_process"][k] + res["subprocess"][k] for k in
                  ("tracebacks", "internal_errors", "code_executions", "lost_files", "partial_outputs",
                   "not_one_line", "unnamed_errors"))
        bad += sum(o.seconds > 60 for o in outcomes + sub)
        return 1 if bad else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
