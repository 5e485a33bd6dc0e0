"""Binary layers: each owns its input quantizer (like larq's ``input_quantizer``), its
weight binarizer with a per-output-channel mask, and the batch norm that precedes the next
activation quantizer. The last layer of a network has no batch norm and emits scores.

Padding uses the input quantizer's lowest level (level 0, all planes -1; pixel 0 for the
first layer), never zero: a zero would make the values ternary. Training and eval pad
the same way, so the exported model is exact at the borders too.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import arith
from .quant import PixelInput, WeightBinarizer, channel_alpha


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


class _BinaryLayer(nn.Module):
    """Shared state of every binary compute layer."""

    def __init__(self, weight_shape, out_channels: int, input_quantizer: nn.Module,
                 batch_norm: bool, bias: bool, norm_dims: int):
        super().__init__()
        self.input_quantizer = input_quantizer
        self.weight = nn.Parameter(torch.empty(weight_shape))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.weight_binarizer = WeightBinarizer()
        self.register_buffer("weight_mask", torch.zeros(out_channels, dtype=torch.bool))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        bn_cls = nn.BatchNorm2d if norm_dims == 2 else nn.BatchNorm1d
        self.bn = bn_cls(out_channels) if batch_norm else None

    @property
    def out_channels(self) -> int:
        return self.weight_mask.numel()

    def latent_weight_oihw(self) -> torch.Tensor:
        """The real-valued weight with the output channel first."""
        return self.weight

    def binary_weight_oihw(self) -> torch.Tensor:
        """The weight with the output channel first, binarized where the mask says so."""
        return self.weight_binarizer(self.latent_weight_oihw(), self.weight_mask)

    def _layout(self, w_oihw: torch.Tensor) -> torch.Tensor:
        """A weight with the output channel first, in the layout ``_apply`` hands to torch."""
        return w_oihw

    def effective_weight(self) -> torch.Tensor:
        """Weights in the layout the forward pass hands to torch."""
        return self._layout(self.binary_weight_oihw())

    def _apply(self, xq: torch.Tensor, weight: torch.Tensor, pad: float) -> torch.Tensor:
        """The linear map of the quantized input, borders reading ``pad``."""
        raise NotImplementedError

    def forward(self, x):
        if self.exact_eval():
            return self.integer_scores(x) if self.bn is None else self.exact_prequant(x)
        xq = self.input_quantizer(x.to(self.weight.dtype))   # float64 after an exact layer (a partly binary model)
        return self._finish(self._apply(xq, self.effective_weight(), self.input_quantizer.pad_value()))

    def exact_eval(self) -> bool:
        """Eval of a fully binary layer computes from the integer accumulator as the golden
        model does: a score layer (no batch norm) its integer scores, so its argmax is the
        golden model's even on near-ties that the float scale and the rounded ``score_mul``
        order differently; a hidden layer its pre-quantization value in float64 with the
        affine map export folds into thresholds, so the next quantizer's levels are the
        golden model's where a value lies within float32 rounding of a threshold."""
        return not self.training and bool(self.weight_mask.all()) and self.input_quantizer.binarized()

    def score_integers(self) -> tuple[int, np.ndarray, np.ndarray]:
        """(F, score_mul, score_add) of this score layer, as export writes them into the IR:
        ``arith.score_integers`` of alpha_o * u_in and the bias, in float64."""
        _, u_in = self.input_quantizer.int_bases()
        alpha = channel_alpha(self.latent_weight_oihw().detach().double()).cpu().numpy()
        bias = self.bias.detach().double().cpu().numpy() if self.bias is not None else np.zeros(self.out_channels)
        return arith.score_integers(alpha * u_in, bias)

    def folded_affine(self) -> tuple[np.ndarray, np.ndarray]:
        """(a, c), float64, with the pre-quantization value a_o * acc_o + c_o: alpha, the
        input scale, the bias and batch norm (eval statistics) in one map. Export turns it
        into integer thresholds; torch eval applies it (one definition)."""
        _, u_in = self.input_quantizer.int_bases()
        mult = channel_alpha(self.latent_weight_oihw().detach().double()).cpu().numpy() * u_in
        n = self.out_channels
        bias = self.bias.detach().double().cpu().numpy() if self.bias is not None else np.zeros(n)
        bn = self.bn
        sd = torch.sqrt(bn.running_var.detach().double() + bn.eps).cpu().numpy()
        gamma = bn.weight.detach().double().cpu().numpy() if bn.weight is not None else np.ones(n)
        beta = bn.bias.detach().double().cpu().numpy() if bn.bias is not None else np.zeros(n)
        mean = bn.running_mean.detach().double().cpu().numpy()
        return gamma * mult / sd, gamma * (bias - mean) / sd + beta

    def integer_acc(self, x) -> torch.Tensor:
        """The contract's integer accumulator (int64): the +-1 weights applied to the input's
        integer level values in float64, exact for any summation order."""
        values, pad = self.input_quantizer.integer_values(x)
        signs = torch.where(self.latent_weight_oihw().detach() >= 0, 1.0, -1.0).double()
        return self._apply(values, self._layout(signs), float(pad)).round().long()

    def exact_prequant(self, x) -> torch.Tensor:
        """a * acc + c in float64 (``folded_affine``): the same float64 operations as the
        inequality export's thresholds are checked against."""
        acc = self.integer_acc(x)
        a, c = self.folded_affine()
        shape = (1, -1) + (1,) * (acc.dim() - 2)
        return acc.double() * torch.from_numpy(a).to(acc.device).view(shape) + torch.from_numpy(c).to(acc.device).view(shape)

    def integer_scores(self, x) -> torch.Tensor:
        """score = score_mul * acc + score_add in int64 (the contract), returned as float64
        score * 2^-F, which is exact (|score| < 2^32): the logits' scale stays the float
        model's, and their order is the integers'. The accumulator is the +-1 weights
        applied to the integer level values in float64, exact for any summation order."""
        acc = self.integer_acc(x)
        shift, mul, add = self.score_integers()
        shape = (1, -1) + (1,) * (acc.dim() - 2)
        score = acc * torch.from_numpy(mul).to(acc.device).view(shape) + torch.from_numpy(add).to(acc.device).view(shape)
        return score.double() * 2.0 ** -shift

    def _finish(self, y):
        if self.bias is not None:
            shape = (1, -1) + (1,) * (y.dim() - 2)
            y = y + self.bias.view(shape)
        return self.bn(y) if self.bn is not None else y


