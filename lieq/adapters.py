"""Any model as a function ``x -> tensor`` plus its preprocessing: output fields, output kinds, loading by prefix.

The engine (:mod:`lieq.engine`) differentiates a function of a batch of model inputs ``x`` (``(B, C, H, W)``, any
``H, W``, ``C = 1`` or ``3``) that returns one tensor.  Real networks return a tensor, a tuple, a dict or a
``transformers`` ``ModelOutput``, and each expects its own preprocessing.  This module turns them into that form:

* :func:`select_output` picks the named field of a model's output (a dict key / ``ModelOutput`` attribute, or a tuple
  index); by default ``logits`` when present, else the output itself when it is a tensor, else its only tensor.
* :class:`OutputHead` composes a model with one of the three kinds of output of :data:`OUTPUT_KINDS`, the function
  whose Lie derivative the end-to-end LEE measures (the statistics are documented in :mod:`lieq.metrics`):

  ``logits``     class probabilities ``p = softmax(f(x))`` over the last axis; invariant (the paper's quantity);
  ``embedding``  the L2-normalised embedding ``e(x) / ||e(x)||`` of a ``(B, D)`` output; invariant.  The
                 normalisation removes the radial direction, which no downstream cosine-similarity use sees;
  ``dense``      an image-like output (dense logits or feature maps ``(B, C', H', W')``, or tokens
                 ``(B, s^2 + k, C')``); equivariant: the output is transformed back, ``L f = J_f v_in - v_out(f(x))``
                 (:func:`lieq.engine.lie_derivative` with ``output="equivariant"``).  Dense logits are taken as they
                 are (no softmax over the channels).

* :class:`Preprocessing` is an explicit eval preprocessing (size, crop, interpolation, mean / std, channels) for
  models that are not timm models; timm models keep their own timm eval transform (:func:`lieq.data.preprocess`).
  Transformations act on the preprocessed (normalised) tensor, as in the paper.
* :func:`load_model` builds a model from a prefixed name: ``timm:TAG`` (or a bare timm tag, the default),
  ``torchvision:NAME`` and ``hf:CONFIG`` (a ``transformers`` model type such as ``vit``, or a local folder with a
  ``config.json``), with the preprocessing that goes with it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "OUTPUT_KINDS",
    "LoadedModel",
    "OutputHead",
    "Preprocessing",
    "load_model",
    "prepare_inputs",
    "select_output",
]

#: Kinds of output, with how the end-to-end Lie derivative treats them.
OUTPUT_KINDS: dict[str, str] = {
    "logits": "class probabilities softmax(f(x)); invariant",
    "embedding": "L2-normalised embedding f(x) / ||f(x)|| of a (B, D) output; invariant",
    "dense": "image-like output (B, C, H, W) or tokens (B, s^2 + k, C); equivariant (transformed back)",
}
#: Model name prefixes of :func:`load_model` (a name without a known prefix is a timm tag).
PREFIXES = ("timm", "torchvision", "hf")


# --------------------------------------------------------------------------------------------------------------
# Output fields and kinds
# --------------------------------------------------------------------------------------------------------------


def _fields(out: Any) -> list[str]:
    if isinstance(out, Mapping):
        return [str(k) for k in out.keys()]
    if isinstance(out, (tuple, list)):
        return [str(i) for i in range(len(out))]
    return []


def select_output(out: Any, field: str | int | None = None) -> Tensor:
    """The tensor named ``field`` in a model's output ``out``.

    ``out`` is a tensor, a tuple / list (``field`` an index, or its string), a dict or a ``transformers``
    ``ModelOutput`` (``field`` a key).  ``field=None``: ``out["logits"]`` when present, else ``out`` itself when it is
    a tensor, else its only tensor entry.  An unknown field or an ambiguous output is a one-line ``ValueError`` that
    lists the fields.
    """
    if field is None:
        if isinstance(out, Tensor):
            return out
        if isinstance(out, Mapping) and isinstance(out.get("logits"), Tensor):
            return out["logits"]
        entries = (
            list(out.values()) if isinstance(out, Mapping) else list(out) if isinstance(out, (tuple, list)) else []
        )
        tensors = [v for v in entries if isinstance(v, Tensor)]
        if len(tensors) == 1:
            return tensors[0]
        raise ValueError(
            f"the model returns a {type(out).__name__} with fields [{', '.join(_fields(out))}]: name one (field=...)"
        )
    if isinstance(out, Tensor):
        raise ValueError(f"the model returns a tensor, which has no field {field!r}: use field=None")
    if isinstance(out, Mapping):
        value = out.get(field, out.get(str(field)))
    elif isinstance(out, (tuple, list)) and str(field).lstrip("-").isdigit() and -len(out) <= int(field) < len(out):
        value = out[int(field)]
    else:
        value = None
    if value is None:
        raise ValueError(f"unknown output field {field!r}; the {type(out).__name__} has [{', '.join(_fields(out))}]")
    if not isinstance(value, Tensor):
        raise ValueError(f"output field {field!r} is a {type(value).__name__}, not a tensor")
    return value


def _check_kind(output: str) -> None:
    if output not in OUTPUT_KINDS:
        raise ValueError(f"unknown output kind {output!r}; known: {', '.join(OUTPUT_KINDS)}")


class OutputHead(nn.Module):
    """``x -> g(select_output(model(x), field))`` with ``g`` given by the kind of output (module docstring).

    ``model`` is any callable on a batch of model inputs; an ``nn.Module`` is registered as the submodule ``model``
    (so that :func:`lieq.engine.autodiff_ready` and batch-norm folding see it), any other callable is kept as is.
    :attr:`equivariance` is ``"invariant"`` (``logits``, ``embedding``) or ``"equivariant"`` (``dense``).
    """

    def __init__(self, model: Callable[[Tensor], Any], output: str = "logits", field: str | int | None = None):
        super().__init__()
        _check_kind(output)
        self.model = model
        self.output = output
        self.field = field

    @property
    def equivariance(self) -> str:
        return "equivariant" if self.output == "dense" else "invariant"

    def raw(self, x: Tensor) -> Tensor:
        """The selected output field, before the kind's map (logits, embedding or dense map)."""
        return select_output(self.model(x), self.field)

    def forward(self, x: Tensor) -> Tensor:
        y = self.raw(x)
        if self.output == "logits":
            return torch.softmax(y, dim=-1)
        if self.output == "embedding":
            if y.dim() != 2:
                raise ValueError(
                    f"an embedding must have shape (B, D), got {tuple(y.shape)}; use output='dense' for image-like "
                    "outputs, or pool it first"
                )
            return F.normalize(y, dim=-1)
        from .image_model import feature_layout

        if feature_layout(y.shape) == "invariant":
            raise ValueError(f"a dense output must be image-like (B, C, H, W) or tokens, got {tuple(y.shape)}")
        return y


