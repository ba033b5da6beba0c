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
# # 05 · Figures, from the cached results
#
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/OWNER/lieq/main?labpath=notebooks%2F05_figures.ipynb)
#
# Every figure of the compendium, drawn from the result store (`data/results/`) by the figure functions of the
# package `lieq.figures`: no torch, no GPU, no network (`make figures` runs this notebook in a light environment).
# Each cell draws one figure, saves `figures/<name>.pdf` and `.png`, and records the data behind it; a figure whose
# data are not in the selected runs (or fewer than it declares) is skipped with the reason, never drawn from
# placeholder numbers.  The gallery is `figures/README.md`.  This notebook is generated from the figure declarations
# (`python -m lieq.figures notebook`): to add a figure, write one decorated function in `lieq/figures/`.

# %% tags=["parameters"]
RUN = "embedded"  # main run of trained models (embedded here; paper-core / paper from a GPU)
RANDOM_RUN = "random-init"  # random-initialisation sweep
OUT_DIR = None  # None: figures/ of the checkout
RESULTS_ROOT = None  # None: data/results (or $LIEQ_RESULTS)

# %%
import time

from lieq.figures import FIGURES, FigureContext

t0 = time.perf_counter()
ctx = FigureContext(run=RUN, random_run=RANDOM_RUN, root=RESULTS_ROOT, **({"out_dir": OUT_DIR} if OUT_DIR else {}))


def show(name: str) -> None:
    """Draw one figure, display it, and print what it is based on (or why it is skipped)."""
    import matplotlib.pyplot as plt

    o = ctx.draw(name, close=False)
    if o.status == "drawn":
        plt.show()
        print(f"{name}: {o.data}")
    else:
        print(f"{name}: SKIPPED - {o.reason}")


# %% [markdown]
# ## Primer
# Fig. 1 (left): the Lie derivative of a trained classifier on a real photograph. Transform the input along the
# rotation orbit, apply the network, differentiate at t = 0. With the paper's bilinear image model the orbit has a
# kink at t = 0 and the autodiff derivative is a rounding-dependent mix of one-sided derivatives
# (docs/conventions.md section 2); the smooth `central` image model gives a derivative the finite differences
# converge to. The generators: how each moves the image content (`saturate` scales the pixel values instead).

# %%
show("fig1_left_lie_derivative")

# %%
show("primer_lie_fields")

# %%
show("primer_finite_differences")

# %%
show("generator_flow_fields")

# %% [markdown]
# ## End-to-end LEE and accuracy (Fig. 1 right)
# Fig. 1 (right): translation LEE vs top-1. The paper's claim, over ~400 models: more accurate models are more
# equivariant (R^2 = 0.333). The paper's own points (digitised from the authors' vector figure, data/reference/) are
# the reference layer; our models are placed on it by their LEE and timm's published top-1.

# %%
show("fig1_right_lee_vs_accuracy")

# %% [markdown]
# ## Layerwise attribution (Fig. 1 centre, Fig. 4)
# Fig. 1 (centre) and Fig. 4: cumulative layer contributions in execution order, coloured by category, as shares of
# the total beside the paper's ResNet-50 and ViT-Small bars. The paper: in CNNs non-linearities and downsampling
# dominate; in ViTs and Mixers the patch embedding is the largest single term. Similar per-layer shares across
# transformations point to a common cause (aliasing).

# %%
show("fig1_centre_cumulative_layerwise")

# %%
show("fig4a_cumulative_cnn")

# %%
show("fig4b_cumulative_vit_mixer")

# %%
show("fig4c_layer_shares_by_generator")

# %%
show("fig4d_layerwise_lee_vs_eqt")

# %% [markdown]
# ## End-to-end LEE: generators, size, training data, distribution shift
# LEE vs top-1 for every generator, against model size and training recipe, and out of distribution (the paper
# reports an equivariance gap: larger LEE out of distribution).

# %%
show("lee_vs_accuracy_by_generator")

# %%
show("lee_vs_params")

# %%
show("lee_by_pretraining_data")

# %%
show("lee_by_training")

# %%
show("ood_vs_id")

