"""Aliasing: band-limited test signals, the Lie derivative of single layers vs frequency, and whole-network studies.

The paper explains most equivariance violations by spatial aliasing in pointwise non-linearities and downsampling.
This module makes that measurable.

Signals (all even-symmetric about the edge pixel centres, i.e. consistent with the reflection of the image models,
so that the continuous image has no kink at the border):

* :func:`dct_signal` -- products of DCT-I modes ``cos(pi k i / (N - 1)) cos(pi l j / (N - 1))`` with radial index
  ``r = sqrt(k^2 + l^2) ~ frac (N - 1)``: a 2-D sinusoid at ``frac`` of the Nyquist frequency (``frac = 1`` is
  Nyquist, 0.5 cycles per pixel), one random orientation per channel, scaled to unit RMS;
* :func:`lowpass` -- an ideal radial low-pass of the mirror-extended image (period ``2 (N - 1)``) keeping
  frequencies up to ``frac`` of Nyquist (used on natural images and, in :func:`input_smoothness`, on network inputs).

Single layers (:data:`LAYERS`, :func:`layer_lie_error`).  For a layer ``f`` mapping images to images the layer's
own Lie derivative is ``L f(x) = J_f(x) v_in - v_out(f(x))`` (:func:`lieq.engine.lie_derivative` with
``output="equivariant"``; ``v = d/dt T(t) . |_{t=0}`` in each grid's own normalised coordinates, so downsampling
layers are handled).  Reported: ``rms_err = sqrt(mean L^2)``, ``rms_ref = sqrt(mean (J_f v_in)^2)`` (the size of
the output's derivative) and ``rel = rms_err / rms_ref``, per unit of the generator parameter (half image widths,
radians), over output pixels at least one pixel from the border (padding is not aliasing).  With unit-RMS inputs
``rms_err`` compares layers; ``rel`` hides the attenuation of a low-pass filter (a filtered sinusoid keeps its
relative error).  Convolutions have random mirror-symmetric kernels; they and the pools pad by reflection, and
stride-2 layers are built so that output pixel ``j`` sits at input pixel ``2 j`` on odd-sized inputs: then the grids
align exactly in the align_corners convention and a linear shift-invariant layer is not penalised for its geometry,
only for aliasing.  The patch embedding (``k = s = 4``) cannot be aligned this way; its value includes a grid-offset
term.

Mechanism (:func:`nonlinearity_spectra`): the power spectrum of ``sigma(x)`` on the pixel grid vs that of
``sigma`` applied to the same signal sampled 8 times finer (the continuous signal): the continuous power above the
grid's Nyquist frequency is what folds back (aliases) below it on the grid.

Whole networks: :func:`input_smoothness` (end-to-end LEE as inputs are low-passed), :func:`image_model_audit`
(end-to-end LEE under several image models), :data:`BLURPOOL_PAIRS` (anti-aliased timm architectures and their
plain counterparts).

Runner experiments (``lieq sweep <name>`` / :func:`lieq.runner.run_sweep`, the only route to the store):
``single-layers``, ``spectra`` and ``spectra-summary`` (model-free: stored under the pseudo-models ``single-layers``
and ``nonlinearities``), ``input-smoothness``, ``layerwise-smoothness``, ``blurpool``, ``image-model-audit`` and
``layerwise-image-model-audit`` (timm models).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .engine import lie_derivative
from .experiments import register
from .image_model import lie_action

__all__ = [
    "BLURPOOL_PAIRS",
    "LAYERS",
    "dct_signal",
    "image_model_audit",
    "input_smoothness",
    "layer_lie_error",
    "layer_study",
    "lowpass",
    "make_layer",
    "mirror_extend",
    "nonlinearity_spectra",
    "rank_correlations",
    "square_images",
]

#: Image models compared by the audit (the paper's, both one-sided variants, Catmull-Rom and band-limited).
AUDIT_IMAGE_MODELS: tuple[str, ...] = ("bilinear", "bilinear_forward", "bilinear_backward", "central", "fourier")

#: Anti-aliased (BlurPool) timm architectures and their plain counterparts.
BLURPOOL_PAIRS: dict[str, str] = {
    "resnetblur18": "resnet18",
    "resnetblur50": "resnet50",
    "densenetblur121d": "densenet121",
    "efficientnet_blur_b0": "efficientnet_b0",
    "mobilenetv4_conv_blur_medium": "mobilenetv4_conv_medium",
}


# --------------------------------------------------------------------------------------------------------------
# Band-limited signals
# --------------------------------------------------------------------------------------------------------------


def mirror_extend(x: Tensor) -> Tensor:
    """Even extension about the edge pixel centres along the last two axes: ``(..., 2 (H - 1), 2 (W - 1))``."""
    x = torch.cat([x, x[..., 1:-1].flip(-1)], dim=-1)
    return torch.cat([x, x[..., 1:-1, :].flip(-2)], dim=-2)


def lowpass(x: Tensor, frac: float) -> Tensor:
    """Ideal radial low-pass of the mirror-extended image keeping frequencies ``<= frac`` of Nyquist.

    ``x``: ``(..., H, W)``.  Frequencies are radial, ``sqrt(fx^2 + fy^2) / 0.5`` cycles per pixel; ``frac >= sqrt(2)``
    is the identity, ``frac = 0`` keeps the mean.  The result is even-symmetric (the image models' reflection).
    """
    if frac < 0:
        raise ValueError(f"frac must be >= 0, got {frac}")
    h, w = x.shape[-2:]
    ext = mirror_extend(x)
    fy = torch.fft.fftfreq(ext.shape[-2], dtype=x.dtype, device=x.device)[:, None]
    fx = torch.fft.fftfreq(ext.shape[-1], dtype=x.dtype, device=x.device)[None, :]
    keep = (fx**2 + fy**2).sqrt() <= 0.5 * frac + 1e-9
    out = torch.fft.ifft2(torch.fft.fft2(ext) * keep).real
    return out[..., :h, :w].contiguous()


def dct_signal(size: int, frac: float, channels: int = 1, batch: int = 1, seed: int = 0) -> Tensor:
    """2-D sinusoids (DCT-I modes) at ``frac`` of Nyquist: ``(batch, channels, size, size)``, unit RMS per channel.

    Each (image, channel) gets a random orientation ``theta in [0, pi/2]`` and the mode ``(k, l) = round(r cos
    theta), round(r sin theta)`` with ``r = frac (size - 1)`` (clipped to the grid), times a random sign.
    """
    if not 0 < frac <= 1:
        raise ValueError(f"frac must be in (0, 1], got {frac}")
    gen = torch.Generator().manual_seed(seed)
    n = size - 1
    i = torch.arange(size, dtype=torch.float64)
    out = torch.empty(batch, channels, size, size, dtype=torch.float64)
    for b in range(batch):
        for c in range(channels):
            theta = float(torch.rand(1, generator=gen)) * math.pi / 2
            k = min(n, round(frac * n * math.cos(theta)))
            l = min(n, round(frac * n * math.sin(theta)))
            sign = 1.0 if float(torch.rand(1, generator=gen)) < 0.5 else -1.0
            s = torch.cos(math.pi * l * i / n)[:, None] * torch.cos(math.pi * k * i / n)[None, :]
            out[b, c] = sign * s / s.pow(2).mean().sqrt()
    return out.float()


def natural_signal(images: Tensor, frac: float) -> Tensor:
    """Natural images low-passed to ``frac`` of Nyquist and standardised to zero mean, unit RMS per channel."""
    x = lowpass(images.double(), frac)
    x = x - x.mean(dim=(-2, -1), keepdim=True)
    return (x / x.pow(2).mean(dim=(-2, -1), keepdim=True).sqrt().clamp_min(1e-12)).float()


def square_images(images: Sequence, size: int = 65) -> Tensor:
    """PIL images centre-cropped square and resized (bicubic) to ``size``: ``(n, 3, S, S)`` in [0, 1]."""
    from PIL import Image

    arrays = []
    for im in images:
        im = im.convert("RGB")
        side = min(im.size)
        left, top = (im.size[0] - side) // 2, (im.size[1] - side) // 2
        im = im.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.BICUBIC)
        arrays.append(np.asarray(im, dtype=np.float32) / 255)
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def load_natural_images(folder: str | Path, n: int = 4, size: int = 65, seed: int = 0) -> tuple[Tensor, list[str]]:
    """``n`` images of an ImageNet-style folder, centre-cropped square and resized to ``size``: ``(n, 3, S, S)``."""
    from .data import load_image_folder

    found = load_image_folder(folder, n, seed)
    return square_images(found.images, size), found.ids


# --------------------------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------------------------


class _Pad(nn.Module):
    """Reflection padding by ``p`` pixels, then ``inner``."""

    def __init__(self, p: int, inner: nn.Module) -> None:
        super().__init__()
        self.p, self.inner = p, inner

    def forward(self, x: Tensor) -> Tensor:
        return self.inner(F.pad(x, (self.p,) * 4, mode="reflect"))


class _Subsample(nn.Module):
    """Plain stride-2 subsampling ``x[:, :, ::2, ::2]`` (no filter)."""

    def forward(self, x: Tensor) -> Tensor:
        return x[:, :, ::2, ::2]


def _blurpool(channels: int) -> nn.Module:
    from timm.layers import BlurPool2d

    return BlurPool2d(channels, filt_size=3, stride=2)  # binomial [1, 2, 1] / 4, reflect padding, stride 2


def _conv(c_in: int, c_out: int, k: int, stride: int, seed: int) -> nn.Conv2d:
    """Random convolution with mirror-symmetric kernels (so that even-symmetric inputs give even-symmetric outputs)."""
    torch.manual_seed(seed)
    conv = nn.Conv2d(c_in, c_out, k, stride, k // 2 if stride < k else 0, padding_mode="reflect")
    with torch.no_grad():
        w = conv.weight
        w.copy_((w + w.flip(-1) + w.flip(-2) + w.flip(-1, -2)) / 4)
    return conv


def _builders() -> dict[str, tuple[str, Callable[[int, int], nn.Module]]]:
    from timm.layers import LayerNorm2d

    return {
        "linear_pointwise": ("zero control", lambda c, s: _conv(c, c, 1, 1, s)),
        "relu": ("pointwise", lambda c, s: nn.ReLU()),
        "gelu": ("pointwise", lambda c, s: nn.GELU()),
        "silu": ("pointwise", lambda c, s: nn.SiLU()),
        "tanh": ("pointwise", lambda c, s: nn.Tanh()),
        "layernorm_channels": ("pointwise", lambda c, s: LayerNorm2d(c)),
        "subsample": ("downsampling", lambda c, s: _Subsample()),
        "blurpool": ("anti-aliased", lambda c, s: _blurpool(c)),
        "maxpool": ("downsampling", lambda c, s: nn.MaxPool2d(3, 2, 1)),
        "max_blurpool": ("anti-aliased", lambda c, s: nn.Sequential(nn.MaxPool2d(3, 1, 1), _blurpool(c))),
        "avgpool": ("downsampling", lambda c, s: _Pad(1, nn.AvgPool2d(3, 2))),
        "strided_conv": ("downsampling", lambda c, s: _conv(c, c, 3, 2, s)),
        "conv_blurpool": ("anti-aliased", lambda c, s: nn.Sequential(_conv(c, c, 3, 1, s), _blurpool(c))),
        "patch_embed": ("downsampling", lambda c, s: _conv(c, 2 * c, 4, 4, s)),
    }


#: Layer names of the single-layer study and their kind (``zero control``, ``pointwise``, ``downsampling``,
#: ``anti-aliased``).  Anti-aliased counterparts: blurpool vs subsample, max_blurpool vs maxpool, conv_blurpool vs
#: strided_conv (Zhang 2019's BlurPool constructions).
LAYERS: dict[str, str] = {
    "linear_pointwise": "zero control",
    "relu": "pointwise",
    "gelu": "pointwise",
    "silu": "pointwise",
    "tanh": "pointwise",
    "layernorm_channels": "pointwise",
    "subsample": "downsampling",
    "blurpool": "anti-aliased",
    "maxpool": "downsampling",
    "max_blurpool": "anti-aliased",
    "avgpool": "downsampling",
    "strided_conv": "downsampling",
    "conv_blurpool": "anti-aliased",
    "patch_embed": "downsampling",
}


def make_layer(name: str, channels: int = 8, seed: int = 0) -> nn.Module:
    """A layer of :data:`LAYERS` for ``channels`` input channels (random weights seeded by ``seed``), eval mode."""
    builders = _builders()
    if name not in builders:
        raise ValueError(f"unknown layer {name!r}; known: {', '.join(builders)}")
    return builders[name][1](channels, seed).eval()


def layer_lie_error(
    layer: nn.Module | Callable[[Tensor], Tensor],
    x: Tensor,
    generators: str | Sequence[str] = ("translate_x", "rotate"),
    image_model: str = "bilinear",
    margin: int = 1,
) -> pd.DataFrame:
    """The layer's own Lie derivative on ``x``: one row per (image, generator) with rms_err, rms_ref and rel.

    ``L f(x) = J_f(x) v_in - v_out(f(x))`` (module docstring); ``rms_ref`` is the RMS of ``J_f(x) v_in``.  Both are
    taken over the output pixels at least ``margin`` pixels from the border: padding (even by reflection) breaks
    equivariance in the outermost output pixels, which is a boundary effect, not aliasing.
    """
    gens = [generators] if isinstance(generators, str) else list(generators)
    with torch.no_grad():
        lie = lie_derivative(layer, x, gens, output="equivariant", image_model=image_model)
        y = layer(x)
        ref = lie + lie_action(y, gens, image_model)
    if margin:
        lie, ref = lie[..., margin:-margin, margin:-margin], ref[..., margin:-margin, margin:-margin]
    err = lie.pow(2).flatten(2).mean(-1).sqrt()
    size = ref.pow(2).flatten(2).mean(-1).sqrt()
    rows = []
    for g, name in enumerate(gens):
        for b in range(x.shape[0]):
            e, r = float(err[g, b]), float(size[g, b])
            rows.append({"image": b, "generator": name, "rms_err": e, "rms_ref": r, "rel": e / r if r > 0 else 0.0})
    return pd.DataFrame(rows)


DEFAULT_FRACS: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.9, 1.0)


def layer_study(
    layers: Sequence[str] | None = None,
    fracs: Sequence[float] = DEFAULT_FRACS,
    image_models: Sequence[str] = ("bilinear", "central", "fourier"),
    generators: Sequence[str] = ("translate_x", "rotate"),
    size: int = 65,
    channels: int = 8,
    batch: int = 4,
    natural: Tensor | None = None,
    seed: int = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """Lie derivative of each layer vs input frequency (section 1 of the aliasing study).

    Signals: ``sinusoid`` (:func:`dct_signal`, ``batch`` images of ``channels`` channels) and, if ``natural`` images
    ``(N, 3, size, size)`` are given, ``natural`` (:func:`natural_signal`, channels tiled to ``channels``).  Rows:
    layer, kind, signal, frac, image_model, generator, image, rms_err, rms_ref, rel.
    """
    names = list(layers or LAYERS)
    jobs = [(name, frac, im) for name in names for frac in fracs for im in image_models]
    if progress:
        from tqdm.auto import tqdm

        jobs = tqdm(jobs, desc="layers x frequencies", leave=False)
    signals: dict[tuple[str, float], Tensor] = {}
    for frac in fracs:
        signals["sinusoid", frac] = dct_signal(size, frac, channels, batch, seed)
        if natural is not None:
            nat = natural_signal(natural, frac)
            reps = math.ceil(channels / nat.shape[1])
            signals["natural", frac] = nat.repeat(1, reps, 1, 1)[:, :channels]
    rows = []
    for name, frac, im in jobs:
        layer = make_layer(name, channels, seed)
        for kind in ("sinusoid", "natural"):
            if (kind, frac) not in signals:
                continue
            table = layer_lie_error(layer, signals[kind, frac], generators, im)
            rows.append(table.assign(layer=name, kind=LAYERS[name], signal=kind, frac=frac, image_model=im))
    cols = ["layer", "kind", "signal", "frac", "image_model", "generator", "image", "rms_err", "rms_ref", "rel"]
    return pd.concat(rows, ignore_index=True)[cols]


# --------------------------------------------------------------------------------------------------------------
# Mechanism: spectra on the grid vs of the continuous signal
# --------------------------------------------------------------------------------------------------------------

NONLINEARITIES: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,
    "silu": F.silu,
    "tanh": torch.tanh,
}


def _power_spectrum(signal: Tensor) -> Tensor:
    """Power per frequency bin of a 1-D signal's even extension (bins 0 .. Nyquist, DC removed)."""
    ext = torch.cat([signal, signal[1:-1].flip(0)])
    p = torch.fft.rfft(ext).abs().pow(2) / ext.numel() ** 2
    p[0] = 0.0
    return p


def nonlinearity_spectra(
    fracs: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9),
    size: int = 65,
    oversample: int = 8,
    nonlinearities: Sequence[str] = tuple(NONLINEARITIES),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Spectrum of ``sigma(cos)`` on the grid vs of ``sigma`` applied to the continuous cosine (1-D, along x).

    The input is ``sqrt(2) cos(pi k i / (N - 1))`` (unit RMS) with ``k = round(frac (N - 1))``, on the grid and on a
    grid ``oversample`` times finer (same extent).  Returns ``(spectra, summary)``: ``spectra`` has one row per
    (nonlinearity, frac, bin) with ``freq`` (fraction of the grid's Nyquist), ``power_grid`` (bins up to 1) and
    ``power_continuous`` (bins up to ``oversample``); ``summary`` has per (nonlinearity, frac) the continuous power
    above the grid's Nyquist (``aliased_power``, it folds back on the grid), its fraction of the non-DC power
    (``aliased_fraction``) and the grid spectrum's error against the continuous spectrum restricted below Nyquist
    (``fold_error``: total absolute difference, which equals what aliasing added or moved).
    """
    n = size - 1
    spectra, summary = [], []
    for name in nonlinearities:
        sigma = NONLINEARITIES[name]
        for frac in fracs:
            k = max(1, min(n, round(frac * n)))
            coarse = math.sqrt(2) * torch.cos(math.pi * k * torch.arange(size, dtype=torch.float64) / n)
            fine = math.sqrt(2) * torch.cos(
                math.pi * k * torch.arange(n * oversample + 1, dtype=torch.float64) / (n * oversample)
            )
            pg, pc = _power_spectrum(sigma(coarse)), _power_spectrum(sigma(fine))
            freq_c = torch.arange(pc.numel(), dtype=torch.float64) / n
            for b in range(pc.numel()):
                row = {"nonlinearity": name, "frac": k / n, "freq": float(freq_c[b]), "power_continuous": float(pc[b])}
                row["power_grid"] = float(pg[b]) if b < pg.numel() else float("nan")
                spectra.append(row)
            total = float(pc.sum())
            above = float(pc[n + 1 :].sum())
            summary.append(
                {
                    "nonlinearity": name,
                    "frac": k / n,
                    "aliased_power": above,
                    "aliased_fraction": above / total if total > 0 else 0.0,
                    "fold_error": float((pg - pc[: n + 1]).abs().sum()),
                }
            )
    return pd.DataFrame(spectra), pd.DataFrame(summary)


# --------------------------------------------------------------------------------------------------------------
# Whole networks
# --------------------------------------------------------------------------------------------------------------


def input_smoothness(
    model: nn.Module,
    inputs: Tensor,
    image_ids: Sequence[str],
    labels: Sequence[int] | Tensor | None = None,
    fracs: Sequence[float] = (1.5, 0.75, 0.5, 0.25),
    generators: Sequence[str] = ("translate_x", "rotate"),
    image_model: str = "bilinear",
    batch_size: int = 4,
    progress: bool = False,
) -> pd.DataFrame:
    """End-to-end LEE as the (preprocessed) inputs are low-passed to ``frac`` of Nyquist (``>= sqrt 2``: unfiltered).

    Low-pass filtering commutes with the per-channel normalisation, so it is applied to the model's inputs.  Rows as
    :func:`lieq.metrics.e2e_lee` plus ``lowpass``.
    """
    from .metrics import e2e_lee

    rows = []
    for frac in fracs:
        x = inputs if frac >= math.sqrt(2) else lowpass(inputs, frac)
        table = e2e_lee(model, x, labels, list(generators), image_model, batch_size=batch_size, image_ids=image_ids)
        rows.append(table.assign(lowpass=float(frac)))
        if progress:
            print(f"  lowpass {frac}: translate mean_abs {table.mean_abs.mean():.4g}", flush=True)
    return pd.concat(rows, ignore_index=True)


def image_model_audit(
    model: nn.Module,
    inputs: Tensor,
    image_ids: Sequence[str],
    labels: Sequence[int] | Tensor | None = None,
    image_models: Sequence[str] = AUDIT_IMAGE_MODELS,
    generators: Sequence[str] | str = ("translate_x", "rotate"),
    batch_size: int = 4,
) -> pd.DataFrame:
    """End-to-end LEE of one model under each image model: rows as :func:`lieq.metrics.e2e_lee`."""
    from .metrics import e2e_lee

    gens = [generators] if isinstance(generators, str) and "," not in generators else generators
    tables = [
        e2e_lee(model, inputs, labels, gens, im, batch_size=batch_size, image_ids=image_ids) for im in image_models
    ]
    return pd.concat(tables, ignore_index=True)


def rank_correlations(table: pd.DataFrame, value: str = "mean_abs", generator: str = "translate_x") -> pd.DataFrame:
    """Spearman rank correlation, across models, of the mean LEE under each pair of image models.

    ``table``: rows of :func:`image_model_audit` for several models (a ``model`` column).  Returns a square frame
    indexed by image model.
    """
    sub = table[table.generator == generator]
    means = sub.groupby(["model", "image_model"])[value].mean().unstack("image_model")
    return means.corr(method="spearman")


def _names(value: str) -> list[str]:
    """A comma-separated configuration value as a list of names."""
    return [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else list(value)


def _floats(value: str) -> list[float]:
    return [float(v) for v in _names(value)]


# --------------------------------------------------------------------------------------------------------------
# Runner experiments (``lieq sweep <name>``; run ``aliasing`` / ``image-model`` in notebooks/04_aliasing)
# --------------------------------------------------------------------------------------------------------------


@register("single-layers", models="single-layers")
def single_layers_experiment(
    images,
    seed: int = 0,
    *,
    layers: str = "all",
    fracs: str = ",".join(f"{f:g}" for f in DEFAULT_FRACS),
    image_models: str = "bilinear,central,fourier",
    generators: str = "translate_x,rotate",
    size: int = 33,
    channels: int = 16,
    batch: int = 2,
    progress: bool = False,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Each single layer's own Lie derivative vs input frequency (:func:`layer_study`; model-free).

    Signals: ``batch`` DCT-mode sinusoids and the sweep's images (centre-cropped, resized to ``size``,
    :func:`natural_signal`); layer weights are random, seeded by the sweep's ``seed``.  ``layers``: ``all`` or
    comma-separated names of :data:`LAYERS`.
    """
    natural = square_images(images.images, size) if images is not None and len(images) else None
    table = layer_study(
        None if layers == "all" else _names(layers),
        _floats(fracs),
        _names(image_models),
        _names(generators),
        size=size,
        channels=channels,
        batch=batch,
        natural=natural,
        seed=seed,
        progress=progress,
    )
    source = f"dct-modes+{images.source}" if natural is not None else "dct-modes"
    return table, {"weights": f"random:seed={seed}", "data": source}


def _spectra(fracs: str, size: int, oversample: int, nonlinearities: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    return nonlinearity_spectra(_floats(fracs), size, oversample, _names(nonlinearities))


@register("spectra", models="nonlinearities")
def spectra_experiment(
    *,
    fracs: str = "0.1,0.3,0.5,0.7,0.9",
    size: int = 65,
    oversample: int = 8,
    nonlinearities: str = "relu,gelu,silu,tanh",
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Power spectra of each non-linearity of a cosine on the grid vs on the continuous signal (model-free;
    :func:`nonlinearity_spectra`, the ``spectra`` table)."""
    return _spectra(fracs, size, oversample, nonlinearities)[0], {"data": "dct-modes"}


@register("spectra-summary", models="nonlinearities")
def spectra_summary_experiment(
    *,
    fracs: str = "0.1,0.3,0.5,0.7,0.9",
    size: int = 65,
    oversample: int = 8,
    nonlinearities: str = "relu,gelu,silu,tanh",
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Aliased power per non-linearity and frequency (model-free; :func:`nonlinearity_spectra`, the ``summary``
    table)."""
    return _spectra(fracs, size, oversample, nonlinearities)[1], {"data": "dct-modes"}


@register("input-smoothness")
def input_smoothness_experiment(
    model,
    inputs,
    labels,
    image_ids,
    *,
    fracs: str = "1.5,0.75,0.5,0.25",
    generators: str = "translate_x,rotate",
    image_model: str = "bilinear",
    batch_size: int = 4,
    progress: bool = False,
) -> pd.DataFrame:
    """End-to-end LEE vs low-pass filtering of the inputs (fraction of Nyquist; >= 1.42 = unfiltered)."""
    return input_smoothness(
        model, inputs, image_ids, labels, _floats(fracs), _names(generators), image_model, batch_size, progress
    )


@register("layerwise-smoothness")
def layerwise_smoothness_experiment(
    model,
    inputs,
    image_ids,
    seed: int = 0,
    *,
    fracs: str = "1.5,0.5,0.25",
    generator: str = "translate_x",
    image_model: str = "bilinear",
    probes: int = 20,
    progress: bool = False,
) -> pd.DataFrame:
    """Layerwise attribution (:func:`lieq.attribution.layerwise`, probes seeded by the sweep's seed) vs low-pass
    filtering of the inputs."""
    from .attribution import layerwise

    rows = []
    for frac in _floats(fracs):
        x = inputs if frac >= math.sqrt(2) else lowpass(inputs, frac)
        table = layerwise(model, x, generator, int(probes), image_model, image_ids=image_ids, seed=seed)
        rows.append(table.assign(lowpass=frac))
    return pd.concat(rows, ignore_index=True)


@register("blurpool")
def blurpool_experiment(
    model,
    inputs,
    labels,
    image_ids,
    model_name: str = "",
    *,
    image_models: str = "bilinear,central",
    generators: str = "translate_x,rotate",
    batch_size: int = 4,
    progress: bool = False,
) -> pd.DataFrame:
    """End-to-end LEE of a BlurPool architecture or its plain counterpart (:data:`BLURPOOL_PAIRS`) under several
    image models; columns ``blurpool`` (anti-aliased or not) and ``pair`` (the BlurPool architecture of the pair)."""
    arch = model_name.split(".")[0]
    plain_of = {plain: blur for blur, plain in BLURPOOL_PAIRS.items()}
    if arch not in BLURPOOL_PAIRS and arch not in plain_of:
        raise ValueError(f"{model_name!r} is not an architecture of BLURPOOL_PAIRS ({', '.join(BLURPOOL_PAIRS)}, ...)")
    table = image_model_audit(model, inputs, image_ids, labels, _names(image_models), _names(generators), batch_size)
    blur = arch in BLURPOOL_PAIRS
    return table.assign(blurpool=blur, pair=arch if blur else plain_of[arch])


@register("image-model-audit")
def image_model_audit_experiment(
    model,
    inputs,
    labels,
    image_ids,
    *,
    image_models: str = ",".join(AUDIT_IMAGE_MODELS),
    generators: str = "translate_x,rotate",
    batch_size: int = 4,
    progress: bool = False,
) -> pd.DataFrame:
    """End-to-end LEE under several continuous image models (bilinear variants, central, fourier)."""
    return image_model_audit(model, inputs, image_ids, labels, _names(image_models), _names(generators), batch_size)


@register("layerwise-image-model-audit")
def layerwise_image_model_audit_experiment(
    model,
    inputs,
    image_ids,
    seed: int = 0,
    *,
    image_models: str = ",".join(AUDIT_IMAGE_MODELS),
    generator: str = "translate_x",
    probes: int = 20,
    progress: bool = False,
) -> pd.DataFrame:
    """Layerwise attribution (:func:`lieq.attribution.layerwise`) under several continuous image models."""
    from .attribution import layerwise

    tables = [
        layerwise(model, inputs, generator, int(probes), im, image_ids=image_ids, seed=seed)
        for im in _names(image_models)
    ]
    return pd.concat(tables, ignore_index=True)
