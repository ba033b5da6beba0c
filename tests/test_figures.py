"""Plotting functions and the figure index on small synthetic result tables (no torch needed except where noted)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from lieq import figures as F  # noqa: E402
from lieq import results  # noqa: E402
from lieq.figures import FIGURES, FigureContext  # noqa: E402

GENS = ["translate_x", "translate_y", "rotate", "saturate"]
MODELS = pd.DataFrame(
    {
        "model": ["cnn_a.x", "cnn_b.x", "cnn_c.x", "vit_a.x", "vit_b.x", "mixer_a.x"],
        "family": ["CNN", "CNN", "CNN", "ViT", "ViT", "Mixer"],
        "params": [5.0, 25.0, 60.0, 22.0, 86.0, 59.0],
        "pretrain_data": ["in1k", "in1k", "in21k", "in21k", "in1k", "in21k"],
        "training": ["", "distilled", "", "", "sam", ""],
    }
)


def e2e_table(models=None, gens=GENS, n_images=5, weights="pip:x", seed=0) -> pd.DataFrame:
    """LEE that decreases linearly with accuracy (exact relation per model, noise only across images)."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, m in enumerate(models if models is not None else MODELS["model"]):
        n_correct = 1 + i % n_images  # accuracy 20 .. 100 %
        for j in range(n_images):
            for g in gens:
                rows.append(
                    {"model": m, "image": f"img{j}", "generator": g, "weights": weights, "image_model": "bilinear",
                     "mean_abs": 0.2 - 0.03 * n_correct + 0.001 * rng.standard_normal(), "mean_sq": 1e-4,
                     "correct": j < n_correct, "run": "r", "experiment": "e2e", "data": "/x/imagenet-sample"}
                )  # fmt: skip
    return pd.DataFrame(rows)


def layer_table(models=("cnn_a.x", "vit_a.x"), gens=("translate_x", "rotate"), n_images=3) -> pd.DataFrame:
    cats = ["Conv", "Norm", "Activation", "Pool", "Conv", "Activation", "Linear/MLP"]
    rows = []
    for m in models:
        for g in gens:
            for j in range(n_images):
                for order, c in enumerate(cats):
                    rows.append(
                        {"model": m, "image": f"img{j}", "generator": g, "layer": f"l{order}", "category": c,
                         "order": order, "call": 0, "contribution": float(order + 1 + j), "weights": "pip:x",
                         "unattributed": 0.01, "image_model": "bilinear"}
                    )  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def test_figure_code_imports_no_torch():
    code = "import sys, lieq.figures, lieq.pipeline, lieq.results; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_per_model_mean_se_and_accuracy():
    df = e2e_table()
    pm = F.per_model(df, "rotate")
    sub = df[(df.model == "cnn_b.x") & (df.generator == "rotate")]
    row = pm[pm.model == "cnn_b.x"].iloc[0]
    assert row["lee"] == pytest.approx(sub.mean_abs.mean())
    assert row["se"] == pytest.approx(sub.mean_abs.std(ddof=1) / np.sqrt(len(sub)))
    assert row["top1"] == pytest.approx(100 * sub.correct.mean())
    assert row["n_images"] == 5


def test_lee_vs_accuracy_fit_is_the_least_squares_fit():
    df = e2e_table()
    fig = F.lee_vs_accuracy(df, MODELS)
    title = fig.axes[0].get_title()
    pm = F.per_model(df, "translate_x")
    r2 = np.corrcoef(pm["top1"], pm["lee"])[0, 1] ** 2
    assert f"R$^2$ = {r2:.3f}" in title
    assert "weights: pip" in title and "6 models x 5 images" in title
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert sorted(legend) == ["CNN", "Mixer", "ViT"]


def test_missing_family_and_generator_are_drawn_with_what_is_there():
    df = e2e_table(models=["cnn_a.x", "cnn_b.x", "cnn_c.x"], gens=["translate_x", "rotate"])
    fig = F.lee_vs_accuracy(df, MODELS)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["CNN"]
    fig = F.lee_vs_accuracy_by_generator(df, MODELS)
    visible = [ax.get_title().split("  (")[0] for ax in fig.axes if ax.get_visible()]
    assert visible == ["translation x", "rotation"]  # readable labels, never code names (issue 13)
    with pytest.raises(ValueError, match="no rows for generator 'translate_x'"):
        F.lee_vs_accuracy(df[df.generator == "rotate"], MODELS)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.drop(columns="mean_abs"), "missing column"),
        (lambda d: d.drop(columns="weights"), "missing column"),
        (lambda d: d.assign(mean_abs="x"), "non-finite or non-numeric"),
        (lambda d: d.assign(mean_abs=np.nan), "non-finite"),
        (lambda d: pd.concat([d, d]), "duplicated rows"),
        (lambda d: d.assign(weights=np.where(d.model == "cnn_a.x", "random:seed=0", "pip:x")), "mixes weights"),
        (lambda d: d.assign(image_model=np.where(d.model == "cnn_a.x", "central", "bilinear")), "mixes image_model"),
        (lambda d: d.iloc[0:0], "empty"),
    ],
)
def test_malformed_end_to_end_tables_fail_loudly(mutate, message):
    with pytest.raises(ValueError, match=message):
        F.lee_vs_accuracy(mutate(e2e_table()), MODELS)


