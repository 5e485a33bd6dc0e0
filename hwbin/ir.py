"""The IR: one versioned file that every back end reads (format: ``docs/ir.md``).

A ``.hwbin`` file is a zip (stored, fixed timestamps, sorted names) of ``manifest.json``
and one ``.npy`` per array. Every field is validated on load; any defect is a one-line
``IRError`` naming the file, the layer and the field, expected against found.
"""
from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__, arith, limits
from .errors import HwbinError
from .util import atomic_write_bytes, sha256_hex

MAGIC = "hwbin-ir"
VERSION = 1
KINDS = ("conv", "deconv", "dense", "maxpool", "shuffle")
COMPUTE = ("conv", "deconv", "dense")
MAX_SCORE_BITS = 32

# Arrays each kind carries, with their dtype; shapes are checked in _check_arrays.
_ARRAYS = {
    "weight": np.uint8, "thresholds": np.int32, "directions": np.int8,
    "score_mul": np.int32, "score_add": np.int32, "perm": np.int32,
}


class IRError(HwbinError):
    """A malformed, corrupted or inconsistent IR file or model."""


@dataclass
class Layer:
    name: str
    kind: str
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    output_padding: tuple[int, int] = (0, 0)
    groups: int = 1
    in_order: int = 0
    in_bases: tuple[int, ...] = ()
    output: str = ""          # "levels" or "scores" for compute layers
    out_order: int = 0
    out_bases: tuple[int, ...] = ()
    acc_bits: int = 0
    score_bits: int = 0
    score_shift: int = 0
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def is_compute(self) -> bool:
        return self.kind in COMPUTE

    def taps_per_output(self) -> list[int]:
        """Binary taps (n of the contract) summed per output, one entry per stride phase."""
        cin_g = self.in_shape[0] // self.groups
        if self.kind == "dense":
            return [self.in_shape[0] * self.in_shape[1] * self.in_shape[2]]
        kh, kw = self.kernel
        if self.kind == "conv":
            return [cin_g * kh * kw]
        sh, sw = self.stride
        return [cin_g * len(range(ry, kh, sh)) * len(range(rx, kw, sw)) for ry in range(sh) for rx in range(sw)]

    def acc_bound(self) -> int:
        return arith.acc_bound(self.in_bases, max(self.taps_per_output()))

    def binary_macs(self) -> int:
        """Binary multiply-accumulates per image (one per weight bit per input plane)."""
        if not self.is_compute:
            return 0
        cout, oh, ow = self.out_shape
        if self.kind == "deconv":
            # every phase covers its share of output positions
            sh, sw = self.stride
            per_pos = sum(self.taps_per_output()) / (sh * sw)
            return int(round(per_pos * cout * oh * ow * self.in_order))
        return self.taps_per_output()[0] * cout * oh * ow * self.in_order

    def weight_bits(self) -> int:
        return int(self.arrays["weight"].size) if "weight" in self.arrays else 0

    def meta(self) -> dict:
        d = {"name": self.name, "kind": self.kind, "in_shape": list(self.in_shape),
             "out_shape": list(self.out_shape)}
        if self.kind in ("conv", "deconv", "maxpool"):
            d.update(kernel=list(self.kernel), stride=list(self.stride))
        if self.kind in ("conv", "deconv"):
            d.update(padding=list(self.padding), groups=self.groups)
        if self.kind == "deconv":
            d["output_padding"] = list(self.output_padding)
        if self.is_compute:
            d.update(in_order=self.in_order, in_bases=list(self.in_bases), output=self.output,
                     acc_bits=self.acc_bits)
            if self.output == "levels":
                d.update(out_order=self.out_order, out_bases=list(self.out_bases))
            else:
                d.update(score_bits=self.score_bits, score_shift=self.score_shift)
        d["arrays"] = {k: f"{self.name}.{k}.npy" for k in sorted(self.arrays)}
        return d


@dataclass
class Model:
    input_shape: tuple[int, int, int]
    task: str
    num_classes: int
    layers: list[Layer]
    source: dict = field(default_factory=dict)

    @property
    def hash(self) -> str:
        return model_hash(self)

    def compute_layers(self) -> list[Layer]:
        return [layer for layer in self.layers if layer.is_compute]


# --------------------------------------------------------------------------- save

def _manifest(model: Model) -> dict:
    return {"magic": MAGIC, "version": VERSION, "producer": f"hwbin {__version__}",
            "input": {"shape": list(model.input_shape), "dtype": "uint8", "order": arith.PIXEL_ORDER},
            "task": model.task, "num_classes": model.num_classes, "source": model.source,
            "layers": [layer.meta() for layer in model.layers]}


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(a), allow_pickle=False)
    return buf.getvalue()


