"""Simulation speed, Verilator against Icarus, the same generated design, one run.

    python benchmarks/sim_speed.py [--ir build/digits.hwbin] [--verilator-vectors 20] [--icarus-vectors 2]

Both run the same cocotb testbench (driver, monitor, golden reference, scoreboard) on the same
Verilog; the figure is simulated clock cycles per wall-clock second inside the test (build
time excluded), and the ratio between the two simulators.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hwbin import ir  # noqa: E402
from hwbin import program as pg  # noqa: E402
from hwbin.data import load_dataset  # noqa: E402
from hwbin.rtl.emit import generate_rtl  # noqa: E402
from hwbin.sim import runner  # noqa: E402
from hwbin.util import format_table  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ir", default=str(ROOT / "build" / "digits.hwbin"), help="IR file (make demo writes this one)")
    ap.add_argument("--verilator-vectors", type=int, default=20)
    ap.add_argument("--icarus-vectors", type=int, default=2)
    args = ap.parse_args()
    m = ir.load(args.ir)
    x = load_dataset(m.source.get("dataset", "digits")).x_test
    with tempfile.TemporaryDirectory() as tmp:
        rtl = Path(tmp) / "rtl"
        generate_rtl(args.ir, rtl, pg.ArrayConfig())
        rows, rates = [], {}
        for sim, n in (("verilator", args.verilator_vectors), ("icarus", args.icarus_vectors)):
            s = runner.run(rtl, sim, x[:n])
            ok = s["mismatches"] == 0 and s["cycle_mismatches"] == 0
            rates[sim] = s["sim_cycles"] / s["wall_s"]
            rows.append([sim, n, s["sim_cycles"], f"{s['wall_s']:.1f}", f"{rates[sim]:,.0f}",
                         f"{n / s['wall_s']:.2f}", "yes" if ok else "NO"])
    print(f"model {m.hash[:16]}, array 8x4x32, {pg.cycle_model(pg.compile_program(m)).total} cycles per image")
    print(format_table(["simulator", "vectors", "cycles", "wall s", "cycles/s", "images/s", "exact"], rows))
    print(f"Verilator / Icarus: {rates['verilator'] / rates['icarus']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
