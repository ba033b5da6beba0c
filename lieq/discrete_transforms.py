"""Discrete and band-limited resamplers of the finite / discrete baselines (:mod:`lieq.baselines`).

All functions are vectorised over samples: ``x`` is ``(..., H, W)`` and results are ``(S, ..., H, W)`` together with
a validity mask ``(S, H, W)`` (1 where the output pixel is computed from pixels inside the image; zero fill
elsewhere).  ``x`` is the width axis (last tensor axis), ``y`` the height axis; shifts move the *content*.

* :func:`integer_shift` -- StyleGAN3's EQ-T shift by whole pixels;
* :func:`lanczos_shift` -- EQ-T_frac's fractional shift with a separable Lanczos (windowed sinc) filter normalised
  to unit DC gain (equal to :func:`integer_shift` for integer shifts);
* :func:`bandlimited_rotate` -- EQ-R's rotation: ``4x`` Lanczos upsampling, then bilinear reading of the rotated
  grid (the rotation convention of :mod:`lieq.image_model`'s ``rotate``);
* :func:`random_crops` -- crops at given offsets (Zhang's crop consistency).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["bandlimited_rotate", "integer_shift", "lanczos", "lanczos_shift", "random_crops"]


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


def random_crops(big: Tensor, oy: Tensor, ox: Tensor, h: int, w: int) -> Tensor:
    """Crops ``big[..., oy:oy+h, ox:ox+w]`` for each offset: ``(S, *big.shape[:-2], h, w)``."""
    rows = oy[:, None] + torch.arange(h, device=big.device)[None]
    cols = ox[:, None] + torch.arange(w, device=big.device)[None]
    return big[..., rows[:, :, None], cols[:, None, :]].movedim(-3, 0)
