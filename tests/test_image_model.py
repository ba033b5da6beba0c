"""The continuous image model: finite transformations, their derivatives, token layouts."""

from __future__ import annotations

import math

import pytest
import torch

from lieq.image_model import (
    GENERATORS,
    IMAGE_MODELS,
    feature_layout,
    lie_action,
    resolve_generators,
    token_grid,
    transform,
    warp,
)

SPATIAL = [name for name, g in GENERATORS.items() if g.spatial]


def smooth_image(h: int = 24, w: int = 24, c: int = 2, dtype=torch.float64) -> torch.Tensor:
    """A smooth random image: a sum of a few low-frequency sinusoids per channel."""
    gen = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h, dtype=dtype), torch.linspace(0, 1, w, dtype=dtype), indexing="ij")
    out = torch.zeros(1, c, h, w, dtype=dtype)
    for ch in range(c):
        for _ in range(3):
            fx, fy, ph = (torch.rand(3, generator=gen, dtype=dtype) * torch.tensor([3, 3, 6.28], dtype=dtype)).tolist()
            out[0, ch] += torch.sin(2 * math.pi * (fx * xx + fy * yy) + ph)
    return out


def test_registry_has_exactly_the_paper_generators():
    assert list(GENERATORS) == [
        "translate_x", "translate_y", "rotate", "scale", "shear_x", "shear_y",
        "stretch_x", "stretch_y", "hyperbolic_rotate", "saturate",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="unknown generator"):
        resolve_generators("translate_x,spin")


@pytest.mark.parametrize("image_model", list(IMAGE_MODELS))
@pytest.mark.parametrize("name", list(GENERATORS))
def test_transform_at_zero_is_identity(name, image_model):
    x = torch.randn(2, 3, 9, 11)
    y = transform(x, name, torch.zeros(1), image_model)[0]
    torch.testing.assert_close(y, x, atol=1e-5, rtol=0)


def test_affine_maps_are_identity_at_zero_and_match_notes():
    t = torch.tensor([0.0, 0.3])
    for name in SPATIAL:
        a = GENERATORS[name].affine(t)
        torch.testing.assert_close(a[0], torch.eye(2, 3))
    torch.testing.assert_close(GENERATORS["stretch_x"].affine(t)[1], torch.tensor([[1.3, 0, 0], [0, 1, 0]]))
    c, s = math.cos(0.3), math.sin(0.3)
    torch.testing.assert_close(GENERATORS["rotate"].affine(t)[1], torch.tensor([[c, s, 0], [-s, c, 0]]))


def test_translation_units_half_image_width():
    """t = 2 / (W - 1) moves the image by exactly one pixel: out[..., j] = x[..., j + 1]."""
    x = torch.randn(1, 1, 6, 9, dtype=torch.float64)
    w = x.shape[-1]
    y = transform(x, "translate_x", torch.tensor([2.0 / (w - 1)], dtype=torch.float64), "central")[0]
    torch.testing.assert_close(y[..., :-1], x[..., 1:])
    # the last column reflects about the edge pixel centre: index W -> W - 2
    torch.testing.assert_close(y[..., -1], x[..., -2])


def test_reflection_about_edge_pixel_centres():
    x = torch.arange(5, dtype=torch.float64).reshape(1, 1, 1, 5).expand(1, 1, 3, 5).contiguous()
    # shift left by one pixel: sample at j - 1; column 0 reads index -1 -> 1
    y = transform(x, "translate_x", torch.tensor([-0.5], dtype=torch.float64), "bilinear")[0]
    assert y[0, 0, 0].tolist() == [1.0, 0.0, 1.0, 2.0, 3.0]


@pytest.mark.parametrize("name", SPATIAL)
def test_central_derivative_matches_central_differences(name):
    # The cubic interpolant's second derivative jumps at pixel centres, so the central difference has an O(h) error.
    x = smooth_image()
    h = torch.tensor([1e-7], dtype=torch.float64)
    fd = (transform(x, name, h, "central")[0] - transform(x, name, -h, "central")[0]) / (2 * h)
    lie = lie_action(x, [name], "central")[0]
    interior = (..., slice(3, -3), slice(3, -3))
    torch.testing.assert_close(lie[interior], fd[interior], atol=1e-5, rtol=1e-5)


