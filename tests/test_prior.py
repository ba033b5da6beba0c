"""The scale-free architecture prior (lieq.prior): independent of the head, of the feature scale, and equal to the
normalised-embedding LEE computed by another route."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

from lieq.metrics import e2e_lee
from lieq.prior import prior_lee


def _model(name: str = "test_resnet.r160_in1k", seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False).eval()


@pytest.fixture(scope="module")
def inputs() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def test_zero_head_gives_zero_softmax_lee_but_not_zero_prior(inputs):
    model = _model()
    torch.nn.init.zeros_(model.get_classifier().weight)
    torch.nn.init.zeros_(model.get_classifier().bias)
    table = prior_lee(model, inputs, "translate_x,rotate")
    assert (table["softmax_mean_abs"] == 0).all()  # uniform softmax whatever the input: the old prior's zeros
    assert (table["feature_lee"] > 1e-3).all()  # the architecture still has something to say


def test_prior_is_independent_of_the_head_and_of_the_feature_scale(inputs):
    model = _model()
    base = prior_lee(model, inputs, "translate_x")
    with torch.no_grad():
        model.get_classifier().weight.mul_(25.0)  # a different head scale: the softmax LEE changes ...
    scaled_head = prior_lee(model, inputs, "translate_x")
    assert not np.allclose(scaled_head["softmax_mean_abs"], base["softmax_mean_abs"], rtol=0.1)
    np.testing.assert_allclose(scaled_head["feature_lee"], base["feature_lee"], rtol=1e-6)  # ... the prior does not
    head = model.forward_head

    def scaled_features(x, pre_logits=False):  # phi -> 7 phi (the head still sees the original phi)
        return head(x, pre_logits=pre_logits) * (7.0 if pre_logits else 1.0)

    model.forward_head = scaled_features
    np.testing.assert_allclose(prior_lee(model, inputs, "translate_x")["feature_lee"], base["feature_lee"], rtol=1e-5)

def test_prior_equals_the_normalised_embedding_lee_of_an_independent_route(inputs):
    """||L e|| from the prior's one pass over [e, p] equals sqrt(D * mean_sq) of e2e_lee(output='embedding') on the
    pre-logit features alone (a separate function, separate call of the engine)."""
    model = _model("test_vit.r160_in1k")
    table = prior_lee(model, inputs, "translate_x,rotate", sensitivity_draws=2)

    def features(x):
        return model.forward_head(model.forward_features(x), pre_logits=True)

    ref = e2e_lee(features, inputs, generators="translate_x,rotate", output="embedding")
    d = int(table["feature_dim"].iloc[0])
    np.testing.assert_allclose(table["feature_lee"], np.sqrt(d * ref["mean_sq"]), rtol=1e-4)
    # the normalised value is the same ratio as lieq.metrics' normalised LEE (same draws, same seeds)
    norm = e2e_lee(features, inputs, generators="translate_x,rotate", output="embedding", normalised=True,
                   sensitivity_draws=2)  # fmt: skip
    np.testing.assert_allclose(table["feature_sensitivity"], norm["sensitivity"], rtol=1e-4)
    np.testing.assert_allclose(table["normalised_feature_lee"], norm["normalised"], rtol=1e-4)
