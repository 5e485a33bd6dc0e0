"""The golden model against independent references: torch eval of the same model, and a
float64 reference built from torch's own conv on the decoded +-1 tensors."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings

from hwbin import arith, golden, ir
from hwbin.data import load_dataset
from hwbin.export import compare_with_torch, export_model, torch_levels
from hwbin.models import MODELS, BinaryNet, build_model
from hwbin.train.schedule import Stage, apply_stage_masks

from .helpers import random_ir, random_models, randomize


def reference_forward(m: ir.Model, x: np.ndarray) -> np.ndarray:
    """Integer-valued float64 reference: decode levels to +-1 sums, use torch's conv."""
    act = torch.from_numpy(x.astype(np.int64))
    for layer in m.layers:
        if layer.kind == "maxpool":
            act = F.max_pool2d(act.double(), layer.kernel, layer.stride).long()
            continue
        if layer.kind == "shuffle":
            act = act[:, torch.from_numpy(layer.arrays["perm"].astype(np.int64))]
            continue
        vals = torch.from_numpy(arith.level_values(layer.in_bases)).double()
        v = vals[act]
        pad = float(vals[0])
        w = torch.from_numpy(layer.arrays["weight"].astype(np.float64) * 2 - 1)
        if layer.kind == "dense":
            acc = (v.flatten(1) @ w.reshape(w.shape[0], -1).T)[:, :, None, None]
        elif layer.kind == "conv":
            ph, pw = layer.padding
            acc = F.conv2d(F.pad(v, (pw, pw, ph, ph), value=pad), w, stride=layer.stride, groups=layer.groups)
        else:
            g = layer.groups
            o, cg = w.shape[:2]
            wt = w.view(g, o // g, cg, *w.shape[2:]).transpose(1, 2).reshape(g * cg, o // g, *w.shape[2:])
            bh, bw = (layer.kernel[0] + layer.stride[0]), (layer.kernel[1] + layer.stride[1])
            full = F.conv_transpose2d(F.pad(v, (bw, bw, bh, bh), value=pad), wt, stride=layer.stride, groups=g)
            y0 = layer.padding[0] + bh * layer.stride[0]
            x0 = layer.padding[1] + bw * layer.stride[1]
            acc = full[..., y0:y0 + layer.out_shape[1], x0:x0 + layer.out_shape[2]]
        acc = acc.round().long()
        if layer.output == "scores":
            mul = torch.from_numpy(layer.arrays["score_mul"].astype(np.int64)).view(1, -1, 1, 1)
            add = torch.from_numpy(layer.arrays["score_add"].astype(np.int64)).view(1, -1, 1, 1)
            act = acc * mul + add
        else:
            t = torch.from_numpy(layer.arrays["thresholds"].astype(np.int64))
            d = torch.from_numpy(layer.arrays["directions"].astype(np.int64)).view(1, -1, 1, 1)
            act = ((acc * d).unsqueeze(-1) >= t.view(1, t.shape[0], 1, 1, -1)).sum(-1)
    out = act.numpy()
    return out[:, :, 0, 0] if m.task == "classify" else out


@pytest.mark.parametrize("name", list(MODELS))
def test_zoo_golden_equals_reference_and_torch(name):
    data = load_dataset(MODELS[name]["dataset"])
    torch.manual_seed(0)
    model = randomize(build_model(name, data.in_shape, data.num_classes), seed=3)
    m = ir.from_bytes(ir.to_bytes(export_model(model)))
    x = data.x_test[:64]
    res = golden.run(m, x)
    assert np.array_equal(res.scores, reference_forward(m, x))
    cmp = compare_with_torch(model, m, x)
    assert cmp["prediction_agreement"] == 1.0
    assert min(cmp["activation_agreement"].values()) > 0.999
    # Where every hidden activation agrees, torch eval's scores are the golden integers
    # (times 2^-F), exactly: the last layer computes the IR's rounded score_mul/score_add.
    taps, scores = torch_levels(model, x)
    gold = cmp["golden"]
    same = np.ones(len(x), dtype=bool)
    for layer, t in zip(m.compute_layers()[:-1], taps[:-1]):
        g = gold.taps[layer.name]
        same &= (t.reshape(g.shape) == g).reshape(len(x), -1).all(1)
    assert same.mean() > 0.9
    shift = m.compute_layers()[-1].score_shift
    assert scores.dtype == np.float64
    assert np.array_equal(scores[same] * 2.0 ** shift, gold.scores[same])


def test_torch_eval_follows_rounded_scores_on_a_near_tie():
    """Two classes whose float scores and rounded integer scores are ordered differently:
    torch eval must predict what the golden model (the hardware) predicts.

    One dense layer on a 2x2 all-white image (values 2*255-255 = 255 per tap): class 0 has
    all weights +1 (acc 1020), class 1 one weight -1 (acc 510). Both have alpha = 1, so
    score_mul = round(2^F / 255) carries a rounding error e per unit of acc; class 1's bias
    is set so that the float scores differ by +e*510/2 while the integers differ by about
    -e*510/2."""
    model = BinaryNet([{"kind": "dense", "out": "classes"}], (1, 2, 2), 2)
    apply_stage_masks(model, Stage("all", 1, 1.0, 1.0))
    layer = model.binary_layers()[0]
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, -1.0]]))
        layer.bias.zero_()
    model.eval()
    shift = export_model(model).compute_layers()[-1].score_shift
    mul = export_model(model).compute_layers()[-1].arrays["score_mul"].astype(np.int64)
    exact = 2.0 ** shift / 255.0                 # alpha * u * 2^F before rounding
    d = 1020 - 510
    err = (exact - mul[0]) * d                   # what rounding score_mul moves class 0 by
    assert abs(err) > 20                         # a real gap, far above float32 rounding
    with torch.no_grad():
        layer.bias[1] = (exact * d - err / 2) / 2.0 ** shift
    x = np.full((1, 1, 2, 2), 255, dtype=np.uint8)
    bias = layer.bias.detach().double().numpy()
    float_scores = exact / 2.0 ** shift * np.array([1020.0, 510.0]) + bias
    m = ir.from_bytes(ir.to_bytes(export_model(model)))
    res = golden.run(m, x)
    # the premise: float and integer scores put the two classes in opposite orders
    assert np.sign(float_scores[0] - float_scores[1]) == -np.sign(res.scores[0, 0] - res.scores[0, 1]) != 0
    with torch.no_grad():
        out = model(torch.from_numpy(x).float())
    assert out.argmax(1).tolist() == res.pred.tolist()
    assert np.array_equal(out.numpy() * 2.0 ** shift, res.scores)
    assert compare_with_torch(model, m, x)["prediction_agreement"] == 1.0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_models())
