"""The arithmetic contract in code: encodings, bit packing, residual levels, thresholds.

Every back end (torch eval, the golden model, the RTL memory images, the C arrays) calls
these functions instead of re-deriving them, so there is exactly one definition of which
bit means what. The prose version is ``docs/arithmetic.md``; keep the two in step.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import HwbinError

#: Bases of the uint8 input seen as an order-8 activation: 2x - 255 = sum_b 2^b * q_b.
PIXEL_BASES = tuple(2 ** (7 - i) for i in range(8))
PIXEL_ORDER = 8

#: Largest integer base a snapped activation quantizer may use (4-bit bases).
DEFAULT_MAX_BASE = 15

#: |score_mul| < 2^SCORE_MUL_BITS: enough precision, and scores stay well inside int32.
SCORE_MUL_BITS = 15


def sign(x):
    """sign with sign(0) = +1, so a binary value is never 0 (works on numpy and torch)."""
    return (x >= 0) * 2 - 1


def bits_to_pm1(bits):
    """Bit 1 encodes +1, bit 0 encodes -1."""
    return bits.astype(np.int64) * 2 - 1


def pm1_to_bits(values):
    return (np.asarray(values) >= 0).astype(np.uint8)


# --------------------------------------------------------------------------- packing

def pack_bits(bits: np.ndarray, word_bits: int = 32) -> np.ndarray:
    """Pack the last axis (the reduction index K) into little-endian words.

    Bit j of word w holds K-index ``w * word_bits + j``; unused high bits of the last
    word are 0. The reduction index of a convolution tap-major, channel-fastest:
    ``k = (ky * kw + kx) * cin_per_group + c`` (see ``conv_k_index``).
    """
    if word_bits not in (8, 16, 32, 64):
        raise HwbinError(f"pack_bits: word_bits must be 8, 16, 32 or 64, found {word_bits}")
    bits = np.asarray(bits, dtype=np.uint8)
    k = bits.shape[-1]
    nwords = max(1, math.ceil(k / word_bits))
    padded = np.zeros(bits.shape[:-1] + (nwords * word_bits,), dtype=np.uint8)
    padded[..., :k] = bits
    # np.packbits with bitorder="little" puts index 0 in the LSB of each byte; viewing
    # little-endian bytes as a wider little-endian word keeps index 0 in the LSB.
    packed = np.packbits(padded, axis=-1, bitorder="little")
    dtype = np.dtype(f"<u{word_bits // 8}")
    return np.ascontiguousarray(packed).view(dtype).astype(dtype.newbyteorder("="))


def unpack_bits(words: np.ndarray, k: int, word_bits: int = 32) -> np.ndarray:
    """Inverse of ``pack_bits``: the first ``k`` bits of the last axis."""
    words = np.ascontiguousarray(np.asarray(words).astype(f"<u{word_bits // 8}"))
    as_bytes = words.view(np.uint8)
    return np.unpackbits(as_bytes, axis=-1, bitorder="little")[..., :k]


def conv_k_index(ky: int, kx: int, c: int, kw: int, cin_per_group: int) -> int:
    """Position of weight tap (ky, kx) of input channel c in the packed reduction vector."""
    return (ky * kw + kx) * cin_per_group + c


def xnor_popcount_dot(a_words: np.ndarray, w_words: np.ndarray, n: int) -> np.ndarray:
    """sum(a_i * w_i) over n +-1 values = 2*popcount(XNOR(a, w) & mask) - n.

    Padding bits beyond n are 0 in both operands, so XOR is 0 there and the mask is
    implicit: agreements = n - popcount(a ^ w).
    """
    diff = np.bitwise_count(np.bitwise_xor(a_words, w_words)).sum(axis=-1, dtype=np.int64)
    return n - 2 * diff


# --------------------------------------------------------------------------- levels

def check_bases(bases, where: str = "bases") -> tuple[int, ...]:
    """Bases must be positive integers with b_i >= sum_{j>i} b_j (levels monotone)."""
    bases = tuple(int(b) for b in bases)
    if not bases:
        raise HwbinError(f"{where}: expected at least one base, found none")
    if any(b <= 0 for b in bases):
        raise HwbinError(f"{where}: expected positive bases, found {list(bases)}")
    for i in range(len(bases) - 1):
        if bases[i] < sum(bases[i + 1:]):
            raise HwbinError(f"{where}: expected b_{i + 1} >= sum of later bases, found {list(bases)}")
    return bases


def level_planes(levels: np.ndarray, order: int) -> np.ndarray:
    """Split level indices into ``order`` bit planes, plane 0 = H_1 = the MSB."""
    levels = np.asarray(levels)
    shifts = np.arange(order - 1, -1, -1).reshape((order,) + (1,) * levels.ndim)
    return ((levels[None] >> shifts) & 1).astype(np.uint8)


def level_values(bases) -> np.ndarray:
    """Integer value sum_i b_i * H_i of every level index 0 .. 2^k - 1."""
    bases = np.asarray(bases, dtype=np.int64)
    k = len(bases)
    planes = level_planes(np.arange(2 ** k), k).astype(np.int64) * 2 - 1  # (k, 2^k)
    return (bases[:, None] * planes).sum(axis=0)


def residual_thresholds(bases) -> np.ndarray:
    """Integer decision points P_1..P_{2^k-1} of the greedy residual quantizer.

    Level L is reached when x >= P_L. Levels L-1 and L first differ at plane i (L has a 1
    there and 0s below), and the greedy procedure decides plane i by comparing x with the
    value of the planes above it: P_L = sum_{j<i} b_j H_j(L).
    """
    bases = np.asarray(bases, dtype=np.int64)
    k = len(bases)
    out = np.zeros(2 ** k - 1, dtype=np.int64)
    for level in range(1, 2 ** k):
        planes = level_planes(np.array(level), k).astype(np.int64) * 2 - 1
        first_diff = k - 1 - int(math.log2(level & -level))  # plane index of the lowest set bit
        out[level - 1] = int((bases[:first_diff] * planes[:first_diff]).sum())
    return out


def apply_thresholds(acc: np.ndarray, thresholds: np.ndarray, directions: np.ndarray,
                     channel_axis: int = 1) -> np.ndarray:
    """level_o = #{j : d_o * acc_o >= T_oj}; ties (equality) count as reached."""
    acc = np.asarray(acc, dtype=np.int64)
    shape = [1] * acc.ndim
    shape[channel_axis] = -1
    d_acc = acc * np.asarray(directions, dtype=np.int64).reshape(shape)
    levels = np.zeros(acc.shape, dtype=np.uint8)
    for j in range(thresholds.shape[1]):
        levels += (d_acc >= thresholds[:, j].reshape(shape)).astype(np.uint8)
    return levels


