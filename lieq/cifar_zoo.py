"""A controlled zoo trained here: CNNs, ViTs, MLP-Mixers and ConvNeXts on CIFAR-10 (issue 14, section 1).

Every member is built with timm's own classes at CIFAR scale (32 x 32 RGB input, 10 classes) and trained with one
recipe, so that family, size and augmentation vary independently:

* families (:data:`ARCHS`): ``resnet`` (:class:`timm.models.resnet.ResNet`, basic blocks, four stages with one
  block each; the 7 x 7 stride-2 stem and its max pool are replaced by one 3 x 3 stride-1 convolution, the usual
  CIFAR stem), ``vit`` (:class:`timm.models.vision_transformer.VisionTransformer`, patch 4, class token),
  ``mixer`` (:class:`timm.models.mlp_mixer.MlpMixer`, patch 4) and ``convnext`` (:class:`timm.models.convnext.
  ConvNeXt`, the patchify CNN: a 2 x 2 stride-2 patch stem, 7 x 7 depthwise convolutions); sizes ``s`` and ``m``
  (about 0.3-0.5 M and 0.7-1.3 M parameters);
* augmentation: ``noaug`` (none) or ``aug`` (translations: random crop of the image zero-padded by 4 px, i.e. an
  integer shift of -4..4 px in each axis, and a horizontal flip with probability 1/2);
* the recipe of a *setting* (:data:`SETTINGS`; ``cpu``: the budget of a 2-core CPU, ``gpu``: a longer one):
  AdamW (decoupled weight decay on weights, none on biases and norms), linear warmup then cosine decay to 0 per
  step, cross-entropy, the same epochs, batch size, training subset (a seeded subset of the 50k training images,
  identical for every model) and seed for every model.  ``torch.manual_seed(seed)`` before building the model fixes
  the initialisation; the data order and the augmentation of epoch ``e`` come from a generator seeded with
  ``seed`` and ``e`` only, so the two augmentation regimes see the same images in the same order.

Inputs are pixels in [0, 1] normalised with the ImageNet mean and std (:data:`lieq.cifar.MEAN`, ``STD``), as
for the CIFAR ResNets of :mod:`lieq.cifar`; each model's ``pretrained_cfg`` says so (timm's eval transform at
32 px is then the identity on CIFAR images).

Catalogue names: ``cifar-<family>-<size>-<aug>`` is the final checkpoint, ``cifar-<family>-<size>-<aug>@e<K>``
the one after epoch ``K`` (``K`` in the setting's ``checkpoints``).  Files under :func:`zoo_root` (default
``<repo>/data/cifar-zoo``, ``$LIEQ_ZOO`` overrides), per setting::

    <setting>/final/<name>.safetensors        final weights (fp16 storage; committed)
    <setting>/checkpoints/<name>@e<K>.safetensors   intermediate checkpoints (fp16; not committed)
    <setting>/state/<name>.pt                 resume state after the last finished epoch (fp32; not committed)
    <setting>/meta/<name>.json                config, parameters, per-epoch loss / seconds / test accuracy
    <setting>/zoo.csv                         one row per (model, checkpoint), rebuilt after every model

The recorded test accuracy is that of the *stored* (fp16-rounded) weights evaluated in fp32, so that loading a
checkpoint reproduces it exactly.  Training is resumable per epoch (model, optimiser, scheduler and RNG states;
the data order is a function of the seed and the epoch), skips finished models and is deterministic given the seed
(``torch.use_deterministic_algorithms`` inside :func:`train_model` only, restored afterwards).

Command line: ``python -m lieq.cifar_zoo train [--only NAME,...] [--setting cpu|gpu] [--device cuda]`` (``make
zoo``); ``python -m lieq.cifar_zoo list``.  Weights: ``--weights zoo`` (default setting ``cpu``), ``zoo:SETTING``,
``zoo:DIR`` (a zoo root) or ``file:PATH`` (a ``.safetensors`` file) for these names (:func:`load_model`, used by
:func:`lieq.weights.create_model`).
"""

from __future__ import annotations

