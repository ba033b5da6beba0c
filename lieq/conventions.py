"""The method's conventions as data: generators, generator sets, layer categories, metrics, statistics and names.

This module is the single source of truth that the compute side (:mod:`lieq.image_model`, :mod:`lieq.layers`,
:mod:`lieq.baselines`) and the torch-free side (:mod:`lieq.tables`, :mod:`lieq.figures`) both read; it imports
only the standard library and numpy.

Generators.  A transformation acts by resampling, ``(T_t x)(p) = x(A(t) p)``, where ``A(t)`` is a 2x3 affine map
of normalised coordinates in the ``align_corners=True`` convention (the centres of the first and last pixel sit at
-1 and +1) with ``A(0) = [I | 0]``.  A *spatial* generator is declared by its Lie-algebra element
``dA/dt |_{t=0}`` (the 2x3 matrix :attr:`GeneratorSpec.algebra`); its finite map ``A(t)`` lives in
:mod:`lieq.image_model`, and ``tests/test_conventions.py`` checks that the derivative at ``t = 0`` of that map is the
element declared here.  A *pointwise* generator has no affine map: it acts on the values, not the positions
(``saturate``: ``x -> (1 + t) x`` on the normalised tensor, so its infinitesimal action is ``x`` itself).  Units:
translations per half image width / height (``t = 1`` shifts by ``(W - 1) / 2`` pixels), angles in radians.

Baseline metrics (:data:`BASELINE_METRICS`) compare a classifier's softmax output ``p`` under *discrete* (integer
pixel shifts, crops) or *finite* (continuous, resampled) transformations; the Lie derivative itself is the
*infinitesimal* counterpart.  Each baseline has a partner LEE generator for the rank correlations; the partner
``translate`` is the mean of the LEE of ``translate_x`` and ``translate_y`` (:data:`COMPOSITE_PARTNERS`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "ALIASING_RUN",
    "BASELINE_METRICS",
    "CATEGORIES",
    "CIFAR_RUN",
    "COMPOSITE_PARTNERS",
    "DEFAULT_PRECISION",
    "E2E_BASELINE_STATS",
    "E2E_GENERATORS",
    "E2E_METRICS",
    "EXPERIMENTS",
    "GENERATORS",
    "GENERATOR_SETS",
    "IMAGE_MODEL_RUN",
    "LAYERWISE_BASELINE_STATS",
    "LAYERWISE_GENERATORS",
    "LAYERWISE_METRICS",
    "LEE_PARTNER",
    "LEE_STATS",
    "POINTWISE_GENERATORS",
    "PRECISIONS",
    "SPATIAL_GENERATORS",
    "STORE",
    "ZOO_GENERATORS_RUN",
    "ZOO_RUN",
    "ZOO_TRAIN_RUN",
    "BaselineMetric",
    "GeneratorSpec",
    "algebra_element",
    "generator_names",
    "is_pointwise",
    "partner_components",
]


# --------------------------------------------------------------------------------------------------------------
# Generators
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratorSpec:
    """One generator of a one-parameter transformation group.

    ``algebra`` is ``dA/dt`` at ``t = 0`` as two rows of three numbers (``[[m00, m01, b0], [m10, m11, b1]]``, the
    velocity of the sample point of pixel ``p`` is ``algebra @ (p, 1)``), or ``None`` for a pointwise generator.
    """

    name: str
    algebra: tuple[tuple[float, float, float], tuple[float, float, float]] | None
    description: str

    @property
    def pointwise(self) -> bool:
        """``True`` for a generator that acts on the values (no affine map), ``False`` for a resampling."""
        return self.algebra is None

    @property
    def spatial(self) -> bool:
        return not self.pointwise


GENERATORS: dict[str, GeneratorSpec] = {
    g.name: g
    for g in [
        GeneratorSpec("translate_x", ((0, 0, 1), (0, 0, 0)), "A = [I | (t, 0)]: shift along x, t in half image widths"),
        GeneratorSpec(
            "translate_y", ((0, 0, 0), (0, 0, 1)), "A = [I | (0, t)]: shift along y, t in half image heights"
        ),
        GeneratorSpec(
            "rotate",
            ((0, 1, 0), (-1, 0, 0)),
            "A = [[cos t, sin t], [-sin t, cos t]]: rotation about the centre, radians",
        ),
        GeneratorSpec("scale", ((-1, 0, 0), (0, -1, 0)), "A = (1 - t) I: isotropic scaling about the centre"),
        GeneratorSpec("shear_x", ((0, 1, 0), (0, 0, 0)), "A = [[1, t], [0, 1]]"),
        GeneratorSpec("shear_y", ((0, 0, 0), (1, 0, 0)), "A = [[1, 0], [t, 1]]"),
        GeneratorSpec("stretch_x", ((1, 0, 0), (0, 0, 0)), "A = diag(1 + t, 1) (identity at t = 0)"),
        GeneratorSpec("stretch_y", ((0, 0, 0), (0, 1, 0)), "A = diag(1, 1 + t) (identity at t = 0)"),
        GeneratorSpec("hyperbolic_rotate", ((0, 1, 0), (1, 0, 0)), "A = [[cosh t, sinh t], [sinh t, cosh t]]"),
        GeneratorSpec("saturate", None, "x -> (1 + t) x on the normalised tensor (pointwise, not a resampling)"),
    ]
}

#: Names of the spatial (resampling) and of the pointwise generators, in the order of :data:`GENERATORS`.
SPATIAL_GENERATORS: tuple[str, ...] = tuple(n for n, g in GENERATORS.items() if g.spatial)
POINTWISE_GENERATORS: tuple[str, ...] = tuple(n for n, g in GENERATORS.items() if g.pointwise)

#: Generators of the original end-to-end runs, in the original order.
E2E_GENERATORS: tuple[str, ...] = (
    "translate_x",
    "translate_y",
    "rotate",
    "shear_x",
    "shear_y",
    "stretch_x",
    "stretch_y",
    "saturate",
)
#: Generators of the original layerwise runs.
LAYERWISE_GENERATORS: tuple[str, ...] = ("translate_x", "rotate", "hyperbolic_rotate", "scale", "saturate")
#: Named generator sets (accepted wherever a list of generators is).
GENERATOR_SETS: dict[str, tuple[str, ...]] = {
    "e2e": E2E_GENERATORS,
    "layerwise": LAYERWISE_GENERATORS,
    "all": tuple(GENERATORS),
}


def generator_names(generators: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """Names of a generator selection: a set name of :data:`GENERATOR_SETS` (``None`` = ``e2e``), a comma-separated
    string or a sequence of names; raises ``ValueError`` for unknown names or an empty selection."""
    if generators is None:
        names: list[str] = list(E2E_GENERATORS)
    elif isinstance(generators, str) and generators in GENERATOR_SETS:
        names = list(GENERATOR_SETS[generators])
    elif isinstance(generators, str):
        names = [n.strip() for n in generators.split(",") if n.strip()]
    else:
        names = list(generators)
    unknown = [n for n in names if n not in GENERATORS]
    if unknown:
        raise ValueError(f"unknown generator(s) {', '.join(unknown)}; known: {', '.join(GENERATORS)}")
    if not names:
        raise ValueError("no generator given")
    return names


def is_pointwise(name: str) -> bool:
    """Whether generator ``name`` acts on the values (``saturate``) rather than by resampling."""
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; known: {', '.join(GENERATORS)}")
    return GENERATORS[name].pointwise


def algebra_element(name: str) -> np.ndarray:
    """The declared ``dA/dt`` at ``t = 0`` of a spatial generator as a float64 ``(2, 3)`` array."""
    if name not in GENERATORS:
        raise ValueError(f"unknown generator {name!r}; known: {', '.join(GENERATORS)}")
    spec = GENERATORS[name]
    if spec.algebra is None:
        raise ValueError(f"{name} is a pointwise generator: it has no affine map")
    return np.array(spec.algebra, dtype=np.float64)


# --------------------------------------------------------------------------------------------------------------
# Layer categories (lieq.layers assigns them; the figures colour and order by them)
# --------------------------------------------------------------------------------------------------------------

#: Layer categories of the layerwise attribution, in the one order used everywhere (legends, stacks, colours).
CATEGORIES: tuple[str, ...] = ("Embedding", "Conv", "Activation", "Norm", "Pool", "Attention", "Linear/MLP", "Other")


# --------------------------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------------------------

#: Per-image statistics of the end-to-end (and layerwise-study) LEE of the softmax output ``p`` over ``K`` classes.
LEE_STATS: dict[str, str] = {
    "mean_abs": "(1/K) sum_k |L p_k(x)|: the original end-to-end code's statistic (paper Fig. 1 right)",
    "mean_sq": "(1/K) sum_k (L p_k(x))^2: the paper's Eq. 4 style (expected squared norm divided by K)",
}
#: Statistics of the end-to-end baseline tables (the ``stat`` column of their long format).
E2E_BASELINE_STATS: dict[str, str] = {
    "mse": "E_s[(1/K) sum_k (p_k(T_s x) - p_k(x))^2]: mean over samples of the mean squared change of p",
    "mse_sem": "standard error over samples of mse",
    "psnr": "StyleGAN3's 20 log10(2) - 10 log10(mse) in dB (metrics with psnr=True only)",
    "consistency": "fraction of samples whose top-1 class agrees (consistency metrics only)",
    "range": "r of the sampled parameter t ~ U[-r, r] (sampled invariance only)",
    "mse_scaled": "3 mse / r^2, the first-order estimate of the LEE's mean_sq (sampled invariance only)",
    "valid": "mean fraction of valid (not zero-filled) pixels (EQ-T, EQ-T_frac)",
}
#: Statistics of the layerwise baseline tables.
LAYERWISE_BASELINE_STATS: dict[str, str] = {
    "mse": "masked mean over channels and pixels of the squared equivariance error, mean over samples",
    "nmse": "sum(mask e^2) / sum(mask shift_out(g(h))^2): dimensionless, comparable across layers",
    "psnr": "StyleGAN3 PSNR of mse (features are not in [-1, 1]: compare within a layer only)",
}


# --------------------------------------------------------------------------------------------------------------
# Baseline metrics
# --------------------------------------------------------------------------------------------------------------

#: LEE partners that are combinations of generators: the mean of the components' per-image LEE.
COMPOSITE_PARTNERS: dict[str, tuple[str, ...]] = {"translate": ("translate_x", "translate_y")}


@dataclass(frozen=True)
class BaselineMetric:
    """Properties of one finite / discrete baseline metric.

    ``transformation``: ``"discrete"`` (integer pixel shifts or crops of the pixel grid) or ``"finite"`` (a finite
    element of a continuous group, resampled); the LEE is the infinitesimal counterpart.  ``family`` selects the
    sampling plan (``circular``: every circular shift by 1..7 pixels; ``crop``: pairs of random crops; ``shift``:
    random shifts; ``rotation``: random rotations; ``invariance``: random finite transformations of the image model).
    ``partner``: the LEE generator (or :data:`COMPOSITE_PARTNERS` entry) it is rank-correlated with.  ``psnr``:
    whether the PSNR statistic is reported; ``consistency``: whether the top-1 agreement is; ``layerwise``: whether a
    layerwise version exists.  For sampled invariance, ``generator`` is the image-model generator that is sampled and
    ``range_option`` the configuration key of its range ``r``.
    """

    name: str
    family: str
    transformation: str
    partner: str
    psnr: bool
    consistency: bool
    layerwise: bool
    description: str
    generator: str | None = None
    range_option: str | None = None


_METRIC_TABLE = (
    # name, family, transformation, partner, psnr, consistency, layerwise, range_option (sampled invariance)
    ("consistency_x", "circular", "discrete", "translate_x", False, True, False, None),
    ("consistency_y", "circular", "discrete", "translate_y", False, True, False, None),
    ("consistency_crop", "crop", "discrete", "translate", False, True, False, None),
    ("eq_t", "shift", "discrete", "translate", True, False, True, None),
    ("eq_t_frac", "shift", "finite", "translate", True, False, True, None),
    ("eq_r", "rotation", "finite", "rotate", True, False, False, None),
    ("invariance_translate_x", "invariance", "finite", "translate_x", False, False, False, "translate_range"),
    ("invariance_translate_y", "invariance", "finite", "translate_y", False, False, False, "translate_range"),
    ("invariance_rotate", "invariance", "finite", "rotate", False, False, False, "rotate_range"),
)  # fmt: skip
_METRIC_DESCRIPTIONS = {
    "consistency_x": "circular shift (torch.roll) by 1..7 pixels along x, compared with the unshifted image",
    "consistency_y": "circular shift (torch.roll) by 1..7 pixels along y, compared with the unshifted image",
    "consistency_crop": "Zhang (2019): two random crops of the resized image compared with each other",
    "eq_t": "StyleGAN3 EQ-T: integer shifts round(t * size), t ~ U[-0.125, 0.125]^2, zero fill",
    "eq_t_frac": "EQ-T_frac: the same t unrounded, separable Lanczos (a = 3) resampling, zero fill",
    "eq_r": "EQ-R: rotation by U[-pi, pi] with a band-limited (4x Lanczos upsampled) resampler",
    "invariance_translate_x": "sampled invariance: t ~ U[-r, r] of translate_x with the continuous image model",
    "invariance_translate_y": "sampled invariance: t ~ U[-r, r] of translate_y with the continuous image model",
    "invariance_rotate": "sampled invariance: t ~ U[-r, r] of rotate with the continuous image model",
}
#: The end-to-end baseline metrics, in the order they are computed.
BASELINE_METRICS: dict[str, BaselineMetric] = {
    name: BaselineMetric(
        name, *props, _METRIC_DESCRIPTIONS[name], generator=props[2] if option else None, range_option=option
    )
    for name, *props, option in _METRIC_TABLE  # a sampled invariance samples the generator it partners with
}
E2E_METRICS: tuple[str, ...] = tuple(BASELINE_METRICS)
LAYERWISE_METRICS: tuple[str, ...] = tuple(n for n, m in BASELINE_METRICS.items() if m.layerwise)
#: Which LEE generator (or composite) each baseline is compared with.
LEE_PARTNER: dict[str, str] = {n: m.partner for n, m in BASELINE_METRICS.items()}


def partner_components(partner: str) -> tuple[str, ...]:
    """The generators whose per-image LEE is averaged for ``partner`` (itself, or a composite's components)."""
    return COMPOSITE_PARTNERS.get(partner, (partner,))


# --------------------------------------------------------------------------------------------------------------
# Experiment and run names
# --------------------------------------------------------------------------------------------------------------

#: Experiments registered with :func:`lieq.experiments.register` (``lieq sweep <name>``), with the module defining
#: each.  One spelling everywhere: the name is also the store folder ``data/results/<run>/<name>/``.
EXPERIMENTS: dict[str, str] = {
    "e2e": "lieq.metrics",
    "e2e-normalised": "lieq.metrics",
    "layerwise": "lieq.attribution",
    "baselines": "lieq.baselines",
    "layerwise-baselines": "lieq.layerwise_baselines",
    "single-layers": "lieq.aliasing",
    "spectra": "lieq.aliasing",
    "spectra-summary": "lieq.aliasing",
    "input-smoothness": "lieq.aliasing",
    "layerwise-smoothness": "lieq.aliasing",
    "blurpool": "lieq.aliasing",
    "image-model-audit": "lieq.aliasing",
    "layerwise-image-model-audit": "lieq.aliasing",
    "cifar-lee": "lieq.cifar",
    "cifar-accuracy": "lieq.cifar",
    "prior": "lieq.prior",
}
#: Runs of the aliasing / image-model / training studies (notebooks/04_aliasing).
ALIASING_RUN, IMAGE_MODEL_RUN, CIFAR_RUN = "aliasing", "image-model", "cifar-resnet"
#: Runs of the CIFAR-10 zoo trained here (notebooks/07_cifar_zoo): test images (every checkpoint), training images
#: (final models), and the five layerwise generators (medium models).
ZOO_RUN, ZOO_TRAIN_RUN, ZOO_GENERATORS_RUN = "cifar-zoo", "cifar-zoo-train", "cifar-zoo-generators"
#: The committed result store (``data/results/<run>/<experiment>/``): run -> experiments stored under it.
STORE: dict[str, tuple[str, ...]] = {
    "embedded": ("e2e", "layerwise", "baselines", "layerwise-baselines"),
    "embedded-ood": ("e2e",),
    "embedded-generators": ("layerwise",),
    "random-init": ("e2e", "prior"),
    ALIASING_RUN: (
        "single-layers",
        "spectra",
        "spectra-summary",
        "input-smoothness",
        "layerwise-smoothness",
        "blurpool",
    ),
    IMAGE_MODEL_RUN: ("image-model-audit", "layerwise-image-model-audit", "e2e"),
    CIFAR_RUN: ("cifar-accuracy", "cifar-lee"),
    ZOO_RUN: ("e2e", "e2e-normalised", "layerwise", "baselines"),
    ZOO_TRAIN_RUN: ("e2e",),
    ZOO_GENERATORS_RUN: ("layerwise",),
}

#: Floating-point precisions of a measurement (:mod:`lieq.precision`): strict IEEE float32 (the default; TF32 off),
#: TF32 matrix products and convolutions, bf16 autocast.  A non-default precision is part of a result's configuration.
PRECISIONS: tuple[str, ...] = ("fp32", "tf32", "bf16")
DEFAULT_PRECISION = "fp32"
