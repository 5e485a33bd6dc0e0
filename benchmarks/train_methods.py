"""Every training method on digits-cnn and digits-tiny (and 4 on shapes-seg), several
seeds, the same epoch budget; one table per model like the seed's Table 1.

Accuracy of a fully binary model is the golden model's (what the hardware computes);
fp and bwn (not deployable: real-valued activations) report torch eval.

    .venv/bin/python benchmarks/train_methods.py                  # everything (about an hour on 2 cores)
    .venv/bin/python benchmarks/train_methods.py --models digits-tiny --seeds 3
    .venv/bin/python benchmarks/train_methods.py --address auto   # on a Ray cluster ('ray start --head')

The runs are the cells of a ``hwbin sweep train`` (Ray tasks, one CPU and one torch thread
each by default); its folder (``--sweep-dir``) keeps every finished run, so an interrupted
benchmark picks up where it stopped when run again.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwbin.sweep import SweepOptions, make_cells, run_sweep  # noqa: E402
from hwbin.sweep_report import train_tables  # noqa: E402
from hwbin.train.schedule import METHODS  # noqa: E402
from hwbin.util import atomic_write_json  # noqa: E402

SEG_METHODS = ("fp", "xnor", "horq", "srb")


def grid(models: list[str], methods: list[str], seeds: int, epochs: int) -> list[dict]:
    """Models x methods x seeds; shapes-seg only with the methods worth its time."""
    return [{"model": model, "method": method, "seed": seed, "epochs": epochs}
            for model in models for method in methods if model != "shapes-seg" or method in SEG_METHODS
            for seed in range(seeds)]


def as_records(rows: list[dict]) -> list[dict]:
    """Rows of an earlier run of this benchmark (before it ran through hwbin sweep) as sweep records."""
    return [{"status": "ok", "params": {k: r[k] for k in ("model", "method", "seed")},
             "result": {"metric": "mean_iou" if r["model"] == "shapes-seg" else "accuracy", **r}} for r in rows]


def print_saved(path: str) -> None:
    saved = json.loads(Path(path).read_text())
    records = saved["cells"] if isinstance(saved, dict) else as_records(saved)
    print(f"{path}\n{train_tables(records)}\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="digits-tiny,digits-cnn,shapes-seg")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (Ray reserves as many CPUs)")
    p.add_argument("--cpus", type=int, help="CPUs of the local Ray instance (default: all)")
    p.add_argument("--address", help="a Ray cluster to run on instead of a local instance")
    p.add_argument("--out", default="benchmarks/out/train_methods.json")
    p.add_argument("--sweep-dir", help="the sweep folder (default: --out without .json)")
    p.add_argument("--tables", metavar="JSON", nargs="+", help="only print the tables of earlier runs' JSON files")
    args = p.parse_args()
    if args.tables:
        for path in args.tables:
            print_saved(path)
        return 0
    cells = make_cells("train", grid(args.models.split(","), args.methods.split(","), args.seeds, args.epochs))
    sweep_dir = args.sweep_dir or str(Path(args.out).with_suffix(""))
    opts = SweepOptions(address=args.address, num_cpus=args.cpus, cpus_per_cell=args.threads)
    results = run_sweep("train", cells, sweep_dir, opts, grid={"models": args.models, "methods": args.methods,
                                                                "seeds": args.seeds, "epochs": args.epochs})
    atomic_write_json(args.out, results)
    print(f"wrote {args.out}")
    return 1 if results["cells_failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
