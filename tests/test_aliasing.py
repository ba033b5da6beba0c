"""Aliasing in single layers, band-limited signals and the band-limited (fourier) image model."""

from __future__ import annotations

import math

import pytest
import torch

from lieq.aliasing import dct_signal, layer_lie_error, layer_study, lowpass, make_layer, nonlinearity_spectra
from lieq.image_model import lie_action, transform

FRACS = (0.1, 0.3, 0.6, 0.9)


def dct_mode(n: int, k: int, l: int) -> torch.Tensor:
    i = torch.arange(n, dtype=torch.float64)
    return (torch.cos(math.pi * l * i / (n - 1))[:, None] * torch.cos(math.pi * k * i / (n - 1))[None, :])[None, None]


def test_fourier_action_is_the_analytic_derivative_and_the_derivative_of_its_warp():
    n, k, l = 17, 3, 5
    x = dct_mode(n, k, l).repeat(1, 2, 1, 1)
    u = torch.linspace(-1, 1, n, dtype=torch.float64)
    gens = ["translate_x", "translate_y", "rotate", "scale", "saturate"]
    action = lie_action(x, gens, "fourier")
    # d/du cos(pi k (u + 1) / 2) = -(pi k / 2) sin(pi k (u + 1) / 2)
    dx = (
        -(math.pi * k / 2)
        * torch.sin(math.pi * k * (u + 1) / 2)[None, :]
        * torch.cos(math.pi * l * (u + 1) / 2)[:, None]
    )
    torch.testing.assert_close(action[0, 0, 0], dx, atol=1e-10, rtol=0)
    # the spectral action equals forward-mode AD through the finite band-limited warp, for every generator
    zeros = torch.zeros(len(gens), dtype=torch.float64)
    _, tangent = torch.func.jvp(
        lambda t: torch.stack([transform(x, g, t[i : i + 1], "fourier")[0] for i, g in enumerate(gens)]),
        (zeros,),
        (torch.ones_like(zeros),),
    )
    torch.testing.assert_close(action, tangent, atol=1e-9, rtol=0)
    torch.testing.assert_close(transform(x, "rotate", zeros[:1], "fourier")[0], x, atol=1e-10, rtol=0)


def test_fourier_and_central_agree_on_smooth_images():
    x = lowpass(torch.randn(1, 2, 33, 33, dtype=torch.float64), 0.15)
    a, c = lie_action(x, ["translate_x", "rotate"], "fourier"), lie_action(x, ["translate_x", "rotate"], "central")
    assert (a - c).norm() < 0.05 * a.norm()


def test_lowpass_and_dct_signal_frequencies():
    x = dct_signal(33, 0.5, channels=3, batch=2, seed=1).double()
    assert torch.allclose(x.pow(2).mean(dim=(-2, -1)), torch.ones(2, 3, dtype=torch.float64), atol=1e-5)
    torch.testing.assert_close(lowpass(x, 0.6), x, atol=1e-6, rtol=0)  # passes below the cut-off
    assert lowpass(x, 0.4).abs().max() < 1e-6  # removed above it
    y = lowpass(torch.randn(2, 1, 33, 33, dtype=torch.float64), 0.3)
    torch.testing.assert_close(lowpass(y, 0.3), y)  # idempotent


def test_pointwise_linear_layer_has_zero_error_at_every_frequency():
    fracs, models = (0.1, 0.5, 0.9, 1.0), ("bilinear", "central", "fourier")
    table = layer_study(["linear_pointwise"], fracs, models, size=33, channels=4, batch=1)
    assert table.rms_ref.min() > 0.1
    assert table.rel.max() < 1e-4


def test_relu_error_on_sinusoids_grows_with_frequency():
    for image_model in ("bilinear", "fourier"):
        table = layer_study(["relu"], FRACS, (image_model,), ("translate_x",), size=33, batch=4)
        rel = table.groupby("frac").rel.mean()
        assert rel.is_monotonic_increasing or rel[0.1] < rel[0.3] < rel[0.6], (image_model, rel.to_dict())
        assert rel[0.6] > 1.5 * rel[0.1], (image_model, rel.to_dict())
        err = table.groupby("frac").rms_err.mean()
        assert err.is_monotonic_increasing, (image_model, err.to_dict())


def test_smooth_nonlinearity_is_nearly_equivariant_at_low_frequency():
    table = layer_study(["gelu", "tanh"], (0.1, 0.9), ("fourier",), ("translate_x",), size=33, batch=2)
    rel = table.groupby(["layer", "frac"]).rel.mean()
    for name in ("gelu", "tanh"):
        assert rel[name, 0.1] < 0.02 and rel[name, 0.9] > 10 * rel[name, 0.1], rel.to_dict()


