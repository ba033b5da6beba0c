"""Sweep runner: one experiment over many models, cached, resumable, failure-isolated, shardable (``lieq sweep``).

For every model tag the runner builds the model with the requested weights (:func:`lieq.weights.create_model`),
preprocesses the run's images (decoded once per process) with the model's own timm eval transform, calls the
experiment registered under that name (:func:`lieq.experiments.get`) and stores the table with provenance
(:mod:`lieq.results`).  The runner is the only route to the store: a model-free study (single layers on
band-limited signals, spectra) is computed once and stored under its pseudo-model name, and an experiment that builds
its own models (the CIFAR-10 ResNets) is called once per model name; both get the same resume, claim, failure and
provenance handling.  The experiment's configuration is bound to its function's signature
(:meth:`lieq.experiments.Experiment.config`).  Guarantees:

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
  submits the shards that still have work as a Slurm job array with submitit (:func:`submit_slurm`).

The configuration identifying a result (and hashed into its file name) is the experiment's parameters plus
``weights`` (``file:PATH`` by the file's base name), ``data`` (the source name: the folder's base name for a path),
``n_images`` and ``seed`` (for a model-free study or one with its own models only those of these it uses,
:func:`store_key`), and, for experiments on images, ``images``: the fingerprint of the images actually used
(:func:`images_key`), so that a different folder of the same name never stands in for a finished result.  A result
stored before fingerprints existed counts as done when its stored image ids and labels are those of the images now
(:func:`stored_state`).  The device is provenance only.
"""

from __future__ import annotations

import argparse
import contextlib
import io
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
from .paths import repo_root

__all__ = ["SweepSummary", "add_subcommands", "parse_shard", "run_sweep", "shard_items", "sweep_config"]

_REPO = repo_root()


