"""Random initialisation vs trained weights.

Like the rest of :mod:`lieq.figures`, this module imports no torch and no timm.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from ._common import (
    E2E_COLUMNS,
    FLOOR_LEE,
    MIN_PANEL_IMAGES,
    _family_of,
    _need_images,
    _plain_log_ticks,
    _require,
    _select_generator,
    _short,
    _single,
    _weights_label,
    bootstrap_ci,
    weights_kind,
)
from .registry import FigureContext, MissingData, Needs, figure, note, section
from .style import (
    FAMILY_COLORS,
    FAMILY_ORDER,
    ONE_COL,
    TWO_COL,
    WEIGHTS_COLOR,
    label,
    lee_label,
    marker_kw,
    model_label,
)

section("prior", "New: what training adds", "LEE at random initialisation (the architecture's prior) vs trained.")


def random_vs_trained(
    e2e_trained: pd.DataFrame, e2e_random: pd.DataFrame, generator: str = "translate_x", stat: str = "mean_abs"
) -> Figure:
    """Per architecture, LEE at random initialisation (the architecture's prior) vs with trained weights.

    Models are matched by architecture (the tag before ``.``).  Random-init rows may come from several seeds.  The
    per-image LEE is heavy-tailed, so each value is the median over seeds and images with a bootstrap 95 % interval
    (log axis); beyond 40 architectures the figure becomes a trained-against-random scatter.
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
    ta, ra = _median_ci(t), _median_ci(r)
    seeds = r.groupby("arch")["weights"].nunique()
    both = ta.add_suffix("_t").join(ra.add_suffix("_r"), how="inner")
    if both.empty:
        raise ValueError(f"{what}: no architecture in both tables")
    both = both.sort_values("med_r")
    ratio = float(np.median(both["med_t"] / both["med_r"]))
    kw_r, kw_t = marker_kw(WEIGHTS_COLOR, random=True), marker_kw(WEIGHTS_COLOR)
    if len(both) > 40:  # paper scale: one point per architecture, trained against random, log-log
        fig, ax = plt.subplots(figsize=(ONE_COL * 1.2, ONE_COL * 1.2))
        ax.scatter(both["med_r"], both["med_t"], s=8, color=WEIGHTS_COLOR, alpha=0.5, lw=0, label="architecture")
        lim = [0.7 * float(both[["med_r", "med_t"]].min().min()), 1.4 * float(both[["med_r", "med_t"]].max().max())]
        ax.plot(lim, lim, ls="--", color="0.5", lw=0.8, label="y = x")
        ax.set(xscale="log", yscale="log", xlim=lim, ylim=lim)
        ax.set_xlabel("random init: " + lee_label(stat, generator))
        ax.set_ylabel(f"trained ({kind}): {label(generator)} LEE")
        ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.16), ncol=2, frameon=False)
    else:
        fig, ax = plt.subplots(figsize=(TWO_COL * 0.75, 0.3 * len(both) + 1.8))
        y = np.arange(len(both))
        ax.hlines(y, both["med_t"], both["med_r"], color="0.8", lw=1.5)
        for col, kw, lab in (("r", kw_r, "random init"), ("t", kw_t, f"trained ({kind})")):
            err = np.abs(np.vstack([both[f"med_{col}"] - both[f"lo_{col}"], both[f"hi_{col}"] - both[f"med_{col}"]]))
            ax.errorbar(both[f"med_{col}"], y, xerr=err, fmt="o", ms=4, elinewidth=0.8, **kw, label=lab)
        ax.set_yticks(y, [f"{model_label(a)}  ({seeds.get(a, 1)} seed{'s' if seeds.get(a, 1) > 1 else ''})"
                          for a in both.index])  # fmt: skip
        ax.set_xscale("log")
        _plain_log_ticks(ax)
        ax.set_ylim(-0.6, len(both) - 0.4)
        ax.set_xlabel(lee_label(stat, generator, log=True) + "; median, bootstrap 95 % CI")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2, frameon=False)
    ax.set_title(f"{label(generator)} LEE: random init vs trained, {len(both)} architectures (median trained/random "
                 f"{ratio:.2g})\nimages per model: trained {int(both['count_t'].median())}, random "
                 f"{int(both['count_r'].median())} (all seeds)", fontsize=8)  # fmt: skip
    fig.tight_layout()
    return fig


def _median_ci(d: pd.DataFrame) -> pd.DataFrame:
    """Per architecture: the median of ``v`` over all rows (seeds and images), its bootstrap 95 % interval, count."""
    rows = {}
    for arch, g in d.groupby("arch"):
        lo, hi = bootstrap_ci(g["v"], stat=np.median, n_resamples=500)
        rows[arch] = {"med": float(g["v"].median()), "lo": lo, "hi": hi, "count": len(g)}
    return pd.DataFrame.from_dict(rows, orient="index")