def _entries(model: Model) -> dict[str, bytes]:
    out = {}
    for layer in model.layers:
        for k, a in layer.arrays.items():
            out[f"{layer.name}.{k}.npy"] = _npy_bytes(a)
    return out


def _canonical(manifest: dict) -> bytes:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()


def model_hash(model: Model) -> str:
    """sha256 over the canonical manifest (without its hash) and every array, by name."""
    entries = _entries(model)
    man = _manifest(model)
    man.pop("producer")  # the same model written by another hwbin version has the same hash
    return sha256_hex(_canonical(man), *(name.encode() + entries[name] for name in sorted(entries)))


def to_bytes(model: Model) -> bytes:
    validate(model, "<model>")
    man = _manifest(model)
    man["hash"] = model_hash(model)
    files = {"manifest.json": json.dumps(man, indent=1, sort_keys=True).encode() + b"\n", **_entries(model)}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name in ["manifest.json"] + sorted(k for k in files if k != "manifest.json"):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            z.writestr(info, files[name])
    return buf.getvalue()


def save(model: Model, path) -> str:
    """Write atomically; returns the model hash."""
    atomic_write_bytes(path, to_bytes(model))
    return model_hash(model)


# --------------------------------------------------------------------------- load

class _Reader:
    """Typed field access that names the file, layer and field in every error."""

    def __init__(self, path: str):
        self.path = path

    def fail(self, where: str, msg: str):
        raise IRError(f"{self.path}: {where}: {msg}")

    def get(self, d: dict, key: str, typ, where: str):
        if not isinstance(d, dict) or key not in d:
            self.fail(where, f"field '{key}' missing")
        v = d[key]
        ok = isinstance(v, typ) and not (typ is int and isinstance(v, bool))
        if not ok:
            self.fail(where, f"field '{key}': expected {typ.__name__}, found {type(v).__name__} {v!r}"[:200])
        return v

    def ints(self, d: dict, key: str, n: int | None, where: str, minimum: int | None = None) -> tuple[int, ...]:
        v = self.get(d, key, list, where)
        if (n is not None and len(v) != n) or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            self.fail(where, f"field '{key}': expected {n or 'a list of'} integers, found {v!r}"[:200])
        if minimum is not None and any(x < minimum for x in v):
            self.fail(where, f"field '{key}': expected values >= {minimum}, found {v!r}")
        return tuple(v)


def _open_zip(source, path: str):
    from .reading import open_zip

    try:
        return open_zip(source, path)
    except HwbinError as e:
        raise IRError(f"{path}: not a hwbin IR file ({str(e).removeprefix(path + ': ')})") from None


def _read_manifest(z, r: _Reader, path: str) -> dict:
    from .reading import parse_json, read_member

    if "manifest.json" not in z.NameToInfo:
        r.fail("manifest", "entry 'manifest.json' missing from the file")
    man = parse_json(read_member(z, "manifest.json", path, limits.MAX_JSON_BYTES), f"{path}: manifest.json")
    if not isinstance(man, dict):
        r.fail("manifest.json", f"expected an object, found {type(man).__name__}")
    return man


def _read_array(z, r: _Reader, where: str, key: str, fname: str) -> np.ndarray:
    from .reading import npy_from_bytes, read_member

    if fname not in z.NameToInfo:
        r.fail(where, f"entry '{fname}' missing from the file")
    a = npy_from_bytes(read_member(z, fname, f"{r.path}: {where}"), f"{r.path}: {where}: array '{key}'")
    if a.dtype != _ARRAYS[key]:
        r.fail(where, f"array '{key}': expected dtype {np.dtype(_ARRAYS[key])}, found {a.dtype}")
    return a


