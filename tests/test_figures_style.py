"""The house style (lieq/figures/style.py), checked on every figure drawn from the committed cache.

* each layer category / architecture family / generator / image model has the same colour in every figure it appears
  in (the one of the style tables), and within one figure two different labelled things never look the same;
* no legend box covers a data point;
* fonts are 7-9 pt and no title, axis label or legend uses a generator's code name;
* the paper's reference points reproduce the figure's printed R^2 = 0.333.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.container import BarContainer, ErrorbarContainer  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from lieq import conventions  # noqa: E402
from lieq.figures import FIGURES, FigureContext, MissingData, style  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

#: readable label -> (kind, colour of the style table)
KNOWN = {
    **{c: ("category", style.CATEGORY_COLORS[c]) for c in conventions.CATEGORIES},
    **{f: ("family", style.FAMILY_COLORS[f]) for f in style.FAMILY_ORDER},
    **{style.label(g): ("generator", c) for g, c in style.GENERATOR_COLORS.items()},
    **{style.label(m): ("image model", c) for m, c in style.IMAGE_MODEL_COLORS.items()},
}


def draw_every_figure(ctx: FigureContext) -> dict[str, plt.Figure]:
    """Build every registered figure the store supports (without saving) and render it once (Agg)."""
    style.use_style()
    figs = {}
    for spec in FIGURES:
        try:
            ctx.check_needs(spec)
            fig, _ = spec.build(ctx)
        except MissingData:
            continue
        fig.canvas.draw()
        figs[spec.name] = fig
    return figs


@pytest.fixture(scope="module")
def cached_figures():
    figs = draw_every_figure(FigureContext(out_dir="/nonexistent", dpi=40))
    yield figs
    plt.close("all")


def _handle_look(handle) -> tuple:
    """(colour, marker, line style, filled) of a legend handle."""
    if isinstance(handle, ErrorbarContainer):
        handle = handle.lines[0]
    if isinstance(handle, BarContainer):
        handle = handle.patches[0]
    if isinstance(handle, Line2D):
        face = handle.get_markerfacecolor()
        color = handle.get_color() if handle.get_linestyle() not in ("None", "") else handle.get_markeredgecolor()
        filled = not (isinstance(face, str) and face in ("none", "white")) and to_hex(face) != "#ffffff"
        return to_hex(color), str(handle.get_marker()), str(handle.get_linestyle()), filled
    if isinstance(handle, Patch):
        return to_hex(handle.get_facecolor()), "patch", "", True
    if isinstance(handle, PathCollection):
        fc = handle.get_facecolors()
        ec = handle.get_edgecolors()
        filled = len(fc) > 0 and fc[0][3] > 0 and to_hex(fc[0]) != "#ffffff"
        shape = tuple(np.round(handle.get_paths()[0].vertices[:6].ravel(), 2))  # the marker shape
        return to_hex(fc[0] if filled else ec[0]), shape, "", filled
    return ("?", type(handle).__name__, "", True)


def _legends(fig):
    for ax in fig.axes:
        if ax.get_legend() is not None:
            yield ax, ax.get_legend()
    for leg in fig.legends:
        yield None, leg


def _canonical(text: str) -> str:
    """``paper: CNN (n = 271)`` -> ``CNN``: the labelled thing without a source prefix or a count suffix."""
    text = re.sub(r"^(paper|ours): ", "", text)
    return re.sub(r" \(n = \d+\)$", "", text).strip()


def _legend_entries(fig) -> list[tuple[str, tuple]]:
    """(label, look) of every legend entry, from the artist the legend stands for where the axes still have it
    (an errorbar's legend proxy is a bare line collection), else from the legend's own proxy."""
    originals = {}
    for ax in fig.axes:
        for handle, text in zip(*ax.get_legend_handles_labels()):
            originals.setdefault(text, handle)
    out = []
    for _, leg in _legends(fig):
        for text, handle in zip(leg.get_texts(), leg.legend_handles):
            handle = originals.get(text.get_text(), handle)
            if handle is not None:
                out.append((_canonical(text.get_text()), _handle_look(handle)))
    return out


def check_colours(figs: dict) -> dict[str, set]:
    """Every known label has its style-table colour; returns label -> figures it appears in."""
    seen: dict[str, set] = {}
    problems = []
    for name, fig in figs.items():
        looks: dict[tuple, str] = {}
        for text, look in _legend_entries(fig):
            if text in KNOWN:
                seen.setdefault(text, set()).add(name)
                kind, colour = KNOWN[text]
                if look[0] != to_hex(colour):
                    problems.append(f"{name}: {kind} {text!r} drawn in {look[0]}, style says {to_hex(colour)}")
            other = looks.setdefault(look, text)
            if other != text:
                problems.append(f"{name}: {other!r} and {text!r} look the same {look}")
    assert not problems, "\n".join(problems)
    return seen


def _points(ax) -> np.ndarray:
    """Display coordinates of the data points (markers, scatter offsets) of ``ax`` that lie inside the axes."""
    pts = []
    for line in ax.lines:
        if line.get_marker() in (None, "None", "", " ") or not line.get_visible():
            continue
        xy = np.column_stack([line.get_xdata(orig=False), line.get_ydata(orig=False)]).astype(float)
        pts.append(line.get_transform().transform(xy))
    for coll in ax.collections:
        if isinstance(coll, PathCollection) and coll.get_visible() and len(coll.get_offsets()):
            pts.append(coll.get_offset_transform().transform(np.asarray(coll.get_offsets(), float)))
    if not pts:
        return np.zeros((0, 2))
    pts = np.vstack(pts)
    pts = pts[np.isfinite(pts).all(axis=1)]
    box = ax.get_window_extent()
    inside = (pts[:, 0] >= box.x0) & (pts[:, 0] <= box.x1) & (pts[:, 1] >= box.y0) & (pts[:, 1] <= box.y1)
    return pts[inside]


def check_legends_clear(figs: dict) -> None:
    problems = []
    for name, fig in figs.items():
        for _, leg in _legends(fig):
            box = leg.get_window_extent()
            for ax in fig.axes:
                p = _points(ax)
                hit = (p[:, 0] > box.x0) & (p[:, 0] < box.x1) & (p[:, 1] > box.y0) & (p[:, 1] < box.y1)
                if hit.any():
                    problems.append(f"{name}: the legend covers {int(hit.sum())} data point(s) of '{ax.get_title()}'")
    assert not problems, "\n".join(problems)


def check_text(figs: dict) -> None:
    code_names = [g for g in conventions.GENERATORS if "_" in g] + ["rotate", "saturate"]
    problems = []
    for name, fig in figs.items():
        for t in fig.findobj(matplotlib.text.Text):
            s = t.get_text()
            if not s.strip() or not t.get_visible():
                continue
            if not 7 <= t.get_fontsize() <= 9:
                problems.append(f"{name}: {t.get_fontsize():g} pt text {s[:40]!r}")
            words = set(re.findall(r"[a-z_]+", s))
            bad = [g for g in code_names if g in words]
            if bad:
                problems.append(f"{name}: code name {bad[0]!r} in {s[:60]!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_every_cached_figure_keeps_the_house_colours(cached_figures):
    assert len(cached_figures) >= 20, sorted(cached_figures)
    seen = check_colours(cached_figures)
    assert {"Conv", "Activation"} <= set(seen)  # the check saw the categories in several figures
    assert len(seen["Conv"]) >= 3


@pytest.mark.slow
def test_no_legend_covers_a_data_point(cached_figures):
    check_legends_clear(cached_figures)


@pytest.mark.slow
def test_fonts_and_readable_labels(cached_figures):
    check_text(cached_figures)


def test_style_tables_are_distinct_within_each_kind():
    for table in (style.CATEGORY_COLORS, style.FAMILY_COLORS, style.GENERATOR_COLORS, style.IMAGE_MODEL_COLORS):
        colours = [to_hex(c) for c in table.values()]
        assert len(set(colours)) == len(colours)
    assert list(style.CATEGORY_COLORS) == list(conventions.CATEGORIES)
    assert list(style.GENERATOR_COLORS) == list(conventions.GENERATORS)
    assert style.model_label("tf_efficientnet_lite0.in1k") == "EfficientNet-Lite0"
    assert style.model_label("resnetblur50.bt_in1k") == "ResNet-50 (BlurPool)"
    assert style.label("translate_x") == "translation x"
    assert "per half image width" in style.lee_label("mean_abs", "translate_x")


def test_paper_reference_points_reproduce_the_printed_fit():
    """data/reference/paper_fig1_right.csv: 401 models (271 CNN, 117 ViT, 13 Mixer), OLS R^2 = 0.333."""
    from scipy import stats

    p = pd.read_csv(ROOT / "data" / "reference" / "paper_fig1_right.csv")
    assert p["arch_family"].value_counts().to_dict() == {"CNN": 271, "ViT": 117, "Mixer": 13}
    fit = stats.linregress(p["imagenet_acc_pct"], p["translation_lee"])
    assert round(fit.rvalue**2, 3) == 0.333
    assert fit.slope == pytest.approx(-0.00277, abs=5e-6)
    bars = pd.read_csv(ROOT / "data" / "reference" / "paper_fig1_centre.csv")
    totals = bars.groupby("model")["height"].sum()
    assert totals["ResNet-50"] == pytest.approx(85.9, abs=0.1) and totals["ViT-Small"] == pytest.approx(45.6, abs=0.1)
