"""lieq.conventions: the declared tables agree with the code that implements them, and need no torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from lieq import conventions as C


def test_conventions_and_tables_import_without_torch():
    code = "import sys; import lieq.conventions, lieq.tables; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("name", C.SPATIAL_GENERATORS)
def test_algebra_element_is_the_derivative_of_the_finite_map(name):
    """d/dt A(t) at t = 0 of image_model's finite map, by autograd and by a central difference, is the declared
    Lie-algebra element; A(0) is the identity."""
    torch = pytest.importorskip("torch")
    from lieq.image_model import affine_matrices, algebra_element

    declared = C.algebra_element(name)
    zero = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    a = affine_matrices(name, zero)[0]
    np.testing.assert_array_equal(a.detach().numpy(), np.eye(2, 3))
    autograd = np.stack([torch.autograd.grad(a.reshape(-1)[k], zero, retain_graph=True)[0].numpy() for k in range(6)])
    np.testing.assert_allclose(autograd.reshape(2, 3), declared, atol=1e-12, err_msg=name)
    h = 1e-6
    pair = affine_matrices(name, torch.tensor([h, -h], dtype=torch.float64)).numpy()
    np.testing.assert_allclose((pair[0] - pair[1]) / (2 * h), declared, atol=1e-8, err_msg=name)
    np.testing.assert_allclose(algebra_element(name).numpy(), declared, atol=1e-12, err_msg=name)


def test_pointwise_generators_have_no_affine_map():
    torch = pytest.importorskip("torch")
    from lieq import image_model

    assert C.POINTWISE_GENERATORS == ("saturate",)
    assert set(image_model.GENERATORS) == set(C.GENERATORS)
    for name in C.POINTWISE_GENERATORS:
        gen = image_model.GENERATORS[name]
        assert gen.pointwise and not gen.spatial and gen.affine is None
        with pytest.raises(ValueError, match="not a spatial generator"):
            image_model.affine_matrices(name, torch.zeros(1))
        with pytest.raises(ValueError, match="pointwise"):
            C.algebra_element(name)
    for name in C.SPATIAL_GENERATORS:
        assert image_model.GENERATORS[name].spatial and image_model.GENERATORS[name].affine is not None


def test_generator_sets():
    assert C.generator_names(None) == list(C.E2E_GENERATORS) == C.generator_names("e2e")
    assert C.generator_names("all") == list(C.GENERATORS)
    assert C.generator_names("layerwise") == list(C.LAYERWISE_GENERATORS)
    assert C.generator_names(" rotate, saturate ") == ["rotate", "saturate"]
    for names in C.GENERATOR_SETS.values():
        assert set(names) <= set(C.GENERATORS) and len(set(names)) == len(names)
    with pytest.raises(ValueError, match="unknown generator"):
        C.generator_names("rotate,warp")
    with pytest.raises(ValueError, match="no generator"):
        C.generator_names([])


def test_algebra_elements_are_distinct_and_non_zero():
    elements = {name: C.algebra_element(name) for name in C.SPATIAL_GENERATORS}
    for name, m in elements.items():
        assert np.abs(m).sum() > 0, name
    flat = np.stack([m.reshape(-1) for m in elements.values()])
    assert len({tuple(row) for row in flat}) == len(elements)


def test_partner_and_metric_tables_are_consistent():
    assert set(C.LEE_PARTNER) == set(C.BASELINE_METRICS) == set(C.E2E_METRICS)
    for comps in C.COMPOSITE_PARTNERS.values():
        assert set(comps) <= set(C.GENERATORS)
    for name, m in C.BASELINE_METRICS.items():
        assert m.name == name
        assert m.partner in C.GENERATORS or m.partner in C.COMPOSITE_PARTNERS, name
        assert set(C.partner_components(m.partner)) <= set(C.SPATIAL_GENERATORS), name
        assert m.transformation in ("discrete", "finite")
        assert m.family in ("circular", "crop", "shift", "rotation", "invariance")
        # sampled invariance: a generator of the image model and the range option of its units
        assert (m.family == "invariance") == (m.generator is not None) == (m.range_option is not None), name
        if m.generator is not None:
            assert m.generator in C.SPATIAL_GENERATORS and m.partner == m.generator
    assert C.LAYERWISE_METRICS == ("eq_t", "eq_t_frac")


def test_baseline_properties_match_the_computed_tables():
    """The PSNR and consistency statistics are present exactly for the metrics whose properties say so."""
    torch = pytest.importorskip("torch")
    from torch import nn

    from lieq.baselines import baseline_metrics
    from lieq.tables import to_wide

    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5))
    torch.manual_seed(0)
    x = torch.randn(1, 3, 16, 16)
    table = to_wide(baseline_metrics(model.eval(), x, samples=3)).set_index("metric")
    assert list(table.index) == list(C.E2E_METRICS)
    for name, m in C.BASELINE_METRICS.items():
        assert np.isnan(table.loc[name, "psnr"]) != m.psnr, name
        assert np.isnan(table.loc[name, "consistency"]) != m.consistency, name
        assert np.isnan(table.loc[name, "range"]) != (m.range_option is not None), name


def test_categories_are_the_layer_categories_and_colours():
    pytest.importorskip("torch")
    from torch import nn

    from lieq import figures, layers

    assert layers.CATEGORIES is C.CATEGORIES and len(set(C.CATEGORIES)) == len(C.CATEGORIES)
    assert list(figures.CATEGORY_COLORS) == list(C.CATEGORIES)
    examples = {
        "Embedding": nn.Embedding(4, 2),
        "Conv": nn.Conv2d(1, 1, 1),
        "Activation": nn.ReLU(),
        "Norm": nn.LayerNorm(2),
        "Pool": nn.MaxPool2d(2),
        "Attention": nn.MultiheadAttention(4, 1),
        "Linear/MLP": nn.Linear(2, 2),
        "Other": nn.Identity(),
    }
    assert list(examples) == list(C.CATEGORIES)
    assert {name: layers.category_of(m) for name, m in examples.items()} == {name: name for name in examples}


def test_statistic_and_experiment_names():
    assert set(C.LEE_STATS) == {"mean_abs", "mean_sq"}
    assert tuple(C.E2E_BASELINE_STATS)[:3] == ("mse", "mse_sem", "psnr")
    assert set(C.STORE["embedded"]) <= set(C.EXPERIMENTS)
    assert all(module.startswith("lieq.") for module in C.EXPERIMENTS.values())