import argparse
import copy
import functools
import hashlib
import json
import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .cifar import CIFAR10_CLASSES, MEAN, STD
from .paths import cache_root, local_data, zoo_root

__all__ = [
    "ARCHS",
    "AUGMENTATIONS",
    "SETTINGS",
    "ZOO",
    "Setting",
    "ZooModel",
    "augment_batch",
    "build_model",
    "checkpoint_path",
    "evaluate",
    "load_cifar10",
    "load_model",
    "parse_name",
    "train_model",
    "train_zoo",
    "zoo_root",
]


# ----------------------------------------------------------------------------------------------- the config table


@dataclass(frozen=True)
class Setting:
    """The training recipe shared by every model of the zoo (one per compute budget).

    Per model: ``epochs`` passes over ``n_train`` training images (``None``: all 50k) in batches of ``batch_size``;
    AdamW (``lr``, ``betas``, ``weight_decay`` on weight matrices and kernels only); the learning rate rises
    linearly over ``warmup_epochs`` and then follows a cosine to 0, updated every step; checkpoints after the epochs
    in ``checkpoints`` (the last is ``epochs``); test accuracy on ``n_test`` test images (``None``: all 10k).
    ``seed`` initialises the model and the data order; ``subset_seed`` draws the training subset.
    """

    name: str
    n_train: int | None
    epochs: int
    checkpoints: tuple[int, ...]
    batch_size: int = 128
    optimizer: str = "adamw"
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.05
    warmup_epochs: int = 1
    schedule: str = "warmup-cosine"
    seed: int = 0
    subset_seed: int = 0
    n_test: int | None = None

    def __post_init__(self) -> None:
        if (
            not self.checkpoints
            or self.checkpoints[-1] != self.epochs
            or list(self.checkpoints) != sorted(set(self.checkpoints))
        ):
            raise ValueError(f"setting {self.name!r}: checkpoints must increase and end at epochs={self.epochs}")


#: Compute budgets, chosen by name.  ``cpu``: the whole zoo in about 2-3 h on 2 CPU cores (20k images x 10 epochs
#: per model); ``gpu``: all 50k images x 64 epochs.
SETTINGS: dict[str, Setting] = {
    "cpu": Setting("cpu", n_train=20_000, epochs=10, checkpoints=(1, 2, 4, 8, 10)),
    "gpu": Setting("gpu", n_train=None, epochs=64, checkpoints=(1, 2, 4, 8, 16, 32, 64), warmup_epochs=5),
}

#: (family, size) -> constructor arguments of the timm class (see :func:`build_model`).  Parameters: resnet-s 0.31 M,
#: resnet-m 0.69 M, vit-s 0.46 M, vit-m 0.81 M, mixer-s 0.33 M, mixer-m 0.57 M, convnext-s 0.52 M, convnext-m 1.04 M.
#: The medium ViT and Mixer are widened (96 -> 128), not deepened: on one CPU thread a ViT step costs 3-6x a ConvNeXt
#: step of the same size, and width 128 x depth 6 would have put the zoo far over its 3-hour CPU budget.
ARCHS: dict[tuple[str, str], dict[str, Any]] = {
    ("resnet", "s"): {"layers": (1, 1, 1, 1), "channels": (16, 32, 64, 128)},
    ("resnet", "m"): {"layers": (1, 1, 1, 1), "channels": (24, 48, 96, 192)},
    ("vit", "s"): {"patch_size": 4, "embed_dim": 96, "depth": 4, "num_heads": 3},
    ("vit", "m"): {"patch_size": 4, "embed_dim": 128, "depth": 4, "num_heads": 4},
    ("mixer", "s"): {"patch_size": 4, "embed_dim": 96, "num_blocks": 4},
    ("mixer", "m"): {"patch_size": 4, "embed_dim": 128, "num_blocks": 4},
    ("convnext", "s"): {"patch_size": 2, "depths": (1, 1, 1, 1), "dims": (24, 48, 96, 192)},
    ("convnext", "m"): {"patch_size": 2, "depths": (1, 1, 2, 1), "dims": (32, 64, 128, 256)},
}
FAMILIES: tuple[str, ...] = ("resnet", "vit", "mixer", "convnext")
#: Augmentation regimes: name -> description.
AUGMENTATIONS: dict[str, str] = {
    "noaug": "none",
    "aug": "translations: random crop of the 4 px zero-padded image (shift -4..4 px per axis) + horizontal flip",
}
NUM_CLASSES = 10
IMAGE_SIZE = 32
PAD = 4


