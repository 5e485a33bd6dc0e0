"""Models for tests: zoo models with random (but fully binary) parameters, and random
small layer stacks drawn by hypothesis, exported to IR; building and running a model's
firmware."""
import numpy as np
import torch
from hypothesis import strategies as st

from hwbin import ir
from hwbin.errors import HwbinError
from hwbin.export import export_model
from hwbin.models import BinaryNet
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


def random_ir(params, n_images: int = 6):
    """(IR model, uint8 images) for drawn params (size, layers, task, order, seed[, input
    channels]), or (None, None) for an impossible stack."""
    size, spec, task, order, seed = params[:5]
    cin = params[5] if len(params) > 5 else 1       # input channels (hand-written examples)
    torch.manual_seed(seed)
    try:
        model = BinaryNet(spec, (cin, size, size), 3, order=order, task=task)
    except HwbinError:  # an impossible random stack (groups vs channels) is skipped
        return None, None
    randomize(model, seed)
    m = ir.from_bytes(ir.to_bytes(export_model(model)))
    x = np.random.default_rng(seed).integers(0, 256, (n_images, cin, size, size), dtype=np.uint8)
    return m, x


def zoo_ir(name: str, seed: int = 3):
    """(IR, data set) of a zoo model with random, fully binary parameters."""
    from hwbin.data import load_dataset
    from hwbin.models import MODELS, build_model

    data = load_dataset(MODELS[name]["dataset"])
    torch.manual_seed(0)
    return export_model(randomize(build_model(name, data.in_shape, data.num_classes), seed=seed)), data


def build_and_run(m, x, out, target="host", sanitize=True, defs="", **opts):
    """Generate ``m``'s firmware with ``x`` as golden vectors, build it for ``target`` (with
    the Makefile's DEFS ``defs``) and run it; returns (plan, run result with vectors and
    mismatches)."""
    from hwbin.firmware import FirmwareOptions, generate_firmware, toolchain

    plan = generate_firmware(m, out, FirmwareOptions(**opts), x)
    toolchain.build(out, target, sanitize=sanitize, image=target != "host", defs=defs)
    return plan, toolchain.run(out, target, sanitize=sanitize)
