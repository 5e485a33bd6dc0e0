"""The gateware in Amaranth's own simulator against numpy and the golden model, the array
program's checks, and the Verilog's determinism and lint."""
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest
from amaranth.sim import Simulator
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hwbin import golden, ir
from hwbin import program as pg
from hwbin.rtl import top
from hwbin.rtl.array import PEArray
from hwbin.rtl.emit import generate_rtl
from hwbin.rtl.first_layer import FirstLayerEngine
from hwbin.rtl.pysim import run_images
from hwbin.rtl.sequencer_gen import RecordGenerator

from .conftest import run_cli
from .helpers import random_ir, random_models, zoo_ir


@pytest.mark.parametrize("planes, depth, horner, pe_horner", [(2, 2, False, True), (1, 2, False, True), (3, 3, False, True),
                                                          (4, 2, True, True), (2, 2, False, False), (1, 2, False, False),
                                                          (3, 3, False, False), (1, 1, False, False)])
def test_pe_array_plane_sums_match_numpy(planes, depth, horner, pe_horner):
    """After a tile of ``planes`` x 3 steps (plane-major), PE (r, c)'s plane sum i is plane
    K-1-i's sum of popcount(act_c XOR w_r), or with Horner's rule sum_k 2^(K-1-k) * plane k's;
    the systolic array has them all LATENCY + (R - 1) + (C - 1) cycles after the last step."""
    R, C, L, per_plane, W = 3, 2, 7, 3, 12
    rng = np.random.default_rng(planes * 10 + depth)
    acts = rng.integers(0, 2, (planes, per_plane, C, L))
    wts = rng.integers(0, 2, (planes, per_plane, R, L))
    counts = (acts[:, :, None] ^ wts[:, :, :, None]).sum(-1).sum(1)     # (planes, R, C)
    if horner:
        want = [sum(counts[k] << (planes - 1 - k) for k in range(planes))]
    else:
        want = [counts[planes - 1 - i] for i in range(planes)]
    dut = PEArray(R, C, L, depth, W, pe_horner)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    got = {}

    def word(bits):
        return int("".join(map(str, bits.ravel()[::-1])), 2)

    async def bench(ctx):
        for tile in range(3):          # a tile must not see the previous one's sums
            for k in range(planes):
                for s in range(per_plane):
                    ctx.set(dut.valid, 1)
                    ctx.set(dut.start, s == 0)
                    ctx.set(dut.double, horner and s == 0 and k > 0)
                    ctx.set(dut.last, k == planes - 1 and s == per_plane - 1)
                    ctx.set(dut.acts, word(acts[k, s]))
                    ctx.set(dut.weights, word(wts[k, s]))
                    await ctx.tick()
                # a bubble after every other plane (nothing moves while valid is low), the
                # others back to back, tiles too
                if (tile + k) % 2 or (tile == 2 and k == planes - 1):
                    ctx.set(dut.valid, 0)
                    await ctx.tick()
        await ctx.tick().repeat(PEArray.LATENCY - 1 + (R - 1) + (C - 1))
        planes_word = ctx.get(dut.planes)
        mask = (1 << W) - 1
        got["s"] = [[[(planes_word >> (((r * C + c) * depth + i) * W)) & mask for c in range(C)] for r in range(R)]
                    for i in range(len(want))]

    sim.add_testbench(bench)
    sim.run()
    assert got["s"] == [w.tolist() for w in want]


@pytest.mark.parametrize("cin, taps, stages, chain_rows", [(1, 9, 4, 1), (1, 9, 4, 2), (1, 9, 2, 3), (3, 4, 2, 3),
                                                         (2, 3, 1, 1), (1, 2, 2, 2), (1, 3, 1, 2), (1, 4, 3, 1)])
def test_first_layer_engine_sums_match_numpy(cin, taps, stages, chain_rows):
    """Column c's row r sum is sum over the window of (pixel XOR 0xFF if w else pixel), the
    Horner sum over the 8 bit planes, from pixel words in the input memory's plane order,
    padded taps reading 0; the next group's taps shift in while this group's sums are read.
    Windows of odd and even sizes (a pixel or two left over from the pairs), extreme pixels
    and weights (all 0, all 255, all weights 1) among the random ones."""
    R, C, L, W = 3, 2, 32, 12
    rng = np.random.default_rng(cin * 100 + taps)
    groups = rng.integers(0, 256, (2, C, taps, cin))
    groups[0, 0], groups[1, 0] = 0, 255
    pads = rng.integers(0, 2, (2, C, taps))
    pads[:, 0] = 0
    groups[pads == 1] = 0
    wts = rng.integers(0, 2, (R, taps * cin))
    wts[0], wts[1] = 0, 1
    dut = FirstLayerEngine(R, C, cin, taps, L, W, stages, chain_rows)
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    def word(pixels):           # bit plane * cin + ch = bit 7 - plane of channel ch
        return sum(((int(pixels[ch]) >> (7 - k)) & 1) << (k * cin + ch) for k in range(8) for ch in range(cin))

    got = []

    async def shift_group(ctx, g):      # each pixel word READ_AHEAD cycles before its shift
        ahead = FirstLayerEngine.READ_AHEAD
        for t in range(taps + ahead):
            if t < taps:
                ctx.set(dut.pixels, sum(word(groups[g, c, t]) << (c * 8 * cin) for c in range(C)))
                ctx.set(dut.pads, sum(int(pads[g, c, t]) << c for c in range(C)))
            ctx.set(dut.shift, t >= ahead)
            await ctx.tick()
        ctx.set(dut.shift, 0)

    async def read_columns(ctx):
        sums = []
        for c in range(C):
            ctx.set(dut.col, c)
            await ctx.tick().repeat(dut.LATENCY)
            sums.append(ctx.get(dut.sums))
        return sums

    async def load(ctx):
        ctx.set(dut.load, 1)
        await ctx.tick()
        ctx.set(dut.load, 0)

    async def bench(ctx):
        ctx.set(dut.weights, sum(int(b) << (r * L + i) for r in range(R) for i, b in enumerate(wts[r])))
        await shift_group(ctx, 0)
        await load(ctx)
        await shift_group(ctx, 1)            # the next group's taps leave the windows alone
        got.append(await read_columns(ctx))
        await load(ctx)
        got.append(await read_columns(ctx))

    sim.add_testbench(bench)
    sim.run()
    for g in range(2):
        for c in range(C):
            x = groups[g, c].reshape(-1)
            want = [int(np.sum(np.where(wts[r] == 1, 255 - x, x))) for r in range(R)]
            assert [(got[g][c] >> (r * W)) & ((1 << W) - 1) for r in range(R)] == want, f"group {g} column {c}"


