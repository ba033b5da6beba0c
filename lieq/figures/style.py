"""The house style of every figure, in one place: fixed colours, readable labels, fonts, sizes, saving.

* **One colour per thing, everywhere.**  A layer category, an architecture family, a generator and an image model
  each have one fixed colour (:data:`CATEGORY_COLORS`, :data:`FAMILY_COLORS`, :data:`GENERATOR_COLORS`,
  :data:`IMAGE_MODEL_COLORS`).  Within one kind the colours are distinct; a figure that shows two kinds at once
  gives the second kind a marker shape or line style (:data:`MODEL_MARKERS`, :data:`MODEL_LINESTYLES`) in neutral
  grey, never a second set of colours.  Individual models are told apart by marker / line style, not by colour.
* **Weights**: filled markers for trained weights, open markers (white face) for random initialisation
  (:func:`marker_kw`).  **Statistics**: means solid, medians dotted (:data:`MEAN_LS`, :data:`MEDIAN_LS`).
* **Fonts** 7-9 pt (:func:`use_style`); **sizes** one column (:data:`ONE_COL` inches wide) or two columns
  (:data:`TWO_COL`).
* **Labels** come from one table (:func:`label`): ``translate_x`` is "translation x", ``tf_efficientnet_lite0.in1k``
  is "EfficientNet-Lite0"; the LEE axis label of a statistic, with its units, is :func:`lee_label`.

Colours: the layer categories use the Okabe-Ito colour-blind-safe palette; families, generators and image models use
Paul Tol's colour-blind-safe sets.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from ..conventions import CATEGORIES, GENERATORS

__all__ = [
    "CATEGORY_COLORS",
    "FAMILY_COLORS",
    "FAMILY_ORDER",
    "GENERATOR_COLORS",
    "IMAGE_MODEL_COLORS",
    "LAYER_KIND_COLORS",
    "LAYER_LABELS",
    "MEAN_LS",
    "MEDIAN_LS",
    "MODEL_LINESTYLES",
    "MODEL_MARKERS",
    "ONE_COL",
    "STAT_LABELS",
    "TWO_COL",
    "WEIGHTS_COLOR",
    "label",
    "layer_label",
    "lee_label",
    "marker_kw",
    "model_label",
    "save",
    "use_style",
]

#: Figure widths in inches: one column and two columns of a paper page.
ONE_COL, TWO_COL = 3.4, 7.0

FAMILY_ORDER: tuple[str, ...] = ("CNN", "ConvNeXt", "ViT", "Mixer")
#: Architecture families (Paul Tol's "bright": blue, red, green; grey for unknown).
FAMILY_COLORS: dict[str, str] = {"CNN": "#4477AA", "ViT": "#EE6677", "Mixer": "#228833", "other": "#BBBBBB",
                                 "ConvNeXt": "#66CCEE"}  # the CIFAR-10 zoo's patchify CNN: cyan, beside CNN blue
#: Layer categories in the order of :data:`lieq.conventions.CATEGORIES` (Okabe-Ito).
CATEGORY_COLORS: dict[str, str] = dict(
    zip(CATEGORIES, ("#CC79A7", "#0072B2", "#D55E00", "#009E73", "#E69F00", "#56B4E9", "#7A6A00", "#999999"))
)
#: Generators in the order of :data:`lieq.conventions.GENERATORS` (Paul Tol's "muted" plus black).
GENERATOR_COLORS: dict[str, str] = dict(
    zip(
        GENERATORS,
        ("#332288", "#88CCEE", "#882255", "#117733", "#44AA99", "#999933", "#DDCC77", "#CC6677", "#AA4499", "#000000"),
    )
)
#: Continuous image models: the three bilinear variants in shades of one hue, then bicubic and Fourier.
IMAGE_MODEL_COLORS: dict[str, str] = {
    "bilinear": "#1B5E20",
    "bilinear_forward": "#4CAF50",
    "bilinear_backward": "#A5D6A7",
    "central": "#7B1FA2",
    "fourier": "#F9A825",
}
#: Kinds of single layers in the aliasing study (shown alone, never beside layer categories): pointwise
#: non-linearities in the Activation colour, downsampling indigo, anti-aliased downsampling dark teal, the zero
#: control grey.
LAYER_KIND_COLORS: dict[str, str] = {
    "pointwise": CATEGORY_COLORS["Activation"],
    "downsampling": "#3B4CC0",
    "anti-aliased": "#01665E",
    "zero control": "#777777",
}
#: Readable names of the single layers of :mod:`lieq.aliasing`.
LAYER_LABELS: dict[str, str] = {
    "relu": "ReLU", "gelu": "GELU", "silu": "SiLU", "tanh": "tanh", "layernorm_channels": "LayerNorm (channels)",
    "linear_pointwise": "linear 1x1 conv", "avgpool": "average pool", "maxpool": "max pool",
    "subsample": "subsampling (stride 2)", "strided_conv": "strided conv", "patch_embed": "patch embedding",
    "blurpool": "BlurPool", "conv_blurpool": "conv + BlurPool", "max_blurpool": "max pool + BlurPool",
}  # fmt: skip
#: Trained vs random weights share one neutral colour where no other kind colours the marks; the difference is the
#: marker fill (:func:`marker_kw`).
WEIGHTS_COLOR = "#333333"
#: Individual models (the second kind in a figure): marker shapes and line styles, cycled in this order.
MODEL_MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h")
MODEL_LINESTYLES: tuple = ("-", "--", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (3, 1)), (0, (1, 1)))
MEAN_LS, MEDIAN_LS = "-", ":"

_GENERATOR_LABELS = {
    "translate_x": "translation x",
    "translate_y": "translation y",
    "rotate": "rotation",
    "scale": "scaling",
    "shear_x": "shear x",
    "shear_y": "shear y",
    "stretch_x": "stretch x",
    "stretch_y": "stretch y",
    "hyperbolic_rotate": "hyperbolic rotation",
    "saturate": "saturation",
    "translate": "translation",
}
#: Units of ``t`` per generator (docs/conventions.md section 3): the LEE is per unit of ``t``.
GENERATOR_UNITS = {
    "translate_x": "per half image width",
    "translate_y": "per half image height",
    "translate": "per half image width",
    "rotate": "per radian",
}
_IMAGE_MODEL_LABELS = {
    "bilinear": "bilinear (paper)",
    "bilinear_forward": "bilinear, forward",
    "bilinear_backward": "bilinear, backward",
    "central": "bicubic (central)",
    "fourier": "Fourier",
}
_OTHER_LABELS = {
    "eq_t": "EQ-T",
    "eq_t_frac": "EQ-T$_\\mathrm{frac}$",
    "eq_r": "EQ-R",
    "consistency": "consistency",
    "consistency_x": "consistency x",
    "consistency_y": "consistency y",
    "consistency_crop": "consistency (crop)",
    "invariance_translate_x": "sampled invariance, translation x",
    "invariance_translate_y": "sampled invariance, translation y",
    "invariance_rotate": "sampled invariance, rotation",
    "sampled_invariance": "sampled invariance",
    "in1k": "ImageNet-1k",
    "cifar10-test": "CIFAR-10 test, upsampled",
    "cifar100": "CIFAR-100 test, upsampled",
    "cifar10": "CIFAR-10 test, upsampled",
    "in21k": "ImageNet-21k",
    "random": "random init",
    "trained": "trained",
}
#: Architecture prefixes (timm names) -> readable names; the tail (a depth or size) is appended as written.
_ARCH_LABELS = (
    (r"tf_efficientnet_lite(\d)", "EfficientNet-Lite{0}"),
    (r"efficientnet_blur_b(\d)", "EfficientNet-B{0} (BlurPool)"),
    (r"efficientnet_b(\d)", "EfficientNet-B{0}"),
    (r"resnetblur(\d+)d?", "ResNet-{0} (BlurPool)"),
    (r"resnet(\d+)", "ResNet-{0}"),
    (r"densenetblur(\d+)d?", "DenseNet-{0} (BlurPool)"),
    (r"densenet(\d+)", "DenseNet-{0}"),
    (r"vit_(tiny|small|base|large)_patch(\d+)_(\d+)", "ViT-{0}/{1}"),
    (r"mixer_(s|b|l)(\d+)_224", "Mixer-{0}/{1}"),
    (r"convnext_(\w+)", "ConvNeXt-{0}"),
)


def model_label(model: object) -> str:
    """A readable model name: ``tf_efficientnet_lite0.in1k`` -> ``EfficientNet-Lite0``, ``resnet50.a1_in1k`` ->
    ``ResNet-50``; unknown names lose only their pretrained tag (the text after ``.``)."""
    arch = str(model).split(".", 1)[0]
    zoo = re.fullmatch(r"cifar-(resnet|convnext|vit|mixer)-(s|m)-(aug|noaug)(?:@e(\d+))?", arch)
    if zoo:  # the CIFAR-10 zoo (lieq.cifar_zoo): "zoo ViT-m, aug, epoch 4"
        fam = {"resnet": "ResNet", "convnext": "ConvNeXt", "vit": "ViT", "mixer": "Mixer"}[zoo.group(1)]
        aug = "aug" if zoo.group(3) == "aug" else "no aug"
        return f"zoo {fam}-{zoo.group(2)}, {aug}" + (f", epoch {zoo.group(4)}" if zoo.group(4) else "")
    for pattern, fmt in _ARCH_LABELS:
        m = re.fullmatch(pattern, arch)
        if m:
            groups = [g.capitalize() if g.isalpha() else g for g in m.groups()]
            return fmt.format(*groups)
    return arch


def layer_label(name: object) -> str:
    """The readable name of a single layer of the aliasing study (``maxpool`` -> ``max pool``)."""
    return LAYER_LABELS.get(str(name), str(name).replace("_", " "))


def label(name: object) -> str:
    """The readable label of a generator, image model, baseline metric, data source or model (one table)."""
    s = str(name)
    for table in (_GENERATOR_LABELS, _IMAGE_MODEL_LABELS, _OTHER_LABELS):
        if s in table:
            return table[s]
    return model_label(s)


#: The LEE statistics (docs/conventions.md section 4).
STAT_LABELS = {"mean_abs": "mean |L p|", "mean_sq": "mean (L p)$^2$"}


def lee_label(stat: str = "mean_abs", generator: str | None = None, log: bool = False) -> str:
    """The one LEE axis label of a statistic, with its units: ``translation x LEE: mean |L p| (per half image
    width)``, the mean over classes of the softmax output ``p`` (unit-free), so the LEE is per unit of the
    generator's ``t``."""
    what = f"{label(generator)} LEE" if generator else "LEE"
    unit = GENERATOR_UNITS.get(generator or "", "per unit t")
    if stat == "mean_sq":
        unit = unit.replace("per ", "per (") + ")$^2$" if unit.startswith("per ") else unit
    return f"{what}: {STAT_LABELS.get(stat, stat)} ({unit}{', log scale' if log else ''})"


