"""Image sources: an ImageNet-style folder, decoded once per run and preprocessed per model with timm.

A folder is either

* flat, with a ``labels.csv`` that has at least the columns ``file`` and ``class_index`` (extra columns such as
  ``wnid`` and ``name`` are kept), or
* class sub-folders (the ILSVRC2012 layout): the label of ``<dir>/<class>/<file>`` is the index of ``<class>``
  among the sorted sub-folder names (the standard ImageNet-1k index when the sub-folders are the 1000 wnids).

``N`` images are drawn with a seeded shuffle (``numpy.random.default_rng(seed).permutation``) of the sorted list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import torch

__all__ = ["DataError", "ImageSet", "load_image_folder", "preprocess"]

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


def preprocess(images: Sequence, model) -> torch.Tensor:
    """Apply ``model``'s own timm eval preprocessing (input size, crop, interpolation, mean/std): ``(N, C, H, W)``."""
    import timm.data
    import torch

    config = timm.data.resolve_data_config(model=model)
    tf = timm.data.create_transform(**config, is_training=False)
    return torch.stack([tf(im) for im in images])
