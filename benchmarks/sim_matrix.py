"""The verification matrix: models x array configurations x simulators, test vectors each.

    python benchmarks/sim_matrix.py --ir digits-cnn=build/digits.hwbin --ir digits-mlp=build/mlp.hwbin \
        --ir shapes-seg=build/seg.hwbin [--configs 8x4x32,8x8x32] [--vectors 200] [--cpus 2] [--address auto]

Every cell generates the Verilog for one (model, configuration), runs the cocotb testbench
(driver, monitor, golden model as reference, scoreboard) on the first N test-set images with
the output always ready, and counts value mismatches against the golden model and output
beats off the cycle the cycle model predicts. The cells are a ``hwbin sweep sim`` (Ray tasks:
a local instance with ``--cpus`` cells at once, or a cluster with ``--address``); each is
printed as it finishes and kept in the sweep folder, so a matrix that is cut off resumes when
run again. The exit status is non-zero if any cell is not exact.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hwbin.sweep import SweepOptions, expand_grid, make_cells, run_sweep, sweep_exit_status  # noqa: E402
from hwbin.util import atomic_write_json  # noqa: E402


def slowest_first(cells):
    """Icarus cells first, then by predicted cycles: the workers then finish together."""
    from hwbin import ir
    from hwbin import program as pg
    from hwbin.sweep import parse_config

    models = {}

    def cycles(c):
        m = models.setdefault(c.params["ir"], ir.load(c.params["ir"]))
        return pg.layer_report(pg.compile_program(m, parse_config(c.params["config"])))["latency_cycles"]

    return sorted(cells, key=lambda c: (c.params["simulator"] != "icarus", -cycles(c)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ir", action="append", required=True, metavar="NAME=PATH", help="a model to verify (repeat)")
    ap.add_argument("--configs", default="8x4x32,8x8x32")
    ap.add_argument("--simulators", default="verilator,icarus")
    ap.add_argument("--vectors", type=int, default=200)
    ap.add_argument("--cpus", type=int, help="CPUs of the local Ray instance = cells at once (default: all)")
    ap.add_argument("--address", help="a Ray cluster to run on instead of a local instance")
    ap.add_argument("--sweep-dir", default=str(ROOT / "benchmarks" / "out" / "sim_matrix"))
    args = ap.parse_args()
    grid = {"ir": args.ir, "config": args.configs.split(","), "simulator": args.simulators.split(","),
            "vectors": args.vectors}
    cells = make_cells("sim", expand_grid("sim", grid))
    opts = SweepOptions(address=args.address, num_cpus=args.cpus, submit_order=slowest_first)
    results = run_sweep("sim", cells, args.sweep_dir, opts, grid)
    atomic_write_json(ROOT / "benchmarks" / "out" / "sim_matrix.json", results)
    return sweep_exit_status(results)


if __name__ == "__main__":
    sys.exit(main())
