"""Every training method on a model, several seeds, the same epoch budget; one table per
model like the seed's Table 1.

Accuracy of a fully binary model is the golden model's (what the hardware computes);
fp and bwn (not deployable: real-valued activations) report torch eval.

    .venv/bin/python benchmarks/train_methods.py                  # digits and shapes (about an hour on 2 cores)
    .venv/bin/python benchmarks/train_methods.py --models digits-tiny --seeds 3
    .venv/bin/python benchmarks/train_methods.py --models fmnist-cnn --seeds 2 --epochs 14 \
        --train-images 3000 --test-images 2000 --threads 1         # reduced Fashion-MNIST grid (README)

``run_cell`` is one cell of the grid (model, method, seed, epochs, data set -> a result
dict); a sweep runner (e.g. Ray) can call it directly.
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


def run_cell(model: str, method: str, seed: int, epochs: int, dataset: str | None = None, **options) -> dict:
    """Train one cell and measure it. ``options`` are further TrainOptions fields (data_path,
    train_images, test_images, lr, phase_order, finetune_share, ...). Returns plain JSON data."""
    opt = TrainOptions(model=model, method=method, seed=seed, epochs=epochs, dataset=dataset, **options)
    data, net, stages = prepare(opt)
    t0 = wall_clock()
    hist = run_stages(net, data, stages, TrainConfig(lr=opt.lr, batch_size=opt.batch_size, seed=seed),
                      binary=method != "fp")
    wall = wall_clock() - t0
    gold = deployed_accuracy(net, data)
    acc = gold if gold is not None else evaluate(net, data.x_test, data.y_test, data.num_classes)
    agree = None
    if gold is not None:  # torch eval against the golden model on the whole test set
        agree = compare_with_torch(net, export_model(net), data.x_test)["prediction_agreement"]
    return {"model": model, "method": method, "seed": seed, "dataset": data.name, "options": options,
            "train_images": len(data.x_train), "test_images": len(data.x_test),
            "test": acc, "source": "golden" if gold is not None else "torch",
            "train_loss": hist.epochs[-1]["train_loss"], "epochs": len(hist.epochs), "wall_s": wall,
            "images_per_s": hist.images_per_s(), "torch_golden_agreement": agree}


run_one = run_cell  # the name earlier scripts used


DATA_OPTIONS = ("data_path", "train_images", "test_images")


def label(row: dict) -> str:
    """The method, with any schedule options that differ from the defaults (srb variants)."""
    extra = {k: v for k, v in row.get("options", {}).items() if k not in DATA_OPTIONS and k != "lr"}
    return row["method"] + "".join(f" {k}={v}" for k, v in extra.items())


def table(rows: list[dict], metric: str) -> str:
    out = []
    for name in dict.fromkeys(label(r) for r in rows):
        rs = [r for r in rows if label(r) == name]
        acc = np.array([r["test"] for r in rs]) * 100
        agree = [r.get("torch_golden_agreement") for r in rs]
        agree = "-" if None in agree else f"{min(agree) * 100:.2f}%"
        speed = [r.get("images_per_s") for r in rs]
        speed = "-" if None in speed else f"{np.mean(speed):.0f}"
        out.append([name, f"{acc.mean():.2f}", f"{acc.std():.2f}", f"{np.mean([r['train_loss'] for r in rs]):.4f}",
                    rs[0]["epochs"], f"{np.mean([r['wall_s'] for r in rs]):.1f}", speed, rs[0]["source"], agree,
                    len(rs)])
    return format_table(["method", f"test {metric} %", "std", "train loss", "epochs", "wall s", "img/s",
                         "measured by", "torch=golden", "seeds"], out)


def print_tables(rows: list[dict]) -> None:
    """One table per model, in the order the rows came."""
    for model in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == model]
        seeds = len({r["seed"] for r in rs})
        metric = "mIoU" if model == "shapes-seg" else "accuracy"
        data = ""
        if "train_images" in rs[0]:
            data = f", {rs[0]['dataset']} {rs[0]['train_images']} train / {rs[0]['test_images']} test images"
        print(f"\n{model}, {rs[0]['epochs']} epochs, {seeds} seeds{data}\n{table(rs, metric)}\n", flush=True)


def _parse_options(text: str | None) -> dict:
    """'phase_order=joint,finetune_share=0.4' -> {'phase_order': 'joint', 'finetune_share': 0.4}."""
    out = {}
    for item in filter(None, (text or "").split(",")):
        key, _, value = item.partition("=")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value.strip()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="digits-tiny,digits-cnn,shapes-seg")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--dataset", help="override the models' own data set")
    p.add_argument("--data-path")
    p.add_argument("--train-images", type=int, help="only the first N training images")
    p.add_argument("--test-images", type=int, help="only the first N test images")
    p.add_argument("--lr", type=float, help="learning rate of every method (default TrainOptions')")
    p.add_argument("--srb-options", help="TrainOptions for srb cells only, e.g. phase_order=joint,finetune_share=0.4")
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
    common = {k: v for k, v in (("data_path", args.data_path), ("train_images", args.train_images),
                                ("test_images", args.test_images), ("lr", args.lr)) if v is not None}
    srb_options = _parse_options(args.srb_options)
    results = []
    for model in args.models.split(","):
        methods = [m for m in args.methods.split(",") if model != "shapes-seg" or m in SEG_METHODS]
        rows = []
        for method in methods:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                extra = {**common, **(srb_options if method == "srb" else {})}
                r = run_cell(model, method, seed, args.epochs, args.dataset, **extra)
                print(f"  {model} {method} seed {seed}: {r['test'] * 100:.2f}% ({r['wall_s']:.0f} s, "
                      f"{r['images_per_s']:.0f} images/s)", flush=True)
                rows.append(r)
                atomic_write_json(args.out, results + rows)  # what is done so far survives an interruption
        print_tables(rows)
        results += rows
    atomic_write_json(args.out, results)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
