"""The model zoo, built from a small layer spec so that any stack (the zoo's, a user's, a
random one from the property tests) is built, saved and exported the same way.

A spec is a list of dicts:
  {"kind": "conv",   "out": C, "k": 3, "s": 1, "p": 1, "g": 1}
  {"kind": "deconv", "out": C, "k": 4, "s": 2, "p": 1, "op": 0, "g": 1}
  {"kind": "dense",  "out": C}
  {"kind": "pool",   "k": 2}              (max pooling, stride = k)
  {"kind": "shuffle", "g": G}             (channel shuffle)
The last compute layer's "out" may be "classes"; it has no batch norm and emits scores.
Every field is checked (``check_spec``) before anything is built, so a user's own stack
(``hwbin train --spec FILE.json``) fails with one line naming the layer and the field.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from torch import nn

from . import arith, limits
from .errors import HwbinError
from .nn.layers import ChannelShuffle, QConv2d, QConvTranspose2d, QLinear, is_binary_layer
from .nn.quant import PixelInput, ResidualBinarizer


def _conv(out, k=3, s=1, p=1, g=1):
    return {"kind": "conv", "out": out, "k": k, "s": s, "p": p, "g": g}


def _cnn(c1, c2, c3):
    return [_conv(c1), _conv(c2), {"kind": "pool", "k": 2}, _conv(c3), {"kind": "pool", "k": 2},
            {"kind": "dense", "out": "classes"}]


def _sfc():
    """FINN's SFC topology (784-256-256-256-10), so hardware cost compares on equal terms."""
    return [{"kind": "dense", "out": 256}, {"kind": "dense", "out": 256}, {"kind": "dense", "out": 256},
            {"kind": "dense", "out": "classes"}]


def _fmnist_cnn():
    """Sized for training on one CPU core in minutes: the first conv runs at 28x28 with few
    channels, each pool halves the map (28 -> 14 -> 7 -> 3) before the wider layers."""
    pool = {"kind": "pool", "k": 2}
    return [_conv(16), pool, _conv(32), pool, _conv(64), pool, {"kind": "dense", "out": "classes"}]


MODELS = {
    "digits-cnn": {"dataset": "digits", "task": "classify", "spec": _cnn(32, 64, 64)},
    "digits-tiny": {"dataset": "digits", "task": "classify", "spec": _cnn(8, 16, 16)},
    "digits-mlp": {"dataset": "digits", "task": "classify",
                   "spec": [{"kind": "dense", "out": 256}, {"kind": "dense", "out": 128},
                            {"kind": "dense", "out": "classes"}]},
    "fmnist-cnn": {"dataset": "fashion-mnist", "task": "classify", "spec": _fmnist_cnn()},
    "fmnist-sfc": {"dataset": "fashion-mnist", "task": "classify", "spec": _sfc()},
    "shapes-seg": {"dataset": "shapes", "task": "segment",
                   "spec": [_conv(16), _conv(32, s=2), _conv(32, g=4), {"kind": "shuffle", "g": 4},
                            _conv(32, s=2),
                            {"kind": "deconv", "out": 16, "k": 4, "s": 2, "p": 1, "op": 0, "g": 1},
                            {"kind": "deconv", "out": "classes", "k": 4, "s": 2, "p": 1, "op": 0, "g": 1}]},
}

COMPUTE_KINDS = ("conv", "deconv", "dense")
# Per kind: required fields, and optional fields with their defaults.
SPEC_FIELDS = {
    "conv": ({"out"}, {"k": 3, "s": 1, "p": 0, "g": 1}),
    "deconv": ({"out"}, {"k": 2, "s": 2, "p": 0, "op": 0, "g": 1}),
    "dense": ({"out"}, {}),
    "pool": (set(), {"k": 2}),
    "shuffle": ({"g"}, {}),
}
MAX_CHANNELS = 4096


