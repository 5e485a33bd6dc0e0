"""The iCE40 UP5K resource model (rtl/resources.py ``ICE40_MODEL``) against real builds.

    python benchmarks/ice40_fit.py calibrate --ir tiny=build/tiny.hwbin --ir cnn=build/digits.hwbin \\
        --ir seg=build/seg.hwbin --points tiny:2x1x16,tiny:2x2x16,tiny:2x1x8,tiny:4x1x16,tiny:2x2x8,\\
        cnn:4x1x16,cnn:2x1x16,cnn:2x1x8,seg:2x1x16 [--out benchmarks/out/ice40_fit]
    python benchmarks/ice40_fit.py place --ir tiny=build/tiny.hwbin [--configs tiny:2x1x16] [--out ...]

``calibrate``: per point, yosys ``synth_ice40 -dsp`` of the core (rtl/synth.py ``synth_core``,
no placement: about 30 s a point) gives LUT4s, flip-flops, carries and DSPs; a non-negative least-squares
fit of ``resources.ice40_features`` to them prints the coefficients for ``ICE40_MODEL`` and
each point's error (the 9 points above gave ``ICE40_MODEL``: within 6% of every point's LUT4s
and flip-flops; the zoo models as ``tests.helpers.zoo_ir`` makes them. digits-mlp is left out:
yosys puts its activation memory, 512 bits wide and a few words deep, in flip-flops, which
the model counts as block RAMs). Since the activations went to SPRAM where the program
allows it (program.Program.spram: one column of 16 lanes), cnn:2x1x16 and cnn:4x1x16 are
SPRAM points; ``ICE40_MODEL``'s "spram" feature (a fixed cost of that path) was set from
cnn:2x1x16 and mlp:2x1x16 before any refit. ``place`` (slow: a minute a build, twelve when nextpnr is at the part's
limit): the iCEBreaker board build (``hwbin synth --board icebreaker``) of each configuration
(default: the one ``hwbin rtl --board icebreaker`` picks for each model), its logic cells,
flip-flops, block RAMs, DSPs and Fmax beside the model's estimate; the rows keep the failed
builds (nextpnr's logic cells are in its log even when it cannot place them). The LC fit
(``ICE40_MODEL["lc"]``) is from these rows' yosys counts of the board build.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from hwbin import ir  # noqa: E402
from hwbin import program as pg  # noqa: E402
from hwbin.rtl import resources as rs  # noqa: E402
from hwbin.util import format_table  # noqa: E402

PART = "ice40-up5k"


def _program(model, label: str) -> pg.Program:
    r, c, lanes = (int(v) for v in label.split("x"))
    return pg.compile_program(model, pg.ArrayConfig(r, c, lanes, 24.0, PART))


def calibrate(models: dict, points: list[str], out: Path) -> None:
    from hwbin.rtl.emit import generate_rtl
    from hwbin.rtl.synth import synth_core

    rows = []
    for point in points:
        name, label = point.split(":")
        prog = _program(models[name][1], label)
        d = out / "calibrate" / f"{name}-{label}"
        generate_rtl(models[name][0], d / "rtl", prog.cfg)
        s = synth_core(d / "rtl", PART, d / "synth")
        mods = s["modules"]
        gen = sum(mods.get(g, {}).get("lut4", 0) for g in ("tile_gen", "drain_gen"))
        roms = sum(m.get("luts", 0) for n, m in rs.estimate(prog, PART)["memories"].items() if not m.get("generator"))
        rows.append({"point": point, "lut4": s["luts"]["used"], "ff": s["ffs"]["used"], "dsp": s["dsps"]["used"],
                     "bram": s["brams"]["used"], "carry": sum(m["carry"] for m in mods.values()),
                     "lut4_logic": s["luts"]["used"] - gen - roms, "features": rs.ice40_features(prog),
                     "est": {k: v for k, v in rs.estimate(prog, PART).items() if k != "memories"}})
        print(point, {k: rows[-1][k] for k in ("lut4", "ff", "dsp", "bram")}, flush=True)
    (out / "calibrate.json").write_text(json.dumps(rows, indent=1))
    for kind, key in (("lut", "lut4_logic"), ("ff", "ff")):
        names = list(rows[0]["features"][kind])
        a = np.array([[r["features"][kind][n] for n in names] for r in rows], float)
        y = np.array([r[key] for r in rows], float)
        coef, _ = nnls(a, y)                  # no negative cost: each feature adds cells or nothing
        print(f"ICE40_MODEL[{kind!r}] =", {n: round(float(c), 2) for n, c in zip(names, coef)})
        for r, fit, want in zip(rows, a @ coef, y):
            print(f"  {r['point']:14s} {key} {int(want):5d}  fit {fit:7.0f} ({(fit - want) / want:+.1%})")


def _board_counts(build: Path) -> dict:
    """yosys's cells (the .rpt's last totals) and nextpnr's logic cells (also when it did not place)."""
    rpt = build / "hwbin_board.rpt"
    text = rpt.read_text().rsplit("=== design hierarchy ===", 1)[-1] if rpt.exists() else ""
    cells = {m.group(2): int(m.group(1)) for m in re.finditer(r"^\s+(\d+)\s+(SB_\w+)\s*$", text, re.M)}
    tim = build / "hwbin_board.tim"
    log = tim.read_text() if tim.exists() else ""
    lc = re.findall(r"ICESTORM_LC:\s+(\d+)/", log)
    return {"lc": int(lc[-1]) if lc else None, "lut4": cells.get("SB_LUT4", 0), "carry": cells.get("SB_CARRY", 0),
            "ff": sum(v for k, v in cells.items() if k.startswith("SB_DFF")), "bram": cells.get("SB_RAM40_4K", 0),
            "spram": cells.get("SB_SPRAM256KA", 0), "dsp": cells.get("SB_MAC16", 0)}


