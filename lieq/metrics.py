"""End-to-end equivariance metrics of any model (the Local Equivariance Error, LEE).

For a classifier ``f`` (logits) the end-to-end Lie derivative is taken of the softmax probabilities
``p(x) = softmax(f(x))``, which are invariant (docs/conventions.md section 1): ``L_g p(x) = J_p(x) v_g``.  Per image and
generator two statistics over the ``K`` classes are recorded:

* ``mean_abs = (1/K) sum_k |L_g p_k(x)|`` -- the statistic of the original end-to-end code (paper Fig. 1 right);
* ``mean_sq  = (1/K) sum_k (L_g p_k(x))^2`` -- the paper's Eq. 4 style (expected squared norm, divided by ``K``).

Units: per unit of the generator parameter (half image widths for translations, radians for rotations).

Other kinds of output (``output=``, :mod:`lieq.adapters`), with the same two statistics over their entries:

* ``embedding``: ``e(x) = f(x) / ||f(x)||`` for a ``(B, D)`` output, invariant: ``L_g e = J_e v_g``
  ``= (I - e e^T) J_f v_g / ||f(x)||``; ``mean_abs = (1/D) sum_d |L_g e_d|``, ``mean_sq = (1/D) sum_d (L_g e_d)^2``.
  Unit-free in the output (the embedding's scale is divided out).
* ``dense``: an image-like output ``y = f(x)`` (``(B, C, H', W')`` maps or ``(B, s^2 + k, C)`` tokens), equivariant:
  ``L_g f = J_f v_g - v_g^out(y)`` with ``v^out`` the same generator's action on the output map (same image model;
  docs/conventions.md section 2).  Per-pixel means: ``mean_abs`` = mean over channels and pixels/tokens of ``|L_g f|``,
  ``mean_sq`` = mean of ``(L_g f)^2``.  In the output's own units (dense logits are not passed through a softmax).

Normalised LEE (``normalised=True``), one value per image and generator, in the same way for the three kinds:

    normalised = ||L_g F(x)|| / ( ||v_g|| * s(x) ),    s(x) = (1/R) sum_r ||J_F(x) u_r|| / ||u_r||,

where ``F`` is the measured function (probabilities, normalised embedding or dense map), ``L_g F(x)`` its Lie
derivative (all output entries), ``v_g = d/dt T_g(t) x`` the generator's input tangent (``||.||``: Euclidean norm
over all entries of one image) and ``u_r`` (``r = 1..R``, ``R = sensitivity_draws``, default 8) standard Gaussian
input directions drawn per image with a generator seeded by ``(seed, image index)``.  ``s(x)`` (column
``sensitivity``) is the mean output change per unit input change along random directions, so ``normalised`` is the
output change along the transformation divided by the mean output change for a random perturbation of the same norm
as ``v_g``.  It is unit-free: independent of the output's scale, of the input's scale and of the unit of the group
parameter (``||L_g F||`` and ``||v_g||`` both scale with it), which is what makes models whose outputs live on
different scales comparable.  ``1`` means: the model reacts to the transformation as strongly as to white noise of
the same size; ``0``: exactly invariant / equivariant.  What it is not: not a probability or an error rate, not
bounded by 1 (natural-image tangents are smooth, and networks are usually far more sensitive to smooth changes than
to white noise, so values above 1 are common), not comparable to ``mean_abs`` / ``mean_sq`` or to the paper's
numbers, and a Monte-Carlo estimate in its denominator (``R`` draws; the same draws for every generator and engine).
For ``dense`` outputs the random directions have no output action, so the denominator is the plain sensitivity.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from .adapters import OutputHead, Preprocessing, prepare_inputs
from .engine import autodiff_ready, jvp_many, lie_derivative
from .experiments import register
from .image_model import lie_action, resolve_generators

__all__ = ["e2e_experiment", "e2e_lee", "input_sensitivity", "SoftmaxClassifier"]


class SoftmaxClassifier(nn.Module):
    """``x -> softmax(model(x))`` over the last axis."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return torch.softmax(self.model(x), dim=-1)