def _check_top(m, x, cfg):
    prog = pg.compile_program(m, cfg)
    predicted = pg.cycle_model(prog)
    ref = golden.run(m, x)
    for i, (values, cycles, reported) in enumerate(run_images(prog, x)):
        assert values == pg.expected_beats(ref.scores[i]), f"image {i}: values differ from the golden model"
        assert cycles == [int(c) for c in predicted.beat_cycles], f"image {i}: beat cycles differ from the model"
        assert reported == predicted.total


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=random_models(), rows=st.integers(1, 4), cols=st.integers(1, 5), lanes=st.sampled_from([1, 3, 8, 32]),
       part=st.sampled_from(["", "ice40-up5k"]))
@example(params=(4, [{"kind": "conv", "out": 4, "k": 1, "s": 1, "p": 0, "g": 1}, {"kind": "shuffle", "g": 2},
                     {"kind": "conv", "out": 4, "k": 1, "s": 1, "p": 0, "g": 1},
                     {"kind": "conv", "out": "classes", "k": 1, "s": 1, "p": 0, "g": 1}], "segment", 2, 0),
          rows=3, cols=1, lanes=1, part="").via("a partial last row tile must not write the next plane")
@example(params=(5, [{"kind": "conv", "out": 4, "k": 3, "s": 1, "p": 1, "g": 1},
                     {"kind": "dense", "out": "classes"}], "classify", 2, 1, 3),
          rows=2, cols=3, lanes=8, part="ice40-up5k").via("im2col of 3 input channels: 27 lanes in 4 chunks, the last partial")
@example(params=(5, [{"kind": "conv", "out": 4, "k": 3, "s": 1, "p": 1, "g": 1},
                     {"kind": "dense", "out": "classes"}], "classify", 2, 1, 3),
          rows=3, cols=4, lanes=32, part="ice40-up5k").via("first-layer engine, 3 channels: 27 bytes a window, a partial row tile")
@example(params=(5, [{"kind": "conv", "out": 4, "k": 3, "s": 2, "p": 1, "g": 1},
                     {"kind": "dense", "out": "classes"}], "classify", 2, 1),
          rows=2, cols=1, lanes=16, part="").via("first-layer engine, one column: taps left over for an assembly tile")
def test_top_bit_and_cycle_exact_on_random_models(params, rows, cols, lanes, part):
    """Every layer kind (grouped conv, deconv, shuffle, pool, dense) on random array shapes;
    on an iCE40 part the tile and drain tables come from record generators, not ROMs."""
    m, x = random_ir(params, 2)
    if m is None:
        return
    _check_top(m, x, pg.ArrayConfig(rows, cols, lanes, part=part))


_SPRAM_WORDS = (6, [{"kind": "conv", "out": 24, "k": 3, "s": 1, "p": 1, "g": 1}, {"kind": "pool", "k": 2},
                    {"kind": "conv", "out": 20, "k": 3, "s": 1, "p": 1, "g": 1}, {"kind": "dense", "out": "classes"}],
                "classify", 2, 5)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(params=random_models(), rows=st.integers(1, 4))
@example(params=_SPRAM_WORDS, rows=4).via("two 16-channel words a position: the pool pass per chunk, a partial last word")
@example(params=_SPRAM_WORDS, rows=3).via("rows across a word boundary: block RAM instead")
@example(params=(_SPRAM_WORDS[0], _SPRAM_WORDS[1], "classify", 1, 2), rows=2).via("one plane: two SPRAMs")
def test_top_bit_and_cycle_exact_with_activations_in_spram(params, rows):
    """The UP5K at one column of 16 lanes: the activations in SPRAM where the program allows
    it (program._spram_check; a shuffle, grouped channel bases off a word, or rows across a
    word keep block RAM), through the SPRAM's model (rtl/spram.py: an output read in a write
    cycle is all ones), bit- and cycle-exact."""
    m, x = random_ir(params, 2)
    if m is None:
        return
    _check_top(m, x, pg.ArrayConfig(rows, 1, 16, part="ice40-up5k"))


