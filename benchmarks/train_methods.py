"""Every training method on digits-cnn and digits-tiny (and 4 on shapes-seg), several
seeds, the same epoch budget; one table per model like the seed's Table 1.

Accuracy of a fully binary model is the golden model's (what the hardware computes);
fp and bwn (not deployable: real-valued activations) report torch eval.

    .venv/bin/python benchmarks/train_methods.py                  # everything (about an hour on 2 cores)
    .venv/bin/python benchmarks/train_methods.py --models digits-tiny --seeds 3
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwbin.export import compare_with_torch, export_model  # noqa: E402
from hwbin.train import TrainOptions, prepare  # noqa: E402
from hwbin.train import deployed_accuracy  # noqa: E402
from hwbin.train.loop import TrainConfig, evaluate, run_stages, wall_clock  # noqa: E402
from hwbin.train.schedule import METHODS  # noqa: E402
from hwbin.util import atomic_write_json, format_table  # noqa: E402

SEG_METHODS = ("fp", "xnor", "horq", "srb")


def run_one(model: str, method: str, seed: int, epochs: int, **kw) -> dict:
    opt = TrainOptions(model=model, method=method, seed=seed, epochs=epochs, **kw)
    data, net, stages = prepare(opt)
    t0 = wall_clock()
    hist = run_stages(net, data, stages, TrainConfig(lr=opt.lr, seed=seed), binary=method != "fp")
    wall = wall_clock() - t0
    gold = deployed_accuracy(net, data)
    acc = gold if gold is not None else evaluate(net, data.x_test, data.y_test, data.num_classes)
    agree = None
    if gold is not None:  # torch eval against the golden model on the whole test set
        agree = compare_with_torch(net, export_model(net), data.x_test)["prediction_agreement"]
    return {"model": model, "method": method, "seed": seed, "test": acc, "source": "golden" if gold is not None else "torch",
            "train_loss": hist.epochs[-1]["train_loss"], "epochs": len(hist.epochs), "wall_s": wall,
            "torch_golden_agreement": agree}


def table(rows: list[dict], metric: str) -> str:
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        rs = [r for r in rows if r["method"] == method]
        acc = np.array([r["test"] for r in rs]) * 100
        agree = [r.get("torch_golden_agreement") for r in rs]
        agree = "-" if None in agree else f"{min(agree) * 100:.2f}%"
        out.append([method, f"{acc.mean():.2f}", f"{acc.std():.2f}", f"{np.mean([r['train_loss'] for r in rs]):.4f}",
                    rs[0]["epochs"], f"{np.mean([r['wall_s'] for r in rs]):.1f}", rs[0]["source"], agree, len(rs)])
    return format_table(["method", f"test {metric} %", "std", "train loss", "epochs", "wall s", "measured by",
                         "torch=golden", "seeds"], out)


def print_tables(rows: list[dict]) -> None:
    """One table per model, in the order the rows came."""
    for model in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == model]
        seeds = len({r["seed"] for r in rs})
        metric = "mIoU" if model == "shapes-seg" else "accuracy"
        print(f"\n{model}, {rs[0]['epochs']} epochs, {seeds} seeds\n{table(rs, metric)}\n", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="digits-tiny,digits-cnn,shapes-seg")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", default="benchmarks/out/train_methods.json")
    p.add_argument("--tables", metavar="JSON", nargs="+", help="only print the tables of earlier runs' JSON files")
    args = p.parse_args()
    if args.tables:
        for path in args.tables:
            print_tables(json.loads(Path(path).read_text()))
        return 0
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    results = []
    for model in args.models.split(","):
        methods = [m for m in args.methods.split(",") if model != "shapes-seg" or m in SEG_METHODS]
        rows = []
        for method in methods:
            for seed in range(args.seeds):
                r = run_one(model, method, seed, args.epochs)
                print(f"  {model} {method} seed {seed}: {r['test'] * 100:.2f}% ({r['wall_s']:.0f} s)", flush=True)
                rows.append(r)
        print_tables(rows)
        results += rows
    atomic_write_json(args.out, results)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
