"""The golden model: runs any IR with integers only, on bit-packed words.

It is the reference every back end is checked against, and the accuracy a user is told
for a deployed model. Activations travel as level indices (uint8, N x C x H x W); each
compute layer splits them into bit planes, gathers its taps in the contract's packing
order, and accumulates acc = sum_i b_i * (n - 2 popcount(a_i ^ w)).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import arith
from .errors import HwbinError
from .ir import Layer, Model

WORD_BITS = 64  # the golden model's own word width; results do not depend on it


@dataclass
class GoldenResult:
    scores: np.ndarray           # int64, (N, classes) or (N, classes, H, W)
    pred: np.ndarray             # argmax over classes, lowest index wins ties
    taps: dict[str, np.ndarray] = field(default_factory=dict)  # layer name -> levels or scores
    accs: dict[str, np.ndarray] = field(default_factory=dict)  # layer name -> accumulators


def check_input(model: Model, x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise HwbinError(f"golden input: expected dtype uint8, found {x.dtype}")
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or tuple(x.shape[1:]) != tuple(model.input_shape):
        raise HwbinError(f"golden input: expected shape (N, {', '.join(map(str, model.input_shape))}), "
                         f"found {tuple(x.shape)}")
    return x


def run(model: Model, x, taps: bool = False, batch: int = 128) -> GoldenResult:
    """Run ``model`` on uint8 images ``x`` (N, C, H, W); ``taps`` keeps every layer's output."""
    x = check_input(model, x)
    parts = [_run_batch(model, x[i:i + batch], taps) for i in range(0, len(x), batch)]
    if not parts:
        parts = [_run_batch(model, x, taps)]
    scores = np.concatenate([p.scores for p in parts])
    out = GoldenResult(scores, scores.argmax(axis=1))
    if taps:
        for name in parts[0].taps:
            out.taps[name] = np.concatenate([p.taps[name] for p in parts])
            out.accs[name] = np.concatenate([p.accs[name] for p in parts]) if name in parts[0].accs else None
        out.accs = {k: v for k, v in out.accs.items() if v is not None}
    return out


def _run_batch(model: Model, x: np.ndarray, taps: bool) -> GoldenResult:
    act = x
    res = GoldenResult(None, None)
    for layer in model.layers:
        if layer.kind == "maxpool":
            act = maxpool(act, layer.kernel, layer.stride)
        elif layer.kind == "shuffle":
            act = act[:, layer.arrays["perm"]]
        else:
            acc = accumulate(layer, act)
            if taps:
                res.accs[layer.name] = acc
            if layer.output == "scores":
                mul = layer.arrays["score_mul"].astype(np.int64).reshape(1, -1, 1, 1)
                add = layer.arrays["score_add"].astype(np.int64).reshape(1, -1, 1, 1)
                act = acc * mul + add
            else:
                act = arith.apply_thresholds(acc, layer.arrays["thresholds"], layer.arrays["directions"])
        if taps:
            res.taps[layer.name] = act
    scores = act
    if model.task == "classify":
        scores = scores[:, :, 0, 0]
    res.scores = scores
    return res


def maxpool(levels: np.ndarray, kernel, stride) -> np.ndarray:
    """Max over level indices (monotone in the pre-quantization value, so exact)."""
    n, c, h, w = levels.shape
    kh, kw = kernel
    sh, sw = stride
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = None
    for dy in range(kh):
        for dx in range(kw):
            v = levels[:, :, dy:dy + sh * (oh - 1) + 1:sh, dx:dx + sw * (ow - 1) + 1:sw]
            out = v if out is None else np.maximum(out, v)
    return out


# --------------------------------------------------------------------------- gather plans

@dataclass
class Phase:
    """Output positions that share one set of kernel taps, and where each tap reads."""
    out_pos: np.ndarray   # (P,) flat output positions
    taps: list            # [(ky, kx)], in packing order
    in_pos: np.ndarray    # (P, T) flat input positions, H*W means "pad" (level 0)


def stride_phases(layer: Layer) -> list[tuple[int, int, list]]:
    """``(ry, rx, taps)`` of every stride phase in packing order (taps ky outer, kx inner).

    A conv has one phase holding every tap; a deconv has s_h * s_w, phase (ry, rx) summing
    the taps ``ky = ry, ry + s_h, ...`` and ``kx = rx, rx + s_w, ...``. Back ends pack each
    phase's weights in this order, one phase after another (empty phases hold nothing).
    A dense layer is a conv whose kernel is its whole input."""
    kh, kw = layer.in_shape[1:] if layer.kind == "dense" else layer.kernel
    if layer.kind != "deconv":
        return [(0, 0, [(ky, kx) for ky in range(kh) for kx in range(kw)])]
    sh, sw = layer.stride
    return [(ry, rx, [(ky, kx) for ky in range(ry, kh, sh) for kx in range(rx, kw, sw)])
            for ry in range(sh) for rx in range(sw)]


