"""Any model: plain callables, torchvision, Hugging Face; tuple / dict / ModelOutput fields; embeddings and dense
outputs; the normalised LEE; non-square, single-channel inputs through every path (lieq.adapters, lieq.metrics)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from lieq.adapters import OutputHead, Preprocessing, load_model, select_output
from lieq.attribution import layerwise
from lieq.cli import main
from lieq.data import preprocess
from lieq.engine import lie_derivative
from lieq.metrics import e2e_lee
from lieq.weights import create_model

SPATIAL = ["translate_x", "translate_y", "rotate", "scale", "shear_x", "hyperbolic_rotate"]


def photos(n: int, h: int = 40, w: int = 52, seed: int = 0) -> list[Image.Image]:
    """Random RGB images (synthetic, generated here)."""
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)) for _ in range(n)]


def smooth_images(n: int, c: int, h: int, w: int, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    """Random images low-pass filtered (bilinear upsampling of a coarse grid), so that derivatives are O(1)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, c, max(2, h // 4), max(2, w // 4), generator=g, dtype=dtype)
    return nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=True)


def tiny_vit_config() -> dict:
    return dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8
    )


def relative_gap(a: pd.Series, b: pd.Series) -> float:
    return float(((a - b).abs() / b.abs()).max())


# ----------------------------------------------------------------------------------------------------------------
# Output fields
# ----------------------------------------------------------------------------------------------------------------


def test_select_output_picks_the_named_field():
    a, b = torch.randn(2, 5), torch.randn(2, 3)
    assert select_output(a) is a
    assert select_output({"logits": a, "aux": b}) is a  # default: logits
    assert select_output({"logits": a, "aux": b}, "aux") is b
    assert select_output({"out": b}) is b  # the only tensor
    assert select_output((a, b), 1) is b and select_output((a, b), "1") is b and select_output((a, None)) is a
    transformers = pytest.importorskip("transformers")
    out = transformers.modeling_outputs.ImageClassifierOutput(logits=a, hidden_states=(b,))
    assert select_output(out) is a and select_output(out, "logits") is a
    with pytest.raises(ValueError, match="name one"):
        select_output((a, b))  # ambiguous
    for bad, field in [({"logits": a}, "embedding"), ((a, b), 2), (out, "pooler_output")]:
        with pytest.raises(ValueError) as info:
            select_output(bad, field)
        assert "unknown output field" in str(info.value) and len(str(info.value).splitlines()) == 1
    with pytest.raises(ValueError, match="no field"):
        select_output(a, "logits")


