"""``hwbin sweep train|rtl|sim``: the grid from command-line lists and/or a JSON grid file.

Every list option is an axis of the grid (``--methods xnor,horq,srb --seeds 0-2`` is 9 cells);
a grid file may set any parameter of the kind, as a value or a list, and an option given on
the command line replaces the file's field of the same name.
"""
from __future__ import annotations

from pathlib import Path

from .errors import HwbinError

# option attribute -> grid field, per kind
AXES = {
    "train": {"models": "model", "methods": "method", "seeds": "seed", "epochs": "epochs", "datasets": "dataset",
              "data_path": "data_path"},
    "rtl": {"ir": "ir", "configs": "config", "boards": "board", "seeds": "seed", "clock_mhz": "clock_mhz"},
    "sim": {"ir": "ir", "configs": "config", "simulators": "simulator", "vectors": "vectors", "gap": "gap"},
}


def _ints(option: str, text: str) -> list[int]:
    """'0,1,2' or '0-2' -> [0, 1, 2]."""
    out = []
    for part in text.split(","):
        try:
            a, _, b = part.partition("-") if part.count("-") == 1 and not part.startswith("-") else (part, "", "")
            out.extend(range(int(a), int(b) + 1) if b else [int(a)])
        except ValueError:
            raise HwbinError(f"--{option}: expected integers like 0,1,2 or 0-4, found {part!r}") from None
    return out


def _values(option: str, text, default):
    """A comma list typed like the parameter's default."""
    if isinstance(text, list):          # --ir, repeated
        return text
    if isinstance(default, int) and not isinstance(default, bool):
        return _ints(option, text)
    if isinstance(default, float):
        try:
            return [float(v) for v in text.split(",")]
        except ValueError:
            raise HwbinError(f"--{option}: expected numbers, found {text!r}") from None
    return [v for v in text.split(",") if v]


def grid_from_args(kind: str, args) -> dict:
    """The grid file's fields (if any), with the command line's lists on top."""
    from .sweep import KINDS, load_grid_file

    grid = load_grid_file(args.grid) if args.grid else {}
    fields = KINDS[kind].fields()
    for attr, field in AXES[kind].items():
        text = getattr(args, attr, None)
        if text is not None:
            grid[field] = _values(attr.replace("_", "-"), text, fields.get(field))
    return grid


def cmd_sweep(args) -> int:
    from .sweep import SweepOptions, expand_grid, make_cells, run_sweep, sweep_exit_status

    kind = args.sweep_kind
    grid = grid_from_args(kind, args)
    where = args.grid or "command line"
    cells = make_cells(kind, expand_grid(kind, grid, where))
    if not cells:
        raise HwbinError(f"{where}: the grid has no cells")
    out = Path(args.out or f"sweeps/{kind}")
    opts = SweepOptions(address=args.address, num_cpus=args.cpus, cpus_per_cell=args.cpus_per_cell,
                        gpus_per_cell=getattr(args, "gpus_per_cell", 0) or 0, plot=not args.no_plot)
    where_to = f"the Ray cluster at {args.address}" if args.address else \
        f"a local Ray instance ({args.cpus or 'all'} CPUs)"
    print(f"sweep {kind}: {len(cells)} cells on {where_to}, {opts.cpus_per_cell:g} CPU(s) each; "
          f"results in {out}/", flush=True)
    return sweep_exit_status(run_sweep(kind, cells, out, opts, grid))


def _common(p) -> None:
    p.add_argument("--grid", metavar="JSON", help="grid file: {\"param\": value or [values], ...}")
    p.add_argument("-o", "--out", help="sweep folder (default sweeps/<kind>); run again to resume")
    p.add_argument("--address", help="join this Ray cluster (e.g. auto, or HEAD:6379 from 'ray start --head'); "
                                     "default: start a local Ray instance")
    p.add_argument("--cpus", type=int, help="CPUs of the local Ray instance (default: all of this machine's)")
    p.add_argument("--cpus-per-cell", type=float, default=1, help="CPUs Ray reserves for each cell (default 1)")
    p.add_argument("--no-plot", action="store_true")
    p.set_defaults(func=cmd_sweep)


def add_sweep_parser(sub, parser_class) -> None:
    """The ``sweep`` command and its three kinds."""
    from .program import ArrayConfig

    default = ArrayConfig()
    s = sub.add_parser("sweep", help="run a grid of train, rtl or sim cells as Ray tasks (local or a cluster)")
    kinds = s.add_subparsers(dest="sweep_kind", metavar="KIND", parser_class=parser_class, required=True)

    t = kinds.add_parser("train", help="models x methods x seeds x data sets: accuracy per method with seed spread")
    t.add_argument("--models", help="comma list, e.g. digits-tiny,digits-cnn")
    t.add_argument("--methods", help="comma list, e.g. xnor,horq,srb")
    t.add_argument("--seeds", help="e.g. 0,1,2 or 0-4 (default 0)")
    t.add_argument("--epochs", help="epoch budget(s), e.g. 20 (default 60)")
    t.add_argument("--datasets", help="comma list (default: each model's own)")
    t.add_argument("--data-path", help="local MNIST: a folder of IDX files or an .npz (same path on every node)")
    t.add_argument("--gpus-per-cell", type=float, default=0, help="GPUs Ray reserves for each cell (default 0)")
    _common(t)

    r = kinds.add_parser("rtl", help="configurations x boards x placement seeds: cycles, LUTs, Fmax")
    r.add_argument("--ir", action="append", metavar="[NAME=]PATH", help="IR file to build (repeat for several)")
    r.add_argument("--configs", help=f"arrays ROWSxCOLSxLANES, e.g. 8x4x32,16x8x32 (default {default.label()})")
    r.add_argument("--boards", help="boards or devices, e.g. ecp5-25f,ice40-up5k (default ecp5-25f; "
                                    "'none': cycle model only)")
    r.add_argument("--seeds", help="nextpnr placement seeds, e.g. 1,2 (default 1)")
    r.add_argument("--clock-mhz", help=f"clock for images/s in the cycle model (default {default.clock_mhz:g})")
    _common(r)

    m = kinds.add_parser("sim", help="models x configurations x simulators: bit- and cycle-exact against golden")
    m.add_argument("--ir", action="append", metavar="[NAME=]PATH", help="IR file to verify (repeat for several)")
    m.add_argument("--configs", help=f"arrays, e.g. 8x4x32,8x8x32 (default {default.label()})")
    m.add_argument("--simulators", help="verilator,icarus (default verilator)")
    m.add_argument("--vectors", help="test-set images per cell (default 200)")
    m.add_argument("--gap", help="probability of an idle stream cycle (cycles then unchecked; default 0)")
    _common(m)
