"""The training loop: stages from the schedule, Adam with a cosine learning rate restarted
at every stage, latent weights clipped to [-1, 1], optional distillation (from the
full-precision snapshot after pre-training, or from a given teacher model), metrics per
epoch and per stage."""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..data import Dataset
from ..errors import HwbinError
from ..models import BinaryNet
from ..util import progress
from .schedule import Stage, apply_stage_masks


@dataclass
class TrainConfig:
    lr: float = 5e-3
    batch_size: int = 64
    seed: int = 0
    distill_temperature: float = 2.0
    distill_weight: float = 0.5
    clip_weights: bool = True
    eval_train_subset: int = 2000
    lr_schedule: str = "stage"     # stage: cosine restarted at every stage | run: one cosine after pre-training
    bn_recalibrate: bool = False   # re-estimate batch-norm statistics of the final model (see recalibrate_bn)
    feature_distill: float = 0.0   # weight of the hidden-layer term of distillation (see HiddenTaps)


LR_SCHEDULES = ("stage", "run")


@dataclass
class History:
    epochs: list[dict] = field(default_factory=list)
    stages: list[dict] = field(default_factory=list)
    train_images: int = 0        # images through forward and backward passes
    train_seconds: float = 0.0   # time in those passes (evaluation excluded)

    def images_per_s(self) -> float | None:
        """Training throughput: what an epoch budget costs on this machine."""
        return self.train_images / self.train_seconds if self.train_seconds > 0 else None


def scores_metric(task: str, logits: torch.Tensor, y: torch.Tensor, num_classes: int):
    pred = logits.argmax(1)
    if task == "classify":
        return float((pred == y).float().mean())
    return mean_iou(pred.numpy(), y.numpy(), num_classes)


def mean_iou(pred: np.ndarray, y: np.ndarray, num_classes: int) -> float:
    """Mean over classes present in prediction or label of |P & Y| / |P | Y|."""
    ious = []
    for c in range(num_classes):
        p, t = pred == c, y == c
        union = np.logical_or(p, t).sum()
        if union:
            ious.append(np.logical_and(p, t).sum() / union)
    return float(np.mean(ious)) if ious else 1.0


@torch.no_grad()
def predict_logits(model: BinaryNet, x: np.ndarray, batch: int = 512) -> torch.Tensor:
    was = model.training
    model.eval()
    out = [model(torch.from_numpy(x[i:i + batch]).float()) for i in range(0, len(x), batch)]
    model.train(was)
    return torch.cat(out)


def evaluate(model: BinaryNet, x: np.ndarray, y: np.ndarray, num_classes: int) -> float:
    return scores_metric(model.task, predict_logits(model, x), torch.from_numpy(y), num_classes)


def _freeze(model: BinaryNet, n: int) -> None:
    for i, layer in enumerate(model.binary_layers()):
        for p in layer.parameters():
            p.requires_grad_(i >= n)


def _set_train_mode(model: BinaryNet, frozen: int) -> None:
    model.train()
    for i, layer in enumerate(model.binary_layers()):
        if i < frozen and layer.bn is not None:
            layer.bn.eval()  # frozen layers keep their running statistics


def _loss(model_task, logits, y, teacher_logits, cfg: TrainConfig):
    ce = F.cross_entropy(logits, y)
    if teacher_logits is None:
        return ce
    t = cfg.distill_temperature
    teacher_logits = teacher_logits.to(logits.dtype)  # a fully binary teacher's scores are float64
    kd = F.kl_div(F.log_softmax(logits / t, 1), F.log_softmax(teacher_logits / t, 1),
                  log_target=True, reduction="batchmean") * t * t
    if model_task == "segment":
        kd = kd / (logits.shape[-1] * logits.shape[-2])
    return (1 - cfg.distill_weight) * ce + cfg.distill_weight * kd


class HiddenTaps:
    """The outputs of a model's hidden binary layers (after batch norm: what the next
    quantizer sees) in one forward pass. Distilling them from a teacher of the same shape
    (the fp run the student started from) tells every layer what to compute, not only the
    last; the loss term is their mean squared difference, summed over layers."""

    def __init__(self, model: BinaryNet, training_only: bool = False):
        """``training_only``: keep outputs only of forward passes in training mode (the
        student's; its per-epoch evaluation keeps nothing)."""
        self.outputs: list[torch.Tensor] = []
        self.handles = [layer.register_forward_hook(
            lambda m, i, o: self.outputs.append(o) if m.training or not training_only else None)
            for layer in model.binary_layers()[:-1]]

    def take(self) -> list[torch.Tensor]:
        """The outputs since the last take."""
        out, self.outputs = self.outputs, []
        return out

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def feature_loss(student: list[torch.Tensor], teacher: list[torch.Tensor]) -> torch.Tensor:
    if [s.shape for s in student] != [t.shape for t in teacher]:
        raise HwbinError(f"feature distillation: the teacher's hidden layers are {[tuple(t.shape[1:]) for t in teacher]}, "
                         f"the student's {[tuple(s.shape[1:]) for s in student]}; it needs the same shapes")
    return sum(F.mse_loss(s, t.to(s.dtype)) for s, t in zip(student, teacher))


def _frozen_copy(model: BinaryNet) -> BinaryNet:
    """A copy in eval mode that no optimizer step or batch-norm update can change."""
    frozen = copy.deepcopy(model).eval()
    for p in frozen.parameters():
        p.requires_grad_(False)
    return frozen


