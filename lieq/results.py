"""Result store: one parquet file per (run, experiment, model tag, configuration), with provenance in every row.

Layout: ``<root>/<run>/<experiment>/<model>__<confighash>.parquet`` where ``root`` is ``data/results`` of the
checkout (or ``$LIEQ_RESULTS``), ``model`` is the timm tag (characters outside ``[A-Za-z0-9._-]`` become ``_``) and
``confighash`` is the first 12 hex digits of the SHA-256 of the configuration as canonical JSON (sorted keys).

Writes are atomic: the table goes to a temporary file in the same folder, is flushed to disk and then renamed over
the final name, so a reader (or a process killed at any moment, SIGKILL included) never sees a half-written result.
Every file also carries, in its parquet key-value metadata, a ``lieq`` record (row count, configuration hash); a
file whose footer cannot be read, or whose metadata or row count disagree, is *corrupt*: :func:`load` skips it with a
warning and :func:`status` reports it, so the runner recomputes it.  Failures are stored next to results as
``<model>__<confighash>.error.json`` and markers of work in progress as ``....running.json``.

This module imports only pandas and pyarrow (no torch), so figures can be drawn from cached results in a light
environment.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .conventions import DEFAULT_PRECISION
from .paths import results_root

__all__ = [
    "PROVENANCE_COLUMNS",
    "CorruptResult",
    "config_hash",
    "default_root",
    "failures",
    "load",
    "result_path",
    "save",
    "save_failure",
    "status",
]

#: Columns every stored row carries, in this order, before the experiment's own columns.
PROVENANCE_COLUMNS = [
    "run",
    "experiment",
    "model",
    "config_hash",
    "weights",
    "data",
    "seed",
    "device",
    "precision",
    "lieq_version",
    "git_commit",
    "torch_version",
    "timm_version",
    "date",
]

_META_KEY = b"lieq"


class CorruptResult(RuntimeError):
    """A result file that cannot be trusted (unreadable, truncated, or inconsistent metadata)."""


def default_root() -> Path:
    """``$LIEQ_RESULTS`` if set, else ``data/results`` of the checkout (``./lieq-results`` when installed; see
    :func:`lieq.paths.results_root`)."""
    return results_root()


def _root(root: str | Path | None) -> Path:
    return Path(root).expanduser() if root is not None else default_root()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items())}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def config_hash(config: dict[str, Any]) -> str:
    """First 12 hex digits of SHA-256 of the configuration as canonical JSON (sorted keys, no whitespace)."""
    text = json.dumps(_jsonable(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def safe_name(model: str) -> str:
    """A model tag as a file-name stem (``/`` and other odd characters become ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", model)


def result_path(run: str, experiment: str, model: str, config: dict[str, Any], root: str | Path | None = None) -> Path:
    """Where the result of ``model`` under ``config`` lives."""
    return _root(root) / run / experiment / f"{safe_name(model)}__{config_hash(config)}.parquet"


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(path.name[: -len(".parquet")] + suffix)


def error_path(path: Path) -> Path:
    return _sibling(path, ".error.json")


def running_path(path: Path) -> Path:
    return _sibling(path, ".running.json")


def _atomic_write(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then fsync and rename onto ``path`` (same folder, so the rename is atomic)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def remove_temporary_files(path: Path) -> None:
    """Delete the temporary files (``.<name>.*.tmp``, see :func:`_atomic_write`) a killed writer left for the result
    at ``path`` and its error and running markers.  Call it only while holding the model's claim."""
    stem = path.name[: -len(".parquet")]
    for leftover in path.parent.glob(f".{stem}.*.tmp"):
        leftover.unlink(missing_ok=True)


def write_json(path: Path, record: dict[str, Any]) -> None:
    """Write a JSON record atomically."""
    _atomic_write(path, lambda tmp: tmp.write_text(json.dumps(_jsonable(record), indent=1)))


def save(
    table: pd.DataFrame,
    run: str,
    experiment: str,
    model: str,
    config: dict[str, Any],
    provenance: dict[str, Any],
    root: str | Path | None = None,
) -> Path:
    """Store ``table`` atomically with the provenance columns prepended; returns the file path.

    ``provenance`` supplies ``weights, data, seed, device, lieq_version, git_commit, torch_version, timm_version`` and
    optionally ``date`` (default: now, UTC) and ``precision`` (default ``fp32``, the engine's default,
    :mod:`lieq.precision`) plus any extra columns (constant per file).  ``run``, ``experiment``, ``model`` and
    ``config_hash`` are filled in here.  A non-default precision must also be in ``config`` (so that it never shares
    a key with an fp32 result).  A previous error record of the same key is removed.
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"expected a DataFrame, got {type(table).__name__}")
    path = result_path(run, experiment, model, config, root)
    h = config_hash(config)
    prov = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "precision": DEFAULT_PRECISION}
    prov.update(provenance)
    prov.update(run=run, experiment=experiment, model=model, config_hash=h)
    if prov["precision"] != config.get("precision", DEFAULT_PRECISION):
        raise ValueError(f"precision {prov['precision']!r} of the provenance is not the configuration's")
    missing = [c for c in PROVENANCE_COLUMNS if c not in prov]
    if missing:
        raise ValueError(f"provenance lacks {', '.join(missing)}")
    head = {c: prov[c] for c in PROVENANCE_COLUMNS}
    extra = {k: v for k, v in prov.items() if k not in head and k not in table.columns}
    own = table.drop(columns=[c for c in table.columns if c in head])
    out = pd.concat(
        [pd.DataFrame({k: [v] * len(own) for k, v in {**head, **extra}.items()}, index=own.index), own], axis=1
    ).reset_index(drop=True)
    arrow = pa.Table.from_pandas(out, preserve_index=False)
    meta = {"rows": len(out), "config_hash": h, "config": _jsonable(config), "model": model}
    arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}), _META_KEY: json.dumps(meta).encode()})
    _atomic_write(path, lambda tmp: pq.write_table(arrow, tmp))
    error_path(path).unlink(missing_ok=True)
    return path


def save_failure(
    run: str,
    experiment: str,
    model: str,
    config: dict[str, Any],
    error: str,
    provenance: dict[str, Any] | None = None,
    root: str | Path | None = None,
) -> Path:
    """Record that ``model`` failed under ``config`` (``error`` is a one-line message); returns the record's path."""
    path = error_path(result_path(run, experiment, model, config, root))
    record = {
        "run": run,
        "experiment": experiment,
        "model": model,
        "config_hash": config_hash(config),
        "config": config,
        "error": error,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **(provenance or {}),
    }
    write_json(path, record)
    return path


def read_result(path: str | Path) -> pd.DataFrame:
    """Read one result file, checking its footer, metadata and row count; raises :class:`CorruptResult`."""
    path = Path(path)
    try:
        pf = pq.ParquetFile(path)
        meta = json.loads((pf.schema_arrow.metadata or {})[_META_KEY])
        table = pf.read().to_pandas()
    except Exception as exc:
        raise CorruptResult(f"{path}: unreadable result ({type(exc).__name__}: {exc})".splitlines()[0]) from exc
    if len(table) != int(meta.get("rows", -1)):
        raise CorruptResult(f"{path}: {len(table)} rows, metadata says {meta.get('rows')}")
    if "config_hash" in table and len(table) and table["config_hash"].iloc[0] != meta.get("config_hash"):
        raise CorruptResult(f"{path}: configuration hash in rows and metadata differ")
    return table


def status(
    run: str, experiment: str, model: str, config: dict[str, Any], root: str | Path | None = None
) -> tuple[str, str]:
    """``(state, detail)`` of one key: ``done``, ``failed`` (detail: the error), ``corrupt`` or ``missing``."""
    path = result_path(run, experiment, model, config, root)
    if path.exists():
        try:
            pq.ParquetFile(path).schema_arrow.metadata[_META_KEY]
        except Exception as exc:
            return "corrupt", f"{type(exc).__name__}: {exc}".splitlines()[0]
        return "done", str(path)
    err = error_path(path)
    if err.exists():
        try:
            return "failed", json.loads(err.read_text())["error"]
        except Exception:
            return "missing", ""
    return "missing", ""


def _experiment_dirs(root: Path, run: str | None, experiment: str | None) -> list[Path]:
    runs = [root / run] if run is not None else sorted(p for p in root.glob("*") if p.is_dir())
    dirs = []
    for r in runs:
        if experiment is not None:
            dirs.append(r / experiment)
        else:
            dirs.extend(sorted(p for p in r.glob("*") if p.is_dir()))
    return [d for d in dirs if d.is_dir()]


def load(
    run: str | None = None, experiment: str | None = None, root: str | Path | None = None, precision: str | None = None
) -> pd.DataFrame:
    """All results of a run (and/or experiment) as one tidy DataFrame; corrupt files are skipped with a warning.

    ``load("embedded")`` reads every experiment of run ``embedded``; ``load(experiment="e2e")`` reads that experiment
    in every run.  Raises ``FileNotFoundError`` when nothing matches.

    Results of different floating-point precisions (column ``precision``; files written before it existed were all
    computed in fp32) are never mixed silently: ``precision=None`` raises ``ValueError`` when the files found hold
    more than one; ``precision="fp32"`` (or ``"tf32"``, ``"bf16"``) keeps only that one.
    """
    if run is None and experiment is None:
        raise ValueError("give a run, an experiment or both")
    base = _root(root)
    dirs = _experiment_dirs(base, run, experiment)
    if not dirs:
        raise FileNotFoundError(f"no results for run={run!r} experiment={experiment!r} under {base}")
    tables = []
    for d in dirs:
        for path in sorted(d.glob("*.parquet")):
            try:
                tables.append(read_result(path))
            except CorruptResult as exc:
                warnings.warn(f"skipping {exc}", stacklevel=2)
    if not tables:
        return pd.DataFrame(columns=PROVENANCE_COLUMNS)
    table = pd.concat(tables, ignore_index=True)
    table["precision"] = table["precision"].fillna(DEFAULT_PRECISION) if "precision" in table else DEFAULT_PRECISION
    if precision is not None:
        return table[table["precision"] == precision].reset_index(drop=True)
    found = sorted(table["precision"].unique())
    if len(found) > 1:
        raise ValueError(f"results of different precisions ({', '.join(found)}): pass precision= to choose one")
    return table


def failures(run: str | None = None, experiment: str | None = None, root: str | Path | None = None) -> pd.DataFrame:
    """The recorded failures (one row per model and configuration: ``model, config_hash, error, ...``)."""
    rows = []
    for d in _experiment_dirs(_root(root), run, experiment):
        for path in sorted(d.glob("*.error.json")):
            try:
                rows.append(json.loads(path.read_text()))
            except Exception:
                continue
    cols = ["run", "experiment", "model", "config_hash", "error"]
    table = pd.DataFrame(rows)
    return table.reindex(columns=cols + [c for c in table.columns if c not in cols])