def test_central_derivative_is_the_central_pixel_difference():
    x = torch.randn(1, 1, 7, 10, dtype=torch.float64)
    w = x.shape[-1]
    lie = lie_action(x, ["translate_x"], "central")[0]
    expected = (x[..., 2:] - x[..., :-2]) / 2 * (w - 1) / 2
    torch.testing.assert_close(lie[..., 1:-1], expected)


@pytest.mark.parametrize("image_model,side", [("bilinear_forward", 1), ("bilinear_backward", -1)])
@pytest.mark.parametrize("name", ["translate_x", "rotate", "shear_y"])
def test_one_sided_models_match_one_sided_differences(image_model, side, name):
    x = smooth_image()
    h = 1e-7  # bilinear is piecewise linear: the one-sided difference is exact for small enough steps
    fd = (transform(x, name, torch.tensor([side * h], dtype=torch.float64), image_model)[0] - x) / (side * h)
    lie = lie_action(x, [name], image_model)[0]
    torch.testing.assert_close(lie[..., 1:-1, 1:-1], fd[..., 1:-1, 1:-1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("width", [224, 240, 260])
def test_bilinear_side_is_chosen_by_float32_rounding(width):
    """Columns whose un-normalised float32 coordinate falls below the integer take the backward difference."""
    grid = torch.nn.functional.affine_grid(torch.eye(2, 3)[None], [1, 1, 2, width], align_corners=True)[:, 0]
    ix = ((grid[..., 0] + 1) / 2) * (width - 1)
    backward_cols = (torch.floor(ix) < torch.arange(width)).reshape(-1)
    x = torch.randn(1, 1, 3, width)
    lie = lie_action(x, ["translate_x"], "bilinear")[0, 0, 0, 1]  # middle row
    scale = (width - 1) / 2
    forward = torch.cat([x[0, 0, 1, 1:] - x[0, 0, 1, :-1], (x[0, 0, 1, -2] - x[0, 0, 1, -1])[None]]) * scale
    backward = torch.cat([(x[0, 0, 1, 1] - x[0, 0, 1, 0])[None], x[0, 0, 1, 1:] - x[0, 0, 1, :-1]]) * scale
    expected = torch.where(backward_cols, backward, forward)
    torch.testing.assert_close(lie, expected, atol=1e-3, rtol=1e-4)
    share = backward_cols[1:-1].float().mean().item()
    assert {224: 0.16, 240: 0.21, 260: 0.19}[width] == pytest.approx(share, abs=0.01)


def test_linear_ramp_has_analytic_derivative():
    """x(i, j) = j: d/dt of translation by t half-widths is (W - 1) / 2 everywhere inside, for every image model."""
    w = 12
    x = torch.arange(w, dtype=torch.float64).expand(1, 1, 8, w).contiguous()
    for image_model in IMAGE_MODELS:
        lie = lie_action(x, ["translate_x", "translate_y"], image_model)
        torch.testing.assert_close(lie[0, ..., 1:-1], torch.full_like(lie[0, ..., 1:-1], (w - 1) / 2))
        torch.testing.assert_close(lie[1], torch.zeros_like(lie[1]))


def test_rotation_of_radial_image_is_nearly_zero():
    n = 33
    c = torch.linspace(-1, 1, n, dtype=torch.float64)
    r2 = c[:, None] ** 2 + c[None, :] ** 2
    x = torch.exp(-r2 / 0.2)[None, None]
    rot = lie_action(x, ["rotate"], "central")[0]
    tx = lie_action(x, ["translate_x"], "central")[0]
    assert rot.abs().max() < 0.01 * tx.abs().max()


def test_saturate_action_is_the_image():
    x = torch.randn(2, 3, 5, 5)
    torch.testing.assert_close(lie_action(x, ["saturate"])[0], x)
    torch.testing.assert_close(transform(x, "saturate", torch.tensor([0.5]))[0], 1.5 * x)


def test_batched_transformations_match_single_calls():
    x = torch.randn(2, 3, 8, 8)
    theta = torch.stack(
        [GENERATORS["rotate"].affine(torch.tensor(0.2)), GENERATORS["shear_x"].affine(torch.tensor(-0.1))]
    )
    both = warp(x, theta)
    torch.testing.assert_close(both[0], warp(x, theta[:1])[0])
    torch.testing.assert_close(both[1], warp(x, theta[1:])[0])
    all_at_once = lie_action(x, ["rotate", "scale", "saturate"], "central")
    torch.testing.assert_close(all_at_once[1], lie_action(x, ["scale"], "central")[0])


@pytest.mark.parametrize("k", [0, 1, 2])
def test_tokens_round_trip_and_match_images(k):
    b, s, c = 2, 5, 3
    img = torch.randn(b, c, s, s, dtype=torch.float64)
    head = torch.randn(b, k, c, dtype=torch.float64)
    tokens = torch.cat([head, img.permute(0, 2, 3, 1).reshape(b, s * s, c)], dim=1)
    assert feature_layout(tokens.shape) == "tokens" and token_grid(tokens.shape[1]) == (s, k)
    torch.testing.assert_close(transform(tokens, "rotate", torch.zeros(1), "central")[0], tokens)
    t = torch.tensor([0.3], dtype=torch.float64)
    moved = transform(tokens, "rotate", t, "central")[0]
    moved_img = transform(img, "rotate", t, "central")[0]
    torch.testing.assert_close(moved[:, :k], head)
    torch.testing.assert_close(moved[:, k:], moved_img.permute(0, 2, 3, 1).reshape(b, s * s, c))
    lie = lie_action(tokens, ["translate_x"], "central")[0]
    assert lie[:, :k].abs().max().item() == 0 if k else True
    torch.testing.assert_close(
        lie[:, k:], lie_action(img, ["translate_x"], "central")[0].permute(0, 2, 3, 1).reshape(b, -1, c)
    )


def test_feature_layout_rules():
    assert feature_layout((2, 8, 7, 7)) == "image"
    assert feature_layout((2, 8, 1, 1)) == "invariant"
    assert feature_layout((2, 197, 384)) == "tokens"
    assert feature_layout((2, 198, 384)) == "tokens"
    assert feature_layout((2, 1000)) == "invariant"
    assert feature_layout((2, 7, 384)) == "invariant"  # 7 = 2^2 + 3: not a grid


@pytest.mark.parametrize("image_model", list(IMAGE_MODELS))
def test_warp_supports_forward_mode_and_double_backward(image_model):
    x = smooth_image(8, 8, 1, torch.float64).requires_grad_(True)
    t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    y = transform(x, "rotate", t, image_model)[0]
    (g,) = torch.autograd.grad((y**2).sum(), t, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), x)
    assert torch.isfinite(gg).all() and gg.abs().sum() > 0
    _, tangent = torch.func.jvp(
        lambda s: transform(x.detach(), "rotate", s, image_model), (t.detach(),), (torch.ones(1, dtype=torch.float64),)
    )
    torch.testing.assert_close(tangent[0], lie_action(x.detach(), ["rotate"], image_model)[0])


def test_unknown_image_model_and_bad_shapes():
    with pytest.raises(ValueError, match="unknown image model"):
        lie_action(torch.randn(1, 1, 4, 4), ["rotate"], "nearest")
    with pytest.raises(ValueError, match="cannot resample"):
        warp(torch.randn(2, 7, 3), torch.eye(2, 3)[None])


@pytest.mark.parametrize("image_model", list(IMAGE_MODELS))
@pytest.mark.parametrize("layout", ["image", "tokens"])
def test_chain_rule_action_equals_the_derivative_of_the_finite_transformation(image_model, layout):
    """lie_action (sampler derivative x velocity field) equals forward-mode autodiff of transform(x, g, t) in t,
    for every spatial generator, in float32 at a size where the bilinear floor depends on rounding."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 30, 30)
    if layout == "tokens":
        x = torch.cat([torch.randn(2, 1, 3), x.permute(0, 2, 3, 1).reshape(2, 900, 3)], dim=1)
    spatial = [name for name, g in GENERATORS.items() if g.spatial]
    action, primal = lie_action(x, spatial, image_model, return_primal=True)
    zero = torch.zeros(1)
    for i, name in enumerate(spatial):
        value, tangent = torch.func.jvp(lambda t, n=name: transform(x, n, t, image_model), (zero,), (torch.ones(1),))
        scale = float(tangent.abs().max())  # float32 rounding of sums of products of values up to ~40
        torch.testing.assert_close(action[i], tangent[0], rtol=1e-5, atol=2e-6 * scale, msg=name)
        torch.testing.assert_close(primal, value[0], rtol=0, atol=0)