@dataclass(frozen=True)
class ZooModel:
    """One member of the zoo: its catalogue name, family, size and augmentation (architecture: :data:`ARCHS`)."""

    name: str
    family: str
    size: str
    augment: str
    arch: Mapping[str, Any] = field(compare=False, hash=False)

    @property
    def description(self) -> str:
        args = ", ".join(f"{k}={v}" for k, v in self.arch.items())
        return f"{self.family}-{self.size} ({args}), augmentation {self.augment}"


#: Every member of the zoo, by catalogue name: 4 families x 2 sizes x 2 augmentations.
ZOO: dict[str, ZooModel] = {
    f"cifar-{fam}-{size}-{aug}": ZooModel(f"cifar-{fam}-{size}-{aug}", fam, size, aug, ARCHS[(fam, size)])
    for fam in FAMILIES
    for size in ("s", "m")
    for aug in AUGMENTATIONS
}


# ------------------------------------------------------------------------------------------------------ models


def parse_name(tag: str) -> tuple[ZooModel, int | None]:
    """``cifar-vit-s-aug`` -> (the zoo entry, ``None`` = final); ``cifar-vit-s-aug@e4`` -> (entry, 4)."""
    match = re.fullmatch(r"(cifar-[a-z]+-[a-z]+-[a-z]+)(?:@e(\d+))?", tag)
    if not match or match.group(1) not in ZOO:
        raise ValueError(f"unknown zoo model {tag!r} (known: {', '.join(ZOO)}; a checkpoint is NAME@e<epoch>)")
    return ZOO[match.group(1)], None if match.group(2) is None else int(match.group(2))


def build_model(entry: ZooModel | str) -> nn.Module:
    """The (randomly initialised, by the current torch RNG) timm network of a zoo entry, in train mode."""
    if isinstance(entry, str):
        entry = parse_name(entry)[0]
    a = dict(entry.arch)
    if entry.family == "resnet":
        from timm.models.resnet import BasicBlock, ResNet

        # 'deep' stem with stem_width = c/2 makes timm size the stem output (bn1, layer1 input) c; its three-conv
        # stride-2 stem and the max pool are then replaced by the CIFAR stem, one 3x3 stride-1 convolution.
        c = a["channels"][0]
        model = ResNet(
            BasicBlock, a["layers"], num_classes=NUM_CLASSES, channels=a["channels"], stem_type="deep",
            stem_width=c // 2,
        )  # fmt: skip
        model.conv1 = nn.Conv2d(3, c, 3, 1, 1, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
        model.maxpool = nn.Identity()
    elif entry.family == "vit":
        from timm.models.vision_transformer import VisionTransformer

        model = VisionTransformer(img_size=IMAGE_SIZE, num_classes=NUM_CLASSES, **a)
    elif entry.family == "mixer":
        from timm.models.mlp_mixer import MlpMixer

        model = MlpMixer(num_classes=NUM_CLASSES, img_size=IMAGE_SIZE, **a)
    elif entry.family == "convnext":
        from timm.models.convnext import ConvNeXt

        model = ConvNeXt(num_classes=NUM_CLASSES, **a)
    else:  # pragma: no cover - guarded by the table
        raise ValueError(f"unknown family {entry.family!r}")
    # What timm's preprocessing helpers (and lieq's runner) read: 32x32 inputs, ImageNet mean/std, no resize.
    model.pretrained_cfg = {
        "input_size": (3, IMAGE_SIZE, IMAGE_SIZE),
        "mean": MEAN,
        "std": STD,
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "num_classes": NUM_CLASSES,
    }
    return model


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# -------------------------------------------------------------------------------------------------------- files


def _setting(setting: str | Setting) -> Setting:
    if isinstance(setting, Setting):
        return setting
    if setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r} (known: {', '.join(SETTINGS)})")
    return SETTINGS[setting]