class DictModel(nn.Module):
    """Returns ``{"logits": head_a(x), "aux": head_b(x)}`` or a tuple of them."""

    def __init__(self, as_tuple: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.GELU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.b = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.Tanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.as_tuple = as_tuple

    def forward(self, x):
        return (self.a(x), self.b(x)) if self.as_tuple else {"logits": self.a(x), "aux": self.b(x)}


def test_e2e_lee_measures_the_named_field():
    x = smooth_images(2, 3, 16, 20)
    gens = "translate_x,rotate"
    dict_model, tuple_model = DictModel(), DictModel(as_tuple=True)
    ref_a = e2e_lee(dict_model.a, x, generators=gens)
    ref_b = e2e_lee(dict_model.b, x, generators=gens)
    assert not np.allclose(ref_a.mean_abs, ref_b.mean_abs)
    pd.testing.assert_series_equal(e2e_lee(dict_model, x, generators=gens).mean_abs, ref_a.mean_abs)
    pd.testing.assert_series_equal(e2e_lee(dict_model, x, generators=gens, field="aux").mean_abs, ref_b.mean_abs)
    pd.testing.assert_series_equal(e2e_lee(tuple_model, x, generators=gens, field=1).mean_abs, ref_b.mean_abs)
    transformers = pytest.importorskip("transformers")

    def model_output(u):
        return transformers.modeling_outputs.ImageClassifierOutput(logits=dict_model.b(u))

    pd.testing.assert_series_equal(e2e_lee(model_output, x, generators=gens).mean_abs, ref_b.mean_abs)
    with pytest.raises(ValueError) as info:
        e2e_lee(dict_model, x, generators=gens, field="pooled")
    assert "unknown output field 'pooled'" in str(info.value) and len(str(info.value).splitlines()) == 1
    with pytest.raises(ValueError, match="preprocessing"):
        e2e_lee(dict_model, photos(1), generators=gens)  # PIL images and no timm model: say what is missing


# ----------------------------------------------------------------------------------------------------------------
# Same numbers through every route
# ----------------------------------------------------------------------------------------------------------------


def test_plain_callable_with_explicit_preprocessing_matches_the_timm_path():
    model, _ = create_model("test_resnet.r160_in1k", "random")
    images = photos(2)
    timm_inputs = preprocess(images, model, input_size=64)
    spec = Preprocessing.from_timm(model, input_size=64)
    assert torch.equal(spec(images), timm_inputs)  # the explicit spec reproduces timm's eval transform
    gens = "translate_x,saturate"
    timm_path = e2e_lee(model, timm_inputs, generators=gens, normalised=True, sensitivity_draws=2)
    callable_path = e2e_lee(
        lambda x: model(x), images, generators=gens, preprocessing=spec, normalised=True, sensitivity_draws=2
    )
    for column in ("mean_abs", "mean_sq", "normalised"):
        assert relative_gap(callable_path[column], timm_path[column]) < 1e-5, column
    # the same spec built by hand (field by field) as a user would write it
    by_hand = Preprocessing(mean=spec.mean, std=spec.std, size=64, crop_pct=spec.crop_pct, interpolation="bilinear")
    assert torch.equal(by_hand(images), timm_inputs)


@pytest.mark.parametrize("which", ["hf_vit", "torchvision_resnet18"])
def test_forward_engine_matches_double_backward(which, tmp_path):
    if which == "hf_vit":
        transformers = pytest.importorskip("transformers")
        config = transformers.AutoConfig.for_model("vit", num_labels=10, **tiny_vit_config())
        config.save_pretrained(tmp_path)
        loaded = load_model(f"hf:{tmp_path}")  # a local folder with config.json (random weights)
        assert type(loaded.model).__name__ == "ViTForImageClassification"
        assert loaded.preprocessing.size == 32 and loaded.preprocessing.crop_pct is None
        x = loaded.preprocessing(photos(1))
    else:
        loaded = load_model("torchvision:resnet18")
        assert loaded.preprocessing.size == 224 and loaded.preprocessing.crop_pct == 0.875
        x = smooth_images(1, 3, 40, 48)  # a small, non-square input
    gens = "translate_x,rotate,stretch_y,saturate"
    forward = e2e_lee(loaded.model, x, generators=gens, field=loaded.field)
    reference = e2e_lee(loaded.model, x, generators=gens, field=loaded.field, method="double_backward")
    assert (forward.mean_abs > 0).all()
    for column in ("mean_abs", "mean_sq"):
        assert relative_gap(forward[column], reference[column]) < 1e-5, (which, column)


# ----------------------------------------------------------------------------------------------------------------
# Exact invariance and equivariance give zero
# ----------------------------------------------------------------------------------------------------------------


def periodic_image(c: int, h: int, w: int, seed: int, k: int = 4) -> torch.Tensor:
    """``sum_{a,b < k} c_ab cos(2 pi a i / (h-1)) cos(2 pi b j / (w-1))``: periodic with periods ``h-1``, ``w-1`` and
    mirror-symmetric about its edge pixel centres, so the ``fourier`` image model's mirror extension of it *is* its
    periodic extension and a translation under that model is a circular shift of one period."""
    g = torch.Generator().manual_seed(seed)
    i = torch.arange(h, dtype=torch.float64)[:, None]
    j = torch.arange(w, dtype=torch.float64)[None, :]
    out = torch.zeros(c, h, w, dtype=torch.float64)
    for a in range(k):
        for b in range(k):
            coef = torch.randn(c, 1, 1, generator=g, dtype=torch.float64)
            out += coef * torch.cos(2 * math.pi * a * i / (h - 1)) * torch.cos(2 * math.pi * b * j / (w - 1))
    return out


class CircularEncoder(nn.Module):
    """One period of the image -> 3x3 conv with circular padding -> square -> global average pool -> linear.

    Exactly invariant to circular shifts: the Lie derivative is ``(2/N) W sum_p y_p (D y)_p`` with ``y`` the conv
    output and ``D`` the periodic spectral derivative (which commutes with the circular convolution), and ``D`` is
    antisymmetric, so the sum vanishes for *every* ``y``.  With another nonlinearity ``s`` the sum
    ``sum_p s'(y_p) (D y)_p`` is only zero up to aliasing (on a grid, ``s(y)`` is not band-limited), so the square is
    the nonlinearity for which invariance is exact on a grid.
    """

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(channels, 8, 3, padding=1, padding_mode="circular")
        self.head = nn.Linear(8, 6)

    def forward(self, x):
        y = self.conv(x[..., :-1, :-1])  # the last row and column repeat the first
        return self.head((y * y).mean((-2, -1)))


@pytest.mark.parametrize("method", ["forward", "double_backward"])
def test_circular_encoder_has_zero_embedding_lee_for_shifts(method):
    encoder = CircularEncoder().double()
    x = torch.stack([periodic_image(3, 17, 25, seed) for seed in range(2)])  # non-square
    table = e2e_lee(
        encoder, x, generators="translate_x,translate_y,rotate", image_model="fourier", method=method,
        output="embedding", normalised=True, sensitivity_draws=2,
    )  # fmt: skip
    per = table.groupby("generator").mean(numeric_only=True)
    assert (table.output == "embedding").all()
    assert per.loc[["translate_x", "translate_y"], "mean_abs"].max() < 1e-12
    assert per.loc[["translate_x", "translate_y"], "normalised"].max() < 1e-10
    assert per.loc["rotate", "mean_abs"] > 1e-3  # rotations are not symmetries of the encoder
    # On an image that is not periodic the fourier model's mirror extension is not a circular shift: no invariance.
    random = torch.randn(1, 3, 17, 25, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    other = e2e_lee(encoder, random, generators="translate_x", image_model="fourier", output="embedding")
    assert float(other.mean_abs.iloc[0]) > 1e-3


@pytest.mark.parametrize("image_model", ["bilinear", "central", "fourier"])
def test_pointwise_dense_model_has_zero_equivariant_lee(image_model):
    torch.manual_seed(0)
    pointwise = nn.Sequential(nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 1), nn.Conv2d(8, 4, 1))
    x = smooth_images(2, 3, 20, 28)
    for method in ("forward", "double_backward"):
        table = e2e_lee(
            pointwise, x, generators=SPATIAL, image_model=image_model, method=method, output="dense", normalised=True
        )
        assert table.mean_abs.max() < 1e-6 and table.normalised.max() < 1e-5, (method, table.mean_abs.max())
    spatial = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1))  # a 3x3 convolution is not equivariant at the edges
    assert e2e_lee(spatial, x, generators="rotate", image_model=image_model, output="dense").mean_abs.min() > 1e-3