def test_spram_mode_where_the_program_allows_it():
    """Which programs put the activations in SPRAM, and the drain's word runs: every word a
    layer writes is completed (``wdone``) by exactly one tile, the last of its run."""
    m, x = random_ir(_SPRAM_WORDS, 1)
    assert pg.compile_program(m, pg.ArrayConfig(4, 1, 16, part="ice40-up5k")).spram
    assert not pg.compile_program(m, pg.ArrayConfig(3, 1, 16, part="ice40-up5k")).spram      # rows across words
    assert not pg.compile_program(m, pg.ArrayConfig(4, 2, 16, part="ice40-up5k")).spram      # two columns
    assert not pg.compile_program(m, pg.ArrayConfig(4, 1, 16)).spram                         # no part
    prog = pg.compile_program(m, pg.ArrayConfig(2, 1, 16, part="ice40-up5k"))
    assert prog.spram and prog.chunks == 2 and prog.region_width == 2 * 16
    for op in prog.ops:
        if op.kind != "compute" or op.is_score:
            continue
        words = [(prog.gather[t["gbase"] + t["T"]][0][0], t["chunk"], t["wdone"])
                 for t in (prog.tiles[i] for i in op.tiles) if t.get("nvalid")]
        done = [w[:2] for w in words if w[2]]
        assert len(done) == len(set(done)) == len({w[:2] for w in words})
        assert all(w[2] or w[:2] == nxt[:2] for w, nxt in zip(words, words[1:]))


@pytest.mark.parametrize("name", ["digits-mlp", "digits-cnn"])
def test_zoo_models_with_activations_in_spram(name):
    """The configuration ``--board icebreaker`` picks for them, 2x1x16 with the activations in
    SPRAM: digits-mlp's dense first layer through an im2col pass, digits-cnn's pool passes
    over four 16-channel words a position."""
    from hwbin.rtl import resources as rs

    m, data = zoo_ir(name)
    cfg, _, _ = rs.choose_config(m, "icebreaker")
    assert cfg.label() == "2x1x16" and pg.compile_program(m, cfg).spram
    _check_top(m, data.x_test[:1], cfg)


@pytest.mark.parametrize("name, part, thr_logic", [("digits-mlp", "", False), ("shapes-seg", "", False),
                                                   ("digits-mlp", "ice40-up5k", False), ("shapes-seg", "", True),
                                                   ("digits-cnn", "ice40-up5k", False)])
def test_top_bit_and_cycle_exact_on_zoo_models(name, part, thr_logic, monkeypatch):
    """A part shapes the memories: on the UP5K the output unit shares the drain's first
    multiplier. A threshold ROM in block RAM lands in a register of its own, one in logic
    is read a cycle later (rtl/top.py ``Top._thresholds``)."""
    if thr_logic:
        style = top.memory_style
        monkeypatch.setattr(top, "memory_style", lambda mem, p: "logic" if mem.name == "thr_rom" else style(mem, p))
    m, data = zoo_ir(name)
    _check_top(m, data.x_test[:1], pg.ArrayConfig(4, 4, 16, part=part))


@pytest.mark.parametrize("lanes, im2col, conv_steps, dense_chunks", [
    (8, 9 + 2 * 8, 1 * 2 * 8, 1),     # im2col: 9 tap reads + 2 chunks x 8 planes of writes; then 1 tap
    (1, 0, 9 * 1 * 8, 4),             # 1 lane: im2col saves nothing; 9 taps x 1 chunk x 8 planes
    (16, 0, (9 + 1) + 36, 1),         # the first-layer engine: 9 tap reads + a load, then 36 columns
])
def test_cycle_model_counts_tiles_and_steps(lanes, im2col, conv_steps, dense_chunks):
    """A hand count for one conv and one dense layer: tiles x (taps x chunks x planes), the
    im2col pass before a first layer with one input channel, and the fixed latencies."""
    m, x = random_ir((6, [{"kind": "conv", "out": 4, "k": 3, "s": 1, "p": 1, "g": 1},
                          {"kind": "dense", "out": "classes"}], "classify", 2, 1), 1)
    cfg = pg.ArrayConfig(rows=4, cols=36, lanes=lanes)   # one tile per layer
    prog = pg.compile_program(m, cfg)
    assert [op.kind for op in prog.ops] == ["im2col"] * bool(im2col) + ["compute", "compute"]
    assert prog.ops[-2].engine == ("first" if lanes >= 9 and not im2col else "array")
    rep = pg.cycle_model(prog)
    load = 36
    conv_start = load + (im2col - 1 + pg.PASS_LATENCY if im2col else 0)
    dense_steps = 36 * dense_chunks * 2        # 36 positions as taps, 4 channels, order 2
    conv_last = conv_start + conv_steps - 1
    skew = cfg.rows - 1                        # the drain waits for the array's last row
    # the dense layer may start before the conv's last write (program._early): its step i reads
    # position i (one tap per step, lane chunks fastest) at its issue + 2, which the conv wrote
    # 35 - i cycles before its last write: 36 cycles early. After the engine, its reads wait
    # for the engine's own late reads instead, C + COMPUTE_LATENCY + skew - 1 after its last step
    lead = 36 if im2col or lanes == 1 else 36 + pg.DRAIN_WRITE_LATENCY - (36 - 1)
    dense_start = conv_last + pg.COMPUTE_LATENCY + skew + 36 + pg.DRAIN_WRITE_LATENCY - lead
    dense_last = dense_start + dense_steps - 1
    first_request = dense_last + pg.COMPUTE_LATENCY + skew + 1 + pg.DRAIN_WRITE_LATENCY + 1
    assert rep.beat_cycles[0] == first_request + pg.OUTPUT_LATENCY
    assert rep.total == first_request + pg.OUTPUT_LATENCY + 4