def _file(base: Path, name: str, epoch: int, final_epoch: int) -> Path:
    if epoch == final_epoch:
        return base / "final" / f"{name}.safetensors"
    return base / "checkpoints" / f"{name}@e{epoch}.safetensors"


def checkpoint_path(tag: str, setting: str | Setting = "cpu", root: str | Path | None = None) -> Path:
    """The safetensors file of a catalogue name (``NAME`` = final, ``NAME@eK`` = after epoch ``K``) in a setting."""
    entry, epoch = parse_name(tag)
    s = _setting(setting)
    if epoch is not None and epoch not in s.checkpoints:
        raise ValueError(f"{tag}: setting {s.name!r} keeps checkpoints after epochs {list(s.checkpoints)}")
    return _file(zoo_root(root) / s.name, entry.name, s.epochs if epoch is None else epoch, s.epochs)


def _storage(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """fp16 copies of the floating-point tensors (fp32 where fp16 would overflow), others unchanged, on the CPU."""
    out = {}
    for k, v in state.items():
        v = v.detach().cpu()
        if v.is_floating_point():
            half = v.half()
            v = half if torch.isfinite(half).all() or not torch.isfinite(v).all() else v.float()
        out[k] = v.contiguous()
    return out


def _metadata(path: Path) -> dict[str, str]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return dict(f.metadata() or {})


def _load_weights(model: nn.Module, path: Path) -> dict[str, str]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise FileNotFoundError(f"zoo checkpoint not found: {path} (train it: python -m lieq.cifar_zoo train)")
    state = load_file(str(path))
    target = model.state_dict()
    model.load_state_dict({k: v.to(target[k].dtype) if k in target else v for k, v in state.items()}, strict=True)
    return _metadata(path)


def load_model(tag: str, weights: str = "zoo", seed: int = 0) -> tuple[nn.Module, str]:
    """A zoo model in eval mode and its weights-source string (what :func:`lieq.weights.create_model` returns).

    ``weights``: ``zoo`` (setting ``cpu`` under :func:`zoo_root`), ``zoo:SETTING``, ``zoo:DIR`` (a zoo root;
    setting ``cpu``), ``zoo:DIR:SETTING``, ``file:PATH`` (a safetensors file) or ``random`` (initialisation after
    ``torch.manual_seed(seed)``).  Weights are stored in fp16 and loaded into the fp32 model.
    """
    entry, epoch = parse_name(tag)
    if weights == "random":
        torch.manual_seed(seed)
        return build_model(entry).eval(), f"random:seed={seed}"
    if weights.startswith("file:"):
        path = Path(weights[5:]).expanduser()
    elif weights == "zoo" or weights.startswith("zoo:"):
        spec = weights[4:]
        if not spec or spec in SETTINGS:
            path = checkpoint_path(tag, spec or "cpu")
        else:  # a zoo root (setting cpu) or one setting's folder
            folder = Path(spec).expanduser().absolute()
            base = folder if (folder / "final").is_dir() else folder / "cpu"
            path = base / "final" / f"{entry.name}.safetensors"
            if epoch is not None and (base / "checkpoints" / f"{entry.name}@e{epoch}.safetensors").is_file():
                path = base / "checkpoints" / f"{entry.name}@e{epoch}.safetensors"
            elif epoch is not None and (not path.is_file() or _metadata(path).get("epoch") != str(epoch)):
                raise FileNotFoundError(f"no checkpoint {tag} in {base}")
    else:
        raise ValueError(f"unknown weights {weights!r} for zoo model {tag!r}: use zoo, zoo:SETTING, file:PATH, random")
    model = build_model(entry)
    _load_weights(model, path)
    return model.eval(), f"file:{path}"


# --------------------------------------------------------------------------------------------------------- data


def _decode_folder(root: Path) -> tuple[Tensor, Tensor]:
    from PIL import Image

    missing = [c for c in CIFAR10_CLASSES if not (root / c).is_dir()]
    if missing:
        raise FileNotFoundError(f"{root} is not a CIFAR-10 image folder: missing class folder(s) {', '.join(missing)}")
    arrays, labels = [], []
    for i, c in enumerate(CIFAR10_CLASSES):
        for f in sorted((root / c).iterdir()):
            with Image.open(f) as im:
                a = np.asarray(im.convert("RGB"))
            if a.shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
                raise ValueError(f"{f} is {a.shape[1]}x{a.shape[0]}, expected 32x32")
            arrays.append(a)
            labels.append(i)
    return torch.from_numpy(np.stack(arrays)), torch.tensor(labels)


def load_cifar10(split: str = "train", source: str | None = None) -> tuple[Tensor, Tensor, str]:
    """CIFAR-10 ``split`` (``train`` / ``test``) as uint8 images ``(N, 32, 32, 3)``, int64 labels and a source string.

    ``source``: a class-folder copy (``<class>/<file>``, the CIFAR-10 class order :data:`lieq.cifar.CIFAR10_CLASSES`),
    ``torchvision`` (downloaded into ``<cache>/cifar10`` when online), or ``None``: the shared folder
    ``cifar10-<split>`` when present (:func:`lieq.paths.local_data`), else torchvision.  Decoded once per process.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if source is None:
        found = local_data(f"cifar10-{split}")
        source = str(found) if found is not None else "torchvision"
    return _load_cifar10(split, source if source == "torchvision" else str(Path(source).expanduser().resolve()))


@functools.lru_cache(maxsize=4)
def _load_cifar10(split: str, source: str) -> tuple[Tensor, Tensor, str]:
    if source == "torchvision":
        try:
            from torchvision import datasets

            ds = datasets.CIFAR10(str(cache_root() / "cifar10"), train=split == "train", download=True)
        except Exception as exc:
            raise RuntimeError(f"CIFAR-10 could not be downloaded ({exc}); give a folder".splitlines()[0]) from exc
        return torch.from_numpy(np.asarray(ds.data)), torch.tensor(ds.targets), f"torchvision:cifar10-{split}"
    x, y = _decode_folder(Path(source))
    return x, y, f"folder:{source}"


def normalise(x: Tensor) -> Tensor:
    """uint8 images ``(N, 32, 32, 3)`` -> float ``(N, 3, 32, 32)`` in [0, 1], normalised with MEAN / STD."""
    x = x.permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(MEAN, device=x.device)[:, None, None]
    std = torch.tensor(STD, device=x.device)[:, None, None]
    return (x - mean) / std


def augment_batch(x: Tensor, shifts: Tensor, flips: Tensor) -> Tensor:
    """Translations of uint8 images ``(B, H, W, C)``: crop ``H x W`` at offset ``shifts`` (``(B, 2)``, rows then
    columns, in ``0..2 PAD``) from the image zero-padded by :data:`PAD` px, then mirror the columns where ``flips``."""
    b, h, w, _ = x.shape
    padded = F.pad(x, (0, 0, PAD, PAD, PAD, PAD))
    dev = x.device
    rows = shifts[:, 0, None].to(dev) + torch.arange(h, device=dev)
    cols_fwd = torch.arange(w, device=dev)
    cols = torch.where(flips.to(dev)[:, None], cols_fwd.flip(0), cols_fwd) + shifts[:, 1, None].to(dev)
    idx = torch.arange(b, device=dev)[:, None, None]
    return padded[idx, rows[:, :, None], cols[:, None, :]]


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))


def _batches(n: int, s: Setting, epoch: int, augment: bool):
    """The batches of one epoch: (indices, shifts, flips) from the generator of (seed, epoch) only.  The shifts and
    flips are drawn whether used or not, so that both augmentation regimes see the same order."""
    gen = _epoch_generator(s.seed, epoch)
    order = torch.randperm(n, generator=gen)
    for start in range(0, n, s.batch_size):
        idx = order[start : start + s.batch_size]
        shifts = torch.randint(0, 2 * PAD + 1, (len(idx), 2), generator=gen)
        flips = torch.rand(len(idx), generator=gen) < 0.5
        yield idx, (shifts, flips) if augment else None


@torch.no_grad()
def evaluate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 500) -> tuple[float, float]:
    """(top-1 accuracy, mean cross-entropy) of ``model`` in eval mode on uint8 images ``x`` with labels ``y``."""
    was_training = model.training
    model.eval()
    dev = next(model.parameters()).device
    correct, loss = 0, 0.0
    for start in range(0, len(x), batch_size):
        logits = model(normalise(x[start : start + batch_size].to(dev)))
        yb = y[start : start + batch_size].to(dev)
        correct += int((logits.argmax(-1) == yb).sum())
        loss += float(F.cross_entropy(logits, yb, reduction="sum"))
    model.train(was_training)
    return correct / len(x), loss / len(x)


# ----------------------------------------------------------------------------------------------------- training


def _lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))


def _fingerprint(entry: ZooModel, s: Setting, data: str) -> str:
    data = data.split(":", 1)[0] + ":" + Path(data.split(":", 1)[-1]).name  # independent of where the folder lies
    blob = json.dumps({"model": asdict(entry), "setting": asdict(s), "data": data}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1, default=str) + "\n")
    tmp.replace(path)


def _save_safetensors(path: Path, state: dict[str, Tensor], metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(state, str(tmp), metadata=metadata)
    tmp.replace(path)


def _split_data(split: str, data: str | tuple[Tensor, Tensor] | None, s: Setting) -> tuple[Tensor, Tensor, str]:
    """Images, labels and their source for one CIFAR-10 ``split`` (``"train"`` or ``"test"``): ``data`` as given
    (a tuple of image and label tensors) or loaded by :func:`load_cifar10`; the training split cut to a random
    subset of ``s.n_train`` images (seed ``s.subset_seed``, in the data's order), the test split to its first
    ``s.n_test``."""
    x, y, src = (*data, "tensors") if isinstance(data, tuple) else load_cifar10(split, data)
    n = s.n_train if split == "train" else s.n_test
    if n is None:
        return x, y, src
    if split != "train":
        return x[:n], y[:n], src
    if n > len(x):
        raise ValueError(f"setting {s.name!r} needs {n} training images, the data have {len(x)}")
    if n < len(x):
        keep = torch.from_numpy(np.sort(np.random.default_rng(s.subset_seed).permutation(len(x))[:n]))
        x, y = x[keep], y[keep]
    return x, y, src


def train_model(
    name: str,
    setting: str | Setting = "cpu",
    root: str | Path | None = None,
    train_data: str | tuple[Tensor, Tensor] | None = None,
    test_data: str | tuple[Tensor, Tensor] | None = None,
    device: str = "cpu",
    stop_after: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train one zoo model under ``setting`` (resuming from its last finished epoch) and return its metadata.

    ``train_data`` / ``test_data``: sources of :func:`load_cifar10` or ``(uint8 images, labels)`` tensors.
    ``stop_after``: stop after that epoch (a simulated kill; the resume state is kept).  A finished model (its
    metadata says ``done`` for the same configuration) is returned without training.  Deterministic given the
    setting's seed: ``torch.use_deterministic_algorithms(True, warn_only=True)`` and a forked torch RNG inside this
    call only; both are restored on return.
    """
    entry, _ = parse_name(name)
    s = _setting(setting)
    base = zoo_root(root) / s.name
    x_tr, y_tr, tr_src = _split_data("train", train_data, s)
    x_te, y_te, te_src = _split_data("test", test_data, s)
    fp = _fingerprint(entry, s, tr_src)
    meta_path = base / "meta" / f"{entry.name}.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("done") and meta.get("fingerprint") == fp:
            return meta
    dev = torch.device(device)
    prev_det, prev_warn = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else [], device_type=dev.type):
            return _train(entry, s, base, fp, (x_tr, y_tr, tr_src), (x_te, y_te, te_src), dev, stop_after, progress)
    finally:
        torch.use_deterministic_algorithms(prev_det, warn_only=prev_warn)


def _train(entry, s, base, fp, train, test, dev, stop_after, progress) -> dict[str, Any]:
    from timm.optim import param_groups_weight_decay

    x_tr, y_tr, tr_src = train
    x_te, y_te, te_src = test
    torch.manual_seed(s.seed)
    model = build_model(entry).to(dev)
    optimizer = torch.optim.AdamW(
        param_groups_weight_decay(model, s.weight_decay), lr=s.lr, betas=s.betas, weight_decay=s.weight_decay
    )
    steps = math.ceil(len(x_tr) / s.batch_size)
    warmup, total = s.warmup_epochs * steps, s.epochs * steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(_lr_factor, warmup=warmup, total=total))
    meta_path, state_path = base / "meta" / f"{entry.name}.json", base / "state" / f"{entry.name}.pt"
    history: list[dict[str, Any]] = []
    start = 0
    if state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        if state["fingerprint"] != fp:
            raise RuntimeError(f"{state_path} is from another configuration: delete it or use another --root")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        history, start = state["history"], state["epoch"]
    x_dev, y_dev = x_tr.to(dev), y_tr.to(dev)
    meta = {
        "name": entry.name,
        "family": entry.family,
        "size": entry.size,
        "augment": entry.augment,
        "arch": dict(entry.arch),
        "params": n_params(model),
        "setting": asdict(s),
        "n_train": len(x_tr),
        "n_test": len(x_te),
        "train_data": tr_src,
        "test_data": te_src,
        "device": str(dev),
        "torch": torch.__version__,
        "fingerprint": fp,
        "history": history,
        "done": False,
    }
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start * steps, desc=entry.name, unit="step", dynamic_ncols=True, leave=False)
    augment = entry.augment == "aug"
    for epoch in range(start + 1, s.epochs + 1):
        model.train()
        t0 = time.perf_counter()
        loss_sum, correct = 0.0, 0
        for idx, aug in _batches(len(x_tr), s, epoch, augment):
            idx = idx.to(dev)
            xb = x_dev[idx]
            if aug is not None:
                xb = augment_batch(xb, *aug)
            logits = model(normalise(xb))
            loss = F.cross_entropy(logits, y_dev[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(-1) == y_dev[idx]).sum())
            if bar is not None:
                bar.update(1)
                bar.set_postfix(epoch=epoch, loss=f"{float(loss):.3f}", refresh=False)
        row: dict[str, Any] = {
            "epoch": epoch,
            "train_loss": loss_sum / len(x_tr),
            "train_acc": correct / len(x_tr),
            "lr_end": scheduler.get_last_lr()[0],
            "seconds": round(time.perf_counter() - t0, 2),
        }
        if epoch in s.checkpoints:
            stored = _storage(model.state_dict())
            evaluator = copy.deepcopy(model)
            evaluator.load_state_dict({k: v.to(dev) for k, v in stored.items()})
            t1 = time.perf_counter()
            acc, test_loss = evaluate(evaluator, x_te, y_te)
            row.update(test_acc=acc, test_loss=test_loss, eval_seconds=round(time.perf_counter() - t1, 2))
            del evaluator
            tag = entry.name if epoch == s.epochs else f"{entry.name}@e{epoch}"
            path = _file(base, entry.name, epoch, s.epochs)
            row["checkpoint"] = str(path.relative_to(base))
            md = {"name": tag, "epoch": str(epoch), "test_acc": repr(acc), "fingerprint": fp, "setting": s.name}
            _save_safetensors(path, stored, md)
        history.append(row)
        state = {
            "fingerprint": fp,
            "epoch": epoch,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": torch.get_rng_state(),
            "history": history,
        }
        state_path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, state_path.with_name(f".{state_path.name}.tmp"))
        state_path.with_name(f".{state_path.name}.tmp").replace(state_path)
        meta["history"] = history
        meta["done"] = epoch == s.epochs
        _write_json(meta_path, meta)
        if stop_after is not None and epoch >= stop_after and epoch < s.epochs:
            break
    if bar is not None:
        bar.close()
    if meta["done"]:
        write_summary(base)
    return meta


