"""Layerwise attribution cost: the vectorised implementations vs the one-probe-at-a-time loop.

Models ``resnet50`` and ``vit_small_patch16_224`` (random init, 224 px, one image, generator ``translate_x``,
100 probes), all with :func:`lieq.attribution.layerwise` and the same probes:

* ``forward`` (the default): every layer call's term ``J_{N..i+1} L f_i`` by vectorised forward-mode passes (each
  chunk of calls runs without tangents up to its first call), then the probes are dotted with the terms;
* ``reverse``: one forward pass with the hooks, then one reverse pass with the probes vectorised
  (``is_grads_batched``);
* ``loop``: the original code's approach -- the layers' Lie derivatives are recorded once, then for each probe one
  forward pass and one backward pass.  Its cost is linear in the probes; on slow machines ``loop_probes`` <
  ``probes`` measures it on fewer probes and the ``probes`` column says how many (``fpe_per_probe`` compares).

Columns: ``model, method, device, probes, seconds, fpe, fpe_per_probe`` (fpe: seconds over one plain no-grad forward
pass of the same image).  The relative difference of the contributions of each method and the loop on the loop's
probes is printed (identical probes: the values agree to float rounding).
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


def run(device: str = "cpu", probes: int = 100, loop_probes: int | None = 20) -> pd.DataFrame:
    loop_probes = probes if loop_probes is None else min(loop_probes, probes)
    rows = []
    for name in MODELS:
        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False).eval().to(device)
        x = torch.randn(1, 3, 224, 224, device=device)
        with torch.no_grad():
            plain = seconds(lambda: model(x), repeats=5)  # noqa: B023
        layerwise(model, x, "translate_x", probes=2)  # warm-up (stencils, allocator)
        timed = {}
        for method in ("forward", "reverse"):
            timed[method] = _timed(lambda: layerwise(model, x, "translate_x", probes=probes, method=method))  # noqa: B023
        timed["loop"] = _timed(
            lambda: layerwise(model, x, "translate_x", probes=loop_probes, method="loop")  # noqa: B023
        )
        loop = timed["loop"][1]
        for method, (t, _) in timed.items():
            p = loop_probes if method == "loop" else probes
            rows.append({
                "model": name, "method": method, "device": device, "probes": p, "seconds": t, "fpe": t / plain,
                "fpe_per_probe": t / plain / p,
            })  # fmt: skip
        per_probe = {m: r["fpe_per_probe"] for m, r in zip(timed, rows[-3:], strict=True)}
        for method in ("forward", "reverse"):
            same = layerwise(model, x, "translate_x", probes=loop_probes, method=method)
            a, b = same.contribution.to_numpy(), loop.contribution.to_numpy()  # type: ignore[union-attr]
            rel = float(np.abs(a - b).sum() / max(np.abs(b).sum(), 1e-30))
            print(
                f"{name} on {device}: {method} {per_probe[method] * probes:.0f} fpe for {probes} probes, loop "
                f"{per_probe['loop'] * probes:.0f} fpe (scaled from {loop_probes} probes): loop / {method} = "
                f"{per_probe['loop'] / per_probe[method]:.1f}x; contributions vs loop on the same probes: relative "
                f"difference {rel:.1e}"
            )
    return pd.DataFrame(rows)