def test_whole_image_utilization_counts_each_layer_once():
    """An im2col pass shares its layer with the compute op after it: the whole-image MACs are
    the model's (one count per layer), so the utilization of a busy array stays at or below 1
    (it was 100.1% for digits-cnn at 2x1x8, conv0 counted twice)."""
    m, _ = zoo_ir("digits-cnn")
    for cfg in (pg.ArrayConfig(2, 1, 8), pg.ArrayConfig(8, 4, 32)):
        prog = pg.compile_program(m, cfg)
        # at 8 lanes the 9-pixel window does not fit the engine: an im2col pass
        assert [op.kind for op in prog.ops[:2]] == (["im2col", "compute"] if cfg.lanes == 8 else ["compute", "compute"])
        rep = pg.layer_report(prog)
        assert rep["binary_macs"] == sum(lay.binary_macs() for lay in m.layers)
        assert rep["utilization"] == round(rep["binary_macs"] / (cfg.rows * cfg.cols * cfg.lanes)
                                           / rep["latency_cycles"], 4) <= 1


def test_config_errors_are_one_line_before_writing(tmp_path):
    m, _ = zoo_ir("digits-tiny")
    f = tmp_path / "m.hwbin"
    ir.save(m, f)
    r = run_cli("rtl", f, "-o", tmp_path / "rtl", "--rows", "0")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--rows" in r.stderr
    assert not (tmp_path / "rtl").exists()
    m.layers[0].in_bases = (200,) + m.layers[0].in_bases[1:]
    with pytest.raises(pg.ConfigError, match=r"layer 'conv0' field 'in_bases': 8 planes need each base twice the next"):
        pg.compile_program(m)


def test_any_integer_base_of_a_hidden_layer_compiles():
    """The drain multiplies by the bases, so a hidden layer's bases need no m * 2^e form."""
    m, _ = zoo_ir("digits-tiny")
    hidden = next(la for la in m.layers[1:] if la.kind in ("conv", "dense"))
    hidden.in_bases = (1000, 3)[:len(hidden.in_bases)]
    op = next(op for op in pg.compile_program(m).ops if op.layer is hidden)
    assert op.coefs == tuple(reversed(hidden.in_bases)) and not op.horner


def test_grouped_last_layer_is_rejected():
    m, _ = zoo_ir("digits-tiny")
    last = m.layers[-1]
    last.kind, last.groups, last.kernel, last.stride, last.padding = "conv", 2, (2, 2), (1, 1), (0, 0)
    with pytest.raises(pg.ConfigError, match="must not be grouped"):
        pg.compile_program(m)


def _lint(rtl_dir):
    from hwbin.sim.runner import verilator_env

    verilator_env()
    return subprocess.run(["verilator", "--lint-only", "-Wall", str(rtl_dir / "verilator.vlt"),
                           str(rtl_dir / "hwbin_top.v")], capture_output=True, text=True)


def test_one_layer_model_on_the_smallest_array_is_lint_clean(tmp_path):
    """One threshold word, one score word: memories of one word must not give [-1:0] addresses."""
    m, _ = random_ir((4, [{"kind": "dense", "out": "classes"}], "classify", 1, 0), 1)
    ir.save(m, tmp_path / "m.hwbin")
    generate_rtl(tmp_path / "m.hwbin", tmp_path / "rtl", pg.ArrayConfig(1, 1, 2))
    lint = _lint(tmp_path / "rtl")
    assert lint.returncode == 0 and "%Warning" not in lint.stderr, lint.stderr[-2000:]


def test_verilog_is_deterministic_with_header_and_lint_clean(tmp_path):
    m, _ = zoo_ir("digits-tiny")
    f = tmp_path / "m.hwbin"
    ir.save(m, f)
    r = run_cli("rtl", f, "-o", tmp_path / "a", "--rows", "4", "--cols", "4", "--lanes", "16")
    assert r.returncode == 0, r.stderr
    assert "utilization" in r.stdout
    generate_rtl(f, tmp_path / "b", pg.ArrayConfig(4, 4, 16))
    a = (tmp_path / "a" / "hwbin_top.v").read_bytes()
    assert a == (tmp_path / "b" / "hwbin_top.v").read_bytes()
    text = a.decode()
    assert text.startswith("// Generated by hwbin ") and m.hash in text.splitlines()[1]
    assert str(tmp_path) not in text and "src =" not in text and ".py:" not in text
    lint = _lint(tmp_path / "a")
    assert lint.returncode == 0 and "%Warning" not in lint.stderr, lint.stderr[-2000:]


def test_clocked_blocks_merge_per_module_in_order():
    """Each module's flip-flop blocks become one block holding their statements in order;
    every other line (a memory's own block, assigns) stays where it was."""
    from hwbin.rtl.emit import merge_clocked_blocks

    text = "\n".join([
        "module a(clk);", "  always @(posedge clk)", "    if (rst) q <= 1'h0;", "    else q <= d;",
        "  assign d = ~q;", "  always @(posedge clk)", "    r <= q;",
        "  always @(posedge clk) begin", "    m[0] <= d;", "  end", "endmodule",
        "module b(clk);", "  always @(posedge clk)", "    s <= t;", "endmodule", ""])
    assert merge_clocked_blocks(text).split("\n") == [
        "module a(clk);", "  always @(posedge clk) begin", "      if (rst) q <= 1'h0;", "      else q <= d;",
        "      r <= q;", "  end", "  assign d = ~q;",
        "  always @(posedge clk) begin", "    m[0] <= d;", "  end", "endmodule",
        "module b(clk);", "  always @(posedge clk) begin", "      s <= t;", "  end", "endmodule", ""]


