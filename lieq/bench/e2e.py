"""End-to-end LEE cost: the original paper's 8 generators, forward mode vs the double-backward reference.

Models ``resnet50`` and ``vit_small_patch16_224`` (random init, 224 px, batch 8); on CUDA also a larger batch.
Columns: ``model, method, image_model, device, batch, n_generators, seconds, fpe``.  The two methods are also
checked to agree numerically (the relative difference is printed).
"""

from __future__ import annotations

import pandas as pd
import timm
import torch

from ..engine import lie_derivative
from ..image_model import E2E_GENERATORS
from ..metrics import SoftmaxClassifier
from . import seconds

MODELS = ("resnet50", "vit_small_patch16_224")


def _timed_lie_derivative(f, x, method: str, repeats: int) -> tuple[float, torch.Tensor]:
    out: list[torch.Tensor] = []
    t = seconds(lambda: out.append(lie_derivative(f, x, E2E_GENERATORS, method=method)), repeats=repeats)
    return t, out[-1]


def _plain_forward(model, x) -> float:
    with torch.no_grad():
        return seconds(lambda: model(x), repeats=5)


def run(device: str = "cpu", batches: tuple[int, ...] | None = None) -> pd.DataFrame:
    batches = batches or ((8, 64) if device == "cuda" else (8,))
    rows = []
    for name in MODELS:
        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False).eval().to(device)
        f = SoftmaxClassifier(model)
        for batch in batches:
            x = torch.randn(batch, 3, 224, 224, device=device)
            plain = _plain_forward(model, x)
            results = {}
            for method in ("forward", "double_backward"):
                t, results[method] = _timed_lie_derivative(f, x, method, repeats=3 if method == "forward" else 1)
                rows.append({
                    "model": name, "method": method, "image_model": "bilinear", "device": device, "batch": batch,
                    "n_generators": len(E2E_GENERATORS), "seconds": t, "fpe": t / plain,
                })  # fmt: skip
            a, b = results["forward"], results["double_backward"]
            rel = float((a - b).norm() / b.norm())
            print(f"{name} batch {batch} on {device}: forward vs double_backward relative difference {rel:.2e}")
    return pd.DataFrame(rows)
