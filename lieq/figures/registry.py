"""The figure registry: a figure is one function decorated with :func:`figure`.

The decorator states the figure's name, the paper figure it corresponds to, a two-sentence caption, and the data it
needs (:class:`Needs`: the run -- a role of the :class:`FigureContext` such as ``main`` or ``aliasing`` -- the
experiment, and the minimum number of models and of images per model).  The function takes a
:class:`FigureContext`, collects its tables from the result store through it and returns ``(Figure, data note)``;
when the data are not there, or fewer than declared, it is *skipped* with a one-line reason (never drawn from
placeholder numbers).  ``figures/README.md``, ``figures/index.json`` and ``notebooks/05_figures.py`` are generated
from the declarations (:meth:`FigureContext.write_readme`, :func:`notebook_source`).

Like the rest of :mod:`lieq.figures`, this module imports no torch and no timm.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import results
from ..conventions import ALIASING_RUN, CIFAR_RUN, IMAGE_MODEL_RUN, ZOO_RUN, ZOO_TRAIN_RUN
from ..paths import CATALOGUE, figures_dir, repo_root, zoo_root
from . import style

__all__ = [
    "FIGURES",
    "SECTIONS",
    "FigureContext",
    "FigureSpec",
    "MissingData",
    "Needs",
    "Outcome",
    "by_name",
    "figure",
    "notebook_source",
    "section",
]

ROOT = repo_root() or Path.cwd()  # paths in messages are shown relative to the checkout (or the current folder)


class MissingData(LookupError):
    """The data a figure needs are not in the store, or fewer than it declares (the reason is one line)."""


@dataclass(frozen=True)
class Needs:
    """The data a figure needs: ``experiment`` of the run playing ``run`` (an attribute of :class:`FigureContext`
    without ``_run``: ``main``, ``random``, ``ood``, ``train``, ``aliasing``, ``image_model``, ``cifar``; ``primer``
    for the primer cache; ``none`` for a figure from definitions only), at least ``min_models`` models and
    ``min_images`` images per model.  ``text`` says the same in words for the README."""

    run: str = "main"
    experiment: str | None = None
    min_models: int = 1
    min_images: int = 1
    text: str = ""

    def describe(self) -> str:
        if self.text:
            return self.text
        if self.run == "none":
            return "none"
        exp = f" / {self.experiment}" if self.experiment else ""
        return f"run `<{self.run}>`{exp}; >= {self.min_models} models x {self.min_images} images"


@dataclass(frozen=True)
class FigureSpec:
    name: str
    paper: str
    caption: str
    needs: Needs
    build: Callable[[FigureContext], tuple[Any, str]]
    section: str

    @property
    def description(self) -> str:  # the first sentence of the caption (the README's "what it shows")
        return self.caption.split(". ")[0].rstrip(".")


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    text: str


#: Every figure, in the order of the notebook and the README (the order their modules register them).
FIGURES: list[FigureSpec] = []
#: The notebook sections (one per figure module), in order.
SECTIONS: dict[str, Section] = {}
_current_section: list[str] = ["other"]


def section(key: str, title: str, text: str) -> None:
    """Open a notebook / README section: the figures registered after this call belong to it."""
    SECTIONS[key] = Section(key, title, text)
    _current_section[0] = key


def figure(name: str, paper: str, caption: str | None = None, needs: Needs | None = None):
    """Register the decorated function ``f(ctx) -> (Figure, data note)`` as figure ``name``.

    The caption is ``caption`` or, without one, the function's docstring with its white space folded to single
    spaces (the form the figure modules use)."""

    def deco(fn: Callable[[FigureContext], tuple[Any, str]]):
        if any(s.name == name for s in FIGURES):
            raise ValueError(f"figure {name!r} registered twice")
        text = caption if caption is not None else " ".join((fn.__doc__ or "").split())
        if not text:
            raise ValueError(f"figure {name!r}: no caption (pass one, or give the function a docstring)")
        FIGURES.append(FigureSpec(name, paper, text, needs or Needs(), fn, _current_section[0]))
        return fn

    return deco


def by_name(name: str) -> FigureSpec:
    for spec in FIGURES:
        if spec.name == name:
            return spec
    raise ValueError(f"unknown figure {name!r}; known: {', '.join(s.name for s in FIGURES)}")


@dataclass
class Outcome:
    """What happened to one figure: ``drawn`` (with its files and data note) or ``skipped`` (with the reason)."""

    name: str
    status: str
    files: list[str] = field(default_factory=list)
    data: str = ""
    reason: str = ""
    seconds: float = 0.0


@dataclass
class FigureContext:
    """Where the figures' data come from and where they go.

    ``run`` is the main run of trained models (``embedded`` here, ``paper-core``/``paper`` on a GPU); ``random_run``
    the random-initialisation sweep; ``ood_run`` the end-to-end run of the same models on out-of-distribution images
    (default ``<run>-ood``); ``train_run`` the run on ImageNet training images (default ``<run>-train``);
    ``aliasing_run``, ``image_model_run`` and ``cifar_run`` the runs of the aliasing, image-model and CIFAR-10 ResNet
    studies (notebooks/04_aliasing); ``zoo_run`` / ``zoo_train_run`` the CIFAR-10 zoo's measurements on test and
    training images, ``zoo_setting`` its training setting (notebooks/07_cifar_zoo).  ``root`` is the result store
    (default: :func:`lieq.results.default_root`);
    ``reference`` the folder of the paper's digitised points (default: ``data/reference`` of the checkout).
    """

    run: str = "embedded"
    random_run: str = "random-init"
    ood_run: str | None = None
    train_run: str | None = None
    aliasing_run: str = ALIASING_RUN
    image_model_run: str = IMAGE_MODEL_RUN
    cifar_run: str = CIFAR_RUN
    zoo_run: str = ZOO_RUN
    zoo_train_run: str = ZOO_TRAIN_RUN
    zoo_setting: str = "cpu"
    root: str | Path | None = None
    out_dir: str | Path = field(default_factory=figures_dir)
    catalogue: str | Path = CATALOGUE  # lieq/catalogue/models.csv (package data)
    reference: str | Path | None = None
    image_model: str = "bilinear"
    dpi: int = 200
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    _cache: dict[tuple, pd.DataFrame] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.ood_run = self.ood_run or f"{self.run}-ood"
        self.train_run = self.train_run or f"{self.run}-train"
        self.root = Path(self.root) if self.root is not None else results.default_root()
        if self.reference is None:
            self.reference = Path(__file__).resolve().parents[2] / "data" / "reference"

    def run_of(self, role: str) -> str:
        """The run playing ``role`` (``main`` -> :attr:`run`, ``random`` -> :attr:`random_run`, ...)."""
        return self.run if role == "main" else getattr(self, f"{role}_run")

    # -- data access -------------------------------------------------------------------------------------------
    def table(self, run: str, experiment: str) -> pd.DataFrame:
        """``lieq.results.load(run, experiment)``, cached; :class:`MissingData` when absent or empty."""
        key = (run, experiment)
        if key not in self._cache:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    df = results.load(run, experiment, root=self.root)
            except FileNotFoundError:
                df = pd.DataFrame()
            self._cache[key] = df
        df = self._cache[key]
        if df.empty:
            raise MissingData(f"no results for run '{run}', experiment '{experiment}' in {self._rel(self.root)}")
        return df

    def e2e(self, run: str | None = None, image_model: str | None = None, generator: str | None = None) -> pd.DataFrame:
        """End-to-end rows of ``run`` (default: the main run) for one image model (default: ``self.image_model``)."""
        run = run or self.run
        df = self.table(run, "e2e")
        im = image_model or self.image_model
        if "image_model" in df.columns:
            df = df[df["image_model"] == im]
            if df.empty:
                raise MissingData(f"run '{run}' has no end-to-end results with the {im} image model")
        if "method" in df.columns and df["method"].nunique() > 1:
            df = df[df["method"] == "forward"]
        if generator is not None and generator not in set(df["generator"]):
            raise MissingData(f"run '{run}' has no end-to-end results for generator {generator}")
        return newest_config(df)

    def models(self) -> pd.DataFrame | None:
        """The model catalogue (``lieq/catalogue/models.csv``) with ``timm_tag`` as ``model``; ``None`` if absent."""
        path = Path(self.catalogue)
        if not path.is_file():
            return None
        cat = pd.read_csv(path)
        if "timm_tag" in cat.columns:
            cat = cat.dropna(subset=["timm_tag"]).rename(columns={"timm_tag": "model"})
        return cat

    def zoo(self) -> pd.DataFrame:
        """The CIFAR-10 zoo's table ``<zoo root>/<zoo_setting>/zoo.csv`` (:mod:`lieq.cifar_zoo`; one row per model
        and checkpoint: family, size, augmentation, parameters, epoch, test accuracy on all 10k test images)."""
        path = zoo_root() / self.zoo_setting / "zoo.csv"
        if not path.is_file():
            raise MissingData(f"no zoo table {self._rel(path)} (train the zoo: make zoo)")
        return pd.read_csv(path)

    def paper_points(self, name: str) -> pd.DataFrame:
        """A reference table of the paper's digitised points (``data/reference/<name>.csv``)."""
        path = Path(self.reference) / f"{name}.csv"
        if not path.is_file():
            raise MissingData(f"no reference data {self._rel(path)}")
        return pd.read_csv(path, comment="#")

    def primer(self, run: str | None = None) -> dict:
        path = Path(self.root) / (run or self.run) / "primer" / "primer.npz"
        if not path.is_file():
            raise MissingData(f"no primer cache {self._rel(path)} (run notebooks/00_primer)")
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    @staticmethod
    def _rel(path) -> str:
        try:
            return str(Path(path).resolve().relative_to(ROOT))
        except ValueError:
            return str(path)

    def check_needs(self, spec: FigureSpec) -> None:
        """Raise :class:`MissingData` when the declared experiment has fewer models / images than declared."""
        n = spec.needs
        if not n.experiment or n.run in ("none", "primer"):
            return
        df = self.table(self.run_of(n.run), n.experiment)
        if "model" not in df.columns:
            return
        n_models = df["model"].nunique()
        if n_models < n.min_models:
            raise MissingData(
                f"run '{self.run_of(n.run)}' / {n.experiment} has {n_models} models; the figure needs >= {n.min_models}"
            )
        if "image" in df.columns:
            most = int(df.groupby("model")["image"].nunique().max())
            if most < n.min_images:
                raise MissingData(
                    f"run '{self.run_of(n.run)}' / {n.experiment} has <= {most} images per model; the figure needs "
                    f">= {n.min_images}"
                )

    # -- drawing -----------------------------------------------------------------------------------------------
    def draw(self, name: str, show: bool = False, close: bool = True) -> Outcome:
        """Load the data of figure ``name``, draw it, save ``<out_dir>/<name>.pdf/.png`` and record the outcome."""
        import matplotlib.pyplot as plt

        spec = by_name(name)
        style.use_style()
        t0 = time.perf_counter()
        try:
            self.check_needs(spec)
            fig, note = spec.build(self)
        except MissingData as exc:
            outcome = Outcome(name, "skipped", reason=str(exc))
            for ext in ("pdf", "png"):  # a stale file from an earlier run must not pass for a current figure
                (Path(self.out_dir) / f"{name}.{ext}").unlink(missing_ok=True)
        else:
            paths = style.save(fig, self.out_dir, name, dpi=self.dpi)
            outcome = Outcome(name, "drawn", files=[p.name for p in paths], data=note)
            if show:
                plt.show()
            if close:
                plt.close(fig)
        outcome.seconds = time.perf_counter() - t0
        self.outcomes[name] = outcome
        return outcome

    def draw_all(self) -> list[Outcome]:
        return [self.draw(spec.name) for spec in FIGURES]

    def write_readme(self, seconds: float | None = None) -> Path:
        """Write ``<out_dir>/README.md`` (a gallery: every drawn figure inline with its caption, paper figure and
        data; skipped ones with the reason) and ``<out_dir>/index.json``."""
        out = Path(self.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        lines = [
            "# Figures",
            "",
            "Generated by `make figures` (`python -m lieq.pipeline figures`) from the cached results in "
            f"`{self._rel(self.root)}` and the declarations in `lieq/figures/`; do not edit by hand.  Main run: "
            f"`{self.run}`; random-init run: `{self.random_run}`; image model `{self.image_model}` unless a figure "
            "compares image models.  LEE is the per-image mean |L p| over classes of the softmax output p (the "
            "original code's statistic), per unit of the generator's parameter (translation: per half image width; "
            "rotation: per radian).",
            "",
        ]
        skipped = []
        current = None
        for spec in FIGURES:
            o = self.outcomes.get(spec.name)
            if o is None or o.status == "skipped":
                skipped.append((spec, o.reason if o else "not drawn in this pipeline run"))
                continue
            if spec.section != current:
                current = spec.section
                sec = SECTIONS.get(current)
                lines += [f"## {sec.title if sec else current}", ""]
            png = next((f for f in o.files if f.endswith(".png")), None)
            pdf = next((f for f in o.files if f.endswith(".pdf")), None)
            lines += [f"### `{spec.name}` ({spec.paper})", ""]
            if png:
                lines += [f"![{spec.name}]({png})", ""]
            lines += [
                spec.caption,
                "",
                f"`{spec.name}` · *paper:* {spec.paper} · *data:* {o.data}" + (f" · [pdf]({pdf})" if pdf else ""),
                "",
            ]
        if skipped:
            lines += ["## Skipped (data missing from the selected runs)", "", "| figure | paper | needs | why |"]
            lines.append("|---|---|---|---|")
            lines += [f"| `{s.name}` | {s.paper} | {s.needs.describe()} | {r} |" for s, r in skipped]
        if seconds is not None:
            lines += ["", f"Drawing took {seconds:.0f} s."]
        path = out / "README.md"
        path.write_text("\n".join(lines) + "\n")
        (out / "index.json").write_text(
            json.dumps({n: o.__dict__ for n, o in self.outcomes.items()}, indent=1, default=str) + "\n"
        )
        return path


def newest_config(df: pd.DataFrame) -> pd.DataFrame:
    """Keep, per (model, image, generator[, image_model, method]), the most recent configuration's row."""
    keys = [c for c in ("model", "image", "generator", "image_model", "method") if c in df.columns]
    if "date" in df.columns and df.duplicated(keys).any():
        df = df.sort_values("date").drop_duplicates(keys, keep="last")
    return df


def note(df: pd.DataFrame, runs: str | None = None, experiment: str | None = None) -> str:
    """The data note of a figure: run(s), experiment, weights source(s), number of models and images."""
    from ._common import weights_kind

    if runs is None:
        runs = ", ".join(sorted(map(str, df["run"].unique()))) if "run" in df.columns else "?"
    exp = experiment or (", ".join(sorted(map(str, df["experiment"].unique()))) if "experiment" in df else "")
    weights = ", ".join(sorted({weights_kind(w) for w in df["weights"].unique()})) if "weights" in df else "?"
    n_models = df["model"].nunique() if "model" in df else 0
    if "image" in df:
        per = df.groupby("model")["image"].nunique()
        imgs = str(per.iloc[0]) if per.nunique() == 1 else f"{per.min()}-{per.max()}"
    else:
        imgs = "-"
    data = ""
    if "data" in df.columns and df["data"].nunique():
        data = "; images from " + ", ".join(sorted({Path(str(d)).name or str(d) for d in df["data"].unique()}))
    models = "model" if n_models == 1 else "models"
    images = "image" if imgs == "1" else "images"
    return f"run `{runs}` / {exp}; weights: {weights}; {n_models} {models} x {imgs} {images}{data}"


# ----------------------------------------------------------------------------------------------------------------
# notebooks/05_figures.py, generated from the declarations
# ----------------------------------------------------------------------------------------------------------------

_NOTEBOOK_HEAD = '''\
# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 05 · Figures, from the cached results
#
# [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/OWNER/lieq/main?labpath=notebooks%2F05_figures.ipynb)
#
# Every figure of the compendium, drawn from the result store (`data/results/`) by the figure functions of the
# package `lieq.figures`: no torch, no GPU, no network (`make figures` runs this notebook in a light environment).
# Each cell draws one figure, saves `figures/<name>.pdf` and `.png`, and records the data behind it; a figure whose
# data are not in the selected runs (or fewer than it declares) is skipped with the reason, never drawn from
# placeholder numbers.  The gallery is `figures/README.md`.  This notebook is generated from the figure declarations
# (`python -m lieq.figures notebook`): to add a figure, write one decorated function in `lieq/figures/`.

# %% tags=["parameters"]
RUN = "embedded"  # main run of trained models (embedded here; paper-core / paper from a GPU)
RANDOM_RUN = "random-init"  # random-initialisation sweep
OUT_DIR = None  # None: figures/ of the checkout
RESULTS_ROOT = None  # None: data/results (or $LIEQ_RESULTS)

# %%
import time

from lieq.figures import FIGURES, FigureContext

t0 = time.perf_counter()
ctx = FigureContext(run=RUN, random_run=RANDOM_RUN, root=RESULTS_ROOT, **({"out_dir": OUT_DIR} if OUT_DIR else {}))


def show(name: str) -> None:
    """Draw one figure, display it, and print what it is based on (or why it is skipped)."""
    import matplotlib.pyplot as plt

    o = ctx.draw(name, close=False)
    if o.status == "drawn":
        plt.show()
        print(f"{name}: {o.data}")
    else:
        print(f"{name}: SKIPPED - {o.reason}")

'''

_NOTEBOOK_TAIL = """
# %% [markdown]
# ## Index
# `figures/README.md` shows every figure with its caption, the paper figure it corresponds to and the data behind it.

# %%
missing = [s.name for s in FIGURES if s.name not in ctx.outcomes]
assert not missing, f"figures of the index not drawn by this notebook: {missing}"
readme = ctx.write_readme(seconds=time.perf_counter() - t0)
print(readme.read_text())
"""


def _comment(text: str) -> str:
    import textwrap

    out = []
    for para in text.split("\n\n"):
        out += ["# " + ln if ln else "#" for ln in textwrap.wrap(para, 114)] or ["#"]
        out.append("#")
    return "\n".join(out[:-1])


def notebook_source() -> str:
    """The text of ``notebooks/05_figures.py``: one markdown cell per section, one ``show(name)`` cell per figure."""
    parts = [_NOTEBOOK_HEAD]
    current = None
    for spec in FIGURES:
        if spec.section != current:
            current = spec.section
            sec = SECTIONS[current]
            parts.append(f"\n# %% [markdown]\n# ## {sec.title}\n{_comment(sec.text)}\n")
        parts.append(f'\n# %%\nshow("{spec.name}")\n')
    parts.append(_NOTEBOOK_TAIL)
    return "".join(parts)