def place(models: dict, configs: list[str], out: Path) -> None:
    from hwbin.errors import HwbinError
    from hwbin.rtl.emit import generate_rtl
    from hwbin.rtl.synth import synth_board

    table = []
    for name in models:
        labels = [c.split(":")[1] for c in configs if c.split(":")[0] == name]
        if not labels:
            try:
                labels = [rs.choose_config(models[name][1], "icebreaker", 24.0)[0].label()]
            except HwbinError as e:
                print(f"{name}: {e}")
                continue
        for label in labels:
            prog = _program(models[name][1], label)
            est = rs.estimate(prog, PART)
            d = out / "place" / f"{name}-{label}"
            generate_rtl(models[name][0], d / "rtl", prog.cfg)
            try:
                s, err = synth_board(d / "rtl", "icebreaker", d / "build"), ""
            except HwbinError as e:
                s, err = {}, "did not place"
            got = _board_counts(d / "build")
            table.append([name, label, f"{got['lc']} ({est['luts']})", f"{got['lut4']} ({est['lut4']})",
                          f"{got['ff']} ({est['ffs']})", got["carry"], f"{got['bram']} ({est['brams']})", got["spram"],
                          f"{got['dsp']} ({est['dsps']})", s.get("fmax_mhz") or err, pg.cycle_model(prog).total])
            print(table[-1], flush=True)
    print(format_table(["model", "config", "LC (est)", "LUT4 (est)", "FF (est)", "carry", "BRAM (est)", "SPRAM",
                        "DSP (est)", "Fmax MHz", "cycles"], table))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["calibrate", "place"])
    ap.add_argument("--ir", action="append", required=True, help="NAME=PATH of a .hwbin")
    ap.add_argument("--points", default="", help="NAME:RxCxL,... (calibrate)")
    ap.add_argument("--configs", default="", help="NAME:RxCxL,... (place; default: what --board icebreaker picks)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "ice40_fit")
    args = ap.parse_args(argv)
    models = {n: (p, ir.load(p)) for n, p in (s.split("=", 1) for s in args.ir)}
    args.out.mkdir(parents=True, exist_ok=True)
    if args.mode == "calibrate":
        calibrate(models, [p for p in args.points.split(",") if p], args.out)
    else:
        place(models, [c for c in args.configs.split(",") if c], args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
