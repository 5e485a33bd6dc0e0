"""A record generator: the tile table (or the drain's table) from a few loop descriptors.

``Top`` reads one record per tile from the tile ROM and one per drained tile from the drain
ROM, always in order. Stored flat they took 57 block RAMs for digits-cnn at 4x1x16 (an iCE40
UP5K has 30); as loop descriptors (``hwbin.program.compress_records``: a member is ``count``
records a constant delta apart, a body of members repeats, see there) they are about 15 ROM
entries, small enough for logic. This component runs ``program.loop_states``' state machine:

    restart   (priority) the next cycle, ``data`` is record 0
    next      the next cycle, ``data`` is the record after the current one (one record per
              cycle when next is held; after the last record it stays there)

so ``data`` always holds the record to consume next, and the consumer pulses ``next`` when it
takes it: ``data`` is a register (no block RAM output, no logic after the flip-flops), laid
out as ``table_layout(records, fields)`` (fields in order, each as wide as its largest
value), the layout of ``Top``'s ROM words. How ``Top`` would use it, in place of its ROM reads:

- tile path, records ``prog.tiles[1:]`` over TILE_FIELDS (tile 0 is the tile register's
  reset value; the widths of the whole table's layout: ``generator_tables``): ``restart = ~running`` (the ROM read address 1), ``next = advance`` (the ROM
  read idx + 2): ``data`` is then tiles[idx + 1] exactly when ``tile_rp.data`` was.
- drain path, records = the drained tiles only (``drained_rows``: compute and engine tiles
  with columns; the drain never reads the others) over DRAIN_FIELDS: ``restart = ~running``,
  ``next = capture`` (the cycle the drain registers the record), and ``drain_rp.data`` becomes
  ``data``: the address and the ``early`` read go, as ``data`` already holds the next tile
  the drain will take. Captures may come on consecutive cycles (gap 1): ``data`` follows.

Per cycle: the entry ``pc`` is read from the descriptor ROM (asynchronously: it is a few
entries, kept in LUTs), its count, repetitions and flags pick one of its three deltas (step,
exit or wrap, leave), and every field adds its part of it (modulo its width); a rotating field
(``wen``) rotates by one of the few amounts the program uses and XORs a mask.
"""
from __future__ import annotations

from amaranth.hdl import Array, Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from hwbin import program as pg


def drained_rows(prog: pg.Program, rows: list[dict]) -> list[dict]:
    """The rows of the tiles the drain takes, in order (``rows``: rtl/top.py's drain_rows)."""
    return [r for t, r in zip(prog.tiles, rows) if t["kind"] in (pg.KIND_COMPUTE, pg.KIND_FIRST) and t.get("nvalid")]


def generator_tables(prog: pg.Program) -> dict:
    """{name: (records, fields, widths)} of the two tables a generator replaces: the tile
    ROM's rows after tile 0 (Top's tile register starts with it) and the rows of the tiles the
    drain takes, each with the field widths of Top's layout for the whole table."""
    from .top import TILE_FIELDS, drain_fields, drain_rows, gather_words

    drows = drain_rows(prog, gather_words(prog))
    fields = drain_fields(prog)
    return {"tile": (prog.tiles[1:], TILE_FIELDS, pg.record_widths(prog.tiles, TILE_FIELDS)),
            "drain": (drained_rows(prog, drows), fields, pg.record_widths(drows, fields))}


def fields_layout(fields, widths) -> data.StructLayout:
    """A record word: the fields in order from bit 0, each an unsigned of its width."""
    return data.StructLayout({f: unsigned(w) for f, w in zip(fields, widths)})


def table_layout(records: list[dict], fields: list[str]) -> data.StructLayout:
    """The word of a table of ``records`` (``Top``'s tile and drain ROMs): each field as wide
    as its largest value (``program.record_widths``)."""
    return fields_layout(fields, pg.record_widths(records, fields))


def record_layout(loops: pg.RecordLoops) -> data.StructLayout:
    """The generated record's layout: ``table_layout`` of the same records and fields."""
    return fields_layout(loops.fields, loops.widths)


