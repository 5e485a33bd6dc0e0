"""The R x C array of XNOR-popcount processing elements.

Each cycle every PE (r, c) takes column c's L-bit activation slice and row r's L-bit weight
slice, counts their disagreements (popcount of XOR: the contract's dot product is
n - 2 * disagreements), and adds ``m * 2^e`` times that count to its sum S, the plane's base.
Four register stages (byte counts, popcount, then the base's shift-and-add, then accumulate)
keep each adder chain short.
S is unsigned; the drain turns it into an accumulator: acc = sum(b) * n - 2 * S.
"""
from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


def _add_pairs(terms: list) -> list:
    """One level of an adder tree: neighbours summed, an odd last term passed through."""
    return [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]


def popcount(m: Module, v, name: str, register_bytes: bool = False):
    """A balanced adder tree over the bits of ``v`` (Amaranth has no popcount operator).

    ``v`` is first held in a signal of its own: slicing an expression repeats the whole
    expression once per bit in the Verilog, which synthesis merges again but an
    event-driven simulator (Icarus) evaluates 32 times over. Nibbles are counted by table.
    With ``register_bytes`` the per-byte counts are registered (one cycle of latency): the
    operands fan out to a whole row or column of PEs, and their routing leaves no time for
    the full tree in the same cycle."""
    bits = Signal(len(v), name=f"{name}_in")
    m.d.comb += bits.eq(v)
    table = Array([Const(bin(i).count("1"), 3) for i in range(16)])
    terms = [table[bits[i:i + 4]] if i + 4 <= len(v) else sum(bits[j] for j in range(i, len(v)))
             for i in range(0, len(v), 4)]
    if register_bytes:
        terms = _add_pairs(terms)
        regs = [Signal.like(t, name=f"{name}_b{i}") for i, t in enumerate(terms)]
        m.d.sync += [r.eq(t) for r, t in zip(regs, terms)]
        terms = regs
    while len(terms) > 1:
        terms = _add_pairs(terms)
    out = Signal(range(len(v) + 1), name=name)
    m.d.comb += out.eq(terms[0] if terms else 0)
    return out


def times_mantissa(pop, mant):
    """pop * mant for a 4-bit mant as shift-and-add: no DSP block per PE (an ECP5-25F has 28)."""
    return sum(Mux(mant[i], pop << i, 0) for i in range(len(mant)))


class PEArray(wiring.Component):
    """``valid``/``first`` qualify one step; ``acts`` is C slices, ``weights`` R slices.

    ``sums[r*C + c]`` is PE (r, c)'s S, ``LATENCY`` cycles after its last step entered."""

    #: register stages: byte counts, popcount, the base's shift-and-add, accumulate
    LATENCY = 4

    def __init__(self, rows: int, cols: int, lanes: int, s_bits: int):
        self.rows, self.cols, self.lanes = rows, cols, lanes
        super().__init__({
            "valid": In(1), "first": In(1),
            "mant": In(4), "shift": In(3),
            "acts": In(unsigned(cols * lanes)), "weights": In(unsigned(rows * lanes)),
            "sums": Out(unsigned(rows * cols * s_bits)),
        })
        self.s_bits = s_bits

    def elaborate(self, platform):
        m = Module()
        R, C, L = self.rows, self.cols, self.lanes
        v0, first0 = Signal(), Signal()
        mant0, shift0 = Signal(4), Signal(3)
        m.d.sync += [v0.eq(self.valid), first0.eq(self.first), mant0.eq(self.mant), shift0.eq(self.shift)]
        v1, first1 = Signal(), Signal()
        mant1, shift1 = Signal(4), Signal(3)
        m.d.sync += [v1.eq(v0), first1.eq(first0), mant1.eq(mant0), shift1.eq(shift0)]
        v2, first2 = Signal(), Signal()
        m.d.sync += [v2.eq(v1), first2.eq(first1)]
        sums = []
        for r in range(R):
            w = self.weights[r * L:(r + 1) * L]
            for c in range(C):
                a = self.acts[c * L:(c + 1) * L]
                pop = popcount(m, a ^ w, f"pop_{r}_{c}", register_bytes=True)
                pop1 = Signal.like(pop, name=f"pop1_{r}_{c}")
                m.d.sync += pop1.eq(pop)
                prod = Signal(self.s_bits, name=f"prod_{r}_{c}")
                m.d.sync += prod.eq(times_mantissa(pop1, mant1) << shift1)
                s = Signal(self.s_bits, name=f"s_{r}_{c}")
                with m.If(v2):
                    m.d.sync += s.eq(Mux(first2, 0, s) + prod)
                sums.append(s)
        for i, s in enumerate(sums):
            m.d.comb += self.sums[i * self.s_bits:(i + 1) * self.s_bits].eq(s)
        return m
