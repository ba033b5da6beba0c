"""Registry of the experiments the sweep runner can execute (``lieq sweep <experiment>``), in timm's style.

The measurement function itself is registered, and its signature *is* the experiment's interface::

    @register("e2e")
    def e2e_experiment(model, inputs, labels, image_ids, *, generators: str = "e2e", batch_size: int = 8,
                       progress: bool = False) -> pd.DataFrame: ...

* Parameters named in :data:`CONTEXT` are supplied by the runner: ``model`` (an eval-mode classifier on the
  device), ``inputs`` (the images preprocessed with the model's own timm eval transform, ``(N, C, H, W)``, on the
  model's device), ``labels`` (ImageNet class indices or ``None``), ``image_ids``, ``images`` (the decoded
  :class:`lieq.data.ImageSet`), ``model_name`` (the tag or pseudo-model being computed), the sweep's ``weights``,
  ``data``, ``n_images`` and ``seed``, ``device`` and ``progress``.
* Every other parameter must have a default: those parameters (keyword-only by convention) are the experiment's
  configuration, each default written once, here.  :meth:`Experiment.config` binds the user's values to them,
  rejects unknown keys with a one-line error and casts command-line strings to the annotated (or the default's)
  type.

``models`` at registration says where the models come from: ``None`` (default) for timm models of the zoo, built by
the runner with the sweep's weights; a string for a *model-free* study (for example single layers on band-limited
signals), computed once and stored under that pseudo-model name; or a tuple of names for an experiment that builds
its own (non-timm) models from those names (for example the CIFAR-10 ResNets).  Whether a study needs images is
read from its signature (it takes ``images``, ``inputs``, ``labels`` or ``image_ids``).

The function returns a table (one row per measured item; for timm models with an ``image`` column), or
``(table, provenance)`` where ``provenance`` overrides provenance fields (e.g. the weights source of a model it
built).  The runner adds the model name, the configuration and the provenance columns and stores it.

Modules register their experiments with :func:`register`; :func:`get` imports the modules named in
:data:`lieq.conventions.EXPERIMENTS` on first use, so that ``lieq.experiments`` itself stays light.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .conventions import EXPERIMENTS

__all__ = ["CONTEXT", "Experiment", "EXPERIMENT_MODULES", "coerce", "config_defaults", "get", "names", "register"]

#: Modules that define experiments (imported lazily by :func:`get`).
EXPERIMENT_MODULES: list[str] = list(dict.fromkeys(EXPERIMENTS.values()))

#: Parameter names the runner fills in (everything else in a signature is configuration).
CONTEXT: frozenset[str] = frozenset(
    {"model", "inputs", "labels", "image_ids", "images", "model_name", "weights", "data", "n_images", "seed",
     "device", "progress"}
)  # fmt: skip
#: Context parameters that make the runner load the sweep's images.
IMAGE_CONTEXT: frozenset[str] = frozenset({"inputs", "labels", "image_ids", "images"})


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: its function, the source of its models and a one-line description."""

    name: str
    fn: Callable[..., Any]
    models: str | tuple[str, ...] | None = None
    description: str = ""

    @property
    def signature(self) -> inspect.Signature:
        return inspect.signature(self.fn, eval_str=True)

    @property
    def context(self) -> frozenset[str]:
        """The context parameters the function takes."""
        return frozenset(self.signature.parameters) & CONTEXT

    @property
    def defaults(self) -> dict[str, Any]:
        """The configuration parameters and their defaults, in signature order."""
        return config_defaults(self.fn)

    @property
    def model_free(self) -> bool:
        """A study stored under a pseudo-model name (no timm model, no per-model loop)."""
        return isinstance(self.models, str)

    @property
    def needs_images(self) -> bool:
        return bool(self.context & IMAGE_CONTEXT)

    def config(self, user: dict[str, Any] | None = None) -> dict[str, Any]:
        """The defaults updated by ``user`` (unknown keys are an error; strings are cast to the parameter's type)."""
        params = self.signature.parameters
        defaults = self.defaults
        out = dict(defaults)
        for key, value in (user or {}).items():
            if key not in defaults:
                known = ", ".join(defaults) or "none"
                raise ValueError(f"experiment {self.name!r} has no parameter {key!r} (parameters: {known})")
            out[key] = coerce(value, params[key].annotation, defaults[key], key)
        self.signature.bind_partial(**out)  # a last check that the configuration fits the function
        return out

    def __call__(self, config: dict[str, Any], **context: Any) -> Any:
        """Call the function with ``config`` and the context values it takes (others are ignored)."""
        wanted = {k: v for k, v in context.items() if k in self.context}
        return self.fn(**wanted, **config)


_REGISTRY: dict[str, Experiment] = {}


def register(
    name: str, *, models: str | tuple[str, ...] | None = None, description: str = ""
) -> Callable[[Callable], Callable]:
    """Decorator: register ``fn`` as experiment ``name`` (see the module docstring for ``models``)."""

    def wrap(fn: Callable) -> Callable:
        sig = inspect.signature(fn, eval_str=True)
        for pname, p in sig.parameters.items():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                raise TypeError(f"experiment {name!r}: *args / **kwargs cannot be configuration ({pname})")
            if pname not in CONTEXT and p.default is p.empty:
                raise TypeError(f"experiment {name!r}: configuration parameter {pname!r} needs a default")
        if models is not None and set(sig.parameters) & {"model", "inputs"}:
            raise TypeError(f"experiment {name!r} builds its own models: it cannot take 'model' or 'inputs'")
        doc = description or (fn.__doc__ or "").strip().split("\n")[0]
        _REGISTRY[name] = Experiment(name, fn, models if isinstance(models, (str, type(None))) else tuple(models), doc)
        return fn

    return wrap


def _types(annotation: Any, default: Any) -> tuple[type, ...]:
    """The scalar types a configuration value may have: from the annotation (unions in order), else the default."""
    if annotation is not inspect.Parameter.empty:
        args = (
            typing.get_args(annotation)
            if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union
            else (annotation,)
        )
        args = tuple(typing.get_origin(a) or a for a in args)  # list[str] -> list
        found = tuple(a for a in args if isinstance(a, type) and a is not type(None))
        if found:
            return found
    return (type(default),) if default is not None else ()


def coerce(value: Any, annotation: Any, default: Any, key: str) -> Any:
    """Cast a command-line string to the parameter's type (``bool``, ``int``, ``float``, ``str``, list).

    Non-strings pass unchanged.  A string stays a string where ``str`` is among the allowed types; a list-valued
    parameter takes comma-separated items; without a type (default ``None``, no annotation) the string is read as a
    Python literal when it is one.
    """
    if not isinstance(value, str):
        return value
    kinds = _types(annotation, default)
    if not kinds:
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    if str in kinds:
        return value
    for kind in kinds:
        if kind is bool:
            if value.lower() in {"1", "true", "yes", "on"}:
                return True
            if value.lower() in {"0", "false", "no", "off"}:
                return False
        elif kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                continue
        elif kind in (list, tuple):
            return [v.strip() for v in value.split(",") if v.strip()]
    wanted = {bool: "true/false", int: "an integer", float: "a number"}
    names = " or ".join(wanted.get(k, k.__name__) for k in kinds)
    raise ValueError(f"config {key}: expected {names}, got {value!r}")


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


def config_defaults(fn: Callable) -> dict[str, Any]:
    """The configuration parameters of an experiment function and their defaults (its non-context parameters)."""
    return {n: p.default for n, p in inspect.signature(fn).parameters.items() if n not in CONTEXT}