def snap_bases(betas, max_base: int = DEFAULT_MAX_BASE) -> tuple[tuple[int, ...], float]:
    """Learned float bases -> (integer bases, scale) with beta_i ~= scale * b_i.

    Tries every leading base b_1 = 1 .. max_base, rounds the others in proportion, restores
    the contract b_i >= sum_{j>i} b_j from the bottom up, and keeps the candidate with the
    smallest relative least-squares error (the smallest b_1 among equals; so 1.0, 0.5 gives
    (2, 1) and any order-1 base gives (1,)). Scale is that least-squares fit.
    """
    betas = [float(b) for b in betas]
    if not all(math.isfinite(b) and b > 0 for b in betas):
        raise HwbinError(f"bases: expected positive finite values, found {betas}")
    best = None
    for lead in range(1, max_base + 1):
        ints = [max(1, round(b / betas[0] * lead)) for b in betas]
        for i in range(len(ints) - 2, -1, -1):
            ints[i] = max(ints[i], sum(ints[i + 1:]))
        scale = sum(b * i for b, i in zip(betas, ints)) / sum(i * i for i in ints)
        err = math.sqrt(sum((b - scale * i) ** 2 for b, i in zip(betas, ints))) / betas[0]
        if best is None or err < best[0] - 1e-9:
            best = (err, tuple(ints), scale)
    return best[1], best[2]


def signed_width(max_abs: int) -> int:
    """Bits of a two's-complement register holding every value in [-max_abs, max_abs]."""
    return int(max_abs).bit_length() + 1


def acc_bound(bases, n: int) -> int:
    """Largest |acc| of a layer with n binary taps per output and input bases ``bases``."""
    return int(sum(int(b) for b in bases)) * int(n)


def score_shift(mult: np.ndarray) -> int:
    """F, the largest shift with every |round(mult * 2^F)| < 2^SCORE_MUL_BITS."""
    m = float(np.abs(mult).max(initial=0.0))
    if m == 0 or not math.isfinite(m):
        return 0
    return int(math.floor(math.log2((2 ** SCORE_MUL_BITS - 1) / m)))


def score_integers(mult: np.ndarray, bias: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """The last layer's integer score scale: (F, score_mul, score_add), int64 arrays with
    score = score_mul * acc + score_add ~= 2^F * (mult * acc + bias).

    ``mult`` (alpha_o * u_in) and ``bias`` are float64. The rounding here is the only
    place the float model and the integer scores can part: torch eval, export and every
    back end therefore all use these integers, never the float scale.
    """
    mult = np.asarray(mult, dtype=np.float64)
    bias = np.asarray(bias, dtype=np.float64)
    shift = score_shift(mult)
    mul = np.round(mult * 2.0 ** shift).astype(np.int64)
    add = np.round(bias * 2.0 ** shift).astype(np.int64)
    return shift, mul, add
