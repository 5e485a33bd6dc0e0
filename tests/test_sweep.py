"""hwbin sweep on a local Ray instance (2 CPUs, tiny cells): a grid with a failing cell,
resuming it, Ray leaving no process behind, and bad input refused before Ray starts."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from hwbin import ir
from hwbin import program as pg
from hwbin.cli import main
from hwbin.sweep import expand_grid, make_cells, run_rtl_cell

from .conftest import ROOT
from .helpers import zoo_ir


def sweep_cli(*args):
    """The real command line in a session of its own, so that every process it started (Ray's
    included) can be found afterwards by its session id."""
    p = subprocess.Popen([sys.executable, "-m", "hwbin.cli", "sweep", *map(str, args)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    out, err = p.communicate(timeout=900)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err), p.pid


def processes_in_session(sid: int) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except (OSError, ValueError):
            continue
        fields = stat.rsplit(")", 1)[1].split()   # after "pid (comm)": state ppid pgrp session ...
        if int(fields[3]) == sid and entry.name.isdigit() and int(entry.name) != os.getpid():
            found.append(stat.split(")")[0] + ")")
    return found


def assert_nothing_left(sid: int) -> None:
    """Ray's raylet, GCS, agents and workers are all gone once the command has returned (a
    dying worker may take a moment to be reaped)."""
    for _ in range(40):
        left = processes_in_session(sid)
        if not left:
            return
        time.sleep(0.5)
    pytest.fail(f"processes left behind by hwbin sweep: {left}")


def reference_accuracy(tmp_path, **opts) -> float:
    """What ``hwbin train`` (the library call behind it) reaches with the same options, on one
    torch thread like a 1-CPU cell."""
    from hwbin.train import TrainOptions, train

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return train(TrainOptions(**opts), tmp_path / f"ref-{opts['method']}", plot=False)["final"]["test"]
    finally:
        torch.set_num_threads(threads)


def test_train_sweep_reports_a_failed_cell_then_resumes(tmp_path):
    out = tmp_path / "sweep"
    grid = ["--models", "digits-tiny,shapes-seg", "--datasets", "digits", "--seeds", "0", "--epochs", "2",
            "--cpus", "2", "--out", out]
    r, sid = sweep_cli("train", "--methods", "xnor", *grid)
    assert r.returncode == 1, r.stderr          # one cell failed, the other finished
    assert_nothing_left(sid)
    res = json.loads((out / "results.json").read_text())
    assert res["engine"]["name"] == "ray" and res["engine"]["resources"]["CPU"] == 2
    assert res["cells_total"] == 2 and res["cells_failed"] == 1
    ok, bad = res["cells"]
    assert ok["status"] == "ok" and bad["status"] == "failed"
    assert "shapes-seg" in bad["error"] and "segment data" in bad["error"] and "\n" not in bad["error"]
    assert f"FAILED: {bad['error']}" in r.stdout
    want = reference_accuracy(tmp_path, model="digits-tiny", dataset="digits", method="xnor", seed=0, epochs=2)
    assert ok["result"]["test"] == want and ok["result"]["source"] == "golden"
    assert ok["result"]["torch_golden_agreement"] == 1.0
    table = (out / "table.md").read_text()
    assert "xnor" in table and f"{want * 100:.2f}" in table and bad["error"] in table
    assert (out / "plot.png").read_bytes()[:4] == b"\x89PNG"

    # resume with one more method: the finished cell is skipped (its file untouched), the failed
    # cell is tried again, the new ones run
    done = out / "cells" / f"{ok['key']}.json"
    before = (done.read_bytes(), done.stat().st_mtime_ns)
    r2, sid2 = sweep_cli("train", "--methods", "xnor,fp", *grid)
    assert_nothing_left(sid2)
    assert "1 of 4 cells finished earlier (skipped), 3 to run" in r2.stdout, r2.stdout
    assert (done.read_bytes(), done.stat().st_mtime_ns) == before
    res2 = json.loads((out / "results.json").read_text())
    assert [c["status"] for c in res2["cells"]] == ["ok", "ok", "failed", "failed"]
    assert res2["cells"][0] == ok
    fp = res2["cells"][1]
    assert fp["params"]["method"] == "fp" and fp["result"]["source"] == "torch"
    assert len(list((out / "cells").glob("*.json"))) == 4


def test_rtl_cells_match_the_cycle_model(tmp_path):
    """An rtl cell without synthesis (board 'none'), run as the worker runs it: the IR arrives
    as bytes, and the cycles are the array program's own for that configuration."""
    m, _ = zoo_ir("digits-tiny")
    path = tmp_path / "tiny.hwbin"
    ir.save(m, path)
    cells = make_cells("rtl", expand_grid("rtl", {"ir": {"tiny": str(path)}, "config": ["4x4x32", "8x2x16"],
                                                  "board": "none"}))
    assert [c.params["model"] for c in cells] == ["tiny", "tiny"] and cells[0].key != cells[1].key
    for cell, (rows, cols, lanes) in zip(cells, [(4, 4, 32), (8, 2, 16)]):
        got = run_rtl_cell(cell.params, path.read_bytes())
        want = pg.layer_report(pg.compile_program(m, pg.ArrayConfig(rows, cols, lanes)))
        assert got["cycles"] == want["latency_cycles"] and got["utilization"] == want["utilization"]
        assert "synth" not in got


@pytest.mark.parametrize("args,needle", [
    (["train", "--methods", "srb", "--models", "digits-tiny", "--seeds", "0,x"], "--seeds: expected integers"),
    (["train", "--methods", "srb"], "field 'model' is required"),
    (["train", "--methods", "magic", "--models", "digits-tiny"], "unknown method 'magic'"),
    (["rtl", "--ir", "/nonexistent/m.hwbin"], "/nonexistent/m.hwbin"),
    (["sim", "--ir", "README.md", "--configs", "8x4"], "README.md"),
])
def test_bad_input_is_one_line_before_ray_starts(tmp_path, capsys, args, needle):
    assert main(["sweep", *args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and needle in err, err
    assert not (tmp_path / "out").exists()


def test_grid_file_fields_are_checked_and_foreign_folders_refused(tmp_path, capsys):
    grid = tmp_path / "grid.json"
    grid.write_text(json.dumps({"sweep": "train", "model": ["digits-tiny"], "method": "srb", "colour": "red"}))
    assert main(["sweep", "train", "--grid", str(grid), "--out", str(tmp_path / "out")]) == 2
    assert "grid.json: unknown field 'colour'" in capsys.readouterr().err
    grid.write_text(json.dumps({"model": "digits-tiny", "method": "srb", "epochs": "many"}))
    assert main(["sweep", "train", "--grid", str(grid), "--out", str(tmp_path / "out")]) == 2
    assert "field 'epochs': expected int, found 'many'" in capsys.readouterr().err
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(["sweep", "train", "--models", "digits-tiny", "--methods", "srb", "--out", str(mine)]) == 2
    assert "was not written by hwbin sweep" in capsys.readouterr().err
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"] and (mine / "notes.txt").read_text() == "keep me"
