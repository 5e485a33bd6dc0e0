"""Grids of runs on Ray: ``hwbin sweep train|rtl|sim``.

A sweep is the cartesian product of a few parameter lists (methods x seeds x models, array
configurations x boards x placement seeds, models x configurations x simulators); each
combination is a *cell*, and each cell is one Ray task. Ray because the same code then runs on
a laptop (``ray.init`` starts a local instance, nothing to set up) and on a cluster unchanged
(``--address`` of a head started with ``ray start --head``); the project never grows a process
pool of its own.

The driver writes each cell's record to ``<out>/cells/<key>.json`` (atomically) the moment the
cell comes back, so a sweep that is interrupted resumes where it stopped: cells with a finished
record are skipped, failed ones are run again. The key names the cell and hashes its
parameters (and the IR's hash), so changing anything gives a new cell rather than a stale hit.
The workers return their records instead of writing them, so a cluster needs no shared disk;
IR files travel to the workers through Ray's object store for the same reason.

At the end the sweep writes ``results.json`` (every cell in grid order, the engine and the
cluster resources it ran on), ``table.md`` and, where a picture says more than the table,
``plot.png``. Nothing is written into a folder that an earlier ``hwbin sweep`` did not mark
with its ``sweep.json``.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
import socket
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from . import __version__
from .errors import HwbinError
from .util import atomic_write_json, progress, sha256_hex

TOOL = f"hwbin {__version__}"
MARKER = "sweep.json"
LOCAL_OBJECT_STORE_BYTES = 128 * 1024 * 1024   # cells pass IR files and small records only


# --------------------------------------------------------------------------- cell runners
# Each runs inside a Ray worker: parameters in, a JSON-able record out. ``blob`` is the IR file's
# bytes for rtl and sim cells (None for training).

def _train_options(params: dict):
    from .train import TrainOptions

    opts = dict(params)
    if isinstance(opts.get("ratios"), list):   # percentages or fractions, as on hwbin train's --ratios
        opts["ratios"] = tuple(float(r) / 100 if float(r) > 1 else float(r) for r in opts["ratios"])
    return TrainOptions(**opts)


def run_train_cell(params: dict, blob: bytes | None = None, threads: int = 1) -> dict:
    """Train one method on one model and seed, exactly as ``hwbin train`` does (same options,
    same schedule), and report the deployed accuracy (the golden model's, for a fully binary
    model; torch eval otherwise) with the torch-vs-golden agreement. No checkpoint is kept."""
    import torch

    from .export import compare_with_torch, export_model
    from .train import train_and_measure

    torch.set_num_threads(max(1, threads))
    data, net, hist, wall, torch_acc, gold = train_and_measure(_train_options(params))
    agree = compare_with_torch(net, export_model(net), data.x_test)["prediction_agreement"] \
        if gold is not None else None
    return {"test": gold if gold is not None else torch_acc, "test_torch": torch_acc, "test_golden": gold,
            "source": "golden" if gold is not None else "torch", "dataset": data.name,
            "metric": "accuracy" if data.task == "classify" else "mean_iou",
            "train_loss": hist.epochs[-1]["train_loss"] if hist.epochs else None, "epochs": len(hist.epochs),
            "wall_s": round(wall, 2), "images_per_s": hist.images_per_s(), "torch_golden_agreement": agree}


def parse_config(label: str, clock_mhz: float | None = None):
    """'8x4x32' -> ArrayConfig(rows 8, cols 4, lanes 32), checked (clock: ArrayConfig's default)."""
    from .program import ArrayConfig

    m = re.fullmatch(r"(\d+)x(\d+)x(\d+)", str(label))
    if not m:
        raise HwbinError(f"array config: expected ROWSxCOLSxLANES like 8x4x32, found {label!r}")
    clock = {} if clock_mhz is None else {"clock_mhz": float(clock_mhz)}
    cfg = ArrayConfig(*(int(v) for v in m.groups()), **clock)
    cfg.check()
    return cfg


def _cycle_figures(report: dict) -> dict:
    """The cycle model's figures of one configuration (no synthesis needed)."""
    conv = [la for la in report["layers"] if la["kind"] == "conv"]
    return {"cycles": report["latency_cycles"], "utilization": report["utilization"],
            "conv_utilization": {la["name"]: la["utilization"] for la in conv},
            "binary_macs": report["binary_macs"], "macs_per_cycle": report["binary_macs"] / report["latency_cycles"]}


def run_rtl_cell(params: dict, blob: bytes, threads: int = 1) -> dict:
    """Generate the Verilog of one array configuration, then (unless the board is 'none')
    synthesize and place it with yosys and nextpnr: cycles, LUTs, flip-flops, BRAMs, Fmax."""
    from .rtl.emit import generate_rtl
    from .rtl.synth import synth

    cfg = parse_config(params["config"], params.get("clock_mhz"))
    with tempfile.TemporaryDirectory(prefix="hwbin-sweep-") as tmp:
        ir_path = Path(tmp) / "model.hwbin"
        ir_path.write_bytes(blob)
        out = _cycle_figures(generate_rtl(ir_path, Path(tmp) / "rtl", cfg))
        if params.get("board", "none") == "none":
            return out
        s = synth(Path(tmp) / "rtl", params["board"], Path(tmp) / "synth", seed=int(params.get("seed", 1)))
    s.pop("bitstream", None)   # built in a temporary folder on the worker: a sweep measures, it does not keep
    s["images_per_s"] = round(s["fmax_mhz"] * 1e6 / out["cycles"], 1) if s.get("fmax_mhz") else None
    return {**out, "synth": s}


def _sim_images(model, vectors: int):
    """The first test-set images of the model's data set (random images if it names none)."""
    import numpy as np

    from .data import load_dataset

    if model.source.get("dataset"):
        return load_dataset(model.source["dataset"]).x_test[:vectors]
    return np.random.default_rng(0).integers(0, 256, (vectors, *model.input_shape), dtype=np.uint8)


def run_sim_cell(params: dict, blob: bytes, threads: int = 1) -> dict:
    """Generate one configuration's Verilog and run the cocotb testbench on it against the
    golden model: value and cycle mismatches, cycles per image measured against predicted."""
    from . import ir
    from .rtl.emit import generate_rtl
    from .sim import runner

    cfg = parse_config(params["config"])
    vectors, gap = int(params.get("vectors", 200)), float(params.get("gap", 0.0))
    with tempfile.TemporaryDirectory(prefix="hwbin-sweep-") as tmp:
        ir_path = Path(tmp) / "model.hwbin"
        ir_path.write_bytes(blob)
        x = _sim_images(ir.load(ir_path), vectors)
        predicted = generate_rtl(ir_path, Path(tmp) / "rtl", cfg)["latency_cycles"]
        s = runner.run(Path(tmp) / "rtl", params.get("simulator", "verilator"), x, gap=gap,
                       seed=int(params.get("seed", 0)), bar=False)
    exact = s["vectors"] == len(x) and s["mismatches"] == 0 and (gap > 0 or s["cycle_mismatches"] == 0)
    return {"exact": exact, "predicted_cycles": predicted, "measured_cycles": sorted(set(s["measured_cycles"])),
            **{k: s[k] for k in ("vectors", "mismatches", "cycle_mismatches", "sim_cycles", "wall_s",
                                 "first_divergence")}}


# --------------------------------------------------------------------------- kinds of sweep

def _train_fields() -> dict:
    from .train import TrainOptions

    return {f.name: f.default for f in dataclasses.fields(TrainOptions)}


@dataclass(frozen=True)
class Kind:
    """What differs between train, rtl and sim sweeps; the engine is the same."""
    name: str
    fields: Callable[[], dict]          # parameter -> default (a grid may set any of them)
    required: tuple[str, ...]
    label_fields: tuple[str, ...]       # what names a cell to a person
    run: Callable[..., dict]
    ok: Callable[[dict], bool] = lambda rec: True   # a finished cell that is still a bad result
    choices: Callable[[], dict] = dict              # parameter -> the values it may take


def _train_choices() -> dict:
    from .data import DATASETS
    from .models import MODELS
    from .train.schedule import METHODS

    return {"model": MODELS, "method": METHODS, "dataset": DATASETS}


def _rtl_choices() -> dict:
    from .rtl.synth import TARGETS

    return {"board": (*TARGETS, "none")}


def _rtl_fields() -> dict:
    """An rtl cell's fields by default (array and clock: ``program.ArrayConfig``'s)."""
    from .program import ArrayConfig

    cfg = ArrayConfig()
    return {"ir": "", "config": cfg.label(), "board": "ecp5-25f", "seed": 1, "clock_mhz": cfg.clock_mhz}


def _sim_fields() -> dict:
    """A sim cell's fields by default (array: ``program.ArrayConfig``'s)."""
    from .program import ArrayConfig

    return {"ir": "", "config": ArrayConfig().label(), "simulator": "verilator", "vectors": 200, "gap": 0.0, "seed": 0}


def _sim_choices() -> dict:
    from .sim.runner import SIMULATORS

    return {"simulator": SIMULATORS}


KINDS = {
    "train": Kind("train", _train_fields, ("model", "method"), ("model", "dataset", "method", "seed", "epochs"),
                  run_train_cell, choices=_train_choices),
    "rtl": Kind("rtl", _rtl_fields,
                ("ir",), ("model", "config", "board", "seed"), run_rtl_cell, choices=_rtl_choices),
    "sim": Kind("sim", _sim_fields,
                ("ir",), ("model", "config", "simulator"), run_sim_cell, ok=lambda rec: rec["exact"],
                choices=_sim_choices),
}


def _kind(name: str) -> Kind:
    if name not in KINDS:
        raise HwbinError(f"sweep: expected one of {', '.join(KINDS)}, found {name!r}")
    return KINDS[name]


# --------------------------------------------------------------------------- grids

@dataclass
class Cell:
    params: dict
    key: str

    def label(self, kind: Kind) -> str:
        """'digits-tiny xnor seed 0, 20 epochs': what a person calls the cell."""
        words = {"seed": "seed {}", "epochs": "{} epochs"}
        return " ".join(words.get(f, "{}").format(self.params[f])
                        for f in kind.label_fields if self.params.get(f) is not None)


def cell_key(kind: Kind, params: dict) -> str:
    """A file name that says what the cell is and changes whenever any parameter does."""
    readable = "-".join(str(params[f]) for f in kind.label_fields if params.get(f) is not None)
    readable = re.sub(r"[^A-Za-z0-9_.=-]+", "_", readable)[:80] or kind.name
    # an IR counts by its hash, not by where it lies
    identity = {k: v for k, v in params.items() if k != "ir"}
    digest = sha256_hex(json.dumps(identity, sort_keys=True, default=str).encode())[:10]
    return f"{readable}-{digest}"


def load_grid_file(path) -> dict:
    """A JSON grid: {"sweep": kind (optional), parameter: value or [values], ...}."""
    p = Path(path)
    try:
        grid = json.loads(p.read_text())
    except FileNotFoundError:
        raise HwbinError(f"{path}: grid file not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise HwbinError(f"{path}: not a JSON grid file ({str(e).splitlines()[0]})") from None
    if not isinstance(grid, dict):
        raise HwbinError(f"{path}: expected a JSON object of parameter lists, found {type(grid).__name__}")
    return grid


def _axis(value, default) -> list:
    """A grid field's values: a list is an axis, anything else one fixed value. For a parameter
    that is itself a list (ratios), only a list of lists is an axis."""
    if not isinstance(value, list):
        return [value]
    if isinstance(default, tuple):
        return value if value and all(isinstance(v, list) for v in value) else [value]
    return value


def _check_value(field: str, value, default, where: str):
    """Type-check one grid value against the parameter's default (int, float, str, bool)."""
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, tuple):
        ok = isinstance(value, (list, tuple))
        value = list(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        raise HwbinError(f"{where}: field {field!r}: expected {type(default).__name__}, found {value!r}")
    return value


def expand_grid(kind_name: str, grid: dict, where: str = "grid") -> list[dict]:
    """Every combination of the grid's lists (a scalar is a fixed parameter), in the grid's
    order; parameters left out keep their defaults and are not part of the cell's key."""
    kind = _kind(kind_name)
    grid = dict(grid)
    declared = grid.pop("sweep", kind_name)
    if declared != kind_name:
        raise HwbinError(f"{where}: field 'sweep': expected {kind_name!r}, found {declared!r}")
    fields = kind.fields()
    for name in grid:
        if name not in fields:
            raise HwbinError(f"{where}: unknown field {name!r} for a {kind_name} sweep; "
                             f"expected one of {', '.join(fields)}")
    for name in kind.required:
        if grid.get(name) in (None, [], ""):
            raise HwbinError(f"{where}: field {name!r} is required for a {kind_name} sweep")
    if isinstance(grid.get("ir"), dict):   # {"name": "path", ...}
        grid["ir"] = [f"{k}={v}" for k, v in grid["ir"].items()]
    axes = {}
    for name, value in grid.items():
        values = _axis(value, fields[name])
        if not values:
            raise HwbinError(f"{where}: field {name!r}: empty list")
        axes[name] = [_check_value(name, v, fields[name], where) for v in values]
    for name, allowed in kind.choices().items():
        for v in axes.get(name, []):
            if v is not None and v not in allowed:
                raise HwbinError(f"{where}: unknown {name} {v!r}: expected one of {', '.join(allowed)}")
    names = list(axes)
    return [dict(zip(names, combo)) for combo in itertools.product(*(axes[n] for n in names))]


# --------------------------------------------------------------------------- output folder

def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def claim_out_dir(out: Path, kind_name: str, grid: dict) -> None:
    """Refuse a folder that hwbin sweep did not write (or wrote for another kind of sweep);
    then mark it, so that later runs resume in it."""
    marker = out / MARKER
    if out.exists() and not out.is_dir():
        raise HwbinError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        found = _read_json(marker) if marker.is_file() else None
        if not isinstance(found, dict) or not str(found.get("tool", "")).startswith("hwbin"):
            raise HwbinError(f"{out}: folder exists and was not written by hwbin sweep (no {MARKER}); "
                             f"choose another --out")
        if found.get("sweep") != kind_name:
            raise HwbinError(f"{marker}: field 'sweep': this folder holds a {found.get('sweep')!r} sweep, "
                             f"not {kind_name!r}; choose another --out")
    atomic_write_json(marker, {"tool": TOOL, "sweep": kind_name, "grid": grid})


def finished_record(path: Path, cell: Cell) -> dict | None:
    """The record of a cell that already finished (None: run it, again if it failed)."""
    if not path.exists():
        return None
    rec = _read_json(path)
    if not isinstance(rec, dict) or not str(rec.get("tool", "")).startswith("hwbin") or rec.get("key") != cell.key:
        raise HwbinError(f"{path}: not a hwbin sweep cell record; remove it or choose another --out")
    return rec if rec.get("status") == "ok" and rec.get("params") == cell.params else None


# --------------------------------------------------------------------------- Ray

def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else ""
    return (msg if isinstance(exc, HwbinError) else f"{type(exc).__name__}: {msg}")[:500]


def execute_cell(kind_name: str, params: dict, blob: bytes | None, threads: int) -> dict:
    """The Ray task: run one cell and return its record; an error is part of the record, not
    an exception, so that the other cells go on and the message reaches the table."""
    t0 = time.perf_counter()
    rec = {"host": socket.gethostname()}
    try:
        rec.update(status="ok", result=KINDS[kind_name].run(params, blob, threads=threads))
    except Exception as e:  # noqa: BLE001 - any failure of a cell is reported, the sweep goes on
        rec.update(status="failed", error=_one_line(e), traceback=traceback.format_exc()[-4000:])
    rec["cell_wall_s"] = round(time.perf_counter() - t0, 2)
    return rec


def start_ray(address: str | None, num_cpus: int | None, num_gpus: int | None = None):
    """Join the cluster at ``address``, or start a private local instance (``address`` None):
    no dashboard, a small object store, Ray's own log lines kept out of the terminal (they stay
    in its session folder, /tmp/ray/session_*/logs)."""
    import logging

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")   # no usage report, no prompt
    import ray

    kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                  configure_logging=True)
    if address:
        try:
            ctx = ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError) as e:
            raise HwbinError(f"--address {address}: cannot join the Ray cluster ({_one_line(e)}); a head started by "
                             "'ray start --head' needs RAY_AUTH_MODE=token and its ~/.ray/auth_token here") from None
    else:
        ctx = ray.init(address="local", num_cpus=num_cpus or os.cpu_count() or 1, num_gpus=num_gpus,
                       object_store_memory=LOCAL_OBJECT_STORE_BYTES, **kwargs)
    return ray, ctx


