"""Image sources: folders and named sources, decoded once per run and preprocessed per model with timm.

A folder is either

* flat, with a ``labels.csv`` that has at least the columns ``file`` and ``class_index`` (extra columns such as
  ``wnid`` and ``name`` are kept), or
* class sub-folders (the ILSVRC2012 layout): the label of ``<dir>/<class>/<file>`` is the index of ``<class>``
  among the sorted sub-folder names (the standard ImageNet-1k index when the sub-folders are the 1000 wnids).

``N`` images are drawn with a seeded shuffle (``numpy.random.default_rng(seed).permutation``) of the sorted list.
Labels of a folder are ImageNet-1k indices: a ``class_index`` outside ``0..999`` is rejected with its line number.
An image that cannot be decoded (truncated or corrupt file) is an error naming the file; with ``skip_bad=True``
(``--skip-bad-images``) it is skipped, the next image of the shuffled order takes its place, and the skipped files
are listed in :attr:`ImageSet.skipped` (recorded in every result's provenance).

Every :class:`ImageSet` has a :meth:`~ImageSet.fingerprint`: a hash of the images actually used (their ids, the
SHA-256 of each file's bytes, or of the decoded pixels where there is no file, their labels) and of how they are
preprocessed (label space, whole-image upsampling).  Sweeps key stored results by it, so a different folder of the
same name is never mistaken for a finished result.

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

import hashlib
import io
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import torch

__all__ = ["DataError", "ImageSet", "SOURCES", "check_labels", "load_image_folder", "load_source", "preprocess"]

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
#: Classes of the ImageNet-1k label space (``class_index`` of a folder's images is in ``0 .. IMAGENET_CLASSES - 1``).
IMAGENET_CLASSES = 1000


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
    #: SHA-256 (hex) of each image's file bytes (or raw pixels); empty: computed from the decoded pixels.
    digests: list[str] = field(default_factory=list, repr=False)
    #: Where each label comes from (``labels.csv line 7``, ``class folder n01440764``), for error messages.
    origins: list[str] = field(default_factory=list, repr=False)
    #: Files skipped as undecodable (``skip_bad=True``), each ``id: reason``.
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def fingerprint(self) -> str:
        """16 hex digits of SHA-256 over the ids, content digests and labels of the images (in order) and the
        preprocessing identity (label space, upsampling): equal exactly when the same images are used the same
        way."""
        digests = self.digests or [hashlib.sha256(im.tobytes()).hexdigest() for im in self.images]
        record = {
            "ids": list(self.ids),
            "sha256": list(digests),
            "labels": [int(v) for v in self.labels],
            "label_space": self.label_space,
            "upsample": bool(self.upsample),
            "decode": "PIL.convert(RGB)",
        }
        text = json.dumps(record, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def provenance(self) -> dict[str, str]:
        """Provenance columns: the fingerprint, and the skipped files when any were skipped."""
        out = {"images_fingerprint": self.fingerprint()}
        if self.skipped:
            out["images_skipped"] = "; ".join(self.skipped)
        return out


def check_labels(images: ImageSet, num_classes: int) -> None:
    """Raise :class:`DataError` (naming the label's origin, e.g. its line of labels.csv) when an ImageNet label of
    ``images`` is not one of a model's ``num_classes`` outputs."""
    if images.label_space != "imagenet" or not num_classes:
        return
    for k, label in enumerate(images.labels):
        if not 0 <= int(label) < int(num_classes):
            where = images.origins[k] if k < len(images.origins) else f"image {images.ids[k]}"
            raise DataError(
                f"{images.source}: {where}: class_index {label} is outside the model's {num_classes} classes"
            )


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
        big = table.index[index >= IMAGENET_CLASSES]
        if len(big):
            raise DataError(
                f"{labels_csv}: class_index {int(index[big[0]])} at line {big[0] + 2} is outside the "
                f"{IMAGENET_CLASSES} ImageNet classes (0..{IMAGENET_CLASSES - 1}; {len(big)} such row(s))"
            )
        table = table.assign(
            class_index=index.astype(int),
            file=table["file"].astype(str),
            origin=[f"labels.csv line {k + 2}" for k in range(len(table))],
        )
        exists = table["file"].map(lambda f: (root / f).is_file())
        if not exists.all():
            first = table.file[~exists].iloc[0]
            raise DataError(f"{labels_csv}: {int((~exists).sum())} listed file(s) missing, e.g. {first}")
        return table.sort_values("file").reset_index(drop=True)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    rows = [
        {"file": f"{c}/{f.name}", "class_index": i, "origin": f"class folder {c}"}
        for i, c in enumerate(classes)
        for f in sorted((root / c).iterdir())
        if f.suffix.lower() in IMAGE_SUFFIXES
    ]
    return pd.DataFrame(rows, columns=["file", "class_index", "origin"])


def _decode(path: Path) -> tuple[object, str]:
    """Read one image file: (RGB PIL image, SHA-256 of its bytes); raises :class:`DataError` naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        payload = path.read_bytes()
        with Image.open(io.BytesIO(payload)) as im:
            rgb = im.convert("RGB")
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise DataError(f"cannot decode image {path} ({reason})") from exc
    return rgb, hashlib.sha256(payload).hexdigest()


def load_image_folder(path: str | Path, n_images: int | None = None, seed: int = 0, skip_bad: bool = False) -> ImageSet:
    """Draw ``n_images`` (all if ``None``) images from a folder with a seeded shuffle and decode them as RGB.

    An undecodable file is a :class:`DataError` naming it; with ``skip_bad`` it is skipped (listed in
    :attr:`ImageSet.skipped`) and the next file of the shuffled order is used instead (``n_images=None``: all
    readable files).
    """
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
    want = n_images or (len(table) if not skip_bad else None)
    images, digests, rows, skipped = [], [], [], []
    for k in np.random.default_rng(seed).permutation(len(table)):
        if len(rows) == want:
            break
        row = table.iloc[int(k)]
        try:
            image, digest = _decode(root / row["file"])
        except DataError as exc:
            if not skip_bad:
                raise DataError(f"{exc}; fix or remove the file, or pass --skip-bad-images to skip it") from exc
            skipped.append(f"{row['file']}: {str(exc.__cause__ or exc).splitlines()[0][:200]}")
            continue
        images.append(image)
        digests.append(digest)
        rows.append(row)
    if want is not None and len(rows) < want:
        raise DataError(f"asked for {want} images but {root} has only {len(rows)} readable ({len(skipped)} skipped)")
    chosen = pd.DataFrame(rows, columns=table.columns)
    return ImageSet(
        ids=list(chosen["file"]),
        labels=[int(c) for c in chosen["class_index"]],
        images=images,
        source=str(root),
        digests=digests,
        origins=list(chosen["origin"]),
        skipped=skipped,
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
    """``$LIEQ_CACHE`` or ``~/.cache/lieq`` (:func:`lieq.paths.cache_root`)."""
    from .paths import cache_root

    return cache_root()


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
    try:
        import skimage.data
    except ImportError as exc:
        raise DataError("the embedded photographs need scikit-image: pip install scikit-image") from exc
    root = Path(skimage.data.__file__).parent
    files = [f for f in EMBEDDED_PHOTOS if (root / f).is_file()]
    if not files:
        raise DataError(f"no bundled photographs found in {root}")
    order = _draw(len(files), n_images, seed, "embedded")
    images, ids, digests = [], [], []
    for k in order:
        image, digest = _decode(root / files[k])
        images.append(image)
        digests.append(digest)
        ids.append(files[k])
    source = f"embedded:scikit-image=={skimage.__version__}"
    return ImageSet(ids, [-1] * len(ids), images, source, "none", digests=digests)


def _draw(total: int, n_images: int | None, seed: int, where: str) -> np.ndarray:
    if n_images is not None:
        if n_images <= 0:
            raise DataError(f"n_images must be positive, got {n_images}")
        if n_images > total:
            raise DataError(f"asked for {n_images} images but {where} has only {total}")
    return np.random.default_rng(seed).permutation(total)[: n_images or total]


def load_cifar(
    name: str, path: str | Path | None = None, n_images: int | None = None, seed: int = 0, skip_bad: bool = False
) -> ImageSet:
    """CIFAR-10/100 test images (a class-folder copy at ``path``, or torchvision's download into the cache)."""
    if path is not None:
        found = load_image_folder(path, n_images, seed, skip_bad)
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
    digests = [hashlib.sha256(np.ascontiguousarray(ds.data[int(k)]).tobytes()).hexdigest() for k in order]
    return ImageSet(ids, labels, images, f"{name}:torchvision", name, True, digests=digests)


def load_source(spec: str | Path, n_images: int | None = None, seed: int = 0, skip_bad: bool = False) -> ImageSet:
    """Decode the images of a named source (:data:`SOURCES`), ``cifar10:PATH``/``cifar100:PATH``, or a folder
    (``skip_bad``: skip undecodable files of a folder, see :func:`load_image_folder`)."""
    text = str(spec)
    kind, sep, rest = text.partition(":")
    if sep and kind in ("cifar10", "cifar100"):
        return load_cifar(kind, rest, n_images, seed, skip_bad)
    if text == "imagenet-sample":
        return load_image_folder(imagenet_sample_path(), n_images, seed, skip_bad)
    if text == "embedded":
        return load_embedded(n_images, seed)
    if text in ("cifar10", "cifar100"):
        return load_cifar(text, None, n_images, seed)
    root = Path(text).expanduser()
    low = root.name.lower()
    if low.startswith("cifar100") or low.startswith("cifar10"):
        return load_cifar("cifar100" if low.startswith("cifar100") else "cifar10", root, n_images, seed, skip_bad)
    if not root.exists():
        raise DataError(f"image folder not found: {root} (named sources: {', '.join(SOURCES)})")
    return load_image_folder(root, n_images, seed, skip_bad)
