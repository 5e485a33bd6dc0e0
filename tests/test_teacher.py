"""Distillation from a given teacher (``hwbin train --teacher RUN``): the teacher is read as
a checkpoint, must fit the data set, steers the distilled stages only, and is never
changed by the student's training."""
import copy

import pytest
import torch

from hwbin.errors import HwbinError
from hwbin.models import build_model, save_checkpoint
from hwbin.train import TrainOptions, fit, prepare

from .conftest import run_cli


@pytest.fixture(scope="module")
def fp_teacher(tmp_path_factory):
    """A full-precision digits-tiny run folder (2 epochs), as ``hwbin train`` writes it."""
    out = tmp_path_factory.mktemp("teacher") / "fp"
    r = run_cli("train", "--model", "digits-tiny", "--method", "fp", "--epochs", "2", "--out", out, "--no-plot")
    assert r.returncode == 0, r.stderr
    return out


def _student(teacher=None, **kw):
    opt = TrainOptions(model="digits-tiny", method="srb", epochs=8, ratios=(0.5, 1.0), seed=3, teacher=teacher, **kw)
    data, model, stages = prepare(opt)
    return opt, data, model, stages


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_teacher_steers_distilled_stages_and_stays_unchanged(fp_teacher, monkeypatch):
    from hwbin.models import load_checkpoint
    from hwbin.train import loop

    before = _weights(load_checkpoint(fp_teacher / "model.pt")[0])
    seen = []
    real_loss = loop._loss

    def spy(task, logits, y, teacher_logits, cfg):
        seen.append(teacher_logits is not None)
        return real_loss(task, logits, y, teacher_logits, cfg)

    monkeypatch.setattr(loop, "_loss", spy)
    opt, data, model, stages = _student(str(fp_teacher))
    hist = fit(opt, data, model, stages)
    steps = -(-len(data.x_train) // opt.batch_size)
    want = [s.distill for s in stages for _ in range(s.epochs * steps)]
    assert seen == want and want[0] is False and want[-1] is True  # pre-training is plain cross-entropy
    # The teacher in the file is untouched, and its logits differ from the pre-training
    # snapshot's: the same schedule without a teacher ends elsewhere.
    assert all(torch.equal(before[k], v) for k, v in _weights(load_checkpoint(fp_teacher / "model.pt")[0]).items())
    monkeypatch.setattr(loop, "_loss", real_loss)
    opt2, data2, model2, stages2 = _student()
    hist2 = fit(opt2, data2, model2, stages2)
    pre = stages[0].epochs
    assert [r["train_loss"] for r in hist.epochs[:pre]] == [r["train_loss"] for r in hist2.epochs[:pre]]
    assert hist.epochs[-1]["train_loss"] != hist2.epochs[-1]["train_loss"]


def test_teacher_is_used_in_eval_mode_and_not_trained(fp_teacher):
    """The loop's copy of the teacher: eval mode (running batch-norm statistics), no gradients."""
    from hwbin.models import load_checkpoint
    from hwbin.train.loop import _frozen_copy

    teacher, _ = load_checkpoint(fp_teacher / "model.pt")
    teacher.train()
    frozen = _frozen_copy(teacher)
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    assert teacher.training   # the caller's model is not switched


def test_teacher_for_other_data_is_one_line(tmp_path):
    other = build_model("fmnist-sfc", (1, 28, 28), 10)
    save_checkpoint(tmp_path / "sfc.pt", other)
    out = tmp_path / "run"
    r = run_cli("train", "--model", "digits-tiny", "--epochs", "14", "--teacher", tmp_path / "sfc.pt", "--out", out)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "sfc.pt: teacher is for input (1, 28, 28)" in lines[0] and "'digits' has input (1, 8, 8)" in lines[0]
    assert not out.exists()


@pytest.mark.parametrize("kw,needle", [
    ({"teacher": "x", "distill": False}, "--teacher: distillation is off"),
    ({"distill_weight": 1.5}, "expected a weight in [0, 1]"),
    ({"distill_temperature": 0.0}, "a temperature > 0"),
])
def test_distillation_option_errors(kw, needle):
    with pytest.raises(HwbinError, match=needle.replace("[", r"\[").replace("]", r"\]")):
        prepare(TrainOptions(model="digits-tiny", method="srb", epochs=12, **kw))


def test_missing_teacher_is_one_line(tmp_path):
    r = run_cli("train", "--model", "digits-tiny", "--epochs", "14", "--teacher", tmp_path / "none", "--out",
                tmp_path / "run")
    assert r.returncode == 2 and "checkpoint not found" in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_cli_two_step_run_records_its_recipe(fp_teacher, tmp_path):
    """--init and --teacher from the same fp run, as the README's recipe; metrics.json keeps the
    options, and the result is fully binary and deployable."""
    import json

    out = tmp_path / "run"
    r = run_cli("train", "--model", "digits-tiny", "--method", "srb", "--epochs", "8", "--ratios", "50,100",
                "--init", fp_teacher / "model.pt", "--teacher", fp_teacher, "--pretrain-fraction", "0.05",
                "--distill-weight", "0.7", "--distill-temperature", "3", "--out", out, "--no-plot")
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "metrics.json").read_text())
    o = m["options"]
    assert (o["teacher"], o["init"]) == (str(fp_teacher), str(fp_teacher / "model.pt"))
    assert (o["pretrain_fraction"], o["distill_weight"], o["distill_temperature"]) == (0.05, 0.7, 3.0)
    assert m["stages"][0]["epochs"] == 1 and m["final"]["source"] == "golden"
