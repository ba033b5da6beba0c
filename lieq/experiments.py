"""Registry of the experiments the sweep runner can execute (``lieq sweep <experiment>``).

An experiment is a function ``fn(model, inputs, labels, image_ids, config, progress) -> pandas.DataFrame`` where
``model`` is an eval-mode classifier on the right device, ``inputs`` are the images preprocessed with the model's own
timm eval transform ``(N, C, H, W)`` (on the model's device), ``labels`` are integer class indices (or ``None``),
``image_ids`` name the images, ``config`` holds the experiment's parameters (its ``defaults`` updated by the user's
values) and ``progress`` asks for a progress bar.  The returned table has one row per measured item and an ``image``
column; the runner adds the model tag, the configuration and the provenance columns and stores it.

Modules register their experiments with :func:`register`; :func:`get` imports the known modules on first use, so
that ``lieq.experiments`` itself stays light.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Experiment", "EXPERIMENT_MODULES", "register", "get", "names"]

#: Modules that define experiments (imported lazily by :func:`get`).
EXPERIMENT_MODULES: list[str] = ["lieq.metrics", "lieq.attribution", "lieq.baselines", "lieq.aliasing"]


@dataclass(frozen=True)
class Experiment:
    name: str
    fn: Callable[..., Any]
    defaults: dict[str, Any] = field(default_factory=dict)
    description: str = ""


_REGISTRY: dict[str, Experiment] = {}


def register(name: str, defaults: dict[str, Any] | None = None, description: str = "") -> Callable:
    """Decorator: register ``fn`` as experiment ``name`` with default parameters."""

    def wrap(fn: Callable) -> Callable:
        _REGISTRY[name] = Experiment(name, fn, dict(defaults or {}), description or (fn.__doc__ or "").split("\n")[0])
        return fn

    return wrap


def _load_all() -> None:
    for module in EXPERIMENT_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a real import error inside an existing module
                raise


def names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def get(name: str) -> Experiment:
    _load_all()
    if name not in _REGISTRY:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]