# --------------------------------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------------------------------


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = (int(s) for s in size)
    return h, w


@dataclass(frozen=True)
class Preprocessing:
    """An explicit eval preprocessing: images -> model inputs ``(N, C, H, W)``.

    ``size``: ``(H, W)`` (or one int for square inputs; ``None``: keep each image's size, which must then agree).
    ``crop_pct`` (timm's convention): resize so that the image covers ``floor(H / crop_pct) x floor(W / crop_pct)``
    keeping its aspect ratio (for square sizes: the shorter side to ``floor(H / crop_pct)``), then take the centre
    ``H x W`` crop; ``None``: resize the whole image to ``H x W`` (aspect ratio not kept, nothing cropped).
    ``interpolation``: ``bilinear``, ``bicubic``, ``nearest`` or ``lanczos``.  ``channels``: 3 (RGB) or 1
    (grey-scale); ``mean`` / ``std``: per channel, on values in ``[0, 1]``.

    Accepts PIL images, ``(C, H, W)`` tensors in ``[0, 1]`` or a ``(N, C, H, W)`` tensor in ``[0, 1]``.  For square
    sizes the arithmetic is that of timm's eval transform (the same torchvision operations), so
    ``Preprocessing.from_timm(model)`` reproduces :func:`lieq.data.preprocess` exactly.
    """

    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    size: int | tuple[int, int] | None = 224
    crop_pct: float | None = 0.875
    interpolation: str = "bilinear"
    channels: int = 3

    def __post_init__(self) -> None:
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise ValueError(
                f"mean and std need {self.channels} value(s) each, got {len(self.mean)} and {len(self.std)}"
            )
        if self.crop_pct is not None and not 0 < self.crop_pct <= 1:
            raise ValueError(f"crop_pct must be in (0, 1] or None, got {self.crop_pct}")

    @classmethod
    def from_timm(cls, model: nn.Module, input_size: int | tuple[int, int] | None = None) -> Preprocessing:
        """The eval preprocessing timm resolves for ``model`` (input size, crop, interpolation, mean / std)."""
        import timm.data

        args = {"input_size": (3, *_pair(input_size))} if input_size else {}
        config = timm.data.resolve_data_config(args, model=model)
        if config.get("crop_mode", "center") not in (None, "center"):
            raise ValueError(f"crop mode {config['crop_mode']!r} is not supported; timm's own path handles it")
        _, h, w = config["input_size"]
        return cls(
            mean=tuple(config["mean"]),
            std=tuple(config["std"]),
            size=(h, w),
            crop_pct=config["crop_pct"],
            interpolation=config["interpolation"],
            channels=3,
        )

    def _one(self, image: Any) -> Tensor:
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        mode = InterpolationMode(self.interpolation)
        if isinstance(image, Tensor):
            img = image.float()
            if img.dim() != 3 or img.shape[0] not in (1, 3):
                raise ValueError(f"image tensors must have shape (C, H, W) with C = 1 or 3, got {tuple(img.shape)}")
            if img.shape[0] != self.channels:
                img = img.mean(0, keepdim=True) if self.channels == 1 else img.expand(3, -1, -1)
            ih, iw = img.shape[-2:]
        else:
            img = image.convert("L" if self.channels == 1 else "RGB")
            iw, ih = img.size
        if self.size is not None:
            h, w = _pair(self.size)
            if self.crop_pct is None:
                img = TF.resize(img, [h, w], interpolation=mode, antialias=True)
            else:
                sh, sw = (math.floor(s / self.crop_pct + 1e-6) for s in (h, w))
                if sh == sw:  # torchvision's shorter-side resize, as timm's eval transform does
                    img = TF.resize(img, sh, interpolation=mode, antialias=True)
                else:
                    ratio = max(sh / ih, sw / iw)
                    img = TF.resize(img, [round(ih * ratio), round(iw * ratio)], interpolation=mode, antialias=True)
                img = TF.center_crop(img, [h, w])
        tensor = img if isinstance(img, Tensor) else TF.to_tensor(img)
        return TF.normalize(tensor, list(self.mean), list(self.std))

    def __call__(self, images: Any) -> Tensor:
        items = list(images.unbind(0)) if isinstance(images, Tensor) and images.dim() == 4 else list(images)
        if not items:
            raise ValueError("no images to preprocess")
        out = [self._one(im) for im in items]
        shapes = {tuple(t.shape) for t in out}
        if len(shapes) > 1:
            raise ValueError(f"preprocessed images differ in shape ({sorted(shapes)}): give a size")
        return torch.stack(out)