def engine_info(ray, ctx, address: str | None) -> dict:
    """What the sweep ran on: Ray's version, where, and the cluster's resources."""
    res = ray.cluster_resources()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    return {"name": "ray", "version": ray.__version__, "address": address or "local",
            "session_dir": ctx.address_info.get("session_dir"), "nodes": len(nodes),
            "resources": {k: res[k] for k in ("CPU", "GPU", "memory", "object_store_memory") if k in res}}


# --------------------------------------------------------------------------- the engine

@dataclass
class SweepOptions:
    address: str | None = None       # None: a local Ray instance
    num_cpus: int | None = None      # CPUs of the local instance (default: all)
    cpus_per_cell: float = 1
    gpus_per_cell: float = 0
    plot: bool = True
    print_table: bool = True         # False: a caller that prints its own
    submit_order: Callable[[list], list] | None = None   # e.g. the slowest cells first; results keep grid order


def _blobs(cells: list[Cell]) -> dict[str, bytes]:
    """IR bytes by model hash, read once on the driver (workers may have no shared disk)."""
    out = {}
    for c in cells:
        h = c.params.get("model_hash")
        if h and h not in out:
            out[h] = Path(c.params["ir"]).read_bytes()
    return out


def split_ir_spec(spec: str) -> tuple[str, str]:
    """'digits-cnn=build/digits.hwbin' -> (name, absolute path); a bare path is named by its stem."""
    name, sep, path = str(spec).partition("=")
    if not sep or "/" in name:
        name, path = Path(spec).stem, spec
    return name, str(Path(path).resolve())


