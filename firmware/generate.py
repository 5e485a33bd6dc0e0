"""IR -> C sources: the arena plan, the packed weight tables, and the rendered templates.

Everything here is computed from the IR alone, and rendering is deterministic: the same IR
and options give the same bytes (no dates, no paths), with a header naming the hwbin version
and the model's hash.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from hwbin import __version__, arith
from hwbin.errors import HwbinError
from hwbin.golden import stride_phases
from hwbin.ir import Layer, Model
from hwbin.util import atomic_write_json, staging_dir

HERE = Path(__file__).resolve().parent
RUNTIME_FILES = ("hwbin_rt.h", "hwbin_rt.c")
BOARD_FILES = ("boards/mps2_an385/startup.c", "boards/mps2_an385/mps2_an385.ld")
TARGETS = ("host", "cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7")
KIND_CODES = {"conv": "HWBIN_CONV", "dense": "HWBIN_CONV", "deconv": "HWBIN_DECONV",
              "maxpool": "HWBIN_MAXPOOL", "shuffle": "HWBIN_SHUFFLE"}
MAX_VECTORS_IN_SOURCE = 10_000
WORD_BITS = 32  # the C runtime's word


@dataclass
class FirmwareOptions:
    prefix: str = "hwbin"
    static_arena: bool = True   # also generate a static arena used when invoke gets arena == NULL
    vectors: int = 0            # test vectors embedded as C arrays (with the golden model's outputs)


@dataclass
class LayerPlan:
    index: int
    layer: Layer
    in_order: int
    out_order: int              # 0: scores
    in_offset: int
    out_offset: int
    in_bytes: int
    out_bytes: int
    scratch_bytes: int
    weight_words: np.ndarray | None = None
    thresholds: np.ndarray | None = None    # writer_tables(): biased, direction applied
    flips: np.ndarray | None = None
    vertical: dict | None = None            # vertical_tables(): the HWBIN_VERTICAL builds' tables

    @property
    def geometry(self) -> dict:
        la = self.layer
        if la.kind == "dense":
            return dict(kh=la.in_shape[1], kw=la.in_shape[2], sh=1, sw=1, ph=0, pw=0, groups=1)
        if la.kind == "shuffle":
            return dict(kh=1, kw=1, sh=1, sw=1, ph=0, pw=0, groups=1)
        groups = la.groups if la.kind in ("conv", "deconv") else 1
        return dict(kh=la.kernel[0], kw=la.kernel[1], sh=la.stride[0], sw=la.stride[1],
                    ph=la.padding[0], pw=la.padding[1], groups=groups)

    @property
    def ram_bytes(self) -> int:
        return self.in_bytes + self.out_bytes + self.scratch_bytes


@dataclass
class FirmwarePlan:
    model: Model
    options: FirmwareOptions
    layers: list[LayerPlan]
    input_bytes: int            # the order-8 input planes in the arena
    arena_size: int
    scratch_offset: int
    regions: tuple[int, int]

    @cached_property
    def hash(self) -> str:
        return self.model.hash

    @property
    def output_shape(self) -> tuple[int, int, int]:
        return tuple(self.model.layers[-1].out_shape)

    @property
    def classes_size(self) -> int:
        _, h, w = self.output_shape
        return h * w if self.model.task == "segment" else 1

    @property
    def weight_bytes(self) -> int:
        return sum(4 * lp.weight_words.size for lp in self.layers if lp.weight_words is not None)


def plane_bytes(order: int, shape) -> int:
    """Bytes of an order-k activation stored as k bit strings of C*H*W bits (32-bit words)."""
    c, h, w = shape
    return order * 4 * ((c * h * w + WORD_BITS - 1) // WORD_BITS)


def pack_weights(layer: Layer) -> np.ndarray:
    """Weights as the runtime reads them: per stride phase, per output channel, the
    contract's K order (tap-major, channel fastest) in 32-bit words."""
    w = layer.arrays["weight"]  # O x Cin/g x kh x kw (dense: O x C x H x W)
    parts = []
    for _, _, taps in stride_phases(layer):
        if not taps:
            continue
        sel = np.stack([w[:, :, ky, kx] for ky, kx in taps], axis=1)  # O x T x Cg
        parts.append(arith.pack_bits(sel.reshape(len(w), -1), WORD_BITS).astype(np.uint32).ravel())
    return np.concatenate(parts)


