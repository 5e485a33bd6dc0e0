"""Run the gateware in Amaranth's own simulator: the reference for unit tests of the RTL.

``run_images`` streams images in back to back with the output always ready, like the cycle
model assumes, and returns every output beat with its cycle (cycle 0 = first input beat).
"""
from __future__ import annotations

from amaranth.sim import Simulator

from hwbin import program as pg

from .top import Top


def run_images(prog: pg.Program, images, max_cycles: int = 200_000, vcd: str | None = None):
    """[(beat values, beat cycles, reported cycles)] per image."""
    top = Top(prog, spram_model=True)
    sim = Simulator(top)
    sim.add_clock(1e-8)
    results = []

    async def bench(ctx):
        for image in images:
            beats = pg.input_beats(image)
            values, cycles = [], []
            cycle, t0, sent = 0, None, 0
            ctx.set(top.o_result.ready, 1)
            while True:
                ctx.set(top.i_pixel.valid, sent < len(beats))
                ctx.set(top.i_pixel.payload, beats[sent] if sent < len(beats) else 0)
                if sent < len(beats) and ctx.get(top.i_pixel.ready):
                    t0 = cycle if t0 is None else t0
                    sent += 1
                if ctx.get(top.o_result.valid):
                    values.append(ctx.get(top.o_result.payload))
                    cycles.append(cycle - t0)
                await ctx.tick()
                cycle += 1
                if ctx.get(top.done):
                    results.append((values, cycles, ctx.get(top.cycles)))
                    break
                if cycle > max_cycles:
                    raise RuntimeError(f"no done after {max_cycles} cycles ({len(values)} beats)")

    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()
    return results