TRAIN_PATH_OPTIONS = ("data_path", "spec", "init", "teacher")


def make_cells(kind_name: str, combos: list[dict]) -> list[Cell]:
    """Cells for the grid's combinations; rtl and sim cells get their IR's name and hash."""
    from . import ir

    kind = _kind(kind_name)
    cells, hashes = [], {}
    for params in combos:
        params = dict(params)
        if "ir" in params:
            name, path = split_ir_spec(params["ir"])
            if path not in hashes:
                hashes[path] = ir.load(path).hash      # a bad IR file is refused before any cell runs
            params.update(model=name, ir=path, model_hash=hashes[path])
        if "config" in params:
            parse_config(params["config"])     # a malformed configuration is refused up front
        if kind_name == "train":   # a Ray worker need not share the driver's working folder
            for key in TRAIN_PATH_OPTIONS:
                if params.get(key):
                    params[key] = str(Path(params[key]).resolve())
        cells.append(Cell(params, cell_key(kind, params)))
    keys = [c.key for c in cells]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise HwbinError(f"grid: the cell {dup} appears twice (a value repeated in a list?)")
    return cells


def _record(cell: Cell, kind: Kind, raw: dict) -> dict:
    return {"tool": TOOL, "sweep": kind.name, "key": cell.key, "params": cell.params, **raw}


