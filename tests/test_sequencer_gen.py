"""The tile and drain tables as loop descriptors (program.compress_records): the Python
expansion gives back the flat lists ``Top`` stores, for every zoo model and random models at
several array configurations; the generator (rtl/sequencer_gen.py) in Amaranth's simulator
gives the same records under any pattern of requests."""
import random

import numpy as np
import pytest
from amaranth.sim import Simulator
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwbin import program as pg
from hwbin.models import MODELS
from hwbin.rtl.sequencer_gen import RecordGenerator, generator_tables, record_layout, table_layout
from hwbin.rtl.top import _pack, drain_rows, gather_words

from .helpers import random_ir, random_models, zoo_ir

#: the last: activations in SPRAM (program.Program.spram), the drain's table with its word fields
CONFIGS = [(4, 1, 16), (8, 4, 32), (2, 2, 8), (4, 4, 16), (16, 8, 64), (2, 1, 16, 100.0, "ice40-up5k")]


def flat(records, fields):
    """What the flat ROM holds for each record (a missing field reads 0), as a dict."""
    return [{f: int(r.get(f, 0)) for f in fields} for r in records]


def check_expansion(prog: pg.Program) -> None:
    full = {"tile": prog.tiles, "drain": drain_rows(prog, gather_words(prog))}
    for name, (records, fields, widths) in generator_tables(prog).items():
        loops = pg.compress_records(records, fields, widths)
        assert loops.length == len(records)
        assert pg.expand_records(loops) == flat(records, fields), name
        # the generator's record is the ROM's word: same fields, same widths
        assert record_layout(loops) == table_layout(full[name], fields)


def random_program(params, cfg):
    """The program of a hypothesis random model at ``cfg``, or None where the draw gives no
    model or the model does not run at that configuration."""
    m, _ = random_ir(params, n_images=1)
    if m is None:
        return None
    try:
        return pg.compile_program(m, pg.ArrayConfig(*cfg))
    except pg.ConfigError:
        return None


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "x".join(map(str, c)))
def test_loops_expand_to_the_tables_on_zoo_models(name, cfg):
    m, _ = zoo_ir(name)
    try:
        prog = pg.compile_program(m, pg.ArrayConfig(*cfg))
    except pg.ConfigError:
        pytest.skip("the model does not run at this configuration")
    check_expansion(prog)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_models(), st.sampled_from(CONFIGS))
def test_loops_expand_to_the_tables_on_random_models(params, cfg):
    prog = random_program(params, cfg)
    if prog is not None:
        check_expansion(prog)


def test_loops_are_few_for_digits_cnn():
    """The point of the exercise: digits-cnn at 4x1x16 (the UP5K's configuration) is a few
    dozen descriptor entries, not 1,862 + 1,795 rows."""
    m, _ = zoo_ir("digits-cnn")
    prog = pg.compile_program(m, pg.ArrayConfig(4, 1, 16))
    for name, (records, fields, widths) in generator_tables(prog).items():
        loops = pg.compress_records(records, fields, widths)
        assert len(loops.entries) <= 20, (name, len(loops.entries))


def test_expansion_is_exact_on_edge_lists():
    """Lists the zoo does not produce: one record, two, a repeated record, no pattern at
    all, and a rotating mask that grows (not a rotation: the XOR part carries it)."""
    rng = random.Random(1)
    lists = [[{"a": 5, "wen": 3}], [{"a": 1, "wen": 0}, {"a": 0, "wen": 8}],
             [{"a": 2, "wen": 6}] * 5,
             [{"a": rng.randrange(50), "wen": rng.randrange(1 << 6)} for _ in range(40)],
             [{"a": i % 3, "wen": (1 << (i % 4 + 1)) - 1} for i in range(30)]]
    for records in lists:
        loops = pg.compress_records(records, ["a", "wen"])
        assert pg.expand_records(loops) == flat(records, ["a", "wen"])


# --------------------------------------------------------------------------- the generator in simulation

def simulate(loops: pg.RecordLoops, pattern, restart_at=None) -> list[int]:
    """Drive ``next`` by ``pattern`` (one bool per cycle) after a restart; return ``data`` at
    every cycle ``next`` is high (the record consumed). ``restart_at``: a cycle to restart
    again (the records start over)."""
    dut = RecordGenerator(loops)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    got = []

    async def bench(ctx):
        ctx.set(dut.restart, 1)
        await ctx.tick()
        ctx.set(dut.restart, 0)
        for cyc, nxt in enumerate(pattern):
            if cyc == restart_at:
                ctx.set(dut.next, 0)
                ctx.set(dut.restart, 1)
                await ctx.tick()
                ctx.set(dut.restart, 0)
                got.append("restart")
            ctx.set(dut.next, nxt)
            if nxt:
                got.append(ctx.get(dut.data))
            await ctx.tick()

    sim.add_testbench(bench)
    sim.run()
    return got


