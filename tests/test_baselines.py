"""Finite and discrete baselines (lieq.baselines, lieq.layerwise_baselines, lieq.discrete_transforms, lieq.tables):
exact properties of the resamplers and of the metrics."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from lieq import experiments
from lieq.baselines import E2E_METRICS, baseline_metrics
from lieq.discrete_transforms import bandlimited_rotate, integer_shift, lanczos_shift
from lieq.image_model import transform
from lieq.layerwise_baselines import layerwise_eq
from lieq.metrics import e2e_lee
from lieq.tables import lee_correlations, psnr, to_wide


def smooth_image(b: int = 2, c: int = 3, n: int = 32, seed: int = 0) -> torch.Tensor:
    """A band-limited random image: a few low-frequency sinusoids (well below Nyquist)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(n, dtype=torch.float64), torch.arange(n, dtype=torch.float64), indexing="ij")
    out = torch.zeros(b, c, n, n, dtype=torch.float64)
    for _ in range(6):
        fx, fy = (torch.rand(2, generator=g) * 2 - 1) * 0.12  # cycles per pixel
        phase = torch.rand(b, c, 1, 1, generator=g) * 2 * math.pi
        out += torch.cos(2 * math.pi * (fx * xx + fy * yy) + phase)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Resamplers
# ---------------------------------------------------------------------------------------------------------------


def test_integer_shift_direction_and_inverse():
    x = torch.randn(2, 3, 16, 20)
    dx, dy = torch.tensor([3, -5, 0]), torch.tensor([-2, 4, 7])
    y, mask = integer_shift(x, dx, dy)
    assert y.shape == (3, 2, 3, 16, 20) and mask.shape == (3, 16, 20)
    # content moves by +dx along the width axis and +dy along the height axis
    assert torch.equal(y[0, ..., 5, 10], x[..., 7, 7])
    assert torch.equal(y[1, ..., 10, 2], x[..., 6, 7])
    assert float(mask[0].mean()) == pytest.approx((17 / 20) * (14 / 16))
    assert torch.all(y[0][..., mask[0] == 0] == 0)  # zero fill
    for s in range(3):
        back, back_mask = integer_shift(y[s], -dx[s : s + 1], -dy[s : s + 1])
        inside = back_mask[0].bool()
        assert torch.equal(back[0][..., inside], x[..., inside])
        assert inside.float().mean() > 0.5


def test_fractional_shift_by_integer_is_integer_shift():
    x = torch.randn(2, 3, 24, 24, dtype=torch.float64)
    dx, dy = torch.tensor([2.0, -4.0, 0.0]), torch.tensor([-1.0, 3.0, 0.0])
    frac, fmask = lanczos_shift(x, dx, dy)
    ints, imask = integer_shift(x, dx, dy)
    inside = fmask.bool()
    assert torch.all(imask[inside] == 1)
    assert torch.allclose(frac.movedim(0, -3)[..., inside], ints.movedim(0, -3)[..., inside], atol=1e-12)
    assert torch.allclose(frac[2], x, atol=1e-12)  # shift by 0 is the identity everywhere


def test_fractional_shift_matches_analytic_shift_of_band_limited_image():
    n = 48
    xx = torch.arange(n, dtype=torch.float64)
    f = 0.07  # cycles per pixel
    x = torch.cos(2 * math.pi * f * (xx[None, :] + 0.5 * xx[:, None]))[None, None]
    dx, dy = torch.tensor([0.3, -2.6]), torch.tensor([1.45, 0.0])
    y, mask = lanczos_shift(x, dx, dy)
    for s in range(2):
        expected = torch.cos(2 * math.pi * f * ((xx[None, :] - dx[s]) + 0.5 * (xx[:, None] - dy[s])))
        inside = mask[s].bool()
        err = (y[s, 0, 0] - expected)[inside].abs().max()
        assert err < 2e-2, err
    # a half-pixel shift is not an integer shift: the filter really interpolates
    assert (y[0, 0, 0] - x[0, 0])[mask[0].bool()].abs().max() > 0.05


