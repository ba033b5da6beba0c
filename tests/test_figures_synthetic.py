"""Every figure at paper scale: a synthetic store of about 480 models (families in the paper's proportions, 100 images
per model, heavy-tailed per-image LEE) written to a temporary results root, drawn through the figure registry.

The synthetic numbers exist only to exercise the layout at that size (they are never shown as results): the test
checks that names appear on a few highlighted models only, that no legend has more than a dozen entries, that the
house colours hold and that no legend covers a data point.  Set ``LIEQ_SYNTHETIC_FIGURES=folder`` to keep the PNGs.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from test_figures_style import check_colours, check_legends_clear, draw_every_figure  # noqa: E402

from lieq import results  # noqa: E402
from lieq.figures import FigureContext, style  # noqa: E402

#: The paper's Fig. 1 family counts (271 CNN, 117 ViT, 13 Mixer of 401) scaled to 480 models.
FAMILIES = {"CNN": 324, "ViT": 140, "Mixer": 16}
GENS = ("translate_x", "translate_y", "rotate", "scale")
CATS = ("Conv", "Activation", "Norm", "Pool", "Linear/MLP")
PROV = dict(data="imagenet-sample", seed=0, device="cpu", lieq_version="0", git_commit="x", torch_version="-",
            timm_version="-")  # fmt: skip


def _catalogue(rng) -> pd.DataFrame:
    rows = []
    for fam, n in FAMILIES.items():
        for i in range(n):
            rows.append({"timm_tag": f"{fam.lower()}_{i:03d}.syn", "family": fam,
                         "params": float(np.exp(rng.normal(3.3, 0.9))), "timm_top1": float(rng.uniform(70, 89)),
                         "pretrain_data": rng.choice(["in1k", "in21k", "laion"]),
                         "training": rng.choice(["", "distilled", "sam", "adversarial"])})  # fmt: skip
    return pd.DataFrame(rows)


def _save(root, run, experiment, table, weights="pip:synthetic"):
    for model, t in table.groupby("model", sort=False):
        results.save(t, run, experiment, model, {"k": 1}, {**PROV, "weights": weights}, root=root)


def synthetic_store(root, n_images: int = 100, seed: int = 0) -> pd.DataFrame:
    """Write runs ``main`` (e2e, baselines, layerwise), ``main-ood`` and ``random-init`` to ``root``."""
    rng = np.random.default_rng(seed)
    cat = _catalogue(rng)
    models = cat["timm_tag"].to_numpy()
    n = len(models)
    level = np.exp(rng.normal(np.log(0.06), 0.35, n))  # per-model LEE level
    acc = cat["timm_top1"].to_numpy() / 100
    images = np.array([f"img{j:03d}" for j in range(n_images)])
    frames = []
    for g_i, g in enumerate(GENS):
        tail = rng.lognormal(0.0, 1.2, (n, n_images))  # heavy-tailed per-image values
        v = level[:, None] * (1 + 0.3 * g_i) * tail
        frames.append(pd.DataFrame({"model": np.repeat(models, n_images), "image": np.tile(images, n),
                                    "generator": g, "mean_abs": v.ravel(), "mean_sq": (v**2).ravel() / 50,
                                    "image_model": "bilinear"}))  # fmt: skip
    e2e = pd.concat(frames, ignore_index=True)
    correct = rng.random((n, n_images)) < acc[:, None]
    e2e["correct"] = np.tile(correct.ravel(), len(GENS))
    _save(root, "main", "e2e", e2e)
    ood = e2e[e2e["image"].isin(images[:50])].assign(mean_abs=lambda d: d["mean_abs"] * rng.lognormal(0.2, 0.3, len(d)))
    _save(root, "main-ood", "e2e", ood)
    rnd = e2e[e2e["image"].isin(images[:2])].assign(mean_abs=lambda d: d["mean_abs"] * 3)
    _save(root, "random-init", "e2e", rnd, weights="random:seed=0")
    prior = rnd[rnd["generator"] == "translate_x"][["model", "image", "generator", "image_model"]].copy()
    prior["feature_lee"] = rng.lognormal(1.0, 0.8, len(prior))
    prior["feature_sensitivity"] = rng.lognormal(-6.0, 1.0, len(prior))
    prior["normalised_feature_lee"] = rng.lognormal(0.0, 0.3, len(prior))
    zero_head = prior["model"].str.startswith("mixer")  # zero-initialised heads: softmax LEE exactly 0
    prior["softmax_mean_abs"] = np.where(zero_head, 0.0, prior["feature_lee"] * rng.lognormal(-7.0, 1.5, len(prior)))
    _save(root, "random-init", "prior", prior, weights="random:seed=0")
    t = e2e[e2e["generator"].isin(["translate_x", "rotate"])]
    base = pd.concat(
        [t[t.generator == "translate_x"].assign(metric="eq_t"), t[t.generator == "rotate"].assign(metric="eq_r")]
    )
    base = base[["model", "image", "metric"]].assign(stat="mse", value=(base["mean_abs"] ** 2).to_numpy() * 3)
    _save(root, "main", "baselines", base)
    rows = []  # layerwise: 24 models (the figures pick at most 6 per panel), 5 images, 40 layer calls
    for m in np.concatenate([models[:12], models[-12:]]):
        for j in range(5):
            for order in range(40):
                rows.append({"model": m, "image": f"img{j:03d}", "generator": "translate_x", "layer": f"l{order}",
                             "category": CATS[order % len(CATS)], "order": order, "call": 0,
                             "contribution": float(rng.lognormal(0, 2)), "unattributed": 0.01,
                             "image_model": "bilinear"})  # fmt: skip
    _save(root, "main", "layerwise", pd.DataFrame(rows))
    return cat


@pytest.fixture(scope="module")
def synthetic_figures(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("paper_scale")
    cat = synthetic_store(tmp / "results")
    cat.to_csv(tmp / "models.csv", index=False)
    out = os.environ.get("LIEQ_SYNTHETIC_FIGURES")
    ctx = FigureContext(run="main", root=tmp / "results", out_dir=out or tmp / "figs", catalogue=tmp / "models.csv")
    figs = draw_every_figure(ctx)
    if out:
        for name, fig in figs.items():
            style.save(fig, out, name, dpi=110)
    yield figs
    plt.close("all")


@pytest.mark.slow
def test_paper_scale_figures_are_readable(synthetic_figures):
    figs = synthetic_figures
    expected = {"fig1_right_lee_vs_accuracy", "lee_vs_accuracy_by_generator", "lee_vs_params", "ood_vs_id",
                "lee_by_pretraining_data", "random_vs_trained", "random_init_prior", "lee_vs_baselines",
                "fig4a_cumulative_cnn", "fig4b_cumulative_vit_mixer"}  # fmt: skip
    assert expected <= set(figs), sorted(expected - set(figs))
    names = {f"{fam.lower()}_{i:03d}" for fam, n in FAMILIES.items() for i in range(n)}
    for name, fig in figs.items():
        for ax in fig.axes:
            labelled = [t for t in ax.texts if t.get_text() in names]
            assert len(labelled) <= 12, f"{name}: {len(labelled)} model names in one panel"
            ticks = [t for t in ax.get_yticklabels() if t.get_text() in names]
            assert len(ticks) <= 40, f"{name}: {len(ticks)} model names as tick labels"
        for ax in [*fig.axes, fig]:
            legends = [ax.get_legend()] if hasattr(ax, "get_legend") else list(fig.legends)
            for leg in legends:
                if leg is not None:
                    assert len(leg.get_texts()) <= 12, f"{name}: a legend with {len(leg.get_texts())} entries"
    check_colours(figs)
    check_legends_clear(figs)
