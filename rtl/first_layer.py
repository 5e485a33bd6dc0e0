"""The first-layer engine: a first conv on uint8 pixels as byte sums, not bit-plane popcounts.

With +-1 weights a first layer is a signed sum of pixels. On the PE array a grey 3x3 conv
fills 9 of L lanes per step and needs 8 steps, one per pixel bit plane (digits-cnn's conv0 ran
at 18% of the array's peak, 807 cycles of 4,520). Here a row's sum over the window is
computed directly: Horner's rule over the 8 planes of ``popcount(plane XOR w)`` is

    sum_k 2^(7-k) * sum_i (bit 7-k of x_i) XOR w_i  =  sum_i (x_i XOR (w_i ? 0xFF : 0)),

so each of the R rows adds the window's n = T x cin pixel bytes, each complemented where its
weight bit is 1: exactly the Horner sum the array's PE would hold (the drain applies the
plane base and the fix-up as for any layer). One column (one output position, R channels) a
cycle: the rate the drain takes columns at.

Sums: the work shared by the R rows. Pixels pair up, (x_i, x_j) for i = 2p, j = 2p + 1; a
row's pair term P = (x_i XOR 8{w_i}) + (x_j XOR 8{w_j}) is Y or 510 - Y, with Y = A =
x_i + x_j where w_i = w_j, else Y = D = x_i + (255 - x_j). A + 1 and D + 1 are computed once
for all rows (level 1), and each row picks its term with one LUT4 per bit:
(w_i = w_j ? A + 1 : D + 1) XOR 9{w_i}, that is Y + 1 where w_i = 0 and 510 - Y where
w_i = 1; with the carry-in w_i (free in the adder that takes it) each pair gives P + 1. The
first pixel left over (n odd; two are left where n is even) takes the pairs' +1s back: the
shared x - npairs and 255 - x - npairs (9-bit signed), one picked per row by its weight bit.
A row then adds ceil(n / 2) terms of 9 bits, not n XORed bytes: about half the LUTs and
carry cells. Everything is exact modulo 2^bits, and the sum lies in [0, 255 n].

Carry chains: on an ECP5 nextpnr adds two carry cells to every chain (one to bring its carry
in, one to bring its carry out), so the sums of one adder level of ``chain_rows`` rows share
one adder (``carry_chain``), as do the shared sums, and the shared differences (yosys cuts
those two where their gaps are constant, still).

Windows: for each of the C columns an assembly register shifts in one tap's cin pixels per
read (tap t ends at bytes t*cin ..), and ``load`` copies all C assembly registers into the
window registers the sums read from, so the next group's taps are read while this group's
columns are summed (hwbin/program.py ``_compile_first`` schedules both). A padded tap is the
pixel register's synchronous reset, and the column is picked by C operand registers that each
hold their window where ``col`` names it and reset to 0 elsewhere, ORed: one LUT per bit
rather than a C:1 multiplexer's C - 1 (flip-flops are cheaper than LUTs).

Timing: ``shift``, ``load``, ``col`` and ``weights`` act in the cycle they are given; the
pixel words and pad flags are wanted ``READ_AHEAD`` cycles before their ``shift`` (registered
here once first: rtl/top.py gives the landed input-memory words); ``sums`` holds column ``col``'s R sums ``LATENCY`` cycles later.
"""
from __future__ import annotations

import functools
import math
import operator
import typing

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .pipeline import held


def pixel_bytes(word, cin: int) -> list:
    """The cin pixels of an input-memory word, as bytes: the word keeps bit (7 - plane) of
    channel ch at bit plane * cin + ch (docs/arithmetic.md's plane order)."""
    return [Cat(word[(7 - b) * cin + ch] for b in range(8)) for ch in range(cin)]


def tree_levels(n: int) -> int:
    """Adder levels of a pairwise sum of n >= 1 terms."""
    return math.ceil(math.log2(n)) if n > 1 else 0


def pairs_of(n: int) -> int:
    """Pixel pairs of an n-pixel window: at least one pixel is left over (it takes the pairs'
    constant, see the module docstring)."""
    return (n - 1) // 2


