"""The verification matrix: models x array configurations x simulators, test vectors each.

    python benchmarks/sim_matrix.py --ir digits-cnn=build/digits.hwbin --ir digits-mlp=build/mlp.hwbin \
        --ir shapes-seg=build/seg.hwbin [--configs 8x4x32,8x8x32] [--vectors 200] [--jobs 2]

Every cell generates the Verilog for one (model, configuration), runs the cocotb testbench
(driver, monitor, golden model as reference, scoreboard) on the first N test-set images with
the output always ready, and counts value mismatches against the golden model and output
beats off the cycle the cycle model predicts. Cells run in parallel (``--jobs``); the exit
status is non-zero if any cell is not exact.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hwbin import ir  # noqa: E402
from hwbin import program as pg  # noqa: E402
from hwbin.data import load_dataset  # noqa: E402
from hwbin.rtl.emit import generate_rtl  # noqa: E402
from hwbin.sim import runner  # noqa: E402
from hwbin.util import atomic_write_json, format_table  # noqa: E402


def run_cell(rtl: Path, simulator: str, ir_path: str, vectors: int) -> dict:
    """One simulator on one generated design; the testbench's summary."""
    m = ir.load(ir_path)
    x = load_dataset(m.source.get("dataset", "digits")).x_test[:vectors]
    return runner.run(rtl, simulator, x, bar=False)  # cells run side by side: their bars would interleave


def cell_row(cell, s: dict, vectors: int):
    """One cell's table row, its JSON record, and whether it is exact."""
    name, label, sim, _, _, predicted = cell
    ok = s["mismatches"] == 0 and s["cycle_mismatches"] == 0 and s["vectors"] == vectors
    measured = sorted(set(s["measured_cycles"]))
    row = [name, label, sim, s["vectors"], s["mismatches"], s["cycle_mismatches"], predicted,
           ",".join(map(str, measured)), f"{s['wall_s']:.0f}", f"{s['sim_cycles'] / s['wall_s']:,.0f}",
           "yes" if ok else "NO"]
    record = {"model": name, "config": label, "simulator": sim, "predicted_cycles": predicted,
              **{k: s[k] for k in ("vectors", "mismatches", "cycle_mismatches", "measured_cycles",
                                   "sim_cycles", "wall_s", "first_divergence")}}
    return row, record, ok


def save(records: list[dict], total: int) -> None:
    atomic_write_json(ROOT / "benchmarks" / "out" / "sim_matrix.json", {"cells_total": total, "cells": records})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ir", action="append", required=True, metavar="NAME=PATH", help="a model to verify (repeat)")
    ap.add_argument("--configs", default="8x4x32,8x8x32")
    ap.add_argument("--simulators", default="verilator,icarus")
    ap.add_argument("--vectors", type=int, default=200)
    ap.add_argument("--jobs", type=int, default=2, help="cells simulated at once")
    args = ap.parse_args()
    models = dict(item.split("=", 1) for item in args.ir)
    sims = args.simulators.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        cells = []
        for name, path in models.items():
            for label in args.configs.split(","):
                r, c, lanes = (int(v) for v in label.split("x"))
                rtl = Path(tmp) / f"{name}-{label}"
                rep = generate_rtl(path, rtl, pg.ArrayConfig(r, c, lanes))
                for sim in sims:
                    cells.append((name, label, sim, rtl, path, rep["latency_cycles"]))
        # the slowest cells (Icarus, most cycles) first, so the workers finish together
        order = sorted(range(len(cells)), key=lambda i: (cells[i][2] != "icarus", -cells[i][5]))
        results: dict[int, dict] = {}
        with ProcessPoolExecutor(args.jobs) as pool:
            futures = {pool.submit(run_cell, *[cells[i][k] for k in (3, 2, 4)], args.vectors): i for i in order}
            for future in as_completed(futures):
                i = futures[future]
                results[i] = future.result()
                # each cell as it finishes, and the JSON so far: a long run that is cut off keeps its cells
                row = cell_row(cells[i], results[i], args.vectors)[0]
                print(f"[{len(results)}/{len(cells)}] " + "  ".join(map(str, row)), flush=True)
                save([cell_row(cells[j], results[j], args.vectors)[1] for j in sorted(results)], len(cells))
    rows, records, exact = [], [], True
    for i in range(len(cells)):
        row, record, ok = cell_row(cells[i], results[i], args.vectors)
        rows.append(row)
        records.append(record)
        exact &= ok
    print(format_table(["model", "array", "simulator", "vectors", "mismatches", "cycle mism.", "predicted",
                        "measured", "wall s", "cycles/s", "exact"], rows))
    save(records, len(cells))
    return 0 if exact else 1


if __name__ == "__main__":
    sys.exit(main())
