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
# Results go to the runs `aliasing` and `image-model` of the store.  With `SMOKE` every study runs on tiny inputs.

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
from IPython.display import display

from lieq import aliasing, results

n = 2  # images per model in SMOKE mode
#: Arguments of each study in the shipped runs (images per model, probes, seeds), so that a full run reproduces them.
SHIPPED_ARGS = {
    "smoothness": ["--n-images", "4"],
    "layerwise-smoothness": ["--n-images", "2", "--probes", "10"],
    "blurpool": ["--n-images", "4", "--seeds", "0,1"],
    "audit": ["--n-images", "20"],
    "layerwise-audit": ["--n-images", "2", "--probes", "10"],
    "trained": ["--n-images", "4", "--seeds", "0,1"],
}
#: Section of ``python -m lieq.aliasing`` -> where it stores its results (run, experiment).
SECTIONS = {
    "layers": ("aliasing", "layers"),
    "spectra": ("aliasing", "spectra"),
    "smoothness": ("aliasing", "smoothness"),
    "layerwise-smoothness": ("aliasing", "layerwise_smoothness"),
    "blurpool": ("aliasing", "blurpool"),
    "audit": ("image-model", "audit"),
    "layerwise-audit": ("image-model", "layerwise_audit"),
    "trained": ("image-model", "trained_vs_random"),
}


def run_section(section: str, *args: str) -> None:
    """Run one study of ``lieq.aliasing`` unless its results are already in the store."""
    run, experiment = SECTIONS[section]
    try:
        if not results.load(run, experiment).empty:
            print(f"{section}: cached in run '{run}' / {experiment}")
            return
    except FileNotFoundError:
        pass
    aliasing.main([section, *args])


# %% [markdown]
# ## 1. Single layers vs input frequency, and the mechanism

# %%
if S.smoke:
    fracs = (0.2, 0.9)
    table = aliasing.layer_study(["linear_pointwise", "relu", "subsample", "blurpool"], fracs, ("bilinear",),
                                 size=17, channels=2, batch=1)  # fmt: skip
    aliasing.store(table, "aliasing", "layers", "single-layers", {"smoke": True}, "random:seed=0", "dct-modes")
    spectra, summary = aliasing.nonlinearity_spectra(fracs, size=17, oversample=4, nonlinearities=("relu",))
    aliasing.store(spectra, "aliasing", "spectra", "nonlinearities", {"smoke": True}, "none", "dct-modes")
    aliasing.store(summary, "aliasing", "spectra_summary", "nonlinearities", {"smoke": True}, "none", "dct-modes")
else:
    run_section("layers")
    run_section("spectra")
layers = results.load("aliasing", "layers")
layers.groupby(["kind", "layer", "frac"])["rel"].mean().unstack().round(3)

# %% [markdown]
# ## 2-4. Whole networks, the image model, training

# %%
if S.smoke:
    from lieq.data import load_source, preprocess
    from lieq.weights import create_model

    imgs = load_source("embedded", n)
    model, source = create_model("test_resnet.r160_in1k", "random")
    x = preprocess(imgs.images, model, input_size=64)
    t = aliasing.input_smoothness(model, x, imgs.ids, None, (1.5, 0.5), ("translate_x",))
    aliasing.store(t, "aliasing", "smoothness", "test_resnet.r160_in1k", {"smoke": True}, source, "embedded")
    t = aliasing.image_model_audit(model, x, imgs.ids, None, ("bilinear", "central"), "translate_x")
    aliasing.store(t, "image-model", "audit", "test_resnet.r160_in1k", {"smoke": True}, source, "embedded")
else:
    for section, args in SHIPPED_ARGS.items():
        run_section(section, *args)
results.load("image-model", "audit").groupby(["model", "image_model"])["mean_abs"].mean().unstack()

# %% [markdown]
# ## 4b. A trained family we can verify here: CIFAR-10 ResNet-20/32/44/56
# Checkpoints from a folder (`../shared/data/cifar10-resnet` here) or the public repository's files when online;
# evaluated on CIFAR-10 test images, all generators, trained vs random initialisation.

# %%
from lieq import cifar

cifar_data = aliasing.SHARED / "cifar10-test"
if S.smoke:
    if cifar_data.is_dir():
        x, labels, ids = cifar.load_cifar_folder(cifar_data, n_images=2)
        t = cifar.lee_vs_depth(x, labels, ids, depths=(20,), weights="random", generators="translate_x")
        aliasing.store(t, "cifar-resnet", "lee", "resnet20", {"smoke": True}, "random:seed=0", "cifar10-test")
else:
    try:
        cached = not results.load("cifar-resnet", "lee").empty
    except FileNotFoundError:
        cached = False
    if not cached:
        cifar.main([])
try:
    lee = results.load("cifar-resnet", "lee")
    display(lee.groupby(["depth", "weights", "generator"])["mean_abs"].mean().unstack().round(4))
except FileNotFoundError:
    print("no CIFAR-10 ResNet results (no CIFAR-10 test folder here)")
