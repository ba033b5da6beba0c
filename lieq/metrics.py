"""End-to-end equivariance metrics of classifiers (the Local Equivariance Error, LEE).

For a classifier ``f`` (logits) the end-to-end Lie derivative is taken of the softmax probabilities
``p(x) = softmax(f(x))``, which are invariant (NOTES.md section 1): ``L_g p(x) = J_p(x) v_g``.  Per image and
generator two statistics over the ``K`` classes are recorded:

* ``mean_abs = (1/K) sum_k |L_g p_k(x)|`` -- the statistic of the original end-to-end code (paper Fig. 1 right);
* ``mean_sq  = (1/K) sum_k (L_g p_k(x))^2`` -- the paper's Eq. 4 style (expected squared norm, divided by ``K``).

Units: per unit of the generator parameter (half image widths for translations, radians for rotations).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch
from torch import Tensor, nn

from .engine import autodiff_ready, lie_derivative
from .experiments import register
from .image_model import resolve_generators

__all__ = ["e2e_experiment", "e2e_lee", "SoftmaxClassifier"]


class SoftmaxClassifier(nn.Module):
    """``x -> softmax(model(x))`` over the last axis."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return torch.softmax(self.model(x), dim=-1)


def e2e_lee(
    model: nn.Module,
    images: Tensor,
    labels: Sequence[int] | Tensor | None = None,
    generators: str | Sequence[str] = "e2e",
    image_model: str = "bilinear",
    method: str = "forward",
    batch_size: int = 8,
    image_ids: Sequence[str] | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Per-image end-to-end LEE of a classifier: one row per (image, generator).

    ``images`` are preprocessed model inputs ``(N, C, H, W)``.  Columns: ``image`` (id or index), ``generator``,
    ``mean_abs``, ``mean_sq`` (module docstring), ``image_model``, ``method``, and, when ``labels`` are given,
    ``label``, ``pred`` and ``correct`` (top-1 of the unperturbed image).
    """
    gens = resolve_generators(generators)
    if images.dim() != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")
    n = images.shape[0]
    if image_ids is not None and len(image_ids) != n:
        raise ValueError(f"{len(image_ids)} image ids for {n} images")
    if labels is not None and len(labels) != n:
        raise ValueError(f"{len(labels)} labels for {n} images")
    model = model.eval()
    f = SoftmaxClassifier(model)
    device = next(iter(model.parameters()), images).device
    rows = []
    starts = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="images", unit="batch", leave=False)
    with autodiff_ready(model, keep_fused_attention=method == "forward"):
        for start in starts:
            x = images[start : start + batch_size].to(device)
            lie = lie_derivative(f, x, [g.name for g in gens], "invariant", method, image_model).detach()
            with torch.no_grad():
                pred = model(x).argmax(-1).cpu() if labels is not None else None
            mean_abs = lie.abs().mean(-1).cpu()
            mean_sq = lie.pow(2).mean(-1).cpu()
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
                    if pred is not None:
                        label = int(labels[i])
                        row.update(label=label, pred=int(pred[b]), correct=bool(pred[b] == label))
                    rows.append(row)
    return pd.DataFrame(rows)


@register(
    "e2e",
    defaults={"generators": "e2e", "image_model": "bilinear", "method": "forward", "batch_size": 8},
    description="end-to-end LEE of softmax outputs (mean |L p| and mean (L p)^2 per image and generator)",
)
def e2e_experiment(model, inputs, labels, image_ids, config, progress=False) -> pd.DataFrame:
    """Runner experiment ``e2e``: :func:`e2e_lee` with the configuration's generators, image model and method."""
    return e2e_lee(
        model,
        inputs,
        labels=labels,
        generators=config["generators"],
        image_model=config["image_model"],
        method=config["method"],
        batch_size=int(config["batch_size"]),
        image_ids=image_ids,
        progress=progress,
    )
