"""The main job's report: ``report.md`` and a self-contained ``report.html`` with plots.

Plots: the training curves (fp and srb), cycles and PE utilization per layer from the
gateware's cycle model, and weight ROM bits and binary MACs per layer. The array is shared by
every layer, so LUTs are reported for the whole design (from nextpnr), not per layer.
"""
from __future__ import annotations

import base64
import html
import io
import os
from pathlib import Path

from .util import atomic_write_bytes, atomic_write_text, format_table


def _save(fig, path) -> None:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def plot_layers(rtl_report: dict, model, path) -> None:
    """Per layer: cycles against ideal cycles, utilization, and weight ROM bits."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = rtl_report["layers"]
    names = [la["name"] for la in layers]
    x = range(len(names))
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    ax1.bar(x, [la["cycles"] for la in layers], label="cycles (cycle model)")
    ax1.bar(x, [la["ideal_cycles"] for la in layers], width=0.4, label="ideal at full PE use")
    ax1.set_ylabel("cycles")
    ax1.legend()
    cfg = rtl_report["config"]
    ax1.set_title(f"gateware, array {cfg['rows']}x{cfg['cols']}x{cfg['lanes']}: "
                  f"{rtl_report['latency_cycles']} cycles per image")
    ax2.bar(x, [(la["utilization"] or 0) * 100 for la in layers], color="C2")
    ax2.set_ylabel("PE utilization %")
    ax2.set_ylim(0, 105)
    ax3.bar(x, [la.weight_bits() for la in model.layers], color="C4")
    ax3.set_ylabel("weight bits")
    ax3.set_xticks(list(x), names, rotation=30)
    for ax in (ax1, ax2, ax3):
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    _save(fig, path)


def write_report(out_dir, title: str, rows: list[list], sections: list[tuple[str, str]],
                 figures: list[tuple[str, Path]]) -> None:
    """``rows``: the summary table; ``sections``: (heading, markdown/preformatted text);
    ``figures``: (caption, png path). Markdown links the PNGs; HTML embeds them."""
    out = Path(out_dir)
    md = [f"# {title}", "", "```", format_table(["summary", "value"], rows), "```", ""]
    for head, text in sections:
        md += [f"## {head}", "", text.rstrip(), ""]
    md += ["## Plots", ""]
    for cap, png in figures:
        md += [f"![{cap}]({os.path.relpath(png, out)})", ""]
    atomic_write_text(out / "report.md", "\n".join(md))
    h = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
         "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}pre{background:#f4f4f4;padding:1em}"
         "img{max-width:100%}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
         "<table border=1 cellpadding=4 style='border-collapse:collapse'>"]
    h += [f"<tr><td>{html.escape(str(a))}</td><td>{html.escape(str(b))}</td></tr>" for a, b in rows]
    h.append("</table>")
    for head, text in sections:
        h += [f"<h2>{html.escape(head)}</h2>", f"<pre>{html.escape(text)}</pre>"]
    h.append("<h2>Plots</h2>")
    for cap, png in figures:
        data = base64.b64encode(Path(png).read_bytes()).decode()
        h += [f"<figure><img src='data:image/png;base64,{data}' alt='{html.escape(cap)}'>"
              f"<figcaption>{html.escape(cap)}</figcaption></figure>"]
    h.append("</body></html>")
    atomic_write_text(out / "report.html", "\n".join(h))
