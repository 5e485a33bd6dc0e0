"""The array program: how an IR runs on an R x C x L XNOR-popcount array, and on which cycle.

The gateware in ``rtl/`` is generic; everything that depends on the model is a table this
module compiles from the IR (weight ROM, gather ROM, tile table, threshold ROM, score
constants), using the golden model's own ``gather_plan`` and ``stride_phases`` so no back end
re-derives the packing. The cycle model replays the sequencer's rules on the same tables,
which is how the golden model knows the cycle of every output beat (``docs/hardware.md``).

The schedule, in one paragraph: the image streams into the input memory (one channel per
beat). Then the sequencer walks the tile table. A compute tile is R output channels by C
output positions of one layer; it issues K input planes x T taps x J lane chunks steps (lane
chunks fastest), one per cycle, each a C-wide read of the activation memories and an R-wide
weight word. A tile's plane sums are captured ``COMPUTE_LATENCY`` cycles after its last step
and drained one column per cycle (bases -> accumulators -> thresholds -> levels -> memory); the
last step of a tile waits until the
drain of the previous tile is done. Max pooling and channel shuffle are passes: one read per
cycle, one write per output position. A first layer with few input channels (one, for a grey
image) would use a lane or three of every lane chunk; an im2col pass first gathers each output
position's T taps x channels into lane chunks of a column memory (T reads, then J x K writes per
column tile), and the layer then runs as if it had one tap of T x channels inputs; a first conv
whose window fits L lanes runs on the first-layer engine instead (byte sums, one column a
cycle: ``_compile_first``, rtl/first_layer.py). The first tile of every layer waits until the previous
layer's writes are done, less a lead where its reads and writes cannot meet the writes still in
flight (``_early``). Then the output unit streams, per output position, one score per class
and then the class, one beat per cycle.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import arith, parts
from .errors import HwbinError
from .golden import gather_plan
from .ir import Layer, Model

#: Cycles from a compute step's issue to the drain taking its tile (its PE row 0 has the sums;
#: row r has them r cycles later, so the drain waits ``drain_skew`` more).
COMPUTE_LATENCY = 9
#: Cycles from the drain selecting a column to writing it (bases, accumulators, levels).
DRAIN_WRITE_LATENCY = 7
#: Cycles from a pass step's issue to its memory write.
PASS_LATENCY = 5
#: Cycles from an output request to its beat being valid.
OUTPUT_LATENCY = 10
#: Bits of an output beat (a signed score or a class index).
OUT_BITS = 32
#: Activations in single-port RAM (iCE40 UP5K: four SB_SPRAM256KA, 16k x 16, no init): one
#: SPRAM per (region, plane), a word = ``SPRAM_WIDTH`` channels of one plane at one position,
#: address ``pos << chunk_bits | chunk`` (``Program.spram``, ``_spram_check``).
SPRAM_PARTS = {name: part.sprams for name, part in parts.PARTS.items() if part.sprams}
SPRAM_WIDTH, SPRAM_DEPTH = 16, 16384

KIND_COMPUTE, KIND_PASS, KIND_END, KIND_FIRST = 0, 1, 2, 3
PASS_POOL, PASS_SHUFFLE, PASS_IM2COL = 0, 1, 2
SRC_INPUT, SRC_REGION, SRC_COL = 0, 1, 2


#: The parts whose memories the gateware can be shaped for ("": none; hwbin/parts.py)
PARTS = ("", *parts.PARTS)

#: The array sizes hwbin builds (what --rows, --cols and --lanes accept).
ARRAY_LIMITS = {"rows": (1, 256), "cols": (1, 256), "lanes": (1, 512)}


class ConfigError(HwbinError):
    """A model that an array configuration cannot run, found before any Verilog is written."""


def drain_skew(cfg: "ArrayConfig") -> int:
    """Cycles the drain waits for the systolic array's last row: R - 1 (rtl/array.py)."""
    return cfg.rows - 1


@dataclass(frozen=True)
class ArrayConfig:
    rows: int = 8        # R: output channels computed at once
    cols: int = 4        # C: output positions computed at once
    lanes: int = 32      # L: bits of one XNOR-popcount per PE per cycle
    clock_mhz: float = 100.0
    part: str = ""       # the FPGA part the memories are shaped for (rtl/resources.py); "" any

    def check(self) -> None:
        for name, (lo, hi) in ARRAY_LIMITS.items():
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ConfigError(f"array config: --{name} must be an integer in [{lo}, {hi}], found {v!r}")
        if isinstance(self.clock_mhz, bool) or not isinstance(self.clock_mhz, (int, float)) \
                or not 0 < self.clock_mhz <= 10_000:
            raise ConfigError(f"array config: --clock-mhz must be a number in (0, 10000], found {self.clock_mhz!r}")
        if self.part not in PARTS:
            raise ConfigError(f"array config: part must be one of {', '.join(p for p in PARTS if p)}, found {self.part!r}")

    def label(self) -> str:
        return f"{self.rows}x{self.cols}x{self.lanes}"


@dataclass
class Op:
    """One step of the sequencer's program (a layer, or the im2col pass before the first), with
    its constants. ``index`` is the op's place in ``Program.ops``; an im2col pass shares its
    layer with the compute op after it."""
    index: int
    layer: Layer
    kind: str                 # "compute", "pool", "shuffle", "im2col"
    src: int = SRC_REGION     # SRC_INPUT, SRC_REGION or SRC_COL (the im2col column memory)
    src_base: int = 0
    dst_base: int = 0         # region base (levels) or 0 (scores)
    is_score: bool = False
    # compute constants
    J: int = 0
    K: int = 0
    cin_g: int = 0
    lanes_in: int = 0         # inputs of one tap's lane chunks: cin_g, or T x cin_g after im2col
    coefs: tuple = ()         # the drain's multiplier per PE plane sum: plane sum i is plane K-1-i
    horner: bool = False      # planes weighted in the PE by Horner's rule (bases halve: the uint8 input)
    engine: str = "array"     # "array" (the PE array) or "first" (the first-layer engine, rtl/first_layer.py)
    k_out: int = 0            # planes of the activation this op writes (0: scores)
    rows_per_tile: int = 0
    # pass constants (an im2col pass: npos column tiles of window T + J x K steps)
    taps: int = 0
    npos: int = 0
    window: int = 0
    perm: tuple = ()
    shuffle_id: int = 0
    # cycles the next layer's first step may lead this layer's last write (``_early``)
    lead: int = 0
    # a pool pass's steps per window position: its lane chunks with activations in SPRAM
    chunks: int = 1
    tiles: list = field(default_factory=list)