@dataclass
class SweepSummary:
    """What a sweep did: models computed now, skipped as already done, and failures (tag -> message).

    ``images``: the fingerprint of the images the results are keyed by (a result is "already done" only when it was
    computed on exactly these images); ``legacy``: skipped models whose result predates fingerprints and matched by
    its stored image ids and labels."""

    experiment: str
    run: str
    computed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    busy: list[str] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    seconds: float = 0.0
    images: str = ""
    legacy: list[str] = field(default_factory=list)

    def report(self) -> str:
        same = ""
        if self.skipped and self.images:
            same = f" (same images, fingerprint {self.images}"
            same += f"; {len(self.legacy)} stored before fingerprints, matched by image ids)" if self.legacy else ")"
        lines = [
            f"sweep {self.experiment} / run {self.run}: {len(self.computed)} computed, {len(self.skipped)} already "
            f"done{same}, {len(self.failed)} failed, {len(self.busy)} busy elsewhere, {self.seconds:.0f} s"
            + (f", {len(self.pending)} to compute" if self.pending else "")
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


def experiment_config(exp, user: dict[str, Any] | None) -> dict[str, Any]:
    """The experiment's configuration: its signature's defaults updated by ``user`` (:meth:`Experiment.config`)."""
    return exp.config(user)


def weights_key(weights: str) -> str:
    """The weights in the configuration: as given, except ``file:PATH`` by the file's (or folder's) base name."""
    if weights.startswith("file:"):
        return "file:" + Path(weights[len("file:") :]).expanduser().resolve().name
    return weights


def sweep_config(
    exp_config: dict[str, Any], weights: str, data_key: str, n_images: int | None, seed: int
) -> dict[str, Any]:
    """The configuration that identifies a stored result of timm models (hashed into its file name)."""
    return {**exp_config, "weights": weights_key(weights), "data": data_key, "n_images": n_images, "seed": seed}


def store_key(
    exp, exp_config: dict[str, Any], weights: str, data: str, n_images: int | None, seed: int
) -> dict[str, Any]:
    """The stored configuration of one experiment: :func:`sweep_config` for timm models; for a model-free study or
    one that builds its own models, the configuration plus only the sweep values it uses (``weights``; ``data``,
    ``n_images`` and ``seed`` when it takes images or them)."""
    if exp.models is None:
        return sweep_config(exp_config, weights, data_key(data), n_images, seed)
    ctx = exp.context
    key = dict(exp_config)
    if "weights" in ctx:
        key["weights"] = weights_key(weights)
    if exp.needs_images or "data" in ctx:
        key["data"] = data_key(data)
    if exp.needs_images or "n_images" in ctx:
        key["n_images"] = n_images
    if exp.needs_images or "seed" in ctx:
        key["seed"] = seed
    return key


def _git_commit() -> str:
    if _REPO is None:  # a normal install: no checkout to describe
        return "unknown"
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


def base_provenance(device: str, precision: str = "fp32") -> dict[str, Any]:
    """Provenance common to a sweep's results; ``precision``: the measurements' (:mod:`lieq.precision`)."""
    import timm
    import torch

    from . import __version__
    from .precision import check_precision

    return {
        "device": _device_name(device),
        "precision": check_precision(precision),
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


def _check_finite(table, allow_nan: bool = False) -> None:
    """Refuse infinities, and NaN unless ``allow_nan`` (a model-free study's table may mark undefined entries)."""
    import numpy as np

    numeric = table.select_dtypes("number")
    ok = (lambda v: ~np.isinf(v)) if allow_nan else np.isfinite
    bad = [c for c in numeric.columns if not ok(numeric[c].to_numpy(dtype=float)).all()]
    if bad:
        raise FloatingPointError(f"non-finite values in column(s) {', '.join(bad)}")


def _run_experiment(exp, config: dict[str, Any], context: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """Call the experiment, halving ``batch_size`` (when it has one) after out-of-memory errors."""
    import torch

    config = dict(config)
    while True:
        try:
            return exp(config, **context), config
        except Exception as exc:
            if not _is_oom(exc) or int(config.get("batch_size", 1)) <= 1:
                raise
            config["batch_size"] = max(1, int(config["batch_size"]) // 2)
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def _split_output(exp, out) -> tuple[Any, dict[str, Any]]:
    """An experiment's return value as ``(table, provenance overrides)``; checks the table."""
    import pandas as pd

    table, extra = out if isinstance(out, tuple) else (out, {})
    if not isinstance(table, pd.DataFrame) or table.empty:
        raise ValueError(f"experiment {exp.name!r} returned no rows")
    if exp.models is None and "image" not in table.columns:
        raise ValueError(f"experiment {exp.name!r} returned no 'image' column")
    _check_finite(table, allow_nan=exp.model_free)
    return table, dict(extra)


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


def load_sweep_data(data: str, n_images: int | None, seed: int, skip_bad: bool = False):
    """Decode the sweep's images once: a folder path or a named source of :func:`lieq.data.load_source`
    (``skip_bad``: skip undecodable files, recorded in the provenance)."""
    from .data import load_source

    return load_source(data, n_images, seed, skip_bad)


def data_key(data: str) -> str:
    """The data source's name used in the configuration: a named source as is, a folder by its base name.

    The name alone does not identify the images (two folders may share it): sweeps add the images' fingerprint
    (:meth:`lieq.data.ImageSet.fingerprint`) to the configuration as ``images``, see :func:`images_key`.
    """
    from .data import SOURCES

    if data in SOURCES:
        return data
    return Path(data).expanduser().resolve().name


def images_key(key: dict[str, Any], images) -> dict[str, Any]:
    """``key`` with the fingerprint of the images actually used (ids, content hashes, labels, preprocessing) as
    ``images``; unchanged when the experiment takes no images."""
    if images is None or "data" not in key:
        return dict(key)
    return {**key, "images": images.fingerprint()}


def _same_images(path: Path, images) -> bool:
    """Whether a result stored before image fingerprints existed (its configuration has the data folder's name but
    no ``images``) was computed on ``images``: the same set of image ids, with the same labels where stored."""
    import pyarrow.parquet as pq

    try:
        names = pq.ParquetFile(path).schema_arrow.names
        table = pq.read_table(path, columns=[c for c in ("image", "label") if c in names]).to_pandas()
    except Exception:
        return False
    if "image" not in table or set(table["image"].astype(str)) != set(map(str, images.ids)):
        return False
    if "label" in table and images.label_space == "imagenet":
        want = dict(zip(map(str, images.ids), images.labels))
        pairs = table.drop_duplicates("image")
        return all(int(want[str(i)]) == int(v) for i, v in zip(pairs["image"], pairs["label"]))
    return True


def stored_state(
    run: str, experiment: str, tag: str, key: dict[str, Any], legacy: dict[str, Any], images, root
) -> tuple[str, str]:
    """:func:`lieq.results.status` of ``key``; a missing result also counts as ``done`` (detail ``legacy:PATH``)
    when a result stored under ``legacy`` (the key without the images' fingerprint, as written before
    fingerprints existed) holds exactly the ids and labels of ``images``."""
    state, detail = results.status(run, experiment, tag, key, root)
    if state != "missing" or legacy == key or images is None:
        return state, detail
    old, where = results.status(run, experiment, tag, legacy, root)
    if old == "done" and _same_images(Path(where), images):
        return "done", f"legacy:{where}"
    return state, detail


def model_names(exp, models: str | list[str] | None, order: str = "given") -> list[str]:
    """The models a sweep of ``exp`` covers: resolved timm tags (``order``: ``given`` or ``size``), the names an
    experiment with its own models chose among (all when ``models`` is ``None``), or a model-free study's pseudo-model
    name (``models`` must then be ``None`` or that name)."""
    from . import zoo

    if order not in ("given", "size"):
        raise ValueError(f"order must be 'given' or 'size', got {order!r}")
    given = None if models is None else [m.strip() for m in (models.split(",") if isinstance(models, str) else models)]
    given = None if given is None else [m for m in given if m]
    if exp.model_free:
        if given and given != [exp.models]:
            raise ValueError(f"experiment {exp.name!r} needs no models (it is stored as {exp.models!r}): drop --models")
        return [exp.models]
    if exp.models is not None:
        if not given:
            return list(exp.models)
        unknown = [m for m in given if m not in exp.models]
        if unknown:
            known = ", ".join(exp.models)
            raise ValueError(f"experiment {exp.name!r} has no model {unknown[0]!r} (its models: {known})")
        return list(dict.fromkeys(given))
    if not given:
        raise ValueError(f"experiment {exp.name!r} needs --models (presets and/or timm tags)")
    tags = zoo.resolve_models(given)
    if order == "size":
        params = zoo.catalogue().drop_duplicates("timm_tag").set_index("timm_tag")["params"]
        tags.sort(key=lambda t: float(params.get(t, math.inf)) if t in params.index else math.inf)
    return tags


def run_sweep(
    experiment: str,
    models: str | list[str] | None = None,
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
    dry_run: bool = False,
    skip_bad_images: bool = False,
    image_seed: int | None = None,
    precision: str = "fp32",
) -> SweepSummary:
    """Run ``experiment`` for every model of ``models`` (preset names and/or tags) and store the results.

    ``config`` holds the experiment's parameters (bound to its function's signature; strings are cast to the
    parameters' types); a parameter ``n_images`` of an experiment that declares one is filled from the sweep's value
    when not given.  ``order``: ``given`` (catalogue order) or ``size`` (fewest parameters first).  ``images``: an
    already decoded :class:`lieq.data.ImageSet` (otherwise ``data`` is loaded once, if the experiment takes images).
    ``input_size`` overrides every timm model's input size (quick tests of size-agnostic models; part of the
    configuration).  A model-free experiment takes no ``models`` and is stored under its pseudo-model name.
    ``dry_run``: compute nothing; the summary lists what is done, failed, busy and ``pending``.  ``image_seed``:
    the seed of the images' shuffle when it is not ``seed`` (e.g. several random initialisations measured on the same
    images; then part of the configuration).  Returns a :class:`SweepSummary`.
    """
    from . import experiments

    start = time.perf_counter()
    exp = experiments.get(experiment)
    user = dict(config or {})
    if "n_images" in exp.defaults and "n_images" not in user and n_images is not None:
        user["n_images"] = n_images
    exp_config = exp.config(user)
    tags = shard_items(model_names(exp, models, order), parse_shard(shard))
    key = store_key(exp, exp_config, weights, data, n_images, seed)
    from .precision import DEFAULT_PRECISION, check_precision

    if check_precision(precision) != DEFAULT_PRECISION:  # TF32 / bf16 results never share a key with fp32 ones
        key["precision"] = precision
    if input_size and exp.models is None:
        key["input_size"] = int(input_size)
    image_seed = seed if image_seed is None else int(image_seed)
    if image_seed != seed and (exp.models is None or exp.needs_images):
        key["image_seed"] = image_seed
    if images is None and tags and (exp.models is None or exp.needs_images):
        images = load_sweep_data(data, n_images, image_seed, skip_bad_images)  # the images identify the results
    legacy, key = key, images_key(key, images)
    summary = SweepSummary(experiment, run, images=key.get("images", ""))

    todo = []
    for tag in tags:
        state, detail = stored_state(run, experiment, tag, key, legacy, images, root)
        if state == "done":
            summary.skipped.append(tag)
            if detail.startswith("legacy:"):
                summary.legacy.append(tag)
            elif not dry_run:  # a process killed between saving the result and releasing its claim left a marker
                claim = _Claim(results.result_path(run, experiment, tag, key, root))
                record = claim.read()
                if record is not None and not claim.alive_elsewhere(record):
                    claim.release()
        elif state == "failed" and not retry_failed:
            summary.failed[tag] = f"(recorded earlier) {detail}"
        else:
            todo.append(tag)
    if dry_run:
        summary.pending = todo
        summary.seconds = time.perf_counter() - start
        return summary
    device = _resolve_device(device)
    if todo and images is None and (exp.models is None or exp.needs_images):
        images = load_sweep_data(data, n_images, image_seed)
    prov0 = base_provenance(device, precision) if todo else {}
    bar = todo
    if progress and not todo and tags:  # cached work: one line instead of an empty progress bar
        print(f"{experiment} / run {run}: already computed for {len(summary.skipped)} of {len(tags)} model(s)"
              + (f", {len(summary.failed)} failed earlier" if summary.failed else ""), flush=True)  # fmt: skip
    elif progress:
        from tqdm.auto import tqdm

        bar = tqdm(todo, desc=f"{experiment} models", unit="model", dynamic_ncols=True)
    for tag in bar:
        if progress:
            bar.set_postfix_str(tag, refresh=True)
        if stored_state(run, experiment, tag, key, legacy, images, root)[0] == "done":  # finished meanwhile elsewhere
            summary.skipped.append(tag)
            continue
        path = results.result_path(run, experiment, tag, key, root)
        claim = _Claim(path)
        record = claim.read()
        attempts = int(record.get("attempts", 0)) if record else 0
        if record and claim.alive_elsewhere(record):
            summary.busy.append(tag)
            continue
        prov = {
            **prov0,
            "weights": "none" if exp.model_free else weights,
            "data": _data_source(exp, images, data),
            "seed": seed,
            **(images.provenance() if images is not None else {}),
        }
        if attempts >= max_attempts:
            msg = f"process died during {attempts} earlier attempt(s) (killed, e.g. for memory?)"
            results.save_failure(run, experiment, tag, key, msg, prov, root)
            claim.release()
            summary.failed[tag] = msg
            continue
        if not claim.take(attempts + 1, seen=record):
            summary.busy.append(tag)
            continue
        context = dict(model_name=tag, weights=weights, data=data, n_images=n_images, seed=seed, device=device,
                       progress=progress, images=images)  # fmt: skip
        try:
            if exp.models is None:
                table, prov = _compute(exp, context, exp_config, prov, input_size)
            else:
                table, prov = _compute_own(exp, context, exp_config, prov)
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


def _data_source(exp, images, data: str) -> str:
    """The data provenance: the decoded images' source, the sweep's data for a study that reads it, else none."""
    if images is not None:
        return getattr(images, "source", data)
    return data if exp.models is None or "data" in exp.context else "none"


def _labels(images, model_name: str = ""):
    """The images' labels when they index the model's classes: ImageNet labels, or CIFAR-10 labels for the CIFAR-10
    zoo (``cifar-*`` models, :mod:`lieq.cifar_zoo`); else ``None`` (no accuracy is recorded)."""
    if images is None:
        return None
    if images.label_space == "imagenet" or (images.label_space == "cifar10" and model_name.startswith("cifar-")):
        return images.labels
    return None


def _compute(exp, context: dict[str, Any], exp_config: dict[str, Any], prov: dict[str, Any], input_size=None):
    """Build one timm model, preprocess the images for it, run the experiment; returns (table, provenance)."""
    from .data import preprocess
    from .weights import create_model

    t0 = time.perf_counter()
    images = context["images"]
    model, source = create_model(context["model_name"], context["weights"], seed=context["seed"])
    model = model.to(context["device"])
    inputs = preprocess(images.images, model, upsample=images.upsample, input_size=input_size).to(context["device"])
    labels = _labels(images, context["model_name"])
    context = {**context, "model": model, "inputs": inputs, "labels": labels, "image_ids": images.ids}
    from . import memory_plan
    from .precision import use_precision

    memory_plan.reset_peak_memory(context["device"])
    with use_precision(prov.get("precision", "fp32")):
        out, used = _run_experiment(exp, exp_config, context)
    table, extra = _split_output(exp, out)
    prov = {
        **prov,
        "weights": source,
        "input_size": int(inputs.shape[-1]),
        "n_images": len(images),
        "batch_size_used": int(used.get("batch_size", 0) or 0),
        "seconds": round(time.perf_counter() - t0, 3),
        "peak_memory_mb": memory_plan.peak_memory_mb(context["device"]),  # CUDA; None on CPUs
        **extra,
    }
    return table, prov


def _compute_own(exp, context: dict[str, Any], exp_config: dict[str, Any], prov: dict[str, Any]):
    """Run a model-free experiment, or one that builds its own models; returns (table, provenance)."""
    t0 = time.perf_counter()
    images = context["images"]
    if images is not None:
        context = {**context, "labels": _labels(images), "image_ids": images.ids}
    from .precision import use_precision

    with use_precision(prov.get("precision", "fp32")):
        out, used = _run_experiment(exp, exp_config, context)
    table, extra = _split_output(exp, out)
    prov = {
        **prov,
        "batch_size_used": int(used.get("batch_size", 0) or 0),
        "seconds": round(time.perf_counter() - t0, 3),
        **extra,
    }
    if images is not None:
        prov["n_images"] = len(images)
    return table, prov


# --------------------------------------------------------------------------------------------------- Slurm


def _shard_job(kwargs: dict[str, Any], shard: str) -> str:
    """One Slurm array task: shard ``shard`` (``i/n``) of the sweep ``kwargs``, without progress bars (log files).

    SIGTERM (``scancel``, the time limit, preemption) stops the task at once: the model in progress is abandoned
    and its claim released (submitit would ignore the signal and let Slurm kill the task mid-write ``KillWait``
    seconds later); submitting the same sweep again computes it.
    """
    import signal

    def stop(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop)
    try:
        summary = run_sweep(**{**kwargs, "shard": shard, "progress": False})
    except KeyboardInterrupt as exc:
        raise RuntimeError(f"array task stopped ({exc or 'interrupt'}); submit the same sweep to resume") from None
    return summary.report()


def slurm_gpus(gpus: int | None, device: str) -> int:
    """GPUs per array task: ``gpus`` when given, else one for a ``cuda`` device and none otherwise (``cpu`` and
    ``auto``: a GPU is requested only when asked for, so a sweep never fails to submit on a cluster without GPUs)."""
    if gpus is not None:
        if gpus < 0:
            raise ValueError(f"--gpus must be >= 0, got {gpus}")
        return int(gpus)
    return 1 if str(device).startswith("cuda") else 0


def slurm_cpus(cpus: int | None, partition: str | None = None, default: int = 8) -> int:
    """CPUs per array task: ``cpus`` when given, else ``default`` capped by the smallest node of the partition (as
    ``sinfo`` reports it), so that the default request fits every cluster (Slurm would keep it pending forever)."""
    if cpus is not None:
        if cpus < 1:
            raise ValueError(f"--cpus-per-task must be a positive integer, got {cpus}")
        return int(cpus)
    cmd = ["sinfo", "-h", "-o", "%c"] + (["-p", partition] if partition else [])
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
        sizes = [int(v.rstrip("+")) for v in out.split() if v.rstrip("+").isdigit()]
    except (OSError, subprocess.SubprocessError):
        sizes = []
    return max(1, min([default, *sizes]))


def submit_slurm(kwargs: dict[str, Any], n_shards: int, folder: str | Path, **slurm: Any):
    """Submit the sweep ``kwargs`` (:func:`run_sweep` arguments) as one Slurm job array (submitit); without Slurm,
    run it here.

    The models are split into ``n = min(n_shards, number of models)`` shards; the array has one task per shard that
    still has a model to compute (none at all when everything is done: the summary is returned), and the task of
    shard ``i`` runs ``run_sweep(..., shard=i/n)`` into the same results folder.  So a cancelled, failed or
    timed-out task is completed by submitting the same sweep again (finished models are skipped).

    ``slurm``: ``partition``, ``gpus`` (per task; default see :func:`slurm_gpus`), ``time`` (minutes),
    ``parallelism`` (array tasks at once), ``cpus`` (per task; default see :func:`slurm_cpus`), ``mem_gb``.  An
    sbatch rejection becomes a one-line ``ValueError``.  Returns the submitit jobs, or a :class:`SweepSummary` (the
    local run where there is no Slurm; the state of the sweep when nothing is left to submit).
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
    from . import experiments

    exp = experiments.get(kwargs["experiment"])
    tags = model_names(exp, kwargs.get("models"), kwargs.get("order", "given"))
    n_shards = max(1, min(int(n_shards), len(tags)))
    state = run_sweep(**{**kwargs, "dry_run": True, "progress": False})  # what is left to do
    pending = set(state.pending)
    shards = [f"{i}/{n_shards}" for i in range(n_shards) if pending & set(shard_items(tags, (i, n_shards)))]
    if not shards:
        print("lieq: nothing to submit (no model left to compute)")
        return state
    params = {
        "timeout_min": int(slurm.get("time") or 240),
        "cpus_per_task": slurm_cpus(slurm.get("cpus"), slurm.get("partition")),
        "slurm_array_parallelism": int(slurm.get("parallelism") or len(shards)),
        "name": f"lieq-{kwargs['experiment']}",
    }
    gpus = slurm_gpus(slurm.get("gpus"), kwargs.get("device", "cpu"))
    if gpus:
        params["gpus_per_node"] = gpus
    if slurm.get("partition"):
        params["slurm_partition"] = slurm["partition"]
    if slurm.get("mem_gb"):
        params["mem_gb"] = int(slurm["mem_gb"])
    executor.update_parameters(**params)
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):  # submitit prints sbatch's stderr itself before raising
            jobs = executor.map_array(_shard_job, [kwargs] * len(shards), shards)
    except (submitit.core.utils.FailedJobError, submitit.core.utils.FailedSubmissionError, OSError) as exc:
        lines = [ln.strip() for ln in (str(exc) or captured.getvalue()).splitlines() if ln.strip()]
        reason = lines[-1] if lines else type(exc).__name__
        raise ValueError(
            f"sbatch rejected the job array ({reason}); check --partition, --gpus, --cpus-per-task, "
            "--mem-gb and --time against the cluster (sinfo)"
        ) from None
    gpu_note = f"{gpus} GPU(s)" if gpus else "no GPU"
    print(
        f"lieq: submitted {len(jobs)} Slurm array task(s) (shards {', '.join(shards)}; {len(pending)} model(s) to "
        f"compute), {gpu_note} each: job {jobs[0].job_id.split('_')[0]} (logs in {folder}); run the same command "
        "again to complete cancelled or failed tasks"
    )
    return jobs


# --------------------------------------------------------------------------------------------------- CLI

#: Common options that go into the experiment's configuration when its function has the parameter (the value is
#: cast by the parameter's type, like ``--config`` values).
_COMMON = ("generators", "image_model", "method", "batch_size", "probes")


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
    from .cli import check_config, check_weights

    check_config({"n_images": args.n_images, **exp.config(user)})  # bad values fail here, before any model is built
    check_weights(args.weights)
    if args.slurm and args.shard:
        raise ValueError("--slurm makes its own shards (--slurm-shards N): drop --shard")
    if args.slurm and args.slurm_shards < 1:
        raise ValueError(f"--slurm-shards must be a positive integer, got {args.slurm_shards}")
    if args.list:
        tags = shard_items(model_names(exp, args.models, args.order), parse_shard(args.shard))
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
        image_seed=args.image_seed,
        root=args.results,
        retry_failed=args.retry_failed,
        max_attempts=args.max_attempts,
        order=args.order,
        input_size=args.input_size,
        skip_bad_images=args.skip_bad_images,
        precision=args.precision,
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
        summary = run_sweep(**kwargs, shard=args.shard, dry_run=args.dry_run)
    print(summary.report())
    if args.dry_run:
        states = {**dict.fromkeys(summary.skipped, "done"), **dict.fromkeys(summary.pending, "to compute")}
        states.update({t: "failed" for t in summary.failed})
        print("\n".join(f"  {tag}: {state}" for tag, state in states.items()))
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
    p.add_argument(
        "--models",
        default=None,
        help="presets and/or timm tags, comma-separated (paper, embedded, ...); none for model-free studies",
    )
    p.add_argument("--weights", default="random", help="random | hub | pip | file:PATH (default random)")
    p.add_argument(
        "--data", default="imagenet-sample", help="image folder, or imagenet-sample | embedded | cifar10 | cifar100"
    )
    p.add_argument("--n-images", type=int, default=100, help="images drawn with a seeded shuffle (default 100)")
    p.add_argument("--seed", type=int, default=0, help="image shuffle and random-init seed")
    p.add_argument("--image-seed", type=int, default=None, help="image shuffle seed when not --seed")
    p.add_argument("--run", default=None, help="results folder name under data/results (default: the experiment)")
    p.add_argument("--results", default=None, help="results root (default data/results or $LIEQ_RESULTS)")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N | auto")
    p.add_argument("--config", action="append", default=[], metavar="KEY=VALUE", help="experiment parameter")
    p.add_argument("--generators", default=None, help="(experiments with generators) names or e2e/layerwise/all")
    p.add_argument("--image-model", default=None, help="(experiments with image_model) bilinear | central | ...")
    p.add_argument("--method", default=None, help="(experiments with method) forward | double_backward")
    p.add_argument("--batch-size", default=None, help="(experiments with batch_size) images per batch")
    p.add_argument("--probes", default=None, help="(experiments with probes) random probes")
    p.add_argument("--input-size", type=int, default=None, help="override input size (quick tests; in the config)")
    p.add_argument("--shard", default=None, help="i/n: this process takes models i, i+n, ... (0 <= i < n)")
    p.add_argument("--order", default="given", choices=["given", "size"], help="model order (size: smallest first)")
    p.add_argument("--retry-failed", action="store_true", help="recompute models recorded as failed")
    p.add_argument("--max-attempts", type=int, default=2, help="give up on a model whose process died this often")
    p.add_argument("--list", action="store_true", help="print the models (of this shard) and exit")
    p.add_argument("--dry-run", action="store_true", help="compute nothing: report which models are done")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--precision",
        default="fp32",
        choices=["fp32", "tf32", "bf16"],
        help="float32 without TF32 (default), or TF32 / bf16 autocast for speed on GPUs (labelled, keyed apart)",
    )
    p.add_argument(
        "--skip-bad-images",
        action="store_true",
        help="skip undecodable image files (the next image takes each one's place; recorded in the provenance)",
    )
    g = p.add_argument_group("Slurm (submitit)")
    g.add_argument("--slurm", action="store_true", help="submit as a Slurm job array (local run without Slurm)")
    g.add_argument("--slurm-shards", type=int, default=8, help="array tasks (shards)")
    g.add_argument("--partition", default=None)
    g.add_argument("--gpus", type=int, default=None, help="GPUs per task (default: 1 with --device cuda, else 0)")
    g.add_argument("--time", type=int, default=240, help="minutes per task")
    g.add_argument("--array-parallelism", type=int, default=8, help="array tasks running at once")
    g.add_argument("--cpus-per-task", type=int, default=None, help="(default: 8, or fewer if the nodes have fewer)")
    g.add_argument("--mem-gb", type=int, default=None)
    g.add_argument("--slurm-folder", default=None, help="submitit logs (default <results>/slurm-logs)")
    p.set_defaults(handler=_cmd_sweep)
