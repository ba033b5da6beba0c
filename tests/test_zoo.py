"""Model catalogue (lieq/catalogue/models.csv) and presets: explicit tags that resolve, and the traps of
docs/conventions.md section 7."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest
import timm

from lieq import zoo

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO.parent / "shared" / "paper"
TIMM_RESULTS = REPO.parent / "shared" / "data" / "timm-results"


@pytest.fixture(scope="module")
def cat() -> pd.DataFrame:
    return zoo.catalogue()


@pytest.fixture(scope="module")
def by_name(cat) -> pd.DataFrame:
    return cat[cat.name_2022 != ""].set_index("name_2022")


def _default_tag(arch: str) -> str:
    return f"{arch}.{timm.models.get_pretrained_cfg(arch).tag}"


def test_catalogue_covers_the_paper_and_presets(cat):
    paper = cat[cat.e2e_all == 1]
    assert len(paper) == 483 and paper.name_2022.is_unique
    sizes = {"paper-core": 83, "layerwise-core": 97, "layerwise-minimal": 6, "embedded": 3}
    for name, n in sizes.items():
        gone = len(zoo.removed(name))
        assert len(zoo.preset(name)) + gone == n, name
    assert len(zoo.preset("paper")) + len(zoo.removed("paper")) == 483
    assert zoo.preset("embedded") == [f"tf_efficientnet_lite{i}.in1k" for i in range(3)]
    assert all(t.startswith(("test_", "resnet10t")) for t in zoo.preset("smoke"))
    if PAPER.is_dir():
        sets = pd.read_csv(PAPER / "paper_model_sets.csv").set_index("name_2022")
        ours = paper.set_index("name_2022")[sets.columns]
        pd.testing.assert_frame_equal(ours.loc[sets.index], sets, check_dtype=False)


def test_every_tag_is_explicit_and_resolves(cat):
    """Every timm_tag is ``arch.tag`` and known to the installed timm, with the catalogue's input size and classes."""
    usable = cat[cat.timm_tag != ""]
    for row in usable.itertuples():
        assert "." in row.timm_tag, row.timm_tag
        cfg = timm.models.get_pretrained_cfg(row.timm_tag)
        assert cfg is not None and timm.is_model(row.arch), row.timm_tag
        assert (cfg.input_size[-1], cfg.num_classes) == (int(row.input_size), int(row.num_classes)), row.timm_tag
    gone = cat[cat.timm_tag == ""]
    assert (gone.status == "removed").all() and (gone.status_reason.str.len() > 10).all()
    assert set(cat.family) == {"CNN", "ViT", "Mixer"}
    assert (cat.arch_group != "other").all()
    assert usable.params.astype(float).gt(0).all()


def test_removed_names_are_kept_with_a_reason(by_name):
    """Names without a model in today's timm stay in the catalogue (never dropped), with the reason."""
    assert by_name.loc["gluon_xception65", "status"] == "removed"
    row = by_name.loc["ig_resnext101_32x48d"]
    assert row.status == "removed" and "resnext101_32x48d" in row.status_reason
    assert not timm.is_model("resnext101_32x48d")
    with pytest.raises(zoo.ZooError, match="not available"):
        zoo.resolve_models("ig_resnext101_32x48d")


def test_trap_bare_names_load_newer_default_weights(by_name):
    """Trap 1: a bare name now loads timm's first (newer) tag; the catalogue pins the 2022 weights instead."""
    expected = {
        "vit_base_patch16_224": "vit_base_patch16_224.augreg_in21k_ft_in1k",
        "resnet34": "resnet34.bt_in1k",
        "efficientnet_b1": "efficientnet_b1.ft_in1k",
        **{f"tf_efficientnet_b{i}": f"tf_efficientnet_b{i}.aa_in1k" for i in (0, 1, 2, 3, 4, 6)},
        "tf_efficientnet_b5": "tf_efficientnet_b5.ra_in1k",
        "tf_efficientnet_b7": "tf_efficientnet_b7.ra_in1k",
    }
    for name, tag in expected.items():
        row = by_name.loc[name]
        assert row.timm_tag == tag and row.tag_verified, name
        assert _default_tag(name) != tag, f"{name}: timm's default changed; the trap no longer applies"
        assert zoo.resolve_models(name) == [tag]


def test_distinct_2022_models_get_distinct_tags(by_name):
    """A bare 2022 name without extra data must not fall on timm's newer in21k/in12k default (e.g. ConvNeXt), which
    would merge it with its ``_in22ft1k`` sibling."""
    usable = by_name[by_name.timm_tag != ""]
    assert usable.timm_tag.is_unique, usable.timm_tag[usable.timm_tag.duplicated()].tolist()
    for size in ("tiny", "small", "base", "large"):
        assert by_name.loc[f"convnext_{size}", "timm_tag"] == f"convnext_{size}.fb_in1k"
    assert by_name.loc["convnext_base_in22ft1k", "timm_tag"] == "convnext_base.fb_in22k_ft_in1k"


