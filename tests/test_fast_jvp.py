"""The forward engine's custom forward-mode rules agree with PyTorch's generic rules (or an explicit composite)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lieq._fast_jvp import _LeftMatmul, fast_jvp_rules

N_TANGENTS = 3


def vmapped_jvp(fn, x: torch.Tensor, tangents: torch.Tensor, fast: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``fn(x)`` and ``J v`` for each ``v`` in ``tangents``, with the fast rules or with PyTorch's own."""

    def one(v):
        return torch.func.jvp(fn, (x,), (v,))

    with torch.no_grad():
        if fast:
            with fast_jvp_rules():
                return torch.func.vmap(one, out_dims=(None, 0))(tangents)
        return torch.func.vmap(one, out_dims=(None, 0))(tangents)


def assert_rule_matches(fn, x: torch.Tensor, reference=None) -> None:
    torch.manual_seed(1)
    tangents = torch.randn(N_TANGENTS, *x.shape, dtype=x.dtype)
    y_fast, jv_fast = vmapped_jvp(fn, x, tangents, fast=True)
    y_ref, jv_ref = vmapped_jvp(reference or fn, x, tangents, fast=False)
    torch.testing.assert_close(y_fast, y_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(jv_fast, jv_ref, rtol=1e-4, atol=1e-5)
    assert jv_fast.abs().max() > 1e-3, "the tangent must not vanish, or the comparison says nothing"


def test_convolution_linear_batch_norm_and_gelu_rules():
    torch.manual_seed(0)
    w, b = torch.randn(6, 4, 3, 3), torch.randn(6)
    mean, var, gamma, beta = torch.randn(6), torch.rand(6) + 0.5, torch.randn(6), torch.randn(6)
    lin_w, lin_b = torch.randn(5, 6), torch.randn(5)

    def net(x):
        h = F.conv2d(x, w, b, padding=1, stride=2)
        h = F.batch_norm(h, mean, var, gamma, beta, training=False, eps=1e-3)
        h = F.gelu(h)
        return F.linear(h.mean((2, 3)), lin_w, lin_b)

    assert_rule_matches(net, torch.randn(2, 4, 9, 9))


def test_primal_outputs_are_the_native_kernels():
    torch.manual_seed(0)
    x, lin_w = torch.randn(2, 7, 5), torch.randn(3, 5)

    def net(z):
        return F.linear(F.gelu(F.layer_norm(z, (5,))), lin_w)

    with torch.no_grad():
        native = net(x)
        with fast_jvp_rules():
            fast = net(x)
    assert torch.equal(native, fast)


@pytest.mark.parametrize("shape", [(4,), (3, 4)])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm_rule(shape, affine):
    torch.manual_seed(0)
    weight = torch.randn(shape) if affine else None
    bias = torch.randn(shape) if affine else None
    x = torch.randn(2, 5, *shape) * 3 + 1
    assert_rule_matches(lambda z: F.layer_norm(z, shape, weight, bias, 1e-5), x)


def attention_composite(q, k, v, bias=None, scale=None):
    """The textbook definition, differentiated by PyTorch's generic rules (the fused kernels have none)."""
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q * scale) @ k.transpose(-2, -1)
    if bias is not None:
        scores = scores + bias
    return scores.softmax(-1) @ v


@pytest.mark.parametrize("varying", ["qkv", "q", "k", "v", "qk"])
def test_attention_rule_for_every_combination_of_varying_inputs(varying):
    torch.manual_seed(0)
    base = {name: torch.randn(2, 3, 6, 4) for name in "qkv"}

    def split(x, attention):
        args = {name: (x[i] if name in varying else base[name]) for i, name in enumerate("qkv")}
        return attention(args["q"], args["k"], args["v"])

    x = torch.stack([base[name] for name in "qkv"])
    assert_rule_matches(
        lambda z: split(z, F.scaled_dot_product_attention), x, reference=lambda z: split(z, attention_composite)
    )


def test_attention_rule_with_masks_and_scale():
    torch.manual_seed(0)
    keep = torch.rand(6, 6) > 0.3
    keep.fill_diagonal_(True)
    float_mask = torch.randn(6, 6)
    causal = torch.zeros(6, 6).masked_fill(~torch.ones(6, 6, dtype=torch.bool).tril(), float("-inf"))
    bool_bias = torch.zeros(6, 6).masked_fill(~keep, float("-inf"))
    x = torch.randn(3, 2, 3, 6, 4)
    cases = [
        (dict(attn_mask=keep), bool_bias, None),
        (dict(attn_mask=float_mask, scale=0.3), float_mask, 0.3),
        (dict(is_causal=True), causal, None),
    ]
    for kwargs, bias, scale in cases:
        assert_rule_matches(
            lambda z, kw=kwargs: F.scaled_dot_product_attention(z[0], z[1], z[2], **kw),
            x,
            reference=lambda z, b=bias, s=scale: attention_composite(z[0], z[1], z[2], b, s),
        )


