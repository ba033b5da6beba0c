"""Continuous image model and the generators of the paper's transformation groups.

A discrete image ``x`` (a tensor ``(B, C, H, W)``) is made continuous by an *image model* (an interpolation
rule with reflection about the edge pixel centres).  A transformation acts by resampling,
``(T_t x)(p) = x(A(t) p)``, where ``A(t)`` is a 2x3 affine map of normalised coordinates in the
``align_corners=True`` convention (the centres of the first and last pixel sit at -1 and +1) and ``A(0)`` is the
identity.  Translation is therefore measured in half image widths (``t = 1`` shifts by ``(W - 1) / 2`` pixels)
and rotation in radians.

Two operations are provided for every generator of :data:`GENERATORS`:

* :func:`transform` -- the finite transformation ``T(t) x`` for a vector of ``t`` values (one output per value);
* :func:`lie_action` -- the infinitesimal action ``d/dt T(t) x |_{t=0}``, computed by forward-mode autodiff through
  exactly the same sampler, so that it is the derivative of the finite transformation of the chosen image model.

Image models (:data:`IMAGE_MODELS`, and the band-limited :data:`BAND_LIMITED_IMAGE_MODELS`):

``bilinear``  (default; paper-compatible)
    Gather-based bilinear interpolation computed with the original code's arithmetic: coordinates from
    ``F.affine_grid(..., align_corners=True)``, un-normalised as ``((g + 1) / 2) * (W - 1)`` in float32 and
    ``floor`` taken on those values.  At ``t = 0`` every sample sits on a pixel centre, where bilinear interpolation
    has a kink; the derivative is the forward difference where the un-normalised coordinate is exactly integral and
    the backward difference where float rounding put it a few 1e-6 below (16 % of columns at 224 px).
``bilinear_forward`` / ``bilinear_backward``
    The same interpolant with the kink resolved to the forward (``x[k+1] - x[k]``) or backward (``x[k] - x[k-1]``)
    difference everywhere (the finite transformations equal ``bilinear``'s; only the derivative at kinks differs).
``central``
    Catmull-Rom (Keys, a = -1/2) bicubic interpolation.  Its derivative at the pixel centres is the central
    difference ``(x[k+1] - x[k-1]) / 2``, the mean of the two one-sided derivatives, independent of rounding.

``fourier``
    Band-limited (trigonometric) interpolation of the mirror-extended image: the image is extended evenly about its
    edge pixel centres (period ``2 (W - 1)`` pixels, the same reflection as the other models) and represented by its
    DCT-I series ``x(u, v) = sum_{k,l} c_{kl} cos(pi k (u + 1) / 2) cos(pi l (v + 1) / 2)``.  Finite warps evaluate
    this series at the sample points (exact band-limited resampling, cost ``O(H W)`` per output pixel and channel,
    so meant for small images and feature maps).  The infinitesimal action is computed spectrally, without
    resampling: ``d/dt x(A(t) p) = grad x(p) . (A'(0) p)`` with ``grad x`` from FFT differentiation of the even
    extension (the Nyquist term differentiates to zero, as does the series on the grid).  The two agree to float
    precision.

Token tensors ``(B, N, C)`` with ``N = s^2 + k``, ``k in {0, 1, 2}``, are handled as an ``s x s`` grid in
row-major order with ``k`` leading invariant tokens (class / distillation tokens), which no transformation changes.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from . import conventions

__all__ = [
    "BAND_LIMITED_IMAGE_MODELS",
    "E2E_GENERATORS",
    "GENERATORS",
    "IMAGE_MODELS",
    "LAYERWISE_GENERATORS",
    "Generator",
    "affine_matrices",
    "algebra_element",
    "feature_layout",
    "lie_action",
    "resolve_generators",
    "transform",
    "warp",
]


# --------------------------------------------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------------------------------------------


def _affine(m00, m01, m10, m11, b0, b1) -> Tensor:
    row0 = torch.stack([m00, m01, b0], dim=-1)
    row1 = torch.stack([m10, m11, b1], dim=-1)
    return torch.stack([row0, row1], dim=-2)


@dataclass(frozen=True)
class Generator:
    """One generator of a one-parameter transformation group (its conventions: :data:`lieq.conventions.GENERATORS`).

    ``affine(t)`` maps a tensor of parameters ``t`` (any shape) to the 2x3 matrices ``A(t)`` (shape ``t.shape + (2,
    3)``) given to the sampling grid; it is ``None`` for a pointwise generator (``saturate``), which scales the
    (normalised) values by ``1 + t`` instead of resampling.
    """

    name: str
    affine: Callable[[Tensor], Tensor] | None
    description: str

    @property
    def pointwise(self) -> bool:
        """Whether the generator acts on the values rather than by resampling (declared in :mod:`lieq.conventions`)."""
        return conventions.GENERATORS[self.name].pointwise

    @property
    def spatial(self) -> bool:
        return not self.pointwise


def _translate_x(t: Tensor) -> Tensor:
    o, z = torch.ones_like(t), torch.zeros_like(t)
    return _affine(o, z, z, o, t, z)


def _translate_y(t: Tensor) -> Tensor:
    o, z = torch.ones_like(t), torch.zeros_like(t)
    return _affine(o, z, z, o, z, t)


def _rotate(t: Tensor) -> Tensor:
    c, s, z = torch.cos(t), torch.sin(t), torch.zeros_like(t)
    return _affine(c, s, -s, c, z, z)


def _scale(t: Tensor) -> Tensor:
    s, z = 1 - t, torch.zeros_like(t)
    return _affine(s, z, z, s, z, z)


def _shear_x(t: Tensor) -> Tensor:
    o, z = torch.ones_like(t), torch.zeros_like(t)
    return _affine(o, t, z, o, z, z)


def _shear_y(t: Tensor) -> Tensor:
    o, z = torch.ones_like(t), torch.zeros_like(t)
    return _affine(o, z, t, o, z, z)


def _stretch_x(t: Tensor) -> Tensor:
    o, z = torch.ones_like(t), torch.zeros_like(t)
    return _affine(1 + t, z, z, o, z, z)


def _stretch_y(t: Tensor) -> Tensor:
    o, z = torch.ones_like(t), torch.zeros_like(t)
    return _affine(o, z, z, 1 + t, z, z)


def _hyperbolic_rotate(t: Tensor) -> Tensor:
    c, s, z = torch.cosh(t), torch.sinh(t), torch.zeros_like(t)
    return _affine(c, s, s, c, z, z)


#: The finite map ``A(t)`` of every spatial generator of :data:`lieq.conventions.GENERATORS`.
_FINITE_MAPS: dict[str, Callable[[Tensor], Tensor]] = {
    "translate_x": _translate_x,
    "translate_y": _translate_y,
    "rotate": _rotate,
    "scale": _scale,
    "shear_x": _shear_x,
    "shear_y": _shear_y,
    "stretch_x": _stretch_x,
    "stretch_y": _stretch_y,
    "hyperbolic_rotate": _hyperbolic_rotate,
}
if set(_FINITE_MAPS) != set(conventions.SPATIAL_GENERATORS):  # a generator declared without a map, or vice versa
    raise ImportError(f"finite maps {sorted(_FINITE_MAPS)} != spatial generators {conventions.SPATIAL_GENERATORS}")

GENERATORS: dict[str, Generator] = {
    name: Generator(name, None if spec.pointwise else _FINITE_MAPS[name], spec.description)
    for name, spec in conventions.GENERATORS.items()
}
E2E_GENERATORS = conventions.E2E_GENERATORS
LAYERWISE_GENERATORS = conventions.LAYERWISE_GENERATORS


def resolve_generators(generators: str | Sequence[str] | None) -> list[Generator]:
    """Turn a set name of :data:`lieq.conventions.GENERATOR_SETS` (``"e2e"``, ``"layerwise"``, ``"all"``; ``None``
    = ``"e2e"``), a comma-separated string or a list of names into generators."""
    return [GENERATORS[n] for n in conventions.generator_names(generators)]


def affine_matrices(generator: str | Generator, t: Tensor) -> Tensor:
    """The 2x3 matrices ``A(t)`` of a spatial generator for a vector of parameters ``t``."""
    gen = GENERATORS[generator] if isinstance(generator, str) else generator
    if gen.pointwise:
        raise ValueError(f"{gen.name} is not a spatial generator")
    return gen.affine(t)


# --------------------------------------------------------------------------------------------------------------
# Feature layouts: images (B, C, H, W) and token tensors (B, N, C)
# --------------------------------------------------------------------------------------------------------------


def token_grid(n_tokens: int) -> tuple[int, int] | None:
    """``(s, k)`` with ``n_tokens = s^2 + k``, ``k in {0, 1, 2}`` and ``s >= 2``, or ``None``."""
    for k in (0, 1, 2):
        s = math.isqrt(max(n_tokens - k, 0))
        if s >= 2 and s * s == n_tokens - k:
            return s, k
    return None


def feature_layout(shape: Sequence[int]) -> str:
    """Classify a batched feature tensor shape (docs/conventions.md section 2).

    ``"image"`` for ``(B, C, H, W)`` with ``H, W`` not both 1; ``"tokens"`` for ``(B, N, C)`` with
    ``N = s^2 + k``, ``k in {0, 1, 2}``; ``"invariant"`` for everything else (pooled vectors, logits).
    """
    if len(shape) == 4 and (shape[2] > 1 or shape[3] > 1):
        return "image"
    if len(shape) == 3 and token_grid(shape[1]) is not None:
        return "tokens"
    return "invariant"


# --------------------------------------------------------------------------------------------------------------
# Samplers (gather based, differentiable in the coordinates, forward- and reverse-mode)
# --------------------------------------------------------------------------------------------------------------


def _reflect(index: Tensor, size: int) -> Tensor:
    """Reflect integer indices about the edge pixel centres (-1 -> 1, size -> size - 2), periodically."""
    if size == 1:
        return torch.zeros_like(index)
    period = 2 * (size - 1)
    index = torch.remainder(index, period)
    return torch.where(index > size - 1, period - index, index)


def _gather(image: Tensor, iy: Tensor, ix: Tensor) -> Tensor:
    """``image[n, :, iy[n, p], ix[n, p]]`` for integer index tensors of shape (N, P); returns (N, C, P)."""
    n, c, h, w = image.shape
    flat = (_reflect(iy, h) * w + _reflect(ix, w)).long()
    return torch.gather(image.reshape(n, c, h * w), 2, flat[:, None, :].expand(n, c, flat.shape[-1]))


def _unnormalise(grid: Tensor, h: int, w: int) -> tuple[Tensor, Tensor]:
    # The original code's arithmetic, in the grid's dtype (float32 for float32 images).
    ix = ((grid[..., 0] + 1) / 2) * (w - 1)
    iy = ((grid[..., 1] + 1) / 2) * (h - 1)
    return ix, iy


def _bilinear(image: Tensor, grid: Tensor, floor: Callable[[Tensor], Tensor]) -> Tensor:
    n, c, h, w = image.shape
    ix, iy = _unnormalise(grid.reshape(n, -1, 2), h, w)
    with torch.no_grad():
        ix0 = floor(ix.detach())
        iy0 = floor(iy.detach())
    wx1 = ix - ix0
    wx0 = (ix0 + 1) - ix
    wy1 = iy - iy0
    wy0 = (iy0 + 1) - iy
    out = (
        _gather(image, iy0, ix0) * (wx0 * wy0)[:, None]
        + _gather(image, iy0, ix0 + 1) * (wx1 * wy0)[:, None]
        + _gather(image, iy0 + 1, ix0) * (wx0 * wy1)[:, None]
        + _gather(image, iy0 + 1, ix0 + 1) * (wx1 * wy1)[:, None]
    )
    return out.reshape(n, c, *grid.shape[1:3])


def _snap(offset: float) -> Callable[[Tensor], Tensor]:
    """A floor that treats coordinates within 1e-3 of an integer k as exactly k, then shifts by ``offset``."""

    def floor(u: Tensor) -> Tensor:
        r = torch.round(u)
        near = (u - r).abs() < 1e-3
        return torch.where(near, r + offset, torch.floor(u))

    return floor


def _catmull_rom(s: Tensor) -> list[Tensor]:
    """Keys cubic convolution weights (a = -1/2) for the taps at offsets -1, 0, 1, 2 of fractional position s."""
    s2, s3 = s * s, s * s * s
    return [
        -0.5 * s3 + s2 - 0.5 * s,
        1.5 * s3 - 2.5 * s2 + 1,
        -1.5 * s3 + 2 * s2 + 0.5 * s,
        0.5 * s3 - 0.5 * s2,
    ]


def _bicubic(image: Tensor, grid: Tensor) -> Tensor:
    n, c, h, w = image.shape
    ix, iy = _unnormalise(grid.reshape(n, -1, 2), h, w)
    with torch.no_grad():
        ix0 = torch.floor(ix.detach())
        iy0 = torch.floor(iy.detach())
    wx = _catmull_rom(ix - ix0)
    wy = _catmull_rom(iy - iy0)
    out = 0
    for a, wya in zip((-1, 0, 1, 2), wy, strict=True):
        row = 0
        for b, wxb in zip((-1, 0, 1, 2), wx, strict=True):
            row = row + _gather(image, iy0 + a, ix0 + b) * wxb[:, None]
        out = out + row * wya[:, None]
    return out.reshape(n, c, *grid.shape[1:3])


def _dct1_coefficients(image: Tensor, dim: int) -> Tensor:
    """Coefficients ``c_k`` of ``x_i = sum_k c_k cos(pi k i / (N - 1))`` along ``dim`` (DCT-I, even extension)."""
    n = image.shape[dim]
    if n == 1:
        return image
    inner = image.narrow(dim, 1, n - 2).flip(dim)
    spectrum = torch.fft.rfft(torch.cat([image, inner], dim=dim), dim=dim).real  # length n along dim
    weight = torch.full((n,), 1.0 / (n - 1), dtype=image.dtype, device=image.device)
    weight[0] = weight[-1] = 0.5 / (n - 1)
    shape = [1] * image.dim()
    shape[dim] = n
    return spectrum * weight.reshape(shape)


def _fourier(image: Tensor, grid: Tensor) -> Tensor:
    """Evaluate the DCT-I series of ``image`` (the ``fourier`` image model) at normalised grid points."""
    n, c, h, w = image.shape
    coeff = _dct1_coefficients(_dct1_coefficients(image, 3), 2)  # (n, c, h, w)
    pts = grid.reshape(n, -1, 2)
    kx = torch.arange(w, dtype=image.dtype, device=image.device)
    ky = torch.arange(h, dtype=image.dtype, device=image.device)
    ex = torch.cos(math.pi * (pts[..., 0:1] + 1) / 2 * kx)  # (n, P, w)
    ey = torch.cos(math.pi * (pts[..., 1:2] + 1) / 2 * ky)  # (n, P, h)
    rows = torch.einsum("nclk,npl->ncpk", coeff, ey)
    out = torch.einsum("ncpk,npk->ncp", rows, ex)
    return out.reshape(n, c, *grid.shape[1:3])


def _spectral_gradient(image: Tensor, dim: int) -> Tensor:
    """Derivative along ``dim`` in normalised units (per half extent) by FFT of the even extension."""
    n = image.shape[dim]
    if n == 1:
        return torch.zeros_like(image)
    period = 2 * (n - 1)
    inner = image.narrow(dim, 1, n - 2).flip(dim)
    spectrum = torch.fft.rfft(torch.cat([image, inner], dim=dim), dim=dim)
    freq = torch.fft.rfftfreq(period, dtype=image.dtype, device=image.device) * (2 * math.pi)
    freq[-1] = 0.0  # the Nyquist cosine has zero derivative on the grid
    shape = [1] * image.dim()
    shape[dim] = freq.shape[0]
    deriv = torch.fft.irfft(spectrum * (1j * freq).reshape(shape), n=period, dim=dim).narrow(dim, 0, n)
    return deriv * ((n - 1) / 2)


def _fourier_lie_action(x: Tensor, gens: list[Generator]) -> Tensor:
    """Spectral infinitesimal action of the ``fourier`` image model: ``(G, *x.shape)``."""
    layout = feature_layout(x.shape)
    if layout == "tokens":
        b, n, c = x.shape
        s, k = token_grid(n)  # type: ignore[misc]
        img = x[:, k:].reshape(b, s, s, c).permute(0, 3, 1, 2)
        act = _fourier_lie_action(img, gens)  # (G, B, C, s, s)
        tokens = act.permute(0, 1, 3, 4, 2).reshape(len(gens), b, s * s, c)
        return torch.cat([torch.zeros_like(x[:, :k]).expand(len(gens), b, k, c), tokens], dim=2)
    if layout != "image":
        raise ValueError(f"cannot resample a tensor of shape {tuple(x.shape)}: expected images or tokens")
    b, c, h, w = x.shape
    du = _spectral_gradient(x, 3)
    dv = _spectral_gradient(x, 2)
    out = []
    for g in gens:
        if not g.spatial:
            out.append(x)
            continue
        zero = torch.zeros(1, dtype=x.dtype, device=x.device)
        _, velocity = torch.func.jvp(g.affine, (zero,), (torch.ones_like(zero),))  # A'(0), (1, 2, 3)
        field = _affine_grid(velocity, [1, 1, h, w])[0]  # (h, w, 2): A'(0) p
        out.append(du * field[..., 0] + dv * field[..., 1])
    return torch.stack(out)


_SAMPLERS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "bilinear": lambda img, grid: _bilinear(img, grid, torch.floor),
    "bilinear_forward": lambda img, grid: _bilinear(img, grid, _snap(0.0)),
    "bilinear_backward": lambda img, grid: _bilinear(img, grid, _snap(-1.0)),
    "central": _bicubic,
    "fourier": _fourier,
}

#: Names of the image models, with a one-line description each.
IMAGE_MODELS: dict[str, str] = {
    "bilinear": "paper-compatible bilinear; one-sided derivative at pixel centres, side chosen by float rounding",
    "bilinear_forward": "bilinear; forward difference at every pixel centre",
    "bilinear_backward": "bilinear; backward difference at every pixel centre",
    "central": "Catmull-Rom bicubic; central difference at pixel centres",
}

#: Band-limited (global) image models, accepted wherever an image model name is.  Kept apart from the local
#: interpolants of :data:`IMAGE_MODELS`: properties such as "a linear ramp has a constant derivative" hold for
#: those but not for a band-limited model (the ramp's even extension is a triangle wave, not band-limited).
BAND_LIMITED_IMAGE_MODELS: dict[str, str] = {
    "fourier": "band-limited DCT-I (mirror-extended trigonometric) interpolation; spectral derivative",
}


def _check_image_model(image_model: str) -> None:
    if image_model not in _SAMPLERS:
        raise ValueError(f"unknown image model {image_model!r}; known: {', '.join(_SAMPLERS)}")


# --------------------------------------------------------------------------------------------------------------
# Warps
# --------------------------------------------------------------------------------------------------------------


def _affine_grid(theta: Tensor, size: list[int]) -> Tensor:
    """``F.affine_grid(theta, size, align_corners=True)``: normalised coordinates of the pixel centres.

    A side of one pixel gets coordinate 0, its own centre (PyTorch's convention since 1.3); PyTorch warns about it
    every call, which for 1 x 1 feature maps (layerwise attribution) is expected, so the warning is silenced here.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*affine_grid behavior has changed for unit-size grids.*")
        return F.affine_grid(theta, size, align_corners=True)


def _to_images(x: Tensor) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """View a feature tensor as images (N, C, H, W) and return the inverse mapping (applied to a leading T axis)."""
    layout = feature_layout(x.shape)
    if layout == "image":
        return x, lambda y: y
    if layout == "tokens":
        b, n, c = x.shape
        s, k = token_grid(n)  # type: ignore[misc]
        head, grid = x[:, :k], x[:, k:]
        img = grid.reshape(b, s, s, c).permute(0, 3, 1, 2)

        def back(y: Tensor) -> Tensor:  # y: (T, B, C, s, s) -> (T, B, N, C)
            t = y.shape[0]
            tokens = y.permute(0, 1, 3, 4, 2).reshape(t, b, s * s, c)
            return torch.cat([head.expand(t, *head.shape), tokens], dim=2)

        return img, back
    raise ValueError(
        f"cannot resample a tensor of shape {tuple(x.shape)}: expected images (B, C, H, W) or tokens (B, s^2 + k, C)"
    )


def warp(x: Tensor, theta: Tensor, image_model: str = "bilinear") -> Tensor:
    """Resample ``x`` by each affine map in ``theta``.

    ``x``: images ``(B, C, H, W)`` or tokens ``(B, N, C)``; ``theta``: ``(T, 2, 3)`` maps of normalised coordinates
    (align_corners=True).  Returns ``(T, *x.shape)``: ``out[i] = x(theta[i] p)`` sampled on the pixel grid of ``x``.
    """
    _check_image_model(image_model)
    if theta.dim() != 3 or theta.shape[1:] != (2, 3):
        raise ValueError(f"theta must have shape (T, 2, 3), got {tuple(theta.shape)}")
    img, back = _to_images(x)
    b, c, h, w = img.shape
    t = theta.shape[0]
    theta = theta.to(img.dtype)
    grid = _affine_grid(theta.repeat_interleave(b, dim=0), [t * b, c, h, w])
    src = img.expand(t, b, c, h, w).reshape(t * b, c, h, w)
    out = _SAMPLERS[image_model](src, grid).reshape(t, b, c, h, w)
    return back(out)


def transform(x: Tensor, generator: str | Generator, t: Tensor, image_model: str = "bilinear") -> Tensor:
    """The finite transformation ``T(t) x`` for each value of the vector ``t``: returns ``(len(t), *x.shape)``.

    Spatial generators resample with :func:`warp`; ``saturate`` scales the values by ``1 + t``.
    """
    gen = GENERATORS[generator] if isinstance(generator, str) else generator
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device).reshape(-1)
    if gen.pointwise:
        return x.unsqueeze(0) * (1 + t).reshape(-1, *([1] * x.dim()))
    return warp(x, gen.affine(t), image_model)


