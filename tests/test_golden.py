"""The golden model against independent references: torch eval of the same model, and a
float64 reference built from torch's own conv on the decoded +-1 tensors."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwbin import arith, golden, ir
from hwbin.data import load_dataset
from hwbin.export import compare_with_torch, export_model
from hwbin.models import MODELS, BinaryNet, build_model
from hwbin.train.schedule import Stage, apply_stage_masks


def randomize(model, seed=0):
    """Fully binarize and give batch norm and bases non-trivial values."""
    g = torch.Generator().manual_seed(seed)
    apply_stage_masks(model, Stage("all", 1, 1.0, 1.0))
    with torch.no_grad():
        for layer in model.binary_layers():
            layer.weight.uniform_(-1, 1, generator=g)
            if layer.bn is not None:
                c = layer.out_channels
                layer.bn.running_mean.copy_(torch.randn(c, generator=g) * 3)
                layer.bn.running_var.copy_(torch.rand(c, generator=g) * 20 + 0.5)
                layer.bn.weight.copy_(torch.randn(c, generator=g))
                layer.bn.bias.copy_(torch.randn(c, generator=g))
            if layer.bias is not None:
                layer.bias.copy_(torch.randn(layer.out_channels, generator=g))
        for q in model.activation_quantizers():
            q.raw.add_(torch.randn(q.raw.shape, generator=g) * 0.3)
    model.eval()
    return model


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


def _random_spec(draw):
    size = draw(st.integers(4, 9))
    layers = []
    h = size
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["conv", "conv", "deconv", "pool", "shuffle"]))
        if kind == "conv":
            k = draw(st.integers(1, 3))
            s = draw(st.integers(1, 2))
            p = draw(st.integers(0, k - 1))
            if (h + 2 * p - k) // s + 1 < 1:
                continue
            g = draw(st.sampled_from([1, 2]))
            layers.append({"kind": "conv", "out": 4 * draw(st.integers(1, 3)), "k": k, "s": s, "p": p, "g": g})
            h = (h + 2 * p - k) // s + 1
        elif kind == "deconv" and h <= 6:
            s = draw(st.integers(1, 2))
            k = draw(st.integers(s, 4))
            p = draw(st.integers(0, k - 1))
            op = draw(st.integers(0, s - 1))
            oh = (h - 1) * s - 2 * p + k + op
            if oh < 1:
                continue
            layers.append({"kind": "deconv", "out": 4 * draw(st.integers(1, 2)), "k": k, "s": s, "p": p,
                           "op": op, "g": draw(st.sampled_from([1, 2]))})
            h = oh
        elif kind == "pool" and h >= 2 and layers:
            layers.append({"kind": "pool", "k": 2})
            h //= 2
        elif kind == "shuffle" and layers and layers[-1]["kind"] in ("conv", "deconv"):
            layers.append({"kind": "shuffle", "g": 2})
    while layers and layers[0]["kind"] not in ("conv", "deconv"):
        layers.pop(0)
    if draw(st.booleans()) or not layers:
        layers.append({"kind": "dense", "out": "classes"})
        task = "classify"
    else:
        layers.append({"kind": "conv", "out": "classes", "k": 1, "s": 1, "p": 0, "g": 1})
        task = "segment"
    layers[0]["g"] = 1  # one input channel; other channel counts are multiples of 4
    return size, layers, task


@st.composite
def random_models(draw):
    size, spec, task = _random_spec(draw)
    order = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 10_000))
    return size, spec, task, order, seed


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_models())
def test_random_models_golden_equals_torch_conv_reference(params):
    size, spec, task, order, seed = params
    torch.manual_seed(seed)
    try:
        model = BinaryNet(spec, (1, size, size), 3, order=order, task=task)
    except Exception as e:  # an impossible random stack (groups vs channels) is skipped
        from hwbin.errors import HwbinError
        assert isinstance(e, HwbinError)
        return
    randomize(model, seed)
    m = ir.from_bytes(ir.to_bytes(export_model(model)))
    x = np.random.default_rng(seed).integers(0, 256, (6, 1, size, size), dtype=np.uint8)
    res = golden.run(m, x)
    assert np.array_equal(res.scores, reference_forward(m, x))