def test_generated_verilog_has_no_process_or_lone_flip_flop_block():
    """What the Icarus speed rests on (rtl/emit.py): no ``always @*`` process left and no
    flip-flop in a block of its own."""
    from hwbin.rtl.emit import to_verilog

    m, _ = zoo_ir("digits-tiny")
    text = to_verilog(pg.compile_program(m, pg.ArrayConfig(4, 4, 16)))
    assert "always @*" not in text and "always @(posedge clk)\n" not in text


def test_cells_per_component_add_up_to_the_flat_design(tmp_path):
    """``modules`` in a synthesis report: the PE array, the top's sections and the top's own
    logic, whose cells add up to yosys's count of the flattened design, and the array holds
    at least every PE's plane sums in flip-flops (R x C x D x width)."""
    import json

    from hwbin.rtl.synth import synth_core

    m, _ = random_ir((6, [{"kind": "conv", "out": 4, "k": 3, "s": 1, "p": 1, "g": 1},
                          {"kind": "dense", "out": "classes"}], "classify", 2, 1), 1)
    ir.save(m, tmp_path / "m.hwbin")
    cfg = pg.ArrayConfig(2, 2, 8)
    generate_rtl(tmp_path / "m.hwbin", tmp_path / "rtl", cfg)
    s = synth_core(tmp_path / "rtl", "ice40-up5k", tmp_path / "synth")
    mods = s["modules"]
    assert set(mods) == {"array", "sequencer", "fetch", "drain", "passes", "writes", "output_unit", "top"}
    flat = json.loads((tmp_path / "synth" / "stat.json").read_text())["design"]["num_cells_by_type"]
    assert sum(c["lut4"] for c in mods.values()) == flat["SB_LUT4"] == s["luts"]["used"]
    assert sum(c["carry"] for c in mods.values()) == flat.get("SB_CARRY", 0)
    prog = pg.compile_program(m, cfg)
    assert mods["array"]["ff"] >= cfg.rows * cfg.cols * prog.depth * prog.pe_bits


def _dsp_netlist(shared_a: bool, board: bool = False):
    """A hand-made yosys JSON module: flip-flops (reset to 0, sync reset, no enable) on a
    MULT18X18D's A0..A1, B0 and P0..P1; with ``shared_a`` A1's flip-flop has a second load;
    ``board``: as amaranth's board tops make them, no reset but the global set/reset."""
    ff_params = {"CEMUX": "1 ", "CLKMUX": "CLK", "GSR": "ENABLED" if board else "DISABLED", "LSRMUX": "LSR",
                 "REGSET": "RESET", **({} if board else {"SRMODE": "LSR_OVER_CE"})}
    dirs = {"CLK": "input", "LSR": "input", "DI": "input", "Q": "output"}

    def ff(d, q):
        return {"type": "TRELLIS_FF", "parameters": dict(ff_params), "port_directions": dict(dirs),
                "connections": {"CLK": [2], "LSR": ["0" if board else 3], "DI": [d], "Q": [q]}}

    cells = {"fa0": ff(10, 20), "fa1": ff(11, 21), "fb0": ff(12, 22), "fp0": ff(30, 40), "fp1": ff(31, 41),
             "mul": {"type": "MULT18X18D", "parameters": {},
                     "port_directions": {"A0": "input", "A1": "input", "A2": "input", "B0": "input",
                                         "P0": "output", "P1": "output", "P2": "output"},
                     "connections": {"A0": [20], "A1": [21], "A2": ["0"], "B0": [22], "P0": [30], "P1": [31], "P2": [32]}}}
    if shared_a:
        cells["other"] = ff(21, 50)
    ports = {"clk": {"direction": "input", "bits": [2]}, "rst": {"direction": "input", "bits": [3]},
             "a": {"direction": "input", "bits": [10, 11]}, "b": {"direction": "input", "bits": [12]},
             "p": {"direction": "output", "bits": [40, 41]}}
    return {"modules": {"top": {"ports": ports, "cells": cells}}}


@pytest.mark.parametrize("shared_a, board", [(False, False), (True, False), (False, True)])
def test_dsp_registers_take_the_flip_flops_around_a_multiplier(shared_a, board):
    """The ECP5 flows move a multiplier's input and output flip-flops into the DSP's own
    registers, rewiring the nets so that the DSP reads the flip-flops' inputs and drives
    their outputs, with their reset and global set/reset; a group whose flip-flop has another
    load stays in the fabric."""
    from hwbin.rtl.synth import absorb_dsp_registers

    net = _dsp_netlist(shared_a, board)
    moved = absorb_dsp_registers(net)
    cells = net["modules"]["top"]["cells"]
    mul = cells["mul"]
    assert mul["connections"]["B0"] == [12] and mul["connections"]["P0"] == [40] and mul["connections"]["P1"] == [41]
    assert mul["connections"]["CLK0"] == [2] and mul["connections"]["RST0"] == ["0" if board else 3]
    assert mul["parameters"]["REG_OUTPUT_CLK"] == mul["parameters"]["REG_INPUTB_CLK"] == "CLK0"
    assert mul["parameters"]["GSR"] == ("ENABLED" if board else "DISABLED")      # as the flip-flops it stands for
    if shared_a:
        assert moved == 3 and "fa1" in cells and mul["connections"]["A1"] == [21]
        assert "REG_INPUTA_CLK" not in mul["parameters"]
    else:
        assert moved == 5 and mul["connections"]["A0"] == [10] and mul["connections"]["A1"] == [11]
        assert mul["parameters"]["REG_INPUTA_CLK"] == "CLK0"
    assert mul["connections"]["A2"] == ["0"] and mul["connections"]["P2"] == [32]
    assert absorb_dsp_registers(net) == 0           # once only: the DSP's registers are taken


