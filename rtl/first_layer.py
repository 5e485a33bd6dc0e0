"""The first-layer engine: a first conv on uint8 pixels as byte sums, not bit-plane popcounts.

With +-1 weights a first layer is a signed sum of pixels. On the PE array a grey 3x3 conv
fills 9 of L lanes per step and needs 8 steps, one per pixel bit plane (digits-cnn's conv0 ran
at 18% of the array's peak, 807 cycles of 4,520). Here a row's sum over the window is
computed directly: Horner's rule over the 8 planes of ``popcount(plane XOR w)`` is

    sum_k 2^(7-k) * sum_i (bit 7-k of x_i) XOR w_i  =  sum_i (x_i XOR (w_i ? 0xFF : 0)),

so each of the R rows adds the window's T x cin pixel bytes, each complemented where its
weight bit is 1: exactly the Horner sum the array's PE would hold (the drain applies the
plane base and the fix-up as for any layer). One column (one output position, R channels) a
cycle: the rate the drain takes columns at.

Windows: for each of the C columns an assembly register shifts in one tap's cin pixels per
read (tap t ends at bytes t*cin ..), and ``load`` copies all C assembly registers into the
window registers the sums read from, so the next group's taps are read while this group's
columns are summed (hwbin/program.py ``_compile_first`` schedules both).

Timing: ``shift``, ``load``, ``col`` and ``weights`` act in the cycle they are given; the
pixel words and pad flags are wanted ``READ_AHEAD`` cycles before their ``shift`` (a block
RAM's output, registered here twice first); ``sums`` holds column ``col``'s R sums ``LATENCY`` cycles later.
"""
from __future__ import annotations

import math

from amaranth.hdl import Array, Cat, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


def pixel_bytes(word, cin: int) -> list:
    """The cin pixels of an input-memory word, as bytes: the word keeps bit (7 - plane) of
    channel ch at bit plane * cin + ch (docs/arithmetic.md's plane order)."""
    return [Cat(word[(7 - b) * cin + ch] for b in range(8)) for ch in range(cin)]


def tree_levels(n: int) -> int:
    """Adder levels of a pairwise sum of n >= 2 terms."""
    return math.ceil(math.log2(n))


class FirstLayerEngine(wiring.Component):
    #: cycles between a pixel word at ``pixels`` and its ``shift``
    READ_AHEAD = 2

    def __init__(self, rows: int, cols: int, cin: int, taps: int, lanes: int, width: int, stages: int):
        """``stages``: pipeline registers in the adder tree (at most its levels; fewer put
        several levels between two registers)."""
        self.rows, self.cols, self.cin, self.taps, self.lanes, self.width = rows, cols, cin, taps, lanes, width
        self.n = taps * cin
        assert 2 <= self.n <= lanes, "a window of at least two pixels, within one weight word's lanes"
        self.stages = max(1, min(stages, tree_levels(self.n)))
        #: cycles from ``col``/``weights`` to ``sums``: the operand register and the tree's
        self.LATENCY = 1 + self.stages
        super().__init__({
            "shift": In(1), "pixels": In(unsigned(cols * 8 * cin)), "pads": In(unsigned(cols)),
            "load": In(1), "col": In(range(max(2, cols))), "weights": In(unsigned(rows * lanes)),
            "sums": Out(unsigned(rows * width)),
        })

    @staticmethod
    def stages_for(n: int, most: int) -> int:
        """Pipeline registers for a window of n pixels when at most ``most`` fit the timing."""
        return max(1, min(tree_levels(n), most))

    def elaborate(self, platform):
        m = Module()
        R, C, cin, n, L = self.rows, self.cols, self.cin, self.n, self.lanes
        win_bits = 8 * n
        windows = []
        for c in range(C):
            asm = Signal(win_bits, name=f"assembly{c}")
            win = Signal(win_bits, name=f"window{c}")
            # a block RAM's output goes straight into a register with one load, which the
            # placer can put beside it (the output is slow: 5.8 ns on an ECP5), then into
            # a second one; the pad select comes only after that
            landed = Signal(8 * cin, name=f"landed{c}")
            word = Signal(8 * cin, name=f"pixels{c}")
            pad_landed, pad = Signal(name=f"pad_landed{c}"), Signal(name=f"pad{c}")
            m.d.sync += [landed.eq(self.pixels[c * 8 * cin:(c + 1) * 8 * cin]), word.eq(landed),
                         pad_landed.eq(self.pads[c]), pad.eq(pad_landed)]
            tap = Mux(pad, 0, Cat(*pixel_bytes(word, cin)))
            with m.If(self.shift):
                m.d.sync += asm.eq(Cat(asm[8 * cin:], tap) if n > cin else tap)
            with m.If(self.load):
                m.d.sync += win.eq(asm)
            windows.append(win)
        # the operands, registered: the column's window and the R rows' weight bits
        x = Signal(win_bits)
        w = Signal(R * n)
        m.d.sync += [x.eq(Array(windows)[self.col] if C > 1 else windows[0]),
                     w.eq(Cat(self.weights[r * L:r * L + n] for r in range(R)))]
        levels = tree_levels(n)
        # registers after these levels: spread evenly, the last level always registered
        regs = {math.ceil((j + 1) * levels / self.stages) for j in range(self.stages)}
        sums = []
        for r in range(R):
            terms = [x[8 * i:8 * i + 8] ^ w[r * n + i].replicate(8) for i in range(n)]
            for level in range(1, levels + 1):
                terms = [terms[i] + terms[i + 1] if i + 1 < len(terms) else terms[i] for i in range(0, len(terms), 2)]
                if level in regs:
                    held = [Signal(self.width, name=f"row{r}_l{level}_{i}") for i in range(len(terms))]
                    m.d.sync += [h.eq(t) for h, t in zip(held, terms)]
                    terms = held
            sums.append(terms[0])
        m.d.comb += self.sums.eq(Cat(*sums))
        return m
