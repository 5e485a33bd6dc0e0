"""A floating-point C build of a network's real-valued weights, for the firmware benchmark
only: the same layer stack as the binary firmware (conv, max pool, dense), float32
activations clipped as torch's full-precision eval clips them, batch norm folded into a
per-channel scale and shift. Not a product: it exists to be measured against."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from hwbin.errors import HwbinError
from hwbin.nn.layers import QConv2d, QLinear
from hwbin.nn.quant import PixelInput

KERNELS = r"""
#include <stdint.h>
static float clipf(float v, float b) { return v > b ? b : (v < -b ? -b : v); }
static void conv(const float *in, int c, int h, int w, const float *wt, int o, int k, int s, int p, float pad,
                 const float *scale, const float *shift, float *out, int oh, int ow)
{
    int oc, y, x, ic, ky, kx;
    for (oc = 0; oc < o; oc++)
        for (y = 0; y < oh; y++)
            for (x = 0; x < ow; x++) {
                float acc = 0.0f;
                for (ic = 0; ic < c; ic++)
                    for (ky = 0; ky < k; ky++)
                        for (kx = 0; kx < k; kx++) {
                            int iy = y * s - p + ky, ix = x * s - p + kx;
                            float v = (iy < 0 || ix < 0 || iy >= h || ix >= w) ? pad : in[(ic * h + iy) * w + ix];
                            acc += v * wt[((oc * c + ic) * k + ky) * k + kx];
                        }
                out[(oc * oh + y) * ow + x] = acc * scale[oc] + shift[oc];
            }
}
static void maxpool(const float *in, int c, int h, int w, int k, float *out)
{
    int ch, y, x, dy, dx, oh = h / k, ow = w / k;
    for (ch = 0; ch < c; ch++)
        for (y = 0; y < oh; y++)
            for (x = 0; x < ow; x++) {
                float m = in[(ch * h + y * k) * w + x * k];
                for (dy = 0; dy < k; dy++)
                    for (dx = 0; dx < k; dx++) {
                        float v = in[(ch * h + y * k + dy) * w + x * k + dx];
                        m = v > m ? v : m;
                    }
                out[(ch * oh + y) * ow + x] = m;
            }
}
"""


def _floats(name: str, a) -> str:
    vals = ", ".join(_lit(v) for v in np.asarray(a, dtype=np.float32).ravel())
    return f"static const float {name}[{np.asarray(a).size}] = {{ {vals} }};\n"


def _lit(v) -> str:
    """A C float literal that round-trips float32."""
    return f"{float(v):.9e}f"


def _fold(layer) -> tuple[np.ndarray, np.ndarray]:
    """Batch norm (and bias) as out = acc * scale + shift."""
    o = layer.out_channels
    bias = layer.bias.detach().numpy() if layer.bias is not None else np.zeros(o)
    if layer.bn is None:
        return np.ones(o), bias
    bn = layer.bn
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().numpy()
    return scale, (bn.bias.detach().numpy() - bn.running_mean.numpy() * scale + bias * scale)


def float_c_source(model, in_shape) -> tuple[str, int, int]:
    """(C source defining ``float_forward(const uint8_t *img, float *scores)``, float weight
    count, classes). Supports conv (groups 1), max pool and dense stacks."""
    model.eval()
    decl, body = [], []
    c, h, w = in_shape
    body.append(f"    static float a[{max_act(model, in_shape)}], b[{max_act(model, in_shape)}];\n    float *x = a, *y = b, *t;\n"
                f"    int i;\n    for (i = 0; i < {c * h * w}; i++) x[i] = (2.0f * (float)img[i] - 255.0f) / 255.0f;\n")
    n_weights = 0
    for i, m in enumerate(model.layers):
        if isinstance(m, nn.MaxPool2d):
            k = int(m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0])
            body.append(f"    maxpool(x, {c}, {h}, {w}, {k}, y); t = x; x = y; y = t;\n")
            h, w = h // k, w // k
            continue
        if not isinstance(m, (QConv2d, QLinear)) or getattr(m, "groups", 1) != 1:
            raise HwbinError(f"float reference: layer {i} ({type(m).__name__}) is not supported")
        q = m.input_quantizer
        if not isinstance(q, PixelInput):
            bound = float(q.bases().detach().sum())
            body.append(f"    for (i = 0; i < {c * h * w}; i++) x[i] = clipf(x[i], {_lit(bound)});\n")
        wt = m.latent_weight_oihw().detach().numpy()
        n_weights += wt.size
        scale, shift = _fold(m)
        decl += [_floats(f"w{i}", wt), _floats(f"s{i}", scale), _floats(f"b{i}", shift)]
        o = wt.shape[0]
        if isinstance(m, QLinear):
            k, s, p, pad, oh, ow = h, 1, 0, 0.0, 1, 1
            if h != w:
                raise HwbinError(f"float reference: dense layer {i} needs a square input, found {h}x{w}")
        else:
            k, s, p = m.kernel_size[0], m.stride[0], m.padding[0]
            pad = float(q.pad_value())
            oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        body.append(f"    conv(x, {c}, {h}, {w}, w{i}, {o}, {k}, {s}, {p}, {_lit(pad)}, s{i}, b{i}, y, {oh}, {ow});"
                    f" t = x; x = y; y = t;\n")
        c, h, w = o, oh, ow
    body.append(f"    for (i = 0; i < {c}; i++) scores[i] = x[i];\n")
    src = KERNELS + "".join(decl) + ("void float_forward(const uint8_t *img, float *scores);\n"
                                     "void float_forward(const uint8_t *img, float *scores)\n{\n"
                                     + "".join(body) + "}\n")
    return src, n_weights, c


def max_act(model, in_shape) -> int:
    x = torch.zeros((1, *in_shape))
    biggest = int(np.prod(in_shape))
    with torch.no_grad():
        for m in model.layers:
            x = m(x)
            biggest = max(biggest, x.numel())
    return biggest
