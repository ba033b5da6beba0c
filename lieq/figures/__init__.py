"""The compendium's figures (paper figures and new ones), torch-free.

One module per paper figure or topic (:mod:`.primer`, :mod:`.fig1`, :mod:`.layerwise`, :mod:`.e2e`,
:mod:`.baselines`, :mod:`.prior`, :mod:`.image_models`, :mod:`.aliasing`, :mod:`.scaling`, :mod:`.zoo`), the house
style in
:mod:`.style`, and the registry in :mod:`.registry`: a figure is one function decorated with
:func:`~.registry.figure` that states its name, paper figure, caption and the data it needs.  The plotting functions
take tidy result tables (as returned by :func:`lieq.results.load`, plus the model catalogue where needed) and return
a :class:`matplotlib.figure.Figure`; bad input raises ``ValueError`` with a one-line message.

Conventions (docs/conventions.md sections 1 and 4):

* end-to-end LEE per image is ``mean_abs = (1/K) sum_k |L p_k(x)|`` of the softmax output (the original code's
  statistic, paper Fig. 1 right) unless a function is asked for ``mean_sq``, per unit of the generator's ``t``;
* layerwise contributions are ``E_z[(z . term_i)^2]`` per layer call (docs/conventions.md section 5), mean over images;
* top-1 accuracy is measured on the same images (``correct`` column), in percent.
"""

from __future__ import annotations

from . import aliasing, baselines, e2e, fig1, image_models, layerwise, primer, prior, registry, scaling, style, zoo  # noqa: F401
from ._common import per_model, weights_kind
from .aliasing import aliasing_layers, aliasing_spectra, blurpool_vs_plain, layer_shares_vs_lowpass, lee_vs_lowpass
from .baselines import lee_vs_baselines
from .e2e import lee_by_group, lee_vs_accuracy_by_generator, lee_vs_params, ood_vs_id
from .fig1 import lee_vs_accuracy
from .image_models import category_shares, image_model_sensitivity
from .layerwise import cumulative_layerwise, layer_shares_by_generator, layerwise_lee_vs_baselines
from .primer import generator_flow_fields, lie_derivative_diagram, lie_fields, primer_finite_differences
from .prior import random_init_prior, random_vs_trained
from .registry import FIGURES, FigureContext, FigureSpec, MissingData, Needs, Outcome, by_name, figure
from .scaling import lee_vs_depth
from .style import CATEGORY_COLORS, FAMILY_COLORS, FAMILY_ORDER, STAT_LABELS, save, use_style

#: The order of the figure modules in the notebook and the gallery (within a module: the order of registration).
MODULE_ORDER = ("primer", "fig1", "layerwise", "e2e", "baselines", "prior", "image_models", "aliasing", "scaling",
                "zoo")  # fmt: skip
FIGURES.sort(key=lambda s: MODULE_ORDER.index(s.section))

__all__ = [
    "CATEGORY_COLORS", "FAMILY_COLORS", "FAMILY_ORDER", "FIGURES", "STAT_LABELS", "FigureContext", "FigureSpec",
    "MissingData", "Needs", "Outcome", "aliasing_layers", "aliasing_spectra", "blurpool_vs_plain", "by_name",
    "category_shares", "cumulative_layerwise", "figure", "generator_flow_fields", "image_model_sensitivity",
    "layer_shares_by_generator", "layer_shares_vs_lowpass", "layerwise_lee_vs_baselines", "lee_by_group",
    "lee_vs_accuracy", "lee_vs_accuracy_by_generator", "lee_vs_baselines", "lee_vs_depth", "lee_vs_lowpass",
    "lee_vs_params", "lie_derivative_diagram", "lie_fields", "ood_vs_id", "per_model", "primer_finite_differences",
    "random_init_prior", "random_vs_trained", "registry", "save", "style", "use_style", "weights_kind",
]  # fmt: skip