def test_attention_rule_with_an_input_dependent_mask():
    torch.manual_seed(0)
    x = torch.randn(4, 2, 3, 6, 6)

    def masked(z, attention):  # the mask is z[3], so it carries a tangent too
        return attention(z[0], z[1], z[2][..., :4], z[3])

    assert_rule_matches(
        lambda z: masked(z, lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m)),
        x,
        reference=lambda z: masked(z, attention_composite),
    )


def test_left_matmul_vmap_rule_folds_the_tangent_axis_into_columns():
    torch.manual_seed(0)
    a, x = torch.randn(2, 3, 5, 5), torch.randn(4, 2, 3, 5, 7)
    batched_x = torch.func.vmap(_LeftMatmul.apply, in_dims=(None, 0))(a, x)
    torch.testing.assert_close(batched_x, torch.matmul(a, x))
    batched_a = torch.func.vmap(_LeftMatmul.apply, in_dims=(0, None))(x[..., :5], a)
    torch.testing.assert_close(batched_a, torch.matmul(x[..., :5], a))
    both = torch.func.vmap(_LeftMatmul.apply, in_dims=(0, 2))(x[..., :5], x.movedim(0, 2))
    torch.testing.assert_close(both, torch.matmul(x[..., :5], x))


def test_timm_vit_with_fused_attention_uses_the_rule_and_matches_the_unfused_model():
    import timm

    from lieq.engine import autodiff_ready, jvp_many

    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False, img_size=32, patch_size=8, num_classes=10).eval()
    x, tangents = torch.randn(2, 3, 32, 32), torch.randn(3, 2, 3, 32, 32)
    calls = []
    with autodiff_ready(model, keep_fused_attention=True), torch.no_grad(), fast_jvp_rules():
        native_rule = F.scaled_dot_product_attention
        F.scaled_dot_product_attention = lambda *a, **k: calls.append(1) or native_rule(*a, **k)
        try:
            y_fast, jv_fast = jvp_many(model, x, tangents, vectorize="vmap")
        finally:
            F.scaled_dot_product_attention = native_rule
    assert calls, "timm's fused attention path must reach the forward-mode rule"
    with autodiff_ready(model), torch.no_grad():  # fused attention off: timm's explicit path, generic rules
        y_ref, jv_ref = jvp_many(model, x, tangents, vectorize="vmap")
    torch.testing.assert_close(y_fast, y_ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(jv_fast, jv_ref, rtol=1e-4, atol=1e-5)


class ConvBlocks(torch.nn.Module):
    """conv -> BN (foldable), conv -> BN with the conv output also used by a residual (not foldable), and a BN after
    a concatenation (not foldable)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1, self.bn1 = torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4)
        self.conv2, self.bn2 = torch.nn.Conv2d(4, 4, 3, padding=1, bias=False), torch.nn.BatchNorm2d(4)
        self.bn3 = torch.nn.BatchNorm2d(8)
        self.head = torch.nn.Linear(8, 5)
        for bn in (self.bn1, self.bn2, self.bn3):  # non-trivial statistics, as after training
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.data.uniform_(0.5, 2)
            bn.bias.data.uniform_(-1, 1)
        self.eval()

    def forward(self, x):
        h = torch.relu(self.bn1(self.conv1(x)))
        c = self.conv2(h)
        h2 = torch.relu(self.bn2(c) + c)
        h3 = torch.relu(self.bn3(torch.cat([h, h2], dim=1)))
        return self.head(h3.mean((2, 3)))


def test_batch_norm_folding_finds_only_safe_pairs():
    from lieq._fast_jvp import find_batch_norm_folds

    model = ConvBlocks()
    folds = find_batch_norm_folds(model, torch.randn(1, 3, 8, 8))
    assert len(folds) == 1
    assert folds[0].conv_weight is model.conv1.weight and folds[0].running_mean is model.bn1.running_mean
    model.train()
    assert len(find_batch_norm_folds(model, torch.randn(2, 3, 8, 8))) == 0  # training-mode batch norms: never


def test_folded_forward_engine_matches_the_unfolded_one_and_the_reference():
    from lieq.engine import lie_derivative

    model = ConvBlocks()
    x = torch.randn(3, 3, 8, 8)
    folded = lie_derivative(model, x, "e2e")
    unfolded = lie_derivative(model, x, "e2e", fold_batch_norm=False)
    reference = lie_derivative(model, x, "e2e", method="double_backward")
    torch.testing.assert_close(folded, unfolded, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(folded, reference, rtol=1e-4, atol=1e-6)


def test_a_changed_data_flow_falls_back_to_no_folding():
    """If a folded batch norm is not fed by its convolution in the real pass, the engine recomputes unfolded."""
    from lieq.engine import lie_derivative

    class Switch(ConvBlocks):
        def forward(self, x):  # the probe (one image) sees conv1 -> bn1; larger batches put an op in between
            c = self.conv1(x)
            if x.shape[0] > 1:
                c = c * 1.0
            return self.head(torch.relu(self.bn1(c)).mean((2, 3)).repeat(1, 2))

    model = Switch()
    x = torch.randn(2, 3, 8, 8)
    torch.testing.assert_close(
        lie_derivative(model, x, "e2e"), lie_derivative(model, x, "e2e", method="double_backward"), rtol=1e-4, atol=1e-6
    )
