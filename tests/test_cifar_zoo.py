"""The CIFAR-10 zoo (lieq.cifar_zoo): the table, training, exact resume, stored accuracy, engines on every family."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from lieq import cifar_zoo as cz
from lieq.attribution import layerwise
from lieq.engine import lie_derivative
from lieq.image_model import GENERATORS
from lieq.metrics import SoftmaxClassifier
from lieq.weights import create_model

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ALL = list(GENERATORS)
#: A few-batch recipe: 3 epochs of 3 batches of 16 images, checkpoints after every epoch.
TINY = cz.Setting("tiny", n_train=None, epochs=3, checkpoints=(1, 2, 3), batch_size=16, lr=3e-3, warmup_epochs=1)


def synthetic(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images whose class sets the mean colour (learnable in a few steps), plus noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 10
    palette = torch.rand(10, 3, generator=g) * 200 + 20
    x = palette[y][:, None, None, :] + 25 * torch.randn(n, 32, 32, 3, generator=g)
    return x.clamp(0, 255).to(torch.uint8), y


TRAIN, TEST = synthetic(48, 0), synthetic(40, 1)
NAME = "cifar-resnet-s-aug"  # BatchNorm (running statistics stored and reloaded) and augmentation


def small(family: str) -> torch.nn.Module:
    """The family's small model, random, made non-degenerate: timm zero-initialises some heads, the last BatchNorm
    of each residual block (ResNet) and sets layer scales to 1e-6 (ConvNeXt); those are set to normal scales."""
    torch.manual_seed(0)
    model = cz.build_model(cz.ZOO[f"cifar-{family}-s-aug"])
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("gamma") or (family == "resnet" and name.endswith("bn2.weight")):
                p.fill_(1.0)
    torch.nn.init.normal_(model.get_classifier().weight, std=0.2)
    return model.eval()


def test_table_varies_family_size_and_augmentation_independently():
    combos = {(e.family, e.size, e.augment) for e in cz.ZOO.values()}
    assert len(combos) == len(cz.ZOO) == len(cz.FAMILIES) * 2 * len(cz.AUGMENTATIONS)
    for fam in cz.FAMILIES:
        with torch.device("meta"):  # parameter counts only
            sizes = [cz.n_params(cz.build_model(cz.ZOO[f"cifar-{fam}-{s}-noaug"])) for s in ("s", "m")]
        assert 2e5 <= sizes[0] < sizes[1] <= 2e6, (fam, sizes)
    for s in cz.SETTINGS.values():
        assert s.checkpoints[-1] == s.epochs and s.optimizer == "adamw"


@pytest.mark.parametrize("family", cz.FAMILIES)
def test_family_builds_and_runs_at_32px(family):
    model = small(family)
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    assert model.pretrained_cfg["input_size"] == (3, 32, 32)
    assert cz.parse_name(f"cifar-{family}-m-noaug@e4") == (cz.ZOO[f"cifar-{family}-m-noaug"], 4)


def test_augment_batch_is_a_shift_and_a_flip():
    x = torch.randint(0, 256, (3, 32, 32, 3), dtype=torch.uint8)
    centre = torch.full((3, 2), cz.PAD)
    no = torch.zeros(3, dtype=torch.bool)
    assert torch.equal(cz.augment_batch(x, centre, no), x)
    assert torch.equal(cz.augment_batch(x, centre, ~no), x.flip(2))
    down = cz.augment_batch(x, torch.tensor([[0, cz.PAD]] * 3), no)  # crop 4 px higher: content moves down 4 px
    assert torch.equal(down[:, 4:], x[:, :-4]) and (down[:, :4] == 0).all()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The zoo folder of one uninterrupted tiny training of :data:`NAME`."""
    root = tmp_path_factory.mktemp("zoo")
    cz.train_model(NAME, TINY, root, TRAIN, TEST, progress=False)
    return root


def test_training_lowers_the_loss(trained):
    before = cz.evaluate(cz.load_model(NAME, "random")[0], *TRAIN)[1]  # the same seed: the initialisation
    model, _ = cz.load_model(NAME, f"file:{trained / 'tiny' / 'final' / f'{NAME}.safetensors'}")
    after = cz.evaluate(model, *TRAIN)[1]
    meta = json.loads((trained / "tiny" / "meta" / f"{NAME}.json").read_text())
    assert meta["done"] and after < 0.9 * before, (before, after)
    assert meta["history"][-1]["train_loss"] < meta["history"][0]["train_loss"]


def test_resume_gives_the_same_weights_and_skips_finished(trained, tmp_path):
    part = cz.train_model(NAME, TINY, tmp_path, TRAIN, TEST, stop_after=1, progress=False)  # killed after epoch 1
    assert not part["done"] and len(part["history"]) == 1
    assert not (tmp_path / "tiny" / "final").exists()
    cz.train_model(NAME, TINY, tmp_path, TRAIN, TEST, progress=False)  # resumes at epoch 2
    for rel in (f"final/{NAME}.safetensors", f"checkpoints/{NAME}@e2.safetensors"):
        a, b = load_file(str(trained / "tiny" / rel)), load_file(str(tmp_path / "tiny" / rel))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), rel
    sa = torch.load(trained / "tiny" / "state" / f"{NAME}.pt", weights_only=False)
    sb = torch.load(tmp_path / "tiny" / "state" / f"{NAME}.pt", weights_only=False)
    assert all(torch.equal(sa["model"][k], sb["model"][k]) for k in sa["model"])  # fp32 weights, not only fp16
    assert sa["history"][-1]["train_loss"] == sb["history"][-1]["train_loss"]
    final = tmp_path / "tiny" / "final" / f"{NAME}.safetensors"
    stamp = final.stat().st_mtime_ns
    assert cz.train_model(NAME, TINY, tmp_path, TRAIN, TEST, progress=False)["done"]
    assert final.stat().st_mtime_ns == stamp  # finished: skipped
    assert not torch.are_deterministic_algorithms_enabled()  # process-wide settings restored


