"""Which modules of a network are "layers" for the layerwise attribution, their categories and feature layouts.

The chain-rule decomposition of the Lie derivative (docs/conventions.md section 5) needs non-overlapping modules
``f_i`` whose composition (together with the equivariant glue between them: residual additions, concatenations,
reshapes) is the network.  :func:`select_layers` chooses them by rules on module *structure* (children, attributes,
base classes), not by a list of class names of one timm release:

1. **Composites** are single layers and are not descended into:

   * attention blocks (class name contains ``Attention``/``Attn``, ConViT's ``GPSA``/``MHSA``, or direct children
     ``qkv``, ``qk`` or ``q`` + ``kv``);
   * patch embeddings (class name contains ``PatchEmbed``/``Embed`` with a ``proj`` child, or a ``patch_size``
     attribute and a ``proj`` child);
   * normalisation layers (torch ``_NormBase``, ``LayerNorm``, ``GroupNorm``, ``LocalResponseNorm`` and any
     class whose name contains ``Norm`` and that has no children other than ``act``/``drop``);
   * squeeze-excite / gather-excite blocks (class name contains ``SqueezeExcite``/``SEModule``/``GatherExcite``/
     ``EffectiveSE``/``EcaModule``/``SEBlock``, or children ``conv_reduce`` + ``conv_expand``);
   * windowed-attention blocks (Swin style: a module with a ``window_size`` attribute and an ``attn`` child; the
     window partition and cyclic shift are functional code inside the block, so only the whole block has a
     well-defined input and output feature map) and patch merging (Swin ``PatchMerging``, a reshape + norm +
     linear downsampling);
   * global pooling wrappers (class name contains ``Pool`` with children, e.g. ``SelectAdaptivePool2d``);
   * drop-path (a leaf anyway).

2. **Fused norm + activation** modules (a normalisation layer with an ``act`` child: timm's ``BatchNormAct2d``,
   ``GroupNormAct``, ``LayerNormAct``, ...) are *split*: the normalisation part (the module with its activation
   replaced by the identity) is a ``Norm`` layer and the ``act`` child an ``Activation`` layer, so that the
   activation's share is not moved into ``Norm``.  ``ConvNormAct`` containers are descended into like any
   container (conv -> ``Conv``, bn -> split as above).

3. MLP blocks (``Mlp``, ``GluMlp``, ``ConvMlp``, mixer token MLPs) are *descended into*, so that their
   activation is attributed as ``Activation`` and their (pointwise) linear maps as ``Linear/MLP``, as in the
   paper's Fig. 1 ViT slices.  Every other container is descended into as well; every leaf module is a layer.

A module that is never called in a forward pass simply has no entry in the attribution (hooks record calls).

Feature layouts (how a layer's input and output are seen as images, docs/conventions.md section 2).  Each layer has
an ``in_layout`` and an ``out_layout``:

``auto``
    :func:`lieq.image_model.feature_layout`: ``(B, C, H, W)`` images, ``(B, s^2 + k, C)`` tokens, else invariant.
``nhwc``
    as ``auto`` except that 4-D tensors are channels-last maps ``(B, H, W, C)``.  Used for modules that act on the
    last axis (``nn.Linear``, ``nn.LayerNorm`` other than the ``*2d`` variants, attention, MLP blocks whose
    ``fc1`` is linear, and all their descendants, Swin blocks and patch merging), for pooling wrappers that reduce
    axes (1, 2) or declare ``input_fmt='NHWC'``, and for the output of patch embeddings with
    ``output_fmt='NHWC'``.  This is the rule that makes ConvNeXt blocks (which permute to channels-last around
    their norm and MLP) and Swin (channels-last throughout) consistent.
``tokens_t``
    3-D tensors are transposed tokens ``(B, C, s^2 + k)`` (the token-mixing MLP of MLP-Mixer / ResMLP, i.e. a
    child named ``mlp_tokens``/``linear_tokens``/``token_mixing`` of a block, and its descendants).

The layout rule only has to be *consistent*: the same tensor must be seen the same way as the output of one layer
and as the input of the next, otherwise the telescoping sum of the layer terms no longer equals the end-to-end Lie
derivative (the gap shows up as the unattributed share).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

from torch import Tensor, nn

from .conventions import CATEGORIES

__all__ = [
    "CATEGORIES",
    "LAYOUTS",
    "LayerSpec",
    "category_of",
    "is_identity_in_eval",
    "norm_part",
    "out_of_place",
    "select_layers",
]

LAYOUTS: tuple[str, ...] = ("auto", "nhwc", "tokens_t")

_ACT_WORDS = ("relu", "gelu", "silu", "swish", "sigmoid", "tanh", "mish", "elu", "softplus", "hardswish", "hard")
_TOKEN_MIXING_NAMES = ("mlp_tokens", "linear_tokens", "token_mixing")


@dataclass
class LayerSpec:
    """One layer of the attribution.

    ``name`` is the qualified module name (``""`` for the root); ``split`` is ``"norm"`` for the normalisation part
    of a fused norm + activation module (whose ``act`` child is a separate layer), else ``None``.
    """

    name: str
    module: nn.Module
    category: str
    in_layout: str = "auto"
    out_layout: str = "auto"
    split: str | None = None
    children_skipped: list[str] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return type(self.module).__name__


# --------------------------------------------------------------------------------------------------------------
# Structural predicates
# --------------------------------------------------------------------------------------------------------------


def _cls(module: nn.Module) -> str:
    return type(module).__name__


def _children(module: nn.Module) -> dict[str, nn.Module]:
    return dict(module.named_children())


def is_activation(module: nn.Module) -> bool:
    if isinstance(module, nn.MultiheadAttention):
        return False
    if type(module).__module__.startswith(("torch.nn.modules.activation", "timm.layers.activations")):
        return not _children(module)
    name = _cls(module).lower()
    return not _children(module) and any(w in name for w in _ACT_WORDS) and "norm" not in name


def is_conv(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.conv._ConvNd)


def is_attention(module: nn.Module) -> bool:
    name = _cls(module)
    kids = _children(module)
    if isinstance(module, nn.MultiheadAttention):
        return True
    if ("Attention" in name or "Attn" in name or name in ("GPSA", "MHSA")) and "Block" not in name:
        return True
    return "qkv" in kids or "qk" in kids or ("q" in kids and "kv" in kids)


def is_patch_embed(module: nn.Module) -> bool:
    name = _cls(module)
    kids = _children(module)
    if "PatchEmbed" in name:
        return True
    return "proj" in kids and ("Embed" in name or hasattr(module, "patch_size"))


def is_norm(module: nn.Module) -> bool:
    if isinstance(module, (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)):
        return True
    extra = set(_children(module)) - {"act", "drop"}
    return "Norm" in _cls(module) and not extra


def is_norm_act(module: nn.Module) -> bool:
    """A normalisation layer that applies its activation internally (timm's ``BatchNormAct2d`` and relatives)."""
    return is_norm(module) and isinstance(getattr(module, "act", None), nn.Module)


def norm_part(module: nn.Module, x: Tensor) -> Tensor:
    """The normalisation part of a fused norm + activation module (:func:`is_norm_act`): ``module(x)`` with its
    ``act`` child swapped for ``nn.Identity`` for the call (restored afterwards, also on error)."""
    act = module.act
    module.act = nn.Identity()
    try:
        return module(x)
    finally:
        module.act = act


def is_squeeze_excite(module: nn.Module) -> bool:
    name = _cls(module)
    if any(w in name for w in ("SqueezeExcite", "SEModule", "GatherExcite", "EffectiveSE", "EcaModule", "SEBlock")):
        return True
    kids = _children(module)
    return "conv_reduce" in kids and "conv_expand" in kids


def is_windowed_block(module: nn.Module) -> bool:
    return hasattr(module, "window_size") and "attn" in _children(module) and not is_attention(module)


def is_patch_merging(module: nn.Module) -> bool:
    return "Merging" in _cls(module)


def is_pool(module: nn.Module) -> bool:
    return "Pool" in _cls(module) or isinstance(module, (nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd))


def is_mlp_block(module: nn.Module) -> bool:
    kids = _children(module)
    return "fc1" in kids and "fc2" in kids and not is_squeeze_excite(module)


def is_drop_path(module: nn.Module) -> bool:
    return "DropPath" in _cls(module)


def is_identity_in_eval(module: nn.Module) -> bool:
    """Modules that are the identity map in eval mode (their Lie derivative is exactly 0)."""
    if isinstance(module, nn.Identity):
        return True
    if isinstance(module, nn.modules.dropout._DropoutNd):
        return not module.training
    if is_drop_path(module):
        return not module.training or float(getattr(module, "drop_prob", 0.0)) == 0.0
    return False


def _is_composite(module: nn.Module) -> bool:
    return (
        is_attention(module)
        or is_patch_embed(module)
        or (is_norm(module) and not is_norm_act(module))
        or is_squeeze_excite(module)
        or is_windowed_block(module)
        or is_patch_merging(module)
        or (is_pool(module) and bool(_children(module)))
        or is_drop_path(module)
    )


def category_of(module: nn.Module) -> str:
    """The figure category of a module: one of :data:`lieq.conventions.CATEGORIES`.

    Windowed-attention (Swin) blocks are ``Attention``; patch merging and pooling are ``Pool``; squeeze-excite and
    gather-excite blocks are ``Other`` (a gating by a globally pooled vector); ``nn.Linear`` and MLP blocks are
    ``Linear/MLP``; patch embeddings and ``nn.Embedding`` are ``Embedding``.
    """
    if is_patch_embed(module) or isinstance(module, nn.Embedding):
        return "Embedding"
    if is_attention(module) or is_windowed_block(module):
        return "Attention"
    if is_norm(module):
        return "Norm"
    if is_activation(module):
        return "Activation"
    if is_conv(module):
        return "Conv"
    if is_patch_merging(module) or is_pool(module):
        return "Pool"
    if isinstance(module, nn.Linear) or is_mlp_block(module):
        return "Linear/MLP"
    return "Other"


# --------------------------------------------------------------------------------------------------------------
# Layouts
# --------------------------------------------------------------------------------------------------------------


def _fmt_is_nhwc(value: object) -> bool:
    if value is None:
        return False
    return str(getattr(value, "value", value)).upper().endswith("NHWC")


def _declares_nhwc(module: nn.Module) -> bool:
    for m in module.modules():
        if _fmt_is_nhwc(getattr(m, "input_fmt", None)) or _fmt_is_nhwc(getattr(m, "fmt", None)):
            return True
        dim = getattr(m, "dim", None)
        if is_pool(m) and isinstance(dim, tuple) and tuple(dim) == (1, 2):
            return True
    return False


def _acts_on_last_axis(module: nn.Module) -> bool:
    if isinstance(module, nn.LayerNorm) and not _cls(module).endswith("2d"):
        return True
    if isinstance(module, nn.Linear):
        return True
    if is_mlp_block(module) and isinstance(_children(module)["fc1"], nn.Linear):
        return True
    return is_attention(module) or is_windowed_block(module) or is_patch_merging(module)


# --------------------------------------------------------------------------------------------------------------
# Selection
# --------------------------------------------------------------------------------------------------------------


def select_layers(model: nn.Module) -> list[LayerSpec]:
    """The layers of ``model`` in module-tree order (module docstring for the rules).

    A fused norm + activation module gives two entries: ``LayerSpec(name, module, "Norm", split="norm")`` and its
    ``act`` child (``Activation``).  Execution order (and repeated calls) are found by the hooks at run time.
    """
    layers: list[LayerSpec] = []

    def visit(name: str, module: nn.Module, inherited: str) -> None:
        layout = inherited
        if inherited == "auto" and _acts_on_last_axis(module):
            layout = "nhwc"
        last = name.rsplit(".", 1)[-1]
        if last in _TOKEN_MIXING_NAMES:
            layout = "tokens_t"
        if _is_composite(module):
            in_layout = out_layout = layout
            if is_patch_embed(module):
                in_layout = "auto"
                out_layout = "nhwc" if _fmt_is_nhwc(getattr(module, "output_fmt", None)) else "auto"
            elif is_pool(module) and _declares_nhwc(module):
                in_layout = out_layout = "nhwc"
            layers.append(LayerSpec(name, module, category_of(module), in_layout, out_layout))
            return
        kids = list(module.named_children())
        if is_norm_act(module):
            layers.append(LayerSpec(name, module, "Norm", layout, layout, split="norm"))
        elif not kids:
            layers.append(LayerSpec(name, module, category_of(module), layout, layout))
            return
        # Descendants of a channels-last MLP block or of a token-mixing MLP see the same layout as the block.
        keep = inherited != "auto" or layout == "tokens_t" or (layout == "nhwc" and is_mlp_block(module))
        inherit = layout if keep else "auto"
        for child_name, child in kids:
            visit(f"{name}.{child_name}" if name else child_name, child, inherit)

    visit("", model, "auto")
    return layers


@contextlib.contextmanager
def out_of_place(model: nn.Module) -> Iterator[None]:
    """Make in-place modules (``inplace=True`` attributes: ReLU, timm activations, norm-act) out-of-place.

    In-place activations overwrite their input, which the attribution hooks need unchanged; the flags are restored
    on exit.
    """
    saved = []
    for m in model.modules():
        if getattr(m, "inplace", None) is True:
            saved.append(m)
            m.inplace = False
    try:
        yield
    finally:
        for m in saved:
            m.inplace = True