def _echo(bar, text: str) -> None:
    """A line per finished cell, above the bar when there is one."""
    if bar.disable:
        print(text, flush=True)
    else:
        bar.write(text)


def _describe(kind: Kind, rec: dict) -> str:
    if rec["status"] != "ok":
        return f"FAILED: {rec['error']}"
    r = rec["result"]
    if kind.name == "train":
        return f"{r['test'] * 100:.2f}% ({r['source']}, {r['wall_s']:.0f} s)"
    if kind.name == "rtl":
        s = r.get("synth") or {}
        luts = (s.get("luts") or {}).get("used")
        fmax = f"Fmax {s['fmax_mhz']} MHz" if s.get("fmax_mhz") else "no Fmax (cell counts only)"
        return f"{r['cycles']} cycles" + (f", {luts} LUTs, {fmax}" if s else "")
    return (f"{'exact' if r['exact'] else 'NOT EXACT'}: {r['mismatches']} mismatches, "
            f"{r['cycle_mismatches']} cycle mismatches in {r['vectors']} vectors")


def run_cells(kind: Kind, cells: list[Cell], out: Path, opts: SweepOptions, records: dict) -> dict:
    """Submit every unfinished cell as a Ray task; write each record as it comes back."""
    todo = [c for c in cells if c.key not in records]
    if opts.submit_order:
        todo = opts.submit_order(todo)
    ray, ctx = start_ray(opts.address, opts.num_cpus, num_gpus=None)
    try:
        engine = engine_info(ray, ctx, opts.address)
        blobs = {h: ray.put(b) for h, b in _blobs(todo).items()}
        task = ray.remote(execute_cell).options(num_cpus=opts.cpus_per_cell, num_gpus=opts.gpus_per_cell,
                                                max_retries=0)
        threads = max(1, int(opts.cpus_per_cell))
        pending = {task.remote(kind.name, c.params, blobs.get(c.params.get("model_hash")), threads): c for c in todo}
        done = len(cells) - len(todo)
        bar = progress(total=len(cells), initial=done, desc=f"sweep {kind.name}", unit="cell")
        try:
            while pending:
                [ref], _ = ray.wait(list(pending), num_returns=1)
                cell = pending.pop(ref)
                try:
                    raw = ray.get(ref)
                except Exception as e:  # noqa: BLE001 - a worker that died: the cell failed
                    raw = {"status": "failed", "error": _one_line(e)}
                rec = records[cell.key] = _record(cell, kind, raw)
                atomic_write_json(out / "cells" / f"{cell.key}.json", rec)
                done += 1
                bar.update(1)
                _echo(bar, f"[{done}/{len(cells)}] {cell.label(kind)}: {_describe(kind, rec)}")
        except KeyboardInterrupt:
            print(f"\n{done} of {len(cells)} cells done, kept in {out}/cells; the same command resumes", flush=True)
            raise
        finally:
            bar.close()
    finally:
        ray.shutdown()
    return engine


