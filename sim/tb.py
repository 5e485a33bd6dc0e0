"""The cocotb testbench of ``hwbin_top``: driver, monitor, golden reference, scoreboard.

Shaped after cocotb's matrix_multiplier example. One loop per clock cycle drives the input
stream and the output ready at the falling edge and samples handshakes in the read-only
phase; the cycle number comes from simulated time, so a beat's cycle is exact on every
simulator. While the design computes with nothing to drive or record (no gaps, no trace),
the bench sleeps until the output stream or ``done`` rises instead of waking every cycle:
Python then costs a few hundred wake-ups per image, not one per cycle. The reference is the golden
model (values) and its cycle model (cycles), computed here from the folder's own IR.

The job (which vectors, which scenario, where to write the summary) is a JSON file named by
``HWBIN_SIM_JOB``; ``hwbin.sim.runner`` writes it and reads the summary back.
"""
from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import FallingEdge, First, ReadOnly, RisingEdge, Timer

from hwbin import golden
from hwbin import program as pg
from hwbin.rtl.emit import load_program


def _job() -> dict:
    return json.loads(Path(os.environ["HWBIN_SIM_JOB"]).read_text())


class Driver:
    """Feeds images into ``i_pixel``; with ``gap`` > 0 it idles on random cycles."""

    def __init__(self, dut, rng: random.Random, gap: float):
        self.dut, self.rng, self.gap = dut, rng, gap
        self.beats: list[int] = []
        self.accepted_at: list[int] = []
        self.offered = False

    def load(self, image) -> None:
        self.beats = pg.input_beats(image)
        self.accepted_at = []

    def drive(self) -> None:
        offer = bool(self.beats) and not (self.gap and self.rng.random() < self.gap)
        self.dut.i_pixel__valid.value = int(offer)
        self.dut.i_pixel__payload.value = self.beats[0] if offer else 0
        self.offered = offer

    def observe(self, cycle: int) -> None:
        if self.offered and int(self.dut.i_pixel__ready.value):
            self.beats.pop(0)
            self.accepted_at.append(cycle)


class Monitor:
    """Collects ``o_result`` beats with their cycles; with ``gap`` > 0 drops ready at random."""

    def __init__(self, dut, rng: random.Random, gap: float):
        self.dut, self.rng, self.gap = dut, rng, gap
        self.values: list[int] = []
        self.cycles: list[int] = []

    def drive(self) -> None:
        self._ready = not (self.gap and self.rng.random() < self.gap)
        self.dut.o_result__ready.value = int(self._ready)

    def observe(self, cycle: int) -> None:
        if self._ready and int(self.dut.o_result__valid.value):
            v = self.dut.o_result__payload.value
            if not v.is_resolvable:
                raise AssertionError(f"o_result payload has X/Z bits at cycle {cycle}, beat {len(self.values)}: {v}")
            self.values.append(v.to_signed())
            self.cycles.append(cycle)


class Tracer:
    """Records the activation-memory write bus, to find the first wrong layer output."""

    def __init__(self, dut):
        self.dut = dut
        self.writes: list[tuple[int, int, int, int]] = []

    def observe(self, cycle: int) -> None:
        en = int(self.dut.trace_en.value)
        if en:
            self.writes.append((cycle, int(self.dut.trace_addr.value), int(self.dut.trace_data.value), en))