#: The prior experiment's columns (lieq.prior): the scale-free feature LEE and the head-dependent softmax LEE.
PRIOR_STAT, SOFTMAX_STAT = "feature_lee", "softmax_mean_abs"
#: Below this feature-direction LEE (radians per unit t) the features are numerically invariant or do not respond to
#: the input at all (float32 resolves unit vectors to ~1e-7 per entry); such models are marked, not placed.
FLOOR_FEATURE = 1e-6


def random_init_prior(
    prior: pd.DataFrame, models: pd.DataFrame | None, generator: str = "translate_x", group: str = "arch_group"
) -> Figure:
    """The architecture prior at random initialisation, scale-free: (a) per model the Lie derivative of the direction
    of the pooled pre-logit features, ``||L_g (phi / ||phi||)||`` (:mod:`lieq.prior`), grouped by ``group`` (sorted
    by median) and coloured by family; (b) the same models' softmax LEE (the old prior) against it.  The softmax
    value depends on the freshly initialised head: heads that timm initialises to zero give exactly 0; those
    (at or below :data:`FLOOR_LEE`) are drawn as crosses at the bottom edge of (b) and counted, and left out of the
    rank correlation."""
    from scipy import stats

    what = "random_init_prior"
    _require(prior, [*E2E_COLUMNS, PRIOR_STAT, SOFTMAX_STAT, "weights"], what)
    if _weights_label(prior, what=what) != "random":
        raise ValueError(f"{what}: expects random weights, got {_weights_label(prior, what=what)}")
    sub = _select_generator(prior, generator, what)
    meta = _family_of(models, sub["model"].unique())
    if group not in meta.columns:
        meta[group] = meta["family"]
    pm = (sub.groupby("model").agg(prior=(PRIOR_STAT, "median"), softmax=(SOFTMAX_STAT, "median"),
                                   n_images=("image", "nunique"))
          .reset_index().merge(meta, on="model", how="left"))  # fmt: skip
    pm[group] = pm[group].fillna("other").astype(str)
    flat = pm[pm["prior"] <= FLOOR_FEATURE]
    pm_all, pm = pm, pm[pm["prior"] > FLOOR_FEATURE]
    order = list(pm.groupby(group)["prior"].median().sort_values().index)
    order += [g for g in dict.fromkeys(flat[group]) if g not in order]
    counts = pm_all[group].value_counts()
    height = max(3.0, 0.15 * len(order) + 1.8)
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(TWO_COL, height),
                                 gridspec_kw={"width_ratios": (1.25, 1.0), "wspace": 0.06})  # fmt: skip
    sns.stripplot(data=pm, y=group, x="prior", order=order, hue="family", palette=FAMILY_COLORS, size=2.8, ax=ax,
                  jitter=0.2, log_scale=True, legend=False)  # fmt: skip
    x_lo = float(pm["prior"].min()) / 4 if len(pm) else FLOOR_FEATURE
    if len(flat):  # numerically zero: crosses at the left edge, counted in the legend
        ax.scatter(np.full(len(flat), x_lo), [order.index(g) for g in flat[group]], marker="x", s=12, lw=0.7,
                   alpha=0.7,
                   color=[FAMILY_COLORS.get(f, FAMILY_COLORS["other"]) for f in flat["family"]], clip_on=False,
                   zorder=3)  # fmt: skip
        ax.axvspan(x_lo / 2, x_lo * 1.6, color="0.88", lw=0, zorder=0)
    ax.set_xlim(x_lo / 2, None)
    ax.set_yticks(range(len(order)), [f"{o} ({counts[o]})" for o in order], fontsize=7)
    ax.set_ylabel("")
    unit = "rad per half image width" if generator == "translate_x" else "per unit t"
    ax.set_xlabel(r"$\|L\,(\phi/\|\phi\|)\|$" + f", {label(generator)} ({unit}, log)")
    ax.set_title("(a) feature-direction LEE by architecture group", fontsize=8, loc="left")
    above = pm[pm["softmax"] > FLOOR_LEE]
    below = pm[pm["softmax"] <= FLOOR_LEE]
    fams = [f for f in (*FAMILY_ORDER, "other") if f in set(pm["family"])]
    for fam in fams:
        a = above[above["family"] == fam]
        bx.scatter(a["prior"], a["softmax"], s=7, color=FAMILY_COLORS[fam], alpha=0.6, lw=0, label=fam)
    bx.set(xscale="log", yscale="log")
    lo = float(above["softmax"].min()) / 6 if len(above) else 1e-6
    if len(below):
        bx.scatter(below["prior"], np.full(len(below), lo), marker="x", s=12, lw=0.7, clip_on=False, zorder=3,
                   color=[FAMILY_COLORS.get(f, FAMILY_COLORS["other"]) for f in below["family"]])  # fmt: skip
    bx.set_ylim(lo / 1.5, None)
    bx.yaxis.set_label_position("right")
    bx.yaxis.tick_right()
    bx.set_xlabel("feature-direction LEE (as in a)")
    bx.set_ylabel("softmax LEE: mean |L p| (log)")
    rho = stats.spearmanr(above["prior"], above["softmax"]).statistic if len(above) >= 5 else float("nan")
    rho_text = f"Spearman rho {rho:.2f}, n = {len(above)}" if np.isfinite(rho) else "n < 5"
    bx.set_title(f"(b) softmax LEE (old prior) vs (a): {rho_text}", fontsize=8, loc="left")
    handles = [plt.Line2D([], [], ls="", marker="o", ms=4, color=FAMILY_COLORS[f])
               for f in FAMILY_ORDER if f in set(pm["family"])]  # fmt: skip
    names = [f for f in FAMILY_ORDER if f in set(pm["family"])]
    if len(below):
        handles.append(plt.Line2D([], [], ls="", marker="x", ms=4, color="0.3"))
        names.append(f"(b) softmax LEE = 0: {len(below)} zero-initialised heads")
    if len(flat):
        handles.append(plt.Line2D([], [], ls="", marker="x", ms=4, color="0.6"))
        names.append(f"(a) below {FLOOR_FEATURE:g}: {len(flat)} models invariant or insensitive")
    bx.legend(handles, names, loc="upper left", bbox_to_anchor=(-0.05, -0.75 / height), ncol=2, frameon=False)
    n_img = int(pm["n_images"].median())
    images = f"{n_img} image{'s' if n_img != 1 else ''}"
    fig.suptitle(f"Architecture prior at random initialisation: {len(pm_all)} models x {images} "
                 "(weights: random init, bilinear image model)", fontsize=9, y=1 + 0.1 / height)  # fmt: skip
    return fig


