"""The main job on the embedded default (bundled digits): train fp and srb, export the
srb model, check torch eval against the golden model, and print a summary.

Later stages (Verilog, simulation, firmware, board build) join this script as they land.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hwbin import golden, ir  # noqa: E402
from hwbin.data import load_digits  # noqa: E402
from hwbin.export import compare_with_torch, export_model  # noqa: E402
from hwbin.models import load_checkpoint  # noqa: E402
from hwbin.train import TrainOptions, train  # noqa: E402
from hwbin.util import format_table  # noqa: E402


def main() -> int:
    t0 = time.perf_counter()
    runs, build = ROOT / "runs", ROOT / "build"
    print("== train digits-cnn: fp (reference) and srb (staged residual binarization)")
    fp = train(TrainOptions(model="digits-cnn", method="fp"), runs / "fp")
    srb = train(TrainOptions(model="digits-cnn", method="srb"), runs / "srb")
    print("== export runs/srb/model.pt -> build/digits.hwbin")
    model, _ = load_checkpoint(runs / "srb" / "model.pt")
    irm = export_model(model, {"method": "srb", "dataset": "digits"})
    ir.save(irm, build / "digits.hwbin")
    loaded = ir.load(build / "digits.hwbin")
    data = load_digits()
    cmp = compare_with_torch(model, loaded, data.x_test)
    res = golden.run(loaded, data.x_test)
    golden_acc = float((res.pred == data.y_test).mean())
    weight_bytes = sum((la.weight_bits() + 7) // 8 for la in loaded.layers)
    rows = [
        ["test accuracy fp (torch)", f"{fp['final']['test'] * 100:.2f}%"],
        ["test accuracy srb (golden model)", f"{golden_acc * 100:.2f}%"],
        ["torch eval = golden, predictions", f"{cmp['prediction_agreement'] * 100:.2f}%"],
        ["torch eval = golden, min layer activations", f"{min(cmp['activation_agreement'].values()) * 100:.2f}%"],
        ["binary weights", f"{weight_bytes} bytes"],
        ["model hash", loaded.hash[:16]],
        ["training time fp + srb", f"{fp['final']['wall_s'] + srb['final']['wall_s']:.0f} s"],
        ["total time", f"{time.perf_counter() - t0:.0f} s"],
    ]
    print()
    print(format_table(["summary", "value"], rows))
    print("\nartifacts: runs/fp, runs/srb (model.pt, metrics.json, curves.png), build/digits.hwbin")
    return 0


if __name__ == "__main__":
    sys.exit(main())
