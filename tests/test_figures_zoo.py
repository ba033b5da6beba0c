"""The CIFAR-10 zoo figures (lieq/figures/zoo.py) on a synthetic zoo: what they compute (the fit across final
models, the paired augmentation ratios, the rank statistic) and that they keep the house style.

The synthetic numbers only exercise the code (they are never shown as results)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402
from test_figures_style import check_colours, check_legends_clear, check_text  # noqa: E402

from lieq import results  # noqa: E402
from lieq.figures import FigureContext, by_name, style  # noqa: E402
from lieq.figures import zoo as Z  # noqa: E402

FAMILIES = ("resnet", "convnext", "vit", "mixer")
EPOCHS = (1, 2, 4, 8, 10)
N_IMAGES = 100
PROV = dict(data="cifar10-test", seed=0, device="cpu", lieq_version="0", git_commit="x", torch_version="-",
            timm_version="-")  # fmt: skip


def synthetic_zoo(rng) -> pd.DataFrame:
    rows = []
    for k, fam in enumerate(FAMILIES):
        for size, params in (("s", 3e5 + 1e5 * k), ("m", 1e6 + 1e5 * k)):
            for aug in ("noaug", "aug"):
                name = f"cifar-{fam}-{size}-{aug}"
                for e in EPOCHS:
                    acc = 0.3 + 0.03 * e + 0.05 * (size == "m") + 0.02 * k + rng.normal(0, 0.01)
                    tag = name if e == EPOCHS[-1] else f"{name}@e{e}"
                    rows.append({"tag": tag, "model": name, "family": fam, "size": size, "augment": aug,
                                 "params": params, "epoch": e, "test_acc": acc})  # fmt: skip
    return pd.DataFrame(rows)


def synthetic_e2e(zoo: pd.DataFrame, rng, image_model: str, scale: float = 1.0) -> pd.DataFrame:
    frames = []
    images = [f"cifar10-test-{j:05d}" for j in range(N_IMAGES)]
    per_image = rng.lognormal(0, 1.0, N_IMAGES)  # shared image difficulty: pairs are correlated, as in real data
    for r in zoo.itertuples():
        level = scale * 0.5 * (1.3 if r.augment == "noaug" else 1.0) * (1 + FAMILIES.index(r.family) / 4)
        for g in ("translate_x", "rotate"):
            v = level * per_image * rng.lognormal(0, 0.3, N_IMAGES) * (0.7 if g == "rotate" else 1.0)
            frames.append(pd.DataFrame({"model": r.tag, "image": images, "generator": g, "mean_abs": v,
                                        "mean_sq": v**2 / 10, "image_model": image_model, "method": "forward",
                                        "correct": rng.random(N_IMAGES) < r.test_acc}))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def _save(root, run, table, experiment="e2e"):
    for model, t in table.groupby("model", sort=False):
        results.save(t, run, experiment, model, {"k": 1}, {**PROV, "weights": f"file:{model}.safetensors"}, root=root)


@pytest.fixture(scope="module")
def zoo_store(tmp_path_factory):
    rng = np.random.default_rng(0)
    tmp = tmp_path_factory.mktemp("zoo")
    zoo = synthetic_zoo(rng)
    (tmp / "zoo" / "cpu").mkdir(parents=True)
    zoo.to_csv(tmp / "zoo" / "cpu" / "zoo.csv", index=False)
    test = pd.concat([synthetic_e2e(zoo, rng, "bilinear"), synthetic_e2e(zoo, rng, "central", 0.5)])
    _save(tmp / "results", "cifar-zoo", test)
    finals = zoo[zoo["tag"] == zoo["model"]]
    _save(tmp / "results", "cifar-zoo-train", synthetic_e2e(finals, rng, "bilinear", 0.9))
    normalised = synthetic_e2e(zoo, rng, "bilinear").query("generator == 'translate_x'")
    normalised = normalised.assign(normalised=2 * normalised["mean_abs"], sensitivity=0.01)
    _save(tmp / "results", "cifar-zoo", normalised, "e2e-normalised")
    return tmp, zoo, test


def test_lee_vs_accuracy_fit_is_the_least_squares_fit_over_final_models(zoo_store):
    _, zoo, test = zoo_store
    fig = Z.zoo_lee_vs_accuracy(test[test.image_model == "bilinear"], zoo)
    pm = Z._joined(test[test.image_model == "bilinear"], zoo, "translate_x", "mean_abs")
    fin = pm[pm["final"]]
    assert len(fin) == 16 and len(pm) == 16 * len(EPOCHS)
    r2 = stats.linregress(fin["test_top1"], np.log10(fin["lee"])).rvalue ** 2
    assert f"R$^2$ = {r2:.2f} (n = 16)" in fig.axes[0].get_title()
    plt.close(fig)


def test_paired_augmentation_ratios_are_per_image_ratios_of_the_same_images(zoo_store):
    _, zoo, test = zoo_store
    bil = test[test.image_model == "bilinear"]
    pr = Z.paired_ratios(bil, zoo, "translate_x").set_index(["family", "size"])
    assert len(pr) == 8 and (pr["n"] == N_IMAGES).all()
    a = bil[(bil.model == "cifar-vit-m-aug") & (bil.generator == "translate_x")].set_index("image")["mean_abs"]
    b = bil[(bil.model == "cifar-vit-m-noaug") & (bil.generator == "translate_x")].set_index("image")["mean_abs"]
    assert pr.loc[("ViT", "m"), "median"] == pytest.approx(float(np.median(a / b)))
    lo, hi = pr.loc[("ViT", "m"), ["lo", "hi"]]
    assert lo < pr.loc[("ViT", "m"), "median"] < hi
    assert (pr["median"] < 1).all()  # the synthetic augmentation lowers the LEE by 1/1.3


def test_zoo_summary_has_one_row_per_final_model_with_its_medians(zoo_store):
    _, zoo, test = zoo_store
    summary = Z.zoo_summary(test, zoo)
    finals = zoo[zoo["tag"] == zoo["model"]]
    assert set(summary.index) == set(finals["tag"]) and (summary["epochs"] == EPOCHS[-1]).all()
    name = finals["tag"].iloc[3]
    d = test[(test.model == name) & (test.generator == "translate_x")]
    for im in ("bilinear", "central"):
        expected = d.loc[d.image_model == im, "mean_abs"].median()
        assert summary.loc[name, f"lee_{im}"] == pytest.approx(expected)
        assert summary.loc[name, f"lo_{im}"] <= expected <= summary.loc[name, f"hi_{im}"]
    assert summary.loc[name, "test_top1"] == pytest.approx(100 * finals.set_index("tag").loc[name, "test_acc"])


def test_every_zoo_figure_draws_from_the_store_in_the_house_style(zoo_store, monkeypatch):
    tmp, _, _ = zoo_store
    monkeypatch.setenv("LIEQ_ZOO", str(tmp / "zoo"))
    ctx = FigureContext(root=tmp / "results", out_dir=tmp / "figs", dpi=40)
    style.use_style()
    figs = {}
    for name in ("zoo_lee_vs_accuracy", "zoo_lee_through_training", "zoo_augmentation_effect",
                 "zoo_image_model_check", "zoo_train_vs_test"):  # fmt: skip
        spec = by_name(name)
        ctx.check_needs(spec)
        fig, data = spec.build(ctx)
        assert "16 models" in data or "80 models" in data, data
        fig.canvas.draw()
        figs[name] = fig
        if os.environ.get("LIEQ_SYNTHETIC_FIGURES"):
            style.save(fig, os.environ["LIEQ_SYNTHETIC_FIGURES"], name, dpi=110)
    assert "Spearman rho" in figs["zoo_image_model_check"].axes[0].get_title()
    training = figs["zoo_lee_through_training"].axes  # raw row and normalised row, one panel per family each
    assert len(training) == 8 and "normalised" in training[4].get_ylabel()
    seen = check_colours(figs)
    assert {"CNN", "ConvNeXt", "ViT", "Mixer"} <= set(seen)
    check_legends_clear(figs)
    check_text(figs)
    plt.close("all")


def test_zoo_figures_are_skipped_without_the_zoo_table(tmp_path, monkeypatch):
    monkeypatch.setenv("LIEQ_ZOO", str(tmp_path / "nowhere"))
    ctx = FigureContext(root=tmp_path / "results", out_dir=tmp_path / "figs", dpi=40)
    out = ctx.draw("zoo_lee_vs_accuracy")
    assert out.status == "skipped" and "cifar-zoo" in out.reason
