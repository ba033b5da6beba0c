"""Finite and discrete equivariance baselines, and their rank correlation with the LEE (NOTES.md section 5).

The paper compares the Lie derivative with the metrics used before it.  Here they are computed on the same models,
images and store.  ``p(x) = softmax(f(x))`` is the classifier's probability vector over ``K`` classes; a classifier
is treated as *invariant*, so every end-to-end metric compares ``p`` of a transformed input with ``p`` of the
untransformed (or of another transformed) input.  Tables are in long format (one row per image, metric and ``stat``,
with a finite ``value``; :func:`to_wide` pivots them back); the statistics are:

``mse``
    ``E_s[(1/K) sum_k (p_k(T_s x) - p_k(x))^2]``, the mean over samples ``s`` of the mean over classes of the squared
    change of the softmax output (the original code's statistic for every baseline).
``psnr``
    StyleGAN3's ``20 log10(2) - 10 log10(mse)`` (dB) for the EQ-* metrics (NaN for the others).
``consistency``
    fraction of samples whose top-1 class agrees (consistency metrics only).

End-to-end metrics (``metric`` column; ``x`` is the width axis = last tensor axis, ``y`` the height axis):

``consistency_x`` / ``consistency_y``
    circular shift (``torch.roll``, wrap-around) by 1..7 pixels along x / y, compared with the unshifted image
    (the original's variant, with its swapped axis labels corrected).  Deterministic: 7 samples each.
``consistency_crop``
    Zhang (2019): the input is resized (bilinear, antialiased) by ``crop_ratio`` (256/224 by default) and two random
    crops of the original size are compared with each other (no wrap-around).  ``n`` random pairs.
``eq_t``
    StyleGAN3 EQ-T: integer shifts ``round(t * size)`` pixels with ``t ~ U[-0.125, 0.125]^2``, zero fill (zero on the
    normalised tensor, i.e. the dataset mean colour).
``eq_t_frac``
    EQ-T_frac: the same ``t`` without rounding, resampled with a separable Lanczos (windowed sinc, ``a = 3``) filter
    normalised to unit DC gain, zero fill.
``eq_r``
    EQ-R: rotation by ``U[-pi, pi]`` about the centre with a band-limited resampler: the image is upsampled ``4x``
    with the Lanczos filter (the upsampled grid contains the original pixel centres) and the rotated grid is read
    from it bilinearly, zero fill.  The rotation convention is :mod:`lieq.image_model`'s ``rotate``.
``invariance_translate_x`` / ``invariance_translate_y`` / ``invariance_rotate``
    sampled invariance: ``t ~ U[-r, r]`` and the finite transformation of the continuous image model
    (:func:`lieq.image_model.transform`, ``image_model`` option, bilinear with reflection by default).  ``r`` is in
    the generator's units (half image widths, radians).  The column ``mse_scaled = 3 mse / r^2`` estimates the LEE's
    ``mean_sq`` to first order (``E[t^2] = r^2 / 3``).  Defaults (``r = 1/32`` half width, about 3.5 px at 224 px,
    and ``pi/32`` rad) are small enough to be local; the original's rotation range was ``pi // 16 = 0`` (a bug).

For a classifier the output is invariant, so the validity masks of EQ-T / EQ-T_frac / EQ-R play no role end to end
(the zero-filled border is part of the transformed input); ``valid`` reports the mean fraction of valid pixels.
The masks matter in the layerwise versions (:func:`layerwise_eq`), which compare ``layer(shift(h))`` with
``shift(layer(h))`` on the layer's own grid.

Sample counts: ``samples="default"`` is the original's 10 x 20 = 200 samples per image and metric; ``"fast"`` is
4 per image and metric (about 40x fewer forward passes; per-image values are noisier, means over images remain
unbiased; used for the shipped ``embedded`` results on a 2-core CPU).  Each
(seed, metric, image id) has its own random stream, so results do not depend on batching or on which other
images are in the run.  ``batch_size`` samples of one image go through the network together; ``batch_size=1`` is
the per-sample loop used by the benchmark.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._memory import retain_freed_memory
from .experiments import register
from .image_model import feature_layout, transform

__all__ = [
    "E2E_METRICS",
    "LAYERWISE_METRICS",
    "SAMPLE_SETTINGS",
    "bandlimited_rotate",
    "baseline_metrics",
    "integer_shift",
    "lanczos",
    "lanczos_shift",
    "layerwise_eq",
    "lee_correlations",
    "psnr",
    "resolve_samples",
    "to_long",
    "to_wide",
]

#: End-to-end metrics, in the order they are computed.
E2E_METRICS: tuple[str, ...] = (
    "consistency_x",
    "consistency_y",
    "consistency_crop",
    "eq_t",
    "eq_t_frac",
    "eq_r",
    "invariance_translate_x",
    "invariance_translate_y",
    "invariance_rotate",
)
#: Layerwise metrics.
LAYERWISE_METRICS: tuple[str, ...] = ("eq_t", "eq_t_frac")
#: Named sample settings: (samples per repeat, repeats).  ``default`` is the original's 10 x 20 per image.
SAMPLE_SETTINGS: dict[str, tuple[int, int]] = {"default": (10, 20), "fast": (4, 1)}
#: Which LEE generator each baseline is compared with by :func:`lee_correlations`.
LEE_PARTNER: dict[str, str] = {
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
MAX_CIRCULAR_SHIFT = 7
#: Statistics of the end-to-end and layerwise tables (the ``stat`` column of the long format).
E2E_STATS: tuple[str, ...] = ("mse", "mse_sem", "psnr", "consistency", "range", "mse_scaled", "valid")
LAYERWISE_STATS: tuple[str, ...] = ("mse", "nmse", "psnr")


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


def psnr(mse: Tensor | float | np.ndarray) -> Any:
    """StyleGAN3's PSNR in dB: ``20 log10(2) - 10 log10(mse)`` (signal range 2, as for images in [-1, 1])."""
    return 20 * np.log10(2.0) - 10 * np.log10(mse)