def vertical_weights(layer: Layer) -> np.ndarray:
    """Weights transposed for HWBIN_VERTICAL builds, for the layers ``vertical_tables`` takes
    (one stride phase, whole blocks of 32 output channels a group): per block of 32 output
    channels (a group's blocks one after another, groups in order), one word per K index in
    the contract's order (bit r: the block's channel r), K padded with zeros to whole words."""
    (_, _, taps), = stride_phases(layer)
    w = layer.arrays["weight"]
    sel = np.stack([w[:, :, ky, kx] for ky, kx in taps], axis=1).reshape(len(w), -1)  # O x n
    n = sel.shape[1]
    bits = np.zeros((len(w), -(-n // WORD_BITS) * WORD_BITS), np.uint8)
    bits[:, :n] = sel
    blocks = bits.reshape(-1, WORD_BITS, bits.shape[1]).transpose(0, 2, 1)  # block x K index x lane
    return arith.pack_bits(blocks, WORD_BITS).astype(np.uint32).ravel()


def fast_pair(layer: Layer) -> bool:
    """The runtime's vertical fast count applies: an order-2 input with b_1 = 2 b_2, so that
    acc = (b_1 + b_2) n - 2 b_2 E with E = 2 D_1 + D_2 (D_i the disagreements of plane i), one
    bit-sliced count with plane 1's bits entering at the twos; E < 2^16 (its 16 levels)."""
    b = layer.in_bases
    return len(b) == 2 and b[0] == 2 * b[1] and 3 * max(layer.taps_per_output()) < (1 << 16)


def sliced_thresholds(layer: Layer) -> tuple[int, np.ndarray, np.ndarray]:
    """(levels L, thresholds, flips) for the bit-sliced compare of E (see fast_pair), for a
    one-phase layer with levels output. acc >= T' (writer_tables' thresholds, direction applied)
    is E <= floor((S n - T') / 2 b_2), S = b_1 + b_2, so #{j : acc >= T'_j} = nthr - #{j : E >= V_j}
    with V_j = floor((S n - T'_j) / 2 b_2) + 1 (ascending once reversed), and nthr - c = c ^ nthr:
    the flip bits are the writer's, inverted. V is clamped to [0, 2^L - 1], L = bitlen(3n + 1), which
    changes no comparison (0 <= E <= 3n < 2^L - 1). Stored per group, block of 32 channels and
    threshold: L words, level l (LSB first) of the 32 channels' V."""
    n = layer.taps_per_output()[0]
    b1, b2 = layer.in_bases
    levels = (3 * n + 1).bit_length()
    t, d = directed_thresholds(layer)
    v = np.floor_divide((b1 + b2) * n - t, 2 * b2)[:, ::-1] + 1
    v = np.clip(v, 0, (1 << levels) - 1)
    o, nthr = v.shape
    g = 1 if layer.kind == "dense" else layer.groups
    og = o // g
    blocks = (og + WORD_BITS - 1) // WORD_BITS
    words = []
    for gi in range(g):
        vg = np.zeros((blocks * WORD_BITS, nthr), np.int64)
        vg[:og] = v[gi * og:(gi + 1) * og]
        lanes = vg.reshape(blocks, WORD_BITS, nthr).transpose(0, 2, 1)  # block x j x lane
        planes = (lanes[..., None, :] >> np.arange(levels)[:, None]) & 1  # block x j x level x lane
        words.append(arith.pack_bits(planes.astype(np.uint8), WORD_BITS).astype(np.uint32).ravel())
    flips = arith.pack_bits((d > 0)[None].astype(np.uint8), WORD_BITS).astype(np.uint32).ravel()
    return levels, np.concatenate(words), flips


def vertical_tables(layer: Layer) -> dict | None:
    """What a HWBIN_VERTICAL build reads for a binary layer whose thresholds can be compared
    bit-sliced (a one-phase layer with levels output whose input fits fast_pair, in whole
    blocks of 32 output channels a group): transposed weights and bit-sliced thresholds
    (slices = their levels). None for every other layer (scores, other orders and bases, stride
    phases, narrow blocks): those keep the row layout and the integer writer in every build,
    where a few output channels (a scores layer's 10) would waste most of a 32-lane word and
    the count would go plane by plane in portable C."""
    og = layer.out_shape[0] // (1 if layer.kind == "dense" else layer.groups)
    if not (layer.output == "levels" and fast_pair(layer) and len(layer.taps_per_output()) == 1
            and og % WORD_BITS == 0):
        return None
    slices, thresholds, flips = sliced_thresholds(layer)
    return dict(weight=vertical_weights(layer), slices=slices, thresholds=thresholds, flips=flips)


def directed_thresholds(layer: Layer) -> tuple[np.ndarray, np.ndarray]:
    """(T', d): the thresholds with the direction applied (see writer_tables), ascending."""
    t = layer.arrays["thresholds"].astype(np.int64)
    d = layer.arrays["directions"].astype(np.int64)
    return np.sort(np.where(d[:, None] > 0, t, 1 - t), axis=1), d


def writer_tables(layer: Layer) -> tuple[np.ndarray, np.ndarray]:
    """The thresholds and flip bits as the runtime's level writer reads them.

    The contract's level is #{j : d*acc >= T_j}. For d = -1 that is nthr - #{j : acc >= 1 - T_j},
    and nthr - c = c ^ nthr, so every channel compares acc itself against its thresholds
    (ascending; clamped to [-B, B + 1] for the layer's acc bound B, which changes no
    comparison) and a channel with d = -1 flips all its level bits. Thresholds are stored
    biased by 2^31 so an unsigned compare decides the signed one (one compare and an add with
    carry per threshold); flip bit o (LSB first in 32-bit words) is set where d_o = -1."""
    t, d = directed_thresholds(layer)
    bound = layer.acc_bound()
    biased = np.clip(t, -bound, bound + 1) + (1 << 31)
    return biased.astype(np.uint32).ravel(), arith.pack_bits((d < 0)[None].astype(np.uint8), WORD_BITS).astype(np.uint32).ravel()


PIXEL_TABLE_CHUNKS = 8  # the runtime's HWBIN_PIXEL_CHUNKS: 32 values, one weight word, per block


def pixel_scratch_bytes(n: int) -> int:
    """The first layer's scratch for a phase of n taps, as the runtime uses it: int16 tables
    of subset sums, 16 per 4 values (32 bytes), for one block of at most 32 values."""
    return 32 * min((n + 3) // 4, PIXEL_TABLE_CHUNKS)


def scratch_bytes(layer: Layer, first: bool) -> int:
    """The gathered row of one output position: for the first layer, the pixel scratch of its
    largest phase; otherwise the in_order bit planes of its longest phase's K vector."""
    if not layer.is_compute:
        return 0
    if first:
        return max(pixel_scratch_bytes(n) for n in layer.taps_per_output())
    n = max(layer.taps_per_output())
    return 4 * layer.in_order * ((n + WORD_BITS - 1) // WORD_BITS)


def reads_pixels(model: Model) -> bool:
    """The runtime runs a compute first layer on the uint8 pixels directly (no input planes)."""
    return model.layers[0].is_compute


def plan_firmware(model: Model, options: FirmwareOptions | None = None) -> FirmwarePlan:
    """Arena layout: layer outputs alternate between two regions (a layer's input and
    output never overlap), the im2col row after them. Sizes are exact for this layout."""
    options = options or FirmwareOptions()
    check_prefix(options.prefix)
    order = 8
    tensors = [0 if reads_pixels(model) else plane_bytes(order, model.input_shape)]  # tensor i+1: layer i's output
    orders = []
    for la in model.layers:
        out_order = output_order(la, order)
        orders.append((order, out_order))
        nbytes = 4 * int(np.prod(la.out_shape)) if out_order == 0 else plane_bytes(out_order, la.out_shape)
        tensors.append(nbytes)
        order = out_order
    regions = (max(tensors[0::2]), max(tensors[1::2]))
    offsets = [0 if i % 2 == 0 else regions[0] for i in range(len(tensors))]
    scratch = max(scratch_bytes(la, i == 0) for i, la in enumerate(model.layers))
    plans = []
    for i, la in enumerate(model.layers):
        plans.append(LayerPlan(
            index=i, layer=la, in_order=orders[i][0], out_order=orders[i][1],
            in_offset=offsets[i], out_offset=offsets[i + 1], in_bytes=tensors[i], out_bytes=tensors[i + 1],
            scratch_bytes=scratch_bytes(la, i == 0),
            weight_words=pack_weights(la) if la.is_compute else None,
            vertical=vertical_tables(la) if la.is_compute and i > 0 else None,
            **(dict(zip(("thresholds", "flips"), writer_tables(la))) if la.is_compute and la.output == "levels" else {})))
    return FirmwarePlan(model=model, options=options, layers=plans, input_bytes=tensors[0],
                        arena_size=sum(regions) + scratch, scratch_offset=sum(regions), regions=regions)


def output_order(layer: Layer, in_order: int) -> int:
    """Order of a layer's output: its quantizer's, 0 for scores, the input's for pool/shuffle."""
    if not layer.is_compute:
        return in_order
    return layer.out_order if layer.output == "levels" else 0


def check_prefix(prefix: str) -> None:
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,30}", prefix):
        raise HwbinError(f"--prefix: expected a C identifier in lower case (a-z, 0-9, _; at most 31 "
                         f"characters, starting with a letter), found {prefix!r}")


# --------------------------------------------------------------------------- rendering

def c_array(values, per_line: int, fmt) -> str:
    vals = [fmt(int(v)) for v in np.asarray(values).ravel()]
    if not vals:
        vals = ["0"]
    return "\n".join("    " + ", ".join(vals[i:i + per_line]) + "," for i in range(0, len(vals), per_line))


def fnv1a_scores(scores: np.ndarray) -> int:
    """FNV-1a over each int32 score's 4 bytes, little-endian: the C harness computes the same."""
    h = 0x811C9DC5
    for b in np.asarray(scores, dtype="<i4").tobytes():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def _env():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(HERE / "templates")), keep_trailing_newline=True,
                             trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined,
                             autoescape=False)
    env.filters["hexwords"] = lambda a: c_array(a, 8, lambda v: f"0x{v:08x}u")
    env.filters["ints"] = lambda a: c_array(a, 12, str)
    env.filters["bytes"] = lambda a: c_array(a, 16, str)
    return env


def render(plan: FirmwarePlan, vectors: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> dict[str, str]:
    """File name -> text of every generated file (the runtime and board files are copied)."""
    p = plan.options.prefix
    ctx = dict(plan=plan, model=plan.model, p=p, P=p.upper(), version=__version__, hash=plan.hash,
               header=f"Generated by hwbin {__version__} from model {plan.hash}. Do not edit.",
               kinds=KIND_CODES, targets=TARGETS)
    if vectors is not None:
        x, classes, scores = vectors
        ctx["vectors"] = dict(n=len(x), inputs=x.reshape(len(x), -1), classes=classes.reshape(len(x), -1),
                              checksums=[fnv1a_scores(s) for s in scores])
    else:
        ctx["vectors"] = dict(n=0, inputs=np.zeros((1, 1), np.uint8), classes=np.zeros((1, 1), np.uint8),
                              checksums=[0])
    env = _env()
    files = {
        f"{p}_model.h": env.get_template("model.h.j2").render(ctx),
        f"{p}_model.c": env.get_template("model.c.j2").render(ctx),
        f"{p}_vectors.h": env.get_template("vectors.h.j2").render(ctx),
        "main.c": env.get_template("main.c.j2").render(ctx),
        "Makefile": env.get_template("Makefile.j2").render(ctx),
        "hwbin.mk": env.get_template("hwbin.mk.j2").render(ctx),
        "hwbin.cmake": env.get_template("hwbin.cmake.j2").render(ctx),
    }
    for name in RUNTIME_FILES:
        files[name] = (HERE / "runtime" / name).read_text()
    for name in BOARD_FILES:
        files[name] = (HERE / name).read_text()
    return files


def golden_vectors(model: Model, x: np.ndarray):
    """Test images with the golden model's classes and scores (the reference outputs)."""
    from hwbin import golden

    res = golden.run(model, x)
    classes = res.pred.astype(np.uint8)
    return x, classes, res.scores.astype(np.int64)


def generate_firmware(model: Model, out_dir, options: FirmwareOptions | None = None,
                      x_vectors: np.ndarray | None = None) -> FirmwarePlan:
    """Write the firmware folder atomically (built in a temporary folder, then renamed)."""
    plan = plan_firmware(model, options)
    vectors = None
    if x_vectors is not None and len(x_vectors):
        if len(x_vectors) > MAX_VECTORS_IN_SOURCE:
            raise HwbinError(f"--vectors: expected at most {MAX_VECTORS_IN_SOURCE}, found {len(x_vectors)}")
        vectors = golden_vectors(model, x_vectors)
    files = render(plan, vectors)
    out_dir = Path(out_dir)
    with staging_dir(out_dir) as tmp:
        for name, text in files.items():
            path = tmp / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        atomic_write_json(tmp / "plan.json", plan_summary(plan))
    return plan


def plan_summary(plan: FirmwarePlan) -> dict:
    return {
        "hwbin": __version__, "model_hash": plan.hash, "prefix": plan.options.prefix,
        "arena_bytes": plan.arena_size, "weight_bytes": plan.weight_bytes,
        "layers": [{"name": lp.layer.name, "kind": lp.layer.kind, "weight_bytes": 0 if lp.weight_words is None
                    else 4 * lp.weight_words.size, "ram_bytes": lp.ram_bytes} for lp in plan.layers],
    }