def run_sweep(kind_name: str, cells: list[Cell], out_dir, opts: SweepOptions | None = None,
              grid: dict | None = None) -> dict:
    """Run (or resume) a sweep into ``out_dir``; returns the results written to results.json."""
    kind = _kind(kind_name)
    opts = opts or SweepOptions()
    out = Path(out_dir)
    claim_out_dir(out, kind_name, grid or {})
    records = {}
    for c in cells:
        rec = finished_record(out / "cells" / f"{c.key}.json", c)
        if rec is not None:
            records[c.key] = rec
    if records:
        print(f"sweep {kind_name}: {len(records)} of {len(cells)} cells finished earlier (skipped), "
              f"{len(cells) - len(records)} to run", flush=True)
    t0 = time.perf_counter()
    engine = run_cells(kind, cells, out, opts, records)
    ordered = [records[c.key] for c in cells]
    results = {"tool": TOOL, "sweep": kind_name, "engine": engine, "cells_total": len(cells),
               "cells_failed": sum(r["status"] != "ok" for r in ordered),
               "cells_not_ok": sum(r["status"] != "ok" or not kind.ok(r["result"]) for r in ordered),
               "wall_s": round(time.perf_counter() - t0, 1), "cells": ordered}
    atomic_write_json(out / "results.json", results)
    from .sweep_report import write_outputs

    write_outputs(kind_name, ordered, out, plot=opts.plot, echo=opts.print_table)
    return results


def sweep_exit_status(results: dict) -> int:
    return 1 if results["cells_not_ok"] else 0