def test_trap_ig_resnext_deprecation_shim(by_name):
    """Trap 2: timm's shim maps ig_resnext101_32x16d/32x32d/32x48d all to the 32x8d weights; we keep the widths."""
    for width in ("16", "32"):
        assert by_name.loc[f"ig_resnext101_32x{width}d", "timm_tag"] == f"resnext101_32x{width}d.fb_wsl_ig1b_ft_in1k"
        assert "32x8d" in by_name.loc[f"ig_resnext101_32x{width}d", "timm_status_2022_map"]
    assert by_name.loc["ig_resnext101_32x8d", "timm_tag"] == "resnext101_32x8d.fb_wsl_ig1b_ft_in1k"
    params = by_name.loc[[f"ig_resnext101_32x{w}d" for w in (8, 16, 32)], "params"].astype(float)
    assert params.is_monotonic_increasing and params.is_unique


def test_trap_sam_names_that_never_existed(by_name):
    """Trap 3: vit_base_patch{16,32}_sam_224 never existed; the SAM weights are the ``.sam_in1k`` tags."""
    for patch in ("16", "32"):
        name = f"vit_base_patch{patch}_sam_224"
        assert not timm.is_model(name)
        row = by_name.loc[name]
        assert row.timm_tag == f"vit_base_patch{patch}_224.sam_in1k" and row.status == "renamed"
        assert "sam" in row.training


def test_trap_mixer_in21k_heads(by_name):
    """Trap 4: the 2022 ``mixer_*_in21k`` models have the 21,843-class ImageNet-21k head."""
    for size in ("b", "l"):
        row = by_name.loc[f"mixer_{size}16_224_in21k"]
        assert row.timm_tag == f"mixer_{size}16_224.goog_in21k" and int(row.num_classes) == 21843
        assert timm.models.get_pretrained_cfg(row.timm_tag).num_classes == 21843
        assert row.family == "Mixer" and row.pretrain_data == "in21k"
    assert int(by_name.loc["vit_base_patch16_224_miil", "num_classes"]) == 1000


def test_metadata_columns(by_name):
    assert by_name.loc["tf_efficientnet_b0_ns", "pretrain_data"] == "jft300m"
    assert by_name.loc["ssl_resnet50", "pretrain_data"] == "yfcc100m"
    assert by_name.loc["ig_resnext101_32x8d", "pretrain_data"] == "ig1b"
    assert "distilled" in by_name.loc["deit_base_distilled_patch16_224", "training"]
    assert "adversarial" in by_name.loc["adv_inception_v3", "training"]
    assert "advprop" in by_name.loc["tf_efficientnet_b0_ap", "training"]
    assert by_name.loc["resnet50", "family"] == "CNN" and by_name.loc["swin_tiny_patch4_window7_224", "family"] == "ViT"
    assert by_name.loc["convnext_tiny", "arch_group"] == "ConvNeXt"
    top1 = by_name.timm_top1
    assert top1.notna().sum() > 400 and top1.dropna().between(50, 92).all()
    assert abs(float(by_name.loc["tf_efficientnet_lite0", "timm_top1"]) - 75) < 1.5


def test_resolve_models_mixes_presets_names_and_tags():
    tags = zoo.resolve_models("embedded, resnet34 ,test_vit.r160_in1k,tf_efficientnet_lite0.in1k")
    assert tags == [*zoo.preset("embedded"), "resnet34.bt_in1k", "test_vit.r160_in1k"]
    with pytest.raises(zoo.ZooError, match="unknown model"):
        zoo.resolve_models("no_such_model")
    with pytest.raises(zoo.ZooError, match="unknown tag"):
        zoo.resolve_models("resnet34.no_such_tag")
    with pytest.raises(zoo.ZooError, match="unknown preset"):
        zoo.preset("nope")


@pytest.mark.skipif(not (PAPER.is_dir() and TIMM_RESULTS.is_dir()), reason="../shared/paper or timm-results absent")
def test_catalogue_script_regenerates_committed_rows(tmp_path, cat):
    """The generator is rerunnable: on a subset of the paper's names it reproduces the committed rows."""
    spec = importlib.util.spec_from_file_location("make_catalogue", REPO / "scripts" / "make_catalogue.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    names = ["resnet34", "mixer_b16_224_in21k", "ig_resnext101_32x48d", "xcit_nano_12_p16_224_dist", "mixnet_xxl"]
    for f in ("paper_model_sets.csv", "models_2022_to_timm.csv"):
        table = pd.read_csv(PAPER / f, keep_default_na=False)
        table[table.name_2022.isin(names)].to_csv(tmp_path / f, index=False)
    fresh = mod.build(tmp_path, TIMM_RESULTS, download=False)
    fresh.to_csv(tmp_path / "models.csv", index=False)
    fresh = zoo.catalogue(tmp_path / "models.csv").set_index("name_2022").loc[names]
    mine = cat.set_index("name_2022").loc[names]
    cols = [c for c in fresh.columns if c not in ("e2e_all", "e2e_core", "layerwise_core", "layerwise_minimal")]
    pd.testing.assert_frame_equal(fresh[cols], mine[cols], check_dtype=False)