def resolve_samples(samples: str | int) -> int:
    """Samples per image and metric: a name of :data:`SAMPLE_SETTINGS` or a positive integer."""
    if isinstance(samples, str) and not samples.isdigit():
        if samples not in SAMPLE_SETTINGS:
            raise ValueError(f"unknown sample setting {samples!r}; known: {', '.join(SAMPLE_SETTINGS)} or an integer")
        per, repeats = SAMPLE_SETTINGS[samples]
        return per * repeats
    n = int(samples)
    if n <= 0:
        raise ValueError(f"samples must be positive, got {n}")
    return n


def _generator(seed: int, *keys: object) -> torch.Generator:
    """A CPU random stream determined by the seed and the keys (metric, image id)."""
    text = ":".join(str(k) for k in (seed, *keys))
    return torch.Generator().manual_seed(zlib.crc32(text.encode()))


# --------------------------------------------------------------------------------------------------------------
# Discrete transformations (vectorised over samples; x is (..., H, W), results are (S, ..., H, W))
# --------------------------------------------------------------------------------------------------------------


def integer_shift(x: Tensor, dx: Tensor, dy: Tensor) -> tuple[Tensor, Tensor]:
    """Shift the content of ``x`` (``(..., H, W)``) by integer ``dx`` pixels along x (width) and ``dy`` along y.

    ``out[s, ..., i, j] = x[..., i - dy[s], j - dx[s]]`` where the source is inside the image, else 0 (zero fill).
    Returns ``(out (S, *x.shape), mask (S, H, W))`` with ``mask`` 1 where the source pixel exists.
    """
    h, w = x.shape[-2:]
    dx = torch.as_tensor(dx, device=x.device).reshape(-1).round().long()
    dy = torch.as_tensor(dy, device=x.device).reshape(-1).round().long()
    rows = torch.arange(h, device=x.device)[None] - dy[:, None]  # (S, H)
    cols = torch.arange(w, device=x.device)[None] - dx[:, None]  # (S, W)
    vr = (rows >= 0) & (rows < h)
    vc = (cols >= 0) & (cols < w)
    mask = (vr[:, :, None] & vc[:, None, :]).to(x.dtype)  # (S, H, W)
    out = x[..., rows.clamp(0, h - 1)[:, :, None], cols.clamp(0, w - 1)[:, None, :]]  # (..., S, H, W)
    out = out.movedim(-3, 0) * mask.reshape(mask.shape[0], *([1] * (x.dim() - 2)), h, w)
    return out, mask


def lanczos(u: Tensor, a: int = 3) -> Tensor:
    """Lanczos kernel ``sinc(u) sinc(u / a)`` for ``|u| < a``, else 0 (``sinc`` normalised: ``sin(pi u)/(pi u)``)."""
    return torch.where(u.abs() < a, torch.sinc(u) * torch.sinc(u / a), torch.zeros_like(u))


def _lanczos_shift_matrix(n: int, d: Tensor, a: int) -> Tensor:
    """``M[s, i, k] = L(i - d_s - k) / sum_{k in Z} L(i - d_s - k)`` for ``k`` in the image (zero fill outside)."""
    pad = int(math.ceil(float(d.abs().max()) if d.numel() else 0.0)) + a + 1
    i = torch.arange(n, dtype=d.dtype, device=d.device)
    k = torch.arange(-pad, n + pad, dtype=d.dtype, device=d.device)
    u = i[None, :, None] - d[:, None, None] - k[None, None, :]  # (S, n, n + 2 pad)
    weights = lanczos(u, a)
    weights = weights / weights.sum(-1, keepdim=True)
    return weights[..., pad : pad + n]


def _lanczos_mask(n: int, d: Tensor, a: int) -> Tensor:
    """1 where every Lanczos tap of the source position ``i - d`` lies inside ``[0, n - 1]``: ``(S, n)``."""
    u = torch.arange(n, dtype=d.dtype, device=d.device)[None] - d[:, None]
    eps = 1e-4
    return ((u >= a - 1 - eps) & (u <= n - a + eps)).to(d.dtype)


