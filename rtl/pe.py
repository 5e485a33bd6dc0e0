"""One processing element of the systolic array: XOR-popcount of an L-lane step, accumulated
per input plane, with its operands passed on to its neighbours.

A step's weight slice and control (``valid``, ``start``, ``double``, ``last``) enter from the
left and leave to the right one cycle later; its activation slice enters from above and leaves
below one cycle later (``*_out`` are registers). So no operand fans out to more than one PE,
and PE (r, c) sees a step r + c cycles after PE (0, 0) does.

The steps of a tile arrive plane by plane (all taps and lane chunks of plane 0, then of plane
1, ...). ``start`` marks a plane's first step. The PE keeps D plane sums in a chain: at a
plane's start the chain shifts (``sums[i] <- sums[i - 1]``) and ``sums[0]`` restarts at the
step's count, so after a tile ``sums[i]`` holds plane K-1-i's count. The bases are applied once
per column in the drain, not here: a multiply by a base in every PE cost about 70 LUT4s per
PE, more than the popcount itself.

A layer with more planes than the chain holds (the uint8 input: 8 planes, bases 128 .. 1)
uses Horner's rule instead: ``double`` at a plane's start makes ``sums[0] <- 2 * sums[0] +
count``, which weights plane k by 2^(K-1-k) with no chain at all.

When a tile's ``last`` step has been added, the sums are copied to ``planes``, which hold
until the next tile's last step: the drain reads them from there while the next tile runs.

Without Horner's rule (``horner=False``: no layer of the program on the array uses it) a
plane's restart is a flip-flop's reset, not a multiplexer in front of the adder (9 LUT4s a
PE, 288 at 8x4x32): ``sums[0]`` adds the count every cycle, the count being 0
where no step is (its register resets), and it resets, with the chain shifting the sum just
formed into ``sums[1]``, the cycle before a plane's first step is added (that step's ``start``
is then one stage earlier, in ``ctl1``). The sums a tile's last step completes are taken from
the adder into a register of their own the cycle it adds, and copied to ``planes`` a cycle
later as before (the chain may already have shifted by then). Its control word is decoded
once at the array's edge (``control``): not valid, valid and start, double, valid and last,
so that each is a flip-flop's reset or enable as it stands (decoded in every PE, 3 LUT4s
a PE). Before the first step after a reset the sums may take a count from the zeroed
registers; a tile's first step restarts them anyway.

The popcount is a plain sum of the XOR bits (a tree of adds), registered once halfway: written
this way yosys maps it to about 70 LUT4s for 32 lanes, against about 90 for a nibble-table tree.
"""
from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

#: lanes summed before the popcount's pipeline register
GROUP = 8
#: the control bits that travel with a step: valid, start, double, last
CONTROL = 4


def _add_tree(terms):
    """The sum of ``terms`` as a balanced tree of adds. yosys merges any tree of adds into one
    multi-operand adder before mapping, so the netlist is the one a chain gives; an
    event-driven simulator (Icarus) evaluates a tree in fewer steps, since a changed term
    passes through log2(n) adders instead of up to n."""
    while len(terms) > 1:
        terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
    return terms[0]


def _sum_bits(bits):
    return _add_tree([bits[i] for i in range(len(bits))])


class PE(wiring.Component):
    """A step entering now is in ``planes`` ``LATENCY`` cycles later if it was its tile's last."""

    #: register stages: group counts, the count, the accumulate, the copy to ``planes``
    LATENCY = 4

    def __init__(self, lanes: int, depth: int, width: int, horner: bool = True):
        self.lanes, self.depth, self.width, self.horner = lanes, depth, width, horner
        super().__init__({
            "ctl_in": In(CONTROL), "act_in": In(unsigned(lanes)), "weight_in": In(unsigned(lanes)),
            "ctl_out": Out(CONTROL), "act_out": Out(unsigned(lanes)), "weight_out": Out(unsigned(lanes)),
            "planes": Out(unsigned(depth * width)),
        })

    def elaborate(self, platform):
        m = Module()
        L = self.lanes
        m.d.sync += [self.ctl_out.eq(self.ctl_in), self.act_out.eq(self.act_in), self.weight_out.eq(self.weight_in)]
        x = Signal(L)
        m.d.comb += x.eq(self.act_in ^ self.weight_in)
        groups = []
        for i, g in enumerate(range(0, L, GROUP)):
            n = min(GROUP, L - g)
            reg = Signal(range(n + 1), name=f"group{i}")
            m.d.sync += reg.eq(_sum_bits(x[g:g + n]))
            groups.append(reg)
        count = Signal(range(L + 1))
        ctl1, ctl2, ctl3 = Signal(CONTROL), Signal(CONTROL), Signal(CONTROL)
        m.d.sync += [ctl1.eq(self.ctl_in), ctl2.eq(ctl1), ctl3.eq(ctl2)]
        valid, start, double, last = ctl2[0], ctl2[1], ctl2[2], ctl2[3]
        sums = [Signal(self.width, name=f"sum{i}") for i in range(self.depth)]
        if self.horner:
            m.d.sync += count.eq(_add_tree(groups))
            with m.If(valid):
                m.d.sync += sums[0].eq(Mux(start, Mux(double, sums[0] << 1, 0), sums[0]) + count)
                with m.If(start & ~double):
                    m.d.sync += [sums[i].eq(sums[i - 1]) for i in range(1, self.depth)]
            with m.If(ctl3[0] & ctl3[3]):
                m.d.sync += self.planes.eq(Cat(*sums))
            return m
        # the count resets where no step is, and sums[0] where the next step starts a plane
        idle1, begin, fin2, fin3 = ctl1[0], ctl1[1], ctl2[3], ctl3[3]
        m.d.sync += count.eq(Mux(idle1, 0, _add_tree(groups)))
        total = Signal(self.width)
        m.d.comb += total.eq(sums[0] + count)
        m.d.sync += sums[0].eq(Mux(begin, 0, total))
        with m.If(begin):
            m.d.sync += [sums[i].eq(total if i == 1 else sums[i - 1]) for i in range(1, self.depth)]
        done = Signal(self.depth * self.width)
        with m.If(fin2):
            m.d.sync += done.eq(Cat(total, *sums[1:]))
        with m.If(fin3):
            m.d.sync += self.planes.eq(done)
        return m


def control(valid, start, double, last, horner: bool = True):
    """The control word that travels with a step (the PE's ``ctl_in`` layout); without Horner's
    rule decoded for the PE: not valid, valid and start, double, valid and last."""
    if horner:
        return Cat(valid, start, double, last)
    return Cat(~valid, valid & start, double, valid & last)