def e2e_lee(
    model: Callable[[Tensor], Any],
    images: Tensor | Sequence,
    labels: Sequence[int] | Tensor | None = None,
    generators: str | Sequence[str] = "e2e",
    image_model: str = "bilinear",
    method: str = "forward",
    batch_size: int = 8,
    image_ids: Sequence[str] | None = None,
    progress: bool = False,
    *,
    output: str = "logits",
    field: str | int | None = None,
    preprocessing: Preprocessing | Callable[[Any], Tensor] | None = None,
    normalised: bool = False,
    sensitivity_draws: int = 8,
    seed: int = 0,
) -> pd.DataFrame:
    """Per-image end-to-end LEE of any model: one row per (image, generator).

    ``model``: any callable on a batch of model inputs (an ``nn.Module`` is made autodiff-ready for the call; a plain
    callable is differentiated as it is).  Its output may be a tensor, tuple, dict or ``ModelOutput``; ``field``
    names the entry (:func:`lieq.adapters.select_output`; default ``logits`` when present, else the tensor).
    ``output``: ``logits`` (class probabilities, the default and the paper's quantity), ``embedding`` or ``dense``
    (module docstring).  ``images``: model inputs ``(N, C, H, W)`` (any ``H, W``; ``C = 1`` or ``3``), or images
    (PIL, an :class:`lieq.data.ImageSet`, tensors in ``[0, 1]``) together with ``preprocessing`` (a
    :class:`lieq.adapters.Preprocessing` or a callable; timm models default to their own timm eval transform).

    Columns: ``image`` (id or index), ``generator``, ``mean_abs``, ``mean_sq`` (module docstring), ``image_model``,
    ``method``, ``output`` (only for ``embedding`` and ``dense``); with ``normalised=True`` also ``normalised`` and
    ``sensitivity`` (module docstring; ``sensitivity_draws`` Gaussian directions per image, seeded by ``seed`` and
    the image's index); when ``labels`` are given, ``label`` and, for ``logits``, ``pred`` and ``correct`` (top-1 of
    the unperturbed image).
    """
    gens = resolve_generators(generators)
    images = prepare_inputs(model, images, preprocessing)
    n = images.shape[0]
    if image_ids is not None and len(image_ids) != n:
        raise ValueError(f"{len(image_ids)} image ids for {n} images")
    if labels is not None and len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} images")
    if normalised and sensitivity_draws < 1:
        raise ValueError(f"sensitivity_draws must be >= 1, got {sensitivity_draws}")
    module = model if isinstance(model, nn.Module) else None
    if module is not None:
        module.eval()
    f = OutputHead(model, output, field)
    device = next(iter(module.parameters()), images).device if module is not None else images.device
    rows = []
    starts = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="images", unit="batch", leave=False)
    with autodiff_ready(module, keep_fused_attention=method == "forward"):
        for start in starts:
            x = images[start : start + batch_size].to(device)
            lie = lie_derivative(f, x, [g.name for g in gens], f.equivariance, method, image_model).detach()
            with torch.no_grad():
                pred = f.raw(x).argmax(-1).cpu() if labels is not None and output == "logits" else None
            flat = lie.flatten(2)  # (G, B, output entries)
            mean_abs = flat.abs().mean(-1).cpu()
            mean_sq = flat.pow(2).mean(-1).cpu()
            if normalised:
                tangent_norm = lie_action(x, gens, image_model).flatten(2).norm(dim=-1).cpu()  # (G, B)
                sens = input_sensitivity(f, x, sensitivity_draws, seed, range(start, start + x.shape[0])).cpu()
                normalised_lee = flat.norm(dim=-1).cpu() / (tangent_norm * sens)
            for b in range(x.shape[0]):
                i = start + b
                for gi, g in enumerate(gens):
                    row = {
                        "image": image_ids[i] if image_ids is not None else i,
                        "generator": g.name,
                        "mean_abs": float(mean_abs[gi, b]),
                        "mean_sq": float(mean_sq[gi, b]),
                        "image_model": image_model,
                        "method": method,
                    }
                    if output != "logits":
                        row["output"] = output
                    if normalised:
                        row.update(normalised=float(normalised_lee[gi, b]), sensitivity=float(sens[b]))
                    if labels is not None:
                        label = int(labels[i])
                        row["label"] = label
                        if pred is not None:
                            row.update(pred=int(pred[b]), correct=bool(pred[b] == label))
                    rows.append(row)
    return pd.DataFrame(rows)


