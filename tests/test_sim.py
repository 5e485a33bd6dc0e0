"""cocotb on the generated Verilog (Verilator and Icarus) against the golden model."""
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hwbin import golden, ir
from hwbin import program as pg
from hwbin.rtl.emit import generate_rtl, to_verilog
from hwbin.sim import runner

from .conftest import run_cli
from .helpers import random_ir, random_models, zoo_ir

CFG = pg.ArrayConfig(4, 4, 16)


@pytest.fixture(scope="module")
def tiny_rtl(tmp_path_factory):
    m, data = zoo_ir("digits-tiny")
    d = tmp_path_factory.mktemp("tiny")
    ir.save(m, d / "m.hwbin")
    generate_rtl(d / "m.hwbin", d / "rtl", CFG)
    return d / "rtl", data.x_test


@pytest.mark.parametrize("simulator,n", [("verilator", 24), ("icarus", 2)])
def test_vectors_bit_and_cycle_exact(tiny_rtl, simulator, n):
    rtl, x = tiny_rtl
    s = runner.run(rtl, simulator, x[:n])
    assert s["vectors"] == n
    assert s["mismatches"] == 0 and s["cycle_mismatches"] == 0, s["first_divergence"]
    assert s["measured_cycles"] == [s["predicted_cycles"]] * n


def test_backpressure_random_gaps_lose_nothing(tiny_rtl):
    rtl, x = tiny_rtl
    s = runner.run(rtl, "verilator", x[:12], gap=0.35, seed=5)
    assert s["vectors"] == 12 and s["mismatches"] == 0, s["first_divergence"]
    assert all(c > s["predicted_cycles"] for c in s["measured_cycles"])  # the gaps did stall it


@pytest.mark.parametrize("after", [20, 700])
def test_reset_in_the_middle_of_an_image(tiny_rtl, after):
    """Reset while loading (20 cycles) and while computing (700); the next images are right."""
    rtl, x = tiny_rtl
    s = runner.run(rtl, "verilator", x[:3], scenario="reset", reset_after=after)
    assert s["vectors"] == 3 and s["mismatches"] == 0 and s["cycle_mismatches"] == 0, s["first_divergence"]


