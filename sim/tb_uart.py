"""cocotb test of the board top: an image goes in over the UART, the results come back.

The host side here is the same byte protocol ``hwbin board run`` speaks (rtl/board.py): input
beats as bytes, every output beat as 4 bytes little endian. The reference is the golden model.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge

from hwbin import golden, ir
from hwbin import program as pg


async def send_byte(dut, value: int, divisor: int) -> None:
    for bit in [0] + [(value >> i) & 1 for i in range(8)] + [1]:
        dut.rx.value = bit
        await ClockCycles(dut.clk, divisor)


async def receive_bytes(dut, n: int, divisor: int, out: list) -> None:
    while len(out) < n:
        await FallingEdge(dut.tx)
        await ClockCycles(dut.clk, divisor + divisor // 2)       # middle of bit 0
        value = 0
        for i in range(8):
            value |= int(dut.tx.value) << i
            await ClockCycles(dut.clk, divisor)
        out.append(value)


def decode_beats(data: list[int]) -> list[int]:
    return [int.from_bytes(bytes(data[i:i + 4]), "little", signed=True) for i in range(0, len(data), 4)]


@cocotb.test()
async def uart_image(dut):
    job = json.loads(Path(os.environ["HWBIN_SIM_JOB"]).read_text())
    model = ir.load(job["model"])
    divisor = job["divisor"]
    x = np.load(job["vectors"])
    ref = golden.run(model, x)
    prog = pg.compile_program(model, pg.ArrayConfig(**job["config"]))
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rx.value = 1
    dut.rst.value = 1
    await ClockCycles(dut.clk, 3)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    results = []
    for i in range(len(x)):
        got: list[int] = []
        rx_task = cocotb.start_soon(receive_bytes(dut, 4 * prog.out_beats, divisor, got))
        for b in pg.input_beats(x[i]):
            await send_byte(dut, b, divisor)
        await rx_task
        results.append(decode_beats(got) == pg.expected_beats(ref.scores[i]))
    Path(job["summary"]).write_text(json.dumps({"images": len(x), "exact": sum(results)}))
    assert all(results)
