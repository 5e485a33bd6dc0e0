"""Images per second of the golden model (numpy, integers, bit-packed) against torch's
eval forward of the same model, same batch, in one run; the ratio is what to quote.

    .venv/bin/python benchmarks/golden_speed.py [--model digits-cnn] [--batch 360]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from hwbin import golden  # noqa: E402
from hwbin.data import load_dataset  # noqa: E402
from hwbin.export import export_model  # noqa: E402
from hwbin.models import MODELS, build_model  # noqa: E402
from hwbin.train.schedule import Stage, apply_stage_masks  # noqa: E402
from hwbin.util import format_table  # noqa: E402


def best_of(fn, repeats):
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--models", default="digits-tiny,digits-cnn,digits-mlp,shapes-seg")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    rows = []
    for name in args.models.split(","):
        data = load_dataset(MODELS[name]["dataset"])
        torch.manual_seed(0)
        net = build_model(name, data.in_shape, data.num_classes)
        apply_stage_masks(net, Stage("all", 1, 1.0, 1.0))
        net.eval()
        m = export_model(net)
        x = np.resize(data.x_test, (args.batch,) + data.x_test.shape[1:])
        xt = torch.from_numpy(x).float()
        with torch.no_grad():
            t_torch = best_of(lambda: net(xt), args.repeats)
        t_gold = best_of(lambda: golden.run(m, x, batch=args.batch), args.repeats)
        rows.append([name, args.batch, f"{args.batch / t_gold:.0f}", f"{args.batch / t_torch:.0f}",
                     f"{t_torch / t_gold:.2f}"])
    print(format_table(["model", "batch", "golden img/s", "torch eval img/s", "golden / torch"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
