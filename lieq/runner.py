"""Sweep runner: one experiment over many models, cached, resumable, failure-isolated, shardable (``lieq sweep``).

For every model tag the runner builds the model with the requested weights (:func:`lieq.weights.create_model`),
preprocesses the run's images (decoded once per process) with the model's own timm eval transform, calls the
experiment registered under that name (:func:`lieq.experiments.get`) and stores the table with provenance
(:mod:`lieq.results`).  Guarantees:

* **resume**: a (model, configuration) whose result file exists and is sound is skipped; a recorded failure is
  skipped too unless ``retry_failed``; corrupt files are recomputed;
* **kill safety**: results are written atomically, so a killed sweep (SIGKILL included) loses at most the model in
  progress.  A ``.running.json`` marker names the process working on a model; on resume a marker of a dead process
  counts one attempt, and a model whose process died ``max_attempts`` times (for example killed for memory) is
  recorded as failed instead of killing every later resume;
* **isolation**: any exception of a model (unknown tag, weights, out of memory after retrying with halved batch
  sizes, non-finite numbers) is recorded with a one-line message and the sweep goes on; a summary lists failures;
* **sharding**: ``shard=(i, n)`` (``--shard i/n``, ``0 <= i < n``) takes the models at positions ``i, i+n, ...``
  of the ordered list, so ``n`` processes (one per GPU) share one results folder without overlap; ``--slurm``
  submits the ``n`` shards as a Slurm job array with submitit.

The configuration identifying a result (and hashed into its file name) is the experiment's parameters plus
``weights``, ``data`` (the source name: the folder's base name for a path), ``n_images`` and ``seed``; the device is
provenance only.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import math
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import results

__all__ = ["SweepSummary", "add_subcommands", "parse_shard", "run_sweep", "shard_items", "sweep_config"]

_REPO = Path(__file__).resolve().parents[1]


@dataclass
class SweepSummary:
    """What a sweep did: models computed now, skipped as already done, and failures (tag -> message)."""

    experiment: str
    run: str
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    busy: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def report(self) -> str:
        lines = [
            f"sweep {self.experiment} / run {self.run}: {len(self.computed)} computed, {len(self.skipped)} already "
            f"done, {len(self.failed)} failed, {len(self.busy)} busy elsewhere, {self.seconds:.0f} s"
        ]
        lines += [f"  FAILED {tag}: {msg}" for tag, msg in self.failed.items()]
        return "\n".join(lines)


def parse_shard(text: str | tuple[int, int] | None) -> tuple[int, int] | None:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``."""
    if text is None or isinstance(text, tuple):
        return text
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/n (e.g. 0/4), got {text!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard i/n needs 0 <= i < n, got {text!r}")
    return i, n


def shard_items(items: list[str], shard: tuple[int, int] | None) -> list[str]:
    """The items at positions ``i, i+n, i+2n, ...`` (all when ``shard`` is ``None``)."""
    if shard is None:
        return list(items)
    i, n = shard
    return [m for k, m in enumerate(items) if k % n == i]


def _coerce(value: Any, like: Any, key: str) -> Any:
    if not isinstance(value, str):
        return value
    if isinstance(like, bool):
        if value.lower() in {"1", "true", "yes", "on"}:
            return True
        if value.lower() in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"config {key}: expected true/false, got {value!r}")
    if isinstance(like, int) and not isinstance(like, bool):
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"config {key}: expected an integer, got {value!r}") from None
    if isinstance(like, float):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"config {key}: expected a number, got {value!r}") from None
    if isinstance(like, (list, tuple)):
        return [v.strip() for v in value.split(",") if v.strip()]
    if like is None:
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    return value


def experiment_config(defaults: dict[str, Any], user: dict[str, Any] | None, experiment: str) -> dict[str, Any]:
    """The experiment's defaults updated by ``user`` (unknown keys are an error; strings are cast to the default's
    type)."""
    config = dict(defaults)
    for key, value in (user or {}).items():
        if key not in defaults:
            known = ", ".join(sorted(defaults)) or "none"
            raise ValueError(f"experiment {experiment!r} has no parameter {key!r} (parameters: {known})")
        config[key] = _coerce(value, defaults[key], key)
    return config


def sweep_config(
    exp_config: dict[str, Any], weights: str, data_key: str, n_images: int | None, seed: int
) -> dict[str, Any]:
    """The configuration that identifies a stored result (hashed into its file name)."""
    return {**exp_config, "weights": weights, "data": data_key, "n_images": n_images, "seed": seed}


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(_REPO), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return f"{device}:{torch.cuda.get_device_name(torch.device(device))}"
    return f"cpu:{torch.get_num_threads()}threads"


