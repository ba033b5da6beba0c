"""The Lie-derivative engine: forward mode vs the double-backward reference vs finite differences."""

from __future__ import annotations

import pytest
import timm
import torch
from timm.models.mlp_mixer import MlpMixer
from torch import nn

from lieq.engine import autodiff_ready, generator_basis, lie_derivative, resolve_output
from lieq.image_model import GENERATORS, resolve_generators, transform
from lieq.metrics import SoftmaxClassifier

ALL = list(GENERATORS)
SPATIAL = [name for name, g in GENERATORS.items() if g.spatial]


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(inplace=True),
        nn.Conv2d(8, 16, 3, stride=2, padding=1),
        nn.GELU(),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 10),
    ).eval()


def timm_model(name: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, **kwargs).eval()


def small_mixer() -> nn.Module:
    torch.manual_seed(0)
    model = MlpMixer(10, img_size=32, patch_size=8, num_blocks=2, embed_dim=32)
    nn.init.normal_(model.head.weight, std=0.2)  # timm zero-initialises the head
    return model.eval()


MODELS = {
    "cnn": (small_cnn, 32),
    "vit": (lambda: timm_model("test_vit", img_size=32, patch_size=8, num_classes=10), 32),
    "mixer": (lambda: small_mixer(), 32),
}


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("kind", list(MODELS))
def test_forward_matches_double_backward(kind):
    build, size = MODELS[kind]
    f = SoftmaxClassifier(build())
    x = torch.randn(2, 3, size, size)
    fwd = lie_derivative(f, x, ALL, method="forward")
    ref = lie_derivative(f, x, ALL, method="double_backward")
    assert fwd.shape == (len(ALL), 2, 10)
    for g in range(len(ALL)):
        assert relative_error(fwd[g], ref[g]) < 1e-5, ALL[g]


def test_vit_attention_is_fused_by_default_and_still_works():
    model = timm_model("test_vit", img_size=32, patch_size=8, num_classes=10)
    fused = [m for m in model.modules() if hasattr(m, "fused_attn")]
    assert fused, "expected timm attention modules"
    for m in fused:  # as a user on a recent torch would have it
        m.fused_attn = True
    x = torch.randn(1, 3, 32, 32)
    out = lie_derivative(SoftmaxClassifier(model), x, ["rotate", "translate_x"])
    assert torch.isfinite(out).all() and out.abs().sum() > 0
    assert all(m.fused_attn for m in fused), "autodiff_ready must restore the model's settings"