def check_spec(spec, where: str = "model spec") -> None:
    """Every layer's kind and fields (names, types, ranges), one line per fault. Shapes are
    checked while building (they depend on the input)."""
    if not isinstance(spec, list):
        raise HwbinError(f"{where}: expected a list of layers, found {type(spec).__name__}")
    if not spec:
        raise HwbinError(f"{where}: expected at least one layer, found none")
    compute = [i for i, s in enumerate(spec) if isinstance(s, dict) and s.get("kind") in COMPUTE_KINDS]
    for i, layer in enumerate(spec):
        at = f"{where} layer {i}"
        if not isinstance(layer, dict):
            raise HwbinError(f"{at}: expected an object like {{\"kind\": \"conv\", ...}}, found {layer!r}")
        kind = layer.get("kind")
        if kind not in SPEC_FIELDS:
            raise HwbinError(f"{at}: field 'kind': expected one of {', '.join(SPEC_FIELDS)}, found {kind!r}")
        required, optional = SPEC_FIELDS[kind]
        for name in sorted(set(layer) - required - set(optional) - {"kind"}):
            raise HwbinError(f"{at} ({kind}): unknown field {name!r}; expected "
                             f"{', '.join(sorted(required | set(optional)))}")
        for name in sorted(required - set(layer)):
            raise HwbinError(f"{at} ({kind}): missing field {name!r}")
        for name, value in layer.items():
            if name == "kind":
                continue
            if name == "out" and value == "classes":
                if i != compute[-1]:
                    raise HwbinError(f"{at} ({kind}): field 'out': \"classes\" only in the last layer")
                continue
            lowest = 0 if name in ("p", "op") else 1
            highest = MAX_CHANNELS if name == "out" else 64
            if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= highest:
                raise HwbinError(f"{at} ({kind}): field {name!r}: expected an integer {lowest}..{highest}"
                                 + (" or \"classes\"" if name == "out" else "") + f", found {value!r}")
        if kind == "deconv":
            k, st, op = (layer.get(f, optional[f]) for f in ("k", "s", "op"))
            if k < st:
                raise HwbinError(f"{at} (deconv): kernel {k} smaller than stride {st} leaves a phase without taps")
            if op >= st:
                raise HwbinError(f"{at} (deconv): field 'op': expected less than stride {st}, found {op}")


def load_spec_file(path) -> dict:
    """A user's layer stack: a JSON list of layers in the zoo's format, or an object
    {"spec": [...], "dataset": optional default data set}. Checked, never executed."""
    p = Path(path)
    if not p.is_file():
        raise HwbinError(f"{path}: spec file not found")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HwbinError(f"{path}: not a JSON file ({e})") from None
    if isinstance(doc, dict):
        unknown = sorted(set(doc) - {"spec", "dataset"})
        if unknown or "spec" not in doc:
            raise HwbinError(f"{path}: expected a list of layers or an object with 'spec' (and 'dataset'), "
                             f"found keys {sorted(doc)}")
        spec, dataset = doc["spec"], doc.get("dataset")
    else:
        spec, dataset = doc, None
    from .data import DATASETS

    if dataset is not None and dataset not in DATASETS:
        raise HwbinError(f"{path}: field 'dataset': expected one of {', '.join(DATASETS)}, found {dataset!r}")
    check_spec(spec, str(path))
    return {"name": p.stem, "spec": spec, "dataset": dataset}


class BinaryNet(nn.Module):
    """A feed-forward binary network. Input: uint8 pixels (N, C, H, W) as float.

    ``config`` (a plain dict) is everything needed to rebuild the network; checkpoints
    carry it.
    """

    def __init__(self, spec, in_shape, num_classes: int, order: int = 2,
                 max_base: int = arith.DEFAULT_MAX_BASE, task: str = "classify", where: str = "model spec"):
        super().__init__()
        self.config = {"spec": copy.deepcopy(spec), "in_shape": list(in_shape),
                       "num_classes": int(num_classes), "order": int(order),
                       "max_base": int(max_base), "task": task}
        self.task = task
        layers, self.out_shape = _build(spec, tuple(in_shape), num_classes, order, max_base, where)
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def binary_layers(self):
        return [m for m in self.layers if is_binary_layer(m)]

    def activation_quantizers(self):
        """The learned activation quantizers (every binary layer's but the first)."""
        return [m.input_quantizer for m in self.binary_layers()
                if isinstance(m.input_quantizer, ResidualBinarizer)]