def test_rotation_by_zero_is_identity_and_quarter_turn_matches_image_model():
    x = torch.randn(2, 3, 20, 20, dtype=torch.float64)
    y, mask = bandlimited_rotate(x, torch.tensor([0.0, math.pi / 2]))
    assert torch.allclose(y[0], x, atol=1e-9)
    assert torch.all(mask[0][3:-3, 3:-3] == 1) and mask[0].mean() < 1
    # a quarter turn maps pixel centres to pixel centres, where every interpolator returns the samples
    ref = transform(x, "rotate", torch.tensor([math.pi / 2]), "bilinear")[0]
    assert torch.allclose(y[1], ref, atol=1e-6)


def test_small_rotation_agrees_with_continuous_image_model():
    x = smooth_image(n=40, seed=1)
    angle = torch.tensor([0.04, -0.07])
    y, mask = bandlimited_rotate(x, angle)
    for s in range(2):
        ref = transform(x, "rotate", angle[s : s + 1], "central")[0]
        inside = mask[s].bool()
        err = (y[s] - ref)[..., inside].abs().max()
        change = (ref - x)[..., inside].abs().max()
        assert err < 0.05 * change, (err, change)


# ---------------------------------------------------------------------------------------------------------------
# End-to-end metrics
# ---------------------------------------------------------------------------------------------------------------