def test_not_a_dataframe():
    with pytest.raises(ValueError, match="expected a pandas DataFrame"):
        F.lee_vs_accuracy([1, 2, 3])


def test_lee_by_group_needs_two_groups():
    df = e2e_table()
    fig = F.lee_by_group(df, MODELS, "pretrain_data")
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert sorted(lab.split("\n")[0] for lab in labels) == ["in1k", "in21k"]
    one = MODELS.assign(pretrain_data="in1k")
    with pytest.raises(ValueError, match="share pretrain_data"):
        F.lee_by_group(df, one, "pretrain_data")


def test_cumulative_layerwise_reaches_the_sum_of_mean_contributions():
    layers = layer_table()
    fig = F.cumulative_layerwise(layers, ["cnn_a.x", "vit_a.x"])
    ax = fig.axes[0]
    tops = [p.get_y() + p.get_height() for p in ax.patches]
    expected = (
        layers[(layers.model == "cnn_a.x") & (layers.generator == "translate_x")]
        .groupby("order")["contribution"]
        .mean()
    )
    # percent of the total (issue 13): the staircase ends at 100 %, each step is the layer's share of the sum
    assert max(tops) == pytest.approx(100.0)
    assert [p.get_height() for p in ax.patches] == pytest.approx(list(100 * expected / expected.sum()))
    assert len(ax.patches) == len(expected)
    with pytest.raises(ValueError, match="no layerwise rows for model 'nope'"):
        F.cumulative_layerwise(layers, ["nope"])
    with pytest.raises(ValueError, match="unknown layer categories"):
        F.cumulative_layerwise(layers.assign(category="Weird"), ["cnn_a.x"])
    with pytest.raises(ValueError, match="non-negative"):
        F.cumulative_layerwise(layers.assign(contribution=-1.0), ["cnn_a.x"])


def test_layer_shares_identical_across_generators_give_r_1():
    fig = F.layer_shares_by_generator(layer_table(), "cnn_a.x")
    assert "r = 1.00" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="at least two generators"):
        F.layer_shares_by_generator(layer_table(gens=("translate_x",)), "cnn_a.x")


def test_random_vs_trained_rejects_swapped_sources():
    trained = e2e_table(models=["cnn_a.x", "vit_a.x"])
    rnd = e2e_table(models=["cnn_a.y", "vit_a.y"], weights="random:seed=0", n_images=1)
    fig = F.random_vs_trained(trained, rnd)
    assert "2 architectures" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="random-init table has weights pip"):
        F.random_vs_trained(trained, trained)


def test_image_model_sensitivity_rank_correlation():
    a = e2e_table()
    b = a.assign(image_model="central", mean_abs=a.mean_abs * 0.3)  # same ranking, smaller values
    fig = F.image_model_sensitivity(pd.concat([a, b]))
    assert "bicubic (central) 0.30" in fig.axes[0].get_title()
    heat = fig.axes[1]
    values = [float(t.get_text()) for t in heat.texts]
    assert values == pytest.approx([1.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="only one image model"):
        F.image_model_sensitivity(a)


def test_lee_vs_baselines_and_ood():
    e2e = e2e_table().assign(mean_sq=lambda d: d.mean_abs**2)
    rot = e2e[e2e.generator == "rotate"]
    base = rot[["model", "image", "weights"]].assign(metric="eq_r", mse=rot["mean_sq"].to_numpy() * 3)  # monotone
    fig = F.lee_vs_baselines(e2e, base)
    assert "EQ-R vs LEE(rotation)" in fig.axes[0].get_title()
    assert "images 1.00, models 1.00 (n = 6)" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="no known baseline metric"):
        F.lee_vs_baselines(e2e, base.assign(metric="psnr_magic"))
    ood = e2e.assign(mean_abs=e2e.mean_abs * 2)
    fig = F.ood_vs_id(e2e, ood)
    assert "median ratio 2.00" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="different weights"):
        F.ood_vs_id(e2e, ood.assign(weights="random:seed=0"))


