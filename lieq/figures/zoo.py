"""The CIFAR-10 zoo trained here (issue 14): CNNs, ConvNeXts, ViTs and Mixers, one factor changed at a time.

Data: the end-to-end LEE of every zoo checkpoint on CIFAR-10 test images (run ``cifar-zoo``, both image models), on
training images (run ``cifar-zoo-train``), layerwise attributions of the final models (run ``cifar-zoo``), and the
zoo's own table ``data/cifar-zoo/<setting>/zoo.csv`` (family, size, augmentation, parameters, epoch and the test
accuracy on all 10k test images, from :mod:`lieq.cifar_zoo`).  Per checkpoint the LEE is the median over images
(heavy-tailed per-image values; log axes) with a bootstrap 95 % interval.

Like the rest of :mod:`lieq.figures`, this module imports no torch and no timm.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ._common import (
    E2E_COLUMNS,
    MIN_RANK_N,
    _ols,
    _plain_log_ticks,
    _require,
    _select_generator,
    bootstrap_ci,
    median_ci,
    symmetric_ratio_axis,
)
from .registry import FigureContext, MissingData, Needs, figure, note, section
from .style import FAMILY_COLORS, ONE_COL, TWO_COL, label, lee_label

section(
    "zoo",
    "New: a controlled zoo trained here (CIFAR-10)",
    (
        "Models trained here with one recipe (lieq.cifar_zoo, `make zoo`; 20k CIFAR-10 training images x 10 epochs "
        "on the CPU): a ResNet-style CNN, a patchify ConvNeXt, a ViT and an MLP-Mixer (patch or stem 2-4 px), two "
        "sizes, with and without translation augmentation (random crops of the 4 px padded image, and flips), with "
        "checkpoints through training; measured by notebooks/07_cifar_zoo. Family, size, augmentation and training "
        "time change one at a time, which the paper's pretrained ImageNet models cannot do; the figures say how "
        "many models are trained. These are small, briefly trained models (about 52-67 % test accuracy): a "
        "controlled experiment, not the paper's accuracy range."
        "\n\n"
        "LEE vs accuracy: the paper's trend is a lower LEE for more accurate models. Across these final models, and "
        "along every training trajectory, the raw softmax LEE rises with accuracy instead: an untrained network's "
        "near-uniform output hardly moves under any change, and training makes it confident and sensitive. Through "
        "training, the second row shows the normalised LEE (experiment e2e-normalised: the Lie derivative's norm "
        "over the output's change for a random perturbation of the same size), which separates more equivariant "
        "from merely more sensitive."
        "\n\n"
        "Augmentation: paired per-image ratios on the same test images. A ratio below 1 for translation but not for "
        "the rotation control would be equivariance learned from the augmentation; below 1 for both, a model that "
        "is smoother overall. The image-model check asks whether the family order survives the bicubic central "
        "image model, train vs test whether learned equivariance holds off the training set (the paper finds it "
        "similar), and the cumulative layerwise panels are the paper's Fig. 4 with transformers and Mixers trained "
        "here."
    ),
)

#: Zoo families (lieq.cifar_zoo) -> house families (lieq.figures.style.FAMILY_COLORS).
ZOO_FAMILIES: dict[str, str] = {"resnet": "CNN", "convnext": "ConvNeXt", "vit": "ViT", "mixer": "Mixer"}
ZOO_FAMILY_ORDER: tuple[str, ...] = ("CNN", "ConvNeXt", "ViT", "Mixer")
SIZE_LINESTYLES: dict[str, str] = {"s": "--", "m": "-"}
AUG_LABELS: dict[str, str] = {"aug": "crops + flips (filled)", "noaug": "no augmentation (open)"}


def zoo_meta(zoo: pd.DataFrame) -> pd.DataFrame:
    """The zoo table indexed by checkpoint tag, with the house ``family``, ``final`` and ``test_top1`` (%)."""
    _require(zoo, ["tag", "model", "family", "size", "augment", "params", "epoch", "test_acc"], "zoo table")
    meta = zoo.copy()
    meta["zoo_family"] = meta["family"]
    meta["family"] = meta["family"].map(ZOO_FAMILIES).fillna("other")
    meta["final"] = meta["tag"] == meta["model"]
    meta["test_top1"] = 100 * pd.to_numeric(meta["test_acc"])
    return meta.set_index("tag")


def per_checkpoint(e2e: pd.DataFrame, generator: str, stat: str = "mean_abs") -> pd.DataFrame:
    """Per checkpoint tag: median LEE over images (``lee``), its bootstrap 95 % interval (``lo``, ``hi``), the image
    count and the top-1 (%) on the same images when recorded."""
    _require(e2e, [*E2E_COLUMNS, stat], "zoo end-to-end table")
    d = _select_generator(e2e, generator, "zoo end-to-end table")
    out = median_ci(d, stat, ["model"]).rename(columns={"model": "tag", "med": "lee"}).set_index("tag")
    if "correct" in d:
        out["top1_same"] = 100 * d.drop_duplicates(["model", "image"]).groupby("model")["correct"].mean()
    return out


def _joined(e2e: pd.DataFrame, zoo: pd.DataFrame, generator: str, stat: str) -> pd.DataFrame:
    pm = per_checkpoint(e2e, generator, stat).join(zoo_meta(zoo), how="inner")
    if pm.empty:
        raise ValueError("zoo figures: no checkpoint of the end-to-end table is in the zoo table")
    return pm


def _face(row) -> str:
    return FAMILY_COLORS.get(row["family"], FAMILY_COLORS["other"]) if row["augment"] == "aug" else "white"


def _family_handles(families: Sequence[str]) -> tuple[list, list]:
    fams = [f for f in ZOO_FAMILY_ORDER if f in set(families)]
    handles = [plt.Line2D([], [], ls="", marker="o", ms=5, color=FAMILY_COLORS[f]) for f in fams]
    handles += [plt.Line2D([], [], ls="", marker="o", ms=5, color="0.3"),
                plt.Line2D([], [], ls="", marker="o", ms=5, color="0.3", mfc="white")]  # fmt: skip
    return handles, [*fams, AUG_LABELS["aug"], AUG_LABELS["noaug"]]


def _identity_log_axes(ax, values: np.ndarray) -> None:
    """Square log-log axes covering ``values`` (with a margin), and the diagonal y = x (dashed)."""
    lim = [0.7 * float(np.nanmin(values)), 1.4 * float(np.nanmax(values))]
    ax.plot(lim, lim, ls="--", color="0.5", lw=0.8)
    ax.set(xscale="log", yscale="log", xlim=lim, ylim=lim)
    ax.set_box_aspect(1)
    _plain_log_ticks(ax, "x")
    _plain_log_ticks(ax, "y")


def _area(params: pd.Series) -> np.ndarray:
    p = pd.to_numeric(params).to_numpy(float)
    return 25 + 90 * (p - p.min()) / max(p.max() - p.min(), 1.0)


def zoo_lee_vs_accuracy(e2e: pd.DataFrame, zoo: pd.DataFrame, generator: str = "translate_x",
                        stat: str = "mean_abs") -> Figure:  # fmt: skip
    """LEE against CIFAR-10 test accuracy (all 10k test images) across the zoo: family by colour, parameters by
    marker area, augmentation filled / open; each model's earlier checkpoints as small dots on a faint line (its
    trajectory through training); the least-squares line of log10 LEE on accuracy and its R^2 across the final
    models (at least five)."""
    pm = _joined(e2e, zoo, generator, stat)
    fig, ax = plt.subplots(figsize=(ONE_COL * 1.5, ONE_COL * 1.2))
    for _, g in pm.sort_values("epoch").groupby("model"):
        color = FAMILY_COLORS.get(g["family"].iloc[0], FAMILY_COLORS["other"])
        ax.plot(g["test_top1"], g["lee"], color=color, lw=0.7, alpha=0.35, zorder=1)
        early = g[~g["final"]]
        ax.scatter(early["test_top1"], early["lee"], s=6, color=color, alpha=0.5, lw=0, zorder=2)
    fin = pm[pm["final"]]
    areas = _area(fin["params"])
    for (_, r), a in zip(fin.iterrows(), areas):
        edge = FAMILY_COLORS.get(r["family"], FAMILY_COLORS["other"])
        ax.scatter(r["test_top1"], r["lee"], s=a, facecolor=_face(r), edgecolor=edge, lw=1.0, zorder=3)
    fit = _ols(fin["test_top1"].to_numpy(float), np.log10(fin["lee"].to_numpy(float)))
    if fit is not None:
        ax.plot(fit["grid"], 10 ** (fit["intercept"] + fit["slope"] * fit["grid"]), color="0.2", lw=1.0, zorder=1)
        if fit["band"] is not None:
            ax.fill_between(fit["grid"], *(10 ** fit["band"]), color="0.2", alpha=0.12, lw=0, zorder=0)
        fit_text = f"least squares on final models: R$^2$ = {fit['r2']:.2f} (n = {len(fin)})"
    else:
        fit_text = f"no fit: {len(fin)} final models < 5"
    ax.set_yscale("log")
    _plain_log_ticks(ax, "y")
    ax.set_xlabel("CIFAR-10 test accuracy, all 10k test images (%)")
    ax.set_ylabel(lee_label(stat, generator) + ", log")
    handles, names = _family_handles(fin["family"])
    handles.append(plt.Line2D([], [], color="0.5", lw=0.7, marker="o", ms=2))
    names.append("earlier checkpoints (trajectory)")
    ax.legend(handles, names, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False,
              title="marker area: parameters")  # fmt: skip
    n_img = int(pm["n_images"].median())
    ax.set_title(f"CIFAR-10 zoo: {label(generator)} LEE vs accuracy ({n_img} test images per checkpoint)\n"
                 f"{fit_text}", fontsize=8)  # fmt: skip
    fig.tight_layout()
    return fig


def zoo_lee_through_training(e2e: pd.DataFrame, zoo: pd.DataFrame, generator: str = "translate_x",
                             stat: str = "mean_abs", normalised: pd.DataFrame | None = None) -> Figure:  # fmt: skip
    """LEE through training, one panel per family: median over test images (bootstrap 95 % band) at each checkpoint;
    line style by size (dashed small, solid medium), markers filled with augmentation and open without.

    With ``normalised`` (an ``e2e-normalised`` table), a second row shows the unit-free LEE
    ``||L_g p|| / (||v_g|| s(x))`` of the same checkpoints (:mod:`lieq.metrics`): the raw softmax LEE of an untrained
    network is small because its near-uniform output hardly moves at all, so only the ratio to the output's change
    under a random perturbation of the same size says whether training made a model *more equivariant* (falling) or
    merely *more sensitive* (the raw LEE rising with a flat ratio).  1 = as sensitive to the transformation as to
    white noise of the same norm."""
    rows = [(_joined(e2e, zoo, generator, stat), f"{label(generator)} LEE\n(softmax, log)")]
    if normalised is not None and not normalised.empty:
        rows.append((_joined(normalised, zoo, generator, "normalised"), f"normalised {label(generator)} LEE\n"
                     "(||L p|| / (||v|| s), log)"))  # fmt: skip
    pm = rows[0][0]
    fams = [f for f in ZOO_FAMILY_ORDER if f in set(pm["family"])]
    epochs = sorted(pm["epoch"].unique())
    fig, axes = plt.subplots(len(rows), len(fams), figsize=(TWO_COL, 2.2 * len(rows) + 0.3), sharey="row",
                             sharex=True, squeeze=False)  # fmt: skip
    for (table, ylabel), row in zip(rows, axes):
        for ax, fam in zip(row, fams):
            color = FAMILY_COLORS[fam]
            for _, g in table[table["family"] == fam].sort_values("epoch").groupby("model"):
                r = g.iloc[0]
                ax.fill_between(g["epoch"], g["lo"], g["hi"], color=color, alpha=0.12, lw=0)
                ax.plot(g["epoch"], g["lee"], ls=SIZE_LINESTYLES.get(r["size"], "-"), color=color, lw=1.0,
                        marker="o", ms=3.5, mfc=color if r["augment"] == "aug" else "white", mec=color)  # fmt: skip
            ax.set_xscale("log", base=2)
            ax.set_xticks(epochs, [str(int(e)) for e in epochs])
            ax.xaxis.set_minor_locator(plt.NullLocator())
        row[0].set_yscale("log")
        _plain_log_ticks(row[0], "y")
        row[0].set_ylabel(ylabel, fontsize=7)
    for ax, fam in zip(axes[0], fams):
        ax.set_title(fam, fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel("epoch (log scale)")
    handles = [plt.Line2D([], [], ls=ls, color="0.3") for ls in SIZE_LINESTYLES.values()]
    handles += [plt.Line2D([], [], ls="", marker="o", color="0.3"),
                plt.Line2D([], [], ls="", marker="o", color="0.3", mfc="white")]  # fmt: skip
    fig.legend(handles, ["small", "medium", AUG_LABELS["aug"], AUG_LABELS["noaug"]], loc="upper center",
               bbox_to_anchor=(0.5, 0.0), ncol=4, frameon=False)  # fmt: skip
    counts = " / ".join(f"{int(t['n_images'].median())}" for t, _ in rows)
    fig.suptitle(f"CIFAR-10 zoo: {label(generator)} LEE through training (median over {counts} test images per "
                 "checkpoint, bootstrap 95 % band)", fontsize=8)  # fmt: skip
    fig.tight_layout()
    return fig


def paired_ratios(e2e: pd.DataFrame, zoo: pd.DataFrame, generator: str, stat: str = "mean_abs") -> pd.DataFrame:
    """Per (family, size) of the final models: the per-image ratios LEE(aug) / LEE(noaug) on the same test images,
    their median and bootstrap 95 % interval (columns ``family``, ``size``, ``median``, ``lo``, ``hi``, ``n``)."""
    meta = zoo_meta(zoo)
    fin = meta[meta["final"]]
    d = _select_generator(e2e, generator, "zoo end-to-end table")
    d = d[d["model"].isin(fin.index)].assign(v=lambda t: pd.to_numeric(t[stat]))
    d = d.join(fin[["family", "size", "augment"]], on="model")
    rows = []
    for (fam, size), g in d.groupby(["family", "size"]):
        w = g.pivot_table(index="image", columns="augment", values="v")
        if not {"aug", "noaug"} <= set(w.columns):
            continue
        r = (w["aug"] / w["noaug"]).dropna().to_numpy(float)
        lo, hi = bootstrap_ci(r, stat=np.median, n_resamples=1000)
        rows.append({"family": fam, "size": size, "median": float(np.median(r)), "lo": lo, "hi": hi, "n": len(r)})
    return pd.DataFrame(rows)


def zoo_augmentation_effect(
    e2e: pd.DataFrame, zoo: pd.DataFrame, generators: Sequence[str] = ("translate_x", "rotate"), stat: str = "mean_abs"
) -> Figure:
    """The augmentation effect, paired: per family and size, the median over test images of LEE(trained with crops
    and flips) / LEE(trained without) of the final models, on the same images, with bootstrap 95 % intervals (log
    axis; below 1: augmentation made the model more equivariant).  Rotation is a control the augmentation does not
    contain."""
    gens = [g for g in generators if g in set(e2e["generator"])]
    if not gens:
        raise ValueError(f"zoo_augmentation_effect: none of {list(generators)} in the table")
    fig, axes = plt.subplots(1, len(gens), figsize=(TWO_COL * 0.8, 2.6), sharey=True, squeeze=False)
    for ax, g in zip(axes[0], gens):
        pr = paired_ratios(e2e, zoo, g, stat)
        if pr.empty:
            raise ValueError("zoo_augmentation_effect: no family has both augmentation regimes")
        pr["k"] = pr["family"].map({f: i for i, f in enumerate(ZOO_FAMILY_ORDER)}).fillna(9)
        pr = pr.sort_values(["k", "size"]).reset_index(drop=True)
        for i, r in pr.iterrows():
            color = FAMILY_COLORS.get(r["family"], FAMILY_COLORS["other"])
            ax.errorbar(r["median"], i, xerr=[[r["median"] - r["lo"]], [r["hi"] - r["median"]]], fmt="o", ms=4,
                        color=color, elinewidth=0.9)  # fmt: skip
        ax.axvline(1.0, color="0.5", ls="--", lw=0.8)
        ax.set_yticks(range(len(pr)), [f"{r.family} {'small' if r.size == 's' else 'medium'}"
                                        for r in pr.itertuples()])  # fmt: skip
        ax.set_ylim(len(pr) - 0.5, -0.5)
        symmetric_ratio_axis(ax, pr[["lo", "hi"]].to_numpy())
        ax.set_xlabel("LEE ratio, augmented / not (log)")
        ax.set_title(f"{label(g)}" + (" (in the augmentation)" if g.startswith("translate") else " (control)"),
                     fontsize=8)  # fmt: skip
    n = int(pr["n"].median())
    fig.suptitle(f"CIFAR-10 zoo: effect of training with translations and flips, paired over {n} test images "
                 "(median, bootstrap 95 % CI)", fontsize=8)  # fmt: skip
    fig.tight_layout()
    return fig


def zoo_image_model_check(
    e2e: pd.DataFrame, zoo: pd.DataFrame, generator: str = "translate_x", stat: str = "mean_abs",
    image_models: tuple[str, str] = ("bilinear", "central"),
) -> Figure:  # fmt: skip
    """Does the family ranking survive a change of image model?  Per final model, the median LEE with the paper's
    bilinear image model (x) against the bicubic ``central`` one (y), log-log, with the Spearman correlation across
    models and the family order (by median over the family's models) under each."""
    from scipy import stats

    _require(e2e, [*E2E_COLUMNS, stat, "image_model"], "zoo_image_model_check")
    parts = []
    for im in image_models:
        d = e2e[e2e["image_model"] == im]
        if d.empty:
            raise ValueError(f"zoo_image_model_check: no rows with the {im} image model")
        parts.append(_joined(d, zoo, generator, stat).add_suffix(f"_{im}"))
    a, b = image_models
    both = parts[0].join(parts[1], how="inner")
    both = both[both[f"final_{a}"].astype(bool)]
    if both.empty:
        raise ValueError("zoo_image_model_check: no final model measured under both image models")
    fig, ax = plt.subplots(figsize=(ONE_COL * 1.45, ONE_COL * 1.1))
    for _, r in both.iterrows():
        fam = r[f"family_{a}"]
        color = FAMILY_COLORS.get(fam, FAMILY_COLORS["other"])
        ax.scatter(r[f"lee_{a}"], r[f"lee_{b}"], s=30, facecolor=color if r[f"augment_{a}"] == "aug" else "white",
                   edgecolor=color, lw=1.0, zorder=3)  # fmt: skip
    _identity_log_axes(ax, both[[f"lee_{a}", f"lee_{b}"]].to_numpy(float))
    ax.set_xlabel(f"{label(a)}: {label(generator)} LEE (log)")
    ax.set_ylabel(f"{label(b)}: {label(generator)} LEE (log)")
    order = {im: " < ".join(both.groupby(f"family_{a}")[f"lee_{im}"].median().sort_values().index)
             for im in image_models}  # fmt: skip
    rho = stats.spearmanr(both[f"lee_{a}"], both[f"lee_{b}"]).statistic if len(both) >= MIN_RANK_N else np.nan
    rho_text = f"Spearman rho {rho:.2f} over {len(both)} models" if np.isfinite(rho) else f"{len(both)} models"
    handles, names = _family_handles(both[f"family_{a}"])
    ax.legend(handles, names, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    ax.set_title(f"CIFAR-10 zoo, final models: {rho_text}\nfamilies, lowest LEE first: {label(a)}: {order[a]};\n"
                 f"{label(b)}: {order[b]}", fontsize=7)  # fmt: skip
    fig.tight_layout()
    return fig


def zoo_train_vs_test(test: pd.DataFrame, train: pd.DataFrame, zoo: pd.DataFrame, generator: str = "translate_x",
                      stat: str = "mean_abs") -> Figure:  # fmt: skip
    """Per final model, the median LEE on CIFAR-10 training images (y) against test images (x), with y = x: learned
    equivariance that held only on the training distribution would put points below the diagonal."""
    a = _joined(test, zoo, generator, stat)
    b = per_checkpoint(train, generator, stat)
    both = a[a["final"]].join(b.add_suffix("_train"), how="inner")
    if both.empty:
        raise ValueError("zoo_train_vs_test: no final model measured on both training and test images")
    fig, ax = plt.subplots(figsize=(ONE_COL * 1.45, ONE_COL * 1.1))
    for _, r in both.iterrows():
        color = FAMILY_COLORS.get(r["family"], FAMILY_COLORS["other"])
        ax.errorbar(r["lee"], r["lee_train"], xerr=[[r["lee"] - r["lo"]], [r["hi"] - r["lee"]]],
                    yerr=[[r["lee_train"] - r["lo_train"]], [r["hi_train"] - r["lee_train"]]], fmt="o", ms=5,
                    color=color, mfc=color if r["augment"] == "aug" else "white", elinewidth=0.6, zorder=3)  # fmt: skip
    _identity_log_axes(ax, both[["lo", "hi", "lo_train", "hi_train"]].to_numpy(float))
    ax.set_xlabel(f"test images: {label(generator)} LEE (log)")
    ax.set_ylabel(f"training images: {label(generator)} LEE (log)")
    ratio = float(np.median(both["lee_train"] / both["lee"]))
    handles, names = _family_handles(both["family"])
    ax.legend(handles, names, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    counts = f"{int(both['n_images'].median())} / {int(both['n_images_train'].median())} images"
    ax.set_title(f"CIFAR-10 zoo: train vs test LEE, {len(both)} final models\nmedian train / test {ratio:.2f}; "
                 f"{counts}", fontsize=8)  # fmt: skip
    fig.tight_layout()
    return fig


def zoo_summary(e2e: pd.DataFrame, zoo: pd.DataFrame, generator: str = "translate_x", stat: str = "mean_abs",
                normalised: pd.DataFrame | None = None) -> pd.DataFrame:  # fmt: skip
    """The zoo table of the final models: family, size, augmentation, parameters (M), epochs, CIFAR-10 test top-1 (%,
    all 10k test images), training time (s; seconds per epoch x epochs, from the zoo table) and, per image model in
    ``e2e``, the median ``stat`` LEE of ``generator`` over the test images (``lee_<image model>``, with the
    bootstrap 95 % interval ``lo_`` / ``hi_``); with ``normalised`` also the median normalised LEE."""
    meta = zoo_meta(zoo)
    fin = meta[meta["final"]]
    out = fin[["family", "size", "augment"]].copy()
    out["params_M"] = pd.to_numeric(fin["params"]) / 1e6
    out["epochs"] = fin["epoch"].astype(int)
    out["test_top1"] = fin["test_top1"]
    if "s_per_epoch" in fin:
        out["train_s"] = pd.to_numeric(fin["s_per_epoch"]) * fin["epoch"]
    parts = [(im, e2e[e2e["image_model"] == im], stat) for im in sorted(set(e2e["image_model"]))]
    if normalised is not None and not normalised.empty:
        parts.append(("normalised", normalised, "normalised"))
    for name, table, column in parts:
        pc = per_checkpoint(table, generator, column)
        out = out.join(pc[["lee", "lo", "hi", "n_images"]].add_suffix(f"_{name}"), how="left")
    out = out[out.filter(like="lee_").notna().any(axis=1)]
    out["k"] = out["family"].map({f: i for i, f in enumerate(ZOO_FAMILY_ORDER)})
    return out.sort_values(["k", "size", "augment"], ascending=[True, False, False]).drop(columns="k")


# ---------------------------------------------------------------------------------------------- registration


def _zoo_e2e(ctx: FigureContext, run: str | None = None, image_model: str | None = None) -> pd.DataFrame:
    df = ctx.table(run or ctx.zoo_run, "e2e")
    if image_model is not None:
        df = df[df["image_model"] == image_model]
        if df.empty:
            raise MissingData(f"run '{run or ctx.zoo_run}' has no end-to-end results and image model {image_model}")
    return df


@figure("zoo_lee_vs_accuracy", "new (zoo)", needs=Needs("zoo", "e2e", min_models=5, min_images=100,
                                                        text="run `cifar-zoo` / e2e + the zoo table zoo.csv"))
def _zoo_vs_acc(ctx: FigureContext):
    """Translation LEE against CIFAR-10 test accuracy across the zoo, with each model's trajectory through training
    and the least-squares fit across final models: the paper's Fig. 1 (right) trend, with family, size and
    augmentation controlled."""
    e2e = _zoo_e2e(ctx, image_model=ctx.image_model)
    return zoo_lee_vs_accuracy(e2e, ctx.zoo()), note(e2e)


@figure("zoo_lee_through_training", "new (zoo)", needs=Needs("zoo", "e2e", min_models=5, min_images=100,
                                                             text="run `cifar-zoo` / e2e, every checkpoint"))
def _zoo_training(ctx: FigureContext):
    """Translation LEE through training, per family, size and augmentation, raw (top) and normalised by the output's
    sensitivity to random perturbations (bottom, when measured). Whether equivariance is learned early or late, and
    whether a rising raw LEE means less equivariance or only a more confident, more sensitive output."""
    e2e = _zoo_e2e(ctx, image_model=ctx.image_model)
    try:
        normalised = ctx.table(ctx.zoo_run, "e2e-normalised")
        normalised = normalised[normalised["image_model"] == ctx.image_model]
    except MissingData:
        normalised = None
    text = note(e2e) + ("" if normalised is None or normalised.empty else f"; normalised: {note(normalised)}")
    return zoo_lee_through_training(e2e, ctx.zoo(), normalised=normalised), text


@figure("zoo_augmentation_effect", "new (zoo)", needs=Needs("zoo", "e2e", min_models=2, min_images=100,
                                                            text="run `cifar-zoo` / e2e, final models"))
def _zoo_aug(ctx: FigureContext):
    """How much training with translations (crops) and flips lowers the LEE, per family and size, as paired per-image
    ratios of the final models (rotation as a control). The paper attributes much learned equivariance to data and
    augmentation."""
    e2e = _zoo_e2e(ctx, image_model=ctx.image_model)
    return zoo_augmentation_effect(e2e, ctx.zoo()), note(e2e)


@figure("zoo_image_model_check", "new (zoo)", needs=Needs("zoo", "e2e", min_models=2, min_images=100,
                                                          text="run `cifar-zoo` / e2e, bilinear and central"))
def _zoo_im(ctx: FigureContext):
    """The zoo's final models under the paper's bilinear image model and the bicubic central one. If the family
    ranking changed, a conclusion about families would be about the image model instead."""
    e2e = _zoo_e2e(ctx)
    return zoo_image_model_check(e2e, ctx.zoo()), note(e2e)


@figure("zoo_train_vs_test", "new (zoo)", needs=Needs("zoo_train", "e2e", min_models=2, min_images=100,
                                                      text="runs `cifar-zoo` and `cifar-zoo-train` / e2e"))
def _zoo_train_test(ctx: FigureContext):
    """Translation LEE on training against test images for the zoo's final models, with y = x. The paper compares
    the two to ask whether equivariance is learned only on the training distribution."""
    test = _zoo_e2e(ctx, image_model=ctx.image_model)
    train = _zoo_e2e(ctx, run=ctx.zoo_train_run, image_model=ctx.image_model)
    return zoo_train_vs_test(test, train, ctx.zoo()), f"test: {note(test)}; train: {note(train)}"


@figure("zoo_fig4b_cumulative", "Fig. 4 (left), trained here", needs=Needs("zoo", "layerwise", min_images=20,
                                                                          text="run `cifar-zoo` / layerwise"))
def _zoo_fig4b(ctx: FigureContext):
    """Cumulative layerwise translation error of trained CNN, ConvNeXt, ViT and Mixer from the zoo (the largest
    measured final model of each family), as shares of each model's total in execution order, beside the paper's
    ViT-Small bars: the paper's Fig. 4 with transformers and Mixers we could train ourselves."""
    from .layerwise import _paper_bars, _per_image, cumulative_layerwise

    layers = ctx.table(ctx.zoo_run, "layerwise")
    lw = layers[layers["generator"] == "translate_x"]
    if "image_model" in lw.columns:
        lw = lw[lw["image_model"] == ctx.image_model]
    meta = zoo_meta(ctx.zoo())
    fin = meta[meta["final"] & meta.index.isin(set(lw["model"]))]
    if fin.empty:
        raise MissingData(f"run '{ctx.zoo_run}' has no layerwise results of final zoo models")
    chosen = [fin[fin["family"] == f].sort_values(["params", "augment"]).index[-1]
              for f in ZOO_FAMILY_ORDER if (fin["family"] == f).any()]  # fmt: skip
    paper = _paper_bars(ctx, ("ViT",))
    fig = cumulative_layerwise(lw, chosen, per_image=_per_image(lw), paper=paper)
    extra = "; the paper's ViT-Small bars beside" if paper is not None else ""
    return fig, note(lw[lw["model"].isin(chosen)]) + extra
