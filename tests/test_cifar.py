"""The CIFAR-10 ResNets: architecture, strict checkpoint loading, accuracy on the JPEG test images, LEE."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lieq.cifar import (
    CheckpointError,
    cifar_resnet,
    lee_vs_depth,
    load_checkpoint,
    load_cifar_folder,
    recalibration_split,
)
from lieq.cifar import accuracy as top1


@pytest.fixture(scope="module")
def cifar(shared_data):
    weights, images = shared_data / "cifar10-resnet", shared_data / "cifar10-test"
    if not weights.is_dir() or not images.is_dir():
        pytest.skip("CIFAR-10 checkpoints or test images are absent from ../shared/data")
    x, y, ids = load_cifar_folder(images)
    return weights, x, y, ids


@pytest.mark.parametrize("depth, params", [(20, 269_722), (32, 464_154), (44, 658_586), (56, 853_018)])
def test_architecture_sizes(depth, params):
    model, source = cifar_resnet(depth, "random", seed=1)
    assert source == "random:seed=1"
    assert sum(p.numel() for p in model.parameters()) == params  # He et al.: 0.27M / 0.46M / 0.66M / 0.85M
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_bad_checkpoints_are_refused(tmp_path):
    model, _ = cifar_resnet(20)
    with pytest.raises(CheckpointError, match="no resnet20"):
        load_checkpoint(model, tmp_path)
    other, _ = cifar_resnet(32)
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in other.state_dict().items()}}, tmp_path / "resnet20-deadbeef.th"
    )
    with pytest.raises(CheckpointError, match="does not fit"):
        load_checkpoint(model, tmp_path)


def test_resnets_load_strictly_and_reach_80_percent(cifar):
    """ResNet-20 on all 10,000 JPEG test images; 32/44/56 on a seeded 2,000-image subset (CPU time)."""
    weights, x, y, _ = cifar
    assert len(x) == 10_000 and x.shape[1:] == (3, 32, 32)
    torch.manual_seed(0)
    subset = torch.randperm(len(x))[:2000]
    for depth in (20, 32, 44, 56):
        model, source = cifar_resnet(depth, weights)
        assert source.startswith("file:") and f"resnet{depth}-" in source
        images, labels = (x, y) if depth == 20 else (x[subset], y[subset])
        acc = top1(model, images, labels, batch_size=500)
        assert acc >= 0.80, (depth, acc)
        if depth == 20:
            assert acc == pytest.approx(0.8103, abs=0.002)  # measured on the full JPEG test set


def test_lee_table(cifar):
    weights, x, y, ids = cifar
    table = lee_vs_depth(x[:4], y[:4], ids[:4], depths=(20,), weights=weights, generators="translate_x,rotate")
    assert (
        len(table) == 8
        and (table.mean_abs > 0).all()
        and set(table.weights) == {f"file:{weights}/resnet20-12fca82f.th"}
    )
    rand = lee_vs_depth(x[:2], y[:2], ids[:2], depths=(20,), seeds=(0, 1), generators="translate_x")
    assert list(rand.seed) == [0, 0, 1, 1] and rand.mean_abs.nunique() == 4


def test_bn_recalibration_keeps_random_init_bounded():
    """Default running statistics let the random-init ResNet-56's logits explode; recalibrated ones stay O(1)."""
    torch.manual_seed(0)
    x, calib = torch.randn(32, 3, 32, 32), torch.randn(200, 3, 32, 32)
    plain, _ = cifar_resnet(56, "random", seed=0)
    recal, source = cifar_resnet(56, "random+bnrecal", seed=0, recal_images=calib)
    assert source == "random+bnrecal:seed=0" and not recal.training
    with torch.no_grad():
        s_plain, s_recal = plain(x).std().item(), recal(x).std().item()
    assert torch.isfinite(torch.tensor(s_recal)) and 0.1 < s_recal < 20, s_recal
    assert s_plain > 100 * s_recal, (s_plain, s_recal)
    # same initialisation: only the BatchNorm buffers differ, and momenta are restored
    p_plain, p_recal = dict(plain.named_parameters()), dict(recal.named_parameters())
    assert all(torch.equal(p_plain[k], p_recal[k]) for k in p_plain)
    assert all(m.momentum == 0.1 for m in recal.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with pytest.raises(ValueError, match="recal_images"):
        cifar_resnet(20, "random+bnrecal")


def test_recalibration_split_is_disjoint_and_keeps_the_evaluated_images():
    ev, cal = recalibration_split(10_000, 100, 500, seed=0)
    assert len(ev) == 100 and len(cal) == 500 and not set(ev) & set(cal)
    assert list(ev) == list(np.random.default_rng(0).permutation(10_000)[:100])  # the images measured before
    with pytest.raises(ValueError):
        recalibration_split(10, 8, 5)


def test_lee_table_recalibrated():
    torch.manual_seed(1)
    x = torch.randn(2, 3, 32, 32)
    t = lee_vs_depth(x, torch.tensor([0, 1]), ["a", "b"], (20,), "random+bnrecal", (0,), "translate_x",
                     recal_images=torch.randn(50, 3, 32, 32))  # fmt: skip
    assert set(t.weights) == {"random+bnrecal:seed=0"} and (t.mean_abs > 0).all()


def test_cifar_studies_through_the_runner(cifar, tmp_path):
    """``cifar-lee`` / ``cifar-accuracy`` are runner experiments with their own models: the stored rows equal the
    direct computation on the same images (the recalibration split's evaluated images), with the weights source as
    provenance, and a second sweep is skipped."""
    from lieq import results
    from lieq.runner import run_sweep

    weights, x, y, ids = cifar
    data = str(weights.parent / "cifar10-test")
    kw = dict(data=data, run="c", root=tmp_path, progress=False)
    s = run_sweep("cifar-lee", "resnet20", weights=f"file:{weights}", n_images=3, config={"generators": "rotate"}, **kw)
    assert s.computed == ["resnet20"] and not s.failed
    again = run_sweep("cifar-lee", "resnet20", weights=f"file:{weights}", n_images=3, config={"generators": "rotate"},
                      **kw)  # fmt: skip
    assert again.skipped == ["resnet20"]
    stored = results.load("c", "cifar-lee", root=tmp_path)
    order, _ = recalibration_split(len(x), 3, 0)
    direct = lee_vs_depth(x[order], y[order], [ids[i] for i in order], (20,), weights, generators="rotate")
    assert list(stored.image) == list(direct.image)
    np.testing.assert_allclose(stored.mean_abs, direct.mean_abs, rtol=1e-6)
    assert set(stored.weights) == set(direct.weights) and set(stored.depth) == {20}
    with pytest.raises(ValueError, match="has no model 'resnet18'"):
        run_sweep("cifar-lee", "resnet18", **kw)
    acc = run_sweep("cifar-accuracy", "resnet20", weights="random", **kw)
    assert "trained checkpoints" in acc.failed["resnet20"]
