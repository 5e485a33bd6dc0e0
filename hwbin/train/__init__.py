"""Training as a library: ``train(...)`` runs one method on one model and data set and
writes a run directory (model.pt, metrics.json, curves.png) atomically.

The layers and schedules are usable on their own: ``hwbin.nn`` for the layers,
``hwbin.train.schedule`` for methods as stages, ``hwbin.train.loop.run_stages`` to train.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ..data import load_dataset
from ..errors import HwbinError
from ..models import MODELS, BinaryNet, build_model, load_checkpoint, load_spec_file, save_checkpoint
from ..util import atomic_write_json, staging_dir
from .loop import LR_SCHEDULES, TrainConfig, evaluate, run_stages
from .schedule import METHODS, RATIOS, ScheduleConfig, build_schedule, is_fully_binary

__all__ = ["TrainOptions", "train", "METHODS"]


@dataclass
class TrainOptions:
    model: str = "digits-cnn"
    method: str = "srb"
    dataset: str | None = None     # defaults to the model's own
    data_path: str | None = None
    spec: str | None = None        # a user's layer stack (JSON file) instead of a zoo model
    train_images: int | None = None  # the first N training images only (None: all)
    test_images: int | None = None   # the first N test images only (None: all)
    epochs: int = 60
    order: int = 2
    seed: int = 0
    lr: float = 5e-3
    batch_size: int = 64
    ratios: tuple[float, ...] = RATIOS
    channel_order: str = "error"
    phase_order: str = "weights-first"
    distill: bool = True
    finetune_share: float | None = None  # srb: share of the post-pretrain epochs in the fine-tune
    pretrain_fraction: float = 0.25
    init: str | None = None        # start from this checkpoint's weights
    teacher: str | None = None     # distill from this trained model (run folder or model.pt)
    distill_weight: float = 0.5    # share of the distillation term in the loss (the rest: cross-entropy)
    distill_temperature: float = 2.0
    lr_schedule: str = "stage"     # stage: cosine restarted per stage | run: one cosine after pre-training
    bn_recalibrate: bool = False   # exact batch-norm statistics of the final model over the training set
    feature_distill: float = 0.0   # weight of distilling the teacher's hidden-layer outputs (same shapes)


def _check_options(opt: TrainOptions):
    if opt.spec is None and opt.model not in MODELS:
        raise HwbinError(f"unknown model {opt.model!r}: expected one of {', '.join(MODELS)}")
    if opt.method not in METHODS:
        raise HwbinError(f"unknown method {opt.method!r}: expected one of {', '.join(METHODS)}")
    if not 1 <= opt.order <= 8:
        raise HwbinError(f"order: expected 1..8, found {opt.order}")
    if opt.teacher and not opt.distill:
        raise HwbinError("--teacher: distillation is off (--no-distill); drop one of the two")
    if not 0 <= opt.distill_weight <= 1 or not opt.distill_temperature > 0:
        raise HwbinError(f"distillation: expected a weight in [0, 1] and a temperature > 0, found "
                         f"{opt.distill_weight} and {opt.distill_temperature}")
    if opt.feature_distill < 0:
        raise HwbinError(f"feature distillation: expected a weight >= 0, found {opt.feature_distill}")
    if opt.lr_schedule not in LR_SCHEDULES:
        raise HwbinError(f"lr schedule: expected one of {', '.join(LR_SCHEDULES)}, found {opt.lr_schedule!r}")


def _build_for(opt: TrainOptions, order: int):
    """(data set, model) for a zoo model or a user's spec file; the input shape comes from
    the data set."""
    if opt.spec is not None:
        user = load_spec_file(opt.spec)
        data = _load_data(opt, opt.dataset or user["dataset"] or "digits")
        torch.manual_seed(opt.seed)
        model = BinaryNet(user["spec"], data.in_shape, data.num_classes, order, task=data.task, where=str(opt.spec))
        model.config["name"] = user["name"]
        _check_output_shape(model, data, opt.spec)
        return data, model
    data = _load_data(opt, opt.dataset or MODELS[opt.model]["dataset"])
    if data.task != MODELS[opt.model]["task"]:
        raise HwbinError(f"model {opt.model!r} is for {MODELS[opt.model]['task']} data; "
                         f"data set {data.name!r} is {data.task}")
    torch.manual_seed(opt.seed)
    return data, build_model(opt.model, data.in_shape, data.num_classes, order=order)


def _load_data(opt: TrainOptions, name: str):
    data = load_dataset(name, opt.data_path)
    if opt.train_images is not None or opt.test_images is not None:
        data = data.head(opt.train_images, opt.test_images)
    return data


def _check_output_shape(model: BinaryNet, data, where: str) -> None:
    """Classification needs one score per class; segmentation one per class and pixel."""
    c, h, w = model.out_shape
    want = (1, 1) if data.task == "classify" else tuple(data.y_test.shape[1:])
    if (h, w) != want:
        raise HwbinError(f"{where}: the last layer's output is {c}x{h}x{w}; data set {data.name!r} "
                         f"({data.task}) needs {data.num_classes}x{want[0]}x{want[1]}")


def prepare(opt: TrainOptions):
    """Validate everything and build data, model and schedule before any file is written."""
    _check_options(opt)
    order = 1 if opt.method == "xnor" else opt.order
    data, model = _build_for(opt, order)
    if opt.init:
        init_model, _ = load_checkpoint(opt.init)
        if init_model.config["spec"] != model.config["spec"] or init_model.config["in_shape"] != model.config["in_shape"] \
                or init_model.config["num_classes"] != model.config["num_classes"] \
                or init_model.config["order"] != model.config["order"]:
            raise HwbinError(f"{opt.init}: checkpoint is for another config (model "
                             f"{init_model.config.get('name')!r}, order {init_model.config['order']}); "
                             f"expected model {model.config['name']!r}, order {order}")
        model.load_state_dict(init_model.state_dict())
    sched_cfg = ScheduleConfig(opt.method, opt.epochs, opt.pretrain_fraction, tuple(opt.ratios),
                               opt.channel_order, opt.phase_order, opt.distill, opt.finetune_share)
    stages = build_schedule(sched_cfg, len(model.binary_layers()))
    return data, model, stages


def load_teacher(path: str, data) -> BinaryNet:
    """A trained model to distill from: any architecture, but the same input and classes as
    ``data``. Read like every checkpoint (``torch.load`` with ``weights_only``, never a
    pickle with code); a run folder means its ``model.pt``."""
    p = Path(path)
    teacher, _ = load_checkpoint(p / "model.pt" if p.is_dir() else p)
    got = (tuple(teacher.config["in_shape"]), teacher.config["num_classes"], teacher.task)
    want = (tuple(data.in_shape), data.num_classes, data.task)
    if got != want:
        raise HwbinError(f"{path}: teacher is for input {got[0]}, {got[1]} classes, {got[2]}; "
                         f"data set {data.name!r} has input {want[0]}, {want[1]} classes, {want[2]}")
    return teacher


def fit(opt: TrainOptions, data, model: BinaryNet, stages):
    """Run the prepared schedule as ``opt`` says (learning rate, batch, seed, teacher)."""
    cfg = TrainConfig(lr=opt.lr, batch_size=opt.batch_size, seed=opt.seed, distill_weight=opt.distill_weight,
                      distill_temperature=opt.distill_temperature, lr_schedule=opt.lr_schedule,
                      bn_recalibrate=opt.bn_recalibrate, feature_distill=opt.feature_distill)
    teacher = load_teacher(opt.teacher, data) if opt.teacher else None
    return run_stages(model, data, stages, cfg, binary=opt.method != "fp", teacher=teacher)


def deployed_accuracy(model: BinaryNet, data) -> float | None:
    """The golden model's test accuracy (what the hardware computes), or None if the
    model is not fully binary and so cannot be deployed."""
    if not is_fully_binary(model):
        return None
    from .. import golden
    from ..export import export_model
    from .loop import mean_iou

    result = golden.run(export_model(model), data.x_test)
    if data.task == "classify":
        return float((result.pred == data.y_test).mean())
    return mean_iou(result.pred, data.y_test, data.num_classes)


def train_and_measure(opt: TrainOptions):
    """One run, prepared, fitted and measured the same way for ``hwbin train`` and a sweep cell:
    (data, model, history, wall seconds, torch test accuracy, deployed accuracy or None)."""
    data, model, stages = prepare(opt)
    t0 = time.perf_counter()
    hist = fit(opt, data, model, stages)
    wall = time.perf_counter() - t0
    torch_acc = evaluate(model, data.x_test, data.y_test, data.num_classes)
    return data, model, hist, wall, torch_acc, deployed_accuracy(model, data)


def train(opt: TrainOptions, out_dir: str | Path, plot: bool = True) -> dict:
    """Train and write ``out_dir`` (only once everything succeeded). Returns the metrics."""
    data, model, hist, wall, torch_acc, golden_acc = train_and_measure(opt)
    metric = "accuracy" if data.task == "classify" else "mean_iou"
    metrics = {
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(opt).items()},
        "model": model.config["name"], "dataset": data.name, "task": data.task, "metric": metric,
        "stages": hist.stages, "history": hist.epochs,
        "final": {"test_torch": torch_acc, "test_golden": golden_acc,
                  "test": golden_acc if golden_acc is not None else torch_acc,
                  "source": "golden" if golden_acc is not None else "torch",
                  "train_loss": hist.epochs[-1]["train_loss"] if hist.epochs else None,
                  "epochs": len(hist.epochs), "wall_s": wall, "fully_binary": is_fully_binary(model),
                  "train_images_per_s": hist.images_per_s()},
    }
    with staging_dir(out_dir, "train") as tmp:
        save_checkpoint(tmp / "model.pt", model, {"method": opt.method, "dataset": data.name})
        atomic_write_json(tmp / "metrics.json", metrics)
        if plot:
            from .plots import plot_curves
            plot_curves(metrics, tmp / "curves.png")
    return metrics
