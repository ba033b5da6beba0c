"""Device and dtype audit: every entry point computes in its input's dtype (and so, by the same code, on its device).

Each entry point runs on float64 images with a float64 model under a :class:`~torch.utils._python_dispatch.
TorchDispatchMode` that records the dtype of every floating-point tensor any operation produces.  A tensor created
without ``dtype=`` (``torch.zeros(n)``, ``torch.randn(...)``, ``torch.tensor([...])``) is float32 by default, and one
created without ``device=`` is on the CPU: both come from the same missing argument, so a computation that stays in
float64 end to end has no such tensor, and on a GPU no hidden CPU tensor either.  Low-precision results would also
show here.  The outputs must be float64 too (tables: the values of an output computed in float32 would not be).
"""

from __future__ import annotations

import traceback
from collections import Counter

import pytest
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from lieq.engine import lie_derivative

LOW = (torch.float32, torch.float16, torch.bfloat16)
#: Seeded draws from an explicit CPU ``torch.Generator`` (probes, sample parameters) are float32 on purpose: the same
#: numbers on every device and for every dtype; the code casts them (exactly) to the input's dtype and device.
SEEDED_DRAWS = {"aten.randn.generator", "aten.rand.generator", "aten.randint.generator"}


class DtypeRecorder(TorchDispatchMode):
    """Records, for every operation with a floating-point output below float64, the op and where it was called."""

    def __init__(self) -> None:
        super().__init__()
        self.low: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        outs = out if isinstance(out, (tuple, list)) else (out,)
        if str(func) not in SEEDED_DRAWS and any(isinstance(t, torch.Tensor) and t.dtype in LOW for t in outs):
            stack = traceback.extract_stack()[:-1]
            frame = next(  # the lieq line that made it (not a function-override mode's dispatch)
                (f for f in reversed(stack) if "/lieq/" in f.filename and f.name != "__torch_function__"), None
            )
            where = f"{frame.filename.rsplit('/lieq/', 1)[-1]}:{frame.lineno}" if frame else "?"
            self.low[f"{func} at {where}"] += 1
        return out


class SmallNet(nn.Module):
    """Convolutions, batch norm, GELU, attention-free pooling and a linear classifier; float64."""

    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.act = nn.GELU()
        self.down = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.act2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(8, classes)

    def forward(self, x):
        h = self.down(self.act(self.bn(self.stem(x))))
        return self.head(self.pool(self.act2(h)).flatten(1))


@pytest.fixture
def net() -> nn.Module:
    torch.manual_seed(0)
    model = SmallNet().double().eval()
    with torch.no_grad():  # non-trivial batch-norm statistics
        model.bn.running_mean.uniform_(-0.1, 0.1)
        model.bn.running_var.uniform_(0.5, 1.5)
    return model


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def _audit(fn):
    with DtypeRecorder() as rec:
        out = fn()
    assert not rec.low, "float32 (or lower) tensors made in a float64 computation:\n" + "\n".join(
        f"  {n} x {k}" for k, n in rec.low.most_common()
    )
    return out


@pytest.mark.parametrize("method", ["forward", "double_backward"])
@pytest.mark.parametrize("output", ["invariant", "equivariant"])
def test_lie_derivative_stays_in_float64(net, images, method, output):
    f = net if output == "invariant" else nn.Sequential(net.stem, net.bn, net.act)
    out = _audit(lambda: lie_derivative(f, images, "all", output=output, method=method))
    assert out.dtype == torch.float64 and out.device == images.device


@pytest.mark.parametrize("normalised", [False, True])
def test_e2e_lee_stays_in_float64(net, images, normalised):
    from lieq.metrics import e2e_lee

    table = _audit(lambda: e2e_lee(net, images, labels=[0, 1], generators="e2e", batch_size=2, normalised=normalised))
    assert len(table) == 2 * 8 and table.mean_abs.gt(0).all()


@pytest.mark.parametrize("method", ["forward", "reverse", "loop"])
def test_layerwise_attribution_stays_in_float64(net, images, method):
    from lieq.attribution import layerwise

    table = _audit(lambda: layerwise(net, images[:1], "translate_x", probes=4, method=method))
    assert len(table) > 0 and table.contribution.notna().all()


def test_baseline_metrics_stay_in_float64(net, images):
    from lieq.baselines import baseline_metrics

    table = _audit(lambda: baseline_metrics(net, images[:1], labels=[0], samples=2, batch_size=4))
    assert len(table) > 0 and table.value.notna().any()


def test_layerwise_eq_stays_in_float64(net, images):
    from lieq.layerwise_baselines import layerwise_eq

    table = _audit(lambda: layerwise_eq(net, images[:1], samples=2, batch_size=2))
    assert len(table) > 0
