"""One processing element: XOR-popcount of an L-lane step, accumulated per input plane.

The steps of a tile arrive plane by plane (all taps and lane chunks of plane 0, then of plane
1, ...). ``start`` marks a plane's first step. The PE keeps D plane sums in a chain: at a
plane's start the chain shifts (``planes[i] <- planes[i - 1]``) and ``planes[0]`` restarts at
the step's count, so after a tile ``planes[i]`` holds plane K-1-i's count. The bases are
applied once per column in the drain, not here: a multiply by a base in every PE cost about
70 LUT4s per PE, more than the popcount itself.

A layer with more planes than the chain holds (the uint8 input: 8 planes, bases 128 .. 1)
uses Horner's rule instead: ``double`` at a plane's start makes ``planes[0] <- 2 * planes[0] +
count``, which weights plane k by 2^(K-1-k) with no chain at all.

The popcount is a plain sum of the XOR bits, registered once halfway: written this way yosys
maps it to about 70 LUT4s for 32 lanes, against about 90 for a nibble-table tree.
"""
from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

#: lanes summed before the popcount's pipeline register
GROUP = 8


def _sum_bits(bits) -> object:
    return sum(bits[i] for i in range(len(bits)))


class PE(wiring.Component):
    """``count`` of the step entering now is added ``LATENCY`` - 1 cycles later; ``planes``
    (D sums of ``width`` bits, plane sum i at bits i*width ..) is final ``LATENCY`` cycles
    after a tile's last step entered."""

    #: register stages: group counts, the count, the accumulate
    LATENCY = 3

    def __init__(self, lanes: int, depth: int, width: int):
        self.lanes, self.depth, self.width = lanes, depth, width
        super().__init__({
            "valid": In(1), "start": In(1), "double": In(1),
            "act": In(unsigned(lanes)), "weight": In(unsigned(lanes)),
            "planes": Out(unsigned(depth * width)),
        })

    def elaborate(self, platform):
        m = Module()
        L = self.lanes
        x = Signal(L)
        m.d.comb += x.eq(self.act ^ self.weight)
        groups = []
        for i, g in enumerate(range(0, L, GROUP)):
            n = min(GROUP, L - g)
            reg = Signal(range(n + 1), name=f"group{i}")
            m.d.sync += reg.eq(_sum_bits(x[g:g + n]))
            groups.append(reg)
        count = Signal(range(L + 1))
        m.d.sync += count.eq(sum(groups))
        v1, start1, double1 = Signal(), Signal(), Signal()
        v2, start2, double2 = Signal(), Signal(), Signal()
        m.d.sync += [v1.eq(self.valid), start1.eq(self.start), double1.eq(self.double),
                     v2.eq(v1), start2.eq(start1), double2.eq(double1)]
        sums = [Signal(self.width, name=f"plane{i}") for i in range(self.depth)]
        with m.If(v2):
            m.d.sync += sums[0].eq(Mux(start2, Mux(double2, sums[0] << 1, 0), sums[0]) + count)
            with m.If(start2 & ~double2):
                m.d.sync += [sums[i].eq(sums[i - 1]) for i in range(1, self.depth)]
        for i, s in enumerate(sums):
            m.d.comb += self.planes[i * self.width:(i + 1) * self.width].eq(s)
        return m