def _read_layer(z, r: _Reader, i: int, ld) -> Layer:
    where = f"layer {i}"
    if not isinstance(ld, dict):
        r.fail(where, f"expected an object, found {type(ld).__name__}")
    name = r.get(ld, "name", str, where)
    where = f"layer {i} '{name[:40]}'"
    kind = r.get(ld, "kind", str, where)
    if kind not in KINDS:
        r.fail(where, f"field 'kind': expected one of {', '.join(KINDS)}, found {kind!r}"[:300])
    layer = Layer(name, kind, r.ints(ld, "in_shape", 3, where, 1), r.ints(ld, "out_shape", 3, where, 1))
    if kind in ("conv", "deconv", "maxpool"):
        layer.kernel = r.ints(ld, "kernel", 2, where, 1)
        layer.stride = r.ints(ld, "stride", 2, where, 1)
    if kind in ("conv", "deconv"):
        layer.padding = r.ints(ld, "padding", 2, where, 0)
        layer.groups = r.get(ld, "groups", int, where)
    if kind == "deconv":
        layer.output_padding = r.ints(ld, "output_padding", 2, where, 0)
    if kind in COMPUTE:
        layer.in_order = r.get(ld, "in_order", int, where)
        layer.in_bases = r.ints(ld, "in_bases", None, where)
        layer.output = r.get(ld, "output", str, where)
        layer.acc_bits = r.get(ld, "acc_bits", int, where)
        if layer.output == "levels":
            layer.out_order = r.get(ld, "out_order", int, where)
            layer.out_bases = r.ints(ld, "out_bases", None, where)
        elif layer.output == "scores":
            layer.score_bits = r.get(ld, "score_bits", int, where)
            layer.score_shift = r.get(ld, "score_shift", int, where)
        else:
            r.fail(where, f"field 'output': expected 'levels' or 'scores', found {layer.output!r}"[:300])
    _check_layer_sizes(r, where, layer)
    refs = r.get(ld, "arrays", dict, where)
    for key, fname in sorted(refs.items()):
        if key not in _ARRAYS or fname != f"{name}.{key}.npy":
            r.fail(where, f"field 'arrays': unexpected entry {key!r}: {fname!r}"[:300])
        layer.arrays[key] = _read_array(z, r, where, key, fname)
    return layer


def first_difference(found, expected, where: str = "") -> str | None:
    """Where two JSON values first differ, as "field 'a.b': expected X, found Y"."""
    if isinstance(expected, dict) and isinstance(found, dict):
        for k in sorted(set(found) | set(expected), key=str):
            at = f"{where}.{k}" if where else str(k)
            if k not in expected:
                return f"field '{at}': not part of IR version {VERSION} (unexpected)"
            if k not in found:
                return f"field '{at}' missing"
            diff = first_difference(found[k], expected[k], at)
            if diff:
                return diff
        return None
    if isinstance(expected, list) and isinstance(found, list) and len(found) == len(expected):
        for j, (f, e) in enumerate(zip(found, expected)):
            diff = first_difference(f, e, f"{where}[{j}]")
            if diff:
                return diff
        return None
    if type(found) is not type(expected) or found != expected:
        return f"field '{where}': expected {expected!r}, found {found!r}"[:300]
    return None


def _read_model(z, path: str) -> Model:
    r = _Reader(path)
    man = _read_manifest(z, r, path)
    if man.get("magic") != MAGIC:
        r.fail("manifest", f"field 'magic': expected {MAGIC!r}, found {man.get('magic')!r}"[:300])
    if man.get("version") != VERSION:
        r.fail("manifest", f"field 'version': expected {VERSION}, found {man.get('version')!r}"[:300])
    inp = r.get(man, "input", dict, "manifest")
    in_shape = r.ints(inp, "shape", 3, "input", minimum=1)
    if inp.get("dtype") != "uint8":
        r.fail("input", f"field 'dtype': expected 'uint8', found {inp.get('dtype')!r}"[:300])
    if inp.get("order") != arith.PIXEL_ORDER or isinstance(inp.get("order"), bool):
        r.fail("input", f"field 'order': expected {arith.PIXEL_ORDER} (uint8 pixels as 8 bit planes), "
                        f"found {inp.get('order')!r}"[:300])
    task = r.get(man, "task", str, "manifest")
    if task not in ("classify", "segment"):
        r.fail("manifest", f"field 'task': expected 'classify' or 'segment', found {task!r}"[:300])
    num_classes = r.get(man, "num_classes", int, "manifest")
    source = man.get("source", {})
    if not isinstance(source, dict):
        r.fail("manifest", f"field 'source': expected object, found {type(source).__name__}")
    layer_list = r.get(man, "layers", list, "manifest")
    if len(layer_list) > limits.MAX_LAYERS:
        r.fail("manifest", f"field 'layers': expected at most {limits.MAX_LAYERS} layers (hwbin.limits), "
                           f"found {len(layer_list)}")
    layers = [_read_layer(z, r, i, ld) for i, ld in enumerate(layer_list)]
    model = Model(in_shape, task, num_classes, layers, source)
    validate(model, path)
    stated = man.get("hash")
    if stated != model_hash(model):
        r.fail("manifest", f"field 'hash': expected {model_hash(model)[:16]}..., found {str(stated)[:16]}... "
                           f"(file edited or damaged)")
    _check_fully_hashed(r, z, man, model)
    return model


