"""Paper Fig. 1 (right): LEE vs accuracy, with the paper's own points as the reference layer.

Like the rest of :mod:`lieq.figures`, this module imports no torch and no timm.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ._common import (
    E2E_COLUMNS,
    _draw_fit,
    _family_of,
    _ols,
    _require,
    _select_generator,
    _short,
    _size,
    _subtitle,
    _weights_label,
    bootstrap_ci,
    per_model,
    weights_kind,
)
from .registry import FigureContext, MissingData, Needs, figure, note, section
from .style import FAMILY_COLORS, FAMILY_ORDER, TWO_COL, label, lee_label, model_label

section(
    "fig1",
    "End-to-end LEE and accuracy (Fig. 1 right)",
    (
        "Fig. 1 (right): translation LEE vs top-1. The paper's claim, over ~400 models: more accurate models "
        "are more equivariant (R^2 = 0.333). The paper's own points (digitised from the authors' vector "
        "figure, data/reference/) are the reference layer; our models are placed on it by their LEE and "
        "timm's published top-1."
    ),
)


def lee_vs_accuracy(
    e2e: pd.DataFrame, models: pd.DataFrame | None = None, generator: str = "translate_x", stat: str = "mean_abs"
) -> Figure:
    """Paper Fig. 1 (right): LEE vs top-1 on the same images, one point per model.

    Colour: family (CNN / ViT / Mixer); marker size: parameter count; error bars: standard error over images; line:
    least squares over models with R^2 and a bootstrap (over models) 95 % band.
    """
    what = "lee_vs_accuracy"
    _require(e2e, [*E2E_COLUMNS, stat, "correct", "weights"], what)
    sub = _select_generator(e2e, generator, what)
    title2 = _subtitle(sub, what)
    pm = per_model(sub, generator, stat).merge(_family_of(models, sub["model"].unique()), on="model", how="left")
    fig, ax = plt.subplots(figsize=(5.2, 4.0))
    sizes = _size(pm["params"]) if "params" in pm else np.full(len(pm), 40.0)
    for fam, grp in pm.groupby("family", sort=False):
        idx = grp.index
        ax.errorbar(grp["top1"], grp["lee"], yerr=grp["se"], fmt="none", ecolor=FAMILY_COLORS.get(fam), alpha=0.6)
        ax.scatter(
            grp["top1"],
            grp["lee"],
            s=sizes[idx],
            color=FAMILY_COLORS.get(fam, FAMILY_COLORS["other"]),
            label=fam,
            edgecolor="white",
            linewidth=0.5,
            zorder=3,
        )
    if len(pm) <= 12:
        for _, r in pm.iterrows():
            ax.annotate(
                _short(r["model"]), (r["top1"], r["lee"]), fontsize=7, xytext=(4, 3), textcoords="offset points"
            )
    fit = _draw_fit(ax, pm["top1"].to_numpy(), pm["lee"].to_numpy())
    ax.set_xlabel("top-1 accuracy on the same images (%)")
    ax.set_ylabel(lee_label(stat, generator))
    ax.legend(title="family", fontsize=7, title_fontsize=7, loc="best")
    ax.set_title(f"{label(generator)} LEE vs accuracy\n{title2}\n{fit}", fontsize=8)
    fig.tight_layout()
    return fig


def lee_vs_accuracy_with_paper(
    e2e: pd.DataFrame, models: pd.DataFrame, paper: pd.DataFrame, generator: str = "translate_x",
    highlight: int = 8,
) -> Figure:  # fmt: skip
    """Paper Fig. 1 (right) as the reference layer, our models on top.

    The paper's points (``paper``: ``arch_family``, ``imagenet_acc_pct``, ``translation_lee``; data/reference/) are
    drawn small, coloured by family, with their least-squares line and R^2 recomputed from the points.  Each of our
    models is placed at timm's published top-1 (catalogue column ``timm_top1``; our images do not give the paper's
    accuracy axis) and its mean translation LEE over images (``mean_abs``, the paper's statistic) with a bootstrap
    95 % interval of that mean.  Our marks: large diamonds with a black edge, filled in the family colour; names only
    on up to ``highlight`` models (the most and least equivariant)."""
    what = "lee_vs_accuracy_with_paper"
    _require(e2e, [*E2E_COLUMNS, "mean_abs", "weights"], what)
    _require(models, ["model", "family", "timm_top1"], f"{what} (model catalogue)")
    _require(paper, ["arch_family", "imagenet_acc_pct", "translation_lee"], f"{what} (paper points)")
    sub = _select_generator(e2e, generator, what)
    kind = _weights_label(sub, what=what)
    pm = per_model(sub, generator, "mean_abs").merge(_family_of(models, sub["model"].unique()), on="model", how="left")
    pm["timm_top1"] = pd.to_numeric(pm.get("timm_top1"), errors="coerce")
    pm = pm.dropna(subset=["timm_top1"])
    if pm.empty:
        raise ValueError(f"{what}: none of the models has a published top-1 (timm_top1) in the catalogue")
    fig, ax = plt.subplots(figsize=(TWO_COL * 0.8, 3.4))
    for fam in FAMILY_ORDER:
        grp = paper[paper["arch_family"] == fam]
        if len(grp):
            ax.scatter(grp["imagenet_acc_pct"], grp["translation_lee"], s=7, color=FAMILY_COLORS[fam], alpha=0.45,
                       lw=0, label=f"paper: {fam} (n = {len(grp)})", zorder=1)  # fmt: skip
    fit = _ols(paper["imagenet_acc_pct"].to_numpy(float), paper["translation_lee"].to_numpy(float), n_boot=0)
    if fit:
        ax.plot(fit["grid"], fit["intercept"] + fit["slope"] * fit["grid"], color="0.25", lw=1, ls="--", zorder=2,
                label=f"paper: least squares, R$^2$ = {fit['r2']:.3f}")  # fmt: skip
    many = len(pm) > 40  # paper scale: smaller marks, no error bars
    if not many:
        ci = np.array([bootstrap_ci(sub.loc[sub["model"] == m, "mean_abs"]) for m in pm["model"]])
        yerr = np.abs(np.vstack([pm["lee"] - ci[:, 0], ci[:, 1] - pm["lee"]]))
    for i, (_, r) in enumerate(pm.iterrows()):
        c = FAMILY_COLORS.get(r["family"], FAMILY_COLORS["other"])
        if many:
            ax.plot(r["timm_top1"], r["lee"], "D", ms=3, mfc=c, mec="black", mew=0.3, alpha=0.5, zorder=4,
                    label="ours (timm top-1)" if i == 0 else None)  # fmt: skip
            continue
        ax.errorbar(
            r["timm_top1"],
            r["lee"],
            yerr=yerr[:, i : i + 1],
            fmt="D",
            ms=6,
            mfc=c,
            mec="black",
            mew=0.8,
            ecolor="black",
            elinewidth=0.8,
            zorder=4,
            label="ours (timm top-1)" if i == 0 else None,
        )
    ranked = pm.sort_values("lee")
    names = pd.concat([ranked.head(highlight // 2), ranked.tail(highlight - highlight // 2)]).drop_duplicates("model")
    for _, r in names.iterrows():
        ax.annotate(model_label(r["model"]), (r["timm_top1"], r["lee"]), fontsize=7, xytext=(5, -2),
                    textcoords="offset points", zorder=5)  # fmt: skip
    ax.set_xlabel("ImageNet top-1 (%)")
    ax.set_ylabel(lee_label("mean_abs", generator))
    n_img = int(pm["n_images"].median())
    ax.set_title(f"{label(generator)} LEE vs accuracy: the paper's {len(paper)} models and our {len(pm)}", fontsize=8)
    ax.legend(
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=7,
        frameon=False,
        title=f"x: paper's top-1 on its test subset;\nours at timm's published top-1\n"
        f"(LEE: weights {kind}, {n_img} images,\nmean" + (")" if many else ", bootstrap 95 % CI)"),
        title_fontsize=7,
    )
    fig.tight_layout()
    return fig


def _e2e_main(ctx: FigureContext, generator: str = "translate_x") -> pd.DataFrame:
    df = ctx.e2e(generator=generator)
    if "correct" not in df.columns or df["correct"].isna().all():
        raise MissingData(f"run '{ctx.run}' has no labels (top-1 unknown)")
    if (df["weights"].map(weights_kind) == "random").all():
        raise MissingData(f"run '{ctx.run}' has random weights only; accuracy trends need trained models")
    return df


@figure(
    "fig1_right_lee_vs_accuracy",
    "Fig. 1 (right)",
    needs=Needs(
        "main", "e2e", text="e2e results of the main run (trained weights) + the paper's points (data/reference)"
    ),
)
def _fig1_right(ctx: FigureContext):
    """Translation LEE vs ImageNet top-1: the paper's 401 models (digitised from the authors' vector figure, coloured by
    family, with their least-squares line and R^2 recomputed from the points) and our models on top, each placed by
    its measured LEE and timm's published top-1 (our images do not give the paper's accuracy axis). The paper's
    trend: more accurate models are more equivariant."""
    df = ctx.e2e(generator="translate_x")
    if (df["weights"].map(weights_kind) == "random").all():
        raise MissingData(f"run '{ctx.run}' has random weights only; accuracy trends need trained models")
    models = ctx.models()
    d = df[df["generator"] == "translate_x"]
    try:
        paper = ctx.paper_points("paper_fig1_right")
        known = models is not None and "timm_top1" in models and models["timm_top1"].notna().any()
    except MissingData:
        known = False
    if not known:  # no paper layer possible: top-1 measured on the same images instead
        df = _e2e_main(ctx)
        return lee_vs_accuracy(df, models), note(d) + "; top-1 measured on the same images (no paper layer)"
    data = note(d) + f"; the paper's {len(paper)} points from data/reference/paper_fig1_right.csv"
    return lee_vs_accuracy_with_paper(df, models, paper), data