def is_timm_model(model: Any) -> bool:
    """Whether ``model`` carries a timm pretrained config (so that timm can resolve its preprocessing)."""
    return isinstance(model, nn.Module) and isinstance(getattr(model, "pretrained_cfg", None), Mapping)


def prepare_inputs(
    model: Any, images: Any, preprocessing: Preprocessing | Callable[[Any], Tensor] | None = None
) -> Tensor:
    """Model inputs ``(N, C, H, W)`` from ``images``.

    With a ``preprocessing`` (a :class:`Preprocessing` or any callable) it is applied to ``images``.  Without one, a
    tensor is taken as model inputs already, and other images (PIL, an :class:`lieq.data.ImageSet`) get the timm
    eval transform of a timm model; any other model needs an explicit preprocessing (one-line error).
    """
    if hasattr(images, "images") and hasattr(images, "ids"):  # an ImageSet
        images = images.images
    if preprocessing is not None:
        x = preprocessing(images)
    elif isinstance(images, Tensor):
        x = images
    elif is_timm_model(model):
        from .data import preprocess

        x = preprocess(images, model)
    else:
        raise ValueError(
            "images need a preprocessing for a model that is not a timm model: pass preprocessing=Preprocessing("
            "mean=..., std=..., size=...) or a callable, or preprocessed tensors"
        )
    if not isinstance(x, Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"images must have shape (N, C, H, W), got {shape}")
    return x