def _build(spec, in_shape, num_classes, order, max_base, where="model spec"):
    """The layers, and the output shape (C, H, W) of the scores."""
    check_spec(spec, where)
    compute_idx = [i for i, s in enumerate(spec) if s.get("kind") in COMPUTE_KINDS]
    if not compute_idx or compute_idx[0] != 0:
        raise HwbinError(f"{where}: the first layer must be conv, deconv or dense")
    last = compute_idx[-1]
    if last != len(spec) - 1:
        raise HwbinError(f"{where}: the last layer must be conv, deconv or dense (it emits scores)")
    c, h, w = in_shape
    flat = False
    out = []
    weights = 0
    for i, s in enumerate(spec):
        kind = s.get("kind")
        if kind in COMPUTE_KINDS:
            n_out = num_classes if s["out"] == "classes" else int(s["out"])
            weights += _weight_count(where, i, s, c, h, w, n_out, weights)
            is_last = i == last
            if i == 0:
                quant = PixelInput()
            else:
                quant = ResidualBinarizer(order, (c * h * w,) if flat else (h, w), max_base)
            kw = {"batch_norm": not is_last, "bias": is_last}
            if kind == "dense":
                out.append(QLinear(c * h * w, n_out, quant, **kw))
                c, h, w, flat = n_out, 1, 1, True
            elif flat:
                raise HwbinError(f"{where} layer {i}: {kind} cannot follow a dense layer")
            elif kind == "conv":
                k, st, p, g = s.get("k", 3), s.get("s", 1), s.get("p", 0), s.get("g", 1)
                _check_groups(where, i, c, n_out, g)
                out.append(QConv2d(c, n_out, k, quant, st, p, g, **kw))
                c, h, w = n_out, (h + 2 * p - k) // st + 1, (w + 2 * p - k) // st + 1
            else:
                k, st, p, op, g = s.get("k", 2), s.get("s", 2), s.get("p", 0), s.get("op", 0), s.get("g", 1)
                _check_groups(where, i, c, n_out, g)
                layer = QConvTranspose2d(c, n_out, k, quant, st, p, op, g, **kw)
                out.append(layer)
                c, h, w = n_out, layer.output_size(h, 0), layer.output_size(w, 1)
            if h < 1 or w < 1:
                raise HwbinError(f"{where} layer {i}: output size {h}x{w} is empty")
            _check_activation(where, i, c, h, w)
        elif kind == "pool":
            if flat:
                raise HwbinError(f"{where} layer {i}: pool cannot follow a dense layer")
            k = int(s.get("k", 2))
            out.append(nn.MaxPool2d(k, k))
            if h < k or w < k:
                raise HwbinError(f"{where} layer {i}: pool {k} of a {h}x{w} map leaves nothing")
            h, w = h // k, w // k
        elif kind == "shuffle":
            g = int(s["g"])
            if flat or c % g:
                raise HwbinError(f"{where} layer {i}: shuffle groups {g} must divide {c} channels")
            out.append(ChannelShuffle(g))
    return out, (c, h, w)


