"""Quantizer forward values and straight-through gradients against hand-computed values."""
import torch

from hwbin.nn import ClippedQuantizer, PixelInput, ResidualBinarizer, WeightBinarizer, sign_ste


def test_sign_ste_forward_and_clipped_gradient():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 1.0, 1.5], requires_grad=True)
    y = sign_ste(x)
    assert y.tolist() == [-1, -1, 1, 1, 1, 1]
    y.sum().backward()
    assert x.grad.tolist() == [0, 1, 1, 1, 1, 0]


def test_weight_binarizer_alpha_sign_per_channel():
    w = torch.tensor([[0.5, -0.25, 0.0, 0.25], [-1.0, 1.0, -1.0, 1.0]], requires_grad=True)
    wb = WeightBinarizer()(w, torch.tensor([True, True]))
    # alpha_0 = mean|w_0| = 0.25, alpha_1 = 1
    assert wb.tolist() == [[0.25, -0.25, 0.25, 0.25], [-1, 1, -1, 1]]
    partial = WeightBinarizer()(w, torch.tensor([False, True]))
    assert partial[0].tolist() == w[0].tolist()


def test_weight_binarizer_gradient():
    w = torch.tensor([[0.5, -1.5]], requires_grad=True)
    wb = WeightBinarizer()(w, torch.tensor([True]))
    wb.sum().backward()
    # d/dw [alpha * sign(w)] summed: alpha' = sign(w)/n, times sum(sign) = 0; STE: alpha * 1{|w|<=1}
    assert torch.allclose(w.grad, torch.tensor([[1.0, 0.0]]))


def _set_bases(q, betas):
    import math
    incs = [betas[-1]] + [betas[i] - sum(betas[i + 1:]) for i in range(len(betas) - 2, -1, -1)]
    incs = list(reversed(incs))
    with torch.no_grad():
        q.raw.copy_(torch.tensor([v + math.log(-math.expm1(-v)) for v in incs]))


def test_residual_order_two_forward_and_gradient():
    q = ResidualBinarizer(2, (4,))
    _set_bases(q, [1.0, 0.5])
    assert torch.allclose(q.bases(), torch.tensor([1.0, 0.5]))
    q.mask.fill_(True)
    q.train()
    x = torch.tensor([[-2.0, -0.6, 0.0, 1.2]], requires_grad=True)
    y = q(x)
    # greedy: -2 -> (-1,-1) = -1.5; -0.6 -> H1=-1, r=0.4 -> +0.5: -0.5; 0 -> (+1, r=-1 -> -1): 0.5; 1.2 -> 1.5
    assert torch.allclose(y, torch.tensor([[-1.5, -0.5, 0.5, 1.5]]))
    y.sum().backward()
    assert x.grad.tolist() == [[0, 1, 1, 1]]  # clipped at |x| <= 1.5


def test_residual_eval_uses_integer_levels():
    q = ResidualBinarizer(2, (6,))
    _set_bases(q, [1.0, 0.5])
    q.mask.fill_(True)
    q.eval()
    ints, scale = q.int_bases()
    assert ints == (2, 1) and abs(scale - 0.5) < 1e-6
    # thresholds at scale * (-2, 0, 2) = -1, 0, 1; equality reaches the level
    y = q(torch.tensor([-1.01, -1.0, -0.01, 0.0, 0.99, 1.0]))
    assert torch.allclose(y, torch.tensor([-1.5, -0.5, -0.5, 0.5, 0.5, 1.5]))


def test_unmasked_positions_are_clipped_full_precision():
    q = ResidualBinarizer(1, (2,))
    _set_bases(q, [0.8])
    q.mask.copy_(torch.tensor([True, False]))
    y = q(torch.tensor([[0.3, 5.0]]))
    assert torch.allclose(y, torch.tensor([[0.8, 0.8]]))
    y = q(torch.tensor([[-0.3, 0.3]]))
    assert torch.allclose(y, torch.tensor([[-0.8, 0.3]]))


def test_clipped_quantizer_m_bits():
    w = torch.tensor([-0.5, -0.1, 0.0, 0.2, 0.5])
    assert ClippedQuantizer(1)(w).tolist() == [-0.5, -0.5, 0.5, 0.5, 0.5]
    q2 = ClippedQuantizer(2)(w)  # levels -0.5, -1/6, 1/6, 0.5
    assert torch.allclose(q2, torch.tensor([-0.5, -1 / 6, 1 / 6, 1 / 6, 0.5]))


def test_pixel_input_values():
    p = PixelInput()
    assert torch.allclose(p(torch.tensor([0.0, 255.0, 128.0])) * 255, torch.tensor([-255.0, 255.0, 1.0]))
    assert p.pad_value() == -1.0