@dataclass
class Program:
    model: Model
    cfg: ArrayConfig
    ops: list[Op]
    tiles: list[dict]
    weights: list[int]        # R*L-bit words; row r lanes at bits r*L .. r*L+L-1
    gather: list[list[tuple[int, int]]]   # words of C (address, flag) pairs
    thresholds: list[list[tuple[list[int], int]]]  # words of R (S thresholds, flip) rows: sum_thresholds
    score_mul: list[int]
    score_add: list[int]
    # geometry
    in_channels: int
    in_positions: int
    in_width: int             # bits of an input memory word: 8 planes x channels
    cpad: int                 # channels of an activation word (per plane)
    kmax: int                 # planes of an activation word
    region_depth: int         # positions per region (two regions: ping and pong)
    gran: int                 # write granularity of the activation memory (channels)
    out_positions: int
    num_classes: int
    score_rows: int           # RT: row tiles of the last layer
    depth: int                # D: plane sums per PE
    pe_bits: int              # bits of one PE plane sum
    s_bits: int               # unsigned weighted sum of a column's plane sums (the drain)
    acc_bits: int             # signed accumulator after the fix-up
    thr_bits: int
    nthr: int
    col_depth: int = 0        # words of each column's im2col memory (0: no im2col pass)
    spram: bool = False       # activations in SPRAM words of SPRAM_WIDTH channels (``SPRAM_PARTS``)

    @property
    def wchan(self) -> int:
        """Channels of one plane in an activation word: all of them (cpad), or a SPRAM word's."""
        return SPRAM_WIDTH if self.spram else self.cpad

    @property
    def chunks(self) -> int:
        """Words per position and plane (1 but in SPRAM mode)."""
        return math.ceil(self.cpad / self.wchan)

    @property
    def chunk_bits(self) -> int:
        """Low address bits of an activation word that select its chunk (SPRAM mode)."""
        return (self.chunks - 1).bit_length()

    @property
    def region_width(self) -> int:
        return self.kmax * self.wchan

    @property
    def addr_bits(self) -> int:
        return max(1, (max(2 * self.region_depth, self.in_positions, self.col_depth,
                           self.out_positions * self.score_rows) - 1).bit_length())

    @property
    def out_beats(self) -> int:
        return self.out_positions * (self.num_classes + 1)

    def memory_bits(self) -> dict:
        c = self.cfg.cols
        return {"weight_rom": len(self.weights) * self.cfg.rows * self.cfg.lanes,
                "input_buffer": c * self.in_positions * self.in_width,
                "im2col_buffer": c * self.col_depth * self.cfg.lanes,
                "activation_buffers": c * 2 * self.region_depth * self.chunks * self.region_width,
                "score_buffer": self.out_positions * self.score_rows * self.score_width}

    @property
    def score_fields(self) -> tuple[int, int]:
        """A score memory word's fields (rtl/top.py): the R rows' sums S (``s_bits`` each),
        then their tile's fix-up nfix (this many bits). The output unit forms acc = nfix - 2 S
        for the one score a beat reads: one subtraction, not one per row in the drain."""
        return self.s_bits, value_bits(t.get("nfix", 0) for t in self.tiles)

    @property
    def score_width(self) -> int:
        """Bits of a score memory word."""
        sb, nb = self.score_fields
        return self.cfg.rows * sb + nb


# --------------------------------------------------------------------------- compile

def pe_depth(ops: list) -> int:
    """D, the plane sums each PE keeps: the most input planes of a layer that reads a previous
    layer's levels (the activation order). The input layer's 8 pixel planes do not count: it
    uses Horner's rule instead (see rtl/pe.py)."""
    return max([op.K for op in ops if op.kind == "compute" and op.src == SRC_REGION and op.engine == "array"],
               default=1)


def _plane_weights(op: Op, depth: int) -> None:
    """How the drain weights a PE's plane sums: plane sum i holds plane K-1-i (times base b_k),
    or, with more planes than the PE keeps, all planes by Horner's rule, which needs each base
    to be twice the next (true of the uint8 input's 128 .. 1)."""
    b = op.layer.in_bases
    op.horner = op.K > depth or op.engine == "first"     # the engine weights by Horner's rule too
    if op.horner:
        if any(b[k] != 2 * b[k + 1] for k in range(op.K - 1)):
            raise ConfigError(f"layer '{op.layer.name}' field 'in_bases': {op.K} planes need each base twice the "
                              f"next (the PE keeps {depth} plane sums), found {list(b)}")
        op.coefs = (b[-1],)
    else:
        op.coefs = tuple(b[op.K - 1 - i] for i in range(op.K))


def _im2col_taps(layer: Layer, cfg: ArrayConfig) -> int:
    """Taps of a first layer worth an im2col pass (fewer lane chunks per output), else 0.
    Transposed and grouped convolutions keep the tap-by-tap schedule."""
    if layer.kind not in ("conv", "dense") or (layer.kind == "conv" and layer.groups != 1):
        return 0
    T = len(gather_plan(layer)[0].taps)
    cin = layer.in_shape[0]
    return T if T > 1 and math.ceil(T * cin / cfg.lanes) < T * math.ceil(cin / cfg.lanes) else 0


def _first_engine_fits(layer: Layer, taps: int, cfg: ArrayConfig) -> bool:
    """Whether the first layer runs on the first-layer engine (rtl/first_layer.py) rather than
    an im2col pass and the PE array: a conv whose window (taps x channels pixels) fits one
    weight word's lanes, as a grey or colour image's 3x3 or 5x5 first conv does. A dense first
    layer (a window of the whole image) keeps the im2col pass: its byte adder would be as wide
    as the image."""
    return layer.kind == "conv" and taps * layer.in_shape[0] <= cfg.lanes


