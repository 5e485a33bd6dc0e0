"""The main job on the embedded default (bundled digits): train fp and srb, export the
srb model, check torch eval against the golden model, generate C firmware and run it on the
host and on QEMU's Cortex-M3 against the golden model, and print a summary.

Later stages (Verilog, simulation, board build) join this script as they land.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hwbin import cli, golden, ir  # noqa: E402
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
    fw_ok = {}
    for target in ("host", "cortex-m3"):
        print(f"== firmware for {target}: generate, build, run the whole test set against the golden model")
        fw_ok[target] = cli.main(["firmware", str(build / "digits.hwbin"), "-o", str(build / f"fw-{target}"),
                                  "--target", target, "--run"]) == 0
    foot = json.loads((build / "fw-cortex-m3" / "footprint.json").read_text())
    rows = [
        ["test accuracy fp (torch)", f"{fp['final']['test'] * 100:.2f}%"],
        ["test accuracy srb (golden model)", f"{golden_acc * 100:.2f}%"],
        ["torch eval = golden, predictions", f"{cmp['prediction_agreement'] * 100:.2f}%"],
        ["torch eval = golden, min layer activations", f"{min(cmp['activation_agreement'].values()) * 100:.2f}%"],
        ["binary weights", f"{weight_bytes} bytes"],
        ["firmware = golden, host (gcc)", f"{'all' if fw_ok['host'] else 'NOT all'} {len(data.x_test)} test images"],
        ["firmware = golden, QEMU Cortex-M3", f"{'all' if fw_ok['cortex-m3'] else 'NOT all'} {len(data.x_test)} test images"],
        ["Cortex-M3 flash / RAM (model + runtime)", f"{foot['flash_bytes']} / {foot['ram_bytes']} bytes"],
        ["model hash", loaded.hash[:16]],
        ["training time fp + srb", f"{fp['final']['wall_s'] + srb['final']['wall_s']:.0f} s"],
        ["total time", f"{time.perf_counter() - t0:.0f} s"],
    ]
    print()
    print(format_table(["summary", "value"], rows))
    print("\nartifacts: runs/fp, runs/srb (model.pt, metrics.json, curves.png), build/digits.hwbin, "
          "build/fw-host, build/fw-cortex-m3 (C sources, Makefile, footprint.md)")
    return 0 if all(fw_ok.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
