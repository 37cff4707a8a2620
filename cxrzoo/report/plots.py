"""The report's figures, drawn with matplotlib (Agg) and returned as PNG bytes."""
from __future__ import annotations

import io

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def _grid(n: int):
    plt = _plt()
    cols = 4
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.1 * cols, 2.9 * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return fig, axes.ravel()


def _curve_grid(curves: dict[str, dict | None], key: str, colour: str, titles: dict[str, str],
                axis_labels: tuple[str, str], chance) -> bytes:
    """One panel per label: curve ``key`` with its band ``key_lo``–``key_hi`` and a chance line."""
    fig, axes = _grid(len(curves))
    for ax, (name, c) in zip(axes, curves.items()):
        if c is None:
            ax.text(0.5, 0.5, "one class only", ha="center", va="center", fontsize=9)
        else:
            ax.fill_between(c["grid"], c[f"{key}_lo"], c[f"{key}_hi"], color=colour, alpha=0.25, lw=0)
            ax.plot(c["grid"], c[key], color=colour, lw=1.6)
            chance(ax, c)
        ax.set_title(titles[name], fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.01)
        ax.tick_params(labelsize=7)
    axes[0].set_xlabel(axis_labels[0], fontsize=8)
    axes[0].set_ylabel(axis_labels[1], fontsize=8)
    return _png(fig)


def roc_grid(curves: dict[str, dict | None], auc: dict[str, float | None], positives: dict[str, int]) -> bytes:
    """Per label: the ROC curve with its 95 % bootstrap band (labels without both classes say so)."""
    titles = {n: f"{n}\nAUC {auc[n]:.3f}, {positives[n]} pos." if auc.get(n) is not None else
              f"{n}\n{positives[n]} pos." for n in curves}
    return _curve_grid(curves, "roc", "#1f77b4", titles, ("1 - specificity", "sensitivity"),
                       lambda ax, c: ax.plot([0, 1], [0, 1], color="#999", lw=0.8, ls="--"))


def pr_grid(curves: dict[str, dict | None], positives: dict[str, int]) -> bytes:
    """Per label: the precision-recall curve with its 95 % bootstrap band and the prevalence line."""
    titles = {n: f"{n}\n{positives[n]} pos." for n in curves}
    return _curve_grid(curves, "pr", "#d62728", titles, ("recall", "precision"),
                       lambda ax, c: ax.axhline(c["prevalence"], color="#999", lw=0.8, ls="--"))


def reliability_diagram(rel: dict) -> bytes:
    """Observed positive rate against mean predicted probability per bin, with the bins' counts."""
    plt = _plt()
    fig, (ax, hx) = plt.subplots(2, 1, figsize=(5.2, 5.6), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    centres = (rel["edges"][:-1] + rel["edges"][1:]) / 2
    used = rel["count"] > 0
    ax.plot([0, 1], [0, 1], color="#999", lw=0.8, ls="--", label="perfect calibration")
    ax.plot(rel["mean_probability"][used], rel["observed"][used], "o-", color="#2ca02c", label="this model")
    ax.set_ylabel("observed positive rate")
    ax.set_title(f"Reliability over every label and image (ECE {rel['ece']:.3f})", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    hx.bar(centres, rel["count"], width=rel["edges"][1] - rel["edges"][0], color="#7f7f7f")
    hx.set_yscale("log")
    hx.set_xlabel("predicted probability")
    hx.set_ylabel("count")
    return _png(fig)


def learning_curves(history: list[dict]) -> bytes | None:
    """Training and validation loss, validation mean AUC and the learning rate per epoch (None without history)."""
    if not history:
        return None
    plt = _plt()
    ep = np.arange(1, len(history) + 1)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.4))
    for key, label in (("loss", "training loss"), ("val_loss", "validation loss")):
        vals = [h.get(key) for h in history]
        if any(v is not None for v in vals):
            a1.plot(ep, [np.nan if v is None else v for v in vals], "o-", label=label)
    a1.set_xlabel("epoch")
    a1.set_ylabel("BCE")
    a1.legend(fontsize=8)
    auc = [h.get("val_mean_auc") for h in history]
    if any(v is not None for v in auc):
        a2.plot(ep, [np.nan if v is None else v for v in auc], "o-", color="#2ca02c", label="validation mean AUC")
    sel = [i + 1 for i, h in enumerate(history) if h.get("selected")]
    for s in sel:
        a2.axvline(s, color="#2ca02c", ls=":", lw=1)
    a2.set_xlabel("epoch" + (f" (kept: {sel[0]})" if sel else ""))
    from matplotlib.ticker import MaxNLocator

    for ax in (a1, a2):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    a2.set_ylabel("mean AUC")
    lr = a2.twinx()
    lr.semilogy(ep, [h.get("learning_rate") or np.nan for h in history], color="#ff7f0e", lw=1, label="lr")
    lr.set_ylabel("learning rate", color="#ff7f0e")
    return _png(fig)
