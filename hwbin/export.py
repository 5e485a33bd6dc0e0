"""Export: a fully binarized torch model -> the IR, with alpha, batch norm, bias and the
next layer's bases folded into integer thresholds and integer score scales.

For a layer with input scale u (value = u * integer level value), binary weights with
per-channel alpha, and batch norm, the pre-quantization value is affine in the integer
accumulator: x_o = a_o * acc_o + c_o. The next quantizer's level L is reached when
x >= u' P_L, i.e. d_o * acc_o >= T_oL with d_o = sign(a_o). T is found in float64 and then
checked against that same inequality, so the threshold is exactly the smallest integer
that passes it.
"""
from __future__ import annotations

import numpy as np
import torch

from . import __version__, arith
from .errors import HwbinError
from .ir import Layer, Model, validate
from .models import BinaryNet
from .nn.layers import ChannelShuffle, QConv2d, QConvTranspose2d, QLinear, is_binary_layer
from .train.schedule import is_fully_binary



class ExportError(HwbinError):
    pass


def _check_finite(model: BinaryNet) -> None:
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise ExportError(f"export: parameter '{name}' has non-finite values")


def _check_binary(model: BinaryNet) -> None:
    if is_fully_binary(model):
        return
    for i, layer in enumerate(model.binary_layers()):
        wr = float(layer.weight_mask.float().mean())
        q = layer.input_quantizer
        ar = float(q.mask.float().mean()) if hasattr(q, "mask") else 1.0
        if wr < 1 or ar < 1:
            raise ExportError(f"export: layer {i} is not fully binarized (weights {wr * 100:.1f}%, "
                              f"activations {ar * 100:.1f}%); train with a binary method to 100%")


def fold_thresholds(a: np.ndarray, c: np.ndarray, points: np.ndarray, bound: int):
    """Integer thresholds T (O, L) and directions d (O,) with
    d*acc >= T  <=>  a*acc + c >= point, for every integer |acc| <= bound (float64)."""
    a = a.astype(np.float64)[:, None]
    c = c.astype(np.float64)[:, None]
    p = points.astype(np.float64)[None, :]
    d = np.where(a[:, 0] < 0, -1, 1).astype(np.int8)
    big = bound + 1
    with np.errstate(divide="ignore", invalid="ignore"):
        q = (p - c) / a
    pos = a > 0
    # a > 0: acc >= q -> T = ceil(q);  a < 0: acc <= q -> -acc >= -floor(q) -> T = -floor(q)
    t = np.where(pos, np.ceil(q), -np.floor(q))
    t = np.where(a == 0, np.where(c >= p, -big, big), t)
    t = np.clip(np.nan_to_num(t, nan=big, posinf=big, neginf=-big), -big, big).astype(np.int64)
    sd = d.astype(np.int64)[:, None]

    def passes(tt):  # does acc = d*tt satisfy a*acc + c >= p?
        return a * (sd * tt) + c >= p

    live = (a != 0) & (np.abs(t) < big)
    for _ in range(2):  # repair any float rounding of the division by one step
        t = np.where(live & ~passes(t), t + 1, t)
        t = np.where(live & passes(t - 1), t - 1, t)
    t = np.clip(t, -big, big)
    return np.sort(t, axis=1).astype(np.int32), d


