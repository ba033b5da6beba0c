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
# The metrics used before the Lie derivative (NOTES.md section 5): consistency under circular shifts and Zhang's
# crops, StyleGAN3's EQ-T, EQ-T_frac and EQ-R applied to the classifier, and sampled invariance under small finite
# transformations, computed on the same models and images as the end-to-end sweep; then their layerwise versions
# (EQ-T, EQ-T_frac on each layer's input and output) for the paper's Fig. 4 (right).  The shipped `embedded` results
# use 20 samples per image and metric on the 100 images of the end-to-end sweep, and the layerwise versions 2 samples
# on 1 image, on 2 CPU cores; the paper's setting is 10 x 20 = 200 samples on every image.

# %%
# On Colab: install lieq with its compute extras (the runtime's GPU is picked by DEVICE = "auto").
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "lieq[dev] @ git+https://github.com/OWNER/lieq"],
                   check=True)  # fmt: skip

# %% tags=["parameters"]
PRESET = "embedded"  # embedded (here: CPU, offline, real weights) | smoke (tests) | paper-core | paper (GPU + hub)
MODELS = None  # None: the preset's models (a preset name or comma-separated timm tags)
WEIGHTS = None  # None: the preset's (pip | hub | random | file:PATH)
DATA = None  # None: ../shared/data/imagenet-sample if present, else the imagenet-sample download
N_IMAGES = None  # None: the preset's (100 end to end, 20 layerwise)
PROBES = None  # None: the preset's (100)
DEVICE = "auto"  # auto | cpu | cuda
RUN = None  # None: the preset's run name (results go to data/results/<run>/)
RESULTS_ROOT = None  # None: data/results (or $LIEQ_RESULTS)
SMOKE = False  # tiny random models, two images, CPU: for the tests

# %%
from lieq.pipeline import notebook_settings

S = notebook_settings(PRESET, models=MODELS, weights=WEIGHTS, data=DATA, n_images=N_IMAGES, probes=PROBES,
                      device=DEVICE, run=RUN, root=RESULTS_ROOT, smoke=SMOKE)  # fmt: skip
S

# %%
from lieq import results
from lieq.pipeline import check_sweep
from lieq.runner import run_sweep

summary = check_sweep(run_sweep("baselines", S.models, weights=S.weights, data=S.data,
                                n_images=S.baseline_images or S.n_images, run=S.run, device=S.device,
                                config={"samples": S.baseline_samples}, input_size=S.input_size))  # fmt: skip
check_sweep(run_sweep("layerwise-baselines", S.layerwise_baseline_models or S.layerwise_models, weights=S.weights,
                      data=S.data, n_images=S.layerwise_baseline_images or S.layerwise_images, run=S.run,
                      device=S.device,
                      config={"samples": S.layerwise_baseline_samples}, input_size=S.input_size))  # fmt: skip

# %% [markdown]
# Mean of each baseline per model.

# %%
base = results.load(S.run, "baselines")
base = base[base["model"].isin(summary.computed + summary.skipped)]
mse = base[base["stat"] == "mse"].rename(columns={"value": "mse"}) if "stat" in base else base
mse.groupby(["model", "metric"])["mse"].mean().unstack().T