def lanczos_shift(x: Tensor, dx: Tensor, dy: Tensor, a: int = 3) -> tuple[Tensor, Tensor]:
    """Shift the content of ``x`` (``(..., H, W)``) by real ``(dx, dy)`` pixels with a separable Lanczos filter.

    ``out[s, ..., i, j] = sum_{k, l} M_y[s, i, k] M_x[s, j, l] x[..., k, l]`` with ``M[i, k] = L_a(i - d - k)``
    normalised to unit sum over the infinite lattice (so a constant stays constant) and zero fill outside the image.
    For integer shifts ``M`` is a shifted identity, so this equals :func:`integer_shift`.  ``mask (S, H, W)`` is 1
    where all taps of the source position are inside the image.
    """
    h, w = x.shape[-2:]
    dx = torch.as_tensor(dx, dtype=x.dtype, device=x.device).reshape(-1)
    dy = torch.as_tensor(dy, dtype=x.dtype, device=x.device).reshape(-1)
    my = _lanczos_shift_matrix(h, dy, a)
    mx = _lanczos_shift_matrix(w, dx, a)
    lead = x.shape[:-2]
    flat = x.reshape(-1, h, w)
    out = torch.einsum("sik,bkl,sjl->sbij", my, flat, mx).reshape(len(dx), *lead, h, w)
    mask = _lanczos_mask(h, dy, a)[:, :, None] * _lanczos_mask(w, dx, a)[:, None, :]
    return out, mask


