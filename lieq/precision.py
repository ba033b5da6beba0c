"""Floating-point precision of a measurement: strict float32 by default, TF32 or bf16 only when asked for.

PyTorch lets cuDNN convolutions use TF32 (a 10-bit mantissa) by default on Ampere and newer GPUs, and
``torch.set_float32_matmul_precision("high")`` lets matrix products use it too.  A Lie derivative is a difference
of nearby network outputs taken by automatic differentiation, so its rounding error follows that of the network: with
TF32 the end-to-end LEE changes at the 1e-3 relative level, which is larger than the differences between some
models.  So every measurement (:func:`lieq.engine.lie_derivative` enters :func:`measurement_precision`) runs with

``"fp32"`` (default)
    IEEE float32: ``torch.backends.cuda.matmul.allow_tf32 = False``, ``torch.backends.cudnn.allow_tf32 = False``,
    ``torch.set_float32_matmul_precision("highest")``;
``"tf32"``
    TF32 allowed for matrix products and cuDNN convolutions (``"high"``), faster on recent GPUs;
``"bf16"``
    the network runs under ``torch.autocast`` to bfloat16 (convolutions and matrix products in bf16, reductions in
    float32; its output is cast back to the input's dtype), fastest and least accurate.  Only the network
    (:func:`autocast_network`): the image model's sampling grids and indices stay in the input's dtype, and float32
    operations outside autocast's list stay strict float32.

The previous settings are restored when the block ends.  Those three flags are process-wide in PyTorch (not per
thread), so threads that measure at the same time must use the same precision.  Which precision applies is chosen
for a block with :func:`use_precision` (the runner does this for ``lieq sweep --precision``); it is thread-local and
defaults to ``"fp32"``.  Results carry it in their ``precision`` provenance column, a non-default precision is part
of the stored configuration (so it never replaces or stands in for an fp32 result), and
:func:`lieq.results.load` refuses to mix precisions silently.  On CPUs TF32 does not exist, so ``"tf32"`` gives the
fp32 numbers (still labelled ``"tf32"``: the label is what was asked for).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from .conventions import DEFAULT_PRECISION, PRECISIONS

__all__ = [
    "DEFAULT_PRECISION",
    "PRECISIONS",
    "autocast_network",
    "check_precision",
    "current_precision",
    "measurement_precision",
    "precision_settings",
    "use_precision",
]


_selected: contextvars.ContextVar[str] = contextvars.ContextVar("lieq_precision", default=DEFAULT_PRECISION)


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a one-line ``ValueError``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def current_precision() -> str:
    """The precision measurements in this thread (context) use now."""
    return _selected.get()


@contextlib.contextmanager
def use_precision(precision: str) -> Iterator[str]:
    """Measurements inside the block use ``precision`` (thread-local; nested blocks override)."""
    token = _selected.set(check_precision(precision))
    try:
        yield precision
    finally:
        _selected.reset(token)


def precision_settings() -> dict[str, object]:
    """The process's current float32 settings (for reports): TF32 flags, matmul precision, and autocast state."""
    return {
        "matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        "float32_matmul_precision": torch.get_float32_matmul_precision(),
        "autocast_cuda_bf16": torch.is_autocast_enabled("cuda") and torch.get_autocast_dtype("cuda") == torch.bfloat16,
    }


@contextlib.contextmanager
def measurement_precision(device: torch.device | str, precision: str | None = None) -> Iterator[str]:
    """Run the block in ``precision`` (default: :func:`current_precision`); yields the precision.

    Sets the TF32 flags of matrix products and cuDNN convolutions (process-wide; ``"bf16"`` keeps TF32 off for the
    float32 operations autocast leaves alone) and restores them on exit, exceptions included.  ``device`` is where
    the measurement runs (the flags concern CUDA; on CPUs the block computes in IEEE float32 in any case).  For
    ``"bf16"`` the caller wraps its network with :func:`autocast_network`.
    """
    precision = check_precision(precision or current_precision())
    saved = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision(),
    )
    tf32 = precision == "tf32"
    try:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.set_float32_matmul_precision("high" if tf32 else "highest")
        yield precision
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved[0]
        torch.backends.cudnn.allow_tf32 = saved[1]
        torch.set_float32_matmul_precision(saved[2])


def autocast_network(f: Callable[[Tensor], Tensor], device: torch.device | str) -> Callable[[Tensor], Tensor]:
    """``f`` itself unless the current precision is ``"bf16"``; then ``x -> f(x)`` under ``torch.autocast`` to
    bfloat16 on ``device``'s type, with the output cast back to ``x``'s dtype (so the Lie derivative, the output
    action of equivariant outputs and everything after the network keep the input's dtype)."""
    if current_precision() != "bf16":
        return f
    device_type = torch.device(device).type

    def autocast_f(x: Tensor) -> Tensor:
        with torch.autocast(device_type=device_type, dtype=torch.bfloat16):
            return f(x).to(x.dtype)

    return autocast_f
