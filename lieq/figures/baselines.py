"""The LEE against the finite / discrete baselines on the same images.

Like the rest of :mod:`lieq.figures`, this module imports no torch and no timm.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..conventions import LEE_PARTNER
from ..tables import lee_wide, spearman, stat_column
from ._common import E2E_COLUMNS, MIN_RANK_N, _require, _weights_label
from .registry import FigureContext, Needs, figure, note, section
from .style import MODEL_MARKERS, WEIGHTS_COLOR, label, lee_label, model_label

section(
    "baselines",
    "Baselines",
    (
        "The paper argues the LEE measures equivariance better than finite metrics; here both are compared on"
        " the same images."
    ),
)


def lee_vs_baselines(
    e2e: pd.DataFrame, baselines: pd.DataFrame, stat: str = "mean_sq", partner: dict[str, str] | None = None
) -> Figure:
    """Per image, each baseline vs the LEE of its partner generator (one panel per baseline, log-log, coloured by
    model), with the Spearman rank correlation across images (pooled) and across models (per-model means).

    ``baselines`` is tidy: one row per (model, image, metric) with ``mse`` (the mean squared change of the softmax
    output, docs/conventions.md section 6) and, for consistency metrics, ``consistency``; ``mse`` is plotted (and
    ``1 - consistency`` is given in the title), so that for every panel larger means less equivariant.  The LEE is
    ``mean_sq`` by default (mean (L p)^2, the first-order counterpart of an MSE).
    """
    what = "lee_vs_baselines"
    partner = partner or LEE_PARTNER
    _require(e2e, [*E2E_COLUMNS, stat, "weights"], what)
    _require(baselines, ["model", "image", "metric", "mse", "weights"], f"{what} (baselines)")
    kind = _weights_label(e2e, what=what)
    if _weights_label(baselines, what=what) != kind:
        raise ValueError(f"{what}: LEE and baselines use different weights sources")
    metrics = [m for m in dict.fromkeys(baselines["metric"]) if m in partner]
    if not metrics:
        raise ValueError(f"{what}: no known baseline metric (known: {', '.join(partner)})")
    lee = lee_wide(e2e, stat)  # per (model, image); partner "translate" = mean of translate_x and translate_y
    ncol = min(3, len(metrics))
    nrow = int(np.ceil(len(metrics) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.0 * ncol + 0.4, 2.6 * nrow + 0.8), squeeze=False)
    models = sorted(baselines["model"].unique())
    few = len(models) <= len(MODEL_MARKERS)  # few models: one marker shape each; many: a density of all images
    shown = 0
    for m in metrics:
        g = partner[m]
        if g not in lee.columns:
            continue
        ax = axes.flat[shown]
        shown += 1
        b = baselines[baselines["metric"] == m].groupby(["model", "image"])[["mse"]].mean()
        d = b.join(lee[g].rename("lee"), how="inner").dropna().reset_index()
        ok = (d["lee"] > 0) & (d["mse"] > 0)
        if few:
            for model, part in d[ok].groupby("model"):
                ax.scatter(part["lee"], part["mse"], s=7, alpha=0.6, marker=MODEL_MARKERS[models.index(model)],
                           color=WEIGHTS_COLOR, lw=0, label=model_label(model))  # fmt: skip
        else:
            ax.hexbin(d.loc[ok, "lee"], d.loc[ok, "mse"], xscale="log", yscale="log", gridsize=30, cmap="Greys",
                      mincnt=1, bins="log")  # fmt: skip
        rho_img = spearman(d.loc[ok, "lee"], d.loc[ok, "mse"])[0]
        means = d[ok].groupby("model")[["lee", "mse"]].mean()
        rho_mod = (
            f"models {spearman(means['lee'], means['mse'])[0]:.2f}"
            if len(means) >= MIN_RANK_N
            else "models: n < 5, no rank"
        )
        ax.set_xscale("log")
        ax.set_yscale("log")
        zeros = f"; {int((~ok).sum())} images at zero left out" if (~ok).any() else ""
        ax.set_title(f"{label(m)} vs LEE({label(g)})\nSpearman: images {rho_img:.2f}, {rho_mod} (n = {len(means)})"
                     f"{zeros}", fontsize=7)  # fmt: skip
        ax.tick_params(which="both", labelsize=7)
    if not shown:
        raise ValueError(f"{what}: the LEE table lacks the partner generators of the baselines")
    for ax in axes.flat[shown:]:
        ax.set_visible(False)
    if few:
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(5, len(labels)),
                   frameon=False, markerscale=2)  # fmt: skip
    fig.supxlabel(lee_label(stat, log=True) + ", per image", fontsize=8)
    fig.supylabel("baseline per image: MSE of softmax outputs", fontsize=8)
    counts = baselines.groupby("model")["image"].nunique()
    imgs = f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()}-{counts.max()}"
    fig.suptitle(f"LEE vs the finite / discrete baselines: weights {kind}; {len(counts)} model(s) x {imgs} images",
                 fontsize=9)  # fmt: skip
    fig.tight_layout()
    return fig


@figure(
    "lee_vs_baselines",
    "likely (body/appendix)",
    needs=Needs("main", "baselines", text="e2e and baselines results of the main run"),
)
def _baselines(ctx: FigureContext):
    """Per image, the LEE against each finite / discrete baseline (consistency, EQ-T, EQ-T_frac, EQ-R, sampled
    invariance) of its partner generator. Rank correlations over images, and over models only with at least 5 models."""
    e2e = ctx.e2e(generator="translate_x")
    base = ctx.table(ctx.run, "baselines")
    base = stat_column(base, "mse")  # long format: one row per (image, metric, stat) with a value
    e2e = e2e[e2e["model"].isin(set(base["model"]))]
    return lee_vs_baselines(e2e, base), f"LEE: {note(e2e[e2e['generator'] == 'translate_x'])}; baselines: {note(base)}"