def _upsample_matrix(n: int, up: int, a: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``U[i, k] = L_a(i / up - k)`` normalised to unit sum, for fine positions ``i / up``, ``i = 0 .. up (n-1)``."""
    pad = a + 1
    i = torch.arange(up * (n - 1) + 1, dtype=dtype, device=device) / up
    k = torch.arange(-pad, n + pad, dtype=dtype, device=device)
    weights = lanczos(i[:, None] - k[None, :], a)
    weights = weights / weights.sum(-1, keepdim=True)
    return weights[:, pad : pad + n]


def bandlimited_rotate(x: Tensor, angle: Tensor, up: int = 4, a: int = 3) -> tuple[Tensor, Tensor]:
    """Rotate ``x`` (``(B, C, H, W)``) by each angle (radians) with a band-limited resampler: ``(S, B, C, H, W)``.

    The image is upsampled ``up`` times with the separable Lanczos filter on a grid of ``up (n - 1) + 1`` positions
    per axis that contains the original pixel centres (so ``-1`` and ``+1`` of the ``align_corners=True``
    coordinates are the same points on both grids); the output pixel at normalised position ``p`` reads the
    upsampled image bilinearly at ``A(angle) p`` with ``A = [[cos, sin], [-sin, cos]]`` (the convention of
    :mod:`lieq.image_model`), zero outside.  Angle 0 returns ``x`` (up to float rounding of the sampling grid).
    ``mask (S, H, W)`` is 1 where all Lanczos taps of the source point lie inside the image.
    """
    if x.dim() != 4:
        raise ValueError(f"x must have shape (B, C, H, W), got {tuple(x.shape)}")
    b, c, h, w = x.shape
    angle = torch.as_tensor(angle, dtype=x.dtype, device=x.device).reshape(-1)
    s = len(angle)
    uy = _upsample_matrix(h, up, a, x.dtype, x.device)
    ux = _upsample_matrix(w, up, a, x.dtype, x.device)
    fine = torch.einsum("ik,bckl,jl->bcij", uy, x, ux)  # (B, C, Hf, Wf)
    cos, sin, zero = torch.cos(angle), torch.sin(angle), torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, sin, zero], -1), torch.stack([-sin, cos, zero], -1)], -2)  # (S, 2, 3)
    grid = F.affine_grid(theta, [s, 1, h, w], align_corners=True)  # (S, H, W, 2)
    src = fine.reshape(1, b * c, *fine.shape[-2:]).expand(s, b * c, *fine.shape[-2:])
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    px = (grid[..., 0] + 1) / 2 * (w - 1)
    py = (grid[..., 1] + 1) / 2 * (h - 1)
    eps = 1e-4
    mask = ((px >= a - 1 - eps) & (px <= w - a + eps) & (py >= a - 1 - eps) & (py <= h - a + eps)).to(x.dtype)
    return out.reshape(s, b, c, h, w), mask


def _random_crops(big: Tensor, oy: Tensor, ox: Tensor, h: int, w: int) -> Tensor:
    """Crops ``big[..., oy:oy+h, ox:ox+w]`` for each offset: ``(S, *big.shape[:-2], h, w)``."""
    rows = oy[:, None] + torch.arange(h, device=big.device)[None]
    cols = ox[:, None] + torch.arange(w, device=big.device)[None]
    return big[..., rows[:, :, None], cols[:, None, :]].movedim(-3, 0)


# --------------------------------------------------------------------------------------------------------------
# End-to-end metrics
# --------------------------------------------------------------------------------------------------------------


def _sample_plan(
    metric: str, n: int, shape: Sequence[int], config: dict[str, Any], gen: torch.Generator
) -> tuple[Tensor, Callable[[Tensor, Tensor], tuple[Tensor, Tensor | None]], Tensor | None]:
    """Random parameters of ``n`` samples and ``build(x (1, C, H, W), params) -> (inputs (S, C, H, W), other)``.

    ``other`` is ``None`` (compare with the unperturbed image) or a second batch of inputs to compare with
    (crop pairs).  Also returns the validity fraction per sample where defined.
    """
    h, w = shape[-2:]
    if metric in ("consistency_x", "consistency_y"):
        params = torch.arange(1, MAX_CIRCULAR_SHIFT + 1, dtype=torch.float64)
        dim = -1 if metric == "consistency_x" else -2

        def build(x, p):
            return torch.stack([torch.roll(x[0], int(k), dims=dim) for k in p]), None

        return params, build, None
    if metric == "consistency_crop":
        ratio = float(config.get("crop_ratio", 256 / 224))
        bh, bw = max(h, round(h * ratio)), max(w, round(w * ratio))
        params = torch.stack(
            [torch.randint(0, bh - h + 1, (n,), generator=gen), torch.randint(0, bw - w + 1, (n,), generator=gen)]
            + [torch.randint(0, bh - h + 1, (n,), generator=gen), torch.randint(0, bw - w + 1, (n,), generator=gen)],
            -1,
        ).double()

        def build(x, p):
            big = F.interpolate(x, size=(bh, bw), mode="bilinear", align_corners=False, antialias=True)[0]
            p = p.long().to(x.device)
            return _random_crops(big, p[:, 0], p[:, 1], h, w), _random_crops(big, p[:, 2], p[:, 3], h, w)

        return params, build, None
    if metric in ("eq_t", "eq_t_frac"):
        tmax = float(config.get("eq_t_max", 0.125))
        t = (torch.rand(n, 2, generator=gen, dtype=torch.float64) * 2 - 1) * tmax
        shifts = t * torch.tensor([w, h], dtype=torch.float64)
        if metric == "eq_t":
            shifts = shifts.round()
            build = lambda x, p: (integer_shift(x[0], p[:, 0], p[:, 1])[0], None)  # noqa: E731
            valid = ((w - shifts[:, 0].abs()) * (h - shifts[:, 1].abs())) / (w * h)
        else:
            a = int(config.get("lanczos_a", 3))
            build = lambda x, p: (lanczos_shift(x[0], p[:, 0], p[:, 1], a)[0], None)  # noqa: E731
            valid = (
                (w - shifts[:, 0].abs() - 2 * (a - 1)).clamp(min=0)
                * (h - shifts[:, 1].abs() - 2 * (a - 1)).clamp(min=0)
            ) / (w * h)
        return shifts, build, valid
    if metric == "eq_r":
        angles = (torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1) * math.pi
        up, a = int(config.get("rotate_upsample", 4)), int(config.get("lanczos_a", 3))

        def build(x, p):
            out, _ = bandlimited_rotate(x, p, up, a)
            return out[:, 0], None

        return angles, build, None
    if metric.startswith("invariance_"):
        gen_name = metric[len("invariance_") :]
        r = float(config["rotate_range"] if gen_name == "rotate" else config["translate_range"])
        t = (torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1) * r
        model_name = config.get("image_model", "bilinear")
        return t, (lambda x, p: (transform(x, gen_name, p, model_name)[:, 0], None)), None
    raise ValueError(f"unknown metric {metric!r}; known: {', '.join(E2E_METRICS)}")


def _resolve_metrics(metrics: str | Sequence[str]) -> list[str]:
    if metrics in ("all", None):
        return list(E2E_METRICS)
    names = [m.strip() for m in metrics.split(",") if m.strip()] if isinstance(metrics, str) else list(metrics)
    unknown = [m for m in names if m not in E2E_METRICS]
    if unknown or not names:
        raise ValueError(f"unknown metric(s) {', '.join(unknown) or '(none)'}; known: {', '.join(E2E_METRICS)}")
    return names


BASELINE_DEFAULTS: dict[str, Any] = {
    "metrics": "all",
    "samples": "default",
    "eq_t_max": 0.125,
    "lanczos_a": 3,
    "rotate_upsample": 4,
    "crop_ratio": 256 / 224,
    "translate_range": 1 / 32,
    "rotate_range": math.pi / 32,
    "image_model": "bilinear",
    "batch_size": 50,
    "sample_seed": 0,
}


def baseline_metrics(
    model: nn.Module,
    images: Tensor,
    labels: Sequence[int] | Tensor | None = None,
    image_ids: Sequence[str] | None = None,
    metrics: str | Sequence[str] = "all",
    samples: str | int = "default",
    config: dict[str, Any] | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """End-to-end baselines of a classifier on preprocessed ``images (N, C, H, W)``: one row per (image, metric).

    Long format: columns ``image, metric, samples`` (``label, pred, correct`` when labels are given), ``stat`` and
    ``value``; ``stat`` is ``mse``, ``mse_sem`` (standard error over samples), ``psnr`` (EQ-* only), ``consistency``
    (consistency metrics only), ``range`` and ``mse_scaled`` (sampled invariance only) or ``valid`` (mean valid-pixel
    fraction of EQ-T / EQ-T_frac); undefined statistics have no row (:func:`to_wide` pivots).  ``config``
    overrides :data:`BASELINE_DEFAULTS` (ranges, filter, crop ratio, image model); see the module docstring.
    """
    cfg = {**BASELINE_DEFAULTS, **(config or {})}
    if batch_size is not None:
        cfg["batch_size"] = batch_size
    if seed is not None:
        cfg["sample_seed"] = seed
    names = _resolve_metrics(metrics)
    n_samples = resolve_samples(samples)
    bs = int(cfg["batch_size"])
    if bs <= 0:
        raise ValueError(f"batch_size must be positive, got {bs}")
    if images.dim() != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    n = images.shape[0]
    if image_ids is not None and len(image_ids) != n:
        raise ValueError(f"{len(image_ids)} image ids for {n} images")
    if labels is not None and len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} images")
    model = model.eval()
    device = next(iter(model.parameters()), images).device
    if device.type == "cpu" and bs > 1:
        retain_freed_memory()  # batches of samples: large activations, reused memory instead of page faults

    def probs(x: Tensor) -> Tensor:
        return torch.softmax(model(x).float(), dim=-1)

    # Images are processed in blocks so that one forward pass holds about ``batch_size`` samples: with many samples
    # per image a block is one image and its samples are chunked; with few, the samples of several images share a pass.
    per_image = max(
        [n_samples] + [MAX_CIRCULAR_SHIFT for m in names if m.startswith("consistency_") and m != "consistency_crop"]
    )
    block = max(1, bs // per_image)
    results: dict[tuple[int, str], dict[str, Any]] = {}
    starts = range(0, n, block)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="baselines", unit="image", leave=False)
    with torch.inference_mode():
        for start in starts:
            xb = images[start : start + block].to(device)
            p0 = probs(xb)
            for metric in names:
                pieces: list[tuple[int, Tensor, Tensor | None]] = []
                valids: dict[int, Tensor | None] = {}
                for j in range(len(xb)):
                    image_id = image_ids[start + j] if image_ids is not None else start + j
                    gen = _generator(cfg["sample_seed"], metric, image_id)
                    params, build, valids[j] = _sample_plan(metric, n_samples, xb.shape, cfg, gen)
                    for chunk in params.split(bs):
                        inputs, other = build(xb[j : j + 1], chunk.to(device))
                        pieces.append((j, inputs, other))
                mse_parts: dict[int, list[Tensor]] = {j: [] for j in range(len(xb))}
                agree_parts: dict[int, list[Tensor]] = {j: [] for j in range(len(xb))}
                for group in _batches(pieces, bs):
                    owners = torch.cat([torch.full((len(inp),), j) for j, inp, _ in group])
                    p = probs(torch.cat([inp for _, inp, _ in group]))
                    if group[0][2] is None:
                        q = p0[owners.to(p0.device)]
                    else:
                        q = probs(torch.cat([oth for _, _, oth in group]))
                    mse = (p - q).pow(2).mean(-1).double().cpu()
                    agree = (p.argmax(-1) == q.argmax(-1)).double().cpu()
                    for j in owners.unique().tolist():
                        mse_parts[j].append(mse[owners == j])
                        agree_parts[j].append(agree[owners == j])
                for j in range(len(xb)):
                    i = start + j
                    results[(i, metric)] = _row(
                        image_ids[i] if image_ids is not None else i,
                        metric,
                        torch.cat(mse_parts[j]),
                        torch.cat(agree_parts[j]),
                        valids[j],
                        cfg,
                        None if labels is None else int(labels[i]),
                        int(p0[j].argmax(-1)),
                    )
            if bar is not None:
                bar.update(len(xb))
    if bar is not None:
        bar.close()
    rows = [results[(i, metric)] for i in range(n) for metric in names]
    return to_long(pd.DataFrame(rows), E2E_STATS)


def _batches(pieces: list, size: int) -> list[list]:
    """Group consecutive pieces ``(owner, inputs, other)`` into batches of at most ``size`` samples (at least one)."""
    groups: list[list] = []
    current: list = []
    count = 0
    for piece in pieces:
        if current and count + len(piece[1]) > size:
            groups.append(current)
            current, count = [], 0
        current.append(piece)
        count += len(piece[1])
    if current:
        groups.append(current)
    return groups


def _row(image_id, metric, mse_s, agree, valid, cfg, label, pred0) -> dict[str, Any]:
    """One table row from the per-sample squared changes and top-1 agreements of one image and metric."""
    mse = float(mse_s.mean())
    row: dict[str, Any] = {
        "image": image_id,
        "metric": metric,
        "samples": len(mse_s),
        "mse": mse,
        "mse_sem": float(mse_s.std() / math.sqrt(len(mse_s))) if len(mse_s) > 1 else math.nan,
        "psnr": float(psnr(mse)) if metric.startswith("eq_") and mse > 0 else math.nan,
        "consistency": float(agree.mean()) if metric.startswith("consistency") else math.nan,
        "range": math.nan,
        "mse_scaled": math.nan,
        "valid": float(valid.mean()) if valid is not None else math.nan,
    }
    if metric.startswith("invariance_"):
        r = float(cfg["rotate_range"] if metric.endswith("rotate") else cfg["translate_range"])
        row.update(range=r, mse_scaled=3 * mse / r**2)
    if label is not None:
        row.update(label=label, pred=pred0, correct=pred0 == label)
    return row


@register(
    "baselines",
    defaults=dict(BASELINE_DEFAULTS),
    description="finite/discrete baselines: circular and crop consistency, EQ-T, EQ-T_frac, EQ-R, sampled invariance",
)
def baselines_experiment(model, inputs, labels, image_ids, config, progress=False) -> pd.DataFrame:
    """Runner experiment ``baselines``: :func:`baseline_metrics` with the configuration's metrics and samples."""
    return baseline_metrics(
        model,
        inputs,
        labels=labels,
        image_ids=image_ids,
        metrics=config["metrics"],
        samples=config["samples"],
        config=config,
        progress=progress,
    )


# --------------------------------------------------------------------------------------------------------------
# Layerwise EQ-T / EQ-T_frac
# --------------------------------------------------------------------------------------------------------------


def _as_nchw(h: Tensor, layout: str) -> Tensor | None:
    """The (B, C, H, W) view of a layer tensor, or ``None`` when it is not an image (tokens are not supported)."""
    if layout == "nhwc" and h.dim() == 4:
        return h.permute(0, 3, 1, 2)
    if layout == "auto" and feature_layout(h.shape) == "image":
        return h
    return None


def _from_nchw(h: Tensor, layout: str) -> Tensor:
    return h.permute(0, 2, 3, 1) if layout == "nhwc" else h


def _layer_call(spec) -> Callable[[Tensor], Tensor]:
    """The function of one layer: the module itself, or the norm part of a fused norm + activation module."""
    module = spec.module

    def call(x: Tensor) -> Tensor:
        if spec.split == "norm":
            act = module.act
            module.act = nn.Identity()
            try:
                return module(x)
            finally:
                module.act = act
        return module(x)

    return call


def _shift_op(kind: str, a: int) -> Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]:
    if kind == "eq_t":
        return integer_shift
    return lambda x, dx, dy: lanczos_shift(x, dx, dy, a)


