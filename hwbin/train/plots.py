"""Training curves like the seed's figure 6: accuracy and loss against epochs, with the
stage boundaries and their ratios marked."""
from __future__ import annotations

import io

from ..util import atomic_write_bytes


def plot_curves(metrics: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = metrics["history"]
    ep = [r["epoch"] for r in hist]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    ax1.plot(ep, [r["train_acc"] for r in hist], label="train")
    ax1.plot(ep, [r["test_acc"] for r in hist], label="test")
    metric = metrics.get("metric", "accuracy").replace("_", " ")
    ax1.set_ylabel(metric)
    ax2.plot(ep, [r["train_loss"] for r in hist], color="C3")
    ax2.set_ylabel("train loss")
    ax2.set_xlabel("epoch")
    ax2.set_yscale("log")
    start = 0
    for st in metrics["stages"]:
        for ax in (ax1, ax2):
            ax.axvline(start + 0.5, color="grey", lw=0.6, ls="--")
        ax1.text(start + 0.9, 0.04, f"{st['name']}: w{st['weight_ratio'] * 100:g}% a{st['act_ratio'] * 100:g}%",
                 transform=ax1.get_xaxis_transform(), fontsize=7, va="bottom", rotation=90, color="grey")
        start = st["end_epoch"]
    opt = metrics["options"]
    fin = metrics["final"]
    ax1.set_title(f"{opt['model']} / {opt['method']}: test {metric} {fin['test'] * 100:.2f}% ({fin['source']})")
    ax1.legend(loc="center right")
    ax1.grid(alpha=0.3)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
