"""The classic CIFAR-10 ResNets of He et al. (2016), their weights, the CIFAR-10 test images and their LEE.

Architecture (He et al. 2016, section 4.2): a 3x3 convolution to 16 channels, then three stages of ``n`` basic
blocks with 16, 32 and 64 channels (the first block of stages 2 and 3 has stride 2), global average pooling and a
linear layer 64 -> 10; depth ``6 n + 2`` (ResNet-20/32/44/56 for n = 3/5/7/9).  Shortcuts are "option A": free of
parameters, they subsample the input by taking every second pixel (``x[:, :, ::2, ::2]``) and append zero
channels.  Module names follow the widely used public checkpoints (``conv1``, ``bn1``, ``layer{1,2,3}.{i}.conv1``,
..., ``linear``) so that their ``state_dict`` (keys prefixed ``module.`` by ``DataParallel``) loads strictly.

Weights come from a path the user gives (a file, or a directory holding ``resnet20-*.th`` etc.), or, when online,
from the release files of the public repository akamaster/pytorch_resnet_cifar10 (:data:`CHECKPOINT_URLS`),
downloaded once into torch's hub cache.  Inputs are 32x32 RGB in [0, 1] normalised with the ImageNet mean and std
(:data:`MEAN`, :data:`STD`), as those checkpoints were trained.

Random initialisation and BatchNorm.  A freshly initialised network in eval mode normalises with the default
running statistics (mean 0, variance 1), which are not the statistics of its activations: with He initialisation
the residual stream grows with every block, and at depth >= 32 the logits are so large that the softmax saturates
and its Lie derivative is almost zero (or overflows).  ``weights="random+bnrecal"`` therefore re-estimates the
running statistics of the random network (:func:`recalibrate_batchnorm`: train-mode forward passes without
gradients over a few batches of CIFAR images, cumulative average, then eval mode) -- the network a training run
would start from, only with consistent normalisation.  The runner experiment ``cifar-lee`` draws these calibration
images from the CIFAR-10 test folder, disjoint from the images whose LEE is measured (:func:`recalibration_split`).

Runner experiments (``lieq sweep cifar-lee --weights file:DIR --data DIR`` / :func:`lieq.runner.run_sweep`; the
models are :data:`CIFAR_MODELS`, built here rather than by timm): ``cifar-lee`` (the LEE of one network per weights
variant and seed) and ``cifar-accuracy`` (top-1 of the trained checkpoints on the whole test folder).

The LEE of these classifiers is :func:`lieq.metrics.e2e_lee` (softmax output, mean |L p| over the 10 classes per
image and generator; units per half image width for translations, per radian for rotations).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .experiments import register

__all__ = [
    "CIFAR10_CLASSES",
    "CHECKPOINT_URLS",
    "CIFAR_MODELS",
    "DEPTHS",
    "CifarResNet",
    "accuracy",
    "cifar_resnet",
    "lee_vs_depth",
    "load_cifar_folder",
    "load_checkpoint",
    "recalibrate_batchnorm",
    "recalibration_split",
]

#: CIFAR-10 class names in the dataset's label order (also alphabetical, so class sub-folders sort into it).
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
#: Blocks per stage for each depth (depth = 6 n + 2).
DEPTHS: dict[int, int] = {20: 3, 32: 5, 44: 7, 56: 9, 110: 18}
_RELEASE = "https://github.com/akamaster/pytorch_resnet_cifar10/raw/master/pretrained_models/"
#: Public release files of the trained checkpoints (used only when no local path is given and the network is up).
CHECKPOINT_URLS: dict[int, str] = {
    20: _RELEASE + "resnet20-12fca82f.th",
    32: _RELEASE + "resnet32-d509ac18.th",
    44: _RELEASE + "resnet44-014dd654.th",
    56: _RELEASE + "resnet56-4bfd9763.th",
    110: _RELEASE + "resnet110-1d1ed7c2.th",
}


class CheckpointError(RuntimeError):
    """A CIFAR ResNet checkpoint is missing, unreadable or does not match the architecture."""


class _OptionAShortcut(nn.Module):
    """Parameter-free shortcut: subsample by ``stride`` and zero-pad ``pad`` channels on each side."""

    def __init__(self, stride: int, pad: int) -> None:
        super().__init__()
        self.stride, self.pad = stride, pad

    def forward(self, x: Tensor) -> Tensor:
        return F.pad(x[:, :, :: self.stride, :: self.stride], (0, 0, 0, 0, self.pad, self.pad))


class _BasicBlock(nn.Module):
    """``relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`` with 3x3 convolutions."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu2 = nn.ReLU()
        if stride != 1 or c_in != c_out:
            self.shortcut: nn.Module = _OptionAShortcut(stride, (c_out - c_in) // 2)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-(6n+2) for 32x32 CIFAR images (module docstring); ``n`` blocks per stage, ``num_classes`` outputs."""

    def __init__(self, n: int, num_classes: int = 10) -> None:
        super().__init__()
        self.depth = 6 * n + 2
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        stages = []
        c_in = 16
        for i, width in enumerate((16, 32, 64)):
            blocks = []
            for j in range(n):
                blocks.append(_BasicBlock(c_in, width, 2 if (i > 0 and j == 0) else 1))
                c_in = width
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(64, num_classes)
        # He et al.'s initialisation: Kaiming-normal (fan-in) weights for convolutions and the classifier.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)
        # What timm's preprocessing helpers read: 32x32 inputs, ImageNet mean/std, no resize or crop.
        self.pretrained_cfg = {
            "input_size": (3, 32, 32),
            "mean": MEAN,
            "std": STD,
            "crop_pct": 1.0,
            "interpolation": "bilinear",
            "num_classes": num_classes,
        }

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.linear(self.pool(x).flatten(1))


def _find_in_dir(directory: Path, depth: int) -> Path:
    found = sorted(p for p in directory.iterdir() if re.fullmatch(rf"resnet{depth}(-[0-9a-f]+)?\.(th|pth|pt)", p.name))
    if not found:
        raise CheckpointError(f"no resnet{depth}-*.th checkpoint in {directory}")
    return found[0]


def load_checkpoint(model: CifarResNet, source: str | Path | None = None) -> str:
    """Load trained weights into ``model`` strictly and return the source string that results record.

    ``source``: a checkpoint file, a directory holding ``resnet<depth>-<hash>.th``, or ``None`` for the public
    release file of :data:`CHECKPOINT_URLS` (downloaded into torch's hub cache; needs the network).  The checkpoint is
    a dict with ``state_dict`` (keys may carry the ``module.`` prefix of ``DataParallel``) or a bare state dict.
    """
    depth = model.depth
    if source is None:
        if depth not in CHECKPOINT_URLS:
            raise CheckpointError(f"no public checkpoint for resnet{depth}")
        url = CHECKPOINT_URLS[depth]
        try:
            state = torch.hub.load_state_dict_from_url(url, map_location="cpu", weights_only=True, progress=False)
        except Exception as exc:
            raise CheckpointError(f"could not download {url} (offline?): {exc}".splitlines()[0]) from exc
        where = url
    else:
        path = Path(source).expanduser()
        if path.is_dir():
            path = _find_in_dir(path, depth)
        if not path.is_file():
            raise CheckpointError(f"checkpoint not found: {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"cannot read {path}: {exc}".splitlines()[0]) from exc
        where = f"file:{path}"
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{where} does not fit resnet{depth}: {exc}".splitlines()[0]) from exc
    return where


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, images: Tensor, batch_size: int = 100) -> nn.Module:
    """Re-estimate every BatchNorm layer's running mean and variance on ``images``; returns ``model`` in eval mode.

    The running statistics are reset and accumulated as a cumulative (equal-weight) average over the batches of
    ``batch_size`` images (``momentum=None``), in train-mode forward passes without gradients; the affine weights
    and every other parameter are untouched.  The momentum of each layer is restored afterwards.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return model.eval()
    if len(images) < 2:
        raise ValueError("recalibration needs at least 2 images")
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    try:
        for start in range(0, len(images), batch_size):
            batch = images[start : start + batch_size]
            if len(batch) >= 2:  # train-mode BatchNorm needs more than one value per channel
                model(batch)
    finally:
        for m, mom in zip(norms, momenta):
            m.momentum = mom
        model.eval()
    return model


def recalibration_split(n_total: int, n_eval: int, n_recal: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of ``n_eval`` evaluation images and ``n_recal`` disjoint calibration images among ``n_total``.

    One seeded permutation (``numpy.random.default_rng(seed)``): its first ``n_eval`` entries are the evaluation
    images (the same images as before recalibration existed), the next ``n_recal`` the calibration images.
    """
    if n_eval + n_recal > n_total:
        raise ValueError(f"{n_eval} + {n_recal} images requested from {n_total}")
    order = np.random.default_rng(seed).permutation(n_total)
    return order[:n_eval], order[n_eval : n_eval + n_recal]


def cifar_resnet(
    depth: int,
    weights: str | Path | None = "random",
    seed: int = 0,
    recal_images: Tensor | None = None,
    recal_batch: int = 100,
) -> tuple[CifarResNet, str]:
    """ResNet-``depth`` in eval mode and its weights-source string.

    ``weights``: ``"random"`` (He initialisation after ``torch.manual_seed(seed)``; BatchNorm running statistics are
    the defaults, mean 0 and variance 1), ``"random+bnrecal"`` (the same initialisation, then
    :func:`recalibrate_batchnorm` on ``recal_images`` in batches of ``recal_batch``; source
    ``"random+bnrecal:seed=S"``), ``"url"`` (the public release file, online only), or a path to a file or directory
    (:func:`load_checkpoint`).
    """
    if depth not in DEPTHS:
        raise ValueError(f"depth must be one of {sorted(DEPTHS)}, got {depth}")
    torch.manual_seed(seed)
    model = CifarResNet(DEPTHS[depth])
    if weights == "random":
        return model.eval(), f"random:seed={seed}"
    if weights == "random+bnrecal":
        if recal_images is None:
            raise ValueError("weights='random+bnrecal' needs recal_images")
        return recalibrate_batchnorm(model, recal_images, recal_batch), f"random+bnrecal:seed={seed}"
    where = load_checkpoint(model, None if weights == "url" else weights)
    return model.eval(), where


def load_cifar_folder(path: str | Path, n_images: int | None = None, seed: int = 0) -> tuple[Tensor, Tensor, list[str]]:
    """CIFAR-10 images from ``<path>/<class>/<file>`` as normalised tensors ``(N, 3, 32, 32)``, labels and ids.

    The label is the index of the class folder in :data:`CIFAR10_CLASSES`; all ten folders must exist.  ``n_images``
    images are drawn with a seeded permutation (all if ``None``).  Pixels are scaled to [0, 1] and normalised with
    :data:`MEAN` / :data:`STD`.
    """
    from PIL import Image

    root = Path(path).expanduser()
    missing = [c for c in CIFAR10_CLASSES if not (root / c).is_dir()]
    if missing:
        raise FileNotFoundError(f"{root} is not a CIFAR-10 image folder: missing class folder(s) {', '.join(missing)}")
    files = [(f"{c}/{f.name}", i) for i, c in enumerate(CIFAR10_CLASSES) for f in sorted((root / c).iterdir())]
    if n_images is not None:
        order = np.random.default_rng(seed).permutation(len(files))[:n_images]
        files = [files[i] for i in sorted(order)]
    arrays = []
    for name, _ in files:
        with Image.open(root / name) as im:
            im = im.convert("RGB")
            if im.size != (32, 32):
                raise ValueError(f"{root / name} is {im.size[0]}x{im.size[1]}, expected 32x32")
            arrays.append(np.asarray(im))
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float().div_(255)
    x = (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]
    labels = torch.tensor([label for _, label in files])
    return x.contiguous(), labels, [name for name, _ in files]


@torch.no_grad()
def accuracy(model: nn.Module, images: Tensor, labels: Tensor, batch_size: int = 500) -> float:
    """Top-1 accuracy (fraction) of ``model`` on preprocessed ``images``."""
    correct = 0
    for start in range(0, len(images), batch_size):
        pred = model(images[start : start + batch_size]).argmax(-1)
        correct += int((pred == labels[start : start + batch_size]).sum())
    return correct / len(images)


def lee_vs_depth(
    images: Tensor,
    labels: Tensor,
    image_ids: Sequence[str],
    depths: Sequence[int] = (20, 32, 44, 56),
    weights: str | Path = "random",
    seeds: Sequence[int] = (0,),
    generators: str | Sequence[str] = "all",
    image_model: str = "bilinear",
    batch_size: int = 50,
    progress: bool = False,
    recal_images: Tensor | None = None,
    recal_batch: int = 100,
    device: str | torch.device = "cpu",
) -> pd.DataFrame:
    """End-to-end LEE (:func:`lieq.metrics.e2e_lee`) of each depth, for trained weights or random-init seeds.

    One row per (depth, seed, image, generator) with ``mean_abs``, ``mean_sq``, ``correct`` and the weights source.
    For trained weights (a path or ``"url"``) only the first seed is used; ``weights="random+bnrecal"`` needs
    ``recal_images`` (:func:`cifar_resnet`).
    """
    from .metrics import e2e_lee

    random = str(weights).startswith("random")
    rows = []
    for depth in depths:
        for seed in seeds if random else seeds[:1]:
            model, source = cifar_resnet(depth, weights, seed, recal_images, recal_batch)
            model = model.to(device)
            table = e2e_lee(
                model,
                images,
                labels,
                generators,
                image_model,
                batch_size=batch_size,
                image_ids=list(image_ids),
                progress=progress,
            )
            rows.append(table.assign(model=f"resnet{depth}", depth=depth, seed=seed, weights=source))
    return pd.concat(rows, ignore_index=True)


#: The CIFAR-10 ResNets the runner experiments ``cifar-lee`` and ``cifar-accuracy`` build (model names).
CIFAR_MODELS: tuple[str, ...] = ("resnet20", "resnet32", "resnet44", "resnet56")


def _depth(model_name: str) -> int:
    match = re.fullmatch(r"resnet(\d+)", model_name)
    if not match or int(match.group(1)) not in DEPTHS:
        raise ValueError(f"unknown CIFAR ResNet {model_name!r} (known: {', '.join(f'resnet{d}' for d in DEPTHS)})")
    return int(match.group(1))


def _checkpoints(weights: str) -> str | Path:
    """The sweep's weights as :func:`cifar_resnet` takes them: ``file:PATH`` -> the path; others unchanged."""
    return Path(weights[len("file:") :]).expanduser() if weights.startswith("file:") else weights


@functools.lru_cache(maxsize=1)
def _test_images(folder: str) -> tuple[Tensor, Tensor, tuple[str, ...]]:
    x, y, ids = load_cifar_folder(folder)
    return x, y, tuple(ids)


@register("cifar-lee", models=CIFAR_MODELS)
def cifar_lee_experiment(
    model_name: str,
    weights: str,
    data: str,
    n_images: int | None,
    seed: int,
    device: str = "cpu",
    *,
    generators: str = "all",
    image_model: str = "bilinear",
    batch_size: int = 50,
    recal_images: int = 500,
    recal_batch: int = 100,
    split_seed: int = 0,
    progress: bool = False,
) -> tuple[pd.DataFrame, dict[str, str]]:
    """End-to-end LEE of one CIFAR-10 ResNet (:func:`lee_vs_depth`) on ``n_images`` CIFAR-10 test images.

    ``data``: a CIFAR-10 image folder (:func:`load_cifar_folder`); ``weights``: ``file:PATH`` (a checkpoint file or
    directory), ``url``, ``random`` or ``random+bnrecal`` (seeded by the sweep's ``seed``; BatchNorm statistics
    re-estimated on ``recal_images`` test images in batches of ``recal_batch``).  One seeded permutation
    (``split_seed``, :func:`recalibration_split`) gives the evaluated images and, disjoint from them, the calibration
    images, so that every weights variant and seed is measured on the same images.
    """
    x, y, ids = _test_images(str(Path(data).expanduser().resolve()))
    n_eval = len(x) if n_images is None else int(n_images)
    order, recal = recalibration_split(len(x), n_eval, recal_images if weights == "random+bnrecal" else 0, split_seed)
    recal_x = x[recal] if weights == "random+bnrecal" else None
    table = lee_vs_depth(
        x[order].to(device),
        y[order].to(device),
        [ids[i] for i in order],
        [_depth(model_name)],
        _checkpoints(weights),
        [seed],
        generators,
        image_model,
        batch_size,
        progress,
        recal_x,
        recal_batch,
        device,
    )
    return table.drop(columns=["weights", "model", "seed"]), {"weights": str(table["weights"].iloc[0])}


@register("cifar-accuracy", models=CIFAR_MODELS)
def cifar_accuracy_experiment(
    model_name: str, weights: str, data: str, device: str = "cpu", *, batch_size: int = 500
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Top-1 accuracy of one trained CIFAR-10 ResNet on every image of the CIFAR-10 test folder ``data``."""
    if weights.startswith("random"):
        raise ValueError("cifar-accuracy measures trained checkpoints: give weights file:PATH or url")
    x, y, _ = _test_images(str(Path(data).expanduser().resolve()))
    depth = _depth(model_name)
    model, source = cifar_resnet(depth, _checkpoints(weights))
    acc = accuracy(model.to(device), x.to(device), y.to(device), batch_size)
    return pd.DataFrame([{"image": "all", "depth": depth, "accuracy": acc, "n": len(x)}]), {"weights": source}