def marker_kw(color: str, random: bool = False) -> dict:
    """Scatter / errorbar keywords for one mark: filled for trained weights, open (white face) for random init."""
    if random:
        return {"markerfacecolor": "white", "markeredgecolor": color, "color": color}
    return {"markerfacecolor": color, "markeredgecolor": color, "color": color}


def use_style() -> None:
    """The house style: white grid, fonts 7-9 pt, vector-friendly PDF fonts."""
    import seaborn as sns

    sns.set_theme(context="paper", style="whitegrid", font_scale=1.0)
    plt.rcParams.update(
        {
            "figure.dpi": 80,
            "savefig.dpi": 200,
            "pdf.fonttype": 42,
            "font.size": 8,
            "axes.titlesize": 8,
            "axes.labelsize": 8,
            "xtick.labelsize": 7,
            "ytick.labelsize": 7,
            "legend.fontsize": 7,
            "legend.title_fontsize": 7,
            "figure.titlesize": 9,
            "legend.frameon": True,
            "legend.framealpha": 0.9,
        }
    )


def save(fig: Figure, out_dir, name: str, dpi: int = 200) -> list[Path]:
    """Write ``<out_dir>/<name>.pdf`` (vector) and ``.png`` (``dpi``); returns the two paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.pdf", out / f"{name}.png"]
    fig.savefig(paths[0], bbox_inches="tight", metadata={"CreationDate": None})
    fig.savefig(paths[1], bbox_inches="tight", dpi=dpi)
    return paths