def write_summary(base: Path) -> Path | None:
    """Rebuild ``<base>/zoo.csv`` (one row per model and checkpoint) from the metadata files of finished epochs."""
    import pandas as pd

    rows = []
    for f in sorted((base / "meta").glob("*.json")):
        meta = json.loads(f.read_text())
        for h in meta["history"]:
            if "test_acc" in h:
                tag = meta["name"] if h["epoch"] == meta["setting"]["epochs"] else f"{meta['name']}@e{h['epoch']}"
                rows.append({
                    "tag": tag, "model": meta["name"], "family": meta["family"], "size": meta["size"],
                    "augment": meta["augment"], "params": meta["params"], "epoch": h["epoch"],
                    "n_train": meta["n_train"], "n_test": meta["n_test"], "train_loss": round(h["train_loss"], 5),
                    "train_acc": round(h["train_acc"], 5), "test_acc": h["test_acc"],
                    "s_per_epoch": round(float(np.mean([r["seconds"] for r in meta["history"]])), 1),
                    "device": meta["device"], "done": meta["done"],
                })  # fmt: skip
    if not rows:
        return None
    path = base / "zoo.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def train_zoo(
    names: Sequence[str] | None = None,
    setting: str = "cpu",
    root: str | Path | None = None,
    train_data: str | None = None,
    test_data: str | None = None,
    device: str = "cpu",
    shard: tuple[int, int] | None = None,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Train every zoo model of ``names`` (all when ``None``; ``shard=(i, n)`` takes positions ``i, i+n, ...``) in
    turn, resuming unfinished ones and skipping finished ones; returns their metadata."""
    todo = list(ZOO) if not names else [parse_name(n)[0].name for n in names]
    if shard is not None:
        i, n = shard
        todo = todo[i::n]
    out = []
    outer = todo
    if progress:
        from tqdm.auto import tqdm

        outer = tqdm(todo, desc=f"zoo ({setting})", unit="model", dynamic_ncols=True)
    for name in outer:
        out.append(train_model(name, setting, root, train_data, test_data, device, progress=progress))
    return out


def _table() -> str:
    lines = [f"{'name':26s} {'family':9s} {'size':4s} {'augment':7s} {'params':>9s}  architecture"]
    cache: dict[tuple[str, str], int] = {}
    for e in ZOO.values():
        key = (e.family, e.size)
        if key not in cache:
            torch.manual_seed(0)
            cache[key] = n_params(build_model(e))
        args = ", ".join(f"{k}={v}" for k, v in e.arch.items())
        lines.append(f"{e.name:26s} {e.family:9s} {e.size:4s} {e.augment:7s} {cache[key]:9,d}  {args}")
    for s in SETTINGS.values():
        lines.append(f"setting {s.name}: {asdict(s)}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lieq.cifar_zoo", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="print the zoo table and the settings")
    t = sub.add_parser("train", help="train the zoo (resumable; finished models are skipped)")
    t.add_argument("--only", default=None, help="comma-separated zoo names (default: all)")
    t.add_argument("--setting", default="cpu", choices=list(SETTINGS))
    t.add_argument("--device", default="cpu")
    t.add_argument("--root", default=None, help="zoo folder (default: $LIEQ_ZOO or <repo>/data/cifar-zoo)")
    t.add_argument("--train-data", default=None, help="CIFAR-10 training folder or 'torchvision'")
    t.add_argument("--test-data", default=None, help="CIFAR-10 test folder or 'torchvision'")
    t.add_argument("--shard", default=None, help="i/n: train the models at positions i, i+n, ...")
    t.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.command == "list":
        print(_table())
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    shard = None
    if args.shard:
        i, _, n = args.shard.partition("/")
        shard = (int(i), int(n))
        if not 0 <= shard[0] < shard[1]:
            parser.error(f"--shard must be i/n with 0 <= i < n, got {args.shard}")
    names = [n.strip() for n in args.only.split(",") if n.strip()] if args.only else None
    metas = train_zoo(names, args.setting, args.root, args.train_data, args.test_data, args.device, shard)
    for m in metas:
        last = [h for h in m["history"] if "test_acc" in h]
        acc = f"{last[-1]['test_acc']:.4f}" if last else "-"
        secs = sum(h["seconds"] for h in m["history"])
        print(f"{m['name']:26s} params {m['params']:9,d}  epochs {len(m['history'])}  test_acc {acc}  {secs:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
