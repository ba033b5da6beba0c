"""Layerwise EQ-T / EQ-T_frac: the StyleGAN3 translation metrics on each layer's own input and output grid.

For a layer ``g`` with cached input ``h`` (:func:`lieq.layers.select_layers`), the equivariance error of a shift
is ``e = g(shift_in(h)) - shift_out(g(h))`` with the shift scaled to each grid (:func:`layerwise_eq`).  Unlike the
end-to-end baselines (:mod:`lieq.baselines`), the validity masks of the shifts matter here: the zero-filled border
and the layer's receptive field at it are discounted.  Sample counts and random streams are those of
:mod:`lieq.baselines` (``samples="fast"``: 4 per image, layer and metric).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .baselines import random_stream, resolve_samples
from .conventions import BASELINE_METRICS, LAYERWISE_BASELINE_STATS, LAYERWISE_METRICS
from .discrete_transforms import integer_shift, lanczos_shift
from .experiments import config_defaults, register
from .image_model import feature_layout
from .layers import norm_part
from .tables import psnr, to_long

__all__ = ["LAYERWISE_DEFAULTS", "LAYERWISE_METRICS", "LAYERWISE_STATS", "layerwise_eq"]

#: Statistics of the layerwise tables (the ``stat`` column of the long format).
LAYERWISE_STATS: tuple[str, ...] = tuple(LAYERWISE_BASELINE_STATS)


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
        return norm_part(module, x) if spec.split == "norm" else module(x)

    return call


def _shift_op(metric: str, a: int) -> Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]:
    """Integer shifts for a discrete metric (EQ-T), Lanczos shifts for a finite one (EQ-T_frac)."""
    if BASELINE_METRICS[metric].transformation == "discrete":
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
                            random_stream(seed, "layerwise", metric, spec.name, image_id),
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
    if BASELINE_METRICS[metric].transformation == "discrete":  # EQ-T: integer shifts on both grids
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


@register(
    "layerwise-baselines",
    description="layerwise EQ-T and EQ-T_frac on each layer's cached input and output (masked, normalised)",
)
def layerwise_baselines_experiment(
    model,
    inputs,
    labels,
    image_ids,
    *,
    metrics: str = "eq_t,eq_t_frac",
    samples: str | int = "fast",
    t_max: float = 0.125,
    margin: int = 2,
    lanczos_a: int = 3,
    batch_size: int = 16,
    sample_seed: int = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """Runner experiment ``layerwise-baselines``: :func:`layerwise_eq` with the configuration's settings."""
    return layerwise_eq(
        model,
        inputs,
        image_ids=image_ids,
        metrics=metrics,
        samples=samples,
        t_max=float(t_max),
        margin=int(margin),
        a=int(lanczos_a),
        batch_size=int(batch_size),
        seed=int(sample_seed),
        progress=progress,
    )


#: The settings of the ``layerwise-baselines`` experiment and their defaults.
LAYERWISE_DEFAULTS: dict[str, Any] = config_defaults(layerwise_baselines_experiment)