def _erode(mask: Tensor, margin: int) -> Tensor:
    """Erode a (S, H, W) 0/1 mask by ``margin`` pixels (min-pool), counting pixels outside the grid as invalid.

    Outside counts as invalid because content shifted out of the image was seen by the unshifted layer.
    """
    if margin <= 0:
        return mask
    padded = F.pad(mask[:, None], (margin,) * 4, value=0.0)
    return -F.max_pool2d(-padded, 2 * margin + 1, stride=1)[:, 0]


def layerwise_eq(
    model: nn.Module,
    images: Tensor,
    image_ids: Sequence[str] | None = None,
    metrics: str | Sequence[str] = ("eq_t", "eq_t_frac"),
    samples: str | int = "fast",
    t_max: float = 0.125,
    margin: int = 2,
    a: int = 3,
    batch_size: int = 16,
    seed: int = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """Layerwise EQ-T / EQ-T_frac on each layer's cached input ``h`` and output ``g(h)``: one row per
    (image, layer, metric).

    Layers are :func:`lieq.layers.select_layers` (the norm part of a fused norm + activation is the module with its
    activation replaced by the identity).  For a layer whose input is an image on an ``H_in x W_in`` grid and whose
    output is on ``H_out x W_out``, a shift ``t ~ U[-t_max, t_max]^2`` (fraction of the image size) is applied to the
    input as ``(t W_in, t H_in)`` pixels and to the output as ``(t W_out, t H_out)`` pixels; the error is
    ``e = g(shift_in(h)) - shift_out(g(h))``.  EQ-T uses integer shifts drawn on the coarser grid (so that they are
    integral on both grids when the size ratio is an integer; other layers get no EQ-T row); EQ-T_frac uses the
    Lanczos shift on both grids.  Mask: the output-grid validity mask of the output shift, times the input-grid
    validity mask (nearest-resized to the output grid), eroded by ``margin`` output pixels to discount the layer's
    own receptive field at the zero-filled border (pixels outside the grid count as invalid, since content shifted
    out of the image was seen by the unshifted layer).  Layers with an invariant (pooled) output are compared with
    ``g(h)`` unmasked; layers whose input is not an image (tokens, vectors) and layers that are the identity in eval
    mode are skipped; ``nmse`` is NaN where the mask is empty (small grids, e.g. 7 x 7 with Lanczos a = 3).

    Long format (:func:`to_long`): ``image, layer, category, kind, metric, samples, stat, value`` with ``stat``:
    ``mse`` = masked mean of ``e^2`` over channels and pixels (mean over samples), ``nmse`` = ``sum(mask
    e^2) / sum(mask shift_out(g(h))^2)`` (dimensionless, comparable across layers), ``psnr`` = StyleGAN3 PSNR of
    ``mse`` (features are not in [-1, 1], so compare PSNR only within a layer; absent when ``mse`` is 0).
    """
    from .layers import is_identity_in_eval, out_of_place, select_layers

    names = [metrics] if isinstance(metrics, str) and "," not in metrics else metrics
    if isinstance(names, str):
        names = [m.strip() for m in names.split(",")]
    bad = [m for m in names if m not in LAYERWISE_METRICS]
    if bad:
        raise ValueError(f"unknown layerwise metric(s) {', '.join(bad)}; known: {', '.join(LAYERWISE_METRICS)}")
    n_samples = resolve_samples(samples)
    model = model.eval()
    specs = [spec for spec in select_layers(model) if not is_identity_in_eval(spec.module)]
    device = next(iter(model.parameters()), images).device
    rows = []
    items = range(images.shape[0])
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc="layerwise baselines", unit="image", leave=False)
    with out_of_place(model), torch.inference_mode():
        for i in items:
            image_id = image_ids[i] if image_ids is not None else i
            cache: dict[str, Tensor] = {}
            handles = []
            for spec in specs:

                def hook(module, args, _name=spec.name, _cache=cache):
                    if _name not in _cache and args and isinstance(args[0], Tensor):
                        _cache[_name] = args[0].detach().clone()

                handles.append(spec.module.register_forward_pre_hook(hook))
            try:
                model(images[i : i + 1].to(device))
            finally:
                for handle in handles:
                    handle.remove()
            for spec in specs:
                if spec.name not in cache:
                    continue  # never called
                h_in = _as_nchw(cache[spec.name], spec.in_layout)
                if h_in is None:
                    continue
                call = _layer_call(spec)
                try:
                    out = call(cache[spec.name])
                except Exception:  # a layer that needs more than its first argument
                    continue
                if not isinstance(out, Tensor):
                    continue
                g_out = _as_nchw(out, spec.out_layout)
                for metric in names:
                    rows.append(
                        _layer_row(
                            spec,
                            call,
                            h_in,
                            out,
                            g_out,
                            metric,
                            n_samples,
                            t_max,
                            margin,
                            a,
                            batch_size,
                            _generator(seed, "layerwise", metric, spec.name, image_id),
                        )
                        | {"image": image_id}
                    )
    table = pd.DataFrame(rows)
    if not len(table):
        return table
    return to_long(table[["image"] + [c for c in table.columns if c != "image"]], LAYERWISE_STATS)


