"""Masks move as the schedule says."""
import pytest
import torch

from hwbin.errors import HwbinError
from hwbin.models import build_model
from hwbin.train.schedule import (ScheduleConfig, apply_stage_masks, build_schedule, check_ratios,
                                  set_activation_mask, set_weight_mask)


def _model():
    torch.manual_seed(0)
    return build_model("digits-tiny", (1, 8, 8), 10)


def test_srb_weights_then_activations():
    m = _model()
    stages = build_schedule(ScheduleConfig("srb", epochs=40), len(m.binary_layers()))
    seen = [(s.weight_ratio, s.act_ratio) for s in stages]
    assert seen == [(0, 0), (0.5, 0), (0.75, 0), (0.875, 0), (1, 0), (1, 0.5), (1, 0.75), (1, 0.875), (1, 1), (1, 1)]
    assert sum(s.epochs for s in stages) == 40
    act_first = build_schedule(ScheduleConfig("srb", epochs=40, phase_order="activations-first"), 4)
    assert [(s.weight_ratio, s.act_ratio) for s in act_first][1:3] == [(0, 0.5), (0, 0.75)]


def test_stage_masks_counts():
    m = _model()
    stages = build_schedule(ScheduleConfig("srb", epochs=40), len(m.binary_layers()))
    apply_stage_masks(m, stages[2])  # w75 a0
    conv = m.binary_layers()[1]  # 16 output channels
    assert int(conv.weight_mask.sum()) == 12
    assert int(conv.input_quantizer.mask.sum()) == 0
    apply_stage_masks(m, stages[6])  # w100 a75: 48 of 64 positions, raster order
    q = conv.input_quantizer
    assert int(conv.weight_mask.sum()) == 16
    assert q.mask.flatten()[:48].all() and not q.mask.flatten()[48:].any()


def test_weight_order_first_and_by_error():
    m = _model()
    layer = m.binary_layers()[1]
    set_weight_mask(layer, 0.25, "first")
    assert layer.weight_mask.nonzero().flatten().tolist() == [0, 1, 2, 3]
    with torch.no_grad():
        layer.weight.fill_(0.1)
        layer.weight[7] = torch.randn_like(layer.weight[7])  # every other channel: zero error
    set_weight_mask(layer, 15 / 16, "error")
    assert not bool(layer.weight_mask[7]) and int(layer.weight_mask.sum()) == 15


def test_roulette_is_seeded_and_keeps_count():
    m = _model()
    layer = m.binary_layers()[2]
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    set_weight_mask(layer, 0.5, "roulette", g1)
    a = layer.weight_mask.clone()
    set_weight_mask(layer, 0.5, "roulette", g2)
    assert torch.equal(a, layer.weight_mask) and int(a.sum()) == 8


def test_activation_mask_raster_order():
    m = _model()
    q = m.binary_layers()[1].input_quantizer
    set_activation_mask(q, 0.125)
    assert q.mask[0].all() and not q.mask[1:].any()  # first row of the 8x8 map


def test_greedy_binarizes_bottom_up_and_freezes():
    stages = build_schedule(ScheduleConfig("greedy", epochs=20), 4)
    assert [s.layers for s in stages[1:]] == [[0], [0, 1], [0, 1, 2], [0, 1, 2, 3]]
    assert [s.frozen for s in stages[1:]] == [0, 1, 2, 3]


@pytest.mark.parametrize("ratios", [(0.5, 0.75), (0.5, 1.2), (0.75, 0.5, 1.0), ()])
def test_bad_ratio_schedules(ratios):
    with pytest.raises(HwbinError, match="ratio schedule"):
        check_ratios(ratios)


def test_srb_joint_phases_and_finetune_share():
    """joint: weights and activations move through the ratios together; finetune_share sets
    the fully binary tail; the default split is unchanged (two steps' worth of fine-tune)."""
    from hwbin.train.schedule import ScheduleConfig, build_schedule

    st = build_schedule(ScheduleConfig("srb", 60, phase_order="joint", finetune_share=0.5), 3)
    assert [(s.name, s.weight_ratio, s.act_ratio, s.epochs) for s in st] == [
        ("pretrain", 0.0, 0.0, 15), ("wa50", 0.5, 0.5, 6), ("wa75", 0.75, 0.75, 6), ("wa87.5", 0.875, 0.875, 6),
        ("wa100", 1.0, 1.0, 5), ("finetune", 1.0, 1.0, 22)]
    default = build_schedule(ScheduleConfig("srb", 60), 3)
    assert [s.epochs for s in default] == [15, 5, 5, 5, 5, 5, 4, 4, 4, 8]
    assert [s.name for s in default][1:3] == ["w50", "w75"] and default[5].name == "a50"
    with pytest.raises(HwbinError, match="fine-tune share"):
        build_schedule(ScheduleConfig("srb", 60, finetune_share=1.0), 3)
    with pytest.raises(HwbinError, match="needs at least"):
        build_schedule(ScheduleConfig("srb", 8, phase_order="joint", finetune_share=0.5), 3)