def logic_levels(n: int) -> int:
    """Levels of the engine's sum: the shared pair sums, then a row's adder tree."""
    return 1 + tree_levels(n - pairs_of(n))


def padded(value, width: int, extend_sign: bool = False):
    """``value`` as ``width`` bits: zero- (or sign-) extended, or cut."""
    if len(value) >= width:
        return value[:width]
    fill = value[-1] if extend_sign else Const(0, 1)
    return Cat(value, fill.replicate(width - len(value)))


def carry_chain(m: Module, adds: list, name: str, subtract: bool = False) -> list:
    """Independent sums in one adder, side by side, so that they share one carry chain: on an
    ECP5 nextpnr spends a carry cell to bring a chain's carry in and another to bring its carry
    out, about a third more than a 9-bit sum's own cells.

    ``adds``: (a, b, c, width, wrap) per sum: a + b + c, c a 1-bit value or 0. A sum that is
    not ``wrap`` is exact in ``width`` bits, a and b having at most width - 1; a ``wrap`` sum
    is modulo 2^width (a and b cut or sign-extended to width bits). Above each sum's operands
    is a gap bit holding the next sum's carry-in c' in both operands: c' + c' + carry, whose
    carry out is c' whatever the carry, and whose sum bit is an exact sum's top bit (the last
    exact sum's gap holds a's low bit, so that yosys keeps its top bit a sum bit rather than
    the chain's carry out). With ``subtract`` every c is 1 and the sums are a - b +
    2^(width - 1) where exact (in [1, 2^width) for a, b < 2^(width - 1)), a - b modulo 2^width
    where ``wrap``: one subtraction, whose gaps are 1 in a and 0 in b (1 + 1 + carry)."""
    ops_a, ops_b, slices, at = [], [], [], 0
    for k, (a, b, c, width, wrap) in enumerate(adds):
        assert not subtract or (isinstance(c, int) and c == 1)
        room = width if wrap else width - 1
        assert wrap or (len(a) <= room and len(b) <= room)
        ops_a.append(padded(a, room, a.shape().signed))
        ops_b.append(padded(b, room, b.shape().signed))
        slices.append((at, at + width))
        at += room
        if k + 1 < len(adds) or not wrap:
            gap = adds[k + 1][2] if k + 1 < len(adds) else a[0]
            gap = Const(gap, 1) if isinstance(gap, int) else gap
            ops_a.append(Const(1, 1) if subtract else gap)
            ops_b.append(Const(0, 1) if subtract else gap)
            at += 1
    total = Signal(at, name=name, attrs={"keep": 1})
    a, b = Cat(*ops_a), Cat(*ops_b)
    m.d.comb += total.eq(a - b if subtract else a + b + adds[0][2])
    return [total[lo:hi] for lo, hi in slices]


