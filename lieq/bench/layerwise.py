"""Layerwise attribution cost: batched probes (one batched backward) vs the one-probe-at-a-time loop.

Models ``resnet50`` and ``vit_small_patch16_224`` (random init, 224 px, one image, generator ``translate_x``,
100 probes).  ``batched`` is :func:`lieq.attribution.layerwise` (one forward pass with the layer hooks, one reverse
pass with all probes vectorised); ``loop`` is the original code's approach (for each probe, a forward pass with the
hooks and a backward pass), ``method="loop"`` of the same function, with the same probes.  Columns:
``model, method, device, probes, seconds, fpe`` (fpe: seconds over one plain no-grad forward pass of the same
image).  The loop's cost is linear in the probes (each probe is an independent forward + backward pass); on slow
machines ``loop_probes`` < ``probes`` measures it on fewer probes and the ``probes`` column says how many.  The
relative difference of the two methods on the loop's probes is printed (they use identical probes).
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import timm
import torch

from ..attribution import layerwise
from . import seconds

MODELS = ("resnet50", "vit_small_patch16_224")


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def run(device: str = "cpu", probes: int = 100, loop_probes: int | None = None) -> pd.DataFrame:
    loop_probes = probes if loop_probes is None else loop_probes
    rows = []
    for name in MODELS:
        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False).eval().to(device)
        x = torch.randn(1, 3, 224, 224, device=device)
        with torch.no_grad():
            plain = seconds(lambda: model(x), repeats=5)  # noqa: B023
        layerwise(model, x, "translate_x", probes=2)  # warm-up (stencils, allocator)
        t_batched, batched = _timed(lambda: layerwise(model, x, "translate_x", probes=probes))  # noqa: B023
        t_loop, loop = _timed(
            lambda: layerwise(model, x, "translate_x", probes=loop_probes, method="loop")  # noqa: B023
        )
        _, same = _timed(lambda: layerwise(model, x, "translate_x", probes=loop_probes))  # noqa: B023
        for method, t, p in (("batched", t_batched, probes), ("loop", t_loop, loop_probes)):
            rows.append(
                {"model": name, "method": method, "device": device, "probes": p, "seconds": t, "fpe": t / plain}
            )
        a, b = same.contribution.to_numpy(), loop.contribution.to_numpy()
        rel = float(np.abs(a - b).sum() / max(np.abs(b).sum(), 1e-30))
        per_probe = (t_loop / loop_probes) / (t_batched / probes)
        print(
            f"{name} on {device}: batched {t_batched:.1f}s for {probes} probes ({t_batched / plain:.0f} fpe), "
            f"loop {t_loop:.1f}s for {loop_probes} probes; per-probe cost ratio loop/batched {per_probe:.1f}; "
            f"contributions batched vs loop on the same probes: relative difference {rel:.1e}; "
            f"unattributed {float(batched.unattributed.iloc[0]):.2e}"
        )
    return pd.DataFrame(rows)