# %%
show("imagenet_train_vs_val")

# %% [markdown]
# ## Baselines
# The paper argues the LEE measures equivariance better than finite metrics; here both are compared on the same
# images.

# %%
show("lee_vs_baselines")

# %% [markdown]
# ## New: what training adds
# LEE at random initialisation (the architecture's prior) vs trained.

# %%
show("random_vs_trained")

# %%
show("random_init_prior")

# %% [markdown]
# ## New: how much of the LEE is the image model
# The sensitivity of the LEE, and of the layer shares, to the choice of continuous image model (docs/conventions.md
# section 2).

# %%
show("image_model_sensitivity")

# %%
show("image_model_sensitivity_random_init")

# %%
show("layer_shares_by_image_model")

# %% [markdown]
# ## Aliasing: the paper's explanation, measured
# Single layers on band-limited signals: a linear pointwise map has zero Lie derivative at every frequency, while
# pointwise non-linearities and strided downsampling create errors that grow as the input approaches Nyquist, and
# anti-aliased (blurred) downsampling creates less. The mechanism: the non-linearity's output has power above
# Nyquist, which folds back on the pixel grid. Whole networks: smoother inputs (low-passed) and anti-aliased
# architectures (BlurPool).

# %%
show("aliasing_single_layers")

# %%
show("aliasing_single_layers_natural")

# %%
show("aliasing_spectra")

# %%
show("lee_vs_input_lowpass")

# %%
show("layer_shares_vs_input_lowpass")

# %%
show("blurpool_vs_plain")

# %% [markdown]
# ## Depth: CIFAR-10 ResNets
# A trained family of increasing depth that we can verify here: the CIFAR-10 ResNets, trained vs random.

# %%
show("cifar_resnet_depth")

# %% [markdown]
# ## New: a controlled zoo trained here (CIFAR-10)
# Models trained here with one recipe (lieq.cifar_zoo, `make zoo`; 20k CIFAR-10 training images x 10 epochs on the
# CPU): a ResNet-style CNN, a patchify ConvNeXt, a ViT and an MLP-Mixer (patch or stem 2-4 px), two sizes, with and
# without translation augmentation (random crops of the 4 px padded image, and flips), with checkpoints through
# training; measured by notebooks/07_cifar_zoo. Family, size, augmentation and training time change one at a time,
# which the paper's pretrained ImageNet models cannot do; the figures say how many models are trained. These are
# small, briefly trained models (about 52-67 % test accuracy): a controlled experiment, not the paper's accuracy
# range.
#
# LEE vs accuracy: the paper's trend is a lower LEE for more accurate models. Across these final models, and along
# every training trajectory, the raw softmax LEE rises with accuracy instead: an untrained network's near-uniform
# output hardly moves under any change, and training makes it confident and sensitive. Through training, the second
# row shows the normalised LEE (experiment e2e-normalised: the Lie derivative's norm over the output's change for a
# random perturbation of the same size), which separates more equivariant from merely more sensitive.
#
# Augmentation: paired per-image ratios on the same test images. A ratio below 1 for translation but not for the
# rotation control would be equivariance learned from the augmentation; below 1 for both, a model that is smoother
# overall. The image-model check asks whether the family order survives the bicubic central image model, train vs
# test whether learned equivariance holds off the training set (the paper finds it similar), and the cumulative
# layerwise panels are the paper's Fig. 4 with transformers and Mixers trained here.

# %%
show("zoo_lee_vs_accuracy")

# %%
show("zoo_lee_through_training")

# %%
show("zoo_augmentation_effect")

# %%
show("zoo_image_model_check")

# %%
show("zoo_train_vs_test")

# %%
show("zoo_fig4b_cumulative")

# %% [markdown]
# ## Index
# `figures/README.md` shows every figure with its caption, the paper figure it corresponds to and the data behind it.

# %%
missing = [s.name for s in FIGURES if s.name not in ctx.outcomes]
assert not missing, f"figures of the index not drawn by this notebook: {missing}"
readme = ctx.write_readme(seconds=time.perf_counter() - t0)
print(readme.read_text())
