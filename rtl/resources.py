"""The resource model: what an array configuration costs on an FPGA part, before any synthesis.

``hwbin rtl --board NAME`` uses it to pick the largest configuration that fits the board's
part; ``hwbin synth`` then measures the real counts. Three parts:

- the memories, from the same shapes ``Top`` builds (``memory_shapes``; a test compares them
  with the elaborated design), mapped the way yosys maps them: an iCE40 block RAM
  (SB_RAM40_4K) is 256x16, 512x8, 1024x4 or 2048x2 with ONE read port, so a memory read at
  two addresses at once is stored twice; an ECP5 DP16KD is 512x36 .. 16384x1 with two ports;
- which memories go to logic instead of block RAM on a part (``memory_style``): a shallow, wide
  ROM (the threshold ROM: a few words of R x thresholds) fills whole block RAMs for a few
  hundred bits, where LUTs hold it for about one LUT4 per bit per 16 words;
- the logic, a linear model calibrated on yosys cell counts (``LUT_MODEL``, docs/hardware.md):
  per PE (XOR, popcount, plane sums: grows with the lanes), per drain row (bases,
  accumulators, thresholds: grows with the activation levels), per bit of an activation word
  (slices, pooling, shuffles) and a fixed part (sequencer, output unit, UART).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from hwbin import program as pg
from hwbin.errors import HwbinError


@dataclass(frozen=True)
class Part:
    family: str
    luts: int
    ffs: int
    brams: int
    sprams: int
    dsps: int


#: The parts hwbin builds for, with their totals (LUT4s / LUTs, flip-flops, block RAMs, SPRAMs, DSPs).
PARTS = {
    "ice40-up5k": Part("ice40", 5280, 5280, 30, 4, 8),
    "ecp5-25f": Part("ecp5", 24288, 24288, 56, 0, 28),
    "ecp5-85f": Part("ecp5", 83640, 83640, 208, 0, 156),
}
#: The boards, by the part they carry.
BOARD_PARTS = {"icebreaker": "ice40-up5k", "ulx3s": "ecp5-25f"}

#: block RAM geometries (depth, width) and read ports per block RAM
_BRAM_MODES = {"ice40": ([(256, 16), (512, 8), (1024, 4), (2048, 2)], 1),
               "ecp5": ([(512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1)], 2)}


@dataclass(frozen=True)
class MemShape:
    """One memory of ``Top`` (or ``copies`` identical ones, one per array column)."""
    name: str
    depth: int
    width: int
    reads: int = 1          # read ports
    copies: int = 1
    rom: bool = True


def memory_shapes(prog: pg.Program) -> list[MemShape]:
    """The memories ``Top._memories`` builds, by name."""
    from .top import DRAIN_FIELDS, TILE_FIELDS, _layout, drain_rows, gather_words

    cfg = prog.cfg
    R, C, L = cfg.rows, cfg.cols, cfg.lanes
    drows = drain_rows(prog, gather_words(prog))
    mems = [MemShape("tile_rom", len(prog.tiles) + 1, _layout(prog.tiles, TILE_FIELDS).size),
            MemShape("drain_rom", len(drows), _layout(drows, DRAIN_FIELDS).size),
            MemShape("gather_rom", len(prog.gather), C * (prog.addr_bits + 1)),
            MemShape("weight_rom", len(prog.weights), R * L),
            MemShape("thr_rom", len(prog.thresholds), R * (prog.nthr * prog.thr_bits + 1))]
    if prog.col_depth:
        mems.append(MemShape("col_mem", prog.col_depth, L, copies=C, rom=False))
    mems += [MemShape("in_mem", prog.in_positions, prog.in_width, copies=C, rom=False),
             MemShape("act_mem", 2 * prog.region_depth, prog.region_width, copies=C, rom=False),
             MemShape("score_mem", prog.out_positions * prog.score_rows, R * prog.acc_bits, rom=False)]
    return [MemShape(m.name, max(2, m.depth), m.width, m.reads, m.copies, m.rom) for m in mems]


def bram_blocks(depth: int, width: int, reads: int, family: str) -> int:
    """Block RAMs for one memory: the best geometry, times the copies its read ports need."""
    modes, ports = _BRAM_MODES[family]
    per_copy = min(math.ceil(depth / d) * math.ceil(width / w) for d, w in modes)
    return per_copy * math.ceil(reads / ports)


def logic_rom_luts(depth: int, width: int) -> int:
    """LUT4s of a ROM in logic: a LUT4 per bit per 16 words, and a mux tree over them."""
    leaves = math.ceil(depth / 16)
    return width * (2 * leaves - 1)


def memory_style(mem: MemShape, part: str) -> str:
    """'block' or 'logic' for one memory on a part ('' = yosys decides). The input memory is
    always block RAM (see ``top._memory``), and so is the threshold ROM where no part
    decides; the activation and im2col memories are left to yosys. On a part, a ROM (or the few words of the score memory) goes to logic when that costs fewer LUT4s than a sixth of the LUTs the
    block RAMs it would take stand for (30 block RAMs against 5,280 LUT4s on a UP5K)."""
    if not part or mem.name in ("in_mem", "act_mem", "col_mem"):
        # where no part decides, the threshold ROM is block RAM too (in logic it was about
        # 420 LUTs at 8x4x32, against 8 of the ECP5-25F's 56 DP16KDs)
        return "block" if mem.name == "in_mem" or (not part and mem.name == "thr_rom") else ""
    p = PARTS[part]
    blocks = bram_blocks(mem.depth, mem.width, mem.reads, p.family)
    return "logic" if logic_rom_luts(mem.depth, mem.width) * mem.reads <= blocks * p.luts / p.brams / 6 else "block"


#: LUT4s = fixed + per_pe(L) x R x C + per_row x R x (levels) + per_word_bit x region width
#: x C + the logic ROMs. Calibrated on yosys ``synth_ice40`` cell counts (SB_LUT4 + SB_CARRY
#: do not share: a carry sits beside its LUT) of digits-cnn and digits-tiny, see docs/hardware.md.
#: ``lc_per_lut``: nextpnr-ice40 places logic cells (a LUT4 and a flip-flop each), and flip-flops
#: without a LUT of their own and carries take cells too: digits-tiny at 4x2x16 needed 5,708
#: cells where this model's LUT4s said 4,288 (one placed point so far: calibrate further).
LUT_MODEL = {"fixed": 1500, "pe_per_lane": 4.5, "pe": 12, "row": 190, "word_bit": 6.0, "lc_per_lut": 1.33}


#: LUT4s of one record generator (rtl/sequencer_gen.py) = fixed + per record bit (its adders
#: and delta select) + per descriptor entry (the ROM in logic): a least-squares fit of yosys
#: ``synth_ice40`` SB_LUT4 counts over 14 generators (the zoo's tile and drain tables at
#: 4x1x16, 2x2x8, 8x4x32; within 57 LUT4s of each; digits-cnn 4x1x16: 174 tile + 144 drain
#: measured). Carries (about a third as many) sit beside their LUTs.
GEN_MODEL = {"fixed": 87, "per_bit": 0.82, "per_entry": 2.3}


def generator_luts(prog: pg.Program) -> dict:
    """{table: LUT4s} of the generators that would replace the tile and drain ROMs."""
    from .sequencer_gen import generator_tables

    g = GEN_MODEL
    out = {}
    for name, (records, fields, widths) in generator_tables(prog).items():
        loops = pg.compress_records(records, fields, widths)
        out[name] = int(round(g["fixed"] + g["per_bit"] * sum(loops.widths) + g["per_entry"] * len(loops.entries)))
    return out


def estimate(prog: pg.Program, part: str, generator: bool = False) -> dict:
    """{kind: used} for luts, brams, sprams, dsps, with the memories one by one.
    ``generator``: the tile and drain ROMs replaced by record generators in logic
    (rtl/sequencer_gen.py; not yet wired into Top, so ``hwbin rtl --board`` leaves it off)."""
    p = PARTS[part]
    cfg = prog.cfg
    R, C, L = cfg.rows, cfg.cols, cfg.lanes
    mems, brams, rom_luts = {}, 0, 0
    gen = generator_luts(prog) if generator else {}
    for mem in memory_shapes(prog):
        style = memory_style(mem, part)
        table = mem.name.removesuffix("_rom")
        if table in gen:
            rom_luts += gen[table]
            mems[mem.name] = {"luts": gen[table], "generator": True}
        elif style == "logic":
            n = logic_rom_luts(mem.depth, mem.width) * mem.reads * mem.copies
            rom_luts += n
            mems[mem.name] = {"luts": n}
        else:
            n = bram_blocks(mem.depth, mem.width, mem.reads, p.family) * mem.copies
            brams += n
            mems[mem.name] = {"brams": n}
    m = LUT_MODEL
    levels = max(1, prog.nthr)
    luts = (m["fixed"] + (m["pe"] + m["pe_per_lane"] * L) * R * C + m["row"] * R * (1 + levels) / 2
            + m["word_bit"] * prog.region_width * C + rom_luts) * m["lc_per_lut"]
    return {"luts": int(round(luts)), "brams": brams, "sprams": 0, "dsps": 0, "memories": mems}


def fits(used: dict, part: str) -> list[str]:
    """The kinds a configuration needs more of than the part has (empty: it fits)."""
    p = PARTS[part]
    avail = {"luts": p.luts, "brams": p.brams, "sprams": p.sprams, "dsps": p.dsps}
    return [k for k in avail if used[k] > avail[k]]


#: Array configurations tried for a board, as (rows, cols, lanes)
CANDIDATES = [(r, c, lanes) for r in (2, 4, 8, 16) for c in (1, 2, 4, 8) for lanes in (8, 16, 32, 64)]


def choose_config(model, board: str, clock_mhz: float = 100.0) -> tuple[pg.ArrayConfig, dict, list]:
    """The configuration with the most PEs x lanes (then the fewest cycles) that fits the
    board's part; HwbinError naming the tightest resource when none does. Returns the config,
    its estimate and every candidate's (label, estimate, cycles, shortfall)."""
    part = BOARD_PARTS[board]
    tried = []
    for r, c, lanes in CANDIDATES:
        cfg = pg.ArrayConfig(r, c, lanes, clock_mhz, part)
        try:
            prog = pg.compile_program(model, cfg)
        except pg.ConfigError:
            continue
        est = estimate(prog, part)
        tried.append((cfg, est, pg.cycle_model(prog).total, fits(est, part)))
    ok = [t for t in tried if not t[3]]
    if not ok:
        p = PARTS[part]
        best = min(tried, key=lambda t: max(t[1]["luts"] / p.luts, t[1]["brams"] / p.brams))
        cfg, est = best[0], best[1]
        raise HwbinError(f"--board {board}: the model fits no array configuration on the {part} (smallest need: "
                         f"{cfg.label()} with {est['luts']} of {p.luts} LUTs, {est['brams']} of {p.brams} block "
                         f"RAMs); use a smaller model or a larger board")
    cfg, est, _, _ = max(ok, key=lambda t: (t[0].rows * t[0].cols * t[0].lanes, -t[2]))
    return cfg, est, tried
