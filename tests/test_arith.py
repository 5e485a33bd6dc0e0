"""The contract's helpers against hand-computed values and plain numpy arithmetic."""
import numpy as np
import pytest

from hwbin import arith
from hwbin.errors import HwbinError


def test_sign_of_zero_is_plus_one():
    assert arith.sign(np.array([-0.5, 0.0, 0.5])).tolist() == [-1, 1, 1]


def test_pack_bit_order_is_lsb_first():
    bits = np.zeros(40, np.uint8)
    bits[[0, 3, 33]] = 1
    words = arith.pack_bits(bits, 32)
    assert words.tolist() == [0b1001, 0b10]
    assert arith.unpack_bits(words, 40, 32).tolist() == bits.tolist()


@pytest.mark.parametrize("word_bits", [8, 16, 32, 64])
def test_xnor_popcount_equals_pm1_dot(word_bits):
    rng = np.random.default_rng(1)
    for n in (1, 7, 32, 33, 100):
        a, w = rng.integers(0, 2, (5, n)), rng.integers(0, 2, (5, n))
        ref = ((2 * a - 1) * (2 * w - 1)).sum(-1)
        got = arith.xnor_popcount_dot(arith.pack_bits(a, word_bits), arith.pack_bits(w, word_bits), n)
        assert got.tolist() == ref.tolist()


def test_levels_of_order_two():
    # bases (2, 1): levels 0..3 are (-,-), (-,+), (+,-), (+,+)
    assert arith.level_values((2, 1)).tolist() == [-3, -1, 1, 3]
    assert arith.residual_thresholds((2, 1)).tolist() == [-2, 0, 2]
    assert arith.residual_thresholds((5, 2)).tolist() == [-5, 0, 5]
    assert arith.residual_thresholds((1,)).tolist() == [0]


def test_pixel_input_is_order_eight():
    x = np.arange(256)
    vals = arith.level_values(arith.PIXEL_BASES)
    assert vals.tolist() == (2 * x - 255).tolist()


def test_greedy_residual_matches_thresholds():
    bases = (4, 2, 1)
    pts = arith.residual_thresholds(bases)
    vals = arith.level_values(bases)
    for x in np.linspace(-9, 9, 181):
        out, r = 0, x
        for b in bases:
            h = 1 if r >= 0 else -1
            out += b * h
            r = x - out
        assert out == vals[int((x >= pts).sum())]


def test_thresholds_count_ties_as_reached():
    acc = np.array([[-3, 0, 2, 5]]).T.reshape(1, 4)  # one sample, 4 channels
    t = np.array([[0, 2, 5]] * 4)
    d = np.array([1, 1, 1, -1])
    lv = arith.apply_thresholds(acc, t, d)
    # channel 3: d*acc = -5 reaches nothing
    assert lv.tolist() == [[0, 1, 2, 0]]


def test_check_bases_rejects_non_monotone():
    with pytest.raises(HwbinError, match="b_1"):
        arith.check_bases((1, 2))
    with pytest.raises(HwbinError):
        arith.check_bases((0,))


def test_snap_bases():
    ints, scale = arith.snap_bases([0.8])
    assert ints == (1,) and scale == pytest.approx(0.8)
    ints, scale = arith.snap_bases([1.0, 0.5])
    assert ints == (2, 1) and scale == pytest.approx(0.5)
    ints, _ = arith.snap_bases([1.0, 0.99])  # contract restored: b1 >= b2
    assert ints[0] >= ints[1]


def test_widths():
    assert arith.signed_width(127) == 8
    assert arith.signed_width(128) == 9
    assert arith.acc_bound((2, 1), 10) == 30