def algebra_element(generator: str | Generator) -> Tensor:
    """``dA/dt`` at ``t = 0`` of a spatial generator: its ``(2, 3)`` element of the affine Lie algebra (float64)."""
    gen = GENERATORS[generator] if isinstance(generator, str) else generator
    if gen.pointwise:
        raise ValueError(f"{gen.name} is not a spatial generator")
    zero = torch.zeros((), dtype=torch.float64)
    return torch.func.jvp(gen.affine, (zero,), (torch.ones_like(zero),))[1]


def lie_action(
    x: Tensor,
    generators: str | Sequence[str] | Sequence[Generator],
    image_model: str = "bilinear",
    return_primal: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Infinitesimal action ``d/dt T_g(t) x |_{t=0}`` of each generator ``g``: returns ``(G, *x.shape)``.

    Exactly the derivative of the finite transformation of ``image_model`` (:func:`transform`), computed by the chain
    rule: at ``t = 0`` every spatial generator samples on the same (identity) grid ``p``, so
    ``d/dt T_g(t) x = D_u(p) du_g/dt + D_v(p) dv_g/dt``, where ``D_u, D_v`` are the sampler's derivatives with respect
    to the two normalised grid coordinates (forward-mode autodiff of the sampler, once per batch, with the floor
    taken on the identity grid exactly as the original code did) and ``(du_g/dt, dv_g/dt) = A_g (p, 1)`` is the
    generator's velocity field, ``A_g`` its Lie-algebra element (:func:`algebra_element`).  With ``return_primal``
    also returns ``T(0) x`` as the sampler computes it (for ``bilinear`` it differs from ``x`` by float rounding,
    ~1e-6, exactly as in the original code; the engine evaluates networks there).
    """
    gens = list(generators) if _is_generator_list(generators) else resolve_generators(generators)  # type: ignore[arg-type]
    x = x.detach()
    _check_image_model(image_model)
    if image_model == "fourier":  # spectral, no resampling (the sampled series interpolates x exactly at t = 0)
        action = _fourier_lie_action(x, gens)
        return (action, x) if return_primal else action
    out: list[Tensor | None] = [x if not g.spatial else None for g in gens]  # d/dt (1 + t) x = x
    primal = x
    spatial = [i for i, g in enumerate(gens) if g.spatial]
    if spatial:
        img, back = _to_images(x)
        b, c, h, w = img.shape
        identity = torch.eye(2, 3, dtype=img.dtype, device=img.device).expand(b, 2, 3)
        grid = _affine_grid(identity, [b, c, h, w])
        sampler = _SAMPLERS[image_model]
        units = torch.eye(2, dtype=img.dtype, device=img.device)

        def derivative(unit: Tensor) -> tuple[Tensor, Tensor]:
            return torch.func.jvp(lambda g: sampler(img, g), (grid,), (unit.expand_as(grid),))

        sampled, d_u = derivative(units[0])
        _, d_v = derivative(units[1])
        algebra = torch.stack([algebra_element(gens[i]) for i in spatial]).to(img.dtype).to(img.device)
        velocity = _affine_grid(algebra, [len(spatial), 1, h, w])  # (S, H, W, 2)
        tangent = d_u * velocity[:, None, None, :, :, 0] + d_v * velocity[:, None, None, :, :, 1]  # (S, B, C, H, W)
        tangent = back(tangent)
        if feature_layout(x.shape) == "tokens":  # the invariant leading tokens do not move
            tangent[:, :, : x.shape[1] - h * w] = 0
        primal = back(sampled.unsqueeze(0))[0]
        for j, i in enumerate(spatial):
            out[i] = tangent[j]
    action = torch.stack(out)  # type: ignore[arg-type]
    return (action, primal) if return_primal else action


def _is_generator_list(generators: object) -> bool:
    return isinstance(generators, (list, tuple)) and all(isinstance(g, Generator) for g in generators)