def _weight_count(where, i, s, c, h, w, n_out, so_far) -> int:
    """The weights a layer adds, refused before anything is allocated if the model would then
    exceed ``limits.MAX_WEIGHT_BITS``."""
    if s["kind"] == "dense":
        n = n_out * c * h * w
    else:
        k = s.get("k", 3 if s["kind"] == "conv" else 2)
        n = n_out * (c // max(1, s.get("g", 1))) * k * k
    if so_far + n > limits.MAX_WEIGHT_BITS:
        raise HwbinError(f"{where} layer {i}: the model would hold {so_far + n:,} weights, expected at most "
                         f"{limits.MAX_WEIGHT_BITS:,} (hwbin.limits)")
    return n


def _check_activation(where, i, c, h, w) -> None:
    if c * h * w > limits.MAX_ACTIVATION or h > limits.MAX_SIDE or w > limits.MAX_SIDE:
        raise HwbinError(f"{where} layer {i}: output {c}x{h}x{w}, expected sides of at most {limits.MAX_SIDE} "
                         f"and at most {limits.MAX_ACTIVATION:,} values (hwbin.limits)")


def _check_groups(where, i, cin, cout, g):
    if cin % g or cout % g:
        raise HwbinError(f"{where} layer {i}: groups {g} must divide in {cin} and out {cout} channels")


def build_model(name: str, in_shape, num_classes: int, order: int = 2,
                max_base: int = arith.DEFAULT_MAX_BASE) -> BinaryNet:
    if name not in MODELS:
        raise HwbinError(f"unknown model {name!r}: expected one of {', '.join(MODELS)}")
    m = MODELS[name]
    net = BinaryNet(m["spec"], in_shape, num_classes, order, max_base, m["task"])
    net.config["name"] = name
    return net


#: Fields of each spec entry, with their allowed ranges.
_SPEC_FIELDS = {
    "conv": {"out": (1, limits.MAX_CHANNELS), "k": (1, 64), "s": (1, 64), "p": (0, 64), "g": (1, limits.MAX_CHANNELS)},
    "deconv": {"out": (1, limits.MAX_CHANNELS), "k": (1, 64), "s": (1, 64), "p": (0, 64), "op": (0, 63),
               "g": (1, limits.MAX_CHANNELS)},
    "dense": {"out": (1, limits.MAX_CHANNELS)},
    "pool": {"k": (1, 64)},
    "shuffle": {"g": (1, limits.MAX_CHANNELS)},
}
_CONFIG_INTS = {"num_classes": (1, limits.MAX_CHANNELS), "order": (1, 8), "max_base": (1, 1024)}


def _check_int(where: str, v, lo: int, hi: int) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise HwbinError(f"field '{where}': expected an integer in {lo}..{hi}, found {v!r}"[:200])


def check_config(config) -> None:
    """Every field of a model config (what a checkpoint carries) has the type and range
    ``BinaryNet`` needs, so a malformed one is a one-line error naming the field."""
    if not isinstance(config, dict):
        raise HwbinError(f"field 'config': expected an object, found {type(config).__name__}")
    for key in ("spec", "in_shape", "num_classes", "order"):
        if key not in config:
            raise HwbinError(f"field 'config.{key}' missing")
    for key, (lo, hi) in _CONFIG_INTS.items():
        if key in config:
            _check_int(f"config.{key}", config[key], lo, hi)
    shape = config["in_shape"]
    if not isinstance(shape, (list, tuple)) or len(shape) != 3:
        raise HwbinError(f"field 'config.in_shape': expected [C, H, W], found {shape!r}"[:200])
    for j, v in enumerate(shape):
        _check_int(f"config.in_shape[{j}]", v, 1, limits.MAX_CHANNELS if j == 0 else limits.MAX_SIDE)
    if config.get("task", "classify") not in ("classify", "segment"):
        raise HwbinError(f"field 'config.task': expected 'classify' or 'segment', found {config['task']!r}"[:200])
    if not isinstance(config.get("name", ""), str):
        raise HwbinError(f"field 'config.name': expected a string, found {type(config['name']).__name__}")
    spec = config["spec"]
    if not isinstance(spec, list) or not 1 <= len(spec) <= limits.MAX_LAYERS:
        raise HwbinError(f"field 'config.spec': expected a list of 1..{limits.MAX_LAYERS} layers, "
                         f"found {type(spec).__name__} of length {len(spec) if hasattr(spec, '__len__') else '-'}")
    for i, layer in enumerate(spec):
        _check_spec_entry(i, layer)


def _check_spec_entry(i: int, layer) -> None:
    where = f"config.spec[{i}]"
    if not isinstance(layer, dict):
        raise HwbinError(f"field '{where}': expected an object, found {type(layer).__name__}")
    kind = layer.get("kind")
    if kind not in _SPEC_FIELDS:
        raise HwbinError(f"field '{where}.kind': expected one of {', '.join(_SPEC_FIELDS)}, found {kind!r}"[:200])
    fields = _SPEC_FIELDS[kind]
    for key, v in layer.items():
        if key == "kind":
            continue
        if key not in fields:
            raise HwbinError(f"field '{where}.{key}': not a field of a {kind} layer (expected {', '.join(fields)})")
        if not (key == "out" and v == "classes"):
            _check_int(f"{where}.{key}", v, *fields[key])
    if kind == "deconv" and layer.get("op", 0) >= layer.get("s", 2):
        raise HwbinError(f"field '{where}.op': expected less than the stride {layer.get('s', 2)}, found {layer['op']}")
    if kind in ("conv", "deconv", "dense", "shuffle") and ("out" if kind != "shuffle" else "g") not in layer:
        raise HwbinError(f"field '{where}.{'out' if kind != 'shuffle' else 'g'}' missing")


def model_from_config(config: dict) -> BinaryNet:
    check_config(config)
    net = BinaryNet(config["spec"], config["in_shape"], config["num_classes"], config["order"],
                    config.get("max_base", arith.DEFAULT_MAX_BASE), config.get("task", "classify"))
    if "name" in config:
        net.config["name"] = config["name"]
    return net


def save_checkpoint(path, model: BinaryNet, extra: dict | None = None) -> None:
    """A checkpoint carries the config needed to rebuild the model."""
    import io

    from . import __version__
    from .util import atomic_write_bytes

    buf = io.BytesIO()
    torch.save({"hwbin_version": __version__, "config": model.config,
                "state_dict": model.state_dict(), **(extra or {})}, buf)
    atomic_write_bytes(path, buf.getvalue())


#: Largest pickle of a checkpoint (the part torch unpickles, with weights_only=True).
MAX_PICKLE_BYTES = 16 << 20


def _read_checkpoint(path) -> dict:
    """``torch.load`` with ``weights_only=True`` (tensors and plain data only: no code from the
    file ever runs), after checking the zip's directory and pickle size."""
    import pickle

    from .reading import check_file, open_zip

    p = check_file(path, "checkpoint")
    try:
        with open_zip(p, str(path)) as z:
            pickles = [i for i in z.infolist() if i.filename.endswith("data.pkl")]
    except HwbinError as e:
        raise HwbinError(f"{path}: not a readable hwbin checkpoint (expected a torch.save zip: "
                         f"{str(e).removeprefix(str(path) + ': ')})") from None
    if any(i.file_size > MAX_PICKLE_BYTES for i in pickles):
        raise HwbinError(f"{path}: checkpoint pickle of more than {MAX_PICKLE_BYTES:,} bytes, expected less")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "weights_only" in str(e) or "Weights only" in str(e):
            raise HwbinError(f"{path}: refused: the checkpoint holds Python objects other than tensors and plain "
                             f"data, which only running code from the file could load (hwbin uses "
                             f"torch.load(weights_only=True))") from None
        raise HwbinError(f"{path}: not a readable hwbin checkpoint (UnpicklingError)") from None
    except Exception as e:  # torch raises many kinds for a damaged file
        raise HwbinError(f"{path}: not a readable hwbin checkpoint ({type(e).__name__})") from None


def _check_checkpoint(path, ckpt) -> None:
    if not isinstance(ckpt, dict) or "config" not in ckpt or "state_dict" not in ckpt:
        raise HwbinError(f"{path}: not a hwbin checkpoint (expected keys 'config' and 'state_dict')")
    for key in ("method", "dataset", "hwbin_version"):
        if not isinstance(ckpt.get(key, ""), (str, type(None))):
            raise HwbinError(f"{path}: field '{key}': expected a string, found {type(ckpt[key]).__name__}")
    sd = ckpt["state_dict"]
    if not isinstance(sd, dict):
        raise HwbinError(f"{path}: field 'state_dict': expected a mapping of names to tensors, "
                         f"found {type(sd).__name__}")
    for k, v in sd.items():
        if not isinstance(k, str) or not isinstance(v, torch.Tensor):
            raise HwbinError(f"{path}: field 'state_dict': expected names to tensors, found {k!r}: "
                             f"{type(v).__name__}"[:200])


def load_checkpoint(path) -> tuple[BinaryNet, dict]:
    """Rebuild the model a checkpoint describes; a mismatch is a one-line HwbinError."""
    ckpt = _read_checkpoint(path)
    _check_checkpoint(path, ckpt)
    try:
        model = model_from_config(ckpt["config"])
    except HwbinError as e:
        raise HwbinError(f"{path}: {e}") from None
    try:
        model.load_state_dict(ckpt["state_dict"])
    except (RuntimeError, TypeError, ValueError) as e:
        first = str(e).strip().splitlines()
        detail = " ".join(x.strip() for x in first[1:3]) if len(first) > 1 else first[0]
        raise HwbinError(f"{path}: weights do not match the checkpoint's config: {detail}"[:400]) from None
    model.eval()
    return model, ckpt