def _bram_netlist(ce, lsr, rd_en="1", extra_load=False, gsr="DISABLED"):
    """A hand-made yosys JSON module: a 36-bit DP16KD (pseudo dual-port: port B reads, on DOA
    and DOB) whose DOA0 and DOB0 go to flip-flops with enable ``ce`` and reset ``lsr`` (a net
    number or "1" / "0"); DOA0's flip-flop has a copy (same input and control) read by a LUT;
    ``extra_load``: DOB0 is read by that LUT too."""
    ff_params = {"CEMUX": "CE" if isinstance(ce, int) else "1 ", "CLKMUX": "CLK", "GSR": gsr,
                 "LSRMUX": "LSR", "REGSET": "RESET", **({"SRMODE": "LSR_OVER_CE"} if lsr != "0" else {})}
    dirs = {"CLK": "input", "CE": "input", "LSR": "input", "DI": "input", "Q": "output"}

    def ff(d, q):       # (yosys leaves a flip-flop without reset without LSR and SRMODE)
        conn = {"CLK": [2], "DI": [d], "Q": [q], **({"CE": [ce]} if isinstance(ce, int) else {}),
                **({"LSR": [lsr]} if lsr != "0" else {})}
        return {"type": "TRELLIS_FF", "parameters": dict(ff_params), "port_directions": dict(dirs), "connections": conn}

    ram = {"type": "DP16KD",
           "parameters": {"DATA_WIDTH_A": "00000000000000000000000000100100", "DATA_WIDTH_B": "00000000000000000000000000100100",
                          "REGMODE_A": "NOREG", "REGMODE_B": "NOREG", "RESETMODE": "ASYNC"},
           "port_directions": {"CLKA": "input", "CLKB": "input", "CEB": "input", "OCEA": "input", "OCEB": "input",
                               "RSTA": "input", "RSTB": "input", "DOA0": "output", "DOA1": "output", "DOB0": "output"},
           "connections": {"CLKA": [2], "CLKB": [2], "CEB": [rd_en], "OCEA": ["0"], "OCEB": ["1"], "RSTA": ["0"],
                           "RSTB": ["0"], "DOA0": [10], "DOA1": [11], "DOB0": [12]}}
    lut = {"type": "LUT4", "parameters": {}, "port_directions": {"A": "input", "B": "input", "C": "input", "Z": "output"},
           "connections": {"A": [21], "B": [12 if extra_load else 22], "C": [20], "Z": [30]}}
    cells = {"ram": ram, "fa": ff(10, 20), "fa_copy": ff(10, 21), "fb": ff(12, 22), "lut": lut}
    ports = {"clk": {"direction": "input", "bits": [2]}, "rst": {"direction": "input", "bits": [3]},
             "en": {"direction": "input", "bits": [4]}, "z": {"direction": "output", "bits": [30]}}
    return {"modules": {"top": {"ports": ports, "cells": cells}}}


@pytest.mark.parametrize("ce, lsr, rd_en, extra_load, gsr, folds", [
    ("1", 3, "1", False, "DISABLED", True),        # the landing registers (reset by the domain's reset)
    (4, "0", 4, False, "DISABLED", True),          # the tile register (an enable, no reset)
    ("1", "0", "1", False, "DISABLED", True),      # no enable, no reset
    (4, 3, "1", False, "DISABLED", False),         # enable and reset: the block's priorities are not the flip-flop's
    ("1", 3, 4, False, "DISABLED", False),         # reset and a read enable: the reset may clear the read latch
    ("1", 3, "1", True, "DISABLED", False),        # a data output read by logic too
    ("1", "0", "1", False, "ENABLED", True),       # reset by the global set/reset (amaranth's board tops): so is the block
])
def test_bram_output_register_takes_the_landing_flip_flops(ce, lsr, rd_en, extra_load, gsr, folds):
    """The ECP5 core flow moves the flip-flops right after a DP16KD's read data into the
    block's output register (REGMODE OUTREG, their enable and reset on OCE and RST), the
    block then driving their outputs (a copy's loads read the same net); a read port with any
    other load, or with an enable and a reset both in use, stays as it was."""
    from hwbin.rtl.synth import absorb_bram_output_registers

    net = _bram_netlist(ce, lsr, rd_en, extra_load, gsr)
    cells = net["modules"]["top"]["cells"]
    ram = cells["ram"]
    moved = absorb_bram_output_registers(net)
    if not folds:
        assert moved == 0 and {"fa", "fa_copy", "fb"} <= set(cells)
        assert ram["parameters"]["REGMODE_A"] == ram["parameters"]["REGMODE_B"] == "NOREG"
        return
    assert moved == 3 and not {"fa", "fa_copy", "fb"} & set(cells)
    conn, prm = ram["connections"], ram["parameters"]
    assert conn["DOA0"] == [20] and conn["DOB0"] == [22] and conn["DOA1"] == [11]      # DOA1: no load, untouched
    assert cells["lut"]["connections"]["A"] == [20]              # the copy's load reads the register
    assert prm["REGMODE_A"] == prm["REGMODE_B"] == "OUTREG" and prm["GSR"] == gsr
    assert conn["OCEA"] == conn["OCEB"] == [ce] and conn["RSTA"] == conn["RSTB"] == [lsr]
    assert prm["RESETMODE"] == ("SYNC" if isinstance(lsr, int) else "ASYNC")
    assert absorb_bram_output_registers(net) == 0           # once only: the output register is taken


