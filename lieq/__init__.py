"""lieq: Lie derivatives of image classifiers (the Local Equivariance Error of Gruver et al., ICLR 2023).

The top-level names are imported lazily, so that ``import lieq`` (and the figure code) works without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._memory import apply_if_requested

__version__ = "0.1.0"

_LAZY = {
    "GENERATORS": "lieq.image_model",
    "IMAGE_MODELS": "lieq.image_model",
    "lie_action": "lieq.image_model",
    "transform": "lieq.image_model",
    "warp": "lieq.image_model",
    "lie_derivative": "lieq.engine",
    "e2e_lee": "lieq.metrics",
    "layerwise": "lieq.attribution",
    "create_model": "lieq.weights",
    "load_image_folder": "lieq.data",
    "preprocess": "lieq.data",
    "retain_freed_memory": "lieq._memory",
    "load_model": "lieq.adapters",
    "Preprocessing": "lieq.adapters",
    "select_output": "lieq.adapters",
}

__all__ = ["__version__", *_LAZY]

apply_if_requested()  # only with LIEQ_RETAIN_MEMORY=1, the program's explicit opt-in (lieq._memory)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        return getattr(module, name)
    raise AttributeError(f"module 'lieq' has no attribute {name!r}")
