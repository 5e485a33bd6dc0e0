"""The golden model against independent references: torch eval of the same model, and a
float64 reference built from torch's own conv on the decoded +-1 tensors."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings

from hwbin import arith, golden, ir
from hwbin.data import load_dataset
from hwbin.export import compare_with_torch, export_model
from hwbin.models import MODELS, build_model

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


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_models())
def test_random_models_golden_equals_torch_conv_reference(params):
    m, x = random_ir(params)
    if m is None:
        return
    res = golden.run(m, x)
    assert np.array_equal(res.scores, reference_forward(m, x))