def test_loaded_weights_reproduce_the_recorded_accuracy(trained):
    meta = json.loads((trained / "tiny" / "meta" / f"{NAME}.json").read_text())
    recorded = {h["epoch"]: h["test_acc"] for h in meta["history"]}
    for tag, epoch in ((NAME, 3), (f"{NAME}@e1", 1), (f"{NAME}@e2", 2)):
        model, source = create_model(tag, f"zoo:{trained / 'tiny'}")  # through lieq.weights
        assert source.startswith("file:") and not model.training
        assert cz.evaluate(model, *TEST)[0] == recorded[epoch], tag
    assert (trained / "tiny" / "zoo.csv").is_file()


@pytest.mark.skipif(not (DATA / "cifar10-test").is_dir(), reason="no CIFAR-10 test folder")
def test_folder_loader(tmp_path):
    for c in cz.CIFAR10_CLASSES:
        (tmp_path / c).mkdir()
        for f in sorted((DATA / "cifar10-test" / c).iterdir())[:2]:
            shutil.copy(f, tmp_path / c / f.name)
    x, y, src = cz.load_cifar10("test", str(tmp_path))
    assert x.shape == (20, 32, 32, 3) and x.dtype == torch.uint8 and src == f"folder:{tmp_path.resolve()}"
    assert y.tolist() == [i for i in range(10) for _ in range(2)]


@pytest.mark.parametrize("family", cz.FAMILIES)
def test_forward_engine_matches_double_backward(family):
    f = SoftmaxClassifier(small(family))
    x = cz.normalise(TEST[0][:1])
    fwd = lie_derivative(f, x, ALL, method="forward")
    ref = lie_derivative(f, x, ALL, method="double_backward")
    assert fwd.shape == (len(ALL), 1, 10)
    # relative to the generator's own size, or to the mean size where a generator leaves the output (nearly) invariant:
    # the ConvNeXt stem (bias-free at initialisation) followed by a LayerNorm makes it exactly invariant to saturate
    floor = ref.norm() / len(ALL)
    for g, name in enumerate(ALL):
        assert float((fwd[g] - ref[g]).norm() / torch.maximum(ref[g].norm(), floor)) < 1e-5, name


@pytest.mark.parametrize("family", cz.FAMILIES)
def test_layerwise_attribution_runs(family):
    df = layerwise(small(family), cz.normalise(TEST[0][:1]), "translate_x", probes=4)
    assert len(df) > 0 and df["contribution"].notna().all() and (df["e2e"] > 0).all()


def test_zoo_names_and_presets_resolve_for_the_runner():
    from lieq.zoo import ZooError, resolve_models

    finals = resolve_models("cifar-zoo")
    assert finals == list(cz.ZOO) and len(finals) == 16
    every = resolve_models("cifar-zoo-checkpoints")
    assert len(every) == 16 * len(cz.SETTINGS["cpu"].checkpoints) and "cifar-vit-s-aug@e4" in every
    assert resolve_models("cifar-vit-s-aug@e2,resnet18.a1_in1k") == ["cifar-vit-s-aug@e2", "resnet18.a1_in1k"]
    with pytest.raises(ZooError, match="unknown zoo model"):
        resolve_models("cifar-vit-xl-aug")


def test_runner_measures_a_zoo_model_on_cifar_images_with_its_accuracy(tmp_path):
    from lieq.paths import local_data
    from lieq.results import load
    from lieq.runner import run_sweep

    folder = local_data("cifar10-test")
    if folder is None:
        pytest.skip("no CIFAR-10 test folder in ../shared/data")
    s = run_sweep("e2e", "cifar-mixer-s-noaug", weights="random", data=f"cifar10:{folder}", n_images=3, run="z",
                  root=tmp_path, progress=False, config={"generators": "translate_x"})  # fmt: skip
    assert s.computed == ["cifar-mixer-s-noaug"], s.report()
    table = load("z", "e2e", root=tmp_path)
    assert len(table) == 3 and table["label"].between(0, 9).all() and table["correct"].notna().all()
    assert set(table["input_size"]) == {32}  # CIFAR images at the zoo's own 32 px, not upsampled


def test_normalised_experiment_agrees_with_e2e_on_the_raw_lee(tmp_path):
    """``e2e-normalised`` is the same Lie derivative as ``e2e`` (same model, same images: the raw ``mean_abs``
    agrees), with the unit-free ratio beside it (its analytic value is tested in test_any_model)."""
    from lieq.paths import local_data
    from lieq.results import load
    from lieq.runner import run_sweep

    folder = local_data("cifar10-test")
    if folder is None:
        pytest.skip("no CIFAR-10 test folder in ../shared/data")
    kw = dict(weights="random", data=f"cifar10:{folder}", n_images=3, run="z", root=tmp_path, progress=False)
    run_sweep("e2e", "cifar-convnext-s-noaug", config={"generators": "translate_x"}, **kw)
    run_sweep("e2e-normalised", "cifar-convnext-s-noaug", config={"sensitivity_draws": 2}, **kw)
    raw, norm = load("z", "e2e", root=tmp_path), load("z", "e2e-normalised", root=tmp_path)
    both = raw.merge(norm, on=["image", "generator"], suffixes=("", "_n"))
    assert len(both) == 3 and np.allclose(both.mean_abs, both.mean_abs_n, rtol=1e-5)
    assert np.isfinite(both.normalised).all() and (both.normalised > 0).all() and (both.sensitivity > 0).all()