def _layer_row(spec, call, h_in, out, g_out, metric, n, t_max, margin, a, batch_size, gen) -> dict[str, Any]:
    _, _, hi, wi = h_in.shape
    t = (torch.rand(n, 2, generator=gen, dtype=torch.float64) * 2 - 1) * t_max
    row: dict[str, Any] = {"layer": spec.name, "category": spec.category, "kind": spec.kind, "metric": metric}
    invariant = g_out is None
    ho, wo = (hi, wi) if invariant else g_out.shape[-2:]
    if metric == "eq_t":
        hc, wc = min(hi, ho), min(wi, wo)
        ry_in, rx_in = hi / hc, wi / wc
        ry_out, rx_out = ho / hc, wo / wc
        if any(abs(r - round(r)) > 1e-9 for r in (ry_in, rx_in, ry_out, rx_out)):
            return row | {"samples": 0, "mse": math.nan, "nmse": math.nan, "psnr": math.nan}
        k = (t * torch.tensor([wc, hc], dtype=torch.float64)).round()
        d_in = k * torch.tensor([rx_in, ry_in], dtype=torch.float64)
        d_out = k * torch.tensor([rx_out, ry_out], dtype=torch.float64)
    else:
        d_in = t * torch.tensor([wi, hi], dtype=torch.float64)
        d_out = t * torch.tensor([wo, ho], dtype=torch.float64)
    shift = _shift_op(metric, a)
    dtype, device = h_in.dtype, h_in.device
    num = den = mse_sum = 0.0
    for din, dout in zip(d_in.split(batch_size), d_out.split(batch_size)):
        din, dout = din.to(device, dtype), dout.to(device, dtype)
        xs, m_in = shift(h_in[0], din[:, 0], din[:, 1])  # (S, C, H, W)
        xs = _from_nchw(xs, spec.in_layout)
        ys = call(xs)
        if invariant:
            err = (ys - out.expand_as(ys)).reshape(len(din), -1)
            ref = out.reshape(1, -1).expand_as(err)
            mse_sum += float(err.pow(2).mean(-1).sum())
            num += float(err.pow(2).sum())
            den += float(ref.pow(2).sum())
            continue
        ys = _as_nchw(ys, spec.out_layout)
        target, m_out = shift(g_out[0], dout[:, 0], dout[:, 1])
        m_in_out = F.interpolate(m_in[:, None], size=(ho, wo), mode="nearest")[:, 0]
        mask = _erode(m_out * m_in_out, margin)[:, None]  # (S, 1, H, W)
        err2 = (ys - target).pow(2) * mask
        count = mask.sum((1, 2, 3)) * ys.shape[1]
        mse_sum += float((err2.sum((1, 2, 3)) / count.clamp(min=1)).sum())
        num += float(err2.sum())
        den += float((target.pow(2) * mask).sum())
    mse = mse_sum / n
    return row | {
        "samples": n,
        "mse": mse,
        "nmse": num / den if den > 0 else math.nan,
        "psnr": float(psnr(mse)) if mse > 0 else math.nan,
    }