def gather_plan(layer: Layer) -> list[Phase]:
    """Which input position each tap of each output reads; shared by every back end's
    reference of the schedule. Conv and dense: one phase. Deconv: one per stride phase."""
    _, h, w = layer.in_shape
    _, oh, ow = layer.out_shape
    pad = h * w
    if layer.kind == "dense":
        taps = [(y, x) for y in range(h) for x in range(w)]
        return [Phase(np.zeros(1, np.int64), taps, np.arange(h * w, dtype=np.int64)[None])]
    kh, kw = layer.kernel
    sh, sw = layer.stride
    ph, pw = layer.padding
    oy, ox = np.meshgrid(np.arange(oh), np.arange(ow), indexing="ij")
    oy, ox = oy.ravel(), ox.ravel()
    groups = []
    for ry, rx, taps in stride_phases(layer):
        if layer.kind == "conv":
            sel = np.arange(oh * ow)
        else:
            sel = np.nonzero(((oy + ph) % sh == ry) & ((ox + pw) % sw == rx))[0]
        if len(sel) and taps:
            groups.append((sel, taps))
        elif len(sel):
            raise HwbinError(f"layer '{layer.name}': stride phase ({ry}, {rx}) has no taps "
                             f"(kernel {list(layer.kernel)} smaller than stride {list(layer.stride)})")
    phases = []
    for sel, taps in groups:
        iys, ixs = [], []
        for ky, kx in taps:
            if layer.kind == "conv":
                iy, ix = oy[sel] * sh - ph + ky, ox[sel] * sw - pw + kx
            else:
                iy, ix = (oy[sel] + ph - ky) // sh, (ox[sel] + pw - kx) // sw
            iys.append(iy)
            ixs.append(ix)
        iy, ix = np.stack(iys, 1), np.stack(ixs, 1)
        inside = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
        phases.append(Phase(sel, taps, np.where(inside, iy * w + ix, pad)))
    return phases


def accumulate(layer: Layer, levels: np.ndarray) -> np.ndarray:
    """Integer accumulators (N, O, OH, OW) of a compute layer on input levels."""
    n, c, h, w = levels.shape
    cout, oh, ow = layer.out_shape
    g = 1 if layer.kind == "dense" else layer.groups
    cg, og = c // g, cout // g
    order = layer.in_order
    bases = np.asarray(layer.in_bases, dtype=np.int64)
    padded = np.concatenate([levels.reshape(n, c, h * w), np.zeros((n, c, 1), np.uint8)], axis=2)
    planes = arith.level_planes(padded, order)  # (k, N, C, HW+1)
    wbits = layer.arrays["weight"]
    if layer.kind == "dense":
        wbits = wbits.reshape(cout, c, 1, h * w)  # taps are the input positions
    acc = np.zeros((n, cout, oh * ow), dtype=np.int64)
    for phase in gather_plan(layer):
        ntaps = len(phase.taps)
        nbits = ntaps * cg
        for gi in range(g):
            cs, os_ = slice(gi * cg, (gi + 1) * cg), slice(gi * og, (gi + 1) * og)
            # (k, N, Cg, P, T) -> (k, N, P, T, Cg): K index = tap * Cg + channel
            a = planes[:, :, cs][:, :, :, phase.in_pos].transpose(0, 1, 3, 4, 2)
            a = arith.pack_bits(a.reshape(order, n, len(phase.out_pos), nbits), WORD_BITS)
            if layer.kind == "dense":
                wsel = wbits[os_, :, 0, :]  # (Og, Cg, T)
            else:
                wsel = np.stack([wbits[os_, :, ky, kx] for ky, kx in phase.taps], axis=-1)
            wpk = arith.pack_bits(wsel.transpose(0, 2, 1).reshape(og, nbits), WORD_BITS)
            dots = arith.xnor_popcount_dot(a[:, :, :, None, :], wpk[None, None, None], nbits)  # (k,N,P,Og)
            part = np.tensordot(bases, dots, axes=(0, 0))  # (N, P, Og)
            acc[:, os_][:, :, phase.out_pos] = part.transpose(0, 2, 1)  # acc[:, os_] is a view
    return acc.reshape(n, cout, oh, ow)
