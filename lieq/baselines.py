"""End-to-end finite and discrete equivariance baselines of classifiers (docs/conventions.md section 6).

The paper compares the Lie derivative with the metrics used before it.  Here they are computed on the same models,
images and store.  ``p(x) = softmax(f(x))`` is the classifier's probability vector over ``K`` classes; a classifier
is treated as *invariant*, so every end-to-end metric compares ``p`` of a transformed input with ``p`` of the
untransformed (or of another transformed) input.  Tables are in long format (one row per image, metric and ``stat``,
with a finite ``value``; :func:`lieq.tables.to_wide` pivots them back and :func:`lieq.tables.lee_correlations`
rank-correlates them with the LEE); the statistics are:

``mse``
    ``E_s[(1/K) sum_k (p_k(T_s x) - p_k(x))^2]``, the mean over samples ``s`` of the mean over classes of the squared
    change of the softmax output (the original code's statistic for every baseline).
``psnr``
    StyleGAN3's ``20 log10(2) - 10 log10(mse)`` (dB) for the EQ-* metrics (NaN for the others).
``consistency``
    fraction of samples whose top-1 class agrees (consistency metrics only).

End-to-end metrics (``metric`` column; their properties are :data:`lieq.conventions.BASELINE_METRICS`; ``x`` is
the width axis = last tensor axis, ``y`` the height axis; the resamplers are :mod:`lieq.discrete_transforms`):

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
The masks matter in the layerwise versions (:func:`lieq.layerwise_baselines.layerwise_eq`), which compare
``layer(shift(h))`` with ``shift(layer(h))`` on the layer's own grid.

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

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .conventions import BASELINE_METRICS, E2E_BASELINE_STATS, E2E_METRICS, LEE_PARTNER
from .discrete_transforms import bandlimited_rotate, integer_shift, lanczos_shift, random_crops
from .experiments import config_defaults, register
from .image_model import transform
from .tables import psnr, to_long

__all__ = [
    "BASELINE_DEFAULTS",
    "E2E_METRICS",
    "E2E_STATS",
    "LEE_PARTNER",
    "SAMPLE_SETTINGS",
    "baseline_metrics",
    "random_stream",
    "resolve_samples",
]

#: Named sample settings: (samples per repeat, repeats).  ``default`` is the original's 10 x 20 per image.
SAMPLE_SETTINGS: dict[str, tuple[int, int]] = {"default": (10, 20), "fast": (4, 1)}
MAX_CIRCULAR_SHIFT = 7
#: Statistics of the end-to-end tables (the ``stat`` column of the long format).
E2E_STATS: tuple[str, ...] = tuple(E2E_BASELINE_STATS)


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


def random_stream(seed: int, *keys: object) -> torch.Generator:
    """A CPU random stream determined by the seed and the keys (metric, image id)."""
    text = ":".join(str(k) for k in (seed, *keys))
    return torch.Generator().manual_seed(zlib.crc32(text.encode()))


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
    if metric not in BASELINE_METRICS:
        raise ValueError(f"unknown metric {metric!r}; known: {', '.join(E2E_METRICS)}")
    spec = BASELINE_METRICS[metric]
    h, w = shape[-2:]
    if spec.family == "circular":
        params = torch.arange(1, MAX_CIRCULAR_SHIFT + 1, dtype=torch.float64)
        dim = -1 if metric == "consistency_x" else -2

        def build(x, p):
            return torch.stack([torch.roll(x[0], int(k), dims=dim) for k in p]), None

        return params, build, None
    if spec.family == "crop":
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
            return random_crops(big, p[:, 0], p[:, 1], h, w), random_crops(big, p[:, 2], p[:, 3], h, w)

        return params, build, None
    if spec.family == "shift":
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
    if spec.family == "rotation":
        angles = (torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1) * math.pi
        up, a = int(config.get("rotate_upsample", 4)), int(config.get("lanczos_a", 3))

        def build(x, p):
            out, _ = bandlimited_rotate(x, p, up, a)
            return out[:, 0], None

        return angles, build, None
    if spec.family == "invariance":
        gen_name = spec.generator
        r = float(config[spec.range_option])
        t = (torch.rand(n, generator=gen, dtype=torch.float64) * 2 - 1) * r
        model_name = config.get("image_model", "bilinear")
        return t, (lambda x, p: (transform(x, gen_name, p, model_name)[:, 0], None)), None
    raise ValueError(f"metric {metric!r} has a sampling family {spec.family!r} without a plan")


def _resolve_metrics(metrics: str | Sequence[str]) -> list[str]:
    if metrics in ("all", None):
        return list(E2E_METRICS)
    names = [m.strip() for m in metrics.split(",") if m.strip()] if isinstance(metrics, str) else list(metrics)
    unknown = [m for m in names if m not in E2E_METRICS]
    if unknown or not names:
        raise ValueError(f"unknown metric(s) {', '.join(unknown) or '(none)'}; known: {', '.join(E2E_METRICS)}")
    return names


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

    def probs(x: Tensor) -> Tensor:
        logits = model(x)  # low-precision logits are upcast to float32 for the softmax; float64 stays float64
        return torch.softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1)

    # Images are processed in blocks so that one forward pass holds about ``batch_size`` samples: with many samples
    # per image a block is one image and its samples are chunked; with few, the samples of several images share a pass.
    per_image = max([n_samples] + [MAX_CIRCULAR_SHIFT for m in names if BASELINE_METRICS[m].family == "circular"])
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
                    gen = random_stream(cfg["sample_seed"], metric, image_id)
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
    spec = BASELINE_METRICS[metric]
    mse = float(mse_s.mean())
    row: dict[str, Any] = {
        "image": image_id,
        "metric": metric,
        "samples": len(mse_s),
        "mse": mse,
        "mse_sem": float(mse_s.std() / math.sqrt(len(mse_s))) if len(mse_s) > 1 else math.nan,
        "psnr": float(psnr(mse)) if spec.psnr and mse > 0 else math.nan,
        "consistency": float(agree.mean()) if spec.consistency else math.nan,
        "range": math.nan,
        "mse_scaled": math.nan,
        "valid": float(valid.mean()) if valid is not None else math.nan,
    }
    if spec.range_option is not None:
        r = float(cfg[spec.range_option])
        row.update(range=r, mse_scaled=3 * mse / r**2)
    if label is not None:
        row.update(label=label, pred=pred0, correct=pred0 == label)
    return row


@register(
    "baselines",
    description="finite/discrete baselines: circular and crop consistency, EQ-T, EQ-T_frac, EQ-R, sampled invariance",
)
def baselines_experiment(
    model,
    inputs,
    labels,
    image_ids,
    *,
    metrics: str = "all",
    samples: str | int = "default",
    eq_t_max: float = 0.125,
    lanczos_a: int = 3,
    rotate_upsample: int = 4,
    crop_ratio: float = 256 / 224,
    translate_range: float = 1 / 32,
    rotate_range: float = math.pi / 32,
    image_model: str = "bilinear",
    batch_size: int = 50,
    sample_seed: int = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """Runner experiment ``baselines``: :func:`baseline_metrics` with the configuration's metrics and samples.

    Its keyword parameters are the baselines' settings and their defaults (:data:`BASELINE_DEFAULTS`).
    """
    config = dict(eq_t_max=eq_t_max, lanczos_a=lanczos_a, rotate_upsample=rotate_upsample, crop_ratio=crop_ratio,
                  translate_range=translate_range, rotate_range=rotate_range, image_model=image_model,
                  batch_size=batch_size, sample_seed=sample_seed)  # fmt: skip
    return baseline_metrics(
        model, inputs, labels=labels, image_ids=image_ids, metrics=metrics, samples=samples, config=config,
        progress=progress,
    )  # fmt: skip


#: The baselines' settings and their defaults: the configuration of the ``baselines`` experiment.
BASELINE_DEFAULTS: dict[str, Any] = config_defaults(baselines_experiment)
