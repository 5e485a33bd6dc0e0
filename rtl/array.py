"""The R x C array of processing elements (rtl/pe.py).

Each cycle every PE (r, c) takes column c's L-bit activation slice and row r's L-bit weight
slice. ``planes`` concatenates the PEs' plane sums, PE (r, c) at index r * C + c, each PE's D
sums of ``width`` bits; the drain turns a column of them into accumulators (rtl/top.py).
"""
from __future__ import annotations

from amaranth.hdl import Module, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .pe import PE


class PEArray(wiring.Component):
    """``valid``/``start``/``double`` qualify one step (see rtl/pe.py); ``acts`` is C slices,
    ``weights`` R slices. The plane sums are final ``LATENCY`` cycles after a tile's last step."""

    LATENCY = PE.LATENCY

    def __init__(self, rows: int, cols: int, lanes: int, depth: int, width: int):
        self.rows, self.cols, self.lanes, self.depth, self.width = rows, cols, lanes, depth, width
        super().__init__({
            "valid": In(1), "start": In(1), "double": In(1),
            "acts": In(unsigned(cols * lanes)), "weights": In(unsigned(rows * lanes)),
            "planes": Out(unsigned(rows * cols * depth * width)),
        })

    def elaborate(self, platform):
        m = Module()
        R, C, L = self.rows, self.cols, self.lanes
        n = self.depth * self.width
        for r in range(R):
            for c in range(C):
                pe = m.submodules[f"pe_{r}_{c}"] = PE(L, self.depth, self.width)
                i = r * C + c
                m.d.comb += [pe.valid.eq(self.valid), pe.start.eq(self.start), pe.double.eq(self.double),
                             pe.act.eq(self.acts[c * L:(c + 1) * L]), pe.weight.eq(self.weights[r * L:(r + 1) * L]),
                             self.planes[i * n:(i + 1) * n].eq(pe.planes)]
        return m