# ----------------------------------------------------------------------------------------------------------------
# The normalised LEE
# ----------------------------------------------------------------------------------------------------------------


class Flip(nn.Module):
    """``x -> c * flip_W(x)``: orthogonal up to ``c`` (so the sensitivity is exactly ``c``) and anti-equivariant to
    translation along x, ``L f = c flip(v) - c D flip(x) = 2 c flip(v)`` for the ``central`` difference ``D``."""

    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = c

    def forward(self, x):
        return self.c * torch.flip(x, dims=[-1])


@pytest.mark.parametrize("c", [1.0, 7.5])
def test_normalised_lee_analytic_value_and_scale_invariance(c):
    x = smooth_images(2, 3, 12, 18, dtype=torch.float64)
    table = e2e_lee(
        Flip(c), x, generators="translate_x", image_model="central", output="dense", normalised=True,
        sensitivity_draws=3, seed=5,
    )  # fmt: skip
    assert np.allclose(table.sensitivity, c, rtol=1e-12)  # ||c P u|| / ||u|| = c for every direction
    assert np.allclose(table.normalised, 2.0, rtol=1e-10)  # ||L f|| = 2 c ||v||, for any output scale c


# ----------------------------------------------------------------------------------------------------------------
# Non-square, one-channel inputs through every path
# ----------------------------------------------------------------------------------------------------------------