def test_flipped_weight_bit_is_caught_with_first_divergence(tiny_rtl, tmp_path):
    rtl, x = tiny_rtl
    broken = tmp_path / "broken"
    shutil.copytree(rtl, broken, ignore=shutil.ignore_patterns("sim_build"))
    m = ir.load(rtl / "model.hwbin")
    # a conv0 weight whose flip the golden model sees on these images (an independent check)
    w = m.layers[0].arrays["weight"]
    ref = golden.run(m, x[:4]).scores
    o, ky, kx = next((o, ky, kx) for o in range(w.shape[0]) for ky in range(3) for kx in range(3)
                     if _flipped_changes_scores(m, x[:4], ref, (o, 0, ky, kx)))
    prog = pg.compile_program(m, CFG)
    # conv0 has one phase, one lane chunk, one group: row tile o // R holds taps t at word rt * 9 + t
    prog.weights[(o // CFG.rows) * 9 + ky * 3 + kx] ^= 1 << ((o % CFG.rows) * CFG.lanes)
    (broken / "hwbin_top.v").write_text(to_verilog(prog))
    s = runner.run_and_locate(broken, "verilator", x[:4])
    assert s["mismatches"] > 0
    d = s["first_divergence"]
    assert d["layer"] == "conv0" and d["channel"] == o, d
    assert d["expected"] != d["found"] and d["cycle"] > 0


def _flipped_changes_scores(m, x, ref, index) -> bool:
    w = m.layers[0].arrays["weight"]
    w[index] ^= 1
    try:
        return not np.array_equal(golden.run(m, x).scores, ref)
    finally:
        w[index] ^= 1


def test_cli_sim_on_a_trained_model(trained_run, tmp_path):
    r = run_cli("export", trained_run / "model.pt", "-o", tmp_path / "m.hwbin")
    assert r.returncode == 0, r.stderr
    r = run_cli("rtl", tmp_path / "m.hwbin", "-o", tmp_path / "rtl", "--rows", "8", "--cols", "2", "--lanes", "8")
    assert r.returncode == 0, r.stderr
    r = run_cli("sim", tmp_path / "rtl", "--vectors", "10")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "vectors 10, mismatches 0, cycle mismatches 0" in r.stdout
    bad = run_cli("sim", tmp_path / "nope")
    assert bad.returncode == 2 and "not a hwbin rtl folder" in bad.stderr and bad.stderr.count("\n") == 1


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(params=random_models(), rows=st.integers(1, 4), cols=st.integers(1, 4), lanes=st.sampled_from([2, 8, 32]))
def test_random_models_on_verilator(tmp_path, params, rows, cols, lanes):
    m, x = random_ir(params, 3)
    if m is None:
        return
    d = Path(tempfile.mkdtemp(dir=tmp_path))   # hypothesis may replay an example
    ir.save(m, d / "m.hwbin")
    generate_rtl(d / "m.hwbin", d / "rtl", pg.ArrayConfig(rows, cols, lanes))
    s = runner.run(d / "rtl", "verilator", x)
    assert s["mismatches"] == 0 and s["cycle_mismatches"] == 0, s["first_divergence"]


@pytest.mark.parametrize("name", ["digits-tiny", "digits-cnn"])
def test_uart_board_top_end_to_end(tmp_path, name):
    """The iCEBreaker's UART bridge as ``hwbin rtl --board icebreaker`` and ``hwbin synth --board
    icebreaker`` build it (the array the resource model picks for the UP5K, the UART divisor of
    the 24 MHz PLL clock): bytes in over rx, 4-byte results out over tx, vs the golden model.
    digits-cnn (make demo's shape) runs with its activations in SPRAM (2x1x16), through the
    SPRAM's behavioural model (rtl/spram.py). Only the PLL itself is not simulated (a vendor
    primitive)."""
    import json

    from cocotb_tools.runner import get_runner

    from hwbin.parts import BOARDS
    from hwbin.rtl import resources as rs
    from hwbin.rtl.board import bridge_verilog
    from hwbin.rtl.spram import sim_sources
    from hwbin.rtl.synth import BAUD

    m, data = zoo_ir(name)
    ir.save(m, tmp_path / "m.hwbin")
    cfg, _, _ = rs.choose_config(m, "icebreaker")
    assert pg.compile_program(m, cfg).spram == (name == "digits-cnn")
    divisor = round(BOARDS["icebreaker"].clock_mhz * 1e6 / BAUD)
    (tmp_path / "uart.v").write_text(bridge_verilog(pg.compile_program(m, cfg), divisor=divisor))
    np.save(tmp_path / "x.npy", data.x_test[:1])
    job = {"model": str(tmp_path / "m.hwbin"), "divisor": divisor, "vectors": str(tmp_path / "x.npy"),
           "config": {"rows": cfg.rows, "cols": cfg.cols, "lanes": cfg.lanes, "part": cfg.part},
           "summary": str(tmp_path / "summary.json")}
    (tmp_path / "job.json").write_text(json.dumps(job))
    runner.verilator_env()
    r = get_runner("verilator")
    r.build(sources=[tmp_path / "uart.v", *sim_sources((tmp_path / "uart.v").read_text(), tmp_path)],
            hdl_toplevel="hwbin_uart_top", build_dir=tmp_path / "b", build_args=["-Wno-fatal"], timescale=("1ns", "1ps"), log_file=tmp_path / "build.log")
    import contextlib

    with contextlib.suppress(SystemExit):
        r.test(test_module="hwbin.sim.tb_uart", hdl_toplevel="hwbin_uart_top", build_dir=tmp_path / "b",
               test_dir=tmp_path, extra_env={"HWBIN_SIM_JOB": str(tmp_path / "job.json")},
               log_file=tmp_path / "sim.log")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary == {"images": 1, "exact": 1}, (tmp_path / "sim.log").read_text()[-3000:]


def test_board_run_host_driver_over_a_pty(tmp_path):
    """``hwbin board run`` against a pseudo-terminal answered by the golden model (the protocol
    the simulated UART top passes above)."""
    import os
    import pty
    import threading

    from hwbin import golden
    from hwbin.cli import main

    m, data = zoo_ir("digits-tiny")
    ir.save(m, tmp_path / "m.hwbin")
    generate_rtl(tmp_path / "m.hwbin", tmp_path / "rtl", CFG)
    master, slave = pty.openpty()
    import tty

    tty.setraw(master)
    n_in = int(np.prod(m.input_shape))

    def board():
        for _ in range(3):
            got = b""
            while len(got) < n_in:
                got += os.read(master, n_in - len(got))
            image = np.frombuffer(got, np.uint8).reshape(m.input_shape[1] * m.input_shape[2], -1).T
            beats = pg.expected_beats(golden.run(m, image.reshape(m.input_shape)).scores[0])
            os.write(master, b"".join(v.to_bytes(4, "little", signed=True) for v in beats))

    t = threading.Thread(target=board, daemon=True)
    t.start()
    rc = main(["board", "run", "--port", os.ttyname(slave), "--rtl-dir", str(tmp_path / "rtl"), "--vectors", "3"])
    assert rc == 0