def _check_fully_hashed(r: _Reader, z, man: dict, model: Model) -> None:
    """Every field and entry of the file is one the hash covers: the manifest is exactly the
    canonical one (but for 'hash' and the free-text 'producer'), and the zip holds no entry
    the manifest does not name. So ``input.order`` and any edited or added field are refused,
    and the hash of every existing model is unchanged."""
    if not isinstance(man.get("producer", ""), str):
        r.fail("manifest", f"field 'producer': expected str, found {type(man['producer']).__name__}")
    expected = _manifest(model)
    expected.pop("producer")
    diff = first_difference({k: v for k, v in man.items() if k not in ("hash", "producer")}, expected)
    if diff:
        r.fail("manifest", diff)
    named = {"manifest.json"} | {f"{la.name}.{k}.npy" for la in model.layers for k in la.arrays}
    extra = sorted(set(z.NameToInfo) - named)
    if extra:
        r.fail("manifest", f"entry '{extra[0][:80]}' in the zip is not named by the manifest (unexpected)")


def from_bytes(data: bytes, path: str = "<bytes>") -> Model:
    """A validated model from the bytes of an IR file (``path`` names it in errors)."""
    with _open_zip(data, path) as z:
        return _read_model(z, path)


def load(path) -> Model:
    """A validated model from an IR file, read entry by entry within ``hwbin.limits``."""
    from .reading import check_file

    try:
        p = check_file(path, "IR file")
    except HwbinError as e:
        raise IRError(str(e)) from None
    with _open_zip(p, str(path)) as z:
        return _read_model(z, str(path))


def looks_like_ir(path) -> bool:
    """Whether ``path`` is a file hwbin wrote as an IR file (its manifest has hwbin's magic);
    what the output policy checks before replacing a file."""
    from .reading import parse_json, read_member

    try:
        with _open_zip(Path(path), str(path)) as z:
            man = parse_json(read_member(z, "manifest.json", str(path), limits.MAX_JSON_BYTES), str(path))
        return isinstance(man, dict) and man.get("magic") == MAGIC
    except (HwbinError, OSError):
        return False


# --------------------------------------------------------------------------- validation