def requests(n: int, seed: int) -> list[bool]:
    """``n`` requests with random gaps, and runs of back-to-back requests (gap 1 tiles)."""
    rng = np.random.default_rng(seed)
    out = []
    while sum(out) < n:
        out += [True] * int(rng.integers(1, 12)) + [False] * int(rng.integers(0, 3))
    return out


@pytest.mark.parametrize("table", ["tile", "drain"])
@pytest.mark.parametrize("cfg", [(4, 1, 16), (2, 1, 16, 100.0, "ice40-up5k")], ids=["4x1x16", "2x1x16-spram"])
def test_generator_gives_the_records_of_digits_cnn(table, cfg):
    """Every record the flat ROM held, in order, under random request gaps, and the last
    record held when requested past the end (Top's END entry is read twice); also with the
    activations in SPRAM (the drain's records carry their word and ``wdone``)."""
    m, _ = zoo_ir("digits-cnn")
    prog = pg.compile_program(m, pg.ArrayConfig(*cfg))
    assert prog.spram == (len(cfg) > 3)
    records, fields, widths = generator_tables(prog)[table]
    loops = pg.compress_records(records, fields, widths)
    layout = record_layout(loops)
    want = [_pack(layout, r) for r in records]
    got = simulate(loops, requests(len(records), 0) + [True] * 3)
    assert got[:len(want)] == want
    assert got[len(want):] == [want[-1]] * (len(got) - len(want))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_models(), st.sampled_from(CONFIGS), st.sampled_from(["tile", "drain"]), st.integers(0, 1000))
def test_generator_gives_the_records_of_random_models(params, cfg, table, seed):
    """As above on random models; a restart part way through starts the records over."""
    prog = random_program(params, cfg)
    if prog is None:
        return
    records, fields, widths = generator_tables(prog)[table]
    if not records:
        return
    loops = pg.compress_records(records, fields, widths)
    want = [_pack(record_layout(loops), r) for r in records]
    pattern = requests(len(records), seed)
    cut = min(len(pattern) - 1, seed % (len(pattern)))
    consumed = sum(pattern[:cut])
    pattern += requests(len(records), seed + 1)
    got = simulate(loops, pattern, restart_at=cut)
    i = got.index("restart")

    def held(n):                # n records consumed: past the end, the last one again
        return want[:n] + want[-1:] * (n - len(want))
    assert got[:i] == held(consumed)
    assert got[i + 1:] == held(len(got) - i - 1)


def test_resource_estimate_with_generators_frees_the_table_rams():
    """``estimate(generator=True)``: the tile and drain ROMs leave the block RAMs and come back
    as the generators' LUTs; everything else as with flat ROMs. On an iCE40 that is the default
    (``Top`` builds the generators there), on an ECP5 the ROMs stay."""
    from hwbin.rtl.resources import estimate, generator_luts

    m, _ = zoo_ir("digits-cnn")
    prog = pg.compile_program(m, pg.ArrayConfig(4, 1, 16, part="ice40-up5k"))
    flat_est, gen_est = estimate(prog, "ice40-up5k", generator=False), estimate(prog, "ice40-up5k", generator=True)
    assert estimate(prog, "ice40-up5k") == gen_est
    ecp5 = pg.compile_program(m, pg.ArrayConfig(4, 1, 16, part="ecp5-25f"))
    assert estimate(ecp5, "ecp5-25f") == estimate(ecp5, "ecp5-25f", generator=False)
    mems = flat_est["memories"]
    table_brams = mems["tile_rom"].get("brams", 0) + mems["drain_rom"].get("brams", 0)
    assert table_brams > 0
    assert gen_est["brams"] == flat_est["brams"] - table_brams
    luts = generator_luts(prog)
    assert gen_est["memories"]["tile_rom"]["luts"] == luts["tile"] > 0
    assert gen_est["memories"]["drain_rom"]["luts"] == luts["drain"] > 0
    assert gen_est["luts"] > flat_est["luts"]
    others = set(mems) - {"tile_rom", "drain_rom"}
    assert {k: gen_est["memories"][k] for k in others} == {k: mems[k] for k in others}
