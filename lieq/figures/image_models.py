"""The image-model audit: the LEE and the layer shares under each continuous image model.

Like the rest of :mod:`lieq.figures`, this module imports no torch and no timm.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from ..conventions import CATEGORIES
from ..tables import spearman
from ._common import (
    E2E_COLUMNS,
    MIN_PANEL_IMAGES,
    MIN_RANK_N,
    _alias,
    _counts,
    _plain_log_ticks,
    _require,
    _select_generator,
    _weights_label,
    bootstrap_ci,
    per_model,
    weights_kind,
)
from .registry import FigureContext, MissingData, Needs, figure, newest_config, note, section
from .style import CATEGORY_COLORS, IMAGE_MODEL_COLORS, MODEL_MARKERS, WEIGHTS_COLOR, label, lee_label, model_label

section(
    "image_models",
    "New: how much of the LEE is the image model",
    (
        "The sensitivity of the LEE, and of the layer shares, to the choice of continuous image model "
        "(docs/conventions.md section 2)."
    ),
)


def image_model_sensitivity(e2e: pd.DataFrame, generator: str = "translate_x", stat: str = "mean_abs") -> Figure:
    """LEE per model under each image model (left) and the rank correlation of models between image models (right).

    Needs an ``image_model`` column with at least two values; every value is compared on the same (model, image)
    pairs.
    """
    what = "image_model_sensitivity"
    _require(e2e, [*E2E_COLUMNS, stat, "weights", "image_model"], what)
    sub = _select_generator(e2e, generator, what)
    kinds = _weights_label(sub, allow_mixed=True, what=what)
    ims = list(dict.fromkeys(sub["image_model"]))
    if len(ims) < 2:
        raise ValueError(f"{what}: only one image model ({ims[0]}) in the table")
    pm = per_model(sub.assign(generator=sub["generator"] + "|" + sub["image_model"]), None, stat)
    pm[["generator", "image_model"]] = pm["generator"].str.split("|", expand=True)
    wide = pm.pivot(index="model", columns="image_model", values="lee")[ims]
    order = ["bilinear", *[i for i in ims if i != "bilinear"]] if "bilinear" in ims else ims
    wide = wide[order].sort_values(order[0])
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, max(3.6, 0.28 * len(wide) + 2.2)), width_ratios=[2, 1])
    y = np.arange(len(wide))
    for im in order:
        ax.scatter(wide[im], y, color=IMAGE_MODEL_COLORS.get(im, "#777777"), label=label(im), s=18, zorder=3)
    ax.set_yticks(y, [model_label(m) for m in wide.index], fontsize=7 if len(wide) > 20 else 7)
    ax.set_xscale("log")
    _plain_log_ticks(ax)
    ax.set_xlabel(lee_label(stat, generator, log=True))
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=min(5, len(order)), frameon=False)
    if len(wide) >= MIN_RANK_N:
        rho = pd.DataFrame(index=[label(o) for o in order], columns=[label(o) for o in order], dtype=float)
        for a in order:
            for b in order:
                pair = np.column_stack([wide[a].to_numpy(float), wide[b].to_numpy(float)])
                pair = pair[np.isfinite(pair).all(1)]
                rho.loc[label(a), label(b)] = spearman(pair[:, 0], pair[:, 1])[0]
        sns.heatmap(rho, annot=True, fmt=".2f", vmin=-1, vmax=1, cmap="vlag", ax=ax2, cbar=False,
                    annot_kws={"size": 7})  # fmt: skip
        ax2.set_title(f"Spearman rank correlation of models (n = {len(wide)})", fontsize=8)
    else:  # too few models for a rank statistic: paired per-image ratios to the first image model instead
        per = sub.assign(_v=pd.to_numeric(sub[stat])).pivot_table(
            index=["model", "image"], columns="image_model", values="_v"
        )
        for k, m in enumerate(wide.index):
            pm_ = per.loc[m]
            for j, im in enumerate(order[1:]):
                r = (pm_[im] / pm_[order[0]]).replace([np.inf, -np.inf], np.nan).dropna()
                r = r[r > 0]
                if r.empty:
                    continue
                lo, hi = bootstrap_ci(r, stat=np.median, n_resamples=500)
                med = float(r.median())
                ax2.errorbar(med, j + 0.15 * (k - 1), xerr=[[med - lo], [hi - med]], fmt=MODEL_MARKERS[k % 10],
                             ms=4, color=IMAGE_MODEL_COLORS.get(im, "#777777"), elinewidth=0.8,
                             capsize=2)  # fmt: skip
        ax2.axvline(1.0, color="0.5", lw=0.8, ls="--")
        ax2.set_xscale("log")
        _plain_log_ticks(ax2)
        ax2.set_yticks(range(len(order) - 1), [label(i) for i in order[1:]])
        ax2.invert_yaxis()
        ax2.set_xlabel(f"per-image ratio to {label(order[0])}")
        markers = [plt.Line2D([], [], ls="", marker=MODEL_MARKERS[k % 10], color=WEIGHTS_COLOR)
                   for k in range(len(wide))]  # fmt: skip
        ax2.legend(markers, [model_label(m) for m in wide.index], loc="upper left", bbox_to_anchor=(1.01, 1.0),
                   frameon=False)  # fmt: skip
        ax2.set_title(f"{len(wide)} models < {MIN_RANK_N}: no rank statistic;\npaired per-image ratios, median and "
                      "bootstrap 95 % CI", fontsize=8)  # fmt: skip
    ratio = (wide.drop(columns=order[0]).div(wide[order[0]], axis=0)).median()
    ax.set_title(f"{label(generator)} LEE by image model (weights: {kinds}; {_counts(sub)})\nmedian ratio to "
                 f"{label(order[0])}: " + ", ".join(f"{label(k)} {v:.2f}" for k, v in ratio.items()),
                 fontsize=7)  # fmt: skip
    fig.tight_layout()
    return fig


def category_shares(layers: pd.DataFrame, by: str = "lowpass", generator: str = "translate_x") -> Figure:
    """Layerwise attribution under a varied condition ``by`` (``lowpass``: input low-pass cut-off, fraction of
    Nyquist; ``image_model``: the continuous image model): the share (%) of each layer category in the total
    layerwise error, one stacked bar per value of ``by``, one panel per model."""
    what = f"category_shares({by})"
    _require(layers, ["model", "image", "generator", "category", "contribution", by, "weights"], what)
    d = _select_generator(layers, generator, what)
    unknown = sorted(set(d["category"]) - set(CATEGORIES))
    if unknown:
        raise ValueError(f"{what}: unknown layer categories {unknown}")
    kind = _weights_label(d, what=what)
    tot = d.groupby(["model", by, "category"], sort=False)["contribution"].sum()
    share = (tot / tot.groupby(["model", by]).transform("sum") * 100).reset_index()
    models = list(dict.fromkeys(d["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(3.3 * len(models) + 1.2, 3.2), squeeze=False, sharey=True)
    for ax, m in zip(axes[0], models):
        w = share[share.model == m].pivot(index=by, columns="category", values="contribution").fillna(0)
        order = list(dict.fromkeys(d.loc[d.model == m, by]))
        w = w.reindex(order)[[c for c in CATEGORIES if c in w.columns]]
        bottom = np.zeros(len(w))
        xs = np.arange(len(w))
        for c in w.columns:
            ax.bar(xs, w[c].to_numpy(), bottom=bottom, color=CATEGORY_COLORS[c], label=c, width=0.7)
            bottom += w[c].to_numpy()
        labels = [
            (f"{v:g}" if v < np.sqrt(2) else "none") if isinstance(v, (int, float, np.floating)) else label(v)
            for v in w.index
        ]
        ax.set_xticks(xs, labels, fontsize=7, rotation=30 if by == "image_model" else 0)
        ax.set_xlabel("low-pass cut-off (fraction of Nyquist)" if by == "lowpass" else by.replace("_", " "), fontsize=7)
        n_img = d.loc[d.model == m, "image"].nunique()
        ax.set_title(f"{model_label(m)} ({n_img} images)", fontsize=8)
    axes[0, 0].set_ylabel(f"share of layerwise {label(generator)} error (%)", fontsize=7)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=7)
    fig.suptitle(f"Layer-category shares by {by.replace('_', ' ')}: weights {kind}", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    return fig


def _image_models_for(random: bool):
    def load(ctx: FigureContext):
        frames = []
        for run, exp in ((ctx.image_model_run, "image-model-audit"), (ctx.run, "e2e")):
            try:
                df = ctx.table(run, exp)
            except MissingData:
                continue
            if "image_model" in df and df["image_model"].nunique() >= 2:
                frames.append(df)
        if not frames:
            raise MissingData(
                f"no end-to-end results under several image models (run '{ctx.image_model_run}' / image-model-audit)"
            )
        df = newest_config(frames[0])
        df = df[df["generator"] == "translate_x"]
        df = df[df["method"] == "forward"] if "method" in df and df["method"].nunique() > 1 else df
        is_random = df["weights"].map(weights_kind) == "random"
        df = df[is_random] if random else df[~is_random]  # one weights source per figure
        if df.empty:
            kind = "random-init" if random else "trained"
            raise MissingData(f"the image-model audit has no {kind} models")
        return image_model_sensitivity(df), note(df) + f"; image models: {', '.join(df['image_model'].unique())}"

    return load


for _name, _paper, _caption, _needs, _arg in (
    (
        "image_model_sensitivity",
        "new",
        (
            "Translation LEE of each trained model under each continuous image model, and how the models' ranking"
            " changes (rank correlation only with at least 5 models, else paired per-image ratios). The image "
            "model is a modelling choice the LEE depends on."
        ),
        Needs(text="e2e results under >= 2 image models (trained weights)"),
        False,
    ),
    (
        "image_model_sensitivity_random_init",
        "new",
        (
            "The same audit for randomly initialised models (the architecture alone). Differences here come from "
            "the architecture, not from training."
        ),
        Needs(text="e2e results under >= 2 image models (random weights)"),
        True,
    ),
):
    figure(_name, _paper, _caption, _needs)(_image_models_for(_arg))


@figure(
    "layer_shares_by_image_model",
    "new (image model audit)",
    needs=Needs("image_model", "layerwise-image-model-audit", min_images=MIN_PANEL_IMAGES,
                text="run `image-model` / layerwise-image-model-audit"),
)
def _layer_image_models(ctx: FigureContext):
    """Share of each layer category in the layerwise error under each continuous image model. Whether the paper's
    conclusion about which layers dominate survives a change of image model."""
    t = _alias(ctx, "layerwise-image-model-audit", ctx.image_model_run)
    return category_shares(t, by="image_model"), note(t) + f"; image models: {', '.join(t['image_model'].unique())}"
