"""Result tables without torch: long / wide reshaping, PSNR, and rank correlations of the baselines with the LEE.

The compute side (:mod:`lieq.baselines`, :mod:`lieq.layerwise_baselines`) writes its tables with :func:`to_long`;
the figure side (:mod:`lieq.figures`, :mod:`lieq.figure_index`) and the notebooks read them back with
:func:`to_wide` / :func:`stat_column` and correlate them with :func:`lee_correlations` / :func:`spearman`.  Only
numpy, pandas and scipy are used, so tables can be analysed in a light environment.

Long format: one row per (item, ``stat``) with a finite ``value``; the item is identified by every other column
(image, metric, layer, model, provenance ...).  The statistics are those of :data:`lieq.conventions.E2E_BASELINE_STATS`
and :data:`lieq.conventions.LAYERWISE_BASELINE_STATS`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from .conventions import BASELINE_METRICS, COMPOSITE_PARTNERS, LEE_PARTNER

__all__ = ["lee_correlations", "lee_wide", "psnr", "spearman", "stat_column", "to_long", "to_wide"]


def to_long(table: pd.DataFrame, stats: Sequence[str]) -> pd.DataFrame:
    """Wide rows -> the stored long format: one row per (item, ``stat``) with a finite ``value``.

    Statistics that are undefined for an item (NaN: e.g. PSNR of a consistency metric, an empty mask) or infinite
    (PSNR of an exactly zero error) are left out rather than stored as non-finite numbers.
    """
    ids = [c for c in table.columns if c not in stats]
    present = [c for c in stats if c in table.columns]
    long = table.reset_index(drop=True).melt(id_vars=ids, value_vars=present, var_name="stat", ignore_index=False)
    long = long.assign(_row=long.index, _stat=long["stat"].map({name: k for k, name in enumerate(present)}))
    long = long[np.isfinite(long["value"].to_numpy(dtype=float))].sort_values(["_row", "_stat"])
    return long.drop(columns=["_row", "_stat"]).reset_index(drop=True)


def to_wide(table: pd.DataFrame) -> pd.DataFrame:
    """The long format of :func:`to_long` back to one row per item with one column per statistic (NaN if absent)."""
    if "stat" not in table.columns:
        return table
    ids = [c for c in table.columns if c not in ("stat", "value")]
    wide = table.set_index(ids + ["stat"])["value"].unstack("stat").reset_index().rename_axis(columns=None)
    return table[ids].drop_duplicates().merge(wide, on=ids, how="left")  # the items in their original order


def stat_column(table: pd.DataFrame, stat: str) -> pd.DataFrame:
    """The rows of one statistic of a long table, with its ``value`` copied into a column named ``stat``.

    A table without a ``stat`` column (already wide) is returned unchanged.
    """
    if "stat" not in table.columns:
        return table
    rows = table[table["stat"] == stat]
    return rows.assign(**{stat: rows["value"]})


def psnr(mse: Any) -> Any:
    """StyleGAN3's PSNR in dB: ``20 log10(2) - 10 log10(mse)`` (signal range 2, as for images in [-1, 1])."""
    return 20 * np.log10(2.0) - 10 * np.log10(mse)


def spearman(x: Any, y: Any, min_n: int = 3) -> tuple[float, float]:
    """Spearman's rank correlation ``(rho, p_value)`` of two equally long samples; ``(nan, nan)`` with fewer than
    ``min_n`` pairs.  A constant sample gives ``rho = nan`` (no warning)."""
    from scipy.stats import ConstantInputWarning, spearmanr

    if len(x) < min_n:
        return math.nan, math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        rho, p = spearmanr(x, y)
    return float(rho), float(p)