def export_model(model: BinaryNet, source: dict | None = None) -> Model:
    """Fold a fully binarized ``model`` (eval mode) into an IR ``Model``."""
    model.eval()
    _check_finite(model)
    _check_binary(model)
    cfg = model.config
    shape = tuple(cfg["in_shape"])
    modules = list(model.layers)
    layers: list[Layer] = []
    counts: dict[str, int] = {}

    def name(kind):
        counts[kind] = counts.get(kind, 0) + 1
        return f"{kind}{counts[kind] - 1}"

    with torch.no_grad():
        for idx, m in enumerate(modules):
            if is_binary_layer(m):
                nxt = next((n for n in modules[idx + 1:] if is_binary_layer(n)), None)
                layer = _export_compute(m, nxt, shape, name)
            elif isinstance(m, torch.nn.MaxPool2d):
                k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
                s = m.stride if isinstance(m.stride, int) else m.stride[0]
                c, h, w = shape
                layer = Layer(name("maxpool"), "maxpool", shape, (c, (h - k) // s + 1, (w - k) // s + 1),
                              kernel=(k, k), stride=(s, s))
            elif isinstance(m, ChannelShuffle):
                perm = np.asarray(m.permutation(shape[0]), dtype=np.int32)
                layer = Layer(name("shuffle"), "shuffle", shape, shape, arrays={"perm": perm})
            else:
                raise ExportError(f"export: layer {idx} ({type(m).__name__}) has no IR equivalent")
            layers.append(layer)
            shape = layer.out_shape
    src = {"exporter": f"hwbin {__version__}", **{k: v for k, v in cfg.items() if k in ("name",)}, **(source or {})}
    ir_model = Model(tuple(cfg["in_shape"]), cfg["task"], cfg["num_classes"], layers, src)
    validate(ir_model, "<export>")
    return ir_model


def _export_compute(m, nxt, in_shape, name) -> Layer:
    in_bases, _ = m.input_quantizer.int_bases()
    latent = m.latent_weight_oihw().detach().double()
    bits = (latent >= 0).to(torch.uint8).numpy()
    c, h, w_ = in_shape
    cout = m.out_channels
    if isinstance(m, QLinear):
        bits = bits.reshape(cout, c, h, w_)
        layer = Layer(name("dense"), "dense", in_shape, (cout, 1, 1))
    elif isinstance(m, QConv2d):
        kh, kw = m.kernel_size
        sh, sw = m.stride
        ph, pw = m.padding
        layer = Layer(name("conv"), "conv", in_shape,
                      (cout, (h + 2 * ph - kh) // sh + 1, (w_ + 2 * pw - kw) // sw + 1),
                      kernel=m.kernel_size, stride=m.stride, padding=m.padding, groups=m.groups)
    else:
        layer = Layer(name("deconv"), "deconv", in_shape, (cout, m.output_size(h, 0), m.output_size(w_, 1)),
                      kernel=m.kernel_size, stride=m.stride, padding=m.padding,
                      output_padding=m.output_padding, groups=m.groups)
    layer.in_order, layer.in_bases = len(in_bases), tuple(in_bases)
    layer.arrays["weight"] = np.ascontiguousarray(bits)
    bound = layer.acc_bound()
    layer.acc_bits = arith.signed_width(bound)
    if m.bn is None:
        shift, mul, add = m.score_integers()  # the same integers torch eval uses
        if np.abs(add).max(initial=0) >= 2 ** 30:
            raise ExportError(f"export: layer '{layer.name}' bias too large for int32 scores")
        layer.output = "scores"
        layer.score_shift = shift
        layer.arrays["score_mul"] = mul.astype(np.int32)
        layer.arrays["score_add"] = add.astype(np.int32)
        layer.score_bits = arith.signed_width(int(np.abs(mul).max()) * bound + int(np.abs(add).max()))
        return layer
    if nxt is None:
        raise ExportError(f"export: layer '{layer.name}' has batch norm but no following layer")
    a, cc = m.folded_affine()   # the same map torch eval applies
    out_bases, u_out = nxt.input_quantizer.int_bases()
    points = arith.residual_thresholds(out_bases).astype(np.float64) * u_out
    t, d = fold_thresholds(a, cc, points, bound)
    layer.output = "levels"
    layer.out_order, layer.out_bases = len(out_bases), tuple(out_bases)
    layer.arrays["thresholds"] = t
    layer.arrays["directions"] = d
    return layer


def torch_levels(model: BinaryNet, x: np.ndarray, batch: int = 256) -> tuple[list[np.ndarray], np.ndarray]:
    """Per binary layer, what torch eval computes at the IR's tap: the next quantizer's
    level index for hidden layers, the scores for the last (for a fully binary model the
IR's integer scores times 2^-score_shift, float64). Returns (taps, scores)."""
    model.eval()
    layers = model.binary_layers()
    taps: list[list[np.ndarray]] = [[] for _ in layers]
    hooks = []
    for i, m in enumerate(layers):
        def hook(mod, inp, out, i=i):
            if i + 1 < len(layers):
                out = layers[i + 1].input_quantizer.eval_levels(out)
            taps[i].append(out.detach().numpy())
        hooks.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            scores = [model(torch.from_numpy(x[j:j + batch]).float()).numpy() for j in range(0, len(x), batch)]
    finally:
        for h in hooks:
            h.remove()
    return [np.concatenate(t) for t in taps], np.concatenate(scores)


def compare_with_torch(model: BinaryNet, ir_model: Model, x: np.ndarray) -> dict:
    """Agreement of torch eval and the golden model: predictions, and the binary
    activations of every hidden layer (fraction of identical level indices)."""
    from . import golden

    res = golden.run(ir_model, x, taps=True)
    t_taps, t_scores = torch_levels(model, x)
    t_pred = t_scores.argmax(1)
    per_layer = {}
    for layer, tt in zip(ir_model.compute_layers()[:-1], t_taps[:-1]):
        g = res.taps[layer.name]
        if layer.kind == "dense":
            tt = tt.reshape(g.shape)
        per_layer[layer.name] = float((g == tt).mean())
    return {"prediction_agreement": float((t_pred == res.pred).mean()),
            "prediction_disagreements": int((t_pred != res.pred).sum()),
            "activation_agreement": per_layer, "golden": res, "torch_pred": t_pred}
