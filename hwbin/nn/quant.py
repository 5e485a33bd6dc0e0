"""Quantizers as small objects (in the manner of larq): sign(0) = +1 everywhere.

Partial binarization is state in buffers (saved with the model, deterministic): a
per-output-channel weight mask lives on the layer, a per-position activation mask on the
activation quantizer. A masked-off element stays full precision.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .. import arith


class SignSTE(torch.autograd.Function):
    """Forward: sign with sign(0) = +1. Backward: straight-through, clipped at |x| <= clip."""

    @staticmethod
    def forward(ctx, x, clip=1.0):
        ctx.save_for_backward(x)
        ctx.clip = clip
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= ctx.clip).to(grad.dtype), None


def sign_ste(x, clip: float = 1.0):
    return SignSTE.apply(x, clip)


def channel_alpha(w: torch.Tensor) -> torch.Tensor:
    """XNOR-Net's per-output-channel scale alpha_o = mean |W_o| (dim 0 is the output)."""
    return w.abs().mean(dim=tuple(range(1, w.dim())))


def binarization_error(w: torch.Tensor) -> torch.Tensor:
    """Relative L1 error of binarizing each output channel: |W - alpha sign W|_1 / |W|_1."""
    alpha = channel_alpha(w).view(-1, *([1] * (w.dim() - 1)))
    dims = tuple(range(1, w.dim()))
    err = (w - alpha * torch.where(w >= 0, 1.0, -1.0)).abs().sum(dims)
    return err / w.abs().sum(dims).clamp_min(1e-12)


