"""CIFAR-10 ResNets of increasing depth, trained vs random initialisation.

Like the rest of :mod:`lieq.figures`, this module imports no torch and no timm.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ._common import (
    E2E_COLUMNS,
    _alias,
    _plain_log_ticks,
    _require,
    weights_kind,
)
from .registry import FigureContext, Needs, figure, note, section
from .style import (
    label,
    lee_label,
)

section(
    "scaling",
    "Depth: CIFAR-10 ResNets",
    ("A trained family of increasing depth that we can verify here: the CIFAR-10 ResNets, trained vs random."),
)


#: Weight variants of :func:`lee_vs_depth`: weights-source kind -> (legend label, colour, marker).
DEPTH_KINDS: dict[str, tuple[str, tuple, str]] = {
    "trained": ("trained", "#222222", "o-"),
    "random+bnrecal": ("random init (BN recalibrated)", "#CC3311", "s-"),
    "random": ("random init (default BN stats)", "#999999", "v-"),
}


def _depth_kind(weights: object) -> str:
    kind = weights_kind(weights)
    return kind if kind in ("random", "random+bnrecal") else "trained"


def lee_vs_depth(
    table: pd.DataFrame, stat: str = "mean_abs", kinds: Sequence[str] | None = None, median: bool = True
) -> Figure:
    """CIFAR-10 ResNet-20/32/44/56: LEE vs depth, trained vs random initialisation, one panel per generator.

    Weight variants (:data:`DEPTH_KINDS`, from the weights source): ``trained`` (checkpoints), ``random+bnrecal``
    (random init with BatchNorm statistics recalibrated on held-out images) and ``random`` (random init with the
    default running statistics, whose activations blow up with depth).  ``kinds`` selects and orders them (default:
    all present).  Means over seeds and images, error bars: standard error over all rows; with ``median`` also the
    median over all rows (open markers, dotted), because the per-image LEE of trained classifiers is heavy-tailed
    (near zero on confidently classified images).  Top-1 on the same images of the trained and recalibrated models
    is in the title."""
    what = "lee_vs_depth"
    _require(table, [*E2E_COLUMNS, stat, "depth", "weights"], what)
    d = table.assign(_kind=table["weights"].map(_depth_kind), _v=pd.to_numeric(table[stat]))
    present = [k for k in DEPTH_KINDS if k in set(d["_kind"])]
    kinds = list(kinds) if kinds is not None else present
    unknown = [k for k in kinds if k not in DEPTH_KINDS]
    if unknown:
        raise ValueError(f"{what}: unknown weight kind(s) {unknown}; known: {', '.join(DEPTH_KINDS)}")
    d = d[d["_kind"].isin(kinds)]
    if d.empty:
        raise ValueError(f"{what}: no rows for weight kinds {', '.join(kinds)} (has: {', '.join(present)})")
    gens = list(dict.fromkeys(d["generator"]))
    ncol = min(4, len(gens))
    nrow = int(np.ceil(len(gens) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol + 0.6, 2.3 * nrow + 1.0), squeeze=False)
    acc = []
    if "correct" in d:
        for k, name in (("trained", "trained"), ("random+bnrecal", "recalibrated random init")):
            sub = d[d._kind == k]
            if sub.empty:
                continue
            keys = [c for c in ("model", "weights", "image") if c in sub]
            top = sub.drop_duplicates(keys).groupby("depth")["correct"].mean() * 100
            acc.append(f"{name} top-1: " + ", ".join(f"ResNet-{k_} {v:.1f}%" for k_, v in top.items()))
    for ax, g in zip(axes.flat, gens):
        s = d[d.generator == g].groupby(["_kind", "depth"])["_v"].agg(["mean", "sem", "median"]).reset_index()
        for k in kinds:
            t = s[s["_kind"] == k]
            if t.empty:
                continue
            kind_label, color, fmt = DEPTH_KINDS[k]
            ax.errorbar(t["depth"], t["mean"], yerr=t["sem"].fillna(0), fmt=fmt, ms=3, color=color, label=kind_label)
            if median:
                ax.plot(
                    t["depth"], t["median"], fmt[0] + ":", ms=3, mfc="none", color=color, label=f"{kind_label}, median"
                )
        ax.set_yscale("log")
        _plain_log_ticks(ax, "y")
        ax.set_title(label(g), fontsize=7)
        ax.set_xticks(sorted(d["depth"].unique()))
        ax.tick_params(which="both", labelsize=7)
    for ax in axes.flat[len(gens) :]:
        ax.set_visible(False)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, frameon=False)
    fig.supxlabel("ResNet depth", fontsize=7)
    fig.supylabel(lee_label(stat, log=True), fontsize=7)
    n_img = d["image"].nunique()
    seeds = d[d._kind != "trained"].groupby("_kind")["weights"].nunique()
    seed_txt = f", {seeds.max()} random seed(s)" if len(seeds) else ""
    acc_txt = ("\n" + "; ".join(acc)) if acc else ""
    avg = "mean (filled) and median (open)" if median else "mean"
    fig.suptitle(f"CIFAR-10 ResNets: LEE vs depth, {avg} over images ({n_img} images{seed_txt}){acc_txt}", fontsize=8)
    fig.tight_layout()
    return fig


@figure(
    "cifar_resnet_depth", "new (training)", needs=Needs("cifar", "cifar-lee", text="run `cifar-resnet` / cifar-lee")
)
def _cifar(ctx: FigureContext):
    """CIFAR-10 ResNet-20/32/44/56: LEE vs depth, trained vs random initialisation with BatchNorm statistics
    recalibrated on held-out test images; means solid, medians dotted. The trained networks' per-image LEE is
    heavy-tailed: its median lies one to two decades below the random initialisation's, while its mean, set by a few
    images, is as large or larger."""
    t = _alias(ctx, "cifar-lee", ctx.cifar_run)
    kinds = set(t["weights"].map(_depth_kind))
    if {"trained", "random+bnrecal"} <= kinds:  # the default-statistics random init is degenerate at depth >= 32
        t = t[t["weights"].map(_depth_kind) != "random"]
        return lee_vs_depth(t), note(t) + "; random init with default BatchNorm statistics left out (degenerate)"
    return lee_vs_depth(t), note(t)