class RecordGenerator(wiring.Component):
    """``data``: the current record (see the module docstring for ``restart`` and ``next``)."""

    def __init__(self, loops: pg.RecordLoops):
        self.loops = loops
        self.layout = record_layout(loops)
        self.rotations = dict(zip(loops.rotate, loops.rotations()))
        self.delta_layout = data.StructLayout({
            f: (unsigned(w) if f not in loops.rotate else
                data.StructLayout({"amount": unsigned(max(1, (len(self.rotations[f]) - 1).bit_length())),
                                   "xor": unsigned(w)}))
            for f, w in zip(loops.fields, loops.widths)})
        b = loops.entry_bits()
        self.entry_layout = data.StructLayout({
            "count": unsigned(b["count"]), "reps": unsigned(b["reps"]), "back": unsigned(b["back"]),
            "last": unsigned(1), "stop": unsigned(1),
            "step": self.delta_layout, "exit": self.delta_layout, "leave": self.delta_layout})
        super().__init__({"restart": In(1), "next": In(1), "data": Out(self.layout.size)})

    # ------------------------------------------------------------------ the ROM's words
    def _delta_word(self, d: tuple) -> int:
        word = 0
        for (name, fld), f, w, x in zip(self.delta_layout, self.loops.fields, self.loops.widths, d):
            if f in self.loops.rotate:
                amount, xor = x
                v = self.rotations[f].index(amount) | (xor << fld.shape["xor"].offset)
            else:
                v = x % (1 << w)                      # two's complement in the field's width
            word |= v << fld.offset
        return word

    def entry_words(self) -> list[int]:
        words = []
        for e in self.loops.entries:
            parts = {"count": e.count - 1, "reps": e.reps - 1, "back": e.back, "last": int(e.last),
                     "stop": int(e.stop), "step": self._delta_word(e.step), "exit": self._delta_word(e.exit),
                     "leave": self._delta_word(e.leave)}
            words.append(sum(parts[name] << fld.offset for name, fld in self.entry_layout))
        return words

    def first_word(self) -> int:
        return sum(v << fld.offset for (_, fld), v in zip(self.layout, self.loops.first))

    # ------------------------------------------------------------------ elaborate
    def elaborate(self, platform):
        m = Module()
        loops = self.loops
        words = self.entry_words()
        # a ROM of at least two words (a one-word memory has a zero-width address)
        m.submodules.desc_rom = rom = memory.Memory(shape=unsigned(self.entry_layout.size), depth=max(2, len(words)),
                                                    init=words, attrs={"ram_style": "logic"})
        rp = rom.read_port(domain="comb")
        e = data.View(self.entry_layout, rp.data)
        pc = Signal(range(max(2, len(words))))
        k = Signal(self.entry_layout["count"].shape)
        r = Signal(self.entry_layout["reps"].shape)
        v = Signal(self.layout.size, init=self.first_word())
        rec = data.View(self.layout, v)
        m.d.comb += [rp.addr.eq(pc), self.data.eq(v)]

        end_member = k == e.count
        wrap = e.last & (r != e.reps)
        hold = e.last & ~wrap & e.stop & end_member
        delta = data.View(self.delta_layout,
                          Mux(~end_member, e.step.as_value(),
                              Mux(~e.last | wrap, e.exit.as_value(), e.leave.as_value())))
        nxt = []
        for f in loops.fields:
            x, d = rec[f], delta[f]
            if f in loops.rotate:
                rot = Array([x.rotate_left(a) for a in self.rotations[f]])[d.amount]
                nxt.append(rot ^ d.xor)
            else:
                nxt.append((x + d)[:len(x)])
        with m.If(self.restart):
            m.d.sync += [v.eq(v.init), pc.eq(0), k.eq(0), r.eq(0)]
        with m.Elif(self.next & ~hold):
            m.d.sync += v.eq(Cat(*nxt))
            with m.If(~end_member):
                m.d.sync += k.eq(k + 1)
            with m.Elif(~e.last):
                m.d.sync += [pc.eq(pc + 1), k.eq(0)]
            with m.Elif(wrap):
                m.d.sync += [pc.eq(pc - e.back), k.eq(0), r.eq(r + 1)]
            with m.Else():
                m.d.sync += [pc.eq(pc + 1), k.eq(0), r.eq(0)]
        return m