@pytest.mark.parametrize("name", ["translate_x", "rotate", "scale", "shear_y", "saturate"])
def test_agrees_with_finite_differences(name):
    torch.manual_seed(0)
    f = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Tanh(), nn.Conv2d(4, 3, 3, padding=1), nn.Softplus())
    f = f.double().eval()
    x = torch.randn(1, 2, 12, 12, dtype=torch.float64)
    h = torch.tensor([1e-6], dtype=torch.float64)
    for output in ("invariant", "equivariant"):
        lie = lie_derivative(f, x, [name], output=output, image_model="central")[0]
        plus, minus = f(transform(x, name, h, "central")[0]), f(transform(x, name, -h, "central")[0])
        if output == "equivariant":
            plus, minus = transform(plus, name, -h, "central")[0], transform(minus, name, h, "central")[0]
        fd = (plus - minus) / (2 * h)
        torch.testing.assert_close(lie, fd, atol=1e-4, rtol=1e-4)
        ref = lie_derivative(f, x, [name], output=output, image_model="central", method="double_backward")[0]
        torch.testing.assert_close(ref, fd, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("image_model", ["bilinear", "central"])
def test_pointwise_linear_map_is_exactly_equivariant(image_model):
    torch.manual_seed(0)
    conv1x1 = nn.Conv2d(3, 5, 1, bias=False).eval()
    x = torch.randn(2, 3, 16, 16)
    lie = lie_derivative(conv1x1, x, ALL, output="equivariant", image_model=image_model)
    scale = lie_derivative(conv1x1, x, ["translate_x"], output="invariant", image_model=image_model).abs().max()
    assert lie.abs().max() < 1e-5 * scale
    ref = lie_derivative(conv1x1, x, ALL, output="equivariant", image_model=image_model, method="double_backward")
    assert ref.abs().max() < 1e-5 * scale


@pytest.mark.parametrize("image_model", ["bilinear", "central"])
def test_pointwise_nonlinearity_is_not_equivariant(image_model):
    x = torch.randn(1, 3, 16, 16)
    lie = lie_derivative(torch.nn.GELU(), x, SPATIAL, output="equivariant", image_model=image_model)
    per_generator = lie.abs().flatten(1).mean(1)
    assert (per_generator > 1e-3).all()


def test_exactly_invariant_functions_give_zero():
    torch.manual_seed(0)
    linear = nn.Linear(3 * 9 * 9, 7)

    def scale_invariant(x):  # homogeneous of degree 0: f((1 + t) x) = f(x)
        return torch.softmax(linear((x / x.flatten(1).norm(dim=1)[:, None, None, None]).flatten(1)), -1)

    x = torch.randn(2, 3, 9, 9)
    assert lie_derivative(scale_invariant, x, ["saturate"]).abs().max() < 1e-7

    def centre_pixel(x):  # rotations, scalings, shears, stretches and hyperbolic rotations fix the image centre
        return x[:, :, 4, 4]

    fixing = ["rotate", "scale", "shear_x", "shear_y", "stretch_x", "stretch_y", "hyperbolic_rotate"]
    for method in ("forward", "double_backward"):
        assert lie_derivative(centre_pixel, x, fixing, method=method, image_model="central").abs().max() < 1e-6
    assert lie_derivative(centre_pixel, x, ["translate_x"], image_model="central").abs().max() > 1e-2


def test_output_kind_is_decided_from_the_shape():
    assert resolve_output("auto", (2, 10)) == "invariant"
    assert resolve_output("auto", (2, 4, 8, 8)) == "equivariant"
    assert resolve_output("auto", (2, 50, 16)) == "equivariant"
    with pytest.raises(ValueError, match="not image-like"):
        resolve_output("equivariant", (2, 10))
    conv = nn.Conv2d(3, 3, 1).eval()
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(
        lie_derivative(conv, x, ["rotate"], output="auto"), lie_derivative(conv, x, ["rotate"], output="equivariant")
    )


def test_token_outputs_are_transformed_back():
    torch.manual_seed(0)
    proj = nn.Linear(3, 6)

    def tokens(x):  # per-pixel linear map laid out as (B, 1 + s^2, C) with a class token: exactly equivariant
        b, c, h, w = x.shape
        t = proj(x.permute(0, 2, 3, 1).reshape(b, h * w, c))
        return torch.cat([torch.zeros(b, 1, 6), t], dim=1)

    x = torch.randn(2, 3, 6, 6)
    lie = lie_derivative(tokens, x, SPATIAL, output="auto", image_model="central")
    assert lie.abs().max() < 1e-5


def test_vectorised_and_repeated_batches_agree():
    f = SoftmaxClassifier(small_cnn())
    x = torch.randn(3, 3, 32, 32)
    a = lie_derivative(f, x, ALL, vectorize="vmap", tangent_batch=None)
    b = lie_derivative(f, x, ALL, vectorize="repeat")
    c = lie_derivative(f, x, ALL, tangent_batch=3)  # one generator per chunk
    torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)
    torch.testing.assert_close(a, c, atol=1e-6, rtol=1e-4)


def test_inplace_activations_are_restored():
    model = small_cnn()
    with autodiff_ready(model):
        assert model[2].inplace is False
    assert model[2].inplace is True


def test_bad_arguments():
    f = SoftmaxClassifier(small_cnn())
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(ValueError, match="method"):
        lie_derivative(f, x, ["rotate"], method="backward")
    with pytest.raises(ValueError, match="unknown generator"):
        lie_derivative(f, x, ["twist"])
    with pytest.raises(ValueError, match="output"):
        lie_derivative(f, x, ["rotate"], output="covariant")


