"""Memory of the forward engine: tangent chunks sized from free GPU memory, and out-of-memory retries.

A forward-mode pass over ``T`` tangents of a batch of ``B`` images carries the primal activations of ``B`` images
and the tangent activations of ``T * B`` images through the network at the same time.  With ``a`` the activation
memory of one image (the peak memory of one no-grad primal pass of one image above what was allocated before: on
CUDA measured with ``torch.cuda.max_memory_allocated``, elsewhere counted by :class:`LiveBytes`), a pass needs
about ``SAFETY * a * (B + T * B)`` bytes; :func:`plan_tangent_batch` takes the largest ``T * B`` that fits in the
free memory (``torch.cuda.mem_get_info``) minus a reserve.  ``SAFETY`` covers what a tangent pass holds beyond the
activations of a primal pass (the forward-mode rules keep the primal and tangent of an operation and one temporary
of each).

Out of memory anyway (another process took memory, a peak the probe did not see): :func:`run_in_chunks` halves the
tangent chunk and retries, down to one tangent per pass, then halves the image batch (recursively, the halves'
results are concatenated; images are independent in eval mode, so the result is the same up to float rounding
order, bit-identical in practice).  Peak memory per model is recorded by the runner (:func:`peak_memory_mb`).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = [
    "LiveBytes",
    "MemoryStats",
    "activation_bytes",
    "auto_tangent_batch",
    "is_oom",
    "peak_memory_mb",
    "plan_tangent_batch",
    "reset_peak_memory",
    "run_in_chunks",
    "stats",
]

#: Memory of a tangent pass per tangent image, in units of one image's primal activation peak (module docstring).
SAFETY = 3.0
#: Fraction of the free memory left unused (allocator fragmentation, cuDNN workspaces).
RESERVE = 0.15


@dataclass
class MemoryStats:
    """What the engine did last (for reports and the GPU check): planned tangent images per pass, OOM retries."""

    tangent_batch: int | None = None
    activation_bytes: int | None = None
    oom_retries: int = 0

    def reset(self) -> None:
        self.tangent_batch, self.activation_bytes, self.oom_retries = None, None, 0


#: Process-wide counters, reset by the caller that wants to read them.
stats = MemoryStats()


def is_oom(exc: BaseException) -> bool:
    """Whether ``exc`` is an out-of-memory error (``torch.OutOfMemoryError`` or an allocator's RuntimeError)."""
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


class LiveBytes(TorchDispatchMode):
    """Counts the bytes of the tensors created inside the block that are alive at the same time (``peak``).

    Every output of every operation is counted when created and uncounted when garbage collected (views share their
    base's storage and are not counted twice)."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen: set[int] = set()

    def _free(self, key: int, nbytes: int) -> None:
        self._seen.discard(key)
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, Tensor) and t.device.type != "meta":
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if key and key not in self._seen:
                    self._seen.add(key)
                    self.live += storage.nbytes()
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(t, self._free, key, storage.nbytes())
        return out


def activation_bytes(f: Callable[[Tensor], Tensor], x1: Tensor) -> int:
    """Peak activation memory (bytes) of one no-grad primal pass ``f(x1)`` (module docstring)."""
    with torch.no_grad():
        if x1.device.type == "cuda":
            torch.cuda.synchronize(x1.device)
            before = torch.cuda.memory_allocated(x1.device)
            torch.cuda.reset_peak_memory_stats(x1.device)
            f(x1)
            torch.cuda.synchronize(x1.device)
            return max(1, torch.cuda.max_memory_allocated(x1.device) - before)
        with LiveBytes() as counter:
            f(x1)
        return max(1, counter.peak)


def plan_tangent_batch(
    per_image: int, free: int, batch: int, n_tangents: int, safety: float = SAFETY, reserve: float = RESERVE
) -> int:
    """Tangent images per pass: the largest multiple ``T * batch`` (``1 <= T <= n_tangents``) with
    ``safety * per_image * (batch + T * batch) <= (1 - reserve) * free``; at least one tangent (``batch``)."""
    budget = (1.0 - reserve) * free / (safety * max(1, per_image))  # images that fit
    t = int(budget // max(1, batch)) - 1
    return max(1, min(n_tangents, t)) * batch


_probe_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def auto_tangent_batch(f: Callable[[Tensor], Tensor], x: Tensor, n_tangents: int, cpu_default: int) -> int:
    """``tangent_batch="auto"``: ``cpu_default`` off CUDA; on CUDA :func:`plan_tangent_batch` from the free memory
    and the measured activation size of one image (measured once per model, input shape and dtype)."""
    if x.device.type != "cuda":
        return cpu_default
    key = (tuple(x.shape[1:]), x.dtype, x.device)
    try:
        per_model = _probe_cache.setdefault(f, {})
    except TypeError:  # not weak-referenceable: measure every time
        per_model = {}
    if key not in per_model:
        per_model[key] = activation_bytes(f, x[:1])
    free, _ = torch.cuda.mem_get_info(x.device)
    planned = plan_tangent_batch(per_model[key], free, x.shape[0], n_tangents)
    stats.tangent_batch, stats.activation_bytes = planned, per_model[key]
    return planned


def _release(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _split_images(one_pass: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]], x: Tensor, part: Tensor):
    """``one_pass`` on the two halves of the image batch (recursively on out-of-memory); results concatenated."""
    h = x.shape[0] // 2
    ys, jvs = [], []
    for xs, ps in ((x[:h], part[:, :h]), (x[h:], part[:, h:])):
        try:
            y, jv = one_pass(xs, ps)
        except Exception as exc:
            if not is_oom(exc) or xs.shape[0] <= 1:
                raise
            stats.oom_retries += 1
            _release(x.device)
            y, jv = _split_images(one_pass, xs, ps)
        ys.append(y)
        jvs.append(jv)
    return torch.cat(ys), torch.cat(jvs, dim=1)


def run_in_chunks(
    one_pass: Callable[[Tensor, Tensor], tuple[Tensor, Tensor]], x: Tensor, tangents: Tensor, chunk: int
) -> tuple[Tensor, Tensor]:
    """``one_pass(x, part)`` -> ``(f(x), J v)`` over chunks of ``chunk`` tangents, concatenated along the tangents.

    On an out-of-memory error the chunk is halved and the pass retried; with one tangent per pass the image batch is
    halved instead (:func:`_split_images`); an error with one tangent of one image is raised.
    """
    outputs: list[Tensor] = []
    y: Tensor | None = None
    start = 0
    chunk = max(1, int(chunk))
    while start < len(tangents):
        part = tangents[start : start + chunk]
        try:
            y, jv = one_pass(x, part)
        except Exception as exc:
            if not is_oom(exc) or (chunk == 1 and x.shape[0] <= 1):
                raise
            stats.oom_retries += 1
            _release(x.device)
            if chunk > 1:
                chunk = max(1, chunk // 2)
                continue
            y, jv = _split_images(one_pass, x, part)
        outputs.append(jv)
        start += len(part)
    return y, torch.cat(outputs)  # type: ignore[return-value]


def reset_peak_memory(device: str | torch.device) -> None:
    """Start a new peak-memory measurement on ``device`` (CUDA only; a no-op elsewhere)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: str | torch.device) -> float | None:
    """Peak memory allocated by PyTorch on ``device`` since :func:`reset_peak_memory`, in MiB (``None`` off CUDA)."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