def lee_wide(lee: pd.DataFrame, stat: str = "mean_sq", model_col: str = "model") -> pd.DataFrame:
    """Per-image LEE with one column per generator: index ``(model_col, image)``, mean over duplicate rows.

    Composite partners (:data:`lieq.conventions.COMPOSITE_PARTNERS`, e.g. ``translate``) are added as the mean of
    their components' columns where all components are present.
    """
    wide = lee.assign(_v=pd.to_numeric(lee[stat])).pivot_table(
        index=[model_col, "image"], columns="generator", values="_v", aggfunc="mean"
    )
    for name, parts in COMPOSITE_PARTNERS.items():
        if set(parts) <= set(wide.columns):
            wide[name] = sum(wide[p] for p in parts) / len(parts)
    return wide


def lee_correlations(
    baselines: pd.DataFrame, lee: pd.DataFrame, lee_stat: str = "mean_sq", model_col: str = "model"
) -> pd.DataFrame:
    """Spearman rank correlation between the LEE and each baseline, across images and across models.

    ``baselines``: rows of :func:`lieq.baselines.baseline_metrics` (long or wide) with a ``model`` column; ``lee``:
    rows of :func:`lieq.metrics.e2e_lee` with a ``model`` column.  Each baseline is paired with the LEE generator in
    :data:`lieq.conventions.LEE_PARTNER` (``translate`` = mean of ``translate_x`` and ``translate_y``).  The
    baseline's value is ``mse`` for every metric and also ``1 - consistency`` for the consistency metrics, so that
    for every pairing a *positive* correlation means "both call the same inputs less equivariant".

    Returns one row per (baseline, value, scope) with ``scope`` one of ``images:<model>`` (Spearman over that model's
    images), ``images:pooled`` (over all (model, image) pairs), ``images:within`` (mean of the per-model values) and
    ``models`` (over the per-model means; with 3 models only -1, -0.5, 0.5, 1 are possible): columns ``baseline,
    value, lee, scope, rho, p_value, n``.
    """
    wide = lee_wide(lee, lee_stat, model_col)
    rows = []
    for (metric, value), table in _baseline_values(to_wide(baselines), model_col).items():
        partner = LEE_PARTNER[metric]
        if partner not in wide.columns:
            continue
        joined = table.join(wide[partner].rename("lee"), how="inner").dropna()
        if len(joined) < 3:
            continue
        per_model = []
        for model, part in joined.groupby(level=0):
            if len(part) >= 3:
                rho, p = spearman(part["value"], part["lee"])
                per_model.append(rho)
                rows.append((metric, value, partner, f"images:{model}", rho, p, len(part)))
        rho, p = spearman(joined["value"], joined["lee"])
        rows.append((metric, value, partner, "images:pooled", rho, p, len(joined)))
        if per_model:
            with warnings.catch_warnings():  # all per-model values NaN (constant columns): the mean is NaN too
                warnings.simplefilter("ignore", RuntimeWarning)
                within = float(np.nanmean(per_model))
            rows.append((metric, value, partner, "images:within", within, math.nan, len(per_model)))
        means = joined.groupby(level=0).mean()
        if len(means) >= 2:
            rho, p = spearman(means["value"], means["lee"], min_n=2)
            rows.append((metric, value, partner, "models", rho, p, len(means)))
    return pd.DataFrame(rows, columns=["baseline", "value", "lee", "scope", "rho", "p_value", "n"])


def _baseline_values(baselines: pd.DataFrame, model_col: str) -> dict[tuple[str, str], pd.DataFrame]:
    """``(metric, value name) -> values indexed by (model, image)``: ``mse``, and ``1-consistency`` where reported."""
    out = {}
    for metric, part in baselines.groupby("metric"):
        if metric not in BASELINE_METRICS:
            continue
        part = part.set_index([model_col, "image"])
        out[(metric, "mse")] = part[["mse"]].rename(columns={"mse": "value"})
        if BASELINE_METRICS[metric].consistency:
            out[(metric, "1-consistency")] = (1 - part[["consistency"]]).rename(columns={"consistency": "value"})
    return out