def test_board_build_script_splits_after_yosys():
    """The board flow runs amaranth's build script in two parts, the netlist edits between:
    each part keeps the script's settings, yosys ends the first, nextpnr and the packer the
    second, in their order."""
    from hwbin.rtl.synth import split_build_script

    script = ('#!/bin/sh\nset -e\n: ${YOSYS:=yosys}\n: ${NEXTPNR_ECP5:=nextpnr-ecp5}\n'
              '"$YOSYS" -q -l top.rpt top.ys\n"$NEXTPNR_ECP5" --json top.json\n"$ECPPACK" --input top.config\n')
    synth, pnr = split_build_script(script)
    for part in (synth, pnr):
        assert part.startswith("#!/bin/sh\nset -e\n: ${YOSYS:=yosys}\n: ${NEXTPNR_ECP5:=nextpnr-ecp5}\n")
    assert synth.endswith('"$YOSYS" -q -l top.rpt top.ys\n') and "NEXTPNR_ECP5\" " not in synth
    assert pnr.endswith('"$NEXTPNR_ECP5" --json top.json\n"$ECPPACK" --input top.config\n') and '"$YOSYS"' not in pnr


@pytest.mark.parametrize("board", ["ulx3s", "icebreaker"])
def test_board_build_script_of_amaranth_splits_into_its_tool_lines(board):
    """On the script amaranth writes for each board (an empty design, not built): the two
    parts together run each of its tool lines once, in order, yosys last in the first part and
    nextpnr first in the second."""
    import importlib

    from amaranth.hdl import Module

    from hwbin.parts import BOARDS
    from hwbin.rtl.synth import split_build_script

    b = BOARDS[board]
    platform = getattr(importlib.import_module(b.module), b.platform)()
    plan = platform.build(Module(), name="t", do_build=False)
    script = plan.files[f"{plan.script}.sh"]
    script = script.decode() if isinstance(script, bytes) else script
    synth, pnr = split_build_script(script)
    tools = [ln for ln in script.splitlines() if ln.startswith('"$')]
    ran = [ln for part in (synth, pnr) for ln in part.splitlines() if ln.startswith('"$')]
    assert ran == tools and len(tools) >= 3
    assert synth.splitlines()[-1].startswith('"$YOSYS"')
    assert next(ln for ln in pnr.splitlines() if ln.startswith('"$')).startswith('"$NEXTPNR_')


def test_unused_carry_outs_are_disconnected_and_used_ones_kept():
    """Only a CCU2C carry out that nothing reads loses its connection: the one feeding the
    next cell of its chain, and one read by logic, stay."""
    from hwbin.rtl.synth import drop_unused_carry_outs

    def ccu(cin, cout):
        return {"type": "CCU2C", "parameters": {}, "port_directions": {"CIN": "input", "COUT": "output"},
                "connections": {"CIN": [cin], "COUT": [cout]}}

    cells = {"c0": ccu("0", 10), "c1": ccu(10, 11), "c2": ccu("0", 12),
             "lut": {"type": "LUT4", "parameters": {}, "port_directions": {"A": "input", "Z": "output"},
                     "connections": {"A": [12], "Z": [13]}}}
    net = {"modules": {"top": {"ports": {"z": {"direction": "output", "bits": [13]}}, "cells": cells}}}
    assert drop_unused_carry_outs(net) == 1
    assert cells["c1"]["connections"]["COUT"] == ["x"]
    assert cells["c0"]["connections"]["COUT"] == [10] and cells["c2"]["connections"]["COUT"] == [12]


@pytest.mark.parametrize("part, cols", [("", 2), ("ice40-up5k", 2), ("ice40-up5k", 1)])
def test_resource_model_memories_are_the_designs(part, cols):
    """rtl/resources.py's memory shapes are the elaborated Top's memories (depth, width, how
    many), and on a part each ROM carries the style the model counted; the tables the model
    says a generator replaces (on an iCE40) are no memories but generators. At one column on
    the UP5K the activations are in SPRAMs (their model keeps the words used)."""
    from hwbin.rtl import resources as rs
    from hwbin.rtl.top import Top

    m, _ = zoo_ir("digits-tiny")
    prog = pg.compile_program(m, pg.ArrayConfig(4, cols, 16, 100.0, part))
    assert prog.spram == (cols == 1)
    got = {}
    top = Top(prog)
    mems, gens = _memories_of(top)
    for name, mem in mems:
        base = name.rstrip("0123456789")
        got.setdefault(base, []).append((mem.depth, mem.shape.width, mem.attrs.get("ram_style", "")))
    shapes = rs.memory_shapes(prog)
    generated = {s.name for s in shapes if rs.memory_style(s, part) == "generator"}
    assert generated == (set(rs.GENERATED) if part else set())
    want = {s.name: [(s.depth, s.width, rs.memory_style(s, part))] * s.copies for s in shapes if s.name not in generated}
    assert got == want
    assert {n.removesuffix("_gen") + "_rom" for n in gens} == generated
    depth, width, _ = got["score_mem"][0]
    assert prog.memory_bits()["score_buffer"] == depth * width         # the report's figure is the memory's


def _memories_of(top):
    from amaranth.lib import memory

    from amaranth.hdl import Fragment

    m = top.elaborate(None)
    from hwbin.rtl.spram import Spram

    mems = [(n, sub) for n, (sub, _) in m._named_submodules.items() if isinstance(sub, memory.Memory)]
    mems += [(n, SimpleNamespace(depth=sub.depth, shape=SimpleNamespace(width=len(sub.rdata)), attrs={"ram_style": "spram"}))
             for n, (sub, _) in m._named_submodules.items() if isinstance(sub, Spram)]
    gens = [n for n, (sub, _) in m._named_submodules.items() if isinstance(sub, RecordGenerator)]
    Fragment.get(m, None)           # elaborated once: no unused-elaboratable warnings
    top._MustUse__silence = True    # the Top itself was elaborated by hand above (amaranth's MustUse flag)
    return mems, gens


