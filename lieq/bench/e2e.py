"""End-to-end LEE cost: the original paper's 8 generators, forward mode vs the double-backward reference.

Models ``resnet50`` and ``vit_small_patch16_224`` (random init, 224 px, batch 8); on CUDA also a larger batch.
Columns: ``model, method, image_model, device, batch, n_generators, seconds, fpe``.  The two methods are also
checked to agree numerically (the relative difference is printed).

All times are the best of several runs.  The plain forward pass (the fpe denominator) is warmed up, then timed five
times before and five times after the Lie derivatives: in a fresh process its first calls are up to 1.5x slower (its
memory is not yet paged in), which would otherwise flatter every ratio.  A second table, ``e2e_ablation``, times
the forward engine with its two algorithmic shortcuts switched off (``basis=False``: one tangent pass per generator;
``fold_batch_norm=False``), side by side with the default.
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

#: Forward-engine variants of the ablation table (keyword arguments of :func:`lieq.lie_derivative`).
ABLATION = {
    "default": {},
    "no batch-norm folding": {"fold_batch_norm": False},
    "no basis, no folding": {"basis": False, "fold_batch_norm": False},
}


def _plain_forward(model, x, repeats: int = 5) -> list[float]:
    with torch.no_grad():
        return [seconds(lambda: model(x), repeats=1, warmup=0) for _ in range(repeats)]


def _measure(model, f, x: torch.Tensor, name: str, device: str) -> tuple[list[dict], list[dict]]:
    batch = x.shape[0]
    with torch.no_grad():
        seconds(lambda: model(x), repeats=1, warmup=3)
    plain_times = _plain_forward(model, x)
    timings, results = {}, {}
    for method, repeats in (("forward", 3), ("double_backward", 2)):
        out: list[torch.Tensor] = []
        timings[method] = seconds(
            lambda m=method, out=out: out.append(lie_derivative(f, x, E2E_GENERATORS, method=m)),
            repeats=repeats,
            best=True,
        )
        results[method] = out[-1]
    variants = {
        label: seconds(lambda kw=kw: lie_derivative(f, x, E2E_GENERATORS, **kw), repeats=2, best=True)
        for label, kw in ABLATION.items()
    }
    plain_times += _plain_forward(model, x)
    plain = min(plain_times)
    rows = [
        {"model": name, "method": method, "image_model": "bilinear", "device": device, "batch": batch,
         "n_generators": len(E2E_GENERATORS), "seconds": t, "fpe": t / plain}
        for method, t in timings.items()
    ]  # fmt: skip
    ablation = [
        {"model": name, "device": device, "batch": batch, "forward_variant": label, "seconds": t, "fpe": t / plain}
        for label, t in variants.items()
    ]
    a, b = results["forward"], results["double_backward"]
    rel = float((a - b).norm() / b.norm())
    fwd, ref = timings["forward"] / plain, timings["double_backward"] / plain
    print(
        f"{name} batch {batch} on {device}: plain forward {plain * 1e3:.0f} ms (range "
        f"{min(plain_times) * 1e3:.0f}-{max(plain_times) * 1e3:.0f}); forward {fwd:.1f} fpe, double_backward "
        f"{ref:.1f} fpe ({ref / fwd:.1f}x); relative difference {rel:.2e}"
    )
    return rows, ablation


def run(device: str = "cpu", batches: tuple[int, ...] | None = None) -> pd.DataFrame:
    batches = batches or ((8, 64) if device == "cuda" else (8,))
    rows, ablation = [], []
    for name in MODELS:
        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False).eval().to(device)
        f = SoftmaxClassifier(model)
        for batch in batches:
            x = torch.randn(batch, 3, 224, 224, device=device)
            measured, ablated = _measure(model, f, x, name, device)
            rows += measured
            ablation += ablated
    table = pd.DataFrame(rows)
    table.attrs["extra"] = {"e2e_ablation": pd.DataFrame(ablation)}
    return table