def expected_out_shape(layer: Layer) -> tuple[int, int, int]:
    c, h, w = layer.in_shape
    kh, kw = layer.kernel
    sh, sw = layer.stride
    ph, pw = layer.padding
    if layer.kind == "conv":
        return (layer.out_shape[0], (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)
    if layer.kind == "deconv":
        oph, opw = layer.output_padding
        return (layer.out_shape[0], (h - 1) * sh - 2 * ph + kh + oph, (w - 1) * sw - 2 * pw + kw + opw)
    if layer.kind == "dense":
        return (layer.out_shape[0], 1, 1)
    if layer.kind == "maxpool":
        return (c, (h - kh) // sh + 1, (w - kw) // sw + 1)
    return (c, h, w)


def _check_shape(r: _Reader, where: str, key: str, shape) -> None:
    c, h, w = shape
    if c > limits.MAX_CHANNELS or h > limits.MAX_SIDE or w > limits.MAX_SIDE or c * h * w > limits.MAX_ACTIVATION:
        r.fail(where, f"field '{key}': expected at most {limits.MAX_CHANNELS} channels, sides of at most "
                      f"{limits.MAX_SIDE} and {limits.MAX_ACTIVATION} values (hwbin.limits), found {list(shape)}")


def _check_layer_sizes(r: _Reader, where: str, layer: Layer) -> None:
    """The documented limits, checked before a layer's arrays are read or anything is computed."""
    _check_shape(r, where, "in_shape", layer.in_shape)
    _check_shape(r, where, "out_shape", layer.out_shape)
    for key in ("kernel", "stride", "padding", "output_padding"):
        if max(getattr(layer, key)) > limits.MAX_SIDE:
            r.fail(where, f"field '{key}': expected at most {limits.MAX_SIDE}, found {list(getattr(layer, key))}")
    if abs(layer.groups) > limits.MAX_CHANNELS:
        r.fail(where, f"field 'groups': expected at most {limits.MAX_CHANNELS}, found {layer.groups}")
    for key in ("in_order", "out_order"):
        if not 0 <= getattr(layer, key) <= 8:
            r.fail(where, f"field '{key}': expected 1..8, found {getattr(layer, key)}")
    for key in ("in_bases", "out_bases"):
        bases = getattr(layer, key)
        if len(bases) > 8 or any(abs(b) > 1 << 30 for b in bases):
            r.fail(where, f"field '{key}': expected at most 8 bases below 2^30, found {list(bases)[:9]}")
    for key in ("acc_bits", "score_bits", "score_shift"):
        if not 0 <= getattr(layer, key) <= 64:
            r.fail(where, f"field '{key}': expected 0..64, found {getattr(layer, key)}")


def _check_model_size(r: _Reader, model: Model) -> None:
    bits = sum(layer.weight_bits() for layer in model.layers)
    if bits > limits.MAX_WEIGHT_BITS:
        r.fail("manifest", f"weights: expected at most {limits.MAX_WEIGHT_BITS:,} bits (hwbin.limits), found {bits:,}")
    macs = sum(layer.binary_macs() for layer in model.layers)
    if macs > limits.MAX_BINARY_MACS:
        r.fail("manifest", f"binary MACs per image: expected at most {limits.MAX_BINARY_MACS:,} (hwbin.limits), "
                           f"found {macs:,}")


def validate(model: Model, path: str = "<model>") -> None:
    """Check every structural invariant the back ends rely on, and the documented limits."""
    r = _Reader(path)
    if not model.layers:
        r.fail("manifest", "field 'layers': expected at least one layer, found none")
    if len(model.layers) > limits.MAX_LAYERS:
        r.fail("manifest", f"field 'layers': expected at most {limits.MAX_LAYERS} layers (hwbin.limits), "
                           f"found {len(model.layers)}")
    _check_shape(r, "input", "shape", model.input_shape)
    if model.num_classes > limits.MAX_CHANNELS:
        r.fail("manifest", f"field 'num_classes': expected at most {limits.MAX_CHANNELS}, found {model.num_classes}")
    if model.num_classes < 1:
        r.fail("manifest", f"field 'num_classes': expected >= 1, found {model.num_classes}")
    names = set()
    shape = tuple(model.input_shape)
    order, bases = arith.PIXEL_ORDER, arith.PIXEL_BASES
    compute = [i for i, lay in enumerate(model.layers) if lay.is_compute]
    if not compute or compute[0] != 0 or compute[-1] != len(model.layers) - 1:
        r.fail("manifest", "field 'layers': the first and last layers must be conv, deconv or dense")
    for i, layer in enumerate(model.layers):
        where = f"layer {i} '{layer.name[:40]}'"
        _check_layer_sizes(r, where, layer)
        if layer.name in names or not layer.name.replace("_", "").isalnum():
            r.fail(where, "field 'name': expected a unique identifier")
        names.add(layer.name)
        if tuple(layer.in_shape) != shape:
            r.fail(where, f"field 'in_shape': expected {list(shape)} (previous output), found {list(layer.in_shape)}")
        if layer.kind in ("conv", "deconv") and (layer.groups < 1 or layer.in_shape[0] % layer.groups
                                                 or layer.out_shape[0] % layer.groups):
            r.fail(where, f"field 'groups': {layer.groups} must divide {layer.in_shape[0]} in and "
                          f"{layer.out_shape[0]} out channels")
        if layer.kind == "conv" and any(p >= k for p, k in zip(layer.padding, layer.kernel)):
            r.fail(where, f"field 'padding': expected less than kernel {list(layer.kernel)}, found {list(layer.padding)}")
        if layer.kind == "deconv" and any(op >= s for op, s in zip(layer.output_padding, layer.stride)):
            r.fail(where, f"field 'output_padding': expected less than stride {list(layer.stride)}, "
                          f"found {list(layer.output_padding)}")
        exp = expected_out_shape(layer)
        if tuple(layer.out_shape) != exp or min(exp) < 1:
            r.fail(where, f"field 'out_shape': expected {list(exp)}, found {list(layer.out_shape)}")
        if layer.is_compute:
            if layer.in_order != order or tuple(layer.in_bases) != tuple(bases):
                r.fail(where, f"field 'in_bases': expected order {order} bases {list(bases)} "
                              f"(previous output), found order {layer.in_order} bases {list(layer.in_bases)}")
            last = i == len(model.layers) - 1
            if layer.output != ("scores" if last else "levels"):
                r.fail(where, f"field 'output': expected {'scores' if last else 'levels'}, found {layer.output!r}")
            if not last:
                if not 1 <= layer.out_order <= 8 or len(layer.out_bases) != layer.out_order:
                    r.fail(where, f"field 'out_order': expected 1..8 with as many bases, found "
                                  f"{layer.out_order} and {list(layer.out_bases)}")
                try:
                    arith.check_bases(layer.out_bases, "out_bases")
                except HwbinError as e:
                    r.fail(where, f"field {e}")
                order, bases = layer.out_order, tuple(layer.out_bases)
        if last_out_classes_mismatch(model, i):
            r.fail(where, f"field 'out_shape': expected {model.num_classes} channels (num_classes), "
                          f"found {layer.out_shape[0]}")
        _check_arrays(r, where, layer)
        shape = tuple(layer.out_shape)
    if model.task == "classify" and shape[1:] != (1, 1):
        r.fail("manifest", f"field 'task': classify needs 1x1 scores, found {list(shape)}")
    _check_model_size(r, model)


def last_out_classes_mismatch(model: Model, i: int) -> bool:
    return i == len(model.layers) - 1 and model.layers[i].out_shape[0] != model.num_classes


def _expect(r, where, layer, key, shape):
    a = layer.arrays.get(key)
    if a is None:
        r.fail(where, f"array '{key}' missing")
    if tuple(a.shape) != tuple(shape):
        r.fail(where, f"array '{key}': expected shape {list(shape)}, found {list(a.shape)}")
    return a


def _check_arrays(r: _Reader, where: str, layer: Layer) -> None:
    allowed = {"shuffle": {"perm"}, "maxpool": set()}.get(layer.kind)
    if allowed is None:
        allowed = {"weight"} | ({"thresholds", "directions"} if layer.output == "levels" else {"score_mul", "score_add"})
    extra = set(layer.arrays) - allowed
    if extra:
        r.fail(where, f"field 'arrays': unexpected {sorted(extra)} for kind {layer.kind}")
    if layer.kind == "shuffle":
        c = layer.in_shape[0]
        perm = _expect(r, where, layer, "perm", (c,))
        if sorted(perm.tolist()) != list(range(c)):
            r.fail(where, "array 'perm': expected a permutation of the channels")
        return
    if layer.kind == "maxpool":
        return
    cout, cin = layer.out_shape[0], layer.in_shape[0]
    if layer.kind == "dense":
        wshape = (cout,) + tuple(layer.in_shape)
    else:
        wshape = (cout, cin // layer.groups) + tuple(layer.kernel)
    wt = _expect(r, where, layer, "weight", wshape)
    if wt.size and wt.max() > 1:
        r.fail(where, f"array 'weight': expected bits 0/1, found value {int(wt.max())}")
    bound = layer.acc_bound()
    if arith.signed_width(bound) > MAX_SCORE_BITS:
        r.fail(where, f"accumulator: |acc| <= {bound} needs {arith.signed_width(bound)} bits, more than {MAX_SCORE_BITS}")
    if layer.acc_bits != arith.signed_width(bound):
        r.fail(where, f"field 'acc_bits': expected {arith.signed_width(bound)} for |acc| <= {bound}, found {layer.acc_bits}")
    if layer.output == "levels":
        t = _expect(r, where, layer, "thresholds", (cout, 2 ** layer.out_order - 1)).astype(np.int64)
        d = _expect(r, where, layer, "directions", (cout,))
        if not np.isin(d, (-1, 1)).all():
            r.fail(where, "array 'directions': expected values -1 or +1")
        if t.shape[1] > 1 and (np.diff(t, axis=1) < 0).any():
            o = int(np.nonzero((np.diff(t, axis=1) < 0).any(axis=1))[0][0])
            r.fail(where, f"array 'thresholds': expected sorted rows, row {o} is {t[o].tolist()}")
        if t.size and np.abs(t).max() > bound + 1:
            r.fail(where, f"array 'thresholds': expected |T| <= {bound + 1} (acc bound + 1), found {int(np.abs(t).max())}")
    else:
        mul = _expect(r, where, layer, "score_mul", (cout,)).astype(np.int64)
        add = _expect(r, where, layer, "score_add", (cout,)).astype(np.int64)
        smax = int(np.abs(mul).max()) * bound + int(np.abs(add).max())
        width = arith.signed_width(smax)
        if width > MAX_SCORE_BITS or layer.score_bits != width:
            r.fail(where, f"field 'score_bits': expected {width} (<= {MAX_SCORE_BITS}) for |score| <= {smax}, "
                          f"found {layer.score_bits}")