class WeightBinarizer(nn.Module):
    """alpha_o * sign(W_o) for the output channels whose mask bit is set."""

    def forward(self, w: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        shape = (-1,) + (1,) * (w.dim() - 1)
        alpha = channel_alpha(w).view(shape)
        wb = alpha * sign_ste(w)
        if bool(mask.all()):
            return wb
        return torch.where(mask.view(shape), wb, w)


class ClippedQuantizer(nn.Module):
    """Seed 004's M-bit quantizer: clip to [-b, b] with b = min(max|w|, 1), then 2^M
    evenly spaced levels including both ends; round half up, so M = 1 gives b*sign(w)."""

    def __init__(self, bits: int):
        super().__init__()
        if bits < 1:
            raise ValueError(f"ClippedQuantizer: bits must be >= 1, found {bits}")
        self.bits = bits

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        b = w.detach().abs().max().clamp(max=1.0).clamp_min(1e-12)
        wc = torch.maximum(torch.minimum(w, b), -b)
        step = 2 * b / (2 ** self.bits - 1)
        q = -b + step * torch.floor((wc.detach() + b) / step + 0.5)
        return q + (wc - wc.detach())


class PixelInput(nn.Module):
    """The first layer's input: uint8 pixels x as the order-8 activation 2x - 255.

    Exact by construction (no mask, no learning). The float value is (2x - 255) / 255 so
    that it lives in [-1, 1]; pixel 0 (level 0) is the pad value.
    """

    order = arith.PIXEL_ORDER
    scale = 1.0 / 255.0

    def forward(self, x):
        return (2.0 * x - 255.0) * self.scale

    def int_bases(self):
        return arith.PIXEL_BASES, self.scale

    def pad_value(self) -> float:
        return -1.0

    def binarized(self) -> bool:
        return True

    def integer_values(self, x) -> tuple[torch.Tensor, int]:
        """(2x - 255 in float64, the pad value -255): the integers the contract sums."""
        return 2.0 * x.double() - 255.0, -255


def _inverse_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


class ResidualBinarizer(nn.Module):
    """Order-k residual activation binarization with learned static bases (HORQ, k=1 is
    XNOR-Net's sign).

    Training: H_1 = sign(x), R_1 = x - beta_1 H_1, H_2 = sign(R_1), ...; the bases are
    parameterized so that beta_i >= sum_{j>i} beta_j always holds, which makes the k planes
    the bits of a level index. Gradient: straight-through, clipped at |x| <= sum(beta).
    Eval: the bases are snapped to integers (``arith.snap_bases``) and the level is found by
    the integer thresholds of the contract, so eval is exactly what export deploys.
    ``mask`` (one flag per position of the feature map) selects which positions are
    binarized; the others pass through clipped to [-sum(beta), sum(beta)].
    """

    def __init__(self, order: int, positions: tuple[int, ...], max_base: int = arith.DEFAULT_MAX_BASE):
        super().__init__()
        if order < 1:
            raise ValueError(f"ResidualBinarizer: order must be >= 1, found {order}")
        self.order = order
        self.max_base = max_base
        c = 0.8 if order == 1 else 1.0
        inc = c * 2.0 ** -(order - 1)
        self.raw = nn.Parameter(torch.full((order,), _inverse_softplus(inc)))
        self.register_buffer("mask", torch.zeros(positions, dtype=torch.bool))

    def bases(self) -> torch.Tensor:
        inc = F.softplus(self.raw)
        betas = [None] * self.order
        tail = inc.new_zeros(())
        for i in range(self.order - 1, -1, -1):
            betas[i] = inc[i] + tail
            tail = tail + betas[i]
        return torch.stack(betas)

    def int_bases(self) -> tuple[tuple[int, ...], float]:
        return arith.snap_bases(self.bases().detach().cpu().tolist(), self.max_base)

    def pad_value(self) -> float:
        if self.training:
            return -float(self.bases().detach().sum())
        ints, scale = self.int_bases()
        return -scale * sum(ints)

    def binarized(self) -> bool:
        """Is every position quantized (so eval values are integers times the scale)?"""
        return bool(self.mask.all())

    def integer_values(self, x) -> tuple[torch.Tensor, int]:
        """Eval: the integer level values v(L) (float64, exact) and the pad value v(0).
        The level is chosen exactly as the eval forward chooses it."""
        ints, scale = self.int_bases()
        values = torch.tensor(arith.level_values(ints), dtype=torch.float64, device=x.device)
        return values[self._levels(x, ints, scale)], -sum(ints)

    def _mask_for(self, x):
        return self.mask.view((1,) * (x.dim() - self.mask.dim()) + tuple(self.mask.shape))

    def forward(self, x):
        mask = self._mask_for(x)
        if not self.training:
            q = self._eval_quantize(x)
        else:
            q = self._train_quantize(x)
        if bool(self.mask.all()):
            return q
        bound = self.bases().sum()
        clipped = torch.maximum(torch.minimum(x, bound), -bound)
        return torch.where(mask, q, clipped)

    def _train_quantize(self, x):
        betas = self.bases()
        bound = betas.sum().detach()
        out = torch.zeros_like(x)
        residual = x.detach()
        for i in range(self.order):
            h = torch.where(residual >= 0, 1.0, -1.0)
            out = out + betas[i] * h
            residual = x.detach() - out.detach()
        xc = torch.maximum(torch.minimum(x, bound), -bound)
        return out + (xc - xc.detach())

    def eval_levels(self, x):
        """Eval: the level index L of every value (what the IR's thresholds compute), ignoring the mask."""
        ints, scale = self.int_bases()
        return self._levels(x, ints, scale)

    @staticmethod
    def _levels(x, ints, scale):
        """Level index from snapped bases; the caller snaps once (int_bases is not free)."""
        points = torch.tensor(arith.residual_thresholds(ints), dtype=x.dtype, device=x.device) * scale
        return (x.unsqueeze(-1) >= points).sum(-1)

    def _eval_quantize(self, x):
        ints, scale = self.int_bases()
        values = torch.tensor(arith.level_values(ints), dtype=x.dtype, device=x.device) * scale
        return values[self._levels(x, ints, scale)]