class CircularInvariant(nn.Module):
    """Global average pooling of pointwise-nonlinear features of a circularly padded conv: exactly invariant to
    circular shifts along both axes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1, padding_mode="circular")
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        return self.head(torch.tanh(self.conv(x)).mean((2, 3))) * 20


class RowMeanModel(nn.Module):
    """Averages over the height axis, then a position-dependent linear map over the width axis: invariant to
    circular shifts along y, not along x."""

    def __init__(self, n: int = 32) -> None:
        super().__init__()
        self.head = nn.Linear(3 * n, 10)

    def forward(self, x):
        return self.head(x.mean(2).flatten(1)) * 20


def test_circular_consistency_of_invariant_model_and_axis_labels():
    torch.manual_seed(0)
    x = torch.randn(3, 3, 32, 32)
    metrics = ["consistency_x", "consistency_y"]
    inv = to_wide(baseline_metrics(CircularInvariant().eval(), x, metrics=metrics)).set_index(["image", "metric"])
    assert (inv["consistency"] == 1).all()
    assert (inv["mse"] < 1e-10).all()
    rows = to_wide(baseline_metrics(RowMeanModel().eval(), x, metrics=metrics))
    by = rows.groupby("metric")
    assert (by.get_group("consistency_y")["mse"] < 1e-10).all()
    assert (by.get_group("consistency_y")["consistency"] == 1).all()
    assert (by.get_group("consistency_x")["mse"] > 1e-4).all()
    assert by.get_group("consistency_x")["consistency"].mean() < 1


def test_all_metrics_table_seeds_and_batching():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(128, 10)
    )
    x = torch.randn(3, 3, 32, 32)
    ids = ["a", "b", "c"]
    a = to_wide(baseline_metrics(model.eval(), x, labels=[0, 1, 2], image_ids=ids, samples=5, batch_size=64))
    b = to_wide(baseline_metrics(model.eval(), x[1:], labels=[1, 2], image_ids=ids[1:], samples=5, batch_size=1))
    assert list(a["metric"].unique()) == list(E2E_METRICS)
    assert len(a) == 3 * len(E2E_METRICS)
    assert set(a.loc[a.metric == "consistency_x", "samples"]) == {7}
    assert set(a.loc[a.metric == "eq_t", "samples"]) == {5}
    eq = a[a.metric.str.startswith("eq_")]
    assert ((eq["psnr"] - psnr(eq["mse"])).abs() < 1e-9).all()
    assert a.loc[~a.metric.str.startswith("eq_"), "psnr"].isna().all()
    # per-image random streams: the same image gets the same samples whatever the batching and the other images
    merged = a.merge(b, on=["image", "metric"], suffixes=("_a", "_b"))
    assert len(merged) == 2 * len(E2E_METRICS)
    assert ((merged["mse_a"] - merged["mse_b"]).abs() <= 1e-4 * merged["mse_a"].abs() + 1e-12).all()
    with pytest.raises(ValueError, match="unknown metric"):
        baseline_metrics(model, x, metrics="eq_q")
    with pytest.raises(ValueError, match="sample setting"):
        baseline_metrics(model, x, samples="slow")


def test_sampled_invariance_approaches_lie_derivative_to_first_order():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 6, 5, padding=2), nn.Softplus(), nn.Conv2d(6, 4, 3, stride=2, padding=1), nn.Tanh(), nn.Flatten(),
        nn.Linear(4 * 16 * 16, 10),
    ).eval()  # fmt: skip
    with torch.no_grad():
        model[-1].weight.mul_(30)
    x = smooth_image(b=1, n=32, seed=3).float()
    lee = e2e_lee(model, x, generators="translate_x,rotate", image_model="central")
    lee = lee.set_index(["image", "generator"])["mean_sq"]
    cfg = {"translate_range": 2e-3, "rotate_range": 2e-3, "image_model": "central"}
    table = to_wide(
        baseline_metrics(model, x, metrics="invariance_translate_x,invariance_rotate", samples=400, config=cfg)
    ).set_index(["image", "metric"])["mse_scaled"]
    for image in range(1):
        for gen in ("translate_x", "rotate"):
            ratio = table[(image, f"invariance_{gen}")] / lee[(image, gen)]
            assert abs(ratio - 1) < 0.15, (image, gen, ratio)
    # far from the identity the finite metric is no longer the local one
    far = {**cfg, "rotate_range": 1.5}
    big = to_wide(baseline_metrics(model, x[:1], metrics="invariance_rotate", samples=50, config=far))["mse_scaled"]
    big = big.iloc[0]
    assert abs(big / lee[(0, "rotate")] - 1) > 0.3


def test_registered_experiments_run():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 5)
    )
    x = torch.randn(2, 3, 32, 32)
    for name in ("baselines", "layerwise-baselines"):
        exp = experiments.get(name)
        config = {**exp.defaults, "samples": 2}
        if name == "baselines":
            config["metrics"] = "eq_t,consistency_crop"
        table = exp.fn(model.eval(), x, [0, 1], ["p", "q"], **config, progress=False)
        assert "image" in table.columns and set(table["image"]) == {"p", "q"}
        assert {"stat", "value"} <= set(table.columns) and table["value"].notna().all()


# ---------------------------------------------------------------------------------------------------------------
# Layerwise
# ---------------------------------------------------------------------------------------------------------------


def test_layerwise_eq_exact_cases():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 0: stride 1, linear -> commutes with integer and fractional shifts
        nn.ReLU(),  # 1: pointwise -> commutes with integer shifts only
        nn.Conv2d(8, 8, 3, stride=2, padding=1),  # 2: stride 2 -> equivariant to shifts by 2, aliases fractional ones
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 10),
    ).eval()
    x = torch.randn(1, 3, 32, 32)
    table = to_wide(layerwise_eq(model, x, samples=4)).set_index(["layer", "metric"])
    assert set(table.index.get_level_values("layer")) == {"0", "1", "2", "3"}  # the Linear sees no image
    assert table.loc[("0", "eq_t"), "nmse"] < 1e-10
    assert table.loc[("0", "eq_t_frac"), "nmse"] < 1e-10
    assert table.loc[("1", "eq_t"), "nmse"] < 1e-10
    assert table.loc[("1", "eq_t_frac"), "nmse"] > 1e-3
    assert table.loc[("2", "eq_t"), "nmse"] < 1e-10
    assert table.loc[("2", "eq_t_frac"), "nmse"] > 1e-2
    assert table.loc[("3", "eq_t"), "category"] == "Pool"


def test_lee_correlations_recovers_monotone_relation():
    import pandas as pd

    rows_b, rows_l = [], []
    for m, scale in (("m1", 1.0), ("m2", 2.0), ("m3", 3.0)):
        for i in range(6):
            v = scale * (i + 1)
            rows_b.append({"model": m, "image": i, "metric": "eq_r", "mse": v**2, "consistency": math.nan})
            rows_b.append({"model": m, "image": i, "metric": "consistency_x", "mse": v, "consistency": 1 / (1 + v)})
            rows_l += [{"model": m, "image": i, "generator": g, "mean_sq": v} for g in ("rotate", "translate_x")]
    out = lee_correlations(pd.DataFrame(rows_b), pd.DataFrame(rows_l)).set_index(["baseline", "value", "scope"])
    assert out.loc[("eq_r", "mse", "images:m2"), "rho"] == pytest.approx(1.0)
    assert out.loc[("eq_r", "mse", "models"), "rho"] == pytest.approx(1.0)
    assert out.loc[("consistency_x", "1-consistency", "images:within"), "rho"] == pytest.approx(1.0)
