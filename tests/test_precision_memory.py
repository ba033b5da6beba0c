"""Measurement precision (strict fp32 by default, TF32 / bf16 on request, labelled and keyed apart) and the engine's
memory plan (tangent chunks from free memory; out-of-memory retries that give the unchunked result)."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from lieq import engine, memory_plan, results
from lieq.engine import lie_derivative
from lieq.precision import measurement_precision, precision_settings, use_precision


def _small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1), nn.BatchNorm2d(6), nn.GELU(), nn.Conv2d(6, 8, 3, stride=2, padding=1),
        nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 5), nn.Softmax(-1),
    ).eval()  # fmt: skip


class FlagRecorder(nn.Module):
    """Records the float32 settings in effect while the network runs."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.seen: list[dict] = []

    def forward(self, x):
        self.seen.append({**precision_settings(), "autocast_cpu": torch.is_autocast_enabled("cpu")})
        return self.inner(x)


@pytest.fixture
def tf32_on_outside():
    """The process starts with TF32 allowed (PyTorch's cuDNN default), and gets it back after the test."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.get_float32_matmul_precision())  # fmt: skip
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
    torch.set_float32_matmul_precision(saved[2])


def test_measurements_run_without_tf32_and_restore_the_settings(tf32_on_outside):
    model = FlagRecorder(_small_model())
    x = torch.randn(2, 3, 12, 12)
    before = precision_settings()
    for method in ("forward", "double_backward"):
        lie_derivative(model, x, ["translate_x", "rotate"], method=method)
    assert model.seen and all(
        not s["matmul_allow_tf32"] and not s["cudnn_allow_tf32"] and s["float32_matmul_precision"] == "highest"
        for s in model.seen
    )
    assert precision_settings() == before and before["cudnn_allow_tf32"]
    model.seen.clear()
    with use_precision("tf32"):
        lie_derivative(model, x, ["translate_x"])
    assert all(s["matmul_allow_tf32"] and s["cudnn_allow_tf32"] for s in model.seen)
    with pytest.raises(ZeroDivisionError), measurement_precision("cpu", "fp32"):
        assert not torch.backends.cudnn.allow_tf32
        raise ZeroDivisionError
    assert precision_settings() == before  # restored after an exception too


def test_bf16_runs_the_network_under_autocast_only():
    model = FlagRecorder(_small_model())
    x = torch.randn(2, 3, 12, 12)
    exact = lie_derivative(model, x, "e2e")
    assert not any(s["autocast_cpu"] for s in model.seen)
    model.seen.clear()
    with use_precision("bf16"):
        fast = lie_derivative(model, x, "e2e")
    assert model.seen and all(s["autocast_cpu"] for s in model.seen)
    assert fast.dtype == exact.dtype == torch.float32
    rel = float((fast - exact).norm() / exact.norm())
    assert 0 < rel < 0.1  # bf16 rounding (8-bit mantissa): different, but the same derivative


def test_unknown_precision_is_a_one_line_error():
    with pytest.raises(ValueError, match="precision must be one of fp32, tf32, bf16"):
        with use_precision("fp16"):
            pass


# ------------------------------------------------------------------------------------------------ memory plan


class OomAbove(nn.Module):
    """``inner``, but raises ``torch.OutOfMemoryError`` for batches of more than ``limit`` images."""

    def __init__(self, inner: nn.Module, limit: int) -> None:
        super().__init__()
        self.inner, self.limit, self.sizes = inner, limit, []

    def forward(self, x):
        self.sizes.append(x.shape[0])
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory (injected: {x.shape[0]} > {self.limit} images)")
        return self.inner(x)


@pytest.mark.parametrize("limit", [12, 2])
def test_out_of_memory_halves_tangent_chunk_then_images_with_the_same_result(limit):
    """Repeat path (the batch holds tangents x images): 7 basis tangents x 4 images in one pass do not fit; the chunk
    is halved (7 -> 3 -> 1 tangents) and, with ``limit=2``, the images too; the result is the unchunked one."""
    inner = _small_model()
    x = torch.randn(4, 3, 12, 12, dtype=torch.float64)
    inner.double()
    reference = lie_derivative(inner, x, "e2e", vectorize="repeat", tangent_batch=None)
    oom = OomAbove(inner, limit)
    memory_plan.stats.reset()
    got = lie_derivative(oom, x, "e2e", vectorize="repeat", tangent_batch=None)
    assert memory_plan.stats.oom_retries > 0 and max(oom.sizes) == 28 and oom.sizes[-1] <= limit
    if limit < 4:
        assert 2 in oom.sizes  # one tangent of half the images per pass
    torch.testing.assert_close(got, reference, rtol=1e-12, atol=1e-15)


def test_out_of_memory_in_the_vmapped_pass_is_retried_not_sent_to_the_repeat_fallback(monkeypatch):
    model = _small_model()
    x = torch.randn(4, 3, 12, 12)
    reference = lie_derivative(model, x, "e2e", tangent_batch=None)
    native = engine._jvp_vmapped
    calls: list[tuple[int, int]] = []

    def vmapped_with_a_memory_limit(f, xs, tangents):
        calls.append((len(tangents), xs.shape[0]))
        if len(tangents) * xs.shape[0] > 3:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return native(f, xs, tangents)

    def no_repeat(*args, **kwargs):
        raise AssertionError("an out-of-memory error must not switch to the repeat fallback")

    monkeypatch.setattr(engine, "_jvp_vmapped", vmapped_with_a_memory_limit)
    monkeypatch.setattr(engine, "_jvp_repeated", no_repeat)
    got = lie_derivative(model, x, "e2e", tangent_batch=None)
    assert calls[0] == (7, 4) and (1, 4) in calls and (1, 2) in calls  # chunk 7 -> 3 -> 1, then 2 images
    torch.testing.assert_close(got, reference, rtol=1e-5, atol=1e-7)


def test_other_errors_and_one_image_one_tangent_are_raised():
    model = OomAbove(_small_model(), 0)
    with pytest.raises(torch.OutOfMemoryError):
        lie_derivative(model, torch.randn(1, 3, 8, 8), ["translate_x"], vectorize="repeat")


def test_plan_fits_primal_and_tangents_in_free_memory():
    mib = 2**20
    planned = memory_plan.plan_tangent_batch(per_image=mib, free=100 * mib, batch=4, n_tangents=7, safety=3, reserve=0)
    t = planned // 4
    assert planned % 4 == 0 and 3 * mib * (4 + planned) <= 100 * mib < 3 * mib * (4 + planned + 4)
    assert t == 7 or 3 * mib * (4 + 4 * (t + 1)) > 100 * mib
    assert memory_plan.plan_tangent_batch(mib, 10**12, 8, 7) == 56  # all tangents at once when they fit
    assert memory_plan.plan_tangent_batch(mib, mib, 8, 7) == 8  # at least one tangent per pass
    assert memory_plan.auto_tangent_batch(_small_model(), torch.randn(2, 3, 8, 8), 7, cpu_default=64) == 64


def test_activation_bytes_counts_live_activations():
    """Conv output and ReLU output are alive together: 2 x 8 channels x H x W x 4 bytes; scales with the area."""
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()).eval()
    small = memory_plan.activation_bytes(net, torch.randn(1, 3, 16, 16))
    large = memory_plan.activation_bytes(net, torch.randn(1, 3, 32, 32))
    assert small == 2 * 8 * 16 * 16 * 4 and large == 4 * small


# ------------------------------------------------------------------------------------------------ labels, keys


def test_precision_is_recorded_keyed_and_never_mixed(tmp_path, imagenet_sample):
    from lieq.data import load_image_folder
    from lieq.runner import run_sweep

    images = load_image_folder(imagenet_sample, 1, seed=0)
    kw = dict(data=str(imagenet_sample), n_images=1, run="r", root=tmp_path, images=images, input_size=32,
              progress=False, config={"generators": "translate_x"})  # fmt: skip
    fp32 = run_sweep("e2e", "resnet10t.c3_in1k", **kw)
    tf32 = run_sweep("e2e", "resnet10t.c3_in1k", precision="tf32", **kw)
    assert fp32.computed == tf32.computed == ["resnet10t.c3_in1k"]  # a different key: not "already done"
    assert len(list((tmp_path / "r" / "e2e").glob("*.parquet"))) == 2
    with pytest.raises(ValueError, match="different precisions"):
        results.load("r", root=tmp_path)
    table = results.load("r", root=tmp_path, precision="tf32")
    assert len(table) == 1 and set(table.precision) == {"tf32"} and "peak_memory_mb" in table
    assert set(results.load("r", root=tmp_path, precision="fp32").precision) == {"fp32"}
    with pytest.raises(ValueError, match="precision"):  # a label that is not the key's
        results.save(pd.DataFrame({"image": ["a"]}), "r", "e2e", "m", {}, {**table.iloc[0].to_dict()}, root=tmp_path)