class QConv2d(_BinaryLayer):
    def __init__(self, in_channels, out_channels, kernel_size, input_quantizer, stride=1,
                 padding=0, groups=1, batch_norm=True, bias=False):
        self.kernel_size, self.stride, self.padding = _pair(kernel_size), _pair(stride), _pair(padding)
        self.groups = groups
        self.in_channels = in_channels
        super().__init__((out_channels, in_channels // groups) + self.kernel_size, out_channels,
                         input_quantizer, batch_norm, bias, 2)

    def _apply(self, xq, weight, pad):
        ph, pw = self.padding
        if ph or pw:
            xq = F.pad(xq, (pw, pw, ph, ph), value=pad)
        return F.conv2d(xq, weight, stride=self.stride, groups=self.groups)


class QConvTranspose2d(_BinaryLayer):
    """Transposed convolution (the seed's DECONV) with exact pad-value borders.

    torch's conv_transpose2d treats taps that fall outside the input as 0. Here they read
    the pad value instead: the input is padded by P = ceil((k - 1 + output_padding - p) / s)
    pad-valued cells per side, run through a padding-0 transposed conv, and cropped. Every
    output then sums the same taps of its stride phase, which is what the IR specifies.
    """

    def __init__(self, in_channels, out_channels, kernel_size, input_quantizer, stride=1,
                 padding=0, output_padding=0, groups=1, batch_norm=True, bias=False):
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding, self.output_padding = _pair(padding), _pair(output_padding)
        self.groups = groups
        self.in_channels = in_channels
        super().__init__((in_channels, out_channels // groups) + self.kernel_size, out_channels,
                         input_quantizer, batch_norm, bias, 2)

    def latent_weight_oihw(self) -> torch.Tensor:
        """torch keeps (in, out/groups, kh, kw); as (out, in/groups, kh, kw)."""
        w = self.weight
        g = self.groups
        cin, cout_g = w.shape[0], w.shape[1]
        return w.view(g, cin // g, cout_g, *w.shape[2:]).transpose(1, 2).reshape(g * cout_g, cin // g, *w.shape[2:])

    def _layout(self, w):
        """(out, in/groups, kh, kw) back to torch's (in, out/groups, kh, kw)."""
        g = self.groups
        cout, cin_g = w.shape[0], w.shape[1]
        return w.view(g, cout // g, cin_g, *w.shape[2:]).transpose(1, 2).reshape(g * cin_g, cout // g, *w.shape[2:])

    def border(self, dim: int) -> int:
        k, s, p, op = self.kernel_size[dim], self.stride[dim], self.padding[dim], self.output_padding[dim]
        return max(0, -(-(k - 1 + op - p) // s))

    def output_size(self, size: int, dim: int) -> int:
        k, s, p, op = self.kernel_size[dim], self.stride[dim], self.padding[dim], self.output_padding[dim]
        return (size - 1) * s - 2 * p + k + op

    def _apply(self, xq, weight, pad):
        bh, bw = self.border(0), self.border(1)
        y = F.conv_transpose2d(F.pad(xq, (bw, bw, bh, bh), value=pad), weight, stride=self.stride, groups=self.groups)
        oh, ow = self.output_size(xq.shape[-2], 0), self.output_size(xq.shape[-1], 1)
        y0 = self.padding[0] + bh * self.stride[0]
        x0 = self.padding[1] + bw * self.stride[1]
        return y[..., y0:y0 + oh, x0:x0 + ow]


class QLinear(_BinaryLayer):
    """Dense layer over the flattened input (torch's C, H, W flatten order)."""

    def __init__(self, in_features, out_features, input_quantizer, batch_norm=True, bias=False):
        self.in_features = in_features
        super().__init__((out_features, in_features), out_features, input_quantizer, batch_norm, bias, 1)

    def _apply(self, xq, weight, pad):
        return F.linear(xq.flatten(1), weight)


class ChannelShuffle(nn.Module):
    """Interleaved group convolution's permutation (IGC, ShuffleNet): (g, C/g) -> (C/g, g)."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def permutation(self, channels: int) -> list[int]:
        """out[c] = in[perm[c]]."""
        g = self.groups
        return [(c % g) * (channels // g) + c // g for c in range(channels)]

    def forward(self, x):
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


def is_binary_layer(m: nn.Module) -> bool:
    return isinstance(m, _BinaryLayer)


def is_first_layer(m: nn.Module) -> bool:
    return isinstance(m.input_quantizer, PixelInput)
