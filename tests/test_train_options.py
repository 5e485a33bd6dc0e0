"""Schedule options of the training loop: the learning-rate shape across stages, and the
batch-norm re-estimation of the final model (which must keep torch eval = golden)."""
import math

import numpy as np
import pytest
import torch

from hwbin.data import load_dataset
from hwbin.export import compare_with_torch, export_model
from hwbin.models import build_model
from hwbin.train import TrainOptions, prepare
from hwbin.train.loop import _lr_factor, recalibrate_bn
from hwbin.train.schedule import Stage, apply_stage_masks


def _factors(stages, how, steps=3):
    """Every optimizer step's learning-rate factor, stage after stage (as LambdaLR calls it:
    step 0 first, then one call per step)."""
    out = []
    for si, st in enumerate(stages):
        f = _lr_factor(stages, si, steps, how)
        out += [f(s) for s in range(st.epochs * steps)]
    return out


STAGES = [Stage("pretrain", 2, 0, 0, snapshot_teacher=True), Stage("wa50", 1, 0.5, 0.5),
          Stage("wa100", 2, 1, 1), Stage("finetune", 3, 1, 1)]


def cosine(t, total):
    return 0.5 * (1 + math.cos(math.pi * t / total))


def test_lr_restarts_per_stage_by_default():
    got = _factors(STAGES, "stage")
    want = [cosine(s, st.epochs * 3) for st in STAGES for s in range(st.epochs * 3)]
    assert got == pytest.approx(want)
    assert got[6] == 1.0 and got[9] == 1.0 and got[15] == 1.0   # a restart at every stage


def test_lr_run_schedule_is_one_cosine_after_pretraining():
    got = _factors(STAGES, "run")
    pre = [cosine(s, 6) for s in range(6)]
    after = [cosine(s, 18) for s in range(18)]   # 6 epochs x 3 steps, no restart
    assert got == pytest.approx(pre + after)
    # Single-stage methods (no pre-training stage) get one cosine either way.
    single = [Stage("horq", 4, 1, 1)]
    assert _factors(single, "run") == pytest.approx(_factors(single, "stage"))


def test_unknown_lr_schedule_is_refused():
    from hwbin.errors import HwbinError
    from hwbin.train import _check_options

    with pytest.raises(HwbinError, match="lr schedule"):
        _check_options(TrainOptions(model="digits-tiny", lr_schedule="linear"))


def test_bn_recalibration_gives_exact_mean_and_keeps_golden():
    data = load_dataset("digits").head(300, 100)
    torch.manual_seed(0)
    model = build_model("digits-tiny", data.in_shape, data.num_classes)
    apply_stage_masks(model, Stage("b", 1, 1.0, 1.0))
    x = torch.from_numpy(data.x_train).float()
    layer0 = model.binary_layers()[0]
    bn0 = layer0.bn
    model.eval()
    with torch.no_grad():   # the first batch norm's input (conv0's output) does not depend on the later ones
        seen = [layer0._apply(layer0.input_quantizer(x), layer0.effective_weight(), layer0.input_quantizer.pad_value())]
    want = seen[0].double().mean(dim=(0, 2, 3))
    recalibrate_bn(model, x, batch_size=64)
    assert torch.allclose(bn0.running_mean.double(), want, atol=1e-5)
    assert bn0.momentum == 0.1 and not model.training
    agree = compare_with_torch(model, export_model(model), data.x_test)
    assert agree["prediction_agreement"] == 1.0


def test_bn_recalibrate_option_reaches_the_loop(monkeypatch):
    from hwbin.train import fit, loop

    calls = []
    monkeypatch.setattr(loop, "recalibrate_bn", lambda model, x, b: calls.append((len(x), b)))
    opt = TrainOptions(model="digits-tiny", method="horq", epochs=1, train_images=128, test_images=32,
                       bn_recalibrate=True, lr_schedule="run")
    data, model, stages = prepare(opt)
    fit(opt, data, model, stages)
    assert calls == [(128, 64)]
    assert np.isfinite(model.binary_layers()[0].bn.running_mean.numpy()).all()


def test_feature_loss_sees_every_hidden_layer():
    """A teacher equal to the student gives 0; shifting the last hidden layer's batch-norm
    bias by d (nothing downstream is tapped) gives exactly d^2, the MSE of that layer."""
    import copy

    from hwbin.train.loop import HiddenTaps, feature_loss

    data = load_dataset("digits").head(64, 16)
    torch.manual_seed(1)
    student = build_model("digits-tiny", data.in_shape, data.num_classes).eval()
    teacher = copy.deepcopy(student)
    x = torch.from_numpy(data.x_train).float()
    taps = HiddenTaps(student), HiddenTaps(teacher)
    with torch.no_grad():
        student(x), teacher(x)
        assert len(taps[0].outputs) == 3 and float(feature_loss(taps[0].take(), taps[1].take())) == 0.0
        teacher.binary_layers()[2].bn.bias += 0.25
        student(x), teacher(x)
        assert float(feature_loss(taps[0].take(), taps[1].take())) == pytest.approx(0.0625, rel=1e-5)
    for t in taps:
        t.close()
    student(x)
    assert taps[0].outputs == []
    with pytest.raises(Exception, match="same shapes"):
        feature_loss([torch.zeros(2, 3)], [torch.zeros(2, 4)])


def test_feature_distillation_runs_in_distilled_stages_only(monkeypatch):
    from hwbin.train import loop

    data = load_dataset("digits").head(64, 16)
    torch.manual_seed(1)
    teacher = build_model("digits-tiny", data.in_shape, data.num_classes).eval()
    _, model, stages = prepare(TrainOptions(model="digits-tiny", method="srb", epochs=6, train_images=64,
                                            test_images=16, ratios=(1.0,)))
    seen = []
    real = loop.feature_loss
    monkeypatch.setattr(loop, "feature_loss", lambda s, t: seen.append(len(s)) or real(s, t))
    loop.run_stages(model, data, stages, loop.TrainConfig(feature_distill=0.7), binary=True, teacher=teacher)
    assert seen == [3] * sum(s.epochs for s in stages if s.distill)   # one batch an epoch, 3 hidden layers
    assert not stages[0].distill


def test_cli_schedule_options_reach_the_run(tmp_path):
    """hwbin train --lr-schedule run --bn-recalibrate --feature-distill W: recorded in
    metrics.json, and the result stays deployable (golden accuracy, torch = golden)."""
    import json

    from .conftest import run_cli

    out = tmp_path / "run"
    r = run_cli("train", "--model", "digits-tiny", "--method", "srb", "--epochs", "6", "--ratios", "50,100",
                "--phase-order", "joint", "--lr-schedule", "run", "--bn-recalibrate", "--feature-distill", "0.2",
                "--train-images", "200", "--test-images", "100", "--out", out, "--no-plot")
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    o = m["options"]
    assert (o["lr_schedule"], o["bn_recalibrate"], o["feature_distill"]) == ("run", True, 0.2)
    assert m["final"]["source"] == "golden" and m["final"]["test_golden"] == pytest.approx(m["final"]["test_torch"])
    bad = run_cli("train", "--model", "digits-tiny", "--lr-schedule", "linear", "--out", tmp_path / "x")
    assert bad.returncode == 2 and "lr-schedule" in bad.stderr