def random_directions(shape: Sequence[int], draws: int, seed: int, index: int) -> Tensor:
    """``draws`` standard Gaussian input directions of ``shape`` for image ``index`` (seeded by ``(seed, index)``, so
    independent of how the images are batched)."""
    state = int(np.random.SeedSequence([seed, index]).generate_state(1)[0])
    return torch.randn(draws, *shape, generator=torch.Generator().manual_seed(state))


def input_sensitivity(
    f: Callable[[Tensor], Tensor], x: Tensor, draws: int = 8, seed: int = 0, indices: Sequence[int] | None = None
) -> Tensor:
    """``s(x) = (1/R) sum_r ||J_f(x) u_r|| / ||u_r||`` per image, ``R = draws`` Gaussian directions ``u_r``.

    The mean output change per unit of input change along random directions (module docstring), by forward-mode
    autodiff (:func:`lieq.engine.jvp_many`).  ``indices`` are the images' indices for the seeds (default
    ``0..B-1``).  Returns ``(B,)``.
    """
    indices = list(range(x.shape[0])) if indices is None else list(indices)
    # drawn on the CPU in float32 (the same directions on every device), cast exactly before use
    u = torch.stack([random_directions(x.shape[1:], draws, seed, i).to(x) for i in indices], dim=1)  # (R, B, C, H, W)
    u = u / u.flatten(2).norm(dim=-1)[..., None, None, None]  # unit directions
    with torch.no_grad():
        _, ju = jvp_many(f, x.detach(), u)
    return ju.flatten(2).norm(dim=-1).mean(0)


@register("e2e", description="end-to-end LEE of softmax outputs (mean |L p| and mean (L p)^2 per image and generator)")
def e2e_experiment(
    model,
    inputs,
    labels,
    image_ids,
    *,
    generators: str = "e2e",
    image_model: str = "bilinear",
    method: str = "forward",
    batch_size: int = 8,
    progress: bool = False,
) -> pd.DataFrame:
    """Runner experiment ``e2e``: :func:`e2e_lee` with the configuration's generators, image model and method."""
    return e2e_lee(
        model,
        inputs,
        labels=labels,
        generators=generators,
        image_model=image_model,
        method=method,
        batch_size=int(batch_size),
        image_ids=image_ids,
        progress=progress,
    )


@register(
    "e2e-normalised",
    description="normalised end-to-end softmax LEE: ||L_g p|| / (||v_g|| s(x)), s = random-direction sensitivity",
)
def e2e_normalised_experiment(
    model,
    inputs,
    labels,
    image_ids,
    seed,
    *,
    generators: str = "translate_x",
    image_model: str = "bilinear",
    sensitivity_draws: int = 4,
    batch_size: int = 8,
    progress: bool = False,
) -> pd.DataFrame:
    """Runner experiment ``e2e-normalised``: :func:`e2e_lee` with ``normalised=True`` (module docstring).

    The unit-free LEE of the class probabilities, the Lie derivative's norm divided by the output change for a random
    input perturbation of the same norm (``sensitivity_draws`` Gaussian directions per image, seeded by the sweep's
    ``seed`` and the image's index).  Raw softmax LEE is small wherever the probabilities barely move at all (an
    untrained network's near-uniform output); the ratio separates *equivariance* from mere *insensitivity*, which is
    what following a model through training needs.  Columns as :func:`e2e_lee` (``mean_abs``, ``mean_sq`` too) plus
    ``normalised`` and ``sensitivity``.
    """
    return e2e_lee(
        model,
        inputs,
        labels=labels,
        generators=generators,
        image_model=image_model,
        batch_size=int(batch_size),
        image_ids=image_ids,
        progress=progress,
        normalised=True,
        sensitivity_draws=int(sensitivity_draws),
        seed=int(seed),
    )
