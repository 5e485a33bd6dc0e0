"""The R x C systolic array of processing elements (rtl/pe.py).

A step enters at the edges: row r's weight slice and the step's control at the left of row r,
delayed r cycles, column c's activation slice at the top of column c, delayed c cycles; inside,
each PE passes them right and down one PE per cycle, so PE (r, c) works on a step r + c cycles
after PE (0, 0). ``planes`` concatenates the PEs' plane sums, PE (r, c) at index r * C + c,
each PE's D sums of ``width`` bits; the drain turns a column of them into accumulators
(rtl/top.py). PE (r, c) holds a tile's sums from ``LATENCY + r + c`` cycles after the tile's
last step entered until the next tile's last step gets there.
"""
from __future__ import annotations

from amaranth.hdl import Module, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .pe import PE, control
from .pipeline import delay


class PEArray(wiring.Component):
    """``valid``/``start``/``double``/``last`` qualify one step (see rtl/pe.py); ``acts`` is C
    slices, ``weights`` R slices, all entering together (the array skews them itself)."""

    LATENCY = PE.LATENCY

    def __init__(self, rows: int, cols: int, lanes: int, depth: int, width: int, horner: bool = True):
        """``horner``: whether some layer doubles the plane sum (rtl/pe.py; without, the PEs
        restart a plane with a reset)."""
        self.rows, self.cols, self.lanes, self.depth, self.width = rows, cols, lanes, depth, width
        self.horner = horner
        super().__init__({
            "valid": In(1), "start": In(1), "double": In(1), "last": In(1),
            "acts": In(unsigned(cols * lanes)), "weights": In(unsigned(rows * lanes)),
            "planes": Out(unsigned(rows * cols * depth * width)),
        })

    def elaborate(self, platform):
        m = Module()
        R, C, L = self.rows, self.cols, self.lanes
        n = self.depth * self.width
        ctl = control(self.valid, self.start, self.double, self.last, self.horner)
        pes = [[PE(L, self.depth, self.width, self.horner) for _ in range(C)] for _ in range(R)]
        for r in range(R):
            for c in range(C):
                pe = m.submodules[f"pe_{r}_{c}"] = pes[r][c]
                if c == 0:
                    m.d.comb += [pe.ctl_in.eq(delay(m, ctl, r, f"ctl_skew{r}")),
                                 pe.weight_in.eq(delay(m, self.weights[r * L:(r + 1) * L], r, f"w_skew{r}"))]
                else:
                    m.d.comb += [pe.ctl_in.eq(pes[r][c - 1].ctl_out), pe.weight_in.eq(pes[r][c - 1].weight_out)]
                if r == 0:
                    m.d.comb += pe.act_in.eq(delay(m, self.acts[c * L:(c + 1) * L], c, f"a_skew{c}"))
                else:
                    m.d.comb += pe.act_in.eq(pes[r - 1][c].act_out)
                i = r * C + c
                m.d.comb += self.planes[i * n:(i + 1) * n].eq(pe.planes)
        return m
