"""Every training method on digits-cnn and digits-tiny (and 4 on shapes-seg), several
seeds, the same epoch budget; one table per model like the seed's Table 1.

Accuracy of a fully binary model is the golden model's (what the hardware computes);
fp and bwn (not deployable: real-valued activations) report torch eval.

    .venv/bin/python benchmarks/train_methods.py                  # everything (about an hour on 2 cores)
    .venv/bin/python benchmarks/train_methods.py --models digits-tiny --seeds 3
    .venv/bin/python benchmarks/train_methods.py --address auto   # on a Ray cluster ('ray start --head')
    .venv/bin/python benchmarks/train_methods.py --models fmnist-cnn --seeds 2 --epochs 14 \
        --train-images 3000 --test-images 2000 --threads 1             # Fashion-MNIST grid (see README)
    .venv/bin/python benchmarks/train_methods.py ... --options init=runs/fp-s{seed}/model.pt,teacher=runs/fp-s{seed}
        # two-step: every cell starts from (and distills from) an fp run of its seed (see README)

The runs are the cells of a ``hwbin sweep train`` (Ray tasks, one CPU and one torch thread
each by default); its folder (``--sweep-dir``) keeps every finished run, so an interrupted
benchmark picks up where it stopped when run again.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwbin.sweep import SweepOptions, make_cells, run_sweep  # noqa: E402
from hwbin.sweep_report import train_tables  # noqa: E402
from hwbin.train.schedule import METHODS  # noqa: E402
from hwbin.util import atomic_write_json  # noqa: E402

SEG_METHODS = ("fp", "xnor", "horq", "srb")


def grid(models: list[str], methods: list[str], seeds: range, epochs: int, options: dict | None = None,
         srb_options: dict | None = None) -> list[dict]:
    """Models x methods x seeds; shapes-seg only with the methods worth its time. ``options``
    (further hwbin train options: data set, image counts, lr) go to every cell,
    ``srb_options`` (schedule variants) to the srb cells only."""
    return [{"model": model, "method": method, "seed": seed, "epochs": epochs, **per_seed(options, seed),
             **(per_seed(srb_options, seed) if method == "srb" else {})}
            for model in models for method in methods if model != "shapes-seg" or method in SEG_METHODS
            for seed in seeds]


def per_seed(options: dict | None, seed: int) -> dict:
    """``{seed}`` in a text value becomes the cell's seed: 'teacher=runs/fp-s{seed}' gives each
    seed its own teacher."""
    return {k: v.replace("{seed}", str(seed)) if isinstance(v, str) else v for k, v in (options or {}).items()}


def parse_options(text: str | None) -> dict:
    """'phase_order=joint,finetune_share=0.4' -> {'phase_order': 'joint', 'finetune_share': 0.4};
    a comma splits only before the next 'key=', so 'ratios=[0.5,1.0]' is one list."""
    out = {}
    for item in filter(None, re.split(r",(?=\s*\w+=)", text or "")):
        key, _, value = item.partition("=")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value.strip()
    return out


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
    p.add_argument("--seeds", type=int, default=3, help="seeds FIRST..FIRST+N-1")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--dataset", help="override the models' own data set")
    p.add_argument("--data-path")
    p.add_argument("--train-images", type=int, help="only the first N training images")
    p.add_argument("--test-images", type=int, help="only the first N test images")
    p.add_argument("--lr", type=float, help="learning rate of every method (default: hwbin train's)")
    p.add_argument("--options", help="hwbin train options for every cell, e.g. a two-step recipe: "
                   "init=runs/fp-s{seed}/model.pt,teacher=runs/fp-s{seed},pretrain_fraction=0.05")
    p.add_argument("--srb-options", help="hwbin train options for srb cells only, e.g. "
                   "phase_order=joint,finetune_share=0.4")
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
    options = {k: v for k, v in (("dataset", args.dataset), ("data_path", args.data_path),
                                 ("train_images", args.train_images), ("test_images", args.test_images),
                                 ("lr", args.lr)) if v is not None}
    options.update(parse_options(args.options))
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    cells = make_cells("train", grid(args.models.split(","), args.methods.split(","), seeds, args.epochs,
                                     options, parse_options(args.srb_options)))
    sweep_dir = args.sweep_dir or str(Path(args.out).with_suffix(""))
    opts = SweepOptions(address=args.address, num_cpus=args.cpus, cpus_per_cell=args.threads)
    results = run_sweep("train", cells, sweep_dir, opts, grid={"models": args.models, "methods": args.methods,
                                                                "seeds": list(seeds), "epochs": args.epochs,
                                                                **options, "srb_options": args.srb_options})
    atomic_write_json(args.out, results)
    print(f"wrote {args.out}")
    return 1 if results["cells_failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
