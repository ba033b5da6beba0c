"""The architecture's prior: a scale-free Lie derivative of randomly initialised models (experiment ``prior``).

At random initialisation the softmax output ``p = softmax(W phi(x) + b)`` is nearly uniform, so its Lie derivative
``L_g p`` is set by the scale of the freshly initialised head ``W`` (``L_g p = (diag p - p p^T) W L_g phi``): heads
that timm initialises to zero give exactly ``L_g p = 0`` whatever the architecture does.  What the architecture
itself contributes is the behaviour of its features.  Here ``phi(x)`` are timm's pooled pre-logit features
(``model.forward_head(model.forward_features(x), pre_logits=True)``, shape ``(B, D)``) and the measured function is
their direction ``e(x) = phi(x) / ||phi(x)||``:

    feature_lee(x, g) = ||L_g e(x)||_2 = ||(I - e e^T) L_g phi(x)||_2 / ||phi(x)||_2,

the Euclidean norm over the ``D`` feature entries (the engine's invariant Lie derivative, :func:`lieq.engine.
lie_derivative`, applied to ``e``).  It is unit-free in the features: invariant to any rescaling of ``phi`` (so to
the scale of the last layers' initialisation and of the head, which does not enter at all) and comparable across
widths ``D`` (a norm, not a mean over entries).  Units: radians of feature direction per unit of the generator
parameter (half image widths for translations, radians for rotations; docs/conventions.md).  ``0`` means the pooled
features are exactly invariant; a feature vector rotating by one radian per half image width gives 1.

A representation that does not respond to its input at all would also give ``feature_lee = 0`` (some
architectures' random-init features barely depend on the image).  To tell the two apart the experiment can record
(``sensitivity_draws > 0``; off by default, as it doubles the cost) the features' sensitivity to random input
perturbations,

    feature_sensitivity(x) = (1/R) sum_r ||J_e(x) u_r|| / ||u_r||     (R = ``sensitivity_draws`` Gaussian u_r),

(:func:`lieq.metrics.input_sensitivity`; per unit of input L2 norm, the model's own normalised pixels) and the
normalised LEE ``normalised_feature_lee = feature_lee / (||v_g|| feature_sensitivity)`` (``v_g`` the generator's
input tangent): the feature change along the transformation relative to that along white noise of the same norm, as
in :mod:`lieq.metrics`.  A model whose sensitivity is at numerical zero has *collapsed* features (no direction to
measure) rather than an equivariant prior.  Without it, the figure draws values below a numerical floor as marks at
the axis edge, "invariant or insensitive", instead of placing them at 0.

The same forward pass also gives the softmax statistics of :mod:`lieq.metrics` (``softmax_mean_abs`` =
``(1/K) sum_k |L_g p_k|``, ``softmax_mean_sq`` = ``(1/K) sum_k (L_g p_k)^2``), kept as columns so the old,
head-dependent prior can be compared with the new one.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .engine import autodiff_ready, call_overrides, lie_derivative
from .experiments import register
from .image_model import lie_action, resolve_generators
from .metrics import input_sensitivity

__all__ = ["FeaturesAndProbabilities", "prior_experiment", "prior_lee"]


class FeaturesAndProbabilities(nn.Module):
    """``x -> [e(x), p(x)]``: the unit feature direction ``e = phi / ||phi||`` (timm's pooled pre-logit features
    ``phi``, ``(B, D)``) and the class probabilities ``p = softmax(head(phi))`` (``(B, K)``), concatenated to
    ``(B, D + K)`` so that one Lie-derivative pass measures both."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if not (hasattr(model, "forward_features") and hasattr(model, "forward_head")):
            raise TypeError(f"{type(model).__name__} is not a timm classifier (no forward_features / forward_head)")
        self.model = model
        self.feature_dim: int | None = None

    def forward(self, x: Tensor) -> Tensor:
        maps = self.model.forward_features(x)
        phi = self.model.forward_head(maps, pre_logits=True).flatten(1)
        logits = self.model.forward_head(maps).flatten(1)
        self.feature_dim = phi.shape[1]
        return torch.cat([F.normalize(phi, dim=-1), torch.softmax(logits, dim=-1)], dim=-1)


def prior_lee(
    model: nn.Module,
    inputs: Tensor,
    generators: str | Sequence[str] = "translate_x",
    image_model: str = "bilinear",
    batch_size: int = 8,
    image_ids: Sequence[str] | None = None,
    sensitivity_draws: int = 0,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (image, generator): ``feature_lee``, ``feature_sensitivity``, ``normalised_feature_lee`` (module
    docstring; ``sensitivity_draws`` Gaussian directions per image, seeded by ``seed`` and the image's index; with
    ``0``, the default, neither column is computed: it doubles the cost),
    ``feature_dim`` ``D``, ``softmax_mean_abs``,
    ``softmax_mean_sq``, ``image_model``.  ``inputs``: preprocessed ``(N, C, H, W)``."""
    gens = [g.name for g in resolve_generators(generators)]
    f = FeaturesAndProbabilities(model).eval()
    rows = []
    with autodiff_ready(f, keep_fused_attention=True):
        for start in range(0, inputs.shape[0], batch_size):
            x = inputs[start : start + batch_size]
            lie = lie_derivative(f, x, gens, "invariant", "forward", image_model).detach().cpu()  # (G, B, D + K)
            d = int(f.feature_dim)
            feat, prob = lie[..., :d], lie[..., d:]
            feature_lee = feat.norm(dim=-1)  # (G, B)
            if sensitivity_draws > 0:
                tangent_norm = lie_action(x, gens, image_model).flatten(2).norm(dim=-1).cpu()  # (G, B)
                with call_overrides("forward"):  # the engine's forward-mode rules, as in lie_derivative
                    sens = input_sensitivity(lambda z, d=d: f(z)[:, :d], x, sensitivity_draws, seed,
                                             range(start, start + x.shape[0])).detach().cpu()  # fmt: skip
            for b in range(x.shape[0]):
                i = start + b
                for gi, g in enumerate(gens):
                    row = {
                        "image": image_ids[i] if image_ids is not None else i, "generator": g,
                        "feature_lee": float(feature_lee[gi, b]), "feature_dim": d,
                        "softmax_mean_abs": float(prob[gi, b].abs().mean()),
                        "softmax_mean_sq": float(prob[gi, b].pow(2).mean()), "image_model": image_model,
                    }  # fmt: skip
                    if sensitivity_draws > 0:
                        row["feature_sensitivity"] = float(sens[b])
                        row["normalised_feature_lee"] = float(
                            feature_lee[gi, b] / max(float(tangent_norm[gi, b] * sens[b]), 1e-30)
                        )  # 0 for exactly constant features
                    rows.append(row)
    return pd.DataFrame(rows)


@register("prior", description="scale-free architecture prior: ||L_g (phi/||phi||)|| of the pooled pre-logit features")
def prior_experiment(
    model,
    inputs,
    image_ids,
    *,
    generators: str = "translate_x",
    image_model: str = "bilinear",
    batch_size: int = 8,
    sensitivity_draws: int = 0,
    seed: int = 0,
) -> pd.DataFrame:
    """Runner experiment ``prior``: :func:`prior_lee` (run it with ``--weights random`` for the prior)."""
    return prior_lee(model, inputs, generators, image_model, int(batch_size), image_ids, int(sensitivity_draws),
                     int(seed))  # fmt: skip
