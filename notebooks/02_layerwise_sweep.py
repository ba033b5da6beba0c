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
# # 02 · Layerwise sweep: which layers break equivariance
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/lieq/blob/main/notebooks/02_layerwise_sweep.ipynb)
#
# The chain rule splits the Lie derivative into one term per layer, `L f = sum_i J_{N..i+1} (L f_i)`
# (docs/conventions.md section 5).  The contribution of layer i is the squared norm of its term, estimated with Gaussian
# probes in output space.  The paper found that non-linearities and downsampling (CNNs) and the patch embedding (ViTs,
# Mixers) carry most of the error.  Settings of the paper: 20 images x 100 probes, generators translate_x, rotate,
# hyperbolic_rotate, scale, saturate.  On 2 CPU cores the shipped `embedded` run uses translate_x on 20 images x 100
# probes per model, plus all five generators on 20 images x 20 probes for the three models.

# %%
# Colab: install lieq (with torch, timm and the weights packages) before anything imports it; a no-op elsewhere.
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run(["pip", "install", "-q", "lieq[dev] @ git+https://github.com/OWNER/lieq"], check=True)

# %% tags=["parameters"]
PROFILE = "embedded"  # run profile: embedded (CPU: real weights, translation only) | smoke | paper-core | paper
MODELS = None  # models of the layerwise sweep; None: the profile's (layerwise-minimal on a GPU, embedded here)
WEIGHTS = None  # None: the profile's (pip | hub | random | file:PATH)
DATA = None  # ImageNet images; None: ../shared/data/imagenet-sample if present, else the imagenet-sample download
N_IMAGES = None  # images per model; None: the profile's (20, as in the paper)
PROBES = None  # Gaussian probes per image; None: the profile's (100, as in the paper)
DEVICE = "auto"  # auto | cpu | cuda
RUN = None  # None: the profile's run name (results go to <RESULTS_ROOT>/<run>/layerwise/)
RESULTS_ROOT = None  # None: data/results of the checkout (or $LIEQ_RESULTS)
SMOKE = False  # one tiny random model, one image, four probes: for the tests

# %%
from lieq.pipeline import notebook_setup

S = notebook_setup(PROFILE, layerwise_models=MODELS, weights=WEIGHTS, data=DATA, layerwise_images=N_IMAGES,
                   probes=PROBES, device=DEVICE, run=RUN, root=RESULTS_ROOT, smoke=SMOKE)  # fmt: skip
S

# %%
from IPython.display import display

from lieq import figures, results
from lieq.pipeline import check_sweep
from lieq.runner import run_sweep

config = {"probes": S.probes, "generators": "translate_x,rotate" if S.smoke else S.layerwise_generators}
summary = check_sweep(run_sweep("layerwise", S.layerwise_models, weights=S.weights, data=S.data,
                                n_images=S.layerwise_images, run=S.run, device=S.device, config=config,
                                input_size=S.input_size, root=S.root))  # fmt: skip
summary

# %% [markdown]
# A smaller sweep over all five layerwise generators (translate_x, rotate, hyperbolic_rotate, scale, saturate) for
# the per-generator shares of the paper's Fig. 4 (run `<run>-generators`), when the run profile asks for it.

# %%
if S.generators_sweep:
    models, images, probes = S.generators_sweep
    check_sweep(run_sweep("layerwise", models, weights=S.weights, data=S.data, n_images=images,
                          run=f"{S.run}-generators", device=S.device,
                          config={"probes": probes, "generators": "layerwise"}, root=S.root))  # fmt: skip

# %% [markdown]
# Share of the translation error by layer category, and the unattributed share (operations outside modules).

# %%
layers = results.load(S.run, "layerwise", root=S.root)
layers = layers[layers["model"].isin(summary.computed + summary.skipped)]
tx = layers[layers["generator"] == "translate_x"]
per_cat = tx.groupby(["model", "category"])["contribution"].sum() / tx.groupby("model")["contribution"].sum()
display(per_cat.unstack().mul(100).round(1))
tx.groupby("model")["unattributed"].mean().mul(100).round(2).rename("unattributed %")

# %%
figures.use_style()
figures.cumulative_layerwise(tx, list(dict.fromkeys(tx["model"])), per_image=tx)
