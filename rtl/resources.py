"""The resource model: what an array configuration costs on an FPGA part, before any synthesis.

``hwbin rtl --board NAME`` uses it to pick the fastest configuration that fits the board's
part; ``hwbin synth`` then measures the real counts. Three parts:

- the memories, from the same shapes ``Top`` builds (``memory_shapes``; a test compares them
  with the elaborated design), mapped the way yosys maps them: an iCE40 block RAM
  (SB_RAM40_4K) is 256x16, 512x8, 1024x4 or 2048x2 with ONE read port, so a memory read at
  two addresses at once is stored twice; an ECP5 DP16KD is 512x36 .. 16384x1 with two ports;
  on a UP5K the activations may be in its four SPRAMs instead (``act_spram``, one per region
  and plane: program.Program.spram);
- which memories go to logic instead of block RAM on a part (``memory_style``): a shallow, wide
  ROM (the threshold ROM: a few words of R x thresholds) fills whole block RAMs for a few
  hundred bits, where LUTs hold it for about one LUT4 per bit per 16 words;
- the logic, a linear model calibrated on yosys cell counts (``LUT_MODEL``, docs/hardware.md):
  per PE (XOR, popcount, plane sums: grows with the lanes), per drain row (bases,
  accumulators, thresholds: grows with the activation levels), per bit of an activation word
  (slices, pooling, shuffles) and a fixed part (sequencer, output unit, UART).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import operator
from dataclasses import dataclass

from hwbin import program as pg
from hwbin.errors import HwbinError
from hwbin.parts import PARTS, Part, board_part

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
    const_bits: int = 0     # data bits equal in every word of a ROM: yosys drops them

    @property
    def stored_width(self) -> int:
        """The bits of a word a block RAM or a LUT holds."""
        return self.width - self.const_bits


def constant_bits(words: list[int], width: int) -> int:
    """Bits of ``width``-bit ``words`` that are the same in every word. yosys stores a ROM
    without them: lanes no layer uses are zero in every weight word (digits-tiny's weights
    at 2x1x32 take 2 block RAMs for 64-bit words, 32 of the bits constant, not 4)."""
    if not words:
        return 0
    ones = functools.reduce(operator.or_, words)
    zeros = functools.reduce(operator.or_, (~w for w in words)) & ((1 << width) - 1)
    return width - bin(ones & zeros).count("1")


def memory_shapes(prog: pg.Program) -> list[MemShape]:
    """The memories ``Top._memories`` builds, by name."""
    from .sequencer_gen import table_layout
    from .top import drain_fields, drain_rows, gather_words, tile_rom_rows

    cfg = prog.cfg
    R, C, L = cfg.rows, cfg.cols, cfg.lanes
    drows = drain_rows(prog, gather_words(prog))
    mems = [MemShape("tile_rom", len(prog.tiles) + 1, table_layout(*tile_rom_rows(prog)).size),
            MemShape("drain_rom", len(drows), table_layout(drows, drain_fields(prog)).size),
            MemShape("gather_rom", len(prog.gather), C * (prog.addr_bits + 1)),
            MemShape("weight_rom", len(prog.weights), R * L, const_bits=constant_bits(prog.weights, R * L)),
            MemShape("thr_rom", len(prog.thresholds), R * (prog.nthr * prog.thr_bits + 1))]
    if prog.col_depth:
        mems.append(MemShape("col_mem", prog.col_depth, L, copies=C, rom=False))
    mems.append(MemShape("in_mem", prog.in_positions, prog.in_width, copies=C, rom=False))
    if prog.spram:      # one SPRAM per region and plane (rtl/spram.py; the model keeps the words used)
        mems.append(MemShape("act_spram", (2 * prog.region_depth) << prog.chunk_bits, pg.SPRAM_WIDTH,
                             copies=2 * prog.kmax, rom=False))
    else:
        mems.append(MemShape("act_mem", 2 * prog.region_depth, prog.region_width, copies=C, rom=False))
    mems.append(MemShape("score_mem", prog.out_positions * prog.score_rows, prog.score_width, rom=False))
    return [dataclasses.replace(m, depth=max(2, m.depth)) for m in mems]


def bram_blocks(depth: int, width: int, reads: int, family: str) -> int:
    """Block RAMs for one memory: the best geometry, times the copies its read ports need."""
    modes, ports = _BRAM_MODES[family]
    per_copy = min(math.ceil(depth / d) * math.ceil(width / w) for d, w in modes)
    return per_copy * math.ceil(reads / ports)


def logic_rom_luts(depth: int, width: int) -> int:
    """LUT4s of a ROM in logic: a LUT4 per bit per 16 words, and a mux tree over them."""
    leaves = math.ceil(depth / 16)
    return width * (2 * leaves - 1)


#: The tables that a record generator (rtl/sequencer_gen.py) replaces, and the part families where
#: it does: on an iCE40 the flat tables take most block RAMs (57 of 30 for digits-cnn at 4x1x16);
#: on an ECP5 (a DP16KD holds 18 kbit, 56 of them on a 25F) the ROMs cost no logic, the generators ~300 LUT4s.
GENERATED = ("tile_rom", "drain_rom")
GENERATOR_FAMILIES = ("ice40",)


def memory_style(mem: MemShape, part: str) -> str:
    """'block', 'logic', 'spram' (the activations in SPRAM mode: program.Program.spram) or
    'generator' (the tile and drain tables on an iCE40: ``GENERATED``)
    for one memory on a part ('' = yosys decides). The input memory is always block RAM
    (see ``top._memory``), and so is the threshold ROM where no part decides; the activation
    and im2col memories are left to yosys. On a part, a ROM (or the few words of the score memory) goes to logic when that costs fewer LUT4s than a sixth of the LUTs the
    block RAMs it would take stand for (30 block RAMs against 5,280 LUT4s on a UP5K)."""
    if mem.name == "act_spram":
        return "spram"
    if not part or mem.name in ("in_mem", "act_mem", "col_mem"):
        # where no part decides, the threshold ROM is block RAM too (in logic it was about
        # 420 LUTs at 8x4x32, against 8 of the ECP5-25F's 56 DP16KDs), and so is the score
        # memory (yosys put its two words at 8x4x32 in 28 LUT RAMs, 168 LUT4s, against 4 DP16KDs)
        return "block" if mem.name == "in_mem" or (not part and mem.name in ("thr_rom", "score_mem")) else ""
    p = PARTS[part]
    if mem.name in GENERATED and p.family in GENERATOR_FAMILIES:
        return "generator"
    return rom_style(mem, p)


def rom_style(mem: MemShape, p: Part) -> str:
    """'logic' or 'block' for a ROM on part ``p``, by the rule of ``memory_style``."""
    blocks = bram_blocks(mem.depth, mem.stored_width, mem.reads, p.family)
    return "logic" if logic_rom_luts(mem.depth, mem.stored_width) * mem.reads <= blocks * p.luts / p.brams / 6 else "block"


#: LUT4s = fixed + per_pe(L) x R x C + per_row x R x (levels) + per_word_bit x region width
#: x C + the logic ROMs. Calibrated on yosys ``synth_ice40`` cell counts (SB_LUT4 + SB_CARRY
#: do not share: a carry sits beside its LUT) of digits-cnn and digits-tiny, see docs/hardware.md.
#: ``lc_per_lut``: on an ECP5 the LUT4s estimated are scaled by it (the margin for carries).
LUT_MODEL = {"fixed": 1500, "pe_per_lane": 4.5, "pe": 12, "row": 190, "word_bit": 6.0, "lc_per_lut": 1.33}

#: The iCE40 model (multipliers in SB_MAC16: synth_ice40 -dsp; tile and drain tables from
#: generators). nextpnr-ice40 places logic cells, a LUT4 and a flip-flop each, and this design
#: has more flip-flops than LUT4s (pipeline registers without a LUT of their own): a
#: non-negative least-squares fit of yosys ``synth_ice40 -dsp`` counts of the core over 9
#: configurations of digits-tiny, digits-cnn and shapes-seg (benchmarks/ice40_fit.py
#: ``calibrate``, rerun on main after the fourth gateware round, 2026-11-24 session 27, with
#: digits-cnn's 2x1x16 a SPRAM point; within 6% of each) gives the LUT4s and the flip-flops from the same kind of
#: features (LUT4s: PEs, PE lanes, drain rows x levels, activation word bits x columns;
#: flip-flops: the PEs' plane sums, the drain rows' sums and thresholds, the activation word
#: bits, the lanes), and the placed logic cells are ``lc`` of them (a fit of nextpnr's
#: ICESTORM_LC in 4 board builds of digits-tiny, within 70 cells; 2 more at 2x2x8 and 2x1x16
#: within 51). Recalibrate when the drain or the pipeline changes.
#: ``spram``: what the activations in SPRAM (program.Program.spram) add besides their narrower
#: words (the SPRAMs' address multiplexers, the drain's word register and the word fields down
#: its pipeline), a feature of the same fit (first set by up17s from digits-cnn and digits-mlp
#: at 2x1x16: LUT4s +159 and +247, flip-flops +225 and +193).
ICE40_MODEL = {
    "lut": {"fixed": 742, "pe": 0.0, "pe_lane": 5.35, "row_level": 70.7, "word_bit": 4.78, "spram": 168},
    "ff": {"fixed": 1233, "pe_sum_bit": 2.0, "row_bit": 2.52, "word_bit": 10.16, "lane": 17.2, "spram": 275},
    "lc": {"lut": 0.93, "ff": 0.81},
}
#: the share of a part's logic cells a design may take and still be placed: nextpnr-ice40
#: placed digits-tiny at 4,851 cells (92%, 8bc8e1d) and gave up at 4,905 (93%); after the
#: fourth gateware round it gave up on digits-tiny's 2x2x16 at an estimated 4,691 (89%), so the
#: model keeps a margin for its own error
PLACE_LIMIT = {"ice40": 0.88}


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


def estimate(prog: pg.Program, part: str, generator: bool | None = None) -> dict:
    """{kind: used} for luts, brams, sprams, dsps, with the memories one by one.
    ``generator``: the tile and drain ROMs replaced by record generators in logic
    (rtl/sequencer_gen.py) or not; None: as ``Top`` builds them on the part (``memory_style``)."""
    p = PARTS[part]
    cfg = prog.cfg
    R, C, L = cfg.rows, cfg.cols, cfg.lanes
    mems, brams, sprams, rom_luts = {}, 0, 0, 0
    if generator is None:
        generator = p.family in GENERATOR_FAMILIES
    gen = generator_luts(prog) if generator else {}
    for mem in memory_shapes(prog):
        style = memory_style(mem, part)
        table = mem.name.removesuffix("_rom")
        if style == "generator" and not gen:
            style = rom_style(mem, p)
        if style == "spram":
            sprams += mem.copies
            mems[mem.name] = {"sprams": mem.copies}
        elif mem.name in GENERATED and table in gen:
            rom_luts += gen[table]
            mems[mem.name] = {"luts": gen[table], "generator": True}
        elif style == "logic":
            n = logic_rom_luts(mem.depth, mem.stored_width) * mem.reads * mem.copies
            rom_luts += n
            mems[mem.name] = {"luts": n}
        else:
            n = bram_blocks(mem.depth, mem.stored_width, mem.reads, p.family) * mem.copies
            brams += n
            mems[mem.name] = {"brams": n}
    if p.family == "ice40":
        lut4, ffs = ice40_logic(prog)
        lut4 += rom_luts
        lc = ICE40_MODEL["lc"]
        luts = lc["lut"] * lut4 + lc["ff"] * ffs
        return {"luts": int(round(luts)), "lut4": int(round(lut4)), "ffs": int(round(ffs)), "brams": brams, "sprams": sprams,
                "dsps": multipliers(prog), "memories": mems}
    m = LUT_MODEL
    levels = max(1, prog.nthr)
    luts = (m["fixed"] + (m["pe"] + m["pe_per_lane"] * L) * R * C + m["row"] * R * (1 + levels) / 2
            + m["word_bit"] * prog.region_width * C + rom_luts) * m["lc_per_lut"]
    return {"luts": int(round(luts)), "brams": brams, "sprams": 0, "dsps": 0, "memories": mems}


def ice40_features(prog: pg.Program) -> dict:
    """The features of ``ICE40_MODEL``, by name, for the LUT4s ("lut") and flip-flops ("ff")."""
    R, C, L = prog.cfg.rows, prog.cfg.cols, prog.cfg.lanes
    sums = prog.depth * prog.pe_bits                   # a PE's plane sums, bits
    spram = int(prog.spram)
    return {"lut": {"fixed": 1, "pe": R * C, "pe_lane": R * C * L, "row_level": R * (1 + max(1, prog.nthr)) / 2,
                    "word_bit": prog.region_width * C, "spram": spram},
            "ff": {"fixed": 1, "pe_sum_bit": R * C * sums, "row_bit": R * (sums + prog.nthr * (prog.s_bits + 1)),
                   "word_bit": prog.region_width * C, "lane": L * (R + C), "spram": spram}}


def ice40_logic(prog: pg.Program) -> tuple[float, float]:
    """(LUT4s, flip-flops) of the core on an iCE40 without its ROMs in logic (``ICE40_MODEL``)."""
    f = ice40_features(prog)
    return tuple(sum(ICE40_MODEL[k][n] * v for n, v in f[k].items()) for k in ("lut", "ff"))


def multipliers(prog: pg.Program) -> int:
    """SB_MAC16s that synth_ice40 -dsp maps: the drain's per-row, per-plane base products
    (R x depth; on an iCE40 the output unit's score scaling takes row 0's first, see
    ``Top.out_mul``) and, where the program has an im2col pass and C > 1, one more (yosys maps
    the drain's write address's add into one: digits-tiny at 2x2x8, not at 2x1x8). Exact on the
    9 calibration points (benchmarks/ice40_fit.py)."""
    extra = 1 if prog.col_depth and prog.cfg.cols > 1 else 0
    return prog.cfg.rows * prog.depth + extra


def fits(used: dict, part: str) -> list[str]:
    """The kinds a configuration needs more of than the part has (empty: it fits)."""
    return [k for k, n in available(part).items() if used[k] > n]


def lut_unit(part: str) -> str:
    """What an estimate's "luts" counts on the part: nextpnr's logic cells on an iCE40, LUTs elsewhere."""
    return "logic cells" if PARTS[part].family == "ice40" else "LUTs"


def available(part: str) -> dict:
    """What a configuration may use of a part: its totals, and on an iCE40 ``PLACE_LIMIT`` of its logic cells."""
    p = PARTS[part]
    return {"luts": int(p.luts * PLACE_LIMIT.get(p.family, 1.0)), "brams": p.brams, "sprams": p.sprams, "dsps": p.dsps}


#: Array configurations tried for a board, as (rows, cols, lanes)
CANDIDATES = [(r, c, lanes) for r in (2, 4, 8, 16) for c in (1, 2, 4, 8) for lanes in (8, 16, 32, 64)]


def choose_config(model, board: str, clock_mhz: float = 100.0) -> tuple[pg.ArrayConfig, dict, list]:
    """The fastest configuration (fewest cycles an image by the cycle model, then the fewest
    logic cells) that fits the board's part; HwbinError naming the tightest resource when none
    does. Not the most PEs x lanes: lanes past a model's widest layer input are idle (digits-tiny
    at 2x1x32 takes 12,479 cycles, at 2x2x8 10,049 in fewer cells). Returns the config, its
    estimate and every candidate's (label, estimate, cycles, shortfall)."""
    part = board_part(board)
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
        avail = available(part)
        best = min(tried, key=lambda t: max(t[1][k] / max(1, avail[k]) for k in avail))
        cfg, est = best[0], best[1]
        raise HwbinError(f"--board {board}: the model fits no array configuration on the {part} (smallest need: "
                         f"{cfg.label()} with {est['luts']} of {avail['luts']} {lut_unit(part)}, {est['brams']} of {avail['brams']} "
                         f"block RAMs, {est['dsps']} of {avail['dsps']} DSPs); use a smaller model or a larger board")
    cfg, est, _, _ = min(ok, key=lambda t: (t[2], t[1]["luts"]))
    return cfg, est, tried