@figure("random_vs_trained", "new", needs=Needs(text="e2e results of the main run and of the random-init run"))
def _random_vs_trained(ctx: FigureContext):
    """Per architecture, the translation LEE at random initialisation (open markers) and with trained weights (filled),
    log axis. What training adds to (or removes from) the architecture's own equivariance."""
    try:  # the image-model study's e2e sweeps, trained and random init: same images, several random seeds
        both = ctx.table(ctx.image_model_run, "e2e")
        kinds = both["weights"].map(weights_kind)
        if (kinds == "random").any() and (kinds != "random").any():
            trained, rnd = both[kinds != "random"], both[kinds == "random"]
            _need_images(both, MIN_PANEL_IMAGES, "random_vs_trained")
            data = f"trained: {note(trained)}; random init: {note(rnd)}"
            return random_vs_trained(trained, rnd), data
    except MissingData:
        pass
    trained = ctx.e2e(generator="translate_x")
    try:
        rnd = ctx.e2e(run=ctx.random_run, generator="translate_x")
    except MissingData:
        rnd = pd.DataFrame()
    # the aliasing studies' trained-vs-untrained experiment (several seeds) when present
    arch = set(trained["model"].map(_short))
    if rnd.empty or not arch & set(rnd["model"].map(_short)):
        raise MissingData(f"no random-init end-to-end results for the architectures of run '{ctx.run}'")
    rnd = rnd[rnd["model"].map(_short).isin(arch)]
    data = f"trained: {note(trained)}; random init: {note(rnd)}"
    return random_vs_trained(trained, rnd), data


@figure("random_init_prior", "new", needs=Needs("random", "prior", min_models=5,
                                                 text="prior results of the random-init run + catalogue"))
def _prior(ctx: FigureContext):
    """The architecture's own prior: at random initialisation, how fast the direction of the pooled pre-logit features
    turns under translation (scale-free: no head, no feature scale), by architecture group and family (a), against the
    softmax LEE the old figure showed (b). Heads that timm initialises to zero pin the softmax LEE at exactly 0, so (b)
    measures the head's initial scale; the extremes of (a) are degenerate initialisations instead: low, features that
    hardly depend on the image (two random images give the same direction in RepVGG, ConvMixer, CaiT); high,
    exploding activations (EfficientNetV2-RW, feature norm ~1e4)."""
    prior = ctx.table(ctx.random_run, "prior")
    if "image_model" in prior.columns:
        prior = prior[prior["image_model"] == ctx.image_model]
    return random_init_prior(prior, ctx.models()), note(prior[prior["generator"] == "translate_x"])
