"""Binarization methods as schedules of stages, and the masks each stage sets.

A stage fixes, for its epochs: the weight ratio (fraction of output channels binarized per
layer) and how channels are chosen, the activation ratio (fraction of positions binarized,
in sliding-window order from the top-left), which bottom layers are frozen, and which
layers the ratios apply to. Every method ends fully binarized, except fp and bwn.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from ..errors import HwbinError
from ..nn.quant import binarization_error

METHODS = ("fp", "bwn", "xnor", "horq", "sq", "staged", "srb", "greedy")
RATIOS = (0.5, 0.75, 0.875, 1.0)
PHASE_ORDERS = ("weights-first", "activations-first", "joint")


@dataclass
class Stage:
    name: str
    epochs: int
    weight_ratio: float
    act_ratio: float
    select: str = "first"       # first | error | roulette (per step)
    layers: list[int] | None = None  # binary-layer indices the ratios apply to; None = all
    frozen: int = 0              # number of bottom binary layers frozen
    distill: bool = False
    snapshot_teacher: bool = False  # after this stage, the model becomes the teacher

    def label(self) -> str:
        return f"w{self.weight_ratio * 100:g}% a{self.act_ratio * 100:g}%"

    def as_dict(self):
        return asdict(self)


@dataclass
class ScheduleConfig:
    method: str
    epochs: int = 60
    pretrain_fraction: float = 0.25
    ratios: tuple[float, ...] = RATIOS
    channel_order: str = "error"      # first | error (staged, srb)
    phase_order: str = "weights-first"  # weights-first | activations-first | joint (srb)
    distill: bool = True
    finetune_share: float | None = None  # srb: share of the post-pretrain epochs in the final fine-tune
    extra: dict = field(default_factory=dict)


def check_ratios(ratios) -> tuple[float, ...]:
    ratios = tuple(float(r) for r in ratios)
    if not ratios or any(not 0 < r <= 1 for r in ratios):
        raise HwbinError(f"ratio schedule: expected values in (0, 1], found {list(ratios)}")
    if list(ratios) != sorted(ratios):
        raise HwbinError(f"ratio schedule: expected rising ratios, found {list(ratios)}")
    if ratios[-1] != 1.0:
        raise HwbinError(f"ratio schedule: must end at 100%, found {ratios[-1] * 100:g}%")
    return ratios


def _split(total: int, parts: int) -> list[int]:
    base, rest = divmod(total, parts)
    return [base + (1 if i < rest else 0) for i in range(parts)]


def build_schedule(cfg: ScheduleConfig, n_binary_layers: int) -> list[Stage]:
    """The stages of ``cfg.method`` within a budget of ``cfg.epochs`` epochs in all."""
    if cfg.method not in METHODS:
        raise HwbinError(f"unknown method {cfg.method!r}: expected one of {', '.join(METHODS)}")
    ratios = check_ratios(cfg.ratios)
    if cfg.channel_order not in ("first", "error"):
        raise HwbinError(f"channel order: expected 'first' or 'error', found {cfg.channel_order!r}")
    if cfg.phase_order not in PHASE_ORDERS:
        raise HwbinError(f"phase order: expected one of {', '.join(PHASE_ORDERS)}, found {cfg.phase_order!r}")
    if cfg.finetune_share is not None and not 0 < cfg.finetune_share < 1:
        raise HwbinError(f"fine-tune share: expected a fraction in (0, 1), found {cfg.finetune_share}")
    e = cfg.epochs
    if e < 1:
        raise HwbinError(f"epochs: expected at least 1, found {e}")
    single = {"fp": (0.0, 0.0), "bwn": (1.0, 0.0), "xnor": (1.0, 1.0), "horq": (1.0, 1.0)}
    if cfg.method in single:
        w, a = single[cfg.method]
        return [Stage(cfg.method, e, w, a)]
    pre = max(1, round(e * cfg.pretrain_fraction))
    rest = e - pre
    if cfg.method in ("sq", "staged"):
        # Weights staged (roulette or fixed order), activations binary from the start.
        need = len(ratios)
        if rest < need:
            raise HwbinError(f"epochs: method {cfg.method} needs at least {pre + need}, found {e}")
        select = "roulette" if cfg.method == "sq" else cfg.channel_order
        stages = [Stage("pretrain", pre, 0.0, 1.0, snapshot_teacher=True)]
        for r, n in zip(ratios, _split(rest, need)):
            stages.append(Stage(f"w{r * 100:g}", n, r, 1.0, select=select, distill=cfg.distill))
        return stages
    if cfg.method == "srb":
        return [Stage("pretrain", pre, 0.0, 0.0, snapshot_teacher=True)] + _srb_stages(cfg, ratios, pre, rest)
    # greedy (seed 004): binarize the bottom layer, fine-tune, freeze it, go up.
    need = n_binary_layers
    if rest < need:
        raise HwbinError(f"epochs: method greedy needs at least {pre + need}, found {e}")
    stages = [Stage("pretrain", pre, 0.0, 0.0, snapshot_teacher=True)]
    for li, n in enumerate(_split(rest, need)):
        stages.append(Stage(f"layer{li}", n, 1.0, 1.0, layers=list(range(li + 1)), frozen=li,
                            distill=cfg.distill))
    return stages


def _srb_ratio_steps(cfg: ScheduleConfig, ratios) -> list[tuple[str, float, float]]:
    """(name, weight ratio, activation ratio) of each staged step: weights then activations
    (or the reverse), each through every ratio, or both phases together (joint)."""
    if cfg.phase_order == "joint":
        return [(f"wa{r * 100:g}", r, r) for r in ratios]
    weights_first = cfg.phase_order == "weights-first"
    steps = []
    for phase in ("w", "a") if weights_first else ("a", "w"):
        other = 1.0 if (phase == "a") == weights_first else 0.0
        steps += [(f"{phase}{r * 100:g}", r, other) if phase == "w" else (f"{phase}{r * 100:g}", other, r)
                  for r in ratios]
    return steps


def _srb_stages(cfg: ScheduleConfig, ratios, pre: int, rest: int) -> list[Stage]:
    """The staged steps, then a fully binary fine-tune. By default the fine-tune is as long
    as two steps; ``finetune_share`` gives it that share of the epochs after pre-training."""
    steps = _srb_ratio_steps(cfg, ratios)
    if cfg.finetune_share is None:
        need = len(steps) + 2
        if rest < need:
            raise HwbinError(f"epochs: method srb needs at least {pre + need}, found {pre + rest}")
        lengths = _split(rest, need)
        step_lengths, finetune = lengths[:len(steps)], lengths[-1] + lengths[-2]
    else:
        finetune = max(1, round(rest * cfg.finetune_share))
        if rest - finetune < len(steps):
            raise HwbinError(f"epochs: method srb with fine-tune share {cfg.finetune_share:g} needs at least "
                             f"{pre + len(steps) + finetune}, found {pre + rest}")
        step_lengths = _split(rest - finetune, len(steps))
    stages = [Stage(name, n, w, a, select=cfg.channel_order, distill=cfg.distill)
              for (name, w, a), n in zip(steps, step_lengths)]
    return stages + [Stage("finetune", finetune, 1.0, 1.0, distill=cfg.distill)]


# --------------------------------------------------------------------------- masks

def channel_order(weight_oihw: torch.Tensor, how: str) -> torch.Tensor:
    """Output channels in the order they get binarized: by index, or lowest error first."""
    n = weight_oihw.shape[0]
    if how == "first":
        return torch.arange(n)
    return torch.argsort(binarization_error(weight_oihw.detach()), stable=True)


def set_weight_mask(layer, ratio: float, how: str, generator: torch.Generator | None = None) -> None:
    n = layer.out_channels
    k = int(round(ratio * n))
    mask = torch.zeros(n, dtype=torch.bool)
    if k >= n:
        mask[:] = True
    elif k > 0:
        w = layer.latent_weight_oihw()
        if how == "roulette":
            # Stochastic quantization: the channels that stay full precision are drawn with
            # probability proportional to their binarization error.
            err = binarization_error(w.detach()).clamp_min(1e-6)
            keep_fp = torch.multinomial(err, n - k, replacement=False, generator=generator)
            mask[:] = True
            mask[keep_fp] = False
        else:
            mask[channel_order(w, how)[:k]] = True
    layer.weight_mask.copy_(mask)


def set_activation_mask(quantizer, ratio: float) -> None:
    """The first ratio*n positions in raster (sliding-window) order from the top-left."""
    n = quantizer.mask.numel()
    k = int(round(ratio * n))
    flat = torch.zeros(n, dtype=torch.bool)
    flat[:k] = True
    quantizer.mask.copy_(flat.view_as(quantizer.mask))


def apply_stage_masks(model, stage: Stage, generator: torch.Generator | None = None) -> None:
    for i, layer in enumerate(model.binary_layers()):
        on = stage.layers is None or i in stage.layers
        set_weight_mask(layer, stage.weight_ratio if on else 0.0, stage.select, generator)
        q = layer.input_quantizer
        if hasattr(q, "mask"):
            set_activation_mask(q, stage.act_ratio if on else 0.0)


def is_fully_binary(model) -> bool:
    return all(bool(layer.weight_mask.all()) for layer in model.binary_layers()) and \
        all(bool(q.mask.all()) for q in model.activation_quantizers())
