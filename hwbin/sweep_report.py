"""What a sweep leaves for a person: ``table.md`` (also printed) and ``plot.png``.

Training: one table per model and data set, a row per method with the mean and spread over
seeds, and a plot of accuracy per method with every seed's point. RTL: a row per cell and a
plot of LUTs against Fmax per configuration (the trade an FPGA engineer picks from). Simulation:
a row per cell (a matrix of exact/not exact reads best as a table, so no plot).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .util import atomic_write_text, format_table


def _ok(records):
    return [r for r in records if r["status"] == "ok"]


def _pct(v):
    return "-" if v is None else f"{v * 100:.2f}"


# --------------------------------------------------------------------------- train

def _train_group(rec) -> tuple:
    """(model, data set, epochs): the cells that belong in one table."""
    p = rec["params"]
    return p["model"], rec.get("result", {}).get("dataset") or p.get("dataset") or "", rec["result"]["epochs"]


def train_table(rows: list[dict]) -> str:
    """A row per method: test metric over seeds (mean, std, min, max), loss, time, agreement."""
    out = []
    for method in dict.fromkeys(r["params"]["method"] for r in rows):
        rs = [r["result"] for r in rows if r["params"]["method"] == method]
        acc = np.array([r["test"] for r in rs]) * 100
        agree = [r.get("torch_golden_agreement") for r in rs]
        agree = "-" if None in agree else f"{min(agree) * 100:.2f}%"
        out.append([method, f"{acc.mean():.2f}", f"{acc.std():.2f}", f"{acc.min():.2f}", f"{acc.max():.2f}",
                    f"{np.mean([r['train_loss'] for r in rs]):.4f}", f"{np.mean([r['wall_s'] for r in rs]):.1f}",
                    rs[0]["source"], agree, len(rs)])
    metric = "mIoU" if rows[0]["result"].get("metric") == "mean_iou" else "accuracy"
    return format_table(["method", f"test {metric} %", "std", "min", "max", "train loss", "wall s",
                         "measured by", "torch=golden", "seeds"], out)


def train_tables(records: list[dict]) -> str:
    """One table per (model, data set, epochs), in the order the cells came."""
    ok = _ok(records)
    parts = []
    for group in dict.fromkeys(_train_group(r) for r in ok):
        rows = [r for r in ok if _train_group(r) == group]
        model, dataset, epochs = group
        seeds = len({r["params"].get("seed", 0) for r in rows})
        on = f" on {dataset}" if dataset else ""
        parts.append(f"{model}{on}, {epochs} epochs, {seeds} seed(s)\n{train_table(rows)}")
    return "\n\n".join(parts)


def plot_train(records: list[dict], path) -> bool:
    """Test accuracy per method, one panel per model and data set: a dot per seed, the mean
    with a bar of one standard deviation."""
    ok = _ok(records)
    groups = list(dict.fromkeys(_train_group(r) for r in ok))
    if not groups:
        return False
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(groups), figsize=(max(5, 3 + 1.1 * _max_methods(ok, groups)) * len(groups) ** 0.8, 4.2),
                             squeeze=False)
    for ax, group in zip(axes[0], groups):
        rows = [r for r in ok if _train_group(r) == group]
        methods = list(dict.fromkeys(r["params"]["method"] for r in rows))
        for i, method in enumerate(methods):
            acc = np.array([r["result"]["test"] for r in rows if r["params"]["method"] == method]) * 100
            jitter = np.linspace(-0.12, 0.12, len(acc)) if len(acc) > 1 else np.zeros(1)
            ax.scatter(i + jitter, acc, s=14, color="C0", alpha=0.6, zorder=3)
            ax.errorbar(i, acc.mean(), yerr=acc.std(), fmt="_", color="C3", markersize=18, capsize=4, zorder=4)
        ax.set_xticks(range(len(methods)), methods, rotation=30)
        metric = "mIoU" if rows[0]["result"]["metric"] == "mean_iou" else "accuracy"
        ax.set_ylabel(f"test {metric} % (golden model if fully binary)")
        seeds = len({r["params"].get("seed", 0) for r in rows})
        ax.set_title(f"{group[0]} on {group[1]}, {group[2]} epochs, {seeds} seed(s)", fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    _save(fig, path)
    return True


def _max_methods(ok, groups):
    return max(len({r["params"]["method"] for r in ok if _train_group(r) == g}) for g in groups)


# --------------------------------------------------------------------------- rtl

def _used(s: dict, what: str):
    return (s.get(what) or {}).get("used", "-")


def rtl_table(records: list[dict]) -> str:
    rows = []
    for rec in _ok(records):
        p, r = rec["params"], rec["result"]
        s = r.get("synth") or {}
        luts = (s.get("luts") or {}).get("used")
        rows.append([p["model"], p["config"], p.get("board", "-"), p.get("seed", "-") if s else "-", r["cycles"],
                     f"{r['utilization'] * 100:.1f}%", _used(s, "luts"), _used(s, "ffs"), _used(s, "brams"),
                     _used(s, "dsps"), s.get("fmax_mhz") or "-",
                     f"{s['images_per_s']:,.0f}" if s.get("images_per_s") else "-",
                     f"{r['macs_per_cycle'] / luts:.3f}" if luts else "-"])
    return format_table(["model", "array", "board", "seed", "cycles", "util", "LUTs", "FFs", "BRAM", "DSP",
                         "Fmax MHz", "images/s", "MAC/cyc/LUT"], rows)


def plot_rtl(records: list[dict], path) -> bool:
    """LUTs against Fmax, a colour per array configuration, a point per board and seed."""
    pts = [(rec["params"], rec["result"]["synth"]) for rec in _ok(records)
           if rec["result"].get("synth", {}).get("fmax_mhz")]
    if not pts:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.8))
    configs = list(dict.fromkeys(f"{p['model']} {p['config']}" for p, _ in pts))
    markers = dict(zip(dict.fromkeys(p.get("board") for p, _ in pts), "osD^v<>"))
    for i, cfg in enumerate(configs):
        for board, marker in markers.items():
            sel = [s for p, s in pts if f"{p['model']} {p['config']}" == cfg and p.get("board") == board]
            if sel:
                ax.scatter([s["luts"]["used"] for s in sel], [s["fmax_mhz"] for s in sel], color=f"C{i % 10}",
                           marker=marker, label=f"{cfg} ({board})", alpha=0.8)
    ax.set_xlabel("LUTs (nextpnr)")
    ax.set_ylabel("Fmax MHz (nextpnr)")
    ax.set_title("gateware cost per array configuration (a point per placement seed)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)
    return True


# --------------------------------------------------------------------------- sim

def sim_table(records: list[dict]) -> str:
    rows = []
    for rec in _ok(records):
        p, r = rec["params"], rec["result"]
        rows.append([p["model"], p["config"], p.get("simulator", "verilator"), r["vectors"], r["mismatches"],
                     r["cycle_mismatches"], r["predicted_cycles"], ",".join(map(str, r["measured_cycles"])),
                     f"{r['wall_s']:.0f}", f"{r['sim_cycles'] / r['wall_s']:,.0f}" if r["wall_s"] else "-",
                     "yes" if r["exact"] else "NO"])
    return format_table(["model", "array", "simulator", "vectors", "mismatches", "cycle mism.", "predicted",
                         "measured", "wall s", "cycles/s", "exact"], rows)


# --------------------------------------------------------------------------- common

TABLES = {"train": train_tables, "rtl": rtl_table, "sim": sim_table}
PLOTS = {"train": plot_train, "rtl": plot_rtl}


def failed_table(records: list[dict]) -> str:
    rows = [[r["key"], r["error"]] for r in records if r["status"] != "ok"]
    return format_table(["failed cell", "error"], rows) if rows else ""


def report_text(kind: str, records: list[dict]) -> str:
    parts = [TABLES[kind](records) if _ok(records) else "no cell finished"]
    failed = failed_table(records)
    if failed:
        parts.append(failed)
    return "\n\n".join(parts)


def write_outputs(kind: str, records: list[dict], out: Path, plot: bool = True, echo: bool = True) -> str:
    """table.md (and the same text on stdout unless ``echo`` is false) and, for train and rtl,
    plot.png."""
    text = report_text(kind, records)
    atomic_write_text(out / "table.md", f"# hwbin sweep {kind}\n\n```\n{text}\n```\n")
    if echo:
        print(text)
    else:
        failed = failed_table(records)
        if failed:
            print(failed)
    wrote = ["results.json", "table.md"]
    if plot and kind in PLOTS and PLOTS[kind](records, out / "plot.png"):
        wrote.append("plot.png")
    print(f"wrote {out}/: {', '.join(wrote)}, cells/ ({len(records)} cell records)")
    return text


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> None:
    from .report import _save as save_png

    fig.tight_layout()
    save_png(fig, path)
