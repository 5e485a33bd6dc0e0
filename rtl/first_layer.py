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

Sums (the work shared by the R rows). Pixels pair up, (x_i, x_j) for i = 2p, j = 2p + 1; a
row's pair term P = (x_i XOR 8{w_i}) + (x_j XOR 8{w_j}) is A = x_i + x_j or 510 - A where
w_i = w_j, else D = x_i + (255 - x_j) or 510 - D. A and D are computed once for all rows,
and each row picks its term with one LUT4 per bit, (w_i = w_j ? A : D) XOR 9{w_i}, which is
P where w_i = 0 and ~Y = 510 - Y + 1 where w_i = 1: so each pair's term plus the carry-in
~w_i (free in the adder that takes it) is P + 1. The pixel left over (n odd; two where n is
even) absorbs the pairs' +1s: the shared x - npairs and 255 - x - npairs, one picked per row
by its weight bit. A row then adds ceil(n / 2) terms of 9 bits (not n XORed bytes): half the
LUTs and carry cells of byte-wise sums. All of it is exact modulo 2^width, and the sum lies in
[0, 255 n].

Windows: for each of the C columns an assembly register shifts in one tap's cin pixels per
read (tap t ends at bytes t*cin ..), and ``load`` copies all C assembly registers into the
window registers the sums read from, so the next group's taps are read while this group's
columns are summed (hwbin/program.py ``_compile_first`` schedules both). A padded tap is the
pixel register's synchronous reset, and the column is picked by C operand registers that each
hold their window where ``col`` names it and reset to 0 elsewhere, ORed: one LUT per bit
rather than a C:1 multiplexer's C - 1 (flip-flops are cheaper than LUTs).

Timing: ``shift``, ``load``, ``col`` and ``weights`` act in the cycle they are given; the
pixel words and pad flags are wanted one cycle before their ``shift`` (a block RAM's output,
registered here first); ``sums`` holds column ``col``'s R sums ``LATENCY`` cycles later.
"""
from __future__ import annotations

import functools
import math
import operator

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


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


class FirstLayerEngine(wiring.Component):
    def __init__(self, rows: int, cols: int, cin: int, taps: int, lanes: int, width: int, stages: int):
        """``stages``: pipeline registers after the operand registers (at most
        ``logic_levels(n)``: the shared sums, then one per adder level; fewer put several
        levels between two registers)."""
        self.rows, self.cols, self.cin, self.taps, self.lanes, self.width = rows, cols, cin, taps, lanes, width
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
            # a block RAM's output goes straight into a register placed beside it (it is slow:
            # 5.8 ns on an ECP5); a pad reads 0 by the register's synchronous reset
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

        levels = logic_levels(n)
        # registers after these levels: spread evenly, the last level always registered
        regs = {math.ceil((j + 1) * levels / self.stages) for j in range(self.stages)}
        delayed = {}

        def late(name: str, value, level: int):
            """A value of the operand registers' cycle (stage 0), as the logic of ``level``
            sees it: through as many registers as lie before that level, shared by all users."""
            for s in range(1, sum(r < level for r in regs) + 1):
                if (name, s) not in delayed:
                    reg = Signal(value.shape(), name=f"{name}_s{s}")
                    m.d.sync += reg.eq(value)
                    delayed[name, s] = reg
                value = delayed[name, s]
            return value

        # level 1, shared by the rows: the pairs' sums and differences, the pixels left over
        shared = {}
        for p in range(npairs):
            xi, xj = px[2 * p], px[2 * p + 1]
            shared[f"sum{p}"] = Signal(9, name=f"sum{p}")
            shared[f"diff{p}"] = Signal(9, name=f"diff{p}")
            # x_i - x_j modulo 2^9 is D + 1 with bit 8 inverted: a subtraction maps to carry
            # cells without inverters, and the pick below absorbs the bit's inversion
            m.d.comb += [shared[f"sum{p}"].eq(xi + xj + 1), shared[f"diff{p}"].eq(xi - xj)]
        top = {"pair": 511}        # the largest value of each kind of term (before its carry-in)
        for i in range(2 * npairs, n):
            k = npairs if i == 2 * npairs else 0     # the first pixel left over takes the pairs' +1s
            # x - k may be negative: kept modulo 2^bits, i.e. as large as any value of that width
            top[i] = (1 << bits) - 1 if k else 255
            shape = signed(9) if k else unsigned(8)
            shared[f"pos{i}"] = Signal(shape, name=f"pos{i}")
            shared[f"neg{i}"] = Signal(shape, name=f"neg{i}")
            m.d.comb += [shared[f"pos{i}"].eq(px[i] - k), shared[f"neg{i}"].eq(255 - k - px[i])]

        def held(value):
            reg = Signal(len(value), name=f"{value.name}_q")
            m.d.sync += reg.eq(value)
            return reg

        sums = []
        for r in range(R):
            def wbit(i, level):
                return late(f"w{r}_{i}", w[r * n + i], level)

            def term(t, level):
                """A term at ``level``: a sum already formed, or a pair's / pixel's pick."""
                if not isinstance(t, tuple):
                    return t
                kind, i = t
                if kind == "pair":
                    wi, wj = wbit(2 * i, level), wbit(2 * i + 1, level)
                    diff = late(f"diff{i}", shared[f"diff{i}"], level)
                    pick = Mux(wi ^ wj, Cat(diff[:8], ~diff[8]), late(f"sum{i}", shared[f"sum{i}"], level))
                    return pick ^ wi.replicate(9)
                return Mux(wbit(i, level), late(f"neg{i}", shared[f"neg{i}"], level), late(f"pos{i}", shared[f"pos{i}"], level))

            # (term, its largest value): a pair's or pixel's pick not made yet, or a sum formed
            terms = [(("pair", p), top["pair"]) for p in range(npairs)] + [(("pixel", i), top[i]) for i in range(2 * npairs, n)]
            carries = list(range(npairs))          # pair p's carry-in w_2p, one per adder
            for level in range(2, levels + 1):
                nxt = []
                for a in range(0, len(terms), 2):
                    if a + 1 == len(terms):
                        nxt.append(terms[a])       # the odd one waits for a later level
                        continue
                    (ta, ma), (tb, mb) = terms[a], terms[a + 1]
                    cin = [wbit(2 * carries.pop(0), level)] if carries else []
                    most = min(ma + mb + len(cin), (1 << bits) - 1)
                    node = Signal(most.bit_length(), name=f"row{r}_l{level}_{a // 2}", attrs={"keep": 1})
                    m.d.comb += node.eq(functools.reduce(operator.add, [term(ta, level), term(tb, level)] + cin))
                    nxt.append((node, most))
                terms = nxt
                if level in regs:
                    # a pick not made yet stays so: its inputs are delayed instead (shared)
                    terms = [(t, most) if isinstance(t, tuple) else (held(t), most) for t, most in terms]
            assert not carries and len(terms) == 1
            sums.append(terms[0][0])
        m.d.comb += [self.sums[r * self.width:(r + 1) * self.width].eq(s) for r, s in enumerate(sums)]
        return m
