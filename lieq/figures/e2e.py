"""End-to-end LEE figures beyond Fig. 1: per generator, model size, training recipe, distribution shift.

Like the rest of :mod:`lieq.figures`, this module imports no torch and no timm.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from ._common import (
    E2E_COLUMNS,
    MIN_FIT_POINTS,
    _family_of,
    _ols,
    _plain_log_ticks,
    _require,
    _select_generator,
    _subtitle,
    _weights_label,
    median_ci,
    per_model,
)
from .fig1 import _e2e_main
from .registry import FigureContext, MissingData, Needs, figure, note, section
from .style import (
    FAMILY_COLORS,
    FAMILY_ORDER,
    MODEL_MARKERS,
    ONE_COL,
    TWO_COL,
    WEIGHTS_COLOR,
    label,
    lee_label,
    model_label,
)

section(
    "e2e",
    "End-to-end LEE: generators, size, training data, distribution shift",
    (
        "LEE vs top-1 for every generator, against model size and training recipe, and out of distribution "
        "(the paper reports an equivariance gap: larger LEE out of distribution)."
    ),
)


def lee_vs_accuracy_by_generator(
    e2e: pd.DataFrame, models: pd.DataFrame | None = None, stat: str = "mean_abs"
) -> Figure:
    """LEE vs top-1 for every end-to-end generator present (small multiples), coloured by family: per model the median
    LEE over images with a bootstrap 95 % interval (log axis; the per-image LEE is heavy-tailed), and per panel the
    R^2 of the least-squares line of log10 LEE on top-1 (at least five models)."""
    what = "lee_vs_accuracy_by_generator"
    _require(e2e, [*E2E_COLUMNS, stat, "correct", "weights"], what)
    title2 = _subtitle(e2e, what)
    pm = per_model(e2e, None, stat)
    med = median_ci(e2e, stat, ["model", "generator"]).drop(columns="n_images")
    pm = pm.merge(med, on=["model", "generator"]).assign(lee=lambda t: t["med"])
    pm = pm.merge(_family_of(models, e2e["model"].unique()), on="model", how="left")
    gens = list(dict.fromkeys(e2e["generator"]))
    ncol = min(4, len(gens))
    nrow = int(np.ceil(len(gens) / ncol))
    many = pm["model"].nunique() > 40  # paper scale: small translucent points, no error bars
    fig, axes = plt.subplots(nrow, ncol, figsize=(min(TWO_COL, 1.75 * ncol + 0.4), 1.8 * nrow + 0.9), squeeze=False)
    for ax, g in zip(axes.flat, gens):
        grp = pm[pm["generator"] == g]
        for fam in [f for f in (*FAMILY_ORDER, "other") if f in set(grp["family"])]:
            f = grp[grp["family"] == fam]
            yerr = np.abs(np.vstack([f["lee"] - f["lo"], f["hi"] - f["lee"]]))
            ax.errorbar(f["top1"], f["lee"], yerr=None if many else yerr, fmt="o", ms=2 if many else 4,
                        alpha=0.5 if many else 1.0, color=FAMILY_COLORS.get(fam, FAMILY_COLORS["other"]), label=fam,
                        elinewidth=0.8, lw=0)  # fmt: skip
        fit = _ols(grp["top1"].to_numpy(float), np.log10(grp["lee"].to_numpy(float)), n_boot=0)
        ax.set_title(label(g) + (f"  (R$^2$ {fit['r2']:.2f})" if fit else ""), fontsize=8)
        ax.set_yscale("log")
        _plain_log_ticks(ax, "y")
    for ax in axes.flat[len(gens) :]:
        ax.set_visible(False)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(labels), frameon=False)
    fig.supxlabel("top-1 accuracy on the same images (%)", fontsize=8)
    fig.supylabel(lee_label(stat, log=True), fontsize=8)
    fig.suptitle(f"LEE vs accuracy per generator, median over images ({title2})"
                 + ("; no error bars" if many else "; bootstrap 95 % CI"), fontsize=8)  # fmt: skip
    fig.tight_layout()
    return fig


def lee_vs_params(
    e2e: pd.DataFrame, models: pd.DataFrame, generator: str = "translate_x", stat: str = "mean_abs"
) -> Figure:
    """LEE vs parameter count (log scale), coloured by family, with a least-squares line in log10(params) per family
    that has at least :data:`MIN_FIT_POINTS` models."""
    what = "lee_vs_params"
    _require(e2e, [*E2E_COLUMNS, stat, "weights"], what)
    _require(models, ["model", "family", "params"], f"{what} (model catalogue)")
    sub = _select_generator(e2e, generator, what)
    title2 = _subtitle(sub, what)
    pm = per_model(sub, generator, stat).merge(_family_of(models, sub["model"].unique()), on="model", how="left")
    pm["params"] = pd.to_numeric(pm["params"], errors="coerce")
    if pm["params"].isna().any():
        raise ValueError(f"{what}: no parameter count for {', '.join(pm.loc[pm['params'].isna(), 'model'])}")
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    notes = []
    for fam, f in pm.groupby("family", sort=False):
        c = FAMILY_COLORS.get(fam, FAMILY_COLORS["other"])
        many = len(pm) > 40
        ax.errorbar(f["params"], f["lee"], yerr=None if many else f["se"], fmt="o", ms=2.5 if many else 5, color=c,
                    alpha=0.6 if many else 1.0, label=fam, elinewidth=0.8)  # fmt: skip
        fit = _ols(np.log10(f["params"].to_numpy(float)), f["lee"].to_numpy(float), n_boot=0)
        if fit:
            g = fit["grid"]
            ax.plot(10**g, fit["intercept"] + fit["slope"] * g, color=c, lw=1)
            notes.append(f"{fam}: slope {fit['slope']:.3g}/decade, R$^2$ {fit['r2']:.2f}")
        if len(pm) <= 12:
            for _, r in f.iterrows():
                ax.annotate(model_label(r["model"]), (r["params"], r["lee"]), fontsize=7, xytext=(4, 3),
                            textcoords="offset points")  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    _plain_log_ticks(ax, "y")
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if np.ptp(ax.get_xlim()) < 20 else ""))
    ax.set_xlabel("parameters (millions, log scale)")
    ax.set_ylabel(lee_label(stat, generator, log=True))
    ax.legend(title="family", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fits = "; ".join(notes) or f"no family with >= {MIN_FIT_POINTS} models"
    ax.set_title(f"{label(generator)} LEE vs model size\n{title2}\n{fits}", fontsize=8)
    fig.tight_layout()
    return fig


def lee_by_group(
    e2e: pd.DataFrame, models: pd.DataFrame, column: str = "pretrain_data", generator: str = "translate_x",
    stat: str = "mean_abs",
) -> Figure:  # fmt: skip
    """Per-model LEE grouped by a catalogue column (pretraining data, training method): box + points per group,
    coloured by family.  Needs at least two groups."""
    what = f"lee_by_group({column})"
    _require(e2e, [*E2E_COLUMNS, stat, "weights"], what)
    _require(models, ["model", "family", column], f"{what} (model catalogue)")
    sub = _select_generator(e2e, generator, what)
    title2 = _subtitle(sub, what)
    pm = per_model(sub, generator, stat).merge(_family_of(models, sub["model"].unique()), on="model", how="left")
    pm[column] = pm[column].fillna("unknown").astype(str).replace("", "none")
    groups = pm[column].value_counts()
    if len(groups) < 2:
        raise ValueError(f"{what}: all {len(pm)} models share {column} = {groups.index[0]!r}; nothing to compare")
    order = list(pm.groupby(column)["lee"].median().sort_values().index)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * len(order) + 2), 3.8))
    sns.boxplot(data=pm, x=column, y="lee", order=order, color="0.9", fliersize=0, ax=ax)
    sns.stripplot(data=pm, x=column, y="lee", order=order, hue="family", palette=FAMILY_COLORS, size=3, ax=ax,
                  alpha=0.7, legend=False)  # fmt: skip
    ax.set_yscale("log")
    fams = [f for f in (*FAMILY_ORDER, "other") if f in set(pm["family"])]
    handles = [plt.Line2D([], [], ls="", marker="o", ms=4, color=FAMILY_COLORS[f]) for f in fams]
    ax.legend(handles, fams, title="family", loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_xticks(range(len(order)), [f"{o}\n(n={groups[o]})" for o in order], rotation=30, ha="right", fontsize=7)
    ax.set_xlabel({"pretrain_data": "pretraining data", "training": "training recipe"}.get(column, column))
    ax.set_ylabel(lee_label(stat, generator, log=True))
    ax.set_title(f"{label(generator)} LEE by {ax.get_xlabel()} (box: quartiles over models)\n{title2}", fontsize=8)
    fig.tight_layout()
    return fig


def _medians(df: pd.DataFrame, stat: str) -> pd.DataFrame:
    """Per model: the median of ``stat`` over images (``lee``), its bootstrap 95 % interval and ``n_images``."""
    return median_ci(df, stat, ["model"], n_resamples=1000).rename(columns={"med": "lee"})


def ood_vs_id(
    e2e_id: pd.DataFrame, e2e_ood: pd.DataFrame, generator: str = "translate_x", stat: str = "mean_abs",
    ood_name: str = "out of distribution",
) -> Figure:  # fmt: skip
    """Out-of-distribution LEE vs in-distribution LEE per model (same weights), with the diagonal y = x.

    The per-image LEE is heavy-tailed: each point is the model's median over images with bootstrap 95 % intervals
    (log axes)."""
    what = "ood_vs_id"
    for name, df in (("in-distribution", e2e_id), ("out-of-distribution", e2e_ood)):
        _require(df, [*E2E_COLUMNS, stat, "weights"], f"{what} ({name})")
    a = _medians(_select_generator(e2e_id, generator, what), stat)
    b = _medians(_select_generator(e2e_ood, generator, what), stat)
    both = a.merge(b, on="model", suffixes=("_id", "_ood"))
    if both.empty:
        raise ValueError(f"{what}: no model in common between the two tables")
    kinds = {_weights_label(e2e_id, what=what), _weights_label(e2e_ood, what=what)}
    if len(kinds) > 1:
        raise ValueError(f"{what}: in- and out-of-distribution tables use different weights {sorted(kinds)}")
    many = len(both) > 40
    fig, ax = plt.subplots(figsize=(ONE_COL * 1.1, ONE_COL * 1.15))
    xerr = np.abs(np.vstack([both["lee_id"] - both["lo_id"], both["hi_id"] - both["lee_id"]]))
    yerr = np.abs(np.vstack([both["lee_ood"] - both["lo_ood"], both["hi_ood"] - both["lee_ood"]]))
    ratio_each = both["lee_ood"] / both["lee_id"]
    if len(both) <= len(MODEL_MARKERS):  # few models: one marker shape each, named in the legend
        for k, r in both.reset_index(drop=True).iterrows():
            ax.errorbar(r["lee_id"], r["lee_ood"], xerr=xerr[:, [k]], yerr=yerr[:, [k]], fmt=MODEL_MARKERS[k], ms=4,
                        elinewidth=0.5, color=WEIGHTS_COLOR, label=model_label(r["model"]))  # fmt: skip
    else:
        ax.errorbar(both["lee_id"], both["lee_ood"], xerr=None if many else xerr, yerr=None if many else yerr,
                    fmt="o", ms=2.5 if many else 4, alpha=0.4 if many else 1.0, elinewidth=0.5, color=WEIGHTS_COLOR,
                    label=f"{len(both)} models: median" + ("" if many else ", bootstrap 95 % CI"))  # fmt: skip
        for k, i in enumerate(ratio_each.sort_values().index[[0, 1, 2, -3, -2, -1]]):  # the extremes, named
            r = both.loc[i]
            left = k % 2 == 0
            ax.annotate(model_label(r["model"]), (r["lee_id"], r["lee_ood"]), fontsize=7,
                        ha="right" if left else "left", xytext=(-5, -4) if left else (5, 4),
                        textcoords="offset points")  # fmt: skip
    vals = both[["lo_id", "hi_id", "lo_ood", "hi_ood"]].to_numpy(float)
    lim = [0.7 * float(np.nanmin(vals)), 1.4 * float(np.nanmax(vals))]
    ax.plot(lim, lim, ls="--", color="0.5", lw=0.8, label="y = x")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lim)
    ax.set_ylim(lim)
    ax.set_box_aspect(1)
    _plain_log_ticks(ax, "x")
    _plain_log_ticks(ax, "y")
    ax.set_xlabel(f"in distribution: {lee_label(stat, generator)}")
    ax.set_ylabel(f"{label(ood_name)}: {label(generator)} LEE")
    ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.18), ncol=2, frameon=False,
              title="median over images, bootstrap 95 % CI" if len(both) <= len(MODEL_MARKERS) else None)
    ratio = float(ratio_each.median())
    verdict = (
        "OOD below ID: the opposite of the paper's equivariance gap"
        if ratio < 1
        else "OOD above ID, as the paper reports"
    )
    ax.set_title(f"{label(generator)} LEE out vs in distribution (median ratio {ratio:.2f})\n{verdict}\nweights: "
                 f"{kinds.pop()}; {len(both)} models; {int(both['n_images_id'].median())} / "
                 f"{int(both['n_images_ood'].median())} images", fontsize=8)  # fmt: skip
    fig.tight_layout()
    return fig


def _group(column: str):
    def load(ctx: FigureContext):
        df = _e2e_main(ctx)
        models = ctx.models()
        if models is None or column not in models:
            raise MissingData(f"no model catalogue with column {column}")
        meta = _family_of(models, df["model"].unique())
        values = meta[column].fillna("unknown").astype(str).unique() if column in meta else []
        if len(values) < 2:
            raise MissingData(
                f"all {len(meta)} models of run '{ctx.run}' share {column} = {', '.join(values) or 'unknown'}"
            )
        return lee_by_group(df, models, column=column), note(df[df["generator"] == "translate_x"])

    return load


@figure(
    "lee_vs_accuracy_by_generator",
    "likely (body/appendix)",
    needs=Needs("main", "e2e", text="e2e results of the main run"),
)
def _by_generator(ctx: FigureContext):
    """LEE vs top-1 on the same images for every end-to-end generator, one panel each, coloured by family. A
    least-squares line is drawn only with at least 5 models."""
    df = _e2e_main(ctx)
    return lee_vs_accuracy_by_generator(df, ctx.models()), note(df) + f"; {df['generator'].nunique()} generators"


@figure(
    "lee_vs_params",
    "likely (body/appendix)",
    needs=Needs("main", "e2e", text="e2e results + catalogue parameter counts"),
)
def _params(ctx: FigureContext):
    """Translation LEE against parameter count (millions, log axis), coloured by family. Per family a least-squares line
    in log parameters when it has at least 5 models."""
    df = _e2e_main(ctx)
    models = ctx.models()
    if models is None or "params" not in models:
        raise MissingData("no model catalogue with parameter counts (lieq/catalogue/models.csv)")
    return lee_vs_params(df, models), note(df[df["generator"] == "translate_x"])


for _name, _paper, _caption, _needs, _arg in (
    (
        "lee_by_pretraining_data",
        "likely (body/appendix)",
        (
            "Per-model translation LEE grouped by pretraining data (box and points, coloured by family). The "
            "paper finds more data lowers the LEE."
        ),
        Needs("main", "e2e", text="e2e results of models with >= 2 pretraining sources"),
        "pretrain_data",
    ),
    (
        "lee_by_training",
        "likely (body/appendix)",
        (
            "Per-model translation LEE grouped by training method (distillation, adversarial, SAM, ...). Which "
            "recipes make models more equivariant."
        ),
        Needs("main", "e2e", text="e2e results of models with >= 2 training methods"),
        "training",
    ),
):
    figure(_name, _paper, _caption, _needs)(_group(_arg))


@figure(
    "ood_vs_id",
    "likely (body/appendix)",
    needs=Needs("ood", "e2e", text="e2e results of the same models on OOD images (run `<run>-ood`)"),
)
def _ood(ctx: FigureContext):
    """Per model, the translation LEE on out-of-distribution images against in-distribution, with the diagonal y = x.
    The paper reports a larger LEE out of distribution; the caption says when our points fall below the diagonal
    instead."""
    id_ = ctx.e2e(generator="translate_x")
    ood = ctx.e2e(run=ctx.ood_run, generator="translate_x")
    name = Path(str(ood["data"].iloc[0])).name if "data" in ood else "OOD"
    data = f"in-distribution: {note(id_)}; out of distribution: {note(ood)}"
    return ood_vs_id(id_, ood, ood_name=name), data


@figure(
    "imagenet_train_vs_val",
    "likely (appendix)",
    needs=Needs("train", "e2e", text="e2e results on ImageNet training images (run `<run>-train`)"),
)
def _train_val(ctx: FigureContext):
    """Per model, the translation LEE on ImageNet training images against validation images, with y = x. A gap would
    show equivariance learned on the training distribution only."""
    val = ctx.e2e(generator="translate_x")
    train = ctx.e2e(run=ctx.train_run, generator="translate_x")
    data = f"validation: {note(val)}; train: {note(train)}"
    return ood_vs_id(val, train, ood_name="ImageNet train"), data