def test_random_models_golden_equals_torch_conv_reference(params):
    m, x = random_ir(params)
    if m is None:
        return
    res = golden.run(m, x)
    assert np.array_equal(res.scores, reference_forward(m, x))


def _hidden_near_tie(model, hidden, xt):
    """Set the hidden unit's weight and running mean so that the float32 batch-norm output
    and the exact (float64) pre-quantization value fall on opposite sides of 0; returns the
    exact value's sign (+1 or -1)."""
    with torch.no_grad():
        hidden.bn.running_var.fill_(1.0)
        hidden.bn.weight.fill_(1.0)
        hidden.bn.bias.fill_(0.0)
        for k in range(1, 500):
            hidden.weight.fill_(0.1 + k * 1e-4)
            z = np.float32(hidden._apply(hidden.input_quantizer(xt), hidden.effective_weight(), -1.0).item())
            for ulps in range(-3, 4):
                hidden.bn.running_mean.fill_(float(z + ulps * np.spacing(z)))
                f32 = hidden._finish(hidden._apply(hidden.input_quantizer(xt), hidden.effective_weight(), -1.0)).item()
                f64 = hidden.exact_prequant(xt).item()
                if (f32 >= 0) != (f64 >= 0):
                    return 1 if f64 >= 0 else -1
    raise AssertionError("no near-tie found")


def test_torch_eval_follows_exact_hidden_levels_on_a_near_tie():
    """A hidden pre-quantization value on opposite sides of a threshold (0, the middle point
    of the next order-2 quantizer) in float32 batch norm and in exact arithmetic: torch eval
    must give the golden model's level, which the float32 batch norm does not. One hidden
    dense unit on a 2x2 all-white image (acc = 1020, every tap +1); its weight and running
    mean are searched for such a near-tie (the premise, asserted)."""
    x = np.full((1, 1, 2, 2), 255, dtype=np.uint8)
    xt = torch.from_numpy(x).float()
    model = BinaryNet([{"kind": "dense", "out": 1}, {"kind": "dense", "out": "classes"}], (1, 2, 2), 2)
    apply_stage_masks(model, Stage("all", 1, 1.0, 1.0))
    model.eval()
    sign = _hidden_near_tie(model, model.binary_layers()[0], xt)
    m = ir.from_bytes(ir.to_bytes(export_model(model)))
    res = golden.run(m, x, taps=True)
    assert int(res.taps["dense0"].ravel()[0]) == (2 if sign > 0 else 1)   # levels 0..3, 0 between 1 and 2
    agree = compare_with_torch(model, m, x)
    assert agree["activation_agreement"]["dense0"] == 1.0 and agree["prediction_agreement"] == 1.0
