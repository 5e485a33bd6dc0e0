"""One iCE40 single-port RAM (SB_SPRAM256KA: 16k x 16, one port, no init) for the activations.

In the board flow (an Amaranth platform elaborates it) it is the primitive itself, which
``synth_ice40`` places in one of the UP5K's four SPRAM sites. Elsewhere (Amaranth's simulator,
the Verilog that ``hwbin rtl`` writes for cocotb) it is a behavioural model with the
primitive's port rules as ``top.Top`` uses it (whole-word writes, CHIPSELECT high): a cycle
either writes ``wdata`` at ``addr`` (``we``) or reads ``addr`` into ``rdata``, and after a
write ``rdata`` is undefined (yosys's cells_sim.v drives X; the model drives all ones, so that
a design that reads in a write cycle fails its bit-exact tests instead of passing by chance).
"""
from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

ADDR_BITS, WIDTH = 14, 16


class Spram(wiring.Component):
    """``depth``: the words the model keeps (the primitive always has 16k)."""

    def __init__(self, depth: int):
        self.depth = max(2, depth)
        super().__init__({"addr": In(ADDR_BITS), "wdata": In(WIDTH), "we": In(1), "rdata": Out(WIDTH)})

    def elaborate(self, platform):
        m = Module()
        if platform is not None:
            m.submodules.spram = Instance(
                "SB_SPRAM256KA", i_ADDRESS=self.addr, i_DATAIN=self.wdata, i_MASKWREN=Const(0xF, 4),
                i_WREN=self.we, i_CHIPSELECT=Const(1, 1), i_CLOCK=ClockSignal(), i_STANDBY=Const(0, 1),
                i_SLEEP=Const(0, 1), i_POWEROFF=Const(1, 1), o_DATAOUT=self.rdata)
            return m
        m.submodules.mem = mem = memory.Memory(shape=WIDTH, depth=self.depth, init=[])
        bits = (self.depth - 1).bit_length()
        wp, rp = mem.write_port(), mem.read_port(transparent_for=())
        wrote = Signal()
        m.d.sync += wrote.eq(self.we)
        m.d.comb += [wp.addr.eq(self.addr[:bits]), wp.data.eq(self.wdata), wp.en.eq(self.we),
                     rp.addr.eq(self.addr[:bits]), rp.en.eq(~self.we),
                     self.rdata.eq(Mux(wrote, (1 << WIDTH) - 1, rp.data))]
        return m