# --------------------------------------------------------------------------------------------------------------
# Models by prefix
# --------------------------------------------------------------------------------------------------------------


@dataclass
class LoadedModel:
    """A model from :func:`load_model`: the module, the field of its output to measure, the kind of output, the
    preprocessing that goes with it, and the weights-source string that results record."""

    model: nn.Module
    preprocessing: Preprocessing | Callable[[Any], Tensor]
    source: str
    output: str = "logits"
    field: str | int | None = None
    name: str = ""


class ForwardFeatures(nn.Module):
    """``x -> model.forward_features(x)``: a timm model's unpooled feature map (or tokens), for ``output="dense"``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model.forward_features(x)


def _replace_last_linear(model: nn.Module) -> nn.Module:
    """Replace the last ``nn.Linear`` (the classifier) by the identity: the model then returns its embedding."""
    linears = [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no linear classifier to remove for output='embedding'")
    parent_name, _, child = linears[-1].rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, nn.Identity())
    return model


def _load_timm(name: str, weights: str, seed: int, output: str, **kwargs) -> LoadedModel:
    from .data import preprocess
    from .weights import create_model

    model, source = create_model(name, weights, seed=seed, **kwargs)
    if output == "embedding" and getattr(model, "num_classes", 0):
        model.reset_classifier(0)  # timm's pooled, pre-logits features (num_classes=0), after loading the weights
    prep = functools.partial(preprocess, model=model)
    if output == "dense":
        return LoadedModel(ForwardFeatures(model).eval(), prep, source, output, None, f"timm:{name}")
    return LoadedModel(model, prep, source, output, None, f"timm:{name}")


def _torchvision_preprocessing(name: str) -> Preprocessing:
    import torchvision.models as tvm

    try:
        tf = tvm.get_model_weights(name).DEFAULT.transforms()
    except (ValueError, KeyError, AttributeError):  # no pretrained weights listed: ImageNet defaults
        return Preprocessing()
    interpolation = getattr(tf, "interpolation", None)
    interp = interpolation.value if interpolation is not None else "bilinear"
    resize = getattr(tf, "resize_size", None) or [224]
    crop = getattr(tf, "crop_size", None)
    if crop:
        return Preprocessing(tuple(tf.mean), tuple(tf.std), int(crop[0]), crop[0] / resize[0], interp)
    return Preprocessing(tuple(tf.mean), tuple(tf.std), int(resize[0]), None, interp)


def _load_torchvision(name: str, weights: str, seed: int, output: str, **kwargs) -> LoadedModel:
    import torchvision.models as tvm

    from .weights import UnknownModel, WeightsUnavailable

    known = tvm.list_models()
    if name not in known:
        close = [m for m in known if name[:4].lower() in m][:5]
        hint = f" (similar: {', '.join(close)})" if close else ""
        raise UnknownModel(f"unknown model {name!r}: not a torchvision model{hint}")
    segmentation = name in tvm.list_models(module=tvm.segmentation)
    if output == "dense" and not segmentation:
        raise ValueError(f"torchvision:{name} is not a segmentation model; for a dense output pass your own module")
    if segmentation and output != "dense":
        raise ValueError(f"torchvision:{name} is a segmentation model: use output='dense'")
    random_kwargs = {"weights": None, **({"weights_backbone": None} if segmentation else {})}
    if weights == "random" or weights.startswith("file:"):
        torch.manual_seed(seed)
        model = tvm.get_model(name, **random_kwargs, **kwargs)
        source = f"random:seed={seed}"
        if weights.startswith("file:"):
            path = Path(weights[5:]).expanduser()
            if not path.is_file():
                raise WeightsUnavailable(f"weights file not found: {path}")
            try:
                model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
            except Exception as exc:
                raise WeightsUnavailable(f"could not load {path} into {name}: {exc}".splitlines()[0]) from exc
            source = f"file:{path}"
    elif weights == "hub":
        try:
            model = tvm.get_model(name, weights="DEFAULT", **kwargs)
        except Exception as exc:  # offline, ...
            raise WeightsUnavailable(f"could not load torchvision's weights for {name}: {exc}".splitlines()[0]) from exc
        source = f"torchvision:{tvm.get_model_weights(name).DEFAULT}"
    else:
        raise ValueError(f"unknown weights source {weights!r} for torchvision: use random, hub or file:PATH")
    if output == "embedding":
        model = _replace_last_linear(model)
    field = "out" if segmentation else None
    return LoadedModel(model.eval(), _torchvision_preprocessing(name), source, output, field, f"torchvision:{name}")


def _resample_name(resample: Any) -> str:
    try:
        from PIL import Image

        return Image.Resampling(int(resample)).name.lower()
    except (TypeError, ValueError):
        return "bilinear"


def _hf_preprocessing(folder: Path | None, config: Any) -> Preprocessing:
    channels = int(getattr(config, "num_channels", 3))
    processor = None
    if folder is not None and (folder / "preprocessor_config.json").is_file():
        from transformers import AutoImageProcessor

        processor = AutoImageProcessor.from_pretrained(folder)
    if processor is None:  # the defaults of transformers' ViT image processor: squash to image_size, mean = std = 0.5
        from transformers.image_utils import IMAGENET_STANDARD_MEAN, IMAGENET_STANDARD_STD

        size = getattr(config, "image_size", 224)
        size = tuple(size) if isinstance(size, (list, tuple)) else int(size)
        mean, std = tuple(IMAGENET_STANDARD_MEAN)[:channels], tuple(IMAGENET_STANDARD_STD)[:channels]
        return Preprocessing(mean, std, size, None, "bilinear", channels)
    mean = tuple(float(v) for v in processor.image_mean)
    std = tuple(float(v) for v in processor.image_std)
    interp = _resample_name(getattr(processor, "resample", 2))
    size = dict(getattr(processor, "size", {}) or {})
    crop = dict(getattr(processor, "crop_size", {}) or {}) if getattr(processor, "do_center_crop", False) else {}
    if "height" in size and "width" in size and not crop:
        return Preprocessing(mean, std, (size["height"], size["width"]), None, interp, channels)
    if "shortest_edge" in size:
        edge = int(size["shortest_edge"])
        if crop:
            ch, cw = crop.get("height", edge), crop.get("width", edge)
            return Preprocessing(mean, std, (ch, cw), ch / edge, interp, channels)
        return Preprocessing(mean, std, edge, 1.0, interp, channels)
    raise ValueError(f"cannot read the image size of {type(processor).__name__}: pass a Preprocessing")


def _load_hf(name: str, weights: str, seed: int, output: str, **kwargs) -> LoadedModel:
    try:
        import transformers
    except ImportError as exc:
        raise ValueError("hf: models need transformers: pip install 'lieq[any]'") from exc
    from .weights import UnknownModel, WeightsUnavailable

    folder = Path(name).expanduser()
    folder = folder if folder.is_dir() else None
    try:
        if folder is not None:
            config = transformers.AutoConfig.from_pretrained(folder, **kwargs)
        else:
            config = transformers.AutoConfig.for_model(name, **kwargs)
    except (ValueError, OSError) as exc:
        raise UnknownModel(
            f"unknown model hf:{name}: neither a local folder with config.json nor a transformers model type"
        ) from exc
    field: str | None
    if output == "logits":
        classes, field = [transformers.AutoModelForImageClassification], "logits"
    elif output == "embedding":
        classes, field = [transformers.AutoModel], "pooler_output"
    else:
        classes, field = [transformers.AutoModelForSemanticSegmentation, transformers.AutoModel], None
    for i, cls in enumerate(classes):
        try:
            if weights == "random":
                torch.manual_seed(seed)
                model, source = cls.from_config(config), f"random:seed={seed}"
            elif weights == "hub":
                if folder is None:
                    raise WeightsUnavailable(f"hf:{name}: pretrained weights are read from a local folder only")
                model, source = cls.from_pretrained(folder), f"file:{folder}"
            else:
                raise ValueError(f"unknown weights source {weights!r} for hf: use random or hub (a local folder)")
        except (ValueError, KeyError) as exc:
            if i + 1 < len(classes) and "Unrecognized configuration class" in str(exc):
                continue
            raise
        if output == "dense" and cls is transformers.AutoModel:
            field = "last_hidden_state"  # tokens (B, s^2 + k, C)
        elif output == "dense":
            field = "logits"
        break
    return LoadedModel(model.eval(), _hf_preprocessing(folder, config), source, output, field, f"hf:{name}")


def load_model(spec: str, weights: str = "random", seed: int = 0, output: str = "logits", **kwargs: Any) -> LoadedModel:
    """Build the model named ``spec`` for the kind of ``output`` (:data:`OUTPUT_KINDS`) with its preprocessing.

    ``spec``: ``timm:TAG`` or a bare timm tag (the default; ``weights`` as in :func:`lieq.weights.create_model`;
    ``embedding`` resets the classifier, ``num_classes=0``, ``dense`` takes ``forward_features``); ``torchvision:NAME``
    (``weights``: ``random`` = seeded initialisation with ``weights=None`` (and ``weights_backbone=None``),
    ``hub`` = torchvision's default weights (a download), ``file:PATH`` = a state dict; ``embedding`` removes the
    last linear layer, segmentation models are ``dense`` with field ``out``; preprocessing from the default weights'
    transform); ``hf:CONFIG`` (``transformers``: a model type such as ``vit`` or a local folder with ``config.json``;
    ``weights``: ``random`` = ``from_config`` after ``torch.manual_seed(seed)``, ``hub`` = ``from_pretrained`` of the
    folder; ``logits`` -> ``AutoModelForImageClassification``, ``embedding`` -> ``AutoModel`` field
    ``pooler_output``, ``dense`` -> ``AutoModelForSemanticSegmentation`` field ``logits`` where the model type has
    one, else ``AutoModel`` field ``last_hidden_state``; preprocessing from the folder's image processor, else
    transformers' ViT defaults).  ``kwargs`` go to the model constructor (timm, torchvision) or the config (hf).
    """
    _check_kind(output)
    prefix, sep, name = spec.partition(":")
    if not sep or prefix not in PREFIXES:
        prefix, name = "timm", spec
    if not name:
        raise ValueError(f"no model name after {prefix}:")
    loader = {"timm": _load_timm, "torchvision": _load_torchvision, "hf": _load_hf}[prefix]
    return loader(name, weights, seed, output, **kwargs)