LAYERWISE_DEFAULTS: dict[str, Any] = {
    "metrics": "eq_t,eq_t_frac",
    "samples": "fast",
    "t_max": 0.125,
    "margin": 2,
    "lanczos_a": 3,
    "batch_size": 16,
    "sample_seed": 0,
}


@register(
    "layerwise-baselines",
    defaults=dict(LAYERWISE_DEFAULTS),
    description="layerwise EQ-T and EQ-T_frac on each layer's cached input and output (masked, normalised)",
)
def layerwise_baselines_experiment(model, inputs, labels, image_ids, config, progress=False) -> pd.DataFrame:
    """Runner experiment ``layerwise-baselines``: :func:`layerwise_eq` with the configuration's settings."""
    return layerwise_eq(
        model,
        inputs,
        image_ids=image_ids,
        metrics=config["metrics"],
        samples=config["samples"],
        t_max=float(config["t_max"]),
        margin=int(config["margin"]),
        a=int(config["lanczos_a"]),
        batch_size=int(config["batch_size"]),
        seed=int(config["sample_seed"]),
        progress=progress,
    )


# --------------------------------------------------------------------------------------------------------------
# Rank correlation with the LEE
# --------------------------------------------------------------------------------------------------------------


def lee_correlations(
    baselines: pd.DataFrame, lee: pd.DataFrame, lee_stat: str = "mean_sq", model_col: str = "model"
) -> pd.DataFrame:
    """Spearman rank correlation between the LEE and each baseline, across images and across models.

    ``baselines``: rows of :func:`baseline_metrics` with a ``model`` column; ``lee``: rows of
    :func:`lieq.metrics.e2e_lee` with a ``model`` column.  Each baseline is paired with the LEE generator in
    :data:`LEE_PARTNER` (``translate`` = mean of ``translate_x`` and ``translate_y``).  The baseline's value is
    ``mse`` for every metric and also ``1 - consistency`` for the consistency metrics, so that for every pairing a
    *positive* correlation means "both call the same inputs less equivariant".

    Returns one row per (baseline, value, scope) with ``scope`` one of ``images:<model>`` (Spearman over that model's
    images), ``images:pooled`` (over all (model, image) pairs), ``images:within`` (mean of the per-model values) and
    ``models`` (over the per-model means; with 3 models only -1, -0.5, 0.5, 1 are possible): columns ``baseline,
    value, lee, scope, rho, p_value, n``.
    """
    import warnings

    from scipy.stats import ConstantInputWarning

    with warnings.catch_warnings():  # a constant column (e.g. consistency 1 everywhere) gives rho = NaN, silently
        warnings.simplefilter("ignore", ConstantInputWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        return _lee_correlations(to_wide(baselines), lee, lee_stat, model_col)


def _lee_correlations(baselines: pd.DataFrame, lee: pd.DataFrame, lee_stat: str, model_col: str) -> pd.DataFrame:
    from scipy.stats import spearmanr

    lee = lee.copy()
    wide = lee.pivot_table(index=[model_col, "image"], columns="generator", values=lee_stat, aggfunc="mean")
    if {"translate_x", "translate_y"} <= set(wide.columns):
        wide["translate"] = (wide["translate_x"] + wide["translate_y"]) / 2
    rows = []
    for (metric, value), table in _baseline_values(baselines, model_col).items():
        partner = LEE_PARTNER[metric]
        if partner not in wide.columns:
            continue
        joined = table.join(wide[partner].rename("lee"), how="inner").dropna()
        if len(joined) < 3:
            continue
        per_model = []
        for model, part in joined.groupby(level=0):
            if len(part) >= 3:
                rho, p = spearmanr(part["value"], part["lee"])
                per_model.append(rho)
                rows.append((metric, value, partner, f"images:{model}", rho, p, len(part)))
        rho, p = spearmanr(joined["value"], joined["lee"])
        rows.append((metric, value, partner, "images:pooled", rho, p, len(joined)))
        if per_model:
            rows.append(
                (metric, value, partner, "images:within", float(np.nanmean(per_model)), math.nan, len(per_model))
            )
        means = joined.groupby(level=0).mean()
        if len(means) >= 2:
            rho, p = spearmanr(means["value"], means["lee"])
            rows.append((metric, value, partner, "models", rho, p, len(means)))
    return pd.DataFrame(rows, columns=["baseline", "value", "lee", "scope", "rho", "p_value", "n"])


def _baseline_values(baselines: pd.DataFrame, model_col: str) -> dict[tuple[str, str], pd.DataFrame]:
    out = {}
    for metric, part in baselines.groupby("metric"):
        if metric not in LEE_PARTNER:
            continue
        part = part.set_index([model_col, "image"])
        out[(metric, "mse")] = part[["mse"]].rename(columns={"mse": "value"})
        if str(metric).startswith("consistency"):
            out[(metric, "1-consistency")] = (1 - part[["consistency"]]).rename(columns={"consistency": "value"})
    return out