def test_generator_basis_of_the_paper_sets():
    e2e = resolve_generators("e2e")
    basis, coefficients = generator_basis(e2e)
    names = [g.name for g in e2e]
    assert len(basis) == 7, "the 7 affine generators of the e2e set span the 6-dimensional affine algebra"
    assert "rotate" not in [names[i] for i in basis]
    rotate = coefficients[names.index("rotate")].tolist()
    expected = [0.0] * 7
    expected[[names[i] for i in basis].index("shear_x")] = 1.0
    expected[[names[i] for i in basis].index("shear_y")] = -1.0
    assert rotate == expected
    everything = resolve_generators(ALL)
    assert len(generator_basis(everything)[0]) == 7
    layerwise = resolve_generators(["translate_x", "rotate", "hyperbolic_rotate", "scale", "saturate"])
    assert generator_basis(layerwise)[0] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("image_model", ["bilinear", "central"])
def test_basis_reduction_is_exact(image_model):
    """Generators outside the basis, combined from it, equal their own tangent passes (and the reference)."""
    f = SoftmaxClassifier(small_cnn())
    x = torch.randn(2, 3, 24, 24)
    reduced = lie_derivative(f, x, ALL, image_model=image_model)
    full = lie_derivative(f, x, ALL, image_model=image_model, basis=False)
    for g in range(len(ALL)):
        assert relative_error(reduced[g], full[g]) < 1e-5, ALL[g]
    conv = nn.Conv2d(3, 4, 3, padding=1).eval()  # an equivariant (image-like) output
    reduced = lie_derivative(conv, x, ALL, output="equivariant", image_model=image_model)
    full = lie_derivative(conv, x, ALL, output="equivariant", image_model=image_model, basis=False)
    torch.testing.assert_close(reduced, full, rtol=1e-4, atol=1e-5)


def test_hard_activations_work_in_both_methods():
    """MobileNetV3-style squeeze-excite (hardsigmoid, which PyTorch cannot differentiate twice) and hardswish."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.Hardswish(), nn.AdaptiveAvgPool2d(1), nn.Conv2d(8, 8, 1), nn.Hardsigmoid(),
        nn.Flatten(), nn.Linear(8, 5),
    ).eval()  # fmt: skip
    x = torch.randn(2, 3, 12, 12)
    fwd = lie_derivative(model, x, ["translate_x", "rotate"])
    ref = lie_derivative(model, x, ["translate_x", "rotate"], method="double_backward")
    assert relative_error(fwd, ref) < 1e-5
    assert torch.nn.functional.hardsigmoid.__module__ == "torch.nn.functional", "the native function is restored"


FAMILIES = {  # tag: (create_model kwargs, input size); each exercises a different path of the forward engine
    "swin_tiny_patch4_window7_224": ({"img_size": 64, "window_size": 4}, 64),  # attention with a float mask
    "beit_base_patch16_224": ({"img_size": 32, "depth": 2}, 32),  # relative position bias as the mask
    "eva02_tiny_patch14_224": ({"img_size": 28}, 28),  # rotary embeddings, SwiGLU
    "convnext_tiny": ({"depths": (1, 1, 1, 1)}, 32),  # channels-last LayerNorm
    "levit_128s": ({"img_size": 64}, 64),  # BatchNorm1d after linear layers, attention biases
    "mobilenetv3_large_100": ({}, 32),  # hardsigmoid squeeze-excite, folded batch norms
    "densenet121": ({"block_config": (2, 2, 2, 2)}, 32),  # batch norms after concatenation (not folded)
}


@pytest.mark.slow
@pytest.mark.parametrize("tag", list(FAMILIES))
def test_forward_matches_double_backward_across_architecture_families(tag):
    kwargs, size = FAMILIES[tag]
    model = timm_model(tag, num_classes=10, **kwargs)
    for m in model.modules():  # zero-initialised heads would make every Lie derivative vanish
        if isinstance(m, nn.Linear) and m.out_features == 10:
            nn.init.normal_(m.weight, std=0.5)
    x = torch.randn(2, 3, size, size)
    fwd = lie_derivative(model, x, "e2e")  # logits: the softmax of a random network can saturate (ill-conditioned)
    ref = lie_derivative(model, x, "e2e", method="double_backward")
    assert ref.norm() > 1e-6 and relative_error(fwd, ref) < 2e-5
