"""The top level: input loader, sequencer, memories, PE array, drain, passes, output unit.

Everything model-specific arrives as tables from ``hwbin.program.Program``; the timing
below is what ``program.cycle_model`` replays, stage by stage (s = the cycle a step issues):

    compute   s: tile/gather ROM addresses, the weight ROM's registered   s+1: register the
              gather word, weight ROM address   s+2: memory addresses   s+3: land each memory's word   s+4: register its
              slices (the ones a step does not use reset)   s+5: OR of the slices
              s+6: XOR + group counts   s+7: popcount   s+8: plane sum += it   s+9: capture
              the plane sums of a tile's last step in PE row 0   s+10+R-1 ..: drain, one column per cycle: the PEs'
              gated registers ORed, twice more registered, times the bases, the products
              registered twice, S, threshold tests on S, then the write
              (DRAIN_WRITE_LATENCY = 7)
    pass      s: gather ROM   s+1: gather word   s+2: memory address   s+3: land the word
              s+4: max / permute   s+5: write
    im2col    s: gather ROM   s+1: gather word   s+2: input memory address   s+3: land
              s+4: shift a tap into the column's assembly register, or write one lane chunk of
              one plane of it to the column's im2col memory (its layer waits PASS_LATENCY like
              after any pass, a cycle more than it needs)
    output    request: score address   +1: the score word read   +2: landed   +3: the row's S,
              nfix and the constant registered   +4: acc = nfix - 2 S and the constant
              +5: both again (the multiplier's input register)   +6: their product
              +7, +8: registered twice more   +9: add   +10: beat valid (the score compared
              with the best so far)

Ports: ``i_pixel`` (uint8 stream, position-major, channel fastest), ``o_result`` (signed
32-bit stream: per output position, one score per class and then the class), ``busy``,
``done`` (one-cycle pulse after the last beat) and ``cycles`` (first input beat to last beat).
An image starts with its first input beat (no start strobe). ``trace_*`` mirror the
activation-memory write port so a testbench can locate the first wrong layer output.
"""
from __future__ import annotations

import functools
import operator
from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import exact_log2

from hwbin import arith
from hwbin import program as pg
from hwbin.program import value_bits as _width

from .array import PEArray
from .first_layer import FirstLayerEngine, carry_chain
from .pipeline import delay, held
from .resources import PARTS, memory_shapes, memory_style
from .sequencer_gen import RecordGenerator, generator_tables, table_layout as _layout
from .spram import Spram


def _pack(layout: data.StructLayout, row: dict) -> int:
    word = 0
    for name, fld in layout:
        v = int(row.get(name, 0))
        word |= (v & ((1 << fld.width) - 1)) << fld.offset
    return word


def _table(values, index, width=None):
    """A constant per-layer lookup: ``values[index]`` as a mux (the tables are tiny)."""
    width = width or _width(values)
    return Array([Const(int(v), width) for v in values])[index]


def _memory(shape, depth: int, init, style: str = "") -> memory.Memory:
    """A memory of at least two words: a one-word memory has a zero-width address, which
    Amaranth emits as a ``[-1:0]`` wire that Verilator's lint rejects (a model whose only layer
    is the last one has one threshold word; a classifier with R or fewer classes one score word).

    ``no_rw_check``: no memory here is read and written at the same address in the same cycle
    (a layer reads one activation region and writes the other; a layer starts only after the
    previous one's writes), so yosys need not add collision logic behind the block RAM's
    output, which was the design's longest path (block RAM output to an address compare).
    ``style`` "block" asks for block RAM even where a small memory would fit LUT RAM: a LUT
    RAM reads asynchronously, so an address coming from another block RAM's slow output would
    run through it into the next register in one cycle; "logic" keeps a shallow ROM out of
    block RAM on a part that has few (rtl/resources.py)."""
    attrs = {"no_rw_check": 1, **({"ram_style": style} if style else {})}
    return memory.Memory(shape=shape, depth=max(2, depth), init=init, attrs=attrs)


def step_offset(plane_base, j_c, cbase, lanes):
    """Where a step's L-bit slice starts in the word read for its column: the plane's first
    bit (plane times the word's plane stride), the tile's group channel base, lane chunk j_c.
    Works on integers (to list every offset a program can ask for) and on signals (the
    sequencer, which keeps ``plane_base`` as a running sum: no multiplier on the path)."""
    return plane_base + cbase + j_c * lanes


def slice_offsets(prog: pg.Program) -> list[int]:
    """Every slice offset the program's steps use, sorted: the slice is a mux over these few
    (a handful per model) instead of a barrel shifter over the whole word, which cost about
    3,000 LUT4s at 8x4x32."""
    offs = {0}
    L = prog.cfg.lanes
    for op in prog.ops:
        if op.kind != "compute" or op.src == pg.SRC_COL or op.engine != "array":
            continue
        stride = prog.in_channels if op.src == pg.SRC_INPUT else prog.wchan
        if prog.spram and op.src == pg.SRC_REGION:     # the lane chunk is a word: its address, not an offset
            offs.update(p * stride for p in range(op.K))
            continue
        for cbase in {prog.tiles[t]["cbase"] for t in op.tiles}:
            offs.update(step_offset(p * stride, j, cbase, L) for p in range(op.K) for j in range(op.J))
    return sorted(offs)


#: cycles from a step's gather ROM address to its landed memory words (``Top._fetch_front``)
FETCH_LATENCY = 4
#: cycles from a compute step's gather ROM address to its lane slices' OR (``Top._slices``): the
#: landed words are plain registers (on an ECP5 the block RAMs' output registers), and the
#: slices a step does not use are reset in a register of their own after them
SLICE_LATENCY = FETCH_LATENCY + 1
#: registers between a step's weight ROM address and the ROM's port (``Top.elaborate``)
WEIGHT_ADDR_REGS = 1
#: registers before and after the drain's block multipliers (program.DRAIN_WRITE_LATENCY counts them)
MUL_IN_REGS, MUL_OUT_REGS = 3, 2

#: a tile's fields, split by who reads them: the sequencer (the tile ROM, read a tile ahead)
#: and the drain (the drain ROM, read when it takes the tile; ``out`` is the tile's out word,
#: the destination of each column). Each ROM has one read port: an iCE40 block RAM has one,
#: so a ROM read by both would be stored twice (300 of 324 block RAMs at 2x1x8 on a UP5K).
TILE_FIELDS = ["kind", "layer", "wait", "last", "T", "gbase", "wbase", "cbase", "colbase", "thr", "nvalid", "gap", "load"]
DRAIN_FIELDS = ["kind", "layer", "rot", "rt", "nfix", "nvalid", "wen", "out"]


def tile_rom_rows(prog: pg.Program) -> tuple[list[dict], list[str]]:
    """The tile ROM's rows and fields: the tiles' fields and ``single`` (the tile has one step,
    last == 0), a bit stored rather than compared in the sequencer, where the tile register
    (a block RAM's output register) drives a tile's advance and the ROM's enable."""
    return [{**t, "single": int(t.get("last", 0) == 0)} for t in prog.tiles], TILE_FIELDS + ["single"]


def drain_fields(prog: pg.Program) -> list[str]:
    """The drain ROM's fields; with activations in SPRAM also the tile's word at its position
    and whether it completes that word (program._spram_check)."""
    return DRAIN_FIELDS + (["chunk", "wdone"] if prog.spram else [])


def word_addr(m: Module, chunk, pos, prog: pg.Program, name: str):
    """An activation word's address: the position, and in SPRAM mode its chunk in the low bits
    (program.Program.chunk_bits; ``chunk`` zero-extended, as a table's field may be narrower)."""
    if not prog.chunk_bits:
        return pos
    c = Signal(prog.chunk_bits, name=name)
    m.d.comb += c.eq(chunk)
    return Cat(c, pos)


def gather_words(prog: pg.Program) -> list[int]:
    """The gather ROM's words: per column its (address, flag) pair, ``addr_bits + 1`` bits each."""
    ab = prog.addr_bits
    return [sum(((a | (f << ab)) << (c * (ab + 1))) for c, (a, f) in enumerate(word)) for word in prog.gather]


def drain_rows(prog: pg.Program, gwords: list[int]) -> list[dict]:
    """The drain ROM's rows: a tile's drain fields with its out word (the gather word after
    its taps); zero for the passes and the END entry, which the drain never takes."""
    return [{**t, "out": gwords[t["gbase"] + t["T"]]} if t["kind"] in (pg.KIND_COMPUTE, pg.KIND_FIRST) and t.get("nvalid")
            else {} for t in prog.tiles]


