"""Paper Fig. 1 (centre) and Fig. 4: layerwise attribution of the translation LEE.

Like the rest of :mod:`lieq.figures`, this module imports no torch and no timm.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..conventions import CATEGORIES
from ..tables import spearman, stat_column
from ._common import (
    FLOOR_REL,
    MIN_PANEL_IMAGES,
    MIN_RANK_N,
    _family_of,
    _layerwise,
    _need_images,
    _require,
    _select_generator,
    _short,
    _subtitle,
)
from .registry import FigureContext, MissingData, Needs, figure, note, section
from .style import CATEGORY_COLORS, TWO_COL, label, model_label

section(
    "layerwise",
    "Layerwise attribution (Fig. 1 centre, Fig. 4)",
    (
        "Fig. 1 (centre) and Fig. 4: cumulative layer contributions in execution order, coloured by category,"
        " as shares of the total beside the paper's ResNet-50 and ViT-Small bars. The paper: in CNNs non-"
        "linearities and downsampling dominate; in ViTs and Mixers the patch embedding is the largest single "
        "term. Similar per-layer shares across transformations point to a common cause (aliasing)."
    ),
)


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
    unknown = sorted(set(out["category"]) - set(CATEGORIES))
    if unknown:
        raise ValueError(f"{what}: unknown layer categories {unknown}; known: {', '.join(CATEGORIES)}")
    return out.sort_values("order").reset_index(drop=True)


def _cumulative_panel(
    ax, order: np.ndarray, contrib: np.ndarray, cats: Sequence[str], title: str, extra: str = ""
) -> float:
    """One staircase of percent-of-total contributions; returns the total.  Layers after the last one that carries
    at least 0.05 % are trimmed (the tail would be an empty right half); every remaining segment is drawn with at
    least a visible line width, and the x axis starts one step left of the first layer so that a large first term
    (the stem convolution / patch embedding) is not hidden on the axis line."""
    total = float(np.sum(contrib))
    share = 100 * np.asarray(contrib, float) / total if total > 0 else np.zeros(len(contrib))
    keep = np.nonzero(share >= 0.05)[0]
    last = int(keep[-1]) + 1 if len(keep) else len(share)
    share, cats = share[:last], list(cats)[:last]
    cum = np.cumsum(share)
    bottom = cum - share
    x = np.arange(len(share))
    colors = [CATEGORY_COLORS[c] for c in cats]
    ax.bar(x, share, bottom=bottom, width=1.0, color=colors, linewidth=0)
    ax.vlines(x, bottom, cum, colors=colors, lw=max(1.0, min(3.0, 300 / max(len(x), 1))))
    ax.step(x, cum, where="mid", color="0.6", lw=0.4)
    ax.set_xlim(-1.5, len(x) - 0.5)
    ax.set_ylim(0, 102)
    shares = pd.Series(share).groupby(pd.Series(cats)).sum()
    lines = [f"{c} {shares[c]:.0f} %" for c in CATEGORIES if c in shares and shares[c] >= 0.5]
    trimmed = len(order) - last
    lines += [extra] if extra else []
    if trimmed:
        lines.append(f"(last {trimmed} calls,\n< 0.05 % each, cut)" if trimmed > 1 else "(last call, < 0.05 %, cut)")
    ax.text(0.97, 0.03, "\n".join(lines), transform=ax.transAxes, va="bottom", ha="right", fontsize=7)
    ax.set_title(title, fontsize=7)
    ax.set_xlabel("layer call, in order")
    return total


def cumulative_layerwise(
    layers: pd.DataFrame, models: Sequence[str], generator: str = "translate_x", per_image: pd.DataFrame | None = None,
    paper: pd.DataFrame | None = None,
) -> Figure:  # fmt: skip
    """Paper Fig. 1 (centre) and Fig. 4 (left panels): cumulative layer contributions in execution order, as a
    percentage of each model's total layerwise error.

    One panel per model; each layer call adds a bar segment of height (mean over images of) its contribution
    ``E_z[(z . term_i)^2]`` divided by the model's total (so the staircase ends at 100 %), coloured by category.  The
    lower-right labels give each category's share; the title the absolute total.  ``paper`` (optional; the paper's
    digitised bars, columns ``model``, ``order``, ``category``, ``height``, data/reference/paper_fig1_centre.csv) adds
    one panel per paper model first, in the same units (shares: the paper's absolute units are unknown).
    ``per_image`` (optional; columns ``model``, ``generator``, ``unattributed``) adds the mean unattributed share.
    """
    what = "cumulative_layerwise"
    _require(layers, [*LAYER_COLUMNS, "weights"], what)
    if not models:
        raise ValueError(f"{what}: no model given")
    sub = layers[layers["model"].isin(models)]
    title2 = _subtitle(_select_generator(sub if not sub.empty else layers, generator, what), what)
    papers = list(dict.fromkeys(paper["model"])) if paper is not None and len(paper) else []
    n = len(models) + len(papers)
    width = min(TWO_COL, 2.3 * n + 1.2)
    fig, axes = plt.subplots(1, n, figsize=(width, 2.9), squeeze=False, sharey=True)
    present = set(sub["category"])
    for ax, pm in zip(axes[0], papers):
        p = paper[paper["model"] == pm].sort_values("order")
        present |= set(p["category"])
        total = _cumulative_panel(ax, p["order"].to_numpy(), p["height"].to_numpy(float), p["category"], "")
        ax.set_title(f"paper: {pm}\n(digitised), total {total:.3g}", fontsize=7)
    for ax, model in zip(axes[0][len(papers) :], models):
        m = _layer_means(layers, model, generator, what)
        n_img = layers[(layers["model"] == model) & (layers["generator"] == generator)]["image"].nunique()
        total = float(m["contribution"].sum())
        name = model_label(model)
        name = name.replace(", ", "\n", 1) if len(name) > 16 else name  # "zoo ViT-m\nno aug": narrow panels
        title = f"ours: {name}\n{n_img} images, total {total:.3g}"
        extra = ""
        if per_image is not None and {"model", "generator", "unattributed"} <= set(per_image.columns):
            u = per_image[(per_image["model"] == model) & (per_image["generator"] == generator)]["unattributed"]
            if len(u):
                extra = f"unattributed {100 * float(u.mean()):.1f} %"
        _cumulative_panel(ax, m["order"].to_numpy(), m["contribution"].to_numpy(float), m["category"], title, extra)
    axes[0, 0].set_ylabel(f"cumulative share of the layerwise\n{label(generator)} error (%)")
    cats = [c for c in CATEGORIES if c in present]
    handles = [plt.Rectangle((0, 0), 1, 1, color=CATEGORY_COLORS[c]) for c in cats]
    fig.legend(handles, cats, loc="center left", bbox_to_anchor=(1.0, 0.5), title="layer category", frameon=False)
    fig.suptitle(f"Cumulative layerwise {label(generator)} error, % of each model's total ({title2})", fontsize=8)
    fig.tight_layout()
    return fig


def layer_shares_by_generator(
    layers: pd.DataFrame, model: str | Sequence[str], generators: Sequence[str] | None = None
) -> Figure:
    """Paper Fig. 4 (third panel): per model, a generator x layer-category heatmap of its shares (%) of its total
    layerwise error (categories below 0.5 % for every generator and model are left out), one panel per model on one
    colour scale.  Each panel's title gives the mean pairwise Pearson correlation across generators of the per-layer
    shares (similar shares across transformations point to a common cause such as aliasing)."""
    what = "layer_shares_by_generator"
    _require(layers, [*LAYER_COLUMNS, "weights"], what)
    models = [model] if isinstance(model, str) else list(model)
    panels = []
    for m_name in models:
        d = layers[layers["model"] == m_name]
        if d.empty:
            raise ValueError(f"{what}: no layerwise rows for model {m_name!r}")
        gens = list(generators) if generators else list(dict.fromkeys(d["generator"]))
        if len(gens) < 2:
            raise ValueError(f"{what}: needs at least two generators for {m_name}, has {gens}")
        shares = {}
        for g in gens:
            m = _layer_means(layers, m_name, g, what)
            shares[g] = pd.Series(100 * m["contribution"].to_numpy() / m["contribution"].sum(), index=m["order"])
        cats = _layer_means(layers, m_name, gens[0], what).set_index("order")["category"]
        wide = pd.DataFrame(shares)
        corr = wide.corr().to_numpy()
        mean_r = float(corr[np.triu_indices(len(gens), 1)].mean())
        by_cat = wide.groupby(cats.reindex(wide.index).to_numpy()).sum()  # category x generator, % of the total
        panels.append((m_name, gens, by_cat, mean_r, d["image"].nunique()))
    cols = [c for c in CATEGORIES if any(c in p[2].index and p[2].loc[c].max() >= 0.5 for p in panels)]
    n_gen = max(len(p[1]) for p in panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(min(TWO_COL, 2.5 * len(panels) + 1.0), 0.32 * n_gen + 1.7),
                             squeeze=False, sharey=True)  # fmt: skip
    im = None
    for ax, (m_name, gens, by_cat, mean_r, n_img) in zip(axes[0], panels):
        heat = by_cat.reindex(cols).fillna(0.0).loc[:, gens].T.to_numpy()
        im = ax.imshow(heat, cmap="Greys", vmin=0, vmax=100, aspect="auto")
        for i in range(heat.shape[0]):
            for j in range(heat.shape[1]):
                v = heat[i, j]
                ax.text(j, i, f"{v:.0f}" if v >= 0.5 else "<1", ha="center", va="center", fontsize=7,
                        color="white" if v > 55 else "black")  # fmt: skip
        ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
        for t, c in zip(ax.get_xticklabels(), cols):
            t.set_color(CATEGORY_COLORS[c])
        ax.set_yticks(range(len(gens)), [label(g) for g in gens])
        ax.grid(False)
        ax.set_title(f"{model_label(m_name)}\n{n_img} images, r = {mean_r:.2f}", fontsize=7)
    fig.colorbar(im, ax=list(axes[0]), label="share of the layerwise error (%)", fraction=0.04, pad=0.02)
    fig.suptitle("Layer-category shares of the layerwise error per generator (r: mean pairwise correlation of the "
                 "per-layer shares across generators)", fontsize=8, y=1.03)  # fmt: skip
    return fig


def layerwise_lee_vs_baselines(
    layers: pd.DataFrame, layer_baselines: pd.DataFrame, model: str, generator: str = "translate_x",
    metric_col: str = "metric", value_col: str = "nmse",
) -> Figure:  # fmt: skip
    """Paper Fig. 4 (right): per layer, layerwise LEE vs layerwise finite translation metrics (EQ-T, EQ-T_frac),
    log-log, coloured by category, with the Spearman correlation across layers.

    Values at or below the numerical floor (:data:`FLOOR_REL` times the largest value of that axis: float32
    round-off, exact zeros) are drawn as crosses at the axis edge, counted in the title and left out of the rank
    correlation, which needs at least :data:`MIN_RANK_N` layers."""
    what = "layerwise_lee_vs_baselines"
    _require(layer_baselines, ["model", "layer", metric_col, value_col], f"{what} (layerwise baselines)")
    lee = _layer_means(layers, model, generator, what)
    keys = ["layer"] + (["call"] if "call" in lee.columns and "call" in layer_baselines.columns else [])
    b = b_all = layer_baselines[layer_baselines["model"] == model]
    if b.empty:
        raise ValueError(f"{what}: no layerwise baseline rows for model {model!r}")
    b = b.groupby([*keys, metric_col])[value_col].mean().reset_index()
    merged = b.merge(lee, on=keys)
    if merged.empty:
        raise ValueError(f"{what}: no layer names in common between layerwise LEE and baselines for {model}")
    metrics = list(dict.fromkeys(merged[metric_col]))
    fig, axes = plt.subplots(1, len(metrics), figsize=(min(TWO_COL, 3.0 * len(metrics) + 1.2), 3.0), squeeze=False)
    present = set()
    for ax, m in zip(axes[0], metrics):
        d = merged[merged[metric_col] == m]
        x, y = d["contribution"].to_numpy(float), d[value_col].to_numpy(float)
        fx, fy = FLOOR_REL * np.nanmax(x), FLOOR_REL * np.nanmax(y)  # numerical floors relative to the largest value
        ok = (x > fx) & (y > fy)
        # the axis edge where below-floor values are drawn: a factor 4 below the smallest value above the floor
        lo_x = np.nanmin(x[x > fx]) / 4 if (x > fx).any() else fx
        lo_y = np.nanmin(y[y > fy]) / 4 if (y > fy).any() else fy
        for c, g in d[ok].groupby("category"):
            ax.scatter(g["contribution"], g[value_col], s=10, color=CATEGORY_COLORS[c], label=c, zorder=3)
            present.add(c)
        bad = d[~ok]
        present |= set(bad["category"])
        cols = [CATEGORY_COLORS[c] for c in bad["category"]]
        ax.scatter(np.maximum(bad["contribution"], lo_x).where(bad["contribution"] > fx, lo_x),
                   np.maximum(bad[value_col], lo_y).where(bad[value_col] > fy, lo_y), s=14, marker="x",
                   color=cols, lw=0.8, zorder=2, clip_on=False)  # fmt: skip
        rho = spearman(d.loc[ok, "contribution"], d.loc[ok, value_col])[0] if ok.sum() >= MIN_RANK_N else np.nan
        ax.set_xscale("log")
        ax.set_yscale("log")
        # at least two decades above the strip, so that a panel with one layer above the floor is not all strip
        ax.set_xlim(lo_x / 2, max(np.nanmax(x) * 2, lo_x * 300))
        ax.set_ylim(lo_y / 2, max(np.nanmax(y) * 2, lo_y * 300))
        if len(bad):  # the strips where below-floor layers are drawn (not a threshold: the floor itself is lower)
            ax.axvspan(lo_x / 2, lo_x * 1.6, color="0.85", lw=0, zorder=0)
            ax.axhspan(lo_y / 2, lo_y * 1.6, color="0.85", lw=0, zorder=0)
        rho_txt = f"Spearman rho {rho:.2f} over {int(ok.sum())} layers" if np.isfinite(rho) else "too few layers"
        ax.set_title(f"{label(m)}: {rho_txt};\n{int((~ok).sum())} layers below the floor (x, grey strip)")
        ax.set_xlabel(f"layerwise {label(generator)} LEE contribution (log)")
        ax.set_ylabel(f"layerwise {label(m)} (normalised MSE, log)")
    cats = [c for c in CATEGORIES if c in present]
    handles = [plt.Line2D([], [], ls="", marker="o", color=CATEGORY_COLORS[c]) for c in cats]
    handles.append(plt.Line2D([], [], ls="", marker="x", color="0.3"))
    fig.legend(handles, [*cats, "below the floor"], loc="center left", bbox_to_anchor=(1.0, 0.5),
               title="layer category", frameon=False)  # fmt: skip
    n_img = b_all["image"].nunique() if "image" in b_all else "?"
    fig.suptitle(f"{model_label(model)} ({n_img} image{'s' if n_img != 1 else ''}): layerwise LEE vs layerwise "
                 f"finite metrics (floor: {FLOOR_REL:g} x the largest value per axis)", fontsize=8)  # fmt: skip
    fig.tight_layout()
    return fig


_PAPER_NOTE = "; the paper's bars from data/reference/paper_fig1_centre.csv"
_PAPER_BAR_FAMILY = {"ResNet-50": "CNN", "ViT-Small": "ViT"}


def _paper_bars(ctx: FigureContext, families: Sequence[str]) -> pd.DataFrame | None:
    """The paper's digitised Fig. 1 (centre) bars of the models of ``families`` (ResNet-50: CNN; ViT-Small: ViT)."""
    try:
        p = ctx.paper_points("paper_fig1_centre")
    except MissingData:
        return None
    return p[p["model"].map(_PAPER_BAR_FAMILY).isin(families)]


def _pick_models(layers: pd.DataFrame, ctx: FigureContext, families: tuple[str, ...] | None, k: int) -> list[str]:
    names = list(dict.fromkeys(layers["model"]))
    meta = _family_of(ctx.models(), names).set_index("model")
    if families:
        names = [n for n in names if meta.loc[n, "family"] in families]
    if "params" in meta:
        names = sorted(names, key=lambda n: float(pd.to_numeric(meta.loc[n, "params"], errors="coerce") or 0))
    return names[:k]


def _per_image(layers: pd.DataFrame) -> pd.DataFrame | None:
    return layers if "unattributed" in layers.columns else None


def _fig4_cumulative(families: tuple[str, ...]):
    def load(ctx: FigureContext):
        layers = _layerwise(ctx)
        lw = layers[layers["generator"] == "translate_x"]
        chosen = _pick_models(lw, ctx, families, 6)
        if not chosen:
            raise MissingData(f"run '{ctx.run}' has no layerwise translate_x results for {' / '.join(families)} models")
        paper = _paper_bars(ctx, families)
        fig = cumulative_layerwise(lw, chosen, per_image=_per_image(layers), paper=paper)
        return fig, note(lw[lw["model"].isin(chosen)]) + (_PAPER_NOTE if paper is not None else "")

    return load


@figure(
    "fig1_centre_cumulative_layerwise",
    "Fig. 1 (centre)",
    needs=Needs("main", "layerwise", text="layerwise results of the main run"),
)
def _fig1_centre(ctx: FigureContext):
    """Cumulative layerwise translation error, as a share of each model's total, by layer category in execution order:
    the paper's ResNet-50 and ViT-Small bars (digitised) beside ours. Every segment is drawn; the x axis stops at the
    last layer."""
    layers = _layerwise(ctx)
    lw = layers[layers["generator"] == "translate_x"] if "generator" in layers else layers
    names = list(dict.fromkeys(lw["model"]))
    preferred = [n for want in ("resnet50", "vit_small_patch16_224") for n in names if _short(n) == want]
    if len(preferred) == 2:
        chosen = preferred
    else:  # one CNN and one ViT/Mixer if the run has both, else the smallest and the largest model
        cnn = _pick_models(lw, ctx, ("CNN",), 1)
        vit = _pick_models(lw, ctx, ("ViT", "Mixer"), 1)
        chosen = cnn + vit if cnn and vit else _pick_models(lw, ctx, None, len(names))
        chosen = chosen if len(chosen) <= 2 else [chosen[0], chosen[-1]]
    if not chosen:
        raise MissingData(f"run '{ctx.run}' has no layerwise translate_x results")
    paper = _paper_bars(ctx, ("CNN", "ViT"))
    fig = cumulative_layerwise(lw, chosen, per_image=_per_image(layers), paper=paper)
    return fig, note(lw[lw["model"].isin(chosen)]) + (_PAPER_NOTE if paper is not None else "")


for _name, _paper, _caption, _needs, _arg in (
    (
        "fig4a_cumulative_cnn",
        "Fig. 4 (left)",
        (
            "Cumulative layer contributions of CNNs, as shares of each model's total, by layer category in "
            "execution order, beside the paper's ResNet-50. In CNNs the paper finds non-linearities and "
            "downsampling dominate."
        ),
        Needs("main", "layerwise", text="layerwise results of CNNs in the main run"),
        ("CNN",),
    ),
    (
        "fig4b_cumulative_vit_mixer",
        "Fig. 4 (second)",
        (
            "Cumulative layer contributions of ViTs and Mixers, as shares of each model's total, beside the "
            "paper's ViT-Small. In ViTs and Mixers the paper finds the patch embedding the largest single term."
        ),
        Needs("main", "layerwise", text="layerwise results of ViT / Mixer models in the main run"),
        ("ViT", "Mixer"),
    ),
):
    figure(_name, _paper, _caption, _needs)(_fig4_cumulative(_arg))


@figure(
    "fig4c_layer_shares_by_generator",
    "Fig. 4 (third)",
    needs=Needs(text="layerwise results for >= 2 generators (run `<run>` or `<run>-generators`)"),
)
def _fig4c(ctx: FigureContext):
    """Share of each layer category in the layerwise error, per generator (heatmap, percent of the total). Similar rows
    across generators point to one common cause of the error (aliasing), as the paper argues."""
    for run in (ctx.run, f"{ctx.run}-generators"):  # the main run, or a smaller run over all layerwise generators
        try:
            layers = _layerwise(ctx, run)
        except MissingData:
            continue
        if layers.groupby("model")["generator"].nunique().max() >= 2:
            break
    else:
        raise MissingData(
            f"no layerwise results for two or more generators in runs '{ctx.run}', '{ctx.run}-generators'"
        )
    counts = layers.groupby("model")["generator"].nunique()
    many = counts[counts >= 2]
    if many.empty:
        raise MissingData(f"no model of run '{ctx.run}' has layerwise results for two or more generators")
    names = [n for n in many.index if _short(n) == "resnet50"] or _pick_models(
        layers[layers["model"].isin(many.index)], ctx, None, 4)
    d = layers[layers["model"].isin(names)]
    _need_images(d, MIN_PANEL_IMAGES, "fig4c")
    return layer_shares_by_generator(layers, names), note(d) + f"; generators: {', '.join(d.generator.unique())}"


@figure(
    "fig4d_layerwise_lee_vs_eqt",
    "Fig. 4 (right)",
    needs=Needs("main", "layerwise-baselines", min_images=MIN_PANEL_IMAGES,
                text="layerwise and layerwise-baselines results of the main run"),
)
def _fig4d(ctx: FigureContext):
    """Per layer, the layerwise LEE against the layerwise EQ-T / EQ-T_frac (normalised MSE). Values below the numerical
    floor are drawn as marks at the axis edge, counted in the caption and left out of the rank correlation."""
    layers = _layerwise(ctx)
    base = ctx.table(ctx.run, "layerwise-baselines")
    common = [m for m in dict.fromkeys(layers["model"]) if m in set(base["model"])]
    if not common:
        raise MissingData(f"no model with both layerwise LEE and layerwise baselines in run '{ctx.run}'")
    model = common[0]
    base = stat_column(base, "nmse")  # long format: one row per (image, layer, metric, stat) with a value
    data = note(base[base["model"] == model]) + "; layerwise EQ-T / EQ-T_frac as normalised MSE"
    return layerwise_lee_vs_baselines(layers, base, model), data