def base_provenance(device: str) -> dict[str, Any]:
    import timm
    import torch

    from . import __version__

    return {
        "device": _device_name(device),
        "lieq_version": __version__,
        "git_commit": _git_commit(),
        "torch_version": torch.__version__,
        "timm_version": timm.__version__,
    }


def _is_oom(exc: BaseException) -> bool:
    import torch

    if isinstance(exc, (MemoryError, torch.cuda.OutOfMemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]


def _check_finite(table) -> None:
    import numpy as np

    numeric = table.select_dtypes("number")
    bad = [c for c in numeric.columns if not np.isfinite(numeric[c].to_numpy(dtype=float)).all()]
    if bad:
        raise FloatingPointError(f"non-finite values in column(s) {', '.join(bad)}")


def _run_experiment(exp, model, inputs, labels, ids, config, progress) -> tuple[Any, dict[str, Any]]:
    """Call the experiment, halving ``batch_size`` (when it has one) after out-of-memory errors."""
    import torch

    config = dict(config)
    while True:
        try:
            return exp.fn(model, inputs, labels, ids, config, progress), config
        except Exception as exc:
            if not _is_oom(exc) or int(config.get("batch_size", 1)) <= 1:
                raise
            config["batch_size"] = max(1, int(config["batch_size"]) // 2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


class _Claim:
    """The ``.running.json`` marker of a model in progress (pid, host, attempt count)."""

    def __init__(self, path: Path, stale_after_s: float = 12 * 3600) -> None:
        self.result = path
        self.path = results.running_path(path)
        self.stale_after_s = stale_after_s

    def read(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):  # empty or torn marker: stale once it is a minute old
            try:
                old = time.time() - self.path.stat().st_mtime > 60
            except OSError:
                return None
            return {"pid": 0, "host": socket.gethostname(), "attempts": 1} if old else None

    def alive_elsewhere(self, record: dict[str, Any]) -> bool:
        if record.get("host") != socket.gethostname():
            return time.time() - self.path.stat().st_mtime < self.stale_after_s
        pid = int(record.get("pid", 0))
        if pid <= 0 or pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def take(self, attempts: int, seen: dict[str, Any] | None) -> bool:
        """Write the marker, exclusively: False when another process claimed the model first.

        ``seen`` is the marker read before (a dead process's, to take over) or None.  The old marker is renamed
        aside first, which only one process can do; if what was renamed is not the marker read before (another
        process took it over in between), it is put back and the claim fails.  The new marker appears with its
        content in one step (written to a temporary file, then hard-linked into place, which fails if the name
        exists), so a process killed while claiming never leaves an empty marker no one can attribute.  Once the
        claim is held, temporary files left by a killed writer of this model are removed.
        """
        record = {"pid": os.getpid(), "host": socket.gethostname(), "attempts": attempts}
        record["date"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        if seen is not None:
            aside = self.path.with_name(f".{self.path.name}.{os.getpid()}.stale.tmp")
            try:
                os.rename(self.path, aside)
            except FileNotFoundError:  # another process took it over first
                return False
            try:
                moved = json.loads(aside.read_text())
            except (OSError, ValueError):
                moved = None
            if moved is not None and moved != seen:  # a live claim made after we read: give it back
                with contextlib.suppress(OSError):
                    os.link(aside, self.path)
                aside.unlink(missing_ok=True)
                return False
            aside.unlink(missing_ok=True)
        if not self._create_exclusive(json.dumps(record)):
            return False
        results.remove_temporary_files(self.result)
        return True

    def _create_exclusive(self, text: str) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            try:
                os.link(tmp, self.path)
            except (FileExistsError, FileNotFoundError):  # claimed first (the winner may have removed our file)
                return False
            except OSError:  # a file system without hard links: exclusive create, then write
                try:
                    out = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                except FileExistsError:
                    return False
                with os.fdopen(out, "w") as fh:
                    fh.write(text)
            return True
        finally:
            Path(tmp).unlink(missing_ok=True)

    def release(self) -> None:
        self.path.unlink(missing_ok=True)


def load_sweep_data(data: str, n_images: int | None, seed: int):
    """Decode the sweep's images once: a folder path or a named source of :func:`lieq.data.load_source`."""
    from .data import load_source

    return load_source(data, n_images, seed)


def data_key(data: str) -> str:
    """The data source's name used in the configuration: a named source as is, a folder by its base name."""
    from .data import SOURCES

    if data in SOURCES:
        return data
    return Path(data).expanduser().resolve().name


def run_sweep(
    experiment: str,
    models: str | list[str],
    weights: str = "random",
    data: str = "imagenet-sample",
    n_images: int | None = 100,
    run: str = "default",
    device: str = "cpu",
    config: dict[str, Any] | None = None,
    shard: str | tuple[int, int] | None = None,
    progress: bool = True,
    seed: int = 0,
    root: str | Path | None = None,
    retry_failed: bool = False,
    max_attempts: int = 2,
    order: str = "given",
    images=None,
    input_size: int | None = None,
) -> SweepSummary:
    """Run ``experiment`` for every model of ``models`` (preset names and/or tags) and store the results.

    ``config`` holds the experiment's parameters (strings are cast to the defaults' types); keys ``n_images`` and
    ``probes`` of experiments that declare them are filled from the sweep's values when not given.  ``order``:
    ``given`` (catalogue order) or ``size`` (fewest parameters first).  ``images``: an already decoded
    :class:`lieq.data.ImageSet` (otherwise ``data`` is loaded once).  ``input_size`` overrides every model's input
    size (quick tests of size-agnostic models; part of the configuration).  Returns a :class:`SweepSummary`.
    """
    from . import experiments, zoo

    start = time.perf_counter()
    exp = experiments.get(experiment)
    user = dict(config or {})
    if "n_images" in exp.defaults and "n_images" not in user and n_images is not None:
        user["n_images"] = n_images
    exp_config = experiment_config(exp.defaults, user, experiment)
    tags = zoo.resolve_models(models)
    if order == "size":
        params = zoo.catalogue().drop_duplicates("timm_tag").set_index("timm_tag")["params"]
        tags.sort(key=lambda t: float(params.get(t, math.inf)) if t in params.index else math.inf)
    elif order != "given":
        raise ValueError(f"order must be 'given' or 'size', got {order!r}")
    tags = shard_items(tags, parse_shard(shard))
    key = sweep_config(exp_config, weights, data_key(data), n_images, seed)
    if input_size:
        key["input_size"] = int(input_size)
    summary = SweepSummary(experiment, run)

    todo = []
    for tag in tags:
        state, detail = results.status(run, experiment, tag, key, root)
        if state == "done":
            summary.skipped.append(tag)
        elif state == "failed" and not retry_failed:
            summary.failed[tag] = f"(recorded earlier) {detail}"
        else:
            todo.append(tag)
    device = _resolve_device(device)
    if todo and images is None:
        images = load_sweep_data(data, n_images, seed)
    prov0 = base_provenance(device) if todo else {}
    bar = todo
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(todo, desc=f"{experiment} models", unit="model", dynamic_ncols=True)
    for tag in bar:
        if progress:
            bar.set_postfix_str(tag, refresh=True)
        if results.status(run, experiment, tag, key, root)[0] == "done":  # finished meanwhile by another process
            summary.skipped.append(tag)
            continue
        path = results.result_path(run, experiment, tag, key, root)
        claim = _Claim(path)
        record = claim.read()
        attempts = int(record.get("attempts", 0)) if record else 0
        if record and claim.alive_elsewhere(record):
            summary.busy.append(tag)
            continue
        prov = {**prov0, "weights": weights, "data": getattr(images, "source", data), "seed": seed}
        if attempts >= max_attempts:
            msg = f"process died during {attempts} earlier attempt(s) (killed, e.g. for memory?)"
            results.save_failure(run, experiment, tag, key, msg, prov, root)
            claim.release()
            summary.failed[tag] = msg
            continue
        if not claim.take(attempts + 1, seen=record):
            summary.busy.append(tag)
            continue
        try:
            table, prov = _compute(exp, tag, weights, seed, device, images, exp_config, progress, prov, input_size)
            results.save(table, run, experiment, tag, key, prov, root)
            summary.computed.append(tag)
        except KeyboardInterrupt:
            claim.release()
            raise
        except Exception as exc:
            msg = _one_line(exc)
            results.save_failure(run, experiment, tag, key, msg, prov, root)
            summary.failed[tag] = msg
        finally:
            claim.release()
            _free(device)
    summary.seconds = time.perf_counter() - start
    return summary


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device} asked for, but no CUDA device is available")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"unknown device {device!r}: use cpu, cuda, cuda:N or auto")
    return device


def _free(device: str) -> None:
    import gc

    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def _compute(exp, tag, weights, seed, device, images, exp_config, progress, prov, input_size=None):
    """Build one model, preprocess the images for it, run the experiment; returns (table, provenance)."""
    from .data import preprocess
    from .weights import create_model

    t0 = time.perf_counter()
    model, source = create_model(tag, weights, seed=seed)
    model = model.to(device)
    inputs = preprocess(images.images, model, upsample=images.upsample, input_size=input_size).to(device)
    labels = images.labels if images.label_space == "imagenet" else None
    table, used = _run_experiment(exp, model, inputs, labels, images.ids, exp_config, progress)
    import pandas as pd

    if not isinstance(table, pd.DataFrame) or table.empty or "image" not in table.columns:
        raise ValueError(f"experiment {exp.name!r} returned no rows or no 'image' column")
    _check_finite(table)
    prov = {
        **prov,
        "weights": source,
        "input_size": int(inputs.shape[-1]),
        "n_images": len(images),
        "batch_size_used": int(used.get("batch_size", 0) or 0),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    return table, prov


# --------------------------------------------------------------------------------------------------- Slurm


def _shard_job(kwargs: dict[str, Any], shard: str) -> str:
    summary = run_sweep(**kwargs, shard=shard, progress=False)
    return summary.report()


def submit_slurm(kwargs: dict[str, Any], n_shards: int, folder: str | Path, **slurm: Any):
    """Submit ``n_shards`` shards of a sweep as one Slurm job array (submitit); without Slurm, run here.

    ``slurm``: ``partition``, ``gpus`` (per task), ``time`` (minutes), ``parallelism`` (array tasks at once),
    ``cpus`` (per task), ``mem_gb``.  Returns the submitit jobs, or the local :class:`SweepSummary`.
    """
    try:
        import submitit
    except ImportError as exc:
        raise ValueError("--slurm needs submitit: pip install 'lieq[slurm]'") from exc
    if shutil.which("sbatch") is None:
        print("lieq: no Slurm here (no sbatch); running the sweep locally")
        return run_sweep(**kwargs)
    executor = submitit.AutoExecutor(folder=str(folder))
    if executor.cluster != "slurm":
        print(f"lieq: no Slurm here ({executor.cluster}); running the sweep locally")
        return run_sweep(**kwargs)
    params = {
        "timeout_min": int(slurm.get("time", 240)),
        "gpus_per_node": int(slurm.get("gpus", 1)),
        "cpus_per_task": int(slurm.get("cpus", 8)),
        "slurm_array_parallelism": int(slurm.get("parallelism", n_shards)),
        "name": f"lieq-{kwargs['experiment']}",
    }
    if slurm.get("partition"):
        params["slurm_partition"] = slurm["partition"]
    if slurm.get("mem_gb"):
        params["mem_gb"] = int(slurm["mem_gb"])
    executor.update_parameters(**params)
    shards = [f"{i}/{n_shards}" for i in range(n_shards)]
    jobs = executor.map_array(_shard_job, [kwargs] * n_shards, shards)
    print(f"lieq: submitted {len(jobs)} Slurm array task(s): {jobs[0].job_id.split('_')[0]} (logs in {folder})")
    return jobs


# --------------------------------------------------------------------------------------------------- CLI

#: Common options that go into the experiment's configuration when its defaults have the key.
_COMMON = {"generators": str, "image_model": str, "method": str, "batch_size": int, "probes": int}


def _parse_kv(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--config expects KEY=VALUE, got {item!r}")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def _cmd_sweep(args: argparse.Namespace) -> int:
    from . import experiments, zoo

    exp = experiments.get(args.experiment)
    user: dict[str, Any] = {}
    for name in _COMMON:
        value = getattr(args, name)
        if value is None:
            continue
        if name not in exp.defaults:
            raise ValueError(f"--{name.replace('_', '-')} does not apply to experiment {args.experiment!r}")
        user[name] = value
    user.update(_parse_kv(args.config))
    if args.list:
        tags = shard_items(zoo.resolve_models(args.models), parse_shard(args.shard))
        print("\n".join(tags))
        return 0
    kwargs = dict(
        experiment=args.experiment,
        models=args.models,
        weights=args.weights,
        data=args.data,
        n_images=args.n_images,
        run=args.run or args.experiment,
        device=args.device,
        config=user,
        progress=not args.no_progress,
        seed=args.seed,
        root=args.results,
        retry_failed=args.retry_failed,
        max_attempts=args.max_attempts,
        order=args.order,
        input_size=args.input_size,
    )
    if args.slurm:
        root = Path(args.results).expanduser() if args.results else results.default_root()
        folder = Path(args.slurm_folder) if args.slurm_folder else root / "slurm-logs"
        out = submit_slurm(
            kwargs,
            args.slurm_shards,
            folder,
            partition=args.partition,
            gpus=args.gpus,
            time=args.time,
            parallelism=args.array_parallelism,
            cpus=args.cpus_per_task,
            mem_gb=args.mem_gb,
        )
        if not isinstance(out, SweepSummary):
            return 0
        summary = out
    else:
        summary = run_sweep(**kwargs, shard=args.shard)
    print(summary.report())
    removed = zoo.removed(args.models) if args.models in zoo.PRESETS else None
    if removed is not None and len(removed):
        print(f"  ({len(removed)} member(s) of preset {args.models} have no model in this timm: ", end="")
        print(", ".join(removed.name_2022) + ")")
    new_failures = [t for t, m in summary.failed.items() if not m.startswith("(recorded earlier)")]
    return 3 if new_failures else 0


def add_subcommands(subparsers) -> None:
    """Add ``lieq sweep <experiment> ...`` to the CLI."""
    p = subparsers.add_parser(
        "sweep",
        help="run an experiment over many models (cached, resumable)",
        description=(
            "Run a registered experiment over models, store one result file per (model, configuration) under "
            "data/results/<run>/<experiment>/, skip what is done. Exit status 3 when a model failed in this call."
        ),
    )
    p.add_argument("experiment", help="registered experiment, e.g. e2e")
    p.add_argument("--models", required=True, help="presets and/or timm tags, comma-separated (paper, embedded, ...)")
    p.add_argument("--weights", default="random", help="random | hub | pip | file:PATH (default random)")
    p.add_argument(
        "--data", default="imagenet-sample", help="image folder, or imagenet-sample | embedded | cifar10 | cifar100"
    )
    p.add_argument("--n-images", type=int, default=100, help="images drawn with a seeded shuffle (default 100)")
    p.add_argument("--seed", type=int, default=0, help="image shuffle and random-init seed")
    p.add_argument("--run", default=None, help="results folder name under data/results (default: the experiment)")
    p.add_argument("--results", default=None, help="results root (default data/results or $LIEQ_RESULTS)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    p.add_argument("--config", action="append", default=[], metavar="KEY=VALUE", help="experiment parameter")
    p.add_argument("--generators", default=None, help="(experiments with generators) names or e2e/layerwise/all")
    p.add_argument("--image-model", default=None, help="(experiments with image_model) bilinear | central | ...")
    p.add_argument("--method", default=None, help="(experiments with method) forward | double_backward")
    p.add_argument("--batch-size", type=int, default=None, help="(experiments with batch_size) images per batch")
    p.add_argument("--probes", type=int, default=None, help="(experiments with probes) random probes")
    p.add_argument("--input-size", type=int, default=None, help="override input size (quick tests; in the config)")
    p.add_argument("--shard", default=None, help="i/n: this process takes models i, i+n, ... (0 <= i < n)")
    p.add_argument("--order", default="given", choices=["given", "size"], help="model order (size: smallest first)")
    p.add_argument("--retry-failed", action="store_true", help="recompute models recorded as failed")
    p.add_argument("--max-attempts", type=int, default=2, help="give up on a model whose process died this often")
    p.add_argument("--list", action="store_true", help="print the models (of this shard) and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    g = p.add_argument_group("Slurm (submitit)")
    g.add_argument("--slurm", action="store_true", help="submit as a Slurm job array (local run without Slurm)")
    g.add_argument("--slurm-shards", type=int, default=8, help="array tasks (shards)")
    g.add_argument("--partition", default=None)
    g.add_argument("--gpus", type=int, default=1, help="GPUs per task")
    g.add_argument("--time", type=int, default=240, help="minutes per task")
    g.add_argument("--array-parallelism", type=int, default=8, help="array tasks running at once")
    g.add_argument("--cpus-per-task", type=int, default=8)
    g.add_argument("--mem-gb", type=int, default=None)
    g.add_argument("--slurm-folder", default=None, help="submitit logs (default <results>/slurm-logs)")
    p.set_defaults(handler=_cmd_sweep)