def first_layer_divergence(prog: pg.Program, taps: dict, image_index: int, writes) -> dict | None:
    """Replay the traced writes layer by layer against the golden model's activations."""
    per_plane = prog.wchan // prog.gran
    producers = [op for op in prog.ops if op.kind != "im2col" and not op.is_score]
    op_i, last_region = -1, None
    for cycle, addr, word, en in writes:
        # an activation word: its position, and in SPRAM mode its chunk in the low bits
        chunk, addr = addr & ((1 << prog.chunk_bits) - 1), addr >> prog.chunk_bits
        region = addr // prog.region_depth
        if region != last_region:
            op_i, last_region = op_i + 1, region
        if op_i >= len(producers):
            break
        op = producers[op_i]
        k = op.k_out
        pos = addr - op.dst_base
        ref = taps[op.layer.name][image_index].reshape(op.layer.out_shape[0], -1)
        for c in range(op.layer.out_shape[0]):
            bit = c - chunk * prog.wchan                  # the channel's bit in the word's plane
            if not 0 <= bit < prog.wchan or not all((en >> (p * per_plane + bit // prog.gran)) & 1 for p in range(k)):
                continue
            found = sum(((word >> (p * prog.wchan + bit)) & 1) << (k - 1 - p) for p in range(k))
            expected = int(ref[c, pos])
            if found != expected:
                w = op.layer.out_shape[2]
                return {"layer": op.layer.name, "channel": c, "position": [pos // w, pos % w],
                        "expected": expected, "found": found, "cycle": cycle}
    return None


class Bench:
    def __init__(self, dut, job: dict):
        self.dut, self.job = dut, job
        _, self.model, self.prog = load_program(job["rtl_dir"])
        self.predicted = pg.cycle_model(self.prog)
        self.x = np.load(job["vectors"])
        self.ref = golden.run(self.model, self.x, taps=bool(job.get("trace")))
        rng = random.Random(job.get("seed", 0))
        self.driver = Driver(dut, rng, job.get("gap", 0.0))
        self.monitor = Monitor(dut, rng, job.get("gap", 0.0))
        self.tracer = Tracer(dut) if job.get("trace") else None
        self.cycle = 0

    PERIOD_NS = 10

    async def start(self) -> None:
        # the clock toggles in the simulator (cocotb's GPI clock), not in a Python task that
        # would wake twice a cycle while the design computes and the bench sleeps
        cocotb.start_soon(Clock(self.dut.clk, self.PERIOD_NS, unit="ns", impl="gpi").start())
        self.dut.i_pixel__valid.value = 0
        self.dut.o_result__ready.value = 0
        await self.reset()

    async def reset(self, cycles: int = 2) -> None:
        """Hold reset for ``cycles`` clock edges with the input stream idle."""
        await FallingEdge(self.dut.clk)
        self.dut.i_pixel__valid.value = 0
        self.dut.rst.value = 1
        for _ in range(cycles):
            await FallingEdge(self.dut.clk)
        self.dut.rst.value = 0

    async def step(self) -> bool:
        """One clock cycle; True when ``done`` was seen."""
        await FallingEdge(self.dut.clk)
        self.cycle = int(get_sim_time(unit="ns")) // self.PERIOD_NS
        self.driver.drive()
        self.monitor.drive()
        await ReadOnly()
        self.driver.observe(self.cycle)
        self.monitor.observe(self.cycle)
        if self.tracer:
            self.tracer.observe(self.cycle)
        done = bool(int(self.dut.done.value))
        reported = int(self.dut.cycles.value) if done else None
        self.last_reported = reported
        return done

    def _idle(self) -> bool:
        """Nothing to drive or record until the design speaks: the input is all in, the
        output is always ready and nobody traces the memory writes."""
        return (not self.driver.beats and not self.driver.offered and not self.monitor.gap and not self.tracer
                and not int(self.dut.o_result__valid.value))

    async def sleep_while_idle(self, cycles_left: int) -> None:
        """Sleep until the output stream or ``done`` rises, at most ``cycles_left`` cycles
        (so a deadlock still ends in the bounded timeout)."""
        if self._idle():
            await First(RisingEdge(self.dut.o_result__valid), RisingEdge(self.dut.done),
                        Timer(max(cycles_left, 1) * self.PERIOD_NS, unit="ns"))

    async def run_image(self, image, limit: int):
        """Stream one image, collect its beats; raises on a bounded timeout (deadlock)."""
        self.driver.load(image)
        self.monitor.values, self.monitor.cycles = [], []
        if self.tracer:
            self.tracer.writes = []
        start = self.cycle
        while self.cycle - start < limit:
            await self.sleep_while_idle(limit - (self.cycle - start))
            if await self.step():
                t0 = self.driver.accepted_at[0]
                return (self.monitor.values, [c - t0 for c in self.monitor.cycles], self.last_reported,
                        [(c - t0, a, d, e) for c, a, d, e in (self.tracer.writes if self.tracer else [])])
        raise AssertionError(f"timeout: no 'done' within {limit} cycles "
                             f"({len(self.monitor.values)} of {self.prog.out_beats} beats seen): deadlock?")


class Scoreboard:
    """Compares each image's beats and cycles with the golden model; keeps the first divergence."""

    def __init__(self, bench: Bench, check_cycles: bool):
        self.bench, self.check_cycles = bench, check_cycles
        self.vectors = self.mismatches = self.cycle_mismatches = 0
        self.first = None
        self.measured = []

    def check(self, i: int, values, cycles, reported, writes) -> None:
        b = self.bench
        expected = pg.expected_beats(b.ref.scores[i])
        self.vectors += 1
        self.measured.append(reported)
        bad_value = values != expected
        predicted = [int(c) for c in b.predicted.beat_cycles]
        bad_cycle = self.check_cycles and (cycles != predicted or reported != b.predicted.total)
        self.mismatches += int(bad_value)
        self.cycle_mismatches += int(bad_cycle)
        if (bad_value or bad_cycle) and self.first is None:
            self.first = self._describe(i, values, cycles, expected, predicted, writes)

    def _describe(self, i, values, cycles, expected, predicted, writes) -> dict:
        b = self.bench
        d = {"vector": i}
        if b.tracer and b.ref.taps:
            layer = first_layer_divergence(b.prog, b.ref.taps, i, writes)
            if layer:
                d.update(layer)
                return d
        n = b.prog.num_classes + 1
        for k, (want, got) in enumerate(zip(expected, values)):
            if want != got:
                pos, cls = divmod(k, n)
                w = b.model.layers[-1].out_shape[2]
                return {**d, "layer": b.model.layers[-1].name if cls < n - 1 else "argmax",
                        "channel": cls if cls < n - 1 else None, "position": [pos // w, pos % w],
                        "expected": want, "found": got, "cycle": cycles[k]}
        if len(values) != len(expected):
            return {**d, "layer": "output", "expected": f"{len(expected)} beats", "found": f"{len(values)} beats"}
        for k, (want, got) in enumerate(zip(predicted, cycles)):
            if want != got:
                return {**d, "layer": "output", "beat": k, "expected": f"cycle {want}", "found": f"cycle {got}",
                        "cycle": got}
        return {**d, "layer": "output", "expected": f"{b.predicted.total} cycles", "found": f"{cycles[-1] + 1} cycles"}

    def write(self, path, wall: float, sim_cycles: int, scenario: str) -> None:
        summary = {"scenario": scenario, "vectors": self.vectors, "mismatches": self.mismatches,
                   "cycle_mismatches": self.cycle_mismatches, "measured_cycles": self.measured,
                   "predicted_cycles": self.bench.predicted.total, "sim_cycles": sim_cycles, "wall_s": wall,
                   "first_divergence": self.first}
        Path(path).write_text(json.dumps(summary, indent=1))


async def _run(dut, scenario: str) -> None:
    job = _job()
    bench = Bench(dut, job)
    await bench.start()
    board = Scoreboard(bench, check_cycles=not job.get("gap"))
    limit = 20 * bench.predicted.total + 1000
    t = time.perf_counter()
    start_cycle = bench.cycle
    if scenario == "reset":
        # stop the first image part-way (mid-load, or mid-compute), reset, then check the next one
        bench.driver.load(bench.x[0])
        for _ in range(job.get("reset_after", bench.prog.in_positions * bench.prog.in_channels + 7)):
            await bench.step()
        await bench.reset()
    for i in range(len(bench.x)):
        board.check(i, *await bench.run_image(bench.x[i], limit))
        if job.get("progress"):
            # the runner polls this count into its progress bar
            Path(job["progress"]).write_text(str(i + 1))
    board.write(job["summary"], time.perf_counter() - t, bench.cycle + 1 - start_cycle, scenario)
    assert board.mismatches == 0 and board.cycle_mismatches == 0, f"first divergence: {board.first}"


@cocotb.test()
async def vectors(dut):
    """Every vector bit-exact and (with no gaps) every beat on its predicted cycle."""
    await _run(dut, "vectors")


@cocotb.test()
async def reset(dut):
    """A reset in the middle of an image; the images after it are right."""
    await _run(dut, "reset")