def test_flow_fields_draw_every_generator_of_the_conventions():
    from lieq import conventions

    fig = F.generator_flow_fields()
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    # a new generator cannot drop out of the figure (titles: the readable labels of lieq.figures.style)
    assert titles == [F.style.label(g) for g in conventions.GENERATORS]
    assert titles[-1] == "saturation"
    with pytest.raises(ValueError, match="unknown generator"):
        F.generator_flow_fields(["warp_drive"])


def test_primer_figures_validate_the_cache():
    with pytest.raises(ValueError, match="primer cache lacks"):
        F.lie_derivative_diagram({"image": np.zeros((4, 4, 3))})


def _store(root, run, experiment, table):
    prov = dict(weights="", data="", seed=0, device="cpu", lieq_version="0", git_commit="x", torch_version="-",
                timm_version="-")  # fmt: skip
    for model, t in table.groupby("model"):
        own = t.drop(columns=[c for c in ("run", "experiment", "data") if c in t])
        results.save(own.drop(columns="weights"), run, experiment, model, {"k": 1},
                     {**prov, "weights": t.weights.iloc[0], "data": "imagenet-sample"}, root=root)  # fmt: skip


def test_figure_index_draws_what_the_store_supports_and_skips_the_rest(tmp_path):
    root = tmp_path / "results"
    _store(root, "main", "e2e", e2e_table())
    _store(root, "main", "layerwise", layer_table())
    cat = tmp_path / "models.csv"
    MODELS.rename(columns={"model": "timm_tag"}).to_csv(cat, index=False)
    ctx = FigureContext(run="main", root=root, out_dir=tmp_path / "figs", catalogue=cat, dpi=40)
    outcomes = {o.name: o for o in ctx.draw_all()}
    drawn = {n for n, o in outcomes.items() if o.status == "drawn"}
    assert {"fig1_right_lee_vs_accuracy", "fig1_centre_cumulative_layerwise", "lee_vs_params",
            "generator_flow_fields", "lee_by_pretraining_data"} <= drawn  # fmt: skip
    assert "needs >= 20" in outcomes["fig4c_layer_shares_by_generator"].reason  # 5 images per model: skipped
    assert outcomes["fig1_left_lie_derivative"].status == "skipped"
    assert "primer" in outcomes["fig1_left_lie_derivative"].reason
    assert "random-init" in outcomes["random_vs_trained"].reason
    for name in drawn:
        assert (tmp_path / "figs" / f"{name}.pdf").stat().st_size > 1000
        assert (tmp_path / "figs" / f"{name}.png").is_file()
    assert not (tmp_path / "figs" / "fig1_left_lie_derivative.pdf").exists()
    readme = ctx.write_readme().read_text()
    for spec in FIGURES:
        assert f"`{spec.name}`" in readme
    assert re.search(r"fig1_right_lee_vs_accuracy.*run `main` / e2e; weights: pip; 6 models x 5 images", readme)
    index = json.loads((tmp_path / "figs" / "index.json").read_text())
    assert set(index) == {s.name for s in FIGURES}


def test_notebook_05_is_generated_from_the_declarations():
    """notebooks/05_figures.py is `python -m lieq.figures notebook`: one show() cell per registered figure."""
    from pathlib import Path

    from lieq.figures import registry

    source = (Path(__file__).resolve().parents[1] / "notebooks" / "05_figures.py").read_text()
    assert source == registry.notebook_source(), "run: python -m lieq.figures notebook && python -m lieq.pipeline sync"
    assert [line for line in source.splitlines() if line.startswith("show(")] == [f'show("{s.name}")' for s in FIGURES]
    assert len({s.name for s in FIGURES}) == len(FIGURES)
    assert all(s.caption.count(". ") >= 1 and s.paper for s in FIGURES)  # two-sentence captions, a paper figure


def test_a_figure_below_its_declared_minimum_is_skipped(tmp_path):
    from lieq.figures import registry

    root = tmp_path / "results"
    _store(root, "main", "e2e", e2e_table(n_images=3))
    ctx = FigureContext(run="main", root=root, out_dir=tmp_path / "figs", dpi=40)
    calls = []
    spec = registry.FigureSpec("probe", "new", "A probe. Never drawn.", registry.Needs("main", "e2e", min_images=20),
                               lambda c: calls.append(c), "other")  # fmt: skip
    with pytest.raises(registry.MissingData, match="<= 3 images per model; the figure needs >= 20"):
        ctx.check_needs(spec)
    few = registry.FigureSpec("probe", "new", "A probe.", registry.Needs("main", "e2e", min_models=7), print, "other")
    with pytest.raises(registry.MissingData, match="has 6 models; the figure needs >= 7"):
        ctx.check_needs(few)
    assert not calls