def test_blurpool_error_is_below_strided_downsampling():
    pairs = [("blurpool", "subsample"), ("conv_blurpool", "strided_conv"), ("max_blurpool", "maxpool")]
    names = [n for pair in pairs for n in pair]
    for image_model in ("bilinear", "fourier"):
        table = layer_study(names, (0.6, 0.9), (image_model,), ("translate_x", "rotate"), size=33, channels=4, batch=2)
        err = table.groupby(["layer", "frac"]).rms_err.mean()
        for blur, plain in pairs:
            for frac in (0.6, 0.9):
                assert err[blur, frac] < err[plain, frac], (image_model, blur, frac)


def test_fourier_subsampling_is_exact_below_the_output_nyquist():
    x = dct_signal(33, 0.4, channels=2, batch=2)
    table = layer_lie_error(make_layer("subsample", 2), x, ("translate_x", "rotate"), "fourier")
    assert table.rel.max() < 1e-4
    above = layer_lie_error(make_layer("subsample", 2), dct_signal(33, 0.8, channels=2), ("translate_x",), "fourier")
    assert above.rel.min() > 0.5


def test_spectra_show_folding_above_nyquist():
    _, summary = nonlinearity_spectra(fracs=(0.1, 0.9), nonlinearities=("relu", "tanh"))
    s = summary.set_index(["nonlinearity", summary.frac.round(1)])
    assert s.loc[("relu", 0.9), "aliased_fraction"] > 10 * s.loc[("relu", 0.1), "aliased_fraction"]
    assert s.loc[("tanh", 0.1), "aliased_power"] < 1e-8 < s.loc[("tanh", 0.9), "aliased_power"]


def test_unknown_layer():
    with pytest.raises(ValueError, match="unknown layer"):
        make_layer("softplus")


# ----------------------------------------------------------------------------------------------- through the runner


def test_model_free_studies_are_resumable_runner_experiments(tmp_path):
    """The single-layer and spectra studies go through the runner: stored under their pseudo-models with
    provenance, equal to the direct computation, skipped when done, recomputed for a new configuration."""
    from lieq import results
    from lieq.aliasing import square_images
    from lieq.data import load_source
    from lieq.runner import run_sweep

    kw = dict(run="aliasing", root=tmp_path, progress=False)
    config = {"layers": "relu,blurpool", "fracs": "0.2,0.9", "image_models": "bilinear", "size": 17, "channels": 2,
              "batch": 1}  # fmt: skip
    s = run_sweep("single-layers", data="embedded", n_images=1, config=config, **kw)
    assert s.computed == ["single-layers"] and not s.failed
    again = run_sweep("single-layers", data="embedded", n_images=1, config=config, **kw)
    assert again.skipped == ["single-layers"] and not again.computed
    stored = results.load("aliasing", "single-layers", root=tmp_path)
    assert set(stored.model) == {"single-layers"} and set(stored.weights) == {"random:seed=0"}
    assert stored.data.iloc[0].startswith("dct-modes+") and stored.git_commit.iloc[0]
    natural = square_images(load_source("embedded", 1, 0).images, 17)
    direct = layer_study(["relu", "blurpool"], (0.2, 0.9), ("bilinear",), size=17, channels=2, batch=1,
                         natural=natural)  # fmt: skip
    key = ["layer", "signal", "frac", "generator", "image"]
    a, b = stored.sort_values(key).reset_index(drop=True), direct.sort_values(key).reset_index(drop=True)
    torch.testing.assert_close(torch.tensor(a.rel.to_numpy()), torch.tensor(b.rel.to_numpy()))

    small = {"fracs": "0.2,0.9", "size": 17, "oversample": 4, "nonlinearities": "relu"}
    for name in ("spectra", "spectra-summary"):
        assert run_sweep(name, config=small, **kw).computed == ["nonlinearities"]
    assert run_sweep("spectra", config={**small, "oversample": 2}, **kw).computed == ["nonlinearities"]
    summary = results.load("aliasing", "spectra-summary", root=tmp_path)
    _, direct_summary = nonlinearity_spectra((0.2, 0.9), 17, 4, ("relu",))
    assert summary.aliased_power.tolist() == direct_summary.aliased_power.tolist()
    assert set(summary.weights) == {"none"} and set(summary.data) == {"dct-modes"}
    with pytest.raises(ValueError, match="needs no models"):
        run_sweep("spectra", "resnet18", **kw)