def test_board_picks_a_config_that_the_model_says_fits_or_refuses_in_one_line(tmp_path):
    """--board icebreaker: digits-tiny gets the fastest configuration (fewest cycles an image)
    within the UP5K's totals by the resource model, not the one with the most lanes (its layers
    use at most 16; and the Verilog is shaped for the part); digits-cnn (make demo's
    shape) fits with its activations in the four SPRAMs (2x1x16: the primitives are in the
    Verilog); shapes-seg fits none and is refused with one line, before anything is written."""
    from hwbin.rtl import resources as rs

    tiny, _ = zoo_ir("digits-tiny")
    cfg, est, tried = rs.choose_config(tiny, "icebreaker")
    assert cfg.part == "ice40-up5k" and not rs.fits(est, "ice40-up5k")
    cycles = pg.cycle_model(pg.compile_program(tiny, cfg)).total
    assert all(t[3] or t[2] >= cycles for t in tried)
    assert rs.choose_config(tiny, "ecp5-85f")[0].part == "ecp5-85f"       # a part named alone
    assert any(not t[3] and t[0].rows * t[0].cols * t[0].lanes > cfg.rows * cfg.cols * cfg.lanes for t in tried)
    cnn, _ = zoo_ir("digits-cnn")
    ir.save(cnn, tmp_path / "cnn.hwbin")
    r = run_cli("rtl", tmp_path / "cnn.hwbin", "-o", tmp_path / "cnn", "--board", "icebreaker")
    assert r.returncode == 0 and "array 2x1x16 on the ice40-up5k" in r.stdout and "4 of 4 SPRAMs" in r.stdout
    assert (tmp_path / "cnn" / "hwbin_top.v").read_text().count("SB_SPRAM256KA ") == 4
    seg, _ = zoo_ir("shapes-seg")
    ir.save(seg, tmp_path / "seg.hwbin")
    r = run_cli("rtl", tmp_path / "seg.hwbin", "-o", tmp_path / "rtl", "--board", "icebreaker")
    assert r.returncode != 0 and r.stderr.count("\n") == 1 and "fits no array configuration" in r.stderr
    assert not (tmp_path / "rtl").exists()


def test_ice40_model_counts_the_cells_yosys_maps_for_the_config_it_picks(tmp_path):
    """digits-tiny on the UP5K: the configuration ``--board icebreaker`` picks, mapped by yosys
    (synth_ice40 -dsp, as the board build): its DSPs are the model's, its block RAMs at most one
    fewer, its LUT4s
    and flip-flops within 10%, and the logic cells those counts stand for (``ICE40_MODEL["lc"]``,
    fitted on nextpnr's placements) stay under the placement limit, as the estimate did. The
    placement itself is benchmarks/ice40_fit.py's (minutes)."""
    from hwbin.rtl import resources as rs
    from hwbin.rtl.synth import synth_core

    tiny, _ = zoo_ir("digits-tiny")
    cfg, est, _ = rs.choose_config(tiny, "icebreaker")
    ir.save(tiny, tmp_path / "tiny.hwbin")
    generate_rtl(tmp_path / "tiny.hwbin", tmp_path / "rtl", cfg)
    s = synth_core(tmp_path / "rtl", "ice40-up5k", tmp_path / "synth")
    assert s["dsps"]["used"] == est["dsps"]
    assert s["brams"]["used"] <= est["brams"] <= s["brams"]["used"] + 1      # yosys packs one memory tighter
    assert s["luts"]["used"] == pytest.approx(est["lut4"], rel=0.1)
    assert s["ffs"]["used"] == pytest.approx(est["ffs"], rel=0.1)
    lc = rs.ICE40_MODEL["lc"]
    assert lc["lut"] * s["luts"]["used"] + lc["ff"] * s["ffs"]["used"] <= rs.available("ice40-up5k")["luts"]


@pytest.mark.parametrize("fout, divf, divq", [(24, 63, 5), (40, 52, 4), (42, 55, 4)])
def test_ice40_pll_dividers_match_icepll(fout, divf, divq):
    """The divider search against settings icepll printed for a 12 MHz input (its generated
    Verilog in public iCEBreaker projects): DIVR 0, FILTER_RANGE 1."""
    from hwbin.rtl.clock import ice40_pll

    pll = ice40_pll(12, fout)
    assert pll.dividers == {"DIVR": 0, "DIVF": divf, "DIVQ": divq, "FILTER_RANGE": 1}
    assert pll.mhz == pytest.approx(12 * (divf + 1) / 2 ** divq)


@pytest.mark.parametrize("fout", [25, 75, 100, 125])
def test_ecp5_pll_dividers_inside_the_data_sheet(fout):
    """EHXPLLL from 25 MHz: the VCO at 400-800 MHz, the phase detector at 3.125 MHz or more,
    the output exactly the request where the dividers reach it (ECP5 sysCLOCK guide)."""
    from hwbin.rtl.clock import ecp5_pll

    pll = ecp5_pll(25, fout)
    d = pll.dividers
    assert 400 <= pll.mhz * d["CLKOP_DIV"] <= 800 and 25 / d["CLKI_DIV"] >= 3.125
    assert pll.mhz == pytest.approx(25 * d["CLKFB_DIV"] / d["CLKI_DIV"]) == fout