def place_rows(rows, rot, R: int, gran: int, width: int):
    """A tile's R row bits at channels o0 .. o0+R-1 of a ``width``-channel plane: repeated
    every R channels and rotated by o0 mod R (``rot`` = (o0 mod R) / gran, o0 is a multiple of
    the write granularity), so no shifter is needed; the write enables keep only the tile's
    own granules."""
    options = [rows.rotate_left(i * gran) for i in range(R // gran)]
    rotated = Array(options)[rot] if len(options) > 1 else options[0]
    return Cat(*[rotated] * -(-width // R))[:width]


class Top(wiring.Component):
    """``spram_model``: the activations' SPRAMs (iCE40 SPRAM mode) as behavioural models, for
    Amaranth's simulator (rtl/spram.py); the Verilog has the primitives."""

    def __init__(self, prog: pg.Program, spram_model: bool = False):
        self.prog, self.spram_model = prog, spram_model
        # an iCE40's logic cell is a LUT4 and a flip-flop, and a logic block's flip-flops share
        # one set/reset: a few choices below differ there
        self.ice40 = bool(prog.cfg.part) and PARTS[prog.cfg.part].family == "ice40"
        super().__init__({
            "i_pixel": In(stream.Signature(8)),
            "o_result": Out(stream.Signature(signed(pg.OUT_BITS))),
            "busy": Out(1), "done": Out(1), "cycles": Out(32),
            # the activation-memory write bus, for the testbench's first-divergence trace
            "trace_addr": Out(prog.addr_bits + prog.chunk_bits), "trace_data": Out(prog.region_width),
            "trace_en": Out(prog.region_width // prog.gran),
        })

    # ------------------------------------------------------------------ memories
    def _memories(self, m: Module):
        p = self.prog
        cfg = p.cfg
        R, C, L = cfg.rows, cfg.cols, cfg.lanes
        style = {mem.name: memory_style(mem, cfg.part) for mem in memory_shapes(p)}
        rows, fields = tile_rom_rows(p)
        if style["tile_rom"] == "generator":
            rows, fields = p.tiles, TILE_FIELDS       # the generator's record (rtl/sequencer_gen.py)
        self.tile_layout = _layout(rows, fields)
        self.gw = p.addr_bits + 1
        gwords = gather_words(p)
        drows = drain_rows(p, gwords)
        self.drain_layout = _layout(drows, drain_fields(p))
        if style["tile_rom"] == "generator":
            # iCE40: the tile and drain tables from loop descriptors (rtl/sequencer_gen.py), not
            # block RAM: flat they took 57 of a UP5K's 30 block RAMs for digits-cnn at 4x1x16
            gens = {name: RecordGenerator(pg.compress_records(*table)) if table[0] else None
                    for name, table in generator_tables(p).items()}
            m.submodules.tile_gen = tile_rom = gens["tile"]
            drain_rom = gens["drain"]
            if drain_rom is not None:
                m.submodules.drain_gen = drain_rom
        else:
            # one more END entry: the sequencer reads a tile ahead of the one it runs
            m.submodules.tile_rom = tile_rom = _memory(
                shape=unsigned(self.tile_layout.size), depth=len(p.tiles) + 1,
                init=[_pack(self.tile_layout, t) for t in rows + rows[-1:]], style=style["tile_rom"])
            m.submodules.drain_rom = drain_rom = _memory(
                shape=unsigned(self.drain_layout.size), depth=len(drows),
                init=[_pack(self.drain_layout, d) for d in drows], style=style["drain_rom"])
        m.submodules.gather_rom = gather_rom = _memory(shape=unsigned(C * self.gw), depth=len(gwords), init=gwords,
                                                         style=style["gather_rom"])
        m.submodules.weight_rom = weight_rom = _memory(shape=unsigned(R * L), depth=len(p.weights),
                                                             init=p.weights or [0], style=style["weight_rom"])
        tb = p.thr_bits
        self.rw = p.nthr * tb + 1
        twords = []
        for rows in p.thresholds:
            word = 0
            for r, (thr, neg) in enumerate(rows):
                # W + 1 in [0, bound + 1]: the drain tests S >= W + 1 (not S <= W) in one carry chain
                row = sum((t + 1) << (j * tb) for j, t in enumerate(thr)) | (neg << (p.nthr * tb))
                word |= row << (r * self.rw)
            twords.append(word)
        self.thr_style = style["thr_rom"]
        m.submodules.thr_rom = thr_rom = _memory(shape=unsigned(R * self.rw), depth=len(twords), init=twords,
                                                   style=self.thr_style)
        self.in_mems, self.act_mems, self.col_mems = [], [], []
        for c in range(C):
            if p.col_depth:
                self.col_mems.append(_memory(shape=unsigned(L), depth=p.col_depth, init=[]))
                m.submodules[f"col_mem{c}"] = self.col_mems[-1]
            im = _memory(shape=unsigned(p.in_width), depth=p.in_positions, init=[], style=style["in_mem"])
            m.submodules[f"in_mem{c}"] = im
            self.in_mems.append(im)
            if p.spram:
                continue
            am = _memory(shape=unsigned(p.region_width), depth=2 * p.region_depth, init=[])
            m.submodules[f"act_mem{c}"] = am
            self.act_mems.append(am)
        # iCE40 SPRAM mode (C = 1): one SPRAM per region and plane (rtl/spram.py)
        self.sprams = [[Spram((2 * p.region_depth) << p.chunk_bits, self.spram_model) for _ in range(p.kmax)]
                       for _ in range(2)] \
            if p.spram else []
        for r, row in enumerate(self.sprams):
            for pl, sp in enumerate(row):
                m.submodules[f"act_spram{r * p.kmax + pl}"] = sp
        m.submodules.score_mem = score_mem = _memory(
            shape=unsigned(p.score_width), depth=p.out_positions * p.score_rows, init=[], style=style["score_mem"])
        return tile_rom, drain_rom, gather_rom, weight_rom, thr_rom, score_mem

    # ------------------------------------------------------------------ im2col
    def _im2col(self, m: Module, op: pg.Op, valid, step, pads, in_words, col_wps, waddr) -> None:
        """At s+4 of an im2col pass (``in_words``: the landed input-memory words): steps 0..T-1 shift a tap's channels (all K planes) into
        each column's assembly register, so tap t ends at lanes t*cin..; steps T.. write lane
        chunk j of plane k, j * K + k steps after the last tap, at the address the gather word
        carried."""
        cin, L, T = self.prog.in_channels, self.prog.cfg.lanes, op.taps
        width = op.J * L
        sel = Signal(range(max(2, op.J * op.K)), name="im2col_sel")
        m.d.comb += sel.eq(step - T)
        for c, (word, wp) in enumerate(zip(in_words, col_wps)):
            planes = [Signal(width, name=f"asm{c}_p{k}") for k in range(op.K)]
            with m.If(valid & (step < T)):
                for k, reg in enumerate(planes):
                    tap = Mux(pads[c], 0, word[k * cin:(k + 1) * cin])
                    m.d.sync += reg.eq(Cat(reg[cin:T * cin], tap))
            chunks = Array([planes[k][j * L:(j + 1) * L] for j in range(op.J) for k in range(op.K)])
            m.d.comb += [wp.addr.eq(waddr), wp.data.eq(chunks[sel]), wp.en.eq(valid & (step >= T))]

    # ------------------------------------------------------------------ first-layer engine
    def _first_layer_engine(self, m: Module, seq: Module, op: pg.Op, step, last, tile, t_c, land, weight_rp):
        """The engine (rtl/first_layer.py) and the late reads that feed it. Its sums must reach
        the drain exactly when an array tile's column would (COMPUTE_LATENCY + skew after the
        tile's last step), so rather than delay the sums, the engine's step stream is delayed:
        its gather and weight reads are issued k - FETCH_LATENCY - READ_AHEAD and k - 2 cycles
        after the step (the weight ROM's address is registered: ``WEIGHT_ADDR_REGS``), and it takes the step at k (nothing else reads those ports in the first
        layer). It reads the landed input words and their pad flags (``_fetch_front``)."""
        p = self.prog
        R, C, L = p.cfg.rows, p.cfg.cols, p.cfg.lanes
        lat = pg.COMPUTE_LATENCY + pg.drain_skew(p.cfg)
        taps = int(op.lanes_in // op.cin_g)
        ahead = FirstLayerEngine.READ_AHEAD
        fetch = FETCH_LATENCY + ahead
        stages = FirstLayerEngine.stages_for(taps * op.cin_g, C + lat - 1 - fetch)     # so that k >= fetch
        m.submodules.first_layer = engine = FirstLayerEngine(R, C, op.cin_g, taps, L, p.pe_bits, stages)
        k = C + lat - engine.LATENCY                  # the cycle after the step at which the engine takes it
        # the gather read (its shift follows); t_c < T is registered apart from the step, so
        # that the step (``issue``) and the compare are not one path
        if k > fetch:
            read_late = delay(seq, held(seq, step, "fl_read1") & held(seq, t_c < tile.T, "fl_tin"), k - fetch - 1, "fl_read")
        else:
            read_late = step & (t_c < tile.T)
        m.d.comb += [engine.shift.eq(delay(seq, read_late, fetch, "fl_shift")),
                     engine.pixels.eq(Cat(land["in"])),
                     engine.pads.eq(delay(seq, land["pads"], FETCH_LATENCY - 2, "fl_pads")),
                     engine.load.eq(delay(seq, step & last & tile.load, k, "fl_load")),
                     engine.col.eq(delay(seq, t_c, k, "fl_col")),
                     engine.weights.eq(weight_rp.data)]
        return {"read_late": read_late,
                "gather_late": delay(seq, tile.gbase + t_c, k - fetch, "fl_gaddr"),
                "col_late": delay(seq, step, k - 1 - WEIGHT_ADDR_REGS, "fl_step"),
                "weight_late": delay(seq, tile.wbase, k - 1 - WEIGHT_ADDR_REGS, "fl_waddr"),
                "sums": engine.sums}

    # ------------------------------------------------------------------ fetch
    def _fetch_front(self, fetch: Module, gather_rp, in_rps, act_rps, col_rps) -> dict:
        """The reads' first stages, shared by compute steps, passes, im2col and the engine.
        An ECP5 block RAM takes ~5.8 ns from clock to data (yosys does not use its output
        register), so each block RAM output here goes into one register and nowhere else,
        with no reset but the domain's, which the ECP5 core flow moves into the block's output
        register (synth.absorb_bram_output_registers): at s+1 the gather word is registered (it carries
        C addresses to 2C memories, a fan-out that costs ~3 ns of routing), at s+2 it
        addresses the memories, at s+3 each memory's word lands; everything else reads the
        landed words at s+4 (``FETCH_LATENCY`` after the gather ROM's address). Returns the
        gather word and pad flags (s+2) and the landed words per memory and column (s+4)."""
        p = self.prog
        gw, ab = self.gw, p.addr_bits
        gword = delay(fetch, gather_rp.data, 1, "gather_word")
        for c, (irp, arp) in enumerate(zip(in_rps, act_rps)):
            fetch.d.comb += [irp.addr.eq(gword[c * gw:c * gw + ab]), arp.addr.eq(gword[c * gw:c * gw + ab])]
        return {"gword": gword, "pads": Cat(gword[c * gw + ab] for c in range(p.cfg.cols)),
                **{name: [delay(fetch, rp.data, 1, f"{name}_land{c}") for c, rp in enumerate(rps)]
                   for name, rps in (("in", in_rps), ("act", act_rps), ("col", col_rps))}}

    def _slices(self, fetch: Module, land: dict, sources, offsets, last_lanes, step, src, off_index, last_chunk, layer):
        """At s+5 (``SLICE_LATENCY``), each column's L-bit slice of the landed word of its source
        memory, at the step's offset, lanes past the layer's last chunk masked, 0 for a pad.
        Where the offsets' slices do not overlap, no multiplexer: at s+4 each slice of the
        landed words is registered, and during an array step the ones that the step does not
        use are reset (a flip-flop's synchronous reset, decided at s+3 and registered), as are
        the masked lane groups and a pad's slice, and a column ORs its slices (1 LUT4 a bit for
        4 slices, not a 4:1 multiplexer's 3). The landed words themselves have no reset of their
        own, so that a block RAM's output register can be them (the resets were on the landing
        registers, one reset per lane group, which no block RAM port can take). Otherwise
        (grouped channel bases) a multiplexer over the offsets, then the mask."""
        p = self.prog
        C, L = p.cfg.cols, p.cfg.lanes
        names = {pg.SRC_REGION: "act", pg.SRC_COL: "col", pg.SRC_INPUT: "in"}
        acts = Signal(C * L)
        if all(b - a >= L for a, b in zip(offsets, offsets[1:])):
            bounds = sorted({0, L} | {n for n in last_lanes if 0 < n < L})
            groups = list(zip(bounds, bounds[1:]))       # lanes that a layer's mask keeps or drops together
            src2, off2, step2 = delay(fetch, src, 2, "src"), delay(fetch, off_index, 1, "off"), delay(fetch, step, 2, "st")
            step3 = delay(fetch, step2, 1, "st3")
            # whether the step at s+3 reads slice i of source sid: a register set a cycle ahead,
            # shared by the columns, so that a column's clear is one LUT4 (step, hit, pad, live)
            hits = {(sid, i): held(fetch, step2 & (src2 == sid) & (off2 == i), f"hit{sid}_{i}")
                    for sid in sources for i in range(len(offsets))}
            last3, layer3 = delay(fetch, last_chunk, 3, "lastj"), delay(fetch, layer, 3, "slayer")
            pads3 = delay(fetch, land["pads"], 1, "spads")
            live3 = [~last3 | _table([int(lo < n) for n in last_lanes], layer3, 1) for lo, _ in groups]
            for c in range(C):
                parts = []
                for sid in sources:
                    word = land[names[sid]][c]
                    for i, o in enumerate(offsets):
                        pieces = []
                        for g, (lo, hi) in enumerate(groups):
                            if o + lo >= len(word):
                                continue
                            keep = hits[sid, i] & ~pads3[c] & live3[g]
                            clear = held(fetch, step3 & ~keep, f"clear{c}_{sid}_{i}_{g}")
                            piece = held(fetch, word[o + lo:min(o + hi, len(word))], f"slice{c}_{sid}_{i}_{g}")
                            with fetch.If(clear):
                                fetch.d.sync += piece.eq(0)
                            pieces.append(piece)
                        part = Cat(*pieces)
                        parts.append(Cat(part, Const(0, L - len(part))) if len(part) < L else part)
                fetch.d.sync += acts[c * L:(c + 1) * L].eq(functools.reduce(operator.or_, parts))
            return acts
        pads = delay(fetch, land["pads"], 2, "pads")
        src4, off4 = delay(fetch, src, 4, "src"), delay(fetch, off_index, 3, "off")
        mask = Mux(last_chunk, _table([(1 << n) - 1 for n in last_lanes], layer, L), (1 << L) - 1)
        mask4 = delay(fetch, mask, 4, "mask")
        for c in range(C):
            word = Signal(max(p.in_width, p.region_width, L) + L, name=f"word{c}")
            chosen = 0
            for sid in sources:
                chosen = Mux(src4 == sid, land[names[sid]][c], chosen)
            fetch.d.comb += word.eq(chosen)
            fetch.d.sync += acts[c * L:(c + 1) * L].eq(Mux(pads[c], 0, Array(word[o:o + L] for o in offsets)[off4] & mask4))
        return delay(fetch, acts, SLICE_LATENCY - FETCH_LATENCY, "acts")        # as the other branch's

    def _spram_reads(self, fetch: Module, port, chunk) -> None:
        """SPRAM mode: the column's read port on the SPRAMs. At s+2 the address (a position,
        ``chunk`` the word there) goes to every SPRAM that does not write this cycle (a layer
        reads one region and writes the other, and the next layer waits for every write:
        program._early), at s+3 the read region's planes are the word (bit pl * wchan + c)."""
        p = self.prog
        self.spram_raddr = word_addr(fetch, chunk, port.addr, p, "spram_rchunk")
        region = Signal(name="spram_rregion")
        fetch.d.sync += region.eq(port.addr >= p.region_depth)
        words = [Cat(sp.rdata for sp in row) for row in self.sprams]
        fetch.d.comb += port.data.eq(Mux(region, words[1], words[0]))

    def _spram_writes(self, writes: Module, pass_write, pass_addr, pass_region, combined, ctx2: dict, lv_addr, lv_en,
                      level_word) -> None:
        """SPRAM mode: the SPRAMs' ports. A SPRAM writes whole words (its write mask is per
        nibble, not per channel), so a drained column's bits are merged into a register of the
        word (``wcombine``) by its granules, and the tile that completes the word (``wdone``;
        program._spram_check: a word's tiles come one after another) writes it, at the cycle
        the block RAM's write would be (no cycle changes). A pool pass writes whole words. A
        SPRAM that does not write reads (``_spram_reads``)."""
        p = self.prog
        w, gran = p.wchan, p.gran
        en = Signal(p.region_width // gran, name="wgranules")         # the tile's wen field, zero-extended
        writes.d.comb += en.eq(lv_en)
        bitmask = Cat(en[i].replicate(gran) for i in range(len(en)))
        wc = Signal(p.region_width, name="wcombine")
        merged = Signal(p.region_width, name="wmerged")
        writes.d.comb += merged.eq((wc & ~bitmask) | (level_word & bitmask))
        with writes.If(lv_en != 0):
            writes.d.sync += wc.eq(Mux(ctx2["wdone"], 0, merged))
        d_addr = Signal(p.addr_bits + p.chunk_bits, name="d_addr")
        d_data = Signal(p.region_width, name="d_data")
        d_we, d_region = Signal(name="d_we"), Signal(name="d_region")
        writes.d.sync += [d_addr.eq(word_addr(writes, ctx2["chunk"], lv_addr[:p.addr_bits], p, "d_chunk")),
                          d_data.eq(merged), d_we.eq((lv_en != 0) & ctx2["wdone"]), d_region.eq(ctx2["region"])]
        for r, row in enumerate(self.sprams):
            pw, dw = pass_write & (pass_region == r), d_we & (d_region == r)
            for pl, sp in enumerate(row):
                writes.d.comb += [sp.we.eq(pw | dw), sp.addr.eq(Mux(pw, pass_addr, Mux(dw, d_addr, self.spram_raddr))),
                                  sp.wdata.eq(Mux(pass_write, combined, d_data)[pl * w:(pl + 1) * w])]
        all_granules = (1 << (p.region_width // gran)) - 1
        writes.d.comb += [self.trace_addr.eq(Mux(pass_write, pass_addr, d_addr)),
                          self.trace_data.eq(Mux(pass_write, combined, d_data)),
                          self.trace_en.eq(Mux(pass_write | d_we, all_granules, 0))]

    def score_mul_width(self) -> int:
        """The score constants' width: a 32-bit factor took three block multipliers and a
        carry chain joining them, the longest path."""
        return arith.signed_width(max([abs(int(v)) for v in self.prog.score_mul], default=1))

    # ------------------------------------------------------------------ thresholds
    def _thresholds(self, drain: Module, thr_rp, thr_index, capture) -> Signal:
        """The R rows' threshold word of the tile the drain tests, one register of it: the
        ROM is read again for each tile (``thr_index``: its word, the cycle before capture)
        so that the word lands the cycle before the tile's first column is tested, instead
        of being read at capture and carried down the drain's stages beside the column (a
        wide word in flip-flops per stage: 2,400 FFs at 8x4x32). One register holds it, as the
        next tile's word lands only after this tile's last test: capture to capture is the
        tile's gap, at least its columns. A ROM in block RAM (``memory_style`` "block")
        lands in a register of its own (no block RAM output goes further than a register);
        elsewhere the read port's register is the only one (yosys puts a ROM of a few words
        in logic, where that register follows the LUTs)."""
        test = MUL_IN_REGS + MUL_OUT_REGS + 2          # capture to column 0's threshold tests
        land = self.thr_style == "block"
        read = test - 1 - int(land)                    # the ROM's read: capture + read, data at + read + 1
        drain.d.comb += [thr_rp.addr.eq(delay(drain, thr_index, read + 1, "thr_addr")),
                         thr_rp.en.eq(delay(drain, capture, read, "thr_read"))]
        if not land:
            return thr_rp.data
        # loaded every cycle, no reset: the port's data changes only a cycle after a read, so
        # this equals a load at the landing cycle, and on an ECP5 the block RAM's own output
        # register can be it (synth.absorb_bram_output_registers)
        word = Signal.like(thr_rp.data, name="thr_word", reset_less=True)
        drain.d.sync += word.eq(thr_rp.data)
        return word

    # ------------------------------------------------------------------ elaborate
    def elaborate(self, platform):
        m = Module()
        p = self.prog
        cfg = p.cfg
        R, C, L = cfg.rows, cfg.cols, cfg.lanes
        ops = p.ops
        tile_rom, drain_rom, gather_rom, weight_rom, thr_rom, score_mem = self._memories(m)

        def by_op(value, index, width=None):
            """A per-layer constant, indexed by a tile's layer (the END entry reads 0)."""
            return _table([value(op) for op in ops] + [0], index, width)

        def dst_region(layer):
            """Which activation region a layer writes (SPRAM mode: which SPRAMs)."""
            return by_op(lambda op: int(op.dst_base != 0), layer, 1)

        tile_rp, drain_rp = (rom.read_port() if isinstance(rom, memory.Memory) else rom for rom in (tile_rom, drain_rom))
        gather_rp = gather_rom.read_port()
        weight_rp = weight_rom.read_port()
        thr_rp = thr_rom.read_port()
        in_wps = [mem.write_port() for mem in self.in_mems]
        in_rps = [mem.read_port() for mem in self.in_mems]
        act_wps = [mem.write_port(granularity=p.gran) for mem in self.act_mems]
        act_rps = [mem.read_port() for mem in self.act_mems]
        if p.spram:
            # the SPRAMs' read side as one read port of the column: address (a position) at
            # s+2, data at s+3 (``_spram_reads``)
            act_rps = [SimpleNamespace(addr=Signal(p.addr_bits, name="act_raddr"),
                                       data=Signal(p.region_width, name="act_rdata"))]
        col_wps = [mem.write_port() for mem in self.col_mems]
        col_rps = [mem.read_port() for mem in self.col_mems]
        score_wp = score_mem.write_port()
        score_rp = score_mem.read_port()
        m.submodules.fetch = fetch = Module()
        land = self._fetch_front(fetch, gather_rp, in_rps, act_rps, col_rps)
        # the running tile is a register; the tile ROM's port holds the next one, so the
        # sequencer's decisions start from flip-flops, not from a block RAM's slow output. The
        # register takes the ROM's word and nothing else (no reset, no other value), so that
        # on an ECP5 the block RAM's own output register can be it (synth.absorb_bram_output_
        # registers): while the sequencer is not running, the ROM reads tile 0, then tile 1
        # while the register takes tile 0 (``prime``; an image's input takes >= 2 cycles)
        assert p.in_positions * p.in_channels >= 2, "the tile register is primed while the input loads"
        tile_reg = Signal(self.tile_layout.size, reset_less=True)
        tile = data.View(self.tile_layout, tile_reg)

        # ---------------------------------------------------------- state, loader, counter
        state = Signal(2)          # 0 idle, 1 load, 2 run, 3 output
        IDLE, LOAD, RUN, OUT = 0, 1, 2, 3
        m.d.comb += self.busy.eq(state != IDLE)
        cyc = Signal(32)
        done = Signal()
        m.d.sync += done.eq(0)
        m.d.comb += self.done.eq(done)
        with m.If(state != IDLE):
            m.d.sync += cyc.eq(cyc + 1)

        pix = self.i_pixel
        loading = (state == IDLE) | (state == LOAD)
        m.d.comb += pix.ready.eq(loading)
        cin = p.in_channels
        ch = Signal(range(max(2, cin)))
        pos = Signal(range(max(2, p.in_positions)))
        staging = Signal(p.in_width)
        planes_of_pixel = Signal(p.in_width)
        # bit (plane * cin + ch) of the input word = bit (7 - plane) of channel ch's pixel
        m.d.comb += planes_of_pixel.eq(staging)
        for pl in range(8):
            for c in range(cin):
                with m.If(ch == c):
                    m.d.comb += planes_of_pixel[pl * cin + c].eq(pix.payload[7 - pl])
        for wp in in_wps:
            m.d.comb += [wp.addr.eq(pos), wp.data.eq(planes_of_pixel),
                         wp.en.eq(pix.valid & loading & (ch == cin - 1))]
        with m.If(pix.valid & loading):
            m.d.sync += staging.eq(planes_of_pixel)
            with m.If(state == IDLE):
                m.d.sync += [state.eq(LOAD), cyc.eq(1)]
            with m.If(ch == cin - 1):
                m.d.sync += [ch.eq(0), pos.eq(pos + 1)]
                with m.If(pos == p.in_positions - 1):
                    m.d.sync += [state.eq(RUN), pos.eq(0)]
            with m.Else():
                m.d.sync += ch.eq(ch + 1)

        # ---------------------------------------------------------- sequencer (stage s)
        m.submodules.sequencer = seq = Module()
        idx = Signal(range(len(p.tiles) + 1))
        t_c = Signal(range(max(2, max([t.get("T", 0) for t in p.tiles] + [op.npos * op.window for op in ops]) + 1)))
        j_c = Signal(range(max(2, max([op.J for op in ops]) + 1)))
        p_c = Signal(range(9))
        plane_base = Signal(range(8 * max(cin, p.cpad) + 1))    # p_c times the plane stride
        wstep = Signal(range(max(2, len(p.weights) + 1)))
        wpass = Signal(range(max(2, max([op.window for op in ops]) + 1)))
        opass = Signal(range(max(2, max([op.npos for op in ops]) + 1)))
        pch = Signal(range(max(2, p.chunks)))          # a pool pass's chunk (SPRAM mode)
        skew = pg.drain_skew(cfg)
        drain_cd = Signal(range(max(cfg.cols, cfg.rows) + 2))
        flush_cd = Signal(range(cfg.cols + skew + pg.COMPUTE_LATENCY + pg.DRAIN_WRITE_LATENCY + pg.PASS_LATENCY + 2))
        # each countdown's "is 0" is a register of its own, set with the count (the sequencer's
        # decisions then start from flip-flops, not from a compare of a counter: ``issue``
        # drives every counter's enable, and at 16x8 it was the longest path)
        drain_z, flush_z = Signal(init=1), Signal(init=1)
        with seq.If(drain_cd != 0):
            seq.d.sync += [drain_cd.eq(drain_cd - 1), drain_z.eq(drain_cd == 1)]
        with seq.If(flush_cd != 0):
            seq.d.sync += [flush_cd.eq(flush_cd - 1), flush_z.eq(flush_cd == 1)]

        J = by_op(lambda op: op.J, tile.layer)
        src = by_op(lambda op: op.src, tile.layer)
        stride = Mux(src == pg.SRC_INPUT, cin, p.wchan)     # bits from one plane to the next in a word
        K = by_op(lambda op: op.K, tile.layer)
        window = by_op(lambda op: op.window, tile.layer)
        running = state == RUN
        # the flush countdown less one, but for a compute tile's columns (program.flush_cycles)
        flush0 = {id(op): pg.flush_cycles(p, op, {"nvalid": 0}) for op in ops}
        flush_base = by_op(lambda op: flush0[id(op)] - 1, tile.layer)
        # and where it loads 0 (flush_z is a register set with the count): a layer whose lead
        # exceeds its own latency has a base <= 0, so a compute tile of -base columns loads 0
        zero_at = by_op(lambda op: max(0, 1 - flush0[id(op)]), tile.layer)
        can_zero = by_op(lambda op: int(flush0[id(op)] <= 1), tile.layer, 1)
        is_first = tile.kind == pg.KIND_FIRST        # a first-layer engine tile (rtl/first_layer.py)
        is_compute = running & ((tile.kind == pg.KIND_COMPUTE) | is_first)
        is_pass = running & (tile.kind == pg.KIND_PASS)
        # steps left in the tile after this one, and whether this is the tile's first step
        # (on a tile's first step from the running tile's register, later from ``left``: no
        # path from the tile ROM's slow output through logic)
        left = Signal(range(max(t["last"] for t in p.tiles) + 1))
        left_z = Signal()               # left == 0, registered with it
        first_step = Signal(init=1)
        single = tile.single if "single" in self.tile_layout.members else tile.last == 0
        last_compute = last_pass = Mux(first_step, single, left_z)
        flush_ok = ~(tile.wait & first_step) | flush_z
        issue = Signal()
        pissue = Signal()
        seq.d.comb += [issue.eq(is_compute & flush_ok & (~last_compute | drain_z)),
                       pissue.eq(is_pass & flush_ok)]
        advance = (issue & last_compute) | (pissue & last_pass)
        if isinstance(tile_rp, RecordGenerator):
            # its register holds tiles[idx + 1] as the ROM's port does (restart = the read of
            # address 1); the tile register takes tile 0 as a constant while not running
            seq.d.comb += [tile_rp.restart.eq(~running), tile_rp.next.eq(advance)]
            with seq.If(~running):
                seq.d.sync += tile_reg.eq(_pack(self.tile_layout, p.tiles[0]))
            with seq.Elif(advance):
                seq.d.sync += tile_reg.eq(tile_rp.data)
        else:
            prime = Signal(range(3))
            with seq.If(running):
                seq.d.sync += prime.eq(0)
            with seq.Elif(prime != 2):
                seq.d.sync += prime.eq(prime + 1)
            seq.d.comb += [tile_rp.addr.eq(Mux(running, idx + 2, prime != 0)), tile_rp.en.eq(~running | advance)]
            # the tile ROM's output goes into the running tile's register and nowhere else
            with seq.If(advance | (~running & (prime == 1))):
                seq.d.sync += tile_reg.eq(tile_rp.data)
        with seq.If(~running):
            seq.d.sync += first_step.eq(1)
        with seq.Elif(issue | pissue):
            seq.d.sync += [left.eq(Mux(first_step, tile.last, left) - 1), left_z.eq(Mux(first_step, tile.last == 1, left == 1)),
                           first_step.eq(advance)]
        # step order: planes, then taps, then lane chunks (fastest); a weight word per (tap, chunk).
        # An array tile's "last chunk" (j_c == J - 1) and "last tap" (t_c == T - 1) are registers
        # set with the counters (j_end, t_end), from the tile's second step on (its first step
        # has j_c = t_c = 0: J == 1, T == 1): no adder and compare between the tile register
        # and the counters' enables (the longest path at 8x4x32 once the tile register was the
        # tile ROM's output register)
        j_end, t_end = Signal(), Signal()
        j_last = Mux(first_step, by_op(lambda op: int(op.J == 1), tile.layer, 1), j_end)
        t_last = Mux(first_step, tile.T == 1, t_end)
        with seq.If(issue):
            with seq.If(is_first):
                seq.d.sync += t_c.eq(t_c + 1)                        # an engine tile's steps: t_c
            with seq.Else():
                seq.d.sync += [j_c.eq(j_c + 1), wstep.eq(wstep + 1), j_end.eq(j_c + 2 == J), t_end.eq(t_last)]
                with seq.If(j_last):
                    seq.d.sync += [j_c.eq(0), t_c.eq(t_c + 1), j_end.eq(J == 1), t_end.eq(t_c + 2 == tile.T)]
                    with seq.If(t_last):
                        seq.d.sync += [t_c.eq(0), wstep.eq(0), p_c.eq(p_c + 1), plane_base.eq(plane_base + stride),
                                       t_end.eq(tile.T == 1)]
            with seq.If(last_compute):
                seq.d.sync += [t_c.eq(0), j_c.eq(0), p_c.eq(0), plane_base.eq(0), wstep.eq(0), drain_cd.eq(tile.gap - 1),
                               drain_z.eq(tile.gap == 1), flush_z.eq(can_zero & (tile.nvalid == zero_at)),
                               flush_cd.eq(tile.nvalid + flush_base)]
        with seq.If(pissue):
            seq.d.sync += [wpass.eq(wpass + 1), t_c.eq(t_c + 1)]
            with seq.If(wpass == window - 1):
                seq.d.sync += [wpass.eq(0), opass.eq(opass + 1)]
                if p.spram:
                    # a pool pass in SPRAM mode walks its windows once per chunk (program._compile_pass)
                    # (at an im2col pass's only wrap, its last step, ``last_pass`` below restarts it all)
                    with seq.If(opass == by_op(lambda op: max(0, op.npos - 1), tile.layer)):
                        seq.d.sync += [opass.eq(0), t_c.eq(0), pch.eq(pch + 1)]
            with seq.If(last_pass):
                seq.d.sync += [opass.eq(0), t_c.eq(0), flush_cd.eq(flush_base), flush_z.eq(can_zero)]
                if p.spram:
                    seq.d.sync += pch.eq(0)
        with seq.If(advance):
            seq.d.sync += idx.eq(idx + 1)
        go_out = running & (tile.kind == pg.KIND_END) & flush_z
        with seq.If(go_out):
            seq.d.sync += idx.eq(0)
        with m.If(go_out):
            m.d.sync += state.eq(OUT)

        gather_addr, weight_addr = tile.gbase + t_c, tile.wbase + wstep
        engine_op = next((op for op in ops if op.engine == "first"), None)
        if engine_op:
            engine = self._first_layer_engine(m, seq, engine_op, issue & is_first, last_compute, tile, t_c, land,
                                              weight_rp)
            gather_addr = Mux(engine["read_late"], engine["gather_late"], gather_addr)
            weight_addr = Mux(engine["col_late"], engine["weight_late"], weight_addr)
        # the weight ROM's address is registered: at 16x8x32 its word is 16 block RAMs spread
        # over the die, and the adder and the engine's multiplexer in front of that fan-out
        # were the longest path (9.6 ns on an 85F)
        seq.d.comb += [gather_rp.addr.eq(gather_addr),
                       weight_rp.addr.eq(delay(seq, weight_addr, WEIGHT_ADDR_REGS, "weight_addr"))]

        # per-step values, computed at s and carried down the pipeline
        offsets = slice_offsets(p)
        offset = Signal(range(max(8 * cin, p.kmax * p.cpad) + L + 1))
        # an im2col memory word is one lane chunk of one plane: the step picks the address instead
        step_off = step_offset(plane_base, j_c, tile.cbase, L)
        if p.spram:       # a region's lane chunk is a word: its address (``rchunk``), the offset its plane's
            step_off = Mux(src == pg.SRC_REGION, plane_base, step_off)
        seq.d.sync += offset.eq(Mux(src == pg.SRC_COL, 0, step_off))
        if p.spram:
            # the word a step reads at its position (a pass: its chunk), registered with the offset (s+1)
            rchunk = Signal(max(1, p.chunk_bits))
            seq.d.sync += rchunk.eq(Mux(tile.kind == pg.KIND_PASS, pch, (tile.cbase >> exact_log2(pg.SPRAM_WIDTH)) + j_c))
            self._spram_reads(fetch, act_rps[0], delay(seq, rchunk, 1, "rchunk"))
        off_index = Signal(range(max(2, len(offsets))))     # at s+1, from the offset registered at s
        for i, o in enumerate(offsets):
            with seq.If(offset == o):
                seq.d.comb += off_index.eq(i)
        im2col = next((op for op in ops if op.kind == "im2col"), None)
        # an im2col tile's word address comes from the tile and the step counters, all registers
        col_addr = delay(seq, tile.colbase + j_c * im2col.K + p_c, 2, "coladdr") if im2col else 0
        # lanes of a layer's last chunk (the engine's layer reads no slices: its lanes make no mask group)
        last_lanes = [op.lanes_in - (op.J - 1) * L if op.kind == "compute" and op.engine == "array" else L
                      for op in ops] + [L]
        # a plane's first step restarts the PEs' plane sum; Horner layers double it instead
        plane_start = (t_c == 0) & (j_c == 0)
        double = plane_start & (p_c != 0) & by_op(lambda op: int(op.horner), tile.layer)

        # ---------------------------------------------------------- s+4, s+5: source, slice, lane mask, pad
        # (the gather word and the landed words are registered in _fetch_front)
        for c in range(C):
            if im2col:
                fetch.d.comb += col_rps[c].addr.eq(col_addr)
        array_step = issue & ~is_first
        # only the memories some compute layer reads are in the select
        sources = sorted({op.src for op in ops if op.kind == "compute" and op.engine == "array"})
        acts = self._slices(fetch, land, sources, offsets, last_lanes, array_step, src, off_index, j_last, tile.layer)
        weights = delay(fetch, weight_rp.data, SLICE_LATENCY - WEIGHT_ADDR_REGS, "w")
        # ---------------------------------------------------------- s+6 .. s+9: the array (rtl/array.py)
        # Horner's rule in the PEs only where a layer on the array uses it (rtl/pe.py); an iCE40
        # keeps the multiplexer's restart: the other needs a second register of the plane sums,
        # and there a flip-flop costs a logic cell as a LUT4 does (digits-tiny 2x2x16 by yosys:
        # 1,932 LUT4s and 3,649 flip-flops with it, 1,973 and 3,571 without, 25 cells fewer)
        horner = (any(op.horner for op in ops if op.kind == "compute" and op.engine == "array")
                  or self.ice40)
        m.submodules.array = arr = PEArray(R, C, L, p.depth, p.pe_bits, horner)
        assert pg.COMPUTE_LATENCY == SLICE_LATENCY + PEArray.LATENCY, "program.COMPUTE_LATENCY must follow the pipeline"
        into = SLICE_LATENCY + 1
        fetch.d.comb += [arr.valid.eq(delay(fetch, array_step, into, "v")), arr.start.eq(delay(fetch, plane_start, into, "start")),
                         arr.double.eq(delay(fetch, double, into, "double")),
                         arr.last.eq(delay(fetch, array_step & last_compute, into, "last")),
                         arr.acts.eq(acts), arr.weights.eq(weights)]

        # ---------------------------------------------------------- s+8 + R-1: the drain
        m.submodules.drain = drain = Module()
        # the drain takes column c of a tile when its last row has the sums: the array's rows
        # are skewed, so skew = R - 1 cycles after row 0 (rtl/array.py)
        lat = pg.COMPUTE_LATENCY + skew
        # (an engine tile that only reads taps has no columns to drain)
        # a tile's last step, registered once and shared: the engine flag below joins it after
        # that register (from the tile register through issue and a kind compare into one
        # register was the longest path at 8x4x32)
        cap1 = held(drain, issue & last_compute & (tile.nvalid != 0), "cap1")
        early = delay(drain, cap1, lat - 2, "cap")
        capture = delay(drain, early, 1, "cap")
        D, W = p.depth, p.pe_bits
        if isinstance(drain_rp, RecordGenerator):
            # the generator's register already holds the next drained tile's row: taken at capture
            drain.d.comb += [drain_rp.restart.eq(~running), drain_rp.next.eq(capture)]
        elif drain_rp is not None:
            # the drain's context (tile, out word) is read the cycle before capture and registered
            # at capture, held while the next tile runs: no block RAM output in the drain
            drain.d.comb += [drain_rp.addr.eq(delay(drain, idx, lat - 1, "tidx")), drain_rp.en.eq(early)]
        drow = drain_rp.data if drain_rp is not None else Const(0, self.drain_layout.size)
        thr_word = self._thresholds(drain, thr_rp, delay(drain, tile.thr, lat - 1, "thr"), capture)
        # no reset on the drain ROM's landing registers (nothing reads them before a capture):
        # on an ECP5 the block RAM's output register is them (synth.absorb_bram_output_registers)
        dtile_reg = Signal(self.drain_layout.size, reset_less=True)
        out_word = Signal(C * self.gw, reset_less=True)
        dactive = Signal()
        dcol = Signal(range(max(2, C)))
        dtile = data.View(self.drain_layout, dtile_reg)
        with drain.If(capture):
            drain.d.sync += [dactive.eq(1), dcol.eq(0), dtile_reg.eq(drow),
                             out_word.eq(data.View(self.drain_layout, drow).out)]
        with drain.Elif(dactive):
            drain.d.sync += dcol.eq(dcol + 1)
            with drain.If(dcol == dtile.nvalid - 1):
                drain.d.sync += dactive.eq(0)
        sb, ab, n = p.s_bits, p.acc_bits, D * W
        # the column: each PE's sums go through a register of its own that holds them where the
        # drain takes that PE's column and resets to 0 elsewhere, and a row ORs its C registers
        # (a reset is free in a flip-flop; a C:1 multiplexer of the row's D sums is C - 1 LUT4s
        # a bit). An engine tile's column: its sums in each row's plane sum 0 (the others
        # weigh 0), the PEs' registers all reset
        # the gates' selects are registers, set a cycle ahead from the drain's next column and
        # tile kind (an engine tile's flag comes down the sequencer's delay line to capture,
        # not from the drain ROM's slow output): each drives R x D x W resets, which at 16 x 8
        # spread over the die (a select from logic was 92 MHz at 16x8x32 on an 85F)
        from_engine = (dtile.kind == pg.KIND_FIRST) if engine_op else Const(0, 1)
        cap_engine = delay(drain, cap1 & held(drain, is_first, "cap_first"), lat - 1, "cap_engine")
        engine_next, dcol_next = Signal(), Signal.like(dcol)
        drain.d.comb += [engine_next.eq(Mux(capture, cap_engine, from_engine)),
                         dcol_next.eq(Mux(capture, 0, Mux(dactive, dcol + 1, dcol)))]
        gated = []
        for c in range(C):
            take = Signal(name=f"take{c}")
            drain.d.sync += take.eq((dcol_next == c) & ~engine_next)
            gated.append([held(drain, Mux(take, arr.planes[(r * C + c) * n:(r * C + c + 1) * n], 0), f"dgate{r}_{c}")
                          for r in range(R)])
        col_planes = Cat(functools.reduce(operator.or_, (g[r] for g in gated)) for r in range(R))
        # an engine column is ORed in by the first register after the OR: a synchronous set per
        # bit (an ECP5 flip-flop's LSR, 0 LUT4s; a fifth input to the OR was a second LUT4 a
        # bit). An iCE40 logic block's eight flip-flops share one set/reset: there, the OR
        if engine_op:
            take_engine = held(drain, engine_next, "take_engine")
            eng = [held(drain, Mux(take_engine, engine["sums"][r * W:(r + 1) * W], 0), f"dgate{r}_engine")
                   for r in range(R)]
            if self.ice40:
                col_planes = col_planes | Cat(Cat(e, Const(0, n - W)) for e in eng)
            else:
                bits = []
                for i in range(R * n):
                    r, k = divmod(i, n)
                    # no reset but the set, to which its initial value is equal (yosys maps a
                    # set to an ECP5 flip-flop's LSR only then)
                    bit = Signal(name=f"dcolumn{r}_{k}", init=int(k < W), reset_less=True)
                    drain.d.sync += bit.eq(col_planes[i])
                    if k < W:
                        with drain.If(eng[r][k]):
                            drain.d.sync += bit.eq(1)
                    bits.append(bit)
                col_planes = Cat(*bits)
        first_regs = int(engine_op is not None and not self.ice40)
        out_pos = Array([out_word[c * self.gw:c * self.gw + p.addr_bits] for c in range(C)])[dcol]
        # the drained tile's per-layer constants, registers loaded at capture from the tile's
        # layer carried down from the sequencer (tables between registers): from the drain
        # tile's register through the tables into the context's resets was the longest path
        # at 16x8x32 on an 85F (9.7 ns, routed across the die)
        dlayer = delay(drain, tile.layer, lat, "dlayer")

        def layer_const(value, name):
            reg = Signal(_width([value(op) for op in ops] + [0]), name=name)
            with drain.If(capture):
                drain.d.sync += reg.eq(by_op(value, dlayer))
            return reg
        is_score = layer_const(lambda op: int(op.is_score), "d_is_score")
        dst_base = layer_const(lambda op: op.dst_base, "d_dst_base")
        kshift = layer_const(lambda op: p.kmax - op.k_out if op.kind == "compute" and not op.is_score else 0, "d_kshift")
        coefs = [layer_const(lambda op: op.coefs[i] if i < len(op.coefs) else 0, f"d_coef{i}") for i in range(D)]
        tb = p.thr_bits
        # drain stage 1: the column's plane sums times their bases, one multiplier per row and
        # plane (block multipliers, not LUTs); every stage registers the context the next one
        # needs, as the next tile's capture may replace the drain's while this tile's last
        # column is still in the pipeline
        # the column is registered twice before the multipliers and their products once after
        # (a block multiplier is 3.9 ns by itself: a register on each side, placed beside it,
        # keeps the routing to the array's far corners out of that cycle)
        assert pg.DRAIN_WRITE_LATENCY == MUL_IN_REGS + MUL_OUT_REGS + 2, "program.DRAIN_WRITE_LATENCY must follow the drain"
        # the first register: the gates (then the engine's set, where it is one)
        col_reg = delay(drain, col_planes, MUL_IN_REGS - 1 - first_regs, "dcolumn")
        coefs_reg = [delay(drain, c, MUL_IN_REGS, f"dcoef{i}") for i, c in enumerate(coefs)]
        operands = [[(col_reg[(r * D + i) * W:(r * D + i + 1) * W], coefs_reg[i]) for i in range(D)] for r in range(R)]
        # on an iCE40 (8 DSPs on a UP5K) the output unit's multiplier is row 0's first: the
        # output unit runs only after the last layer's writes, when the drain is idle
        self.out_mul = None
        if self.ice40 and p.score_mul:
            om = self.out_mul = {"on": Signal(name="out_mul_on"), "a": Signal(signed(ab), name="out_mul_a"),
                                 "b": Signal(signed(self.score_mul_width()), name="out_mul_b")}
            col, coef = operands[0][0]
            operands[0][0] = (Mux(om["on"], om["a"], col), Mux(om["on"], om["b"], coef))
        products = [[a * b for a, b in row] for row in operands]
        if self.out_mul:                 # one signal, so that both users take the one multiplier
            self.out_mul["prod"] = Signal(products[0][0].shape(), name="shared_prod")
            drain.d.comb += self.out_mul["prod"].eq(products[0][0])
            products[0][0] = self.out_mul["prod"]
        prods = [[delay(drain, products[r][i], MUL_OUT_REGS, f"prod{r}_{i}") for i in range(D)] for r in range(R)]
        ctx = {"kshift": kshift, "rot": dtile.rot, "nfix": dtile.nfix,
               "lv_addr": dst_base + out_pos, "lv_en": Mux(dactive & ~is_score, dtile.wen, 0),
               "sc_addr": out_pos * p.score_rows + dtile.rt, "sc_en": dactive & is_score}
        if p.spram:      # the tile's word at the position, whether it completes it, the region written
            ctx.update(chunk=dtile.chunk, wdone=dtile.wdone, region=dst_region(dtile.layer))
        ctx1 = {k: delay(drain, v, MUL_IN_REGS + MUL_OUT_REGS, f"d1_{k}") for k, v in ctx.items()}
        # drain stage 2: S = sum_k b_k pop_k per row. The thresholds are on S
        # (program.sum_thresholds): no d * acc is formed (two subtractions and a multiplexer
        # per row); where the last layer has scores, the R sums S and the tile's nfix are
        # written to the score memory, and the output unit forms acc = nfix - 2 S (program.Program.score_fields)
        sums = [Signal(sb, name=f"s{r}") for r in range(R)]
        drain.d.sync += [s_r.eq(sum(prods[r])) for r, s_r in enumerate(sums)]
        kshift2, rot2, lv_addr, lv_en, sc_addr, sc_en, nfix2 = (
            delay(drain, ctx1[k], 1, f"d2_{k}") for k in ("kshift", "rot", "lv_addr", "lv_en", "sc_addr", "sc_en", "nfix"))
        thr2 = thr_word
        # drain stage 3: c = #{j : S <= W_j}, the level c or, where the row flips, nthr - c =
        # c XOR nthr (program.sum_thresholds). The ROM holds W + 1, and a row's nthr tests
        # S >= W_j + 1 (= not S <= W_j) are one subtraction, side by side in one carry chain
        # (rtl/first_layer.py carry_chain: nextpnr adds two cells to every chain), so
        # c = nthr - #{S >= W_j + 1} and the level is #{S >= W_j + 1} XOR nthr where it does not flip
        plane_rows = [[] for _ in range(p.kmax)]
        for r, s_r in enumerate(sums):
            row = thr2[r * self.rw:(r + 1) * self.rw]
            level = Signal(range(p.nthr + 1), name=f"level{r}")
            width = max(sb, tb - 1) + 1
            tests = carry_chain(drain, [(s_r, row[j * tb:j * tb + tb - 1], 1, width, False) for j in range(p.nthr)],
                                f"thr{r}", subtract=True)
            count = sum(t[-1] for t in tests)
            drain.d.comb += level.eq(count ^ (~row[p.nthr * tb]).replicate(len(level)))
            lv = Signal(p.kmax, name=f"lv{r}")
            drain.d.comb += lv.eq(level << kshift2)
            for pl in range(p.kmax):
                plane_rows[pl].append(lv[p.kmax - 1 - pl])
        level_word = Cat(place_rows(Cat(*plane_rows[pl]), rot2, R, p.gran, p.wchan) for pl in range(p.kmax))

        # ---------------------------------------------------------- passes (s+4: combine, s+5: write)
        m.submodules.passes = passes = Module()
        # pool and shuffle: the word read lands at s+3 (_fetch_front), is combined at s+4 and written at s+5
        pv4, w_pass4, layer4 = (delay(passes, v, FETCH_LATENCY, f"p_{n}") for v, n in ((pissue, "valid"), (wpass, "w"),
                                                                                     (tile.layer, "layer")))
        o_pass4 = delay(passes, opass, FETCH_LATENCY, "opass")
        pch4 = delay(passes, pch, FETCH_LATENCY, "pch") if p.spram else None
        window4 = by_op(lambda op: op.window, layer4)
        pdst4 = by_op(lambda op: op.dst_base, layer4)
        mode4 = by_op(lambda op: {"shuffle": pg.PASS_SHUFFLE, "im2col": pg.PASS_IM2COL}.get(op.kind, pg.PASS_POOL),
                      layer4)
        sid4 = by_op(lambda op: op.shuffle_id, layer4)
        rdata = land["act"][0]
        run = Signal(p.region_width)
        combined = Signal(p.region_width)
        cmax = [Signal(p.kmax, name=f"cmax{c}") for c in range(p.wchan)]
        for c in range(p.wchan):
            lv_new = Cat(rdata[pl * p.wchan + c] for pl in reversed(range(p.kmax)))
            lv_run = Cat(run[pl * p.wchan + c] for pl in reversed(range(p.kmax)))
            passes.d.comb += cmax[c].eq(Mux(lv_new > lv_run, lv_new, lv_run))
        pooled = Cat(Cat(cmax[c][p.kmax - 1 - pl] for c in range(p.wchan)) for pl in range(p.kmax))
        shuffles = [op for op in ops if op.kind == "shuffle"]
        if shuffles:
            perms = []
            for op in shuffles:
                perm = list(op.perm) + list(range(len(op.perm), p.wchan))
                perms.append(Cat(Cat(rdata[pl * p.wchan + perm[c]] for c in range(p.wchan)) for pl in range(p.kmax)))
            shuffled = Array(perms)[sid4]
        else:
            shuffled = rdata
        passes.d.comb += combined.eq(Mux(mode4 == pg.PASS_SHUFFLE, shuffled, pooled))
        # the running max restarts at level 0, the least, after each window (a reset, free in a
        # flip-flop, rather than a window's first step selected against: a channel's max of
        # two 2-bit levels is then one LUT4 a bit)
        window_end = w_pass4 == window4 - 1
        with passes.If(pv4 & ~window_end):
            passes.d.sync += run.eq(combined)
        with passes.Else():
            passes.d.sync += run.eq(0)
        # the write is registered (s+5, PASS_LATENCY): the landed word, the combine LUT and
        # the writes' multiplexer into C memories' write data in one cycle was 10.7 ns at
        # 16x8x32 on an 85F, mostly routing across the die
        pass_write = held(passes, pv4 & window_end & (mode4 != pg.PASS_IM2COL), "pass_write")
        pass_data = held(passes, combined, "pass_data")
        pass_addr = held(passes, pdst4 + o_pass4, "pass_addr")
        if im2col:
            self._im2col(passes, im2col, pv4 & (layer4 == im2col.index), w_pass4, delay(passes, land["pads"], 2, "ipads"),
                         land["in"], col_wps, delay(passes, land["gword"][:p.addr_bits], 2, "colw"))

        # ---------------------------------------------------------- activation and score writes
        m.submodules.writes = writes = Module()
        # a drained column is written DRAIN_WRITE_LATENCY cycles after it is selected: the
        # register stages (above), then the memory's write
        d_addr = Signal(p.addr_bits)
        d_data = Signal(p.region_width)
        d_en = Signal(p.region_width // p.gran)
        writes.d.sync += [d_addr.eq(lv_addr), d_data.eq(level_word), d_en.eq(lv_en)]
        all_granules = (1 << (p.region_width // p.gran)) - 1
        for wp in act_wps:
            writes.d.comb += [wp.addr.eq(Mux(pass_write, pass_addr, d_addr)),
                         wp.data.eq(Mux(pass_write, pass_data, d_data)),
                         wp.en.eq(Mux(pass_write, all_granules, d_en))]
        if p.spram:
            # iCE40 SPRAM mode: no block RAM write port (the d_ registers above go unused); the
            # SPRAMs' ports and the trace
            # the pass's word address and region registered with its write (s+5)
            self._spram_writes(writes, pass_write,
                               held(passes, word_addr(passes, pch4, (pdst4 + o_pass4)[:p.addr_bits], p, "pass_chunk"),
                                    "pass_word_addr"),
                               held(passes, dst_region(layer4), "pass_region"), pass_data,
                               {k: delay(drain, ctx1[k], 1, f"d2_{k}") for k in ("chunk", "wdone", "region")},
                               lv_addr, lv_en, level_word)
        else:
            writes.d.comb += [self.trace_addr.eq(act_wps[0].addr), self.trace_data.eq(act_wps[0].data),
                              self.trace_en.eq(act_wps[0].en)]
        writes.d.sync += [score_wp.addr.eq(sc_addr), score_wp.data.eq(Cat(*sums, nfix2)),
                     score_wp.en.eq(sc_en)]

        # ---------------------------------------------------------- output unit
        m.submodules.output_unit = out = Module()
        o = self.o_result
        N = p.num_classes
        adv = ~o.valid | o.ready
        opos = Signal(range(max(2, p.out_positions)))
        ocls = Signal(range(N + 2))
        ort = Signal(range(max(2, p.score_rows)))
        orr = Signal(range(max(2, R)))
        req_done = Signal()
        vA = (state == OUT) & ~req_done
        out.d.comb += [score_rp.addr.eq(opos * p.score_rows + ort), score_rp.en.eq(adv)]
        is_class_a = ocls == N
        last_a = is_class_a & (opos == p.out_positions - 1)
        with out.If(vA & adv):
            with out.If(is_class_a):
                out.d.sync += [ocls.eq(0), ort.eq(0), orr.eq(0), opos.eq(opos + 1)]
                with out.If(last_a):
                    out.d.sync += [req_done.eq(1), opos.eq(0)]
            with out.Else():
                out.d.sync += [ocls.eq(ocls + 1), orr.eq(orr + 1)]
                with out.If(orr == R - 1):
                    out.d.sync += [orr.eq(0), ort.eq(ort + 1)]
        # the constants as narrow as their values (score_mul has SCORE_MUL_BITS): a 32-bit
        # factor took three block multipliers and a carry chain joining them, the longest path
        mw = self.score_mul_width()
        mul = Array([Const(v, signed(mw)) for v in p.score_mul] or [Const(0, signed(mw))])
        # the offsets, the score and the best so far as narrow as their values too (a 10 x
        # 32-bit table was about 100 LUT4s); a beat sign-extends the score to OUT_BITS
        top_add = max([abs(int(v)) for v in p.score_add], default=1)
        aw = arith.signed_width(top_add)
        sw = min(pg.OUT_BITS, arith.signed_width((1 << (ab - 1)) * max([abs(int(v)) for v in p.score_mul], default=1)
                                                 + top_add))
        add = Array([Const(v, signed(aw)) for v in p.score_add] or [Const(0, signed(aw))])

        def stage(name: str, values: dict) -> dict:
            """The next stage's registers; they move only when the beat can (``adv``)."""
            regs = {k: Signal(v.shape(), name=f"o{name}_{k}") for k, v in values.items()}
            with out.If(adv):
                out.d.sync += [regs[k].eq(v) for k, v in values.items()]
            return regs

        def ctl(st: dict) -> dict:
            return {k: st[k] for k in ("v", "cls", "cl", "last")}

        # request (A) -> B: the score word read -> L: the word landed -> C: the row's S and
        # nfix -> C2: acc and the constant -> C3: both again -> D: the product -> D2, D3:
        # again -> E: the score. The score word lands in a register of its own and no logic (in block RAM,
        # the block's output register: synth.absorb_bram_output_registers; the RAM's own
        # clock-to-data is ~5.8 ns). The block multiplier takes 3.9 ns by itself, so its
        # product passes a second register with that one load, which the placer can put
        # beside it (the output unit's DSP sits far from the score memory)
        b_ = stage("B", {"v": vA, "cls": ocls, "r": orr, "cl": is_class_a, "last": last_a})
        word = Signal(len(score_rp.data), name="oL_word", reset_less=True)
        with out.If(adv):
            out.d.sync += word.eq(score_rp.data)
        l_ = stage("L", {**ctl(b_), "r": b_["r"]})
        # the beat's row of the score word: per row a register that holds its sum S where the
        # beat's row is that row and resets to 0 elsewhere, ORed on the way into C2 (a reset is
        # free in a flip-flop; an R:1 multiplexer was ~R - 1 LUT4s a bit); then acc = nfix - 2 S.
        # Their reset is outside the enable, so that it is the flip-flop's (a reset that an enable gates
        # costs a LUT4 a bit)
        sbits, _ = p.score_fields
        picks = []
        for r in range(R):
            pick = Signal(sbits, name=f"oC_row{r}")
            with out.If(adv):
                out.d.sync += pick.eq(word[r * sbits:(r + 1) * sbits])
            with out.If(adv & (l_["r"] != r)):
                out.d.sync += pick.eq(0)
            picks.append(pick)
        c_ = stage("C", {**ctl(l_), "nfix": word[R * sbits:]})
        acc = Signal(signed(ab), name="oC_acc")
        out.d.comb += acc.eq(c_["nfix"] - (functools.reduce(operator.or_, picks) << 1))
        c_ = {**c_, "acc": acc}
        # acc and the constant pass two registers on their way into the block multiplier: the
        # second becomes its input register (synth), so the first keeps the pick and the
        # subtraction away from the DSP's pins (they were one path, 8.25 ns at 8x4x32)
        # (the constant is looked up from the class at C2, not carried from C: fewer flip-flops,
        # which on an iCE40 are logic cells)
        c2 = stage("C3", stage("C2", {**c_, "mul": mul[c_["cls"]]}))
        if self.out_mul:
            om = self.out_mul
            out.d.comb += [om["on"].eq(state == OUT), om["a"].eq(c2["acc"]), om["b"].eq(c2["mul"])]
            prod = om["prod"]
        else:
            prod = c2["acc"] * c2["mul"]
        d_ = stage("D", {**ctl(c2), "prod": prod})
        d2 = stage("D3", stage("D2", d_))
        # the score is registered before it is compared with the best so far: an add and a
        # compare of 32 bits in one cycle was the design's longest path
        e_ = stage("E", {**ctl(d2), "score": (d2["prod"] + add[d2["cls"]])[:sw].as_signed()})
        score = e_["score"]
        best, best_idx = Signal(signed(sw)), Signal(range(N + 1))
        olast = Signal()
        with out.If(adv):
            out.d.sync += [o.valid.eq(e_["v"]), olast.eq(e_["last"]), o.payload.eq(score)]
            with out.If(e_["v"] & ~e_["cl"] & ((e_["cls"] == 0) | (score > best))):
                out.d.sync += [best.eq(score), best_idx.eq(e_["cls"])]
        # the class beat: its reset outside the enable (a flip-flop's reset that an enable gates
        # costs a LUT4 a bit), so that only best_idx's few bits are a multiplexer
        with out.If(adv & e_["cl"]):
            out.d.sync += o.payload.eq(best_idx)
        image_done = o.valid & o.ready & olast
        with out.If(image_done):
            out.d.sync += req_done.eq(0)
        with m.If(image_done):
            m.d.sync += [done.eq(1), self.cycles.eq(cyc + 1), state.eq(IDLE)]
        return m