class GreyNet(nn.Module):
    """A small 1-channel network with a classifier, an embedding and a dense head."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.Conv2d(6, 6, 3))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(6, 5)

    def forward(self, x):
        h = self.body(x)
        e = self.pool(h).flatten(1)
        return {"logits": self.fc(e), "embedding": e, "dense": h}


def test_non_square_single_channel_inputs_go_through_every_path():
    model = GreyNet().eval()
    spec = Preprocessing(mean=(0.5,), std=(0.25,), size=(24, 40), crop_pct=0.9, channels=1)
    x = spec(photos(2, h=50, w=70))
    assert x.shape == (2, 1, 24, 40)
    assert spec(photos(1, h=30, w=30)).shape == (1, 1, 24, 40)
    assert spec(torch.rand(1, 1, 30, 45)).shape == (1, 1, 24, 40)  # tensors in [0, 1] too
    gens = "translate_x,rotate,saturate"
    for output in ("logits", "embedding", "dense"):
        tables = {
            method: e2e_lee(
                model,
                photos(2, h=50, w=70),
                [0, 3],
                gens,
                method=method,
                output=output,
                field=output,
                preprocessing=spec,
                normalised=True,
                sensitivity_draws=2,
            )  # fmt: skip
            for method in ("forward", "double_backward")
        }
        for t in tables.values():
            assert len(t) == 6 and np.isfinite(t[["mean_abs", "mean_sq", "normalised"]].to_numpy()).all()
            assert (t.mean_abs > 0).all() and ("correct" in t) == (output == "logits") and (t.label.isin([0, 3])).all()
        assert relative_gap(tables["forward"].mean_abs, tables["double_backward"].mean_abs) < 1e-4, output
        head = OutputHead(model, output, output)
        lie = lie_derivative(head, x, gens, head.equivariance)
        assert lie.shape[:2] == (3, 2) and torch.isfinite(lie).all()
    for exact in (True, False):
        table = layerwise(model, x, "translate_x", probes=8, exact=exact, field="logits")
        assert (table.e2e > 0).all() and table.unattributed.max() < 1e-3  # the layer terms add up to the e2e value
        assert (table.groupby("image").contribution.sum() > 0).all()
    for image_model in ("bilinear", "central", "fourier"):
        t = e2e_lee(model, x, generators=gens, image_model=image_model, field="dense", output="dense")
        assert np.isfinite(t.mean_abs).all()


# ----------------------------------------------------------------------------------------------------------------
# Loading by prefix, and the command line
# ----------------------------------------------------------------------------------------------------------------


def test_load_model_by_prefix():
    tv = load_model("torchvision:resnet18", output="embedding")
    assert isinstance(tv.model.fc, nn.Identity) and tv.model(torch.randn(1, 3, 32, 32)).shape == (1, 512)
    seg = load_model("torchvision:lraspp_mobilenet_v3_large", output="dense", num_classes=3)
    assert seg.field == "out" and seg.preprocessing.crop_pct is None
    assert select_output(seg.model(torch.randn(1, 3, 32, 48)), seg.field).shape == (1, 3, 32, 48)
    timm_embedding = load_model("timm:test_resnet.r160_in1k", output="embedding")
    assert timm_embedding.model(torch.randn(1, 3, 32, 32)).dim() == 2
    assert load_model("test_resnet.r160_in1k").name == "timm:test_resnet.r160_in1k"  # timm is the default
    for spec, output, message in [
        ("torchvision:no_such_net", "logits", "unknown model"),
        ("torchvision:resnet18", "dense", "not a segmentation model"),
        ("timm:test_resnet", "pixels", "unknown output kind"),
        ("hf:no_such_model_type", "logits", "unknown model"),
    ]:
        if spec.startswith("hf:"):
            pytest.importorskip("transformers")
        with pytest.raises(ValueError) as info:
            load_model(spec, output=output)
        assert message in str(info.value) and len(str(info.value).splitlines()) == 1


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    for i, im in enumerate(photos(2)):
        im.save(root / f"img{i}.png")
    pd.DataFrame({"file": ["img0.png", "img1.png"], "class_index": [0, 1]}).to_csv(root / "labels.csv", index=False)
    return root


def test_cli_measures_torchvision_and_hf_models(image_folder, tmp_path, capsys):
    out = tmp_path / "tv.csv"
    args = ["e2e", "--images", str(image_folder), "--n-images", "1", "--generators", "translate_x", "--out"]
    assert main([*args, str(out), "--model", "torchvision:resnet18"]) == 0
    table = pd.read_csv(out)
    assert len(table) == 1 and table.mean_abs.iloc[0] > 0 and table.model.iloc[0] == "torchvision:resnet18"
    transformers = pytest.importorskip("transformers")
    folder = tmp_path / "vit"
    transformers.AutoConfig.for_model("vit", **tiny_vit_config()).save_pretrained(folder)
    out = tmp_path / "hf.csv"
    assert main([*args, str(out), "--model", f"hf:{folder}", "--output", "embedding"]) == 0
    table = pd.read_csv(out)
    assert (table.output == "embedding").all() and "correct" not in table and table.mean_abs.iloc[0] > 0
    capsys.readouterr()
    assert main([*args, str(tmp_path / "x.csv"), "--model", "torchvision:resnet18", "--output", "dense"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a segmentation model" in err and len(err.splitlines()) == 1
