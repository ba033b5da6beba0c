"""Image sources: folders and named sources, decoded once per run and preprocessed per model with timm.

A folder is either

* flat, with a ``labels.csv`` that has at least the columns ``file`` and ``class_index`` (extra columns such as
  ``wnid`` and ``name`` are kept), or
* class sub-folders (the ILSVRC2012 layout): the label of ``<dir>/<class>/<file>`` is the index of ``<class>``
  among the sorted sub-folder names (the standard ImageNet-1k index when the sub-folders are the 1000 wnids).

``N`` images are drawn with a seeded shuffle (``numpy.random.default_rng(seed).permutation``) of the sorted list.

Named sources (:func:`load_source`, the ``--data`` of ``lieq sweep``):

* ``imagenet-sample``: the public 1000-image, one-image-per-class ImageNet sample (GitHub repository
  EliSchwartz/imagenet-sample-images).  Taken from ``$LIEQ_IMAGENET_SAMPLE`` or the cache
  ``~/.cache/lieq/imagenet-sample`` (``$LIEQ_CACHE``), downloaded there when online; a ``labels.csv`` with the
  standard ImageNet-1k index (position of the wnid among the 1000 sorted wnids) is written next to the images.
* ``embedded``: the colour photographs bundled inside scikit-image's wheel (astronaut, cat, coffee, rocket,
  motorcycle, Hubble deep field, retina, immunohistochemistry): 8 images that need no network.  They have no
  ImageNet labels (accuracy is undefined) and are far too few for statistics: a smoke test, not a measurement.
* ``cifar10`` / ``cifar100``: the test sets, downloaded with torchvision into the cache when online, or
  ``cifar10:PATH`` / ``cifar100:PATH`` for a class-folder copy (a folder whose name starts with ``cifar`` is
  recognised too).  These out-of-distribution images are *upsampled* to each model's input size (resize of the
  whole 32x32 image with the model's interpolation, no crop), and their labels are not ImageNet classes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import torch

__all__ = ["DataError", "ImageSet", "SOURCES", "load_image_folder", "load_source", "preprocess"]

#: Named image sources of :func:`load_source`.
SOURCES = ("imagenet-sample", "embedded", "cifar10", "cifar100")
IMAGENET_SAMPLE_URL = "https://github.com/EliSchwartz/imagenet-sample-images/archive/refs/heads/master.zip"
#: Colour photographs shipped in scikit-image's wheel (file names inside ``skimage/data``).
EMBEDDED_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "ihc.png",
)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".ppm", ".tif", ".tiff"}


class DataError(ValueError):
    """Missing, empty or malformed image data."""


@dataclass
class ImageSet:
    """Decoded RGB images (PIL) with ids, integer labels and the description of where they came from."""

    ids: list[str]
    labels: list[int]
    images: list = field(repr=False)
    source: str
    #: ``imagenet`` when labels are ImageNet-1k indices; otherwise the labels' own space (``cifar10``, ``none``).
    label_space: str = "imagenet"
    #: Low-resolution images to be resized whole to the model's input size (no crop), e.g. CIFAR.
    upsample: bool = False

    def __len__(self) -> int:
        return len(self.ids)


def _list_folder(root: Path) -> pd.DataFrame:
    labels_csv = root / "labels.csv"
    if labels_csv.is_file():
        try:
            table = pd.read_csv(labels_csv)
        except Exception as exc:
            raise DataError(f"cannot read {labels_csv}: {exc}".splitlines()[0]) from exc
        missing = {"file", "class_index"} - set(table.columns)
        if missing:
            raise DataError(f"{labels_csv} lacks column(s) {', '.join(sorted(missing))}")
        index = pd.to_numeric(table["class_index"], errors="coerce")
        bad = table.index[index.isna() | (index < 0) | (index != index.round())]
        if len(bad):
            raise DataError(f"{labels_csv}: bad class_index in {len(bad)} row(s), first at line {bad[0] + 2}")
        table = table.assign(class_index=index.astype(int), file=table["file"].astype(str))
        exists = table["file"].map(lambda f: (root / f).is_file())
        if not exists.all():
            first = table.file[~exists].iloc[0]
            raise DataError(f"{labels_csv}: {int((~exists).sum())} listed file(s) missing, e.g. {first}")
        return table.sort_values("file").reset_index(drop=True)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    rows = [
        {"file": f"{c}/{f.name}", "class_index": i}
        for i, c in enumerate(classes)
        for f in sorted((root / c).iterdir())
        if f.suffix.lower() in IMAGE_SUFFIXES
    ]
    return pd.DataFrame(rows, columns=["file", "class_index"])


def load_image_folder(path: str | Path, n_images: int | None = None, seed: int = 0) -> ImageSet:
    """Draw ``n_images`` (all if ``None``) images from a folder with a seeded shuffle and decode them as RGB."""
    from PIL import Image

    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}")
    table = _list_folder(root)
    if table.empty:
        raise DataError(f"no images in {root} (expected labels.csv or class sub-folders with image files)")
    if n_images is not None:
        if n_images <= 0:
            raise DataError(f"n_images must be positive, got {n_images}")
        if n_images > len(table):
            raise DataError(f"asked for {n_images} images but {root} has only {len(table)}")
    order = np.random.default_rng(seed).permutation(len(table))[: n_images or len(table)]
    chosen = table.iloc[order]
    images = []
    for f in chosen["file"]:
        with Image.open(root / f) as im:
            images.append(im.convert("RGB"))
    return ImageSet(
        ids=list(chosen["file"]), labels=[int(c) for c in chosen["class_index"]], images=images, source=str(root)
    )


def preprocess(images: Sequence, model, upsample: bool = False, input_size: int | None = None) -> torch.Tensor:
    """Apply ``model``'s own timm eval preprocessing (input size, crop, interpolation, mean/std): ``(N, C, H, W)``.

    ``upsample=True`` (low-resolution out-of-distribution images): resize the whole image to the input size with
    the model's interpolation, without the centre crop, then normalise with the model's mean/std.
    ``input_size`` overrides the model's (square) input size, e.g. for quick tests of size-agnostic models.
    """
    import timm.data
    import torch

    args = {"input_size": (3, int(input_size), int(input_size))} if input_size else {}
    config = timm.data.resolve_data_config(args, model=model)
    if upsample:
        from timm.data.transforms import str_to_interp_mode
        from torchvision import transforms

        tf = transforms.Compose(
            [
                transforms.Resize(
                    tuple(config["input_size"][-2:]), interpolation=str_to_interp_mode(config["interpolation"])
                ),
                transforms.ToTensor(),
                transforms.Normalize(config["mean"], config["std"]),
            ]
        )
    else:
        tf = timm.data.create_transform(**config, is_training=False)
    return torch.stack([tf(im) for im in images])


def cache_dir() -> Path:
    """``$LIEQ_CACHE`` or ``~/.cache/lieq``."""
    return Path(os.environ.get("LIEQ_CACHE", "~/.cache/lieq")).expanduser()


def _download_imagenet_sample(dest: Path, timeout: float = 30.0) -> None:
    """Fetch the 1000-image sample (zip of the GitHub repository) into ``dest`` and write its ``labels.csv``."""
    import io
    import urllib.request
    import zipfile

    try:
        with urllib.request.urlopen(IMAGENET_SAMPLE_URL, timeout=timeout) as resp:
            payload = resp.read()
    except OSError as exc:
        raise DataError(
            f"imagenet-sample is not cached at {dest} and could not be downloaded ({exc}); "
            "pass --data PATH to a copy or set LIEQ_IMAGENET_SAMPLE"
        ) from exc
    tmp = dest.with_name(dest.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    rows = []
    with zipfile.ZipFile(io.BytesIO(payload)) as archive:
        for info in archive.infolist():
            name = Path(info.filename).name
            if not name.lower().endswith((".jpeg", ".jpg")) or not name.startswith("n"):
                continue
            (tmp / name).write_bytes(archive.read(info))
            wnid, _, label = Path(name).stem.partition("_")
            rows.append({"file": name, "wnid": wnid, "name": label.replace("_", " ")})
    if len(rows) != 1000:
        raise DataError(f"imagenet-sample download has {len(rows)} images, expected 1000")
    table = pd.DataFrame(rows).sort_values("file")
    wnids = sorted(table.wnid.unique())
    table["class_index"] = table.wnid.map({w: i for i, w in enumerate(wnids)})
    table[["file", "wnid", "class_index", "name"]].to_csv(tmp / "labels.csv", index=False)
    tmp.rename(dest)


def imagenet_sample_path(download: bool = True) -> Path:
    """Folder of the imagenet-sample images: ``$LIEQ_IMAGENET_SAMPLE``, else the cache (downloaded if needed)."""
    env = os.environ.get("LIEQ_IMAGENET_SAMPLE")
    if env:
        return Path(env).expanduser()
    dest = cache_dir() / "imagenet-sample"
    if not (dest / "labels.csv").is_file():
        if not download:
            raise DataError(f"imagenet-sample not found at {dest}")
        _download_imagenet_sample(dest)
    return dest


def load_embedded(n_images: int | None = None, seed: int = 0) -> ImageSet:
    """The colour photographs bundled in scikit-image (8 images, no ImageNet labels; a smoke test only)."""
    from PIL import Image

    try:
        import skimage.data
    except ImportError as exc:
        raise DataError("the embedded photographs need scikit-image: pip install scikit-image") from exc
    root = Path(skimage.data.__file__).parent
    files = [f for f in EMBEDDED_PHOTOS if (root / f).is_file()]
    if not files:
        raise DataError(f"no bundled photographs found in {root}")
    order = _draw(len(files), n_images, seed, "embedded")
    images, ids = [], []
    for k in order:
        with Image.open(root / files[k]) as im:
            images.append(im.convert("RGB"))
        ids.append(files[k])
    return ImageSet(ids, [-1] * len(ids), images, f"embedded:scikit-image=={skimage.__version__}", "none")


def _draw(total: int, n_images: int | None, seed: int, where: str) -> np.ndarray:
    if n_images is not None:
        if n_images <= 0:
            raise DataError(f"n_images must be positive, got {n_images}")
        if n_images > total:
            raise DataError(f"asked for {n_images} images but {where} has only {total}")
    return np.random.default_rng(seed).permutation(total)[: n_images or total]


def load_cifar(name: str, path: str | Path | None = None, n_images: int | None = None, seed: int = 0) -> ImageSet:
    """CIFAR-10/100 test images (a class-folder copy at ``path``, or torchvision's download into the cache)."""
    if path is not None:
        found = load_image_folder(path, n_images, seed)
        found.label_space, found.upsample = name, True
        return found
    try:
        from torchvision import datasets
    except ImportError as exc:
        raise DataError(f"{name} needs torchvision, or give a folder: --data {name}:PATH") from exc
    cls = {"cifar10": datasets.CIFAR10, "cifar100": datasets.CIFAR100}[name]
    try:
        ds = cls(str(cache_dir() / name), train=False, download=True)
    except Exception as exc:
        raise DataError(f"{name} could not be downloaded ({exc}); give a folder: --data {name}:PATH") from exc
    order = _draw(len(ds), n_images, seed, name)
    images = [ds[int(k)][0].convert("RGB") for k in order]
    labels = [int(ds.targets[int(k)]) for k in order]
    ids = [f"{name}-test-{int(k):05d}" for k in order]
    return ImageSet(ids, labels, images, f"{name}:torchvision", name, True)


def load_source(spec: str | Path, n_images: int | None = None, seed: int = 0) -> ImageSet:
    """Decode the images of a named source (:data:`SOURCES`), ``cifar10:PATH``/``cifar100:PATH``, or a folder."""
    text = str(spec)
    kind, sep, rest = text.partition(":")
    if sep and kind in ("cifar10", "cifar100"):
        return load_cifar(kind, rest, n_images, seed)
    if text == "imagenet-sample":
        return load_image_folder(imagenet_sample_path(), n_images, seed)
    if text == "embedded":
        return load_embedded(n_images, seed)
    if text in ("cifar10", "cifar100"):
        return load_cifar(text, None, n_images, seed)
    root = Path(text).expanduser()
    low = root.name.lower()
    if low.startswith("cifar100") or low.startswith("cifar10"):
        return load_cifar("cifar100" if low.startswith("cifar100") else "cifar10", root, n_images, seed)
    if not root.exists():
        raise DataError(f"image folder not found: {root} (named sources: {', '.join(SOURCES)})")
    return load_image_folder(root, n_images, seed)