def run_stages(model: BinaryNet, data: Dataset, stages: list[Stage], cfg: TrainConfig,
               binary: bool, on_epoch=None, teacher: BinaryNet | None = None) -> History:
    """Train ``model`` through ``stages``; returns per-epoch and per-stage metrics.

    Stages marked ``distill`` learn from ``teacher`` (a trained model, kept in eval mode)
    when one is given, otherwise from the snapshot a ``snapshot_teacher`` stage left."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    mask_gen = torch.Generator().manual_seed(cfg.seed + 1)
    x_all = torch.from_numpy(data.x_train).float()
    y_all = torch.from_numpy(data.y_train)
    n = len(x_all)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    hist = History()
    fixed_teacher = _frozen_copy(teacher) if teacher is not None else None
    teacher = fixed_teacher
    epoch = 0
    sub = data.x_train[: cfg.eval_train_subset], data.y_train[: cfg.eval_train_subset]
    for si, stage in enumerate(stages):
        apply_stage_masks(model, stage, mask_gen)
        _freeze(model, stage.frozen)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=cfg.lr)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_factor(stages, si, steps_per_epoch, cfg.lr_schedule))
        use_teacher = teacher if stage.distill else None
        taps = ((HiddenTaps(model, training_only=True), HiddenTaps(use_teacher))
                if use_teacher is not None and cfg.feature_distill else None)
        # Counted in images, so the bar moves within long epochs and shows images/s.
        bar = progress(total=stage.epochs * n, desc=f"{stage.name:>9} {stage.label()}", unit="img", unit_scale=True)
        for _ in range(stage.epochs):
            _set_train_mode(model, stage.frozen)
            perm = torch.randperm(n, generator=gen)
            loss_sum = 0.0
            t_epoch = time.perf_counter()
            for s in range(steps_per_epoch):
                idx = perm[s * cfg.batch_size:(s + 1) * cfg.batch_size]
                xb, yb = x_all[idx], y_all[idx]
                if stage.select == "roulette":
                    apply_stage_masks(model, stage, mask_gen)
                t_logits = None
                if use_teacher is not None:
                    with torch.no_grad():
                        t_logits = use_teacher(xb)
                loss = _loss(model.task, model(xb), yb, t_logits, cfg)
                if taps is not None:
                    loss = loss + cfg.feature_distill * feature_loss(taps[0].take(), taps[1].take())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                if binary and cfg.clip_weights:
                    with torch.no_grad():
                        for layer in model.binary_layers():
                            layer.weight.clamp_(-1.0, 1.0)
                loss_sum += float(loss.detach()) * len(idx)
                bar.update(len(idx))
            seconds = time.perf_counter() - t_epoch
            hist.train_images += n
            hist.train_seconds += seconds
            epoch += 1
            row = {"epoch": epoch, "stage": stage.name, "train_loss": loss_sum / n, "images_per_s": n / seconds,
                   "train_acc": evaluate(model, *sub, data.num_classes),
                   "test_acc": evaluate(model, data.x_test, data.y_test, data.num_classes),
                   "lr": float(sched.get_last_lr()[0])}
            hist.epochs.append(row)
            bar.set_postfix(loss=f"{row['train_loss']:.3f}", test=f"{row['test_acc']:.3f}",
                            img_s=f"{row['images_per_s']:.0f}")
            if on_epoch:
                on_epoch(row)
        bar.close()
        for t in taps or ():
            t.close()
        last = hist.epochs[-1] if hist.epochs else {}
        hist.stages.append({**stage.as_dict(), "train_loss": last.get("train_loss"),
                            "train_acc": last.get("train_acc"), "test_acc": last.get("test_acc"),
                            "end_epoch": epoch})
        if stage.snapshot_teacher and fixed_teacher is None:
            teacher = _frozen_copy(model)
    _freeze(model, 0)
    if cfg.bn_recalibrate:
        recalibrate_bn(model, x_all, cfg.batch_size)
    model.eval()
    return hist


def _lr_factor(stages: list[Stage], si: int, steps_per_epoch: int, how: str):
    """The learning-rate factor of stage ``si`` as a function of its step. 'stage': a cosine
    from 1 to 0 within each stage (a restart at every stage). 'run': a pre-training stage
    keeps its own cosine; the stages after it share one cosine, so the staged steps start
    high and the fully binary fine-tune ends the decay without a restart."""
    if how not in LR_SCHEDULES:
        raise ValueError(f"lr schedule: expected one of {', '.join(LR_SCHEDULES)}, found {how!r}")
    pretrain = stages[0].snapshot_teacher
    if how == "stage" or (si == 0 and pretrain):
        first, last = si, si
    else:
        first, last = (1 if pretrain else 0), len(stages) - 1
    offset = sum(st.epochs for st in stages[first:si]) * steps_per_epoch
    total = max(1, sum(st.epochs for st in stages[first:last + 1]) * steps_per_epoch)
    return lambda s: 0.5 * (1 + math.cos(math.pi * min(s + offset, total) / total))


@torch.no_grad()
def recalibrate_bn(model: BinaryNet, x: torch.Tensor, batch_size: int) -> None:
    """Batch-norm running statistics as the mean and variance over the training set of the
    final (fully trained) model, instead of momentum averages that lag the last weight
    updates. Each batch's momentum is its share of the images seen so far, so the running
    mean is exactly the mean over all images (the variance is the image-weighted mean of the
    batch variances). Quantizers run in eval mode (integer bases, as deployed); only the
    batch norms take batch statistics. They fold into the thresholds at export as before."""
    model.eval()
    for layer in model.binary_layers():
        layer.training = True   # the float path through the batch norm (not eval's exact one); quantizers stay in eval
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.train()
    for i in range(0, len(x), batch_size):
        xb = x[i:i + batch_size]
        for bn in bns:
            bn.momentum = len(xb) / (i + len(xb))
        model(xb)
    for bn, momentum in zip(bns, momenta):
        bn.momentum = momentum
    model.eval()


def wall_clock():
    return time.perf_counter()