def _compute_op(index: int, layer: Layer, cfg: ArrayConfig, im2col_taps: int) -> Op:
    op = Op(index, layer, "compute")
    g = 1 if layer.kind == "dense" else layer.groups
    op.cin_g = layer.in_shape[0] // g
    op.lanes_in = op.cin_g * max(1, im2col_taps)
    op.J = math.ceil(op.lanes_in / cfg.lanes)
    op.K = layer.in_order
    op.is_score = layer.output == "scores"
    op.k_out = 0 if op.is_score else layer.out_order
    op.rows_per_tile = min(cfg.rows, layer.out_shape[0] // g)
    if op.is_score and g != 1:
        raise ConfigError(f"layer '{layer.name}': the last layer must not be grouped "
                          f"(groups {g}); the output unit reads whole rows of classes")
    return op


def _ops(model: Model, cfg: ArrayConfig) -> list[Op]:
    ops = []
    shuffles = 0
    for i, layer in enumerate(model.layers):
        kind = {"maxpool": "pool", "shuffle": "shuffle"}.get(layer.kind, "compute")
        if kind == "compute":
            taps = _im2col_taps(layer, cfg) if i == 0 else 0
            if taps and _first_engine_fits(layer, taps, cfg):
                op = _compute_op(len(ops), layer, cfg, taps)
                op.engine, op.src = "first", SRC_INPUT
                ops.append(op)
                continue
            op = _compute_op(len(ops) + bool(taps), layer, cfg, taps)
            if taps:
                ops.append(Op(len(ops), layer, "im2col", src=SRC_INPUT, J=op.J, K=op.K, taps=taps,
                              npos=math.ceil(layer.out_shape[1] * layer.out_shape[2] / cfg.cols),
                              window=taps + op.J * op.K))
                op.src = SRC_COL
        elif kind == "pool":
            op = Op(len(ops), layer, kind)
            op.k_out = ops[-1].k_out          # a pass keeps the planes of the layer before it
            op.npos = layer.out_shape[1] * layer.out_shape[2]
            op.window = layer.kernel[0] * layer.kernel[1]
        else:
            op = Op(len(ops), layer, kind)
            op.k_out = ops[-1].k_out
            op.npos = layer.in_shape[1] * layer.in_shape[2]
            op.window = 1
            op.perm = tuple(int(p) for p in layer.arrays["perm"])
            op.shuffle_id = shuffles
            shuffles += 1
        ops.append(op)
    return ops


def compile_program(model: Model, cfg: ArrayConfig | None = None) -> Program:
    """Compile an IR into the tables the gateware runs; ConfigError if it cannot run. On a part
    with SPRAMs (``SPRAM_PARTS``) the activations go to SPRAM where the program allows it
    (``_spram_check``), else to block RAM as elsewhere."""
    cfg = cfg or ArrayConfig()
    cfg.check()
    if cfg.part in SPRAM_PARTS and cfg.lanes == SPRAM_WIDTH and cfg.cols == 1:
        prog = _compile(model, cfg, spram=True)
        if _spram_check(prog):
            return prog
    return _compile(model, cfg, spram=False)


def _compile(model: Model, cfg: ArrayConfig, spram: bool) -> Program:
    R = cfg.rows
    ops = _ops(model, cfg)
    # Geometry of the memories.
    cin, h0, w0 = model.input_shape
    mids = [op.layer.out_shape for op in ops[:-1]]        # activations held in the regions
    levels_ops = [op for op in ops if op.kind == "compute" and not op.is_score]
    gran = R
    for op in levels_ops:
        gran = math.gcd(gran, op.layer.out_shape[0] // (1 if op.layer.kind == "dense" else op.layer.groups))
    cmax = max([s[0] for s in mids], default=1)
    cpad = math.ceil(cmax / gran) * gran
    kmax = max([op.k_out for op in levels_ops], default=1)
    region_depth = max([s[1] * s[2] for s in mids], default=1)
    last = ops[-1].layer
    out_positions = last.out_shape[1] * last.out_shape[2]
    num_classes = last.out_shape[0]
    score_rows = math.ceil(num_classes / R)
    # Sources and destinations: input memory (or the im2col memory), then regions 0 and 1
    # alternately; the im2col pass writes only its own memory.
    region, src = 0, SRC_INPUT
    for op in ops:
        if op.kind == "im2col":
            src = SRC_COL
            continue
        op.src = src
        op.src_base = (1 - region) * region_depth if src == SRC_REGION else 0
        op.dst_base = region * region_depth
        region, src = 1 - region, SRC_REGION
    col_depth = sum(op.npos * op.J * op.K for op in ops if op.kind == "im2col")
    prog = Program(model, cfg, ops, [], [], [], [], [], [], in_channels=cin, in_positions=h0 * w0,
                   in_width=8 * cin, cpad=cpad, kmax=kmax, region_depth=region_depth, gran=gran,
                   out_positions=out_positions, num_classes=num_classes, score_rows=score_rows,
                   depth=pe_depth(ops), pe_bits=1, s_bits=1, acc_bits=2, thr_bits=2, nthr=1,
                   col_depth=col_depth, spram=spram)
    bound_max = pe_max = 1
    for op in ops:
        if op.kind == "compute":
            _plane_weights(op, prog.depth)
            bound, plane_bound = (_compile_first if op.engine == "first" else _compile_compute)(prog, op)
            bound_max = max(bound_max, bound)
            pe_max = max(pe_max, plane_bound * ((1 << op.K) - 1 if op.horner else 1))
        else:
            _compile_pass(prog, op)
    _compile_flush(prog)
    prog.tiles.append({"kind": KIND_END, "layer": len(ops), "wait": 1, "last": 0})
    prog.pe_bits = pe_max.bit_length()
    prog.s_bits = max(1, bound_max.bit_length())
    prog.acc_bits = arith.signed_width(bound_max)
    prog.thr_bits = arith.signed_width(bound_max + 1)
    _compile_thresholds(prog, bound_max)
    if last.output == "scores":
        prog.score_mul = [int(v) for v in last.arrays["score_mul"]]
        prog.score_add = [int(v) for v in last.arrays["score_add"]]
    return prog


def _spram_check(prog: Program) -> bool:
    """Whether a program compiled for SPRAM (``prog.spram``) can run so, and each drained
    tile's ``wdone``. A SPRAM has one port and 4-bit write masks, so the drain does not write
    a tile's R bits into a word: it gathers a word's bits in a register over the tiles that
    write it, which must come one after another, and writes the word with the last
    (``wdone``). A compute step's lane chunk must be a word (channel bases on word bounds; the
    array has one column, C = 1), a tile's rows inside one word, a pass a pool (a shuffle
    moves channels across words), one SPRAM per region and plane."""
    w = prog.wchan
    if (2 * prog.kmax > SPRAM_PARTS[prog.cfg.part] or w % prog.gran
            or ((2 * prog.region_depth) << prog.chunk_bits) > SPRAM_DEPTH):
        return False
    done, last_key = set(), None
    drained = []
    for op in prog.ops:
        if op.kind == "shuffle":
            return False
        if op.kind != "compute" or op.is_score:
            continue
        for ti in op.tiles:
            t = prog.tiles[ti]
            if op.src == SRC_REGION and t["cbase"] % w:
                return False
            if not t.get("nvalid"):
                continue
            rows = min(prog.cfg.rows, op.layer.out_shape[0] - t["o0"])
            if t["o0"] // w != (t["o0"] + rows - 1) // w:
                return False
            key = (op.index, prog.gather[t["gbase"] + t["T"]][0][0], t["chunk"])
            if key != last_key:
                if key in done:
                    return False
                done.add(key)
                if drained:
                    drained[-1]["wdone"] = 1
            last_key = key
            drained.append(t)
    if drained:
        drained[-1]["wdone"] = 1
    return True


def bits_to_int(bits) -> int:
    """Bit i of the result is ``bits[i]``: the contract's packing order, as one integer."""
    return int.from_bytes(np.packbits(np.asarray(bits, np.uint8), bitorder="little").tobytes(), "little")


def _weight_block(op: Op, phase, g: int, rt: int, R: int, L: int) -> list[int]:
    """T x J weight words of one (phase, group, row tile): word t*J + j, row r, lane l."""
    layer = op.layer
    cout = layer.out_shape[0]
    groups = 1 if layer.kind == "dense" else layer.groups
    og = cout // groups
    w = layer.arrays["weight"]
    if layer.kind == "dense":
        w = w.reshape(cout, layer.in_shape[0], -1)         # taps are input positions
        taps = [w[:, :, t] for t in range(w.shape[2])]
    else:
        taps = [w[:, :, ky, kx] for ky, kx in phase.taps]   # (cout, cin_g) per tap
    if op.src == SRC_COL or op.engine == "first":
        taps = [np.concatenate(taps, axis=1)]               # one tap: lane t * cin + ch
    words = []
    for tap in taps:
        for j in range(op.J):
            word = 0
            for r in range(R):
                o_in = rt * R + r
                if o_in >= og:
                    continue
                lanes = tap[g * og + o_in, j * L:min((j + 1) * L, op.lanes_in)]
                word |= bits_to_int(lanes) << (r * L)
            words.append(word)
    return words


def _compile_compute(prog: Program, op: Op) -> tuple[int, int]:
    """Tiles, weight words and gather words of one compute layer; returns its |acc| bound and
    the most disagreements one plane of one output can have."""
    cfg = prog.cfg
    R, C, L = cfg.rows, cfg.cols, cfg.lanes
    layer = op.layer
    groups = 1 if layer.kind == "dense" else layer.groups
    og = layer.out_shape[0] // groups
    rts = math.ceil(og / R)
    _, h, w = layer.in_shape
    bsum = sum(layer.in_bases)
    bound = plane_bound = 0
    first = True
    for phase in gather_plan(layer):
        T = len(phase.taps)
        n = T * op.cin_g
        bound = max(bound, bsum * n)
        plane_bound = max(plane_bound, n)
        wblocks = {}
        for g in range(groups):
            for rt in range(rts):
                wblocks[g, rt] = len(prog.weights)
                prog.weights.extend(_weight_block(op, phase, g, rt, R, L))
        for c0 in range(0, len(phase.out_pos), C):
            cols = phase.out_pos[c0:c0 + C]
            gbase = len(prog.gather)
            taps = 1 if op.src == SRC_COL else T       # steps' taps: one after im2col
            colbase = c0 // C * op.J * op.K if op.src == SRC_COL else 0   # im2col words of this tile
            if op.src == SRC_COL:       # one word, for its pad bits (the top reads colbase from the tile)
                prog.gather.append([(colbase, int(c >= len(cols))) for c in range(C)])
            else:
                prog.gather.extend(_tap_word(phase, c0, t, C, h * w, op.src_base) for t in range(T))
            # the out word: destination address per column (levels) or position (scores)
            prog.gather.append([(int(cols[c]) if c < len(cols) else 0, 0) for c in range(C)])
            for g in range(groups):
                for rt in range(rts):
                    o0 = g * og + rt * R
                    tile = {"kind": KIND_COMPUTE, "layer": op.index, "wait": int(first),
                            "T": taps, "last": taps * op.J * op.K - 1,
                            "gbase": gbase, "wbase": wblocks[g, rt], "cbase": g * op.cin_g, "colbase": colbase,
                            "o0": o0, "rot": o0 % prog.wchan % R // prog.gran, "rt": rt, "thr": 0, "nfix": bsum * n, "nvalid": len(cols),
                            "gap": _drain_gap(len(cols), cfg), **_chunk(prog, o0),
                            "wen": _write_enables(prog, op, o0, min(R, og - rt * R))}
                    first = False
                    op.tiles.append(len(prog.tiles))
                    prog.tiles.append(tile)
    return bound, plane_bound


def _compile_first(prog: Program, op: Op) -> tuple[int, int]:
    """Tiles of the first-layer engine (rtl/first_layer.py): per group of C output positions,
    one tile per row tile of C steps, step c computing column c's R sums from the windows
    held for the group. While a group's tiles run, their steps read the next group's T taps
    into the assembly registers (up to C reads a tile, C - 1 in the group's last: its last
    step loads the windows, so every read must be in by then); taps left over go to an
    assembly tile of their own (reads + 1 steps, no outputs), as do group 0's taps before the
    first tile. Returns the |acc| bound and the most disagreements of one plane."""
    cfg = prog.cfg
    R, C = cfg.rows, cfg.cols
    layer = op.layer
    _, h, w = layer.in_shape
    phase = gather_plan(layer)[0]
    T = len(phase.taps)
    n = T * op.cin_g
    bsum = sum(layer.in_bases)
    rts = math.ceil(layer.out_shape[0] / R)
    wbase = {}
    for rt in range(rts):
        wbase[rt] = len(prog.weights)
        prog.weights.extend(_weight_block(op, phase, 0, rt, R, cfg.lanes))
    starts = list(range(0, len(phase.out_pos), C))

    def reads(c0):
        return [_tap_word(phase, c0, t, C, h * w, 0) for t in range(T)]

    def tile(kind, taps, out_word, last, load, **fields):
        gbase = len(prog.gather)
        prog.gather.extend(taps + [out_word])
        op.tiles.append(len(prog.tiles))
        prog.tiles.append({"kind": kind, "layer": op.index, "wait": int(not op.tiles), "gbase": gbase,
                           "T": len(taps), "last": last, "load": load, "gap": 1, "nvalid": 0, **fields})

    no_out = [(0, 0)] * C
    tile(KIND_FIRST, reads(0), no_out, T, 1)
    for i, c0 in enumerate(starts):
        cols = phase.out_pos[c0:c0 + C]
        out_word = [(int(cols[c]) if c < len(cols) else 0, 0) for c in range(C)]
        pending = reads(starts[i + 1]) if i + 1 < len(starts) else []
        for rt in range(rts):
            last_rt = rt == rts - 1
            take = pending[:C - 1 if last_rt else C]
            pending = pending[len(take):]
            o0 = rt * R
            tile(KIND_FIRST, take, out_word, C - 1, int(last_rt and not pending and i + 1 < len(starts)),
                 wbase=wbase[rt], o0=o0, rot=o0 % prog.wchan % R // prog.gran, rt=rt, thr=0, nfix=bsum * n, **_chunk(prog, o0),
                 nvalid=len(cols), gap=len(cols), wen=_write_enables(prog, op, o0, min(R, layer.out_shape[0] - o0)))
        if pending:
            tile(KIND_FIRST, pending, no_out, len(pending), 1)
    return bsum * n, n


def _chunk(prog: Program, o0: int) -> dict:
    """A drained tile's SPRAM word: ``chunk`` (its rows' word at a position) and ``wdone``
    (it completes the word, set by ``_spram_check``); nothing in block RAM mode."""
    return {"chunk": o0 // prog.wchan, "wdone": 0} if prog.spram else {}


def _drain_gap(nvalid: int, cfg: ArrayConfig) -> int:
    """Least cycles from a tile's last step to the next tile's: the drain takes one column per
    cycle, and a PE's sums must stay until the array's last row has its own (R cycles)."""
    return max(nvalid, cfg.rows)


def _tap_word(phase, c0: int, t: int, C: int, pad_pos: int, base: int) -> list[tuple[int, int]]:
    """The gather word of tap t for the column tile at output c0: (address, pad) per column."""
    word = []
    for c in range(C):
        pos = int(phase.in_pos[c0 + c, t]) if c0 + c < len(phase.out_pos) else pad_pos
        word.append((0, 1) if pos == pad_pos else (base + pos, 0))
    return word


def _write_enables(prog: Program, op: Op, o0: int, rows: int) -> int:
    """Which granules of an activation word a tile writes: its rows in each of its planes."""
    if op.is_score:
        return 0
    per_plane = prog.wchan // prog.gran
    o = o0 % prog.wchan                   # the tile's first channel in its word
    mask = 0
    for p in range(op.k_out):
        for f in range(o // prog.gran, (o + rows) // prog.gran):
            mask |= 1 << (p * per_plane + f)
    return mask


def _compile_pass(prog: Program, op: Op) -> None:
    layer = op.layer
    _, h, w = layer.in_shape
    gbase = len(prog.gather)
    C = prog.cfg.cols
    if op.kind == "pool":
        op.chunks = prog.chunks           # in SPRAM mode: each window position once per chunk, chunks outermost
        kh, kw = layer.kernel
        sh, sw = layer.stride
        _, oh, ow = layer.out_shape
        for oy in range(oh):
            for ox in range(ow):
                for dy in range(kh):
                    for dx in range(kw):
                        pos = (oy * sh + dy) * w + ox * sw + dx
                        prog.gather.append([(op.src_base + pos, 0)] + [(0, 1)] * (C - 1))
    elif op.kind == "im2col":
        # per column tile: T tap reads of the input memory, then J x K writes of the column
        # memory, whose addresses the gather words carry
        phase = gather_plan(layer)[0]
        for ct, c0 in enumerate(range(0, len(phase.out_pos), C)):
            prog.gather.extend(_tap_word(phase, c0, t, C, h * w, 0) for t in range(op.taps))
            for s in range(op.J * op.K):
                prog.gather.append([(ct * op.J * op.K + s, 0)] * C)
    else:
        for pos in range(h * w):
            prog.gather.append([(op.src_base + pos, 0)] + [(0, 1)] * (C - 1))
    op.tiles.append(len(prog.tiles))
    prog.tiles.append({"kind": KIND_PASS, "layer": op.index, "wait": 1, "gbase": gbase,
                       "last": op.chunks * op.npos * op.window - 1})


def _write_times(prog: Program, op: Op) -> tuple[int, dict]:
    """The cycles from a layer's last step to its last activation write, and, per address it
    writes, an upper bound on that address's last write relative to the last write (<= 0).
    A compute tile's column c is written COMPUTE_LATENCY + skew + DRAIN_WRITE_LATENCY + 1 + c
    cycles after the tile's last step, and a tile's last step comes at least its ``gap``
    before the next tile's; a pass writes output position o at its window's last step +
    PASS_LATENCY, one step per cycle."""
    writes = {}
    if op.kind == "compute":
        skew = drain_skew(prog.cfg)
        tiles = [prog.tiles[ti] for ti in op.tiles]
        last = tiles[-1]
        full = COMPUTE_LATENCY + skew + last["nvalid"] + DRAIN_WRITE_LATENCY
        before = 0                   # at least this many cycles from the tile's last step to the layer's
        for k, tile in enumerate(reversed(tiles)):
            before += tile["gap"] if k else 0          # the next tile's last step is a gap after this one's
            out = prog.gather[tile["gbase"] + tile["T"]]
            for c in range(tile["nvalid"]):
                writes.setdefault(op.dst_base + out[c][0], 1 + c - last["nvalid"] - before)
        return full, writes
    for o in range(op.npos):
        writes[op.dst_base + o] = -(op.npos - 1 - o) * op.window
    return PASS_LATENCY, writes


def _step_reads(prog: Program, op: Op):
    """The activation-memory addresses each step of a layer reads (at the step's issue + 2),
    in issue order: a compute step its tap's gather word (planes, taps, lane chunks fastest),
    a pass step column 0 of its own."""
    for ti in op.tiles:
        tile = prog.tiles[ti]
        if op.kind != "compute":
            for i in range(tile["last"] + 1):
                yield [prog.gather[tile["gbase"] + i][0][0]]
            continue
        for step in range(tile["last"] + 1):
            word = prog.gather[tile["gbase"] + step // op.J % tile["T"]]
            yield [a for a, pad in word if not pad]


def _early(prog: Program, a: Op, b: Op, full: int, writes: dict) -> int:
    """How many cycles before layer a's last activation write the first step of layer b may
    issue (``full`` cycles after a's last step). A read at the step's issue + 2 sees every
    write of an earlier cycle, and b's step i issues at least i cycles after its first, so
    each read of an address a writes bounds the lead. A pass after a layer with a drain
    writes through the same port: its first write (a window's last step + PASS_LATENCY) must
    come after the drain's last (at a's last step + full: b's first step at full - lead, so
    lead <= window + PASS_LATENCY - 2). After the first-layer engine, whose gather and weight reads are
    issued up to C + COMPUTE_LATENCY + skew - 2 cycles after its last step, b's reads wait
    for those. Other pairs (im2col, the engine's start, the output unit) do not lead."""
    readers = ("pool", "shuffle")
    if prog.spram:
        return 0                      # one port per SPRAM: the next layer's reads wait for every write
    if a.kind not in ("compute",) + readers or not (b.kind in readers or (b.kind == "compute" and b.engine == "array"
                                                                       and b.src == SRC_REGION)):
        return 0
    lead = full - 1
    if a.engine == "first":
        lead = min(lead, full - (prog.cfg.cols + COMPUTE_LATENCY + drain_skew(prog.cfg) - 1))
    if a.kind == "compute" and b.kind in readers:
        lead = min(lead, b.window + PASS_LATENCY - 2)
    for i, addrs in enumerate(_step_reads(prog, b)):
        if i + 1 >= lead:             # every write is at or before the last: no later step bounds the lead
            break
        for addr in addrs:
            if addr in writes:
                lead = min(lead, i + 1 - writes[addr])
    return max(lead, 0)


def _compile_flush(prog: Program) -> None:
    """Each layer's ``lead``: how early the next layer's first step may issue, before this
    layer's last write (``_early``), at most the full wait of any of its tiles (the
    sequencer's countdown, loaded at every tile's last step, never goes below 0)."""
    ops = prog.ops
    for a, b in zip(ops, ops[1:] + [None]):
        full, writes = _write_times(prog, a)
        least = min(flush_cycles(prog, a, prog.tiles[ti]) for ti in a.tiles)
        a.lead = min(_early(prog, a, b, full, writes), least - 1) if b is not None else 0


def flush_cycles(prog: Program, op: Op, tile: dict) -> int:
    """Cycles from a tile's last step to the first cycle the next layer's first step may issue
    (the sequencer's flush countdown, plus one): the layer's last write, less its lead."""
    own = COMPUTE_LATENCY + drain_skew(prog.cfg) + tile["nvalid"] + DRAIN_WRITE_LATENCY \
        if op.kind == "compute" else PASS_LATENCY
    return own - op.lead


def sum_thresholds(thresholds, flip: bool, nfix: int, nthr: int, bound: int) -> list[int]:
    """A row's thresholds on S = sum_k b_k pop_k (the drain's weighted sum) instead of acc =
    nfix - 2 S, so the drain forms no accumulator: its level is c = #{j : S <= W_j}, or
    nthr - c = c XOR nthr where ``flip`` (d = -1; nthr = 2^k - 1). For d = +1, nfix - 2 S >= T
    iff S <= floor((nfix - T) / 2); unused slots never count (W = -1). For d = -1, 2 S - nfix
    >= T iff not S <= ceil((nfix + T) / 2) - 1; unused slots always count (W = bound), so
    that nthr - c is the layer's own count. W lies in [-1, bound] (S in [0, bound])."""
    if flip:
        w = [-((-(nfix + int(t))) // 2) - 1 for t in thresholds] + [bound] * (nthr - len(thresholds))
    else:
        w = [(nfix - int(t)) // 2 for t in thresholds] + [-1] * (nthr - len(thresholds))
    return [min(max(v, -1), bound) for v in w]


def _compile_thresholds(prog: Program, bound: int) -> None:
    """One word per (levels layer, tile row block, fix-up): R rows of S thresholds and a flip
    bit (``sum_thresholds``)."""
    R = prog.cfg.rows
    nthr = max([2 ** op.k_out - 1 for op in prog.ops if op.kind == "compute" and not op.is_score], default=1)
    prog.nthr = nthr
    for op in prog.ops:
        if op.kind != "compute" or op.is_score:
            continue
        thr = op.layer.arrays["thresholds"].astype(np.int64)
        neg = op.layer.arrays["directions"] < 0
        cout = op.layer.out_shape[0]
        index = {}
        for ti in op.tiles:
            tile = prog.tiles[ti]
            if "o0" not in tile:       # a first-layer engine tile that only reads taps
                continue
            # the fix-up differs between the stride phases of a transposed convolution
            o0, nfix = tile["o0"], tile["nfix"]
            if (o0, nfix) not in index:
                index[o0, nfix] = len(prog.thresholds)
                rows = []
                for r in range(R):
                    o = o0 + r
                    if r < op.rows_per_tile and o < cout:
                        rows.append((sum_thresholds(thr[o], bool(neg[o]), nfix, nthr, bound), int(neg[o])))
                    else:
                        rows.append(([-1] * nthr, 0))
                prog.thresholds.append(rows)
            tile["thr"] = index[o0, nfix]
    if not prog.thresholds:
        prog.thresholds.append([([0] * nthr, 0)] * R)


# --------------------------------------------------------------------------- cycle model

@dataclass
class CycleReport:
    """Cycle of every output beat (cycle 0 = the first input beat), and per-layer spans."""
    beat_cycles: np.ndarray
    load_cycles: int
    layer_spans: list[tuple[int, int]]   # (first issue, first cycle the next layer may issue) per op
    total: int                            # cycles from the first input beat to the last beat, inclusive


def cycle_model(prog: Program) -> CycleReport:
    """Replay the sequencer's rules (see the module docstring) with no backpressure."""
    load = prog.in_positions * prog.in_channels
    cyc = load                 # the sequencer's first cycle
    drain_free = 0             # first cycle the last step of a tile may issue
    flush_free = 0             # first cycle a layer-opening step may issue
    spans = []
    for op in prog.ops:
        start = None
        for ti in op.tiles:
            tile = prog.tiles[ti]
            if tile["wait"]:
                cyc = max(cyc, flush_free)
            start = cyc if start is None else start
            if op.kind == "compute":
                steps = tile["last"] + 1          # a compute tile's steps, engine or array
                last = max(cyc + steps - 1, drain_free)
                if op.engine == "first" and tile["nvalid"] and last != cyc + steps - 1:
                    raise AssertionError("a first-layer engine tile must run its steps back to back")
                drain_free = last + tile["gap"]
            else:
                last = cyc + op.chunks * op.npos * op.window - 1
            flush_free = last + flush_cycles(prog, op, tile)
            cyc = last + 1
        spans.append((start, flush_free))
    first_request = max(cyc, flush_free) + 1
    beats = first_request + OUTPUT_LATENCY + np.arange(prog.out_beats)
    return CycleReport(beats, load, spans, int(beats[-1]) + 1)


def config_dict(cfg: ArrayConfig) -> dict:
    """The config as manifests and reports write it (the part only when there is one)."""
    d = {"rows": cfg.rows, "cols": cfg.cols, "lanes": cfg.lanes, "clock_mhz": cfg.clock_mhz}
    return {**d, "part": cfg.part} if cfg.part else d


def layer_report(prog: Program, cycles: CycleReport | None = None) -> dict:
    """Per layer: tiles, cycles, ideal cycles at full PE use, utilization; and totals."""
    cycles = cycles or cycle_model(prog)
    cfg = prog.cfg
    peak = cfg.rows * cfg.cols * cfg.lanes
    layers = []
    im2col = None              # (first cycle, cycles) of an im2col pass, counted with its layer
    for op, (a, b) in zip(prog.ops, cycles.layer_spans):
        if op.kind == "im2col":
            im2col = (a, b - a)
            continue
        if im2col:
            a = im2col[0]
        macs = op.layer.binary_macs()
        ideal = macs / peak
        n = b - a
        layers.append({"name": op.layer.name, "kind": op.layer.kind, "tiles": len(op.tiles) if op.kind == "compute" else 0,
                       "cycles": n, "ideal_cycles": round(ideal, 1), "binary_macs": macs,
                       "utilization": round(ideal / n, 4) if macs else None,
                       "im2col_cycles": im2col[1] if im2col else 0})
        im2col = None
    total = cycles.total
    # per layer, not per op: an im2col pass shares its layer with the compute op after it,
    # and counting that layer twice put a whole image above 100%
    macs = sum(lay["binary_macs"] for lay in layers)
    return {
        "config": config_dict(cfg),
        "layers": layers,
        "load_cycles": cycles.load_cycles,
        "output_beats": prog.out_beats,
        "latency_cycles": total,
        "images_per_s": round(cfg.clock_mhz * 1e6 / total, 1),
        "binary_macs": macs,
        "utilization": round(macs / peak / total, 4),
        "memory_bits": prog.memory_bits(),
        "widths": {"plane_sum": prog.pe_bits, "popcount_sum": prog.s_bits, "accumulator": prog.acc_bits, "threshold": prog.thr_bits,
                   "score": OUT_BITS},
    }


# --------------------------------------------------------------------------- the stream contract

def input_beats(image: np.ndarray) -> list[int]:
    """(C, H, W) uint8 -> input beats in stream order: position-major, channel fastest."""
    image = np.asarray(image)
    return [int(v) for v in image.reshape(image.shape[0], -1).T.ravel()]


def expected_beats(scores: np.ndarray) -> list[int]:
    """The output beats the golden model predicts for one image's scores, (O,) or (O, H, W):
    per output position (raster order) one score per class, then the class (ties: lowest)."""
    s = np.asarray(scores).reshape(np.asarray(scores).shape[0], -1)
    out = []
    for q in range(s.shape[1]):
        out += [int(v) for v in s[:, q]] + [int(np.argmax(s[:, q]))]
    return out


# --------------------------------------------------------------------------- record loops
#
# The tile table and the drain's table are long (1,862 rows for digits-cnn at 4x1x16) but
# regular: within a layer every field advances by a constant stride from one tile to the next,
# resets at a column tile, and the write enables are a mask that rotates by a granule per row
# tile. On an iCE40 UP5K the two tables took 57 of its 30 block RAMs. ``compress_records``
# turns such a list into a few loop descriptors that a small generator (rtl/sequencer_gen.py)
# runs in hardware; ``expand_records`` runs the same state machine in Python, and the tests
# prove it gives back the list, record for record.
#
# The form: record t+1 = record t + a delta. A delta adds a constant to each field (modulo the
# field's width) except the rotating fields (``wen``), which it rotates left by an amount and
# then XORs with a mask (zero where the mask only moves). A *member* is ``count`` records
# joined by one ``step`` delta, then its ``exit`` delta to the next member's first record. A
# *segment* is a body of up to ``max_body`` members repeated ``reps`` times: the body's last
# exit wraps back to its first member, and the last repetition leaves by ``leave`` instead
# (the jump to the next segment). digits-cnn's first layer (eight row tiles and an assembly
# tile per output position, three kinds of jump) is one segment of two members.

#: the fields that rotate rather than add: the activation write enables (a granule mask)
ROTATE_FIELDS = ("wen",)


def value_bits(values) -> int:
    """Bits of an unsigned field that holds each of ``values``: the largest one's, at least 1.
    The width rule of the gateware's tables (rtl/top.py) and records (``record_widths``)."""
    return max([1] + [int(v).bit_length() for v in values])


def record_widths(records: list[dict], fields: list[str]) -> tuple[int, ...]:
    """Bits of each field over ``records`` (``value_bits``; a record without the field has 0):
    the layout of rtl/top.py's tile and drain ROM words (rtl/sequencer_gen.table_layout)."""
    return tuple(value_bits(r.get(f, 0) for r in records) for f in fields)


def _rotl(v: int, amount: int, width: int) -> int:
    amount %= width
    mask = (1 << width) - 1
    return ((v << amount) | (v >> (width - amount))) & mask if amount else v


@dataclass(frozen=True)
class LoopEntry:
    """One member of a segment, as the generator's descriptor ROM holds it. ``last``: the body's
    last member (then ``reps``, ``back`` and ``leave`` apply); ``stop``: the list's last member."""
    count: int                 # records of the member (>= 1)
    step: tuple                # delta between its records (zero where count == 1)
    exit: tuple                # delta to the next member's first record (the body's last: the wrap)
    last: bool = False
    reps: int = 1              # repetitions of the body (on the body's last member)
    back: int = 0              # members from the body's last back to its first
    leave: tuple = ()          # delta from the segment's last record to the next segment's first
    stop: bool = False


@dataclass
class RecordLoops:
    """A list of records as loop descriptors: ``first`` (record 0, in ``fields`` order) and the
    flat member table ``entries`` that rtl/sequencer_gen.py stores."""
    fields: tuple[str, ...]
    widths: tuple[int, ...]
    rotate: tuple[str, ...]
    first: tuple[int, ...]
    entries: list[LoopEntry]
    length: int                # records it expands to

    @property
    def segments(self) -> int:
        return sum(e.last for e in self.entries)

    def rotations(self) -> list[list[int]]:
        """Per rotating field, the rotation amounts the deltas use (the generator muxes over
        these few instead of a barrel rotator)."""
        out = []
        for i, f in enumerate(self.fields):
            if f in self.rotate:
                amounts = {0}
                for e in self.entries:
                    for d in (e.step, e.exit, e.leave):
                        if d:
                            amounts.add(d[i][0])
                out.append(sorted(amounts))
        return out

    def entry_bits(self) -> dict:
        """Bits of one descriptor ROM entry, by part (see rtl/sequencer_gen.py's layout)."""
        rot = self.rotations()
        delta = 0
        ri = 0
        for f, w in zip(self.fields, self.widths):
            if f in self.rotate:
                delta += w + max(1, (len(rot[ri]) - 1).bit_length())
                ri += 1
            else:
                delta += w
        return {"count": _bits(max(e.count for e in self.entries) - 1),
                "reps": _bits(max(e.reps for e in self.entries) - 1),
                "back": _bits(max(e.back for e in self.entries)),
                "flags": 2, "delta": delta, "deltas": 3 * delta}

    def bits(self) -> int:
        """Bits of the descriptor ROM (entries x entry width) and the first record."""
        b = self.entry_bits()
        return len(self.entries) * (b["count"] + b["reps"] + b["back"] + b["flags"] + b["deltas"]) + sum(self.widths)


def _bits(n: int) -> int:
    return max(1, int(n).bit_length())


def _delta(a: tuple, b: tuple, fields, widths, rotate) -> tuple:
    """The delta taking record a to record b: a difference per added field; per rotating field
    (amount, xor), the amount moving a's lowest set bit onto b's (0 if either is 0)."""
    d = []
    for f, w, x, y in zip(fields, widths, a, b):
        if f in rotate:
            amount = ((y & -y).bit_length() - (x & -x).bit_length()) % w if x and y else 0
            d.append((amount, _rotl(x, amount, w) ^ y))
        else:
            d.append(y - x)
    return tuple(d)


def apply_delta(v: tuple, d: tuple, fields, widths, rotate) -> tuple:
    """Record v moved by delta d, modulo each field's width (as the generator's adders do)."""
    out = []
    for f, w, x, dx in zip(fields, widths, v, d):
        if f in rotate:
            out.append(_rotl(x, dx[0], w) ^ dx[1])
        else:
            out.append((x + dx) % (1 << w))
    return tuple(out)


def _members(deltas: list[tuple]) -> list[tuple]:
    """Greedy: from each member's first record, the run of one repeated delta, then the next
    delta as its exit. (count, step, exit); the list's last member has exit None."""
    out, i, n = [], 0, len(deltas)
    while i <= n:
        if i == n:                                  # the last record alone
            out.append((1, None, None))
            break
        j = i
        while j + 1 < n and deltas[j + 1] == deltas[i]:
            j += 1
        run = j - i + 1
        if j + 1 == n:                               # the run reaches the list's end
            out.append((run + 1, deltas[i], None))
            break
        out.append((run + 1, deltas[i], deltas[j + 1]))   # (a lone delta: a member of two records)
        i = j + 2
    return out


def _segment_at(members: list[tuple], i: int, max_body: int) -> tuple[int, int]:
    """(body length, repetitions) of the best segment starting at member i: the most members
    saved ((reps - 1) x body), then the shortest body. A repetition must match the body but
    for its last exit (the leave), and the repetition before it must have left by the wrap."""
    best = (0, 1, 1)
    for P in range(1, max_body + 1):
        if i + P > len(members):
            break
        body = members[i:i + P]
        wrap = body[-1][2]
        r = 1
        while True:
            s = i + r * P
            rep = members[s:s + P]
            if len(rep) < P or rep[:-1] != body[:-1] or rep[-1][:2] != body[-1][:2]:
                break
            if members[s - 1][2] != wrap:
                break
            r += 1
        saved = (r - 1) * P
        if saved > best[0]:
            best = (saved, P, r)
    return best[1], best[2]


def compress_records(records: list[dict], fields, widths=None, rotate=ROTATE_FIELDS, max_body: int = 8) -> RecordLoops:
    """Loop descriptors that ``expand_records`` turns back into ``records`` (each a dict of
    non-negative ints; a missing field reads 0), projected on ``fields``. ``widths``: bits per
    field (default: the records' own ``record_widths``; a ROM laid out for a longer list, as
    the tile ROM is with tile 0, passes its own)."""
    fields = tuple(fields)
    rotate = tuple(f for f in rotate if f in fields)
    widths = tuple(widths) if widths is not None else record_widths(records, fields)
    rows = [tuple(int(r.get(f, 0)) for f in fields) for r in records]
    if not rows:
        raise ValueError("no records to compress")
    zero = tuple((0, 0) if f in rotate else 0 for f in fields)
    deltas = [_delta(a, b, fields, widths, rotate) for a, b in zip(rows, rows[1:])]
    members = _members(deltas)
    entries = []
    i = 0
    while i < len(members):
        P, r = _segment_at(members, i, max_body)
        body = members[i:i + P]
        leave = members[i + r * P - 1][2]
        for k, (count, step, ex) in enumerate(body):
            is_last = k == P - 1
            entries.append(LoopEntry(count, step or zero, (ex if not is_last or r > 1 else None) or zero,
                                     last=is_last, reps=r if is_last else 1, back=P - 1 if is_last else 0,
                                     leave=(leave or zero) if is_last else zero))
        i += r * P
    entries[-1] = LoopEntry(**{**entries[-1].__dict__, "stop": True})
    return RecordLoops(fields, widths, rotate, rows[0], entries, len(rows))


def loop_states(loops: RecordLoops):
    """The generator's state machine (rtl/sequencer_gen.py), one record per step: yields
    (record, pc, k, r) from record 0 until the stop entry's last record. ``pc`` is the entry,
    ``k`` the record within its member, ``r`` the repetition of its body."""
    v, pc, k, r = loops.first, 0, 0, 0
    args = (loops.fields, loops.widths, loops.rotate)
    while True:
        yield v, pc, k, r
        e = loops.entries[pc]
        if k != e.count - 1:
            v, k = apply_delta(v, e.step, *args), k + 1
        elif not e.last:
            v, pc, k = apply_delta(v, e.exit, *args), pc + 1, 0
        elif r != e.reps - 1:
            v, pc, k, r = apply_delta(v, e.exit, *args), pc - e.back, 0, r + 1
        elif e.stop:
            return
        else:
            v, pc, k, r = apply_delta(v, e.leave, *args), pc + 1, 0, 0


def expand_records(loops: RecordLoops) -> list[dict]:
    """The records the descriptors stand for, as dicts over ``loops.fields``."""
    return [dict(zip(loops.fields, v)) for v, *_ in loop_states(loops)]
