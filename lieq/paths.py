"""Where lieq reads and writes: the checkout, the result store, the cache, the shared data, notebooks and figures.

Every location the package uses is decided here, so that the rest of the code never walks up from ``__file__``.
This module imports only the standard library (no torch, no pandas).

Two situations:

*A checkout* (the source tree, or an editable ``pip install -e .``): :func:`repo_root` is the folder that holds
``pyproject.toml`` and ``lieq/``.  Results go to ``<repo>/data/results``, notebooks are ``<repo>/notebooks``, figures
``<repo>/figures`` and the shared data (large inputs kept outside the repository) ``<repo>/../shared/data``.

*A normal install* (``pip install .`` into site-packages): there is no repository, :func:`repo_root` is ``None`` and
the fallbacks are: results in ``./lieq-results`` under the *current working directory* (results are the user's
output, like a compiler's), the cache in the user cache folder (``$XDG_CACHE_HOME/lieq``, i.e. ``~/.cache/lieq``),
and shared data, notebooks and figures under the current directory (``./shared/data``, ``./notebooks``,
``./figures``).  Nothing is ever written into site-packages.

Environment overrides, checked first each time a function is called: ``LIEQ_RESULTS`` (result store),
``LIEQ_CACHE`` (cache), ``LIEQ_SHARED_DATA`` (shared data folder).  Functions return absolute paths; none creates
a folder.
"""

from __future__ import annotations

import os
from functools import lru_cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

__all__ = [
    "CATALOGUE",
    "PACKAGE",
    "cache_root",
    "figures_dir",
    "local_data",
    "notebooks_dir",
    "repo_root",
    "results_root",
    "shared_data",
    "zoo_root",
]

#: The installed package folder (``.../lieq``).
PACKAGE = Path(__file__).resolve().parent
#: The model catalogue (:mod:`lieq.zoo`), shipped as package data and located with :mod:`importlib.resources` (a
#: plain :class:`~pathlib.Path` for a package installed on the file system, editable or not).
CATALOGUE: Traversable = resources.files(__package__).joinpath("catalogue", "models.csv")


@lru_cache(maxsize=1)
def repo_root() -> Path | None:
    """The checkout this package was imported from, or ``None`` for a normal (non-editable) install.

    A checkout is recognised by ``pyproject.toml`` naming the project ``lieq`` next to the package folder.
    """
    root = PACKAGE.parent
    pyproject = root / "pyproject.toml"
    try:
        text = pyproject.read_text(encoding="utf-8")
    except OSError:
        return None
    return root if 'name = "lieq"' in text else None


def _env(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value).expanduser().absolute() if value else None


def results_root() -> Path:
    """The result store: ``$LIEQ_RESULTS``, else ``<repo>/data/results``, else ``./lieq-results`` (installed)."""
    env = _env("LIEQ_RESULTS")
    if env is not None:
        return env
    repo = repo_root()
    return repo / "data" / "results" if repo is not None else Path.cwd() / "lieq-results"


def cache_root() -> Path:
    """Downloads (image samples, datasets): ``$LIEQ_CACHE``, else ``$XDG_CACHE_HOME/lieq`` (``~/.cache/lieq``)."""
    env = _env("LIEQ_CACHE")
    if env is not None:
        return env
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache").absolute() / "lieq"


def shared_data(*parts: str) -> Path:
    """A path in the shared data folder: inputs too large for the repository (image folders, checkpoints).

    ``$LIEQ_SHARED_DATA``, else ``<repo>/../shared/data`` in a checkout, else ``./shared/data`` (installed).  The
    path is returned whether or not it exists; callers check (:func:`local_data` does).
    """
    base = _env("LIEQ_SHARED_DATA")
    if base is None:
        repo = repo_root()
        base = (repo.parent if repo is not None else Path.cwd()) / "shared" / "data"
    return base.joinpath(*parts)


def local_data(*parts: str) -> Path | None:
    """:func:`shared_data` if that folder exists, else ``None``."""
    path = shared_data(*parts)
    return path if path.is_dir() else None


def notebooks_dir() -> Path:
    """The numbered notebooks: ``<repo>/notebooks``, else ``./notebooks`` (installed)."""
    repo = repo_root()
    return (repo if repo is not None else Path.cwd()) / "notebooks"


def figures_dir() -> Path:
    """Where ``make figures`` writes: ``<repo>/figures``, else ``./figures`` (installed)."""
    repo = repo_root()
    return (repo if repo is not None else Path.cwd()) / "figures"


def zoo_root(root: str | Path | None = None) -> Path:
    """The CIFAR-10 zoo folder (:mod:`lieq.cifar_zoo`): ``root``, else ``$LIEQ_ZOO``, else ``<repo>/data/cifar-zoo``
    (``<cache>/cifar-zoo`` when installed without a checkout)."""
    if root is not None:
        return Path(root).expanduser().absolute()
    if os.environ.get("LIEQ_ZOO"):
        return Path(os.environ["LIEQ_ZOO"]).expanduser().absolute()
    repo = repo_root()
    return repo / "data" / "cifar-zoo" if repo is not None else cache_root() / "cifar-zoo"
