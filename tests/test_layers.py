"""A fully binarized layer equals an independent reference on the +-1 tensors."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hwbin.nn import QConv2d, QConvTranspose2d, QLinear, ResidualBinarizer


def _binary_quantizer(shape):
    q = ResidualBinarizer(1, shape)
    q.mask.fill_(True)
    return q


def _sign(t):
    return torch.where(t >= 0, 1.0, -1.0)


@pytest.mark.parametrize("stride,padding,groups", [(1, 1, 1), (2, 1, 2), (1, 0, 4)])
def test_qconv_equals_torch_conv_on_pm1(stride, padding, groups):
    torch.manual_seed(0)
    layer = QConv2d(8, 8, 3, _binary_quantizer((6, 6)), stride, padding, groups, batch_norm=False)
    layer.weight_mask.fill_(True)
    layer.train()
    x = torch.randn(2, 8, 6, 6)
    beta = float(layer.input_quantizer.bases().detach()[0])
    # reference: torch's own conv on the +-1 input (padded with -1, the lowest level) and
    # the +-1 weights, scaled by beta and alpha
    xs = F.pad(_sign(x), (padding,) * 4, value=-1.0)
    alpha = layer.weight.abs().mean(dim=(1, 2, 3)).view(1, -1, 1, 1)
    ref = F.conv2d(xs, _sign(layer.weight), stride=stride, groups=groups) * alpha * beta
    assert torch.allclose(layer(x), ref, atol=1e-5)


def _naive_deconv(x, w, s, p, op, pad_value):
    """Transposed conv by its definition, with out-of-range taps reading pad_value."""
    n, cin, h, wd = x.shape
    _, cout, k, _ = w.shape  # torch layout (in, out, k, k), groups = 1
    oh, ow = (h - 1) * s - 2 * p + k + op, (wd - 1) * s - 2 * p + k + op
    out = np.zeros((n, cout, oh, ow))
    for oy in range(oh):
        for ox in range(ow):
            for ky in range(k):
                for kx in range(k):
                    ty, tx = oy + p - ky, ox + p - kx
                    if ty % s or tx % s:
                        continue
                    iy, ix = ty // s, tx // s
                    inside = 0 <= iy < h and 0 <= ix < wd
                    v = x[:, :, iy, ix] if inside else np.full((n, cin), pad_value)
                    out[:, :, oy, ox] += v @ w[:, :, ky, kx]
    return out


@pytest.mark.parametrize("k,s,p,op", [(4, 2, 1, 0), (3, 2, 1, 1), (2, 2, 0, 0), (3, 1, 1, 0)])
def test_qdeconv_equals_definition_with_pad_value(k, s, p, op):
    torch.manual_seed(1)
    layer = QConvTranspose2d(3, 5, k, _binary_quantizer((4, 4)), s, p, op, batch_norm=False)
    layer.weight_mask.fill_(True)
    x = torch.randn(2, 3, 4, 4)
    beta = float(layer.input_quantizer.bases().detach()[0])
    w = layer.weight.detach()
    alpha = w.abs().mean(dim=(0, 2, 3))  # per output channel (dim 1 in torch's layout)
    ref = _naive_deconv(_sign(x).numpy(), _sign(w).numpy(), s, p, op, -1.0)
    ref = ref * alpha.numpy().reshape(1, -1, 1, 1) * beta
    assert np.allclose(layer(x).detach().numpy(), ref, atol=1e-5)


def test_qlinear_equals_matmul_on_pm1():
    torch.manual_seed(2)
    layer = QLinear(12, 4, _binary_quantizer((12,)), batch_norm=False)
    layer.weight_mask.fill_(True)
    x = torch.randn(3, 12)
    beta = float(layer.input_quantizer.bases().detach()[0])
    alpha = layer.weight.abs().mean(1)
    ref = _sign(x) @ _sign(layer.weight).T * alpha * beta
    assert torch.allclose(layer(x), ref, atol=1e-5)