class FirstLayerEngine(wiring.Component):
    #: cycles between a pixel word at ``pixels`` and its ``shift``
    READ_AHEAD = 1

    def __init__(self, rows: int, cols: int, cin: int, taps: int, lanes: int, width: int, stages: int,
                 chain_rows: int = 4):
        """``stages``: pipeline registers after the operand registers (at most
        ``logic_levels(n)``: the shared sums, then one per adder level; fewer put several
        levels between two registers). ``chain_rows``: rows whose sums of one adder level share
        a carry chain; longer chains save carry cells but are slower (8 x 4 x 32 engine alone,
        out of context: 1, 2, 4, 8 rows took 1,033, 985, 961, 949 LUTs at 189, 177, 145, 103 MHz)."""
        self.rows, self.cols, self.cin, self.taps, self.lanes, self.width = rows, cols, cin, taps, lanes, width
        #: rows whose sums of one adder level share a carry chain
        self.chain_rows = chain_rows
        self.n = taps * cin
        assert 2 <= self.n <= lanes, "a window of at least two pixels, within one weight word's lanes"
        self.stages = FirstLayerEngine.stages_for(self.n, stages)
        #: cycles from ``col``/``weights`` to ``sums``: the operand registers and the pipeline's
        self.LATENCY = 1 + self.stages
        super().__init__({
            "shift": In(1), "pixels": In(unsigned(cols * 8 * cin)), "pads": In(unsigned(cols)),
            "load": In(1), "col": In(range(max(2, cols))), "weights": In(unsigned(rows * lanes)),
            "sums": Out(unsigned(rows * width)),
        })

    @staticmethod
    def stages_for(n: int, most: int) -> int:
        """Pipeline registers for a window of n pixels when at most ``most`` fit the timing."""
        return max(1, min(logic_levels(n), most))

    def _windows(self, m: Module) -> list:
        """Per column: the pixel register, the assembly and window registers, and the operand
        register (the window where ``col`` is this column, else 0)."""
        C, cin, n = self.cols, self.cin, self.n
        operands = []
        for c in range(C):
            asm = Signal(8 * n, name=f"assembly{c}")
            win = Signal(8 * n, name=f"window{c}")
            # the pixel register: its synchronous reset makes a pad read 0 (the word comes
            # from a register, not straight from a block RAM: rtl/top.py lands those)
            word = Signal(8 * cin, name=f"pixels{c}")
            m.d.sync += word.eq(Mux(self.pads[c], 0, self.pixels[c * 8 * cin:(c + 1) * 8 * cin]))
            tap = Cat(*pixel_bytes(word, cin))
            with m.If(self.shift):
                m.d.sync += asm.eq(Cat(asm[8 * cin:], tap) if n > cin else tap)
            with m.If(self.load):
                m.d.sync += win.eq(asm)
            operand = Signal(8 * n, name=f"operand{c}")
            m.d.sync += operand.eq(Mux(self.col == c, win, 0) if C > 1 else win)
            operands.append(operand)
        return operands

    def _shared(self, m: Module, px: list) -> dict:
        """Level 1, shared by the rows (values of the operand registers' cycle): per pair p,
        ``sum{p}`` = A + 1 and ``diff{p}`` = D + 1 (9 bits), and for the pixel left over that
        takes the pairs' constant, ``pos``/``neg`` = x - npairs and 255 - x - npairs (9-bit
        signed). Each kind is one carry chain (a subtraction for the differences)."""
        npairs = pairs_of(self.n)
        if not npairs:
            return {}
        k, x = npairs, px[2 * npairs]
        # x + (511 - k) + 1 and (255 - k) - x, both modulo 2^9
        sums = carry_chain(m, [(px[2 * p], px[2 * p + 1], 1, 9, False) for p in range(npairs)]
                           + [(x, Const(511 - k, 9), 1, 9, True)], "pair_sums")
        diffs = carry_chain(m, [(px[2 * p], px[2 * p + 1], 1, 9, False) for p in range(npairs)]
                            + [(Const(255 - k, 9), x, 1, 9, True)], "pair_diffs", subtract=True)
        out = {f"sum{p}": sums[p] for p in range(npairs)} | {f"diff{p}": diffs[p] for p in range(npairs)}
        return out | {"pos": sums[-1].as_signed(), "neg": diffs[-1].as_signed()}

    def elaborate(self, platform):
        m = Module()
        R, n, L = self.rows, self.n, self.lanes
        npairs = pairs_of(n)
        # sums are exact modulo 2^bits, and the true sum fits (or is cut to width, as before)
        bits = min(self.width, (255 * n).bit_length())
        x = functools.reduce(operator.or_, self._windows(m))
        px = [x[8 * i:8 * i + 8] for i in range(n)]
        w = Signal(R * n)
        m.d.sync += w.eq(Cat(self.weights[r * L:r * L + n] for r in range(R)))
        shared = self._shared(m, px)

        levels = logic_levels(n)
        # registers after these levels: spread evenly, the last level always registered
        regs = {math.ceil((j + 1) * levels / self.stages) for j in range(self.stages)}
        delayed = {}

        def late(name: str, value, level: int):
            """A value of the operand registers' cycle, as the logic of ``level`` sees it:
            through as many registers as lie before that level, shared by all its users."""
            for s in range(1, sum(r < level for r in regs) + 1):
                if (name, s) not in delayed:
                    reg = Signal(value.shape(), name=f"{name}_s{s}")
                    m.d.sync += reg.eq(value)
                    delayed[name, s] = reg
                value = delayed[name, s]
            return value

        def wbit(r, i, level):
            return late(f"w{r}_{i}", w[r * n + i], level)

        def value(r, term, level):
            """A term's value at ``level``: a sum already formed, or a pair's / pixel's pick."""
            kind, i = term.value if isinstance(term.value, tuple) else (None, None)
            if kind == "pair":
                wi, wj = wbit(r, 2 * i, level), wbit(r, 2 * i + 1, level)
                pick = Mux(wi ^ wj, late(f"diff{i}", shared[f"diff{i}"], level), late(f"sum{i}", shared[f"sum{i}"], level))
                return pick ^ wi.replicate(9)
            if kind == "pixel" and term.wrap:
                return Mux(wbit(r, i, level), late("neg", shared["neg"], level), late("pos", shared["pos"], level))
            if kind == "pixel":
                return late(f"x{i}", px[i], level) ^ wbit(r, i, level).replicate(8)
            return term.value

        # per row: (term, width, wrap), a pair's or pixel's pick not made yet or a sum formed;
        # the first pixel left over takes the pairs' constant, so its values wrap
        firsts = [_Term(("pair", p), 9, False) for p in range(npairs)]
        lefts = [_Term(("pixel", i), 9 if i == 2 * npairs and npairs else 8, i == 2 * npairs and npairs > 0)
                 for i in range(2 * npairs, n)]
        terms = [firsts + lefts for r in range(R)]
        carries = [list(range(npairs)) for r in range(R)]     # pair p's carry-in w_2p, one per sum
        for level in range(2, levels + 1):
            adds = []           # (row, index in the row's next terms, the sum)
            for r in range(R):
                row = terms[r]
                for a, (ta, tb) in enumerate(zip(row[0:len(row) - 1:2], row[1::2])):
                    c = wbit(r, 2 * carries[r].pop(0), level) if carries[r] else 0
                    wrap = ta.wrap or tb.wrap or max(ta.width, tb.width) + 1 > bits
                    width = bits if wrap else max(ta.width, tb.width) + 1
                    adds.append((r, a, (value(r, ta, level), value(r, tb, level), c, width, wrap)))
            formed = [[None] * (len(terms[r]) // 2) for r in range(R)]
            for g in range(0, R, self.chain_rows):
                group = [add for add in adds if g <= add[0] < g + self.chain_rows]
                group.sort(key=lambda add: add[2][4])      # a sum modulo 2^bits last: no gap above it
                outs = carry_chain(m, [add[2] for add in group], f"rows{g}_l{level}")
                for (r, a, (_, _, _, width, wrap)), out in zip(group, outs):
                    formed[r][a] = _Term(out, width, wrap)
            for r in range(R):
                # the odd one waits for a later level
                terms[r] = formed[r] + terms[r][2 * len(formed[r]):]
                if level in regs:
                    # a pick not yet made stays so: its (shared) inputs are delayed instead
                    terms[r] = [t if isinstance(t.value, tuple) else t._replace(value=held(m, t.value, f"row{r}_l{level}_{j}"))
                                for j, t in enumerate(terms[r])]
        assert all(not c for c in carries) and all(len(t) == 1 for t in terms)
        sums = [t[0].value for t in terms]
        m.d.comb += [self.sums[r * self.width:(r + 1) * self.width].eq(s) for r, s in enumerate(sums)]
        return m


class _Term(typing.NamedTuple):
    """A term of a row's sum: a Value, or (kind, index) for a pick not yet made; its width
    (exact: below 2^width), or ``wrap``: modulo 2^bits."""
    value: object
    width: int
    wrap: bool
