"""Layer selection, categories and feature layouts for the layerwise attribution (lieq.layers)."""

from __future__ import annotations

import pytest
import timm
import torch
from timm.layers import Attention, BatchNormAct2d, ConvNormAct, Mlp, PatchEmbed
from torch import nn

from lieq.layers import CATEGORIES, category_of, out_of_place, select_layers


def by_name(model: nn.Module) -> dict[str, list]:
    table: dict[str, list] = {}
    for spec in select_layers(model):
        table.setdefault(spec.name, []).append(spec)
    return table


def test_leaf_categories():
    assert category_of(nn.Conv2d(3, 4, 3)) == "Conv"
    assert category_of(nn.ReLU()) == "Activation"
    assert category_of(nn.GELU()) == "Activation"
    assert category_of(nn.BatchNorm2d(4)) == "Norm"
    assert category_of(nn.LayerNorm(4)) == "Norm"
    assert category_of(nn.MaxPool2d(2)) == "Pool"
    assert category_of(nn.AdaptiveAvgPool2d(1)) == "Pool"
    assert category_of(nn.Linear(3, 4)) == "Linear/MLP"
    assert category_of(nn.Identity()) == "Other"
    assert category_of(Attention(8, num_heads=2)) == "Attention"
    assert category_of(PatchEmbed(16, 4, 3, 8)) == "Embedding"
    assert all(category_of(m) in CATEGORIES for m in timm.create_model("resnet18").modules())


def test_fused_norm_act_is_split_so_the_activation_is_an_activation():
    model = nn.Sequential(ConvNormAct(3, 4, 3, act_layer=nn.ReLU), BatchNormAct2d(4, act_layer=nn.SiLU))
    layers = by_name(model)
    assert [s.category for s in layers["0.conv"]] == ["Conv"]
    assert [(s.category, s.split) for s in layers["0.bn"]] == [("Norm", "norm")]
    assert [s.category for s in layers["0.bn.act"]] == ["Activation"]
    assert [(s.category, s.split) for s in layers["1"]] == [("Norm", "norm")]
    assert [s.category for s in layers["1.act"]] == ["Activation"]


def test_composites_are_single_layers_and_mlp_blocks_are_descended_into():
    vit = timm.create_model("vit_tiny_patch16_224", img_size=32, depth=1)
    layers = by_name(vit)
    assert layers["patch_embed"][0].category == "Embedding"
    assert layers["blocks.0.attn"][0].category == "Attention"
    assert not any(name.startswith("blocks.0.attn.") or name.startswith("patch_embed.") for name in layers)
    assert layers["blocks.0.mlp.act"][0].category == "Activation"
    assert layers["blocks.0.mlp.fc1"][0].category == "Linear/MLP"
    assert layers["blocks.0.norm1"][0].category == "Norm"


def test_layouts_of_channels_last_and_token_mixing_models():
    swin = timm.create_model("swin_tiny_patch4_window7_224", img_size=64, window_size=4, depths=(1, 1, 1, 1))
    layers = by_name(swin)
    embed = layers["patch_embed"][0]
    assert (embed.in_layout, embed.out_layout) == ("auto", "nhwc")
    assert layers["layers.0.blocks.0"][0].category == "Attention"
    assert layers["layers.0.blocks.0"][0].in_layout == "nhwc"
    assert layers["layers.1.downsample"][0].category == "Pool"
    assert layers["head.global_pool"][0].in_layout == "nhwc"

    convnext = timm.create_model("convnext_atto", conv_mlp=False)
    layers = by_name(convnext)
    assert layers["stem.1"][0].in_layout == "auto"  # LayerNorm2d acts on NCHW
    assert layers["stages.0.blocks.0.norm"][0].in_layout == "nhwc"
    assert layers["stages.0.blocks.0.mlp.act"][0].in_layout == "nhwc"
    assert layers["stages.0.blocks.0.conv_dw"][0].in_layout == "auto"

    mixer = timm.create_model("mixer_s32_224", img_size=64)
    layers = by_name(mixer)
    assert layers["blocks.0.mlp_tokens.fc1"][0].in_layout == "tokens_t"
    assert layers["blocks.0.mlp_tokens.act"][0].category == "Activation"
    assert layers["blocks.0.mlp_channels.fc1"][0].in_layout == "nhwc"


def test_out_of_place_restores_flags():
    model = nn.Sequential(nn.ReLU(inplace=True), Mlp(4, 8, act_layer=nn.ReLU))
    model[1].act.inplace = True
    with out_of_place(model):
        assert not model[0].inplace and not model[1].act.inplace
        x = torch.randn(3, 4)
        y = x.clone()
        model[0](y)
        assert torch.equal(x, y)
    assert model[0].inplace and model[1].act.inplace


@pytest.mark.parametrize("tag", ["efficientnet_b0", "densenet121", "regnetx_002"])
def test_every_fused_activation_is_visible(tag):
    """No activation hides inside a norm: every ``act`` child of a norm-act module is its own Activation layer."""
    model = timm.create_model(tag)
    names = {s.name for s in select_layers(model) if s.category == "Activation"}
    for name, module in model.named_modules():
        if isinstance(module, BatchNormAct2d) and not isinstance(module.act, nn.Identity):
            assert f"{name}.act" in names
