"""Move the aliasing / image-model / CIFAR results to the canonical experiment names and the runner's keys.

Before every study went through the sweep runner (``lieq.runner.run_sweep``), ``python -m lieq.aliasing``,
``python -m lieq.cifar`` and notebook 04 stored these results by a side route, under drifted names (``smoothness``,
``layerwise_smoothness``, ``trained_vs_random``, ``lee``, ...) and with ad-hoc configurations.  This script renames
each such result to ``data/results/<run>/<experiment>/<model>__<hash>.parquet``, where ``<experiment>`` is the
registered (hyphenated) name, ``<model>`` the timm tag the runner resolves the stored name to (bare architecture
names such as ``resnet18`` become their default tag, which is the same network) and ``<hash>`` the hash of the
configuration the runner computes for the same study (:func:`lieq.runner.store_key`, plus the images' fingerprint
where the study takes images), so that the runner finds the migrated results done.  Inside each file the ``run``,
``experiment``, ``model`` and ``config_hash`` columns and the ``lieq`` metadata record (configuration, hash, model)
are rewritten to match; every other column and every value are kept.

The configuration of each old result is rebuilt from what it stored (its configuration, its provenance columns) and
from the defaults of the side route that wrote it, as noted per study in :data:`MIGRATIONS`; where the stored rows
can confirm the rebuilt configuration (low-pass cut-offs, image models, image ids) they are checked, and a
mismatch stops the script before anything is written.

Usage: ``python scripts/migrate_results.py [--root data/results] [--dry-run]``.  Idempotent: results already
migrated are not touched.  Needs the compute environment (``lieq.runner``; the shared data folder for the images'
fingerprints).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lieq import results
from lieq.paths import shared_data

#: What one old result becomes: the sweep arguments (``weights``, ``data``, ``n_images``, ``seed``, ``config``) the
#: runner would be called with to compute it.
Sweep = dict[str, Any]


def _kind(weights: str) -> str:
    """A provenance weights source (``pip:...``, ``random:seed=1``) as the sweep's ``--weights`` value."""
    return weights.split(":", 1)[0]


def _names(values) -> str:
    return ",".join(values) if not isinstance(values, str) else values


def _fracs(values) -> str:
    return ",".join(f"{float(f):g}" for f in values) if not isinstance(values, str) else values


IMAGENET = str(shared_data("imagenet-sample"))
CIFAR_TEST = str(shared_data("cifar10-test"))
CIFAR_CHECKPOINTS = "file:" + str(shared_data("cifar10-resnet"))


def _layers(cfg: dict, row: dict) -> Sweep:
    # python -m lieq.aliasing layers: layer_study(all layers, DEFAULT_FRACS, image_models, (translate_x, rotate)),
    # 2 natural images of imagenet-sample (seed 0)
    config = {"fracs": _fracs(cfg["fracs"]), "image_models": _names(cfg["image_models"]), "size": cfg["size"],
              "channels": cfg["channels"], "batch": cfg["batch"]}  # fmt: skip
    return {"weights": "random", "data": IMAGENET, "n_images": 2, "seed": cfg["seed"], "config": config}


def _spectra(cfg: dict, row: dict) -> Sweep:
    # python -m lieq.aliasing spectra: nonlinearity_spectra() with its defaults
    return {"weights": "none", "data": "none", "n_images": None, "seed": 0,
            "config": {"size": cfg["size"], "oversample": cfg["oversample"]}}  # fmt: skip


def _smoothness(cfg: dict, row: dict) -> Sweep:
    # python -m lieq.aliasing smoothness: input_smoothness(fracs) with its defaults (translate_x, rotate; bilinear)
    return {"weights": _kind(row["weights"]), "data": IMAGENET, "n_images": cfg["n_images"], "seed": 0,
            "config": {"fracs": _fracs(cfg["fracs"])}}  # fmt: skip


def _layerwise_smoothness(cfg: dict, row: dict) -> Sweep:
    config = {k: cfg[k] for k in ("generator", "image_model", "probes")} | {"fracs": _fracs(cfg["fracs"].split(","))}
    return {"weights": _kind(row["weights"]), "data": IMAGENET, "n_images": cfg["n_images"], "seed": 0,
            "config": config}  # fmt: skip


def _blurpool(cfg: dict, row: dict) -> Sweep:
    # python -m lieq.aliasing blurpool: image_model_audit(bilinear, central) with its default generators; the images
    # were drawn with seed 0 for every initialisation seed
    return {"weights": _kind(row["weights"]), "data": IMAGENET, "n_images": cfg["n_images"], "seed": cfg["seed"],
            "image_seed": 0, "config": {"image_models": _names(cfg["image_models"])}}  # fmt: skip


def _audit(cfg: dict, row: dict) -> Sweep:
    return {"weights": _kind(row["weights"]), "data": IMAGENET, "n_images": cfg["n_images"], "seed": 0,
            "config": {"image_models": _names(cfg["image_models"])}}  # fmt: skip


def _layerwise_audit(cfg: dict, row: dict) -> Sweep:
    # python -m lieq.aliasing layerwise-audit: layerwise(translate_x, probes) under every audit image model
    return {"weights": _kind(row["weights"]), "data": IMAGENET, "n_images": cfg["n_images"], "seed": 0,
            "config": {"generator": cfg["generator"], "probes": cfg["probes"]}}  # fmt: skip


def _trained(cfg: dict, row: dict) -> Sweep:
    # python -m lieq.aliasing trained: e2e_lee(e2e generators, bilinear) with its defaults (forward, batch 8); images
    # drawn with seed 0 for every initialisation seed
    return {"weights": cfg["weights"], "data": IMAGENET, "n_images": cfg["n_images"], "seed": cfg["seed"],
            "image_seed": 0, "config": {"generators": cfg["generators"]}}  # fmt: skip


def _cifar_accuracy(cfg: dict, row: dict) -> Sweep:
    # python -m lieq.cifar: accuracy of the trained checkpoints on all test images
    return {"weights": CIFAR_CHECKPOINTS, "data": CIFAR_TEST, "n_images": None, "seed": 0, "config": {}}


def _cifar_lee(cfg: dict, row: dict) -> Sweep:
    # python -m lieq.cifar: lee_vs_depth(bilinear, batch 50), recalibration split seed 0, 500 + 100 defaults
    weights = CIFAR_CHECKPOINTS if cfg["weights"] == "trained" else cfg["weights"]
    config = {"generators": cfg["generators"]}
    config |= {k: cfg[k] for k in ("recal_images", "recal_batch") if k in cfg}
    return {"weights": weights, "data": CIFAR_TEST, "n_images": cfg["n_images"], "seed": cfg["seed"], "config": config}


#: (old run, old experiment) -> (new run, new experiment, rebuilds the sweep arguments from (config, first row)).
MIGRATIONS: dict[tuple[str, str], tuple[str, str, Callable[[dict, dict], Sweep]]] = {
    ("aliasing", "layers"): ("aliasing", "single-layers", _layers),
    ("aliasing", "spectra"): ("aliasing", "spectra", _spectra),
    ("aliasing", "spectra_summary"): ("aliasing", "spectra-summary", _spectra),
    ("aliasing", "smoothness"): ("aliasing", "input-smoothness", _smoothness),
    ("aliasing", "layerwise_smoothness"): ("aliasing", "layerwise-smoothness", _layerwise_smoothness),
    ("aliasing", "blurpool"): ("aliasing", "blurpool", _blurpool),
    ("image-model", "audit"): ("image-model", "image-model-audit", _audit),
    ("image-model", "layerwise_audit"): ("image-model", "layerwise-image-model-audit", _layerwise_audit),
    ("image-model", "trained_vs_random"): ("image-model", "e2e", _trained),
    ("cifar-resnet", "accuracy"): ("cifar-resnet", "cifar-accuracy", _cifar_accuracy),
    ("cifar-resnet", "lee"): ("cifar-resnet", "cifar-lee", _cifar_lee),
}


def _check(table: pa.Table, experiment: str, config: dict, images) -> None:
    """Confirm the rebuilt configuration by what the rows hold; raise ``SystemExit`` on a mismatch."""

    def values(column: str) -> set:
        return set(pc.unique(table.column(column)).to_pylist())

    problems = []
    if "fracs" in config and "lowpass" in table.column_names:
        if values("lowpass") != {float(f) for f in config["fracs"].split(",")}:
            problems.append(f"low-pass cut-offs {sorted(values('lowpass'))} vs {config['fracs']}")
    if "image_models" in config and "image_model" in table.column_names:
        if values("image_model") != set(config["image_models"].split(",")):
            problems.append(f"image models {sorted(values('image_model'))} vs {config['image_models']}")
    if images is not None and experiment != "single-layers" and values("image") != set(map(str, images.ids)):
        problems.append("the stored image ids are not the sweep's images")
    if problems:
        raise SystemExit(f"{experiment}: rebuilt configuration disagrees with the stored rows: {'; '.join(problems)}")


def migrate(root: Path, dry_run: bool = False) -> list[tuple[Path, Path]]:
    """Rename every old result under ``root``; returns the (old, new) paths."""
    from lieq import experiments
    from lieq.runner import images_key, load_sweep_data, store_key
    from lieq.zoo import resolve_models

    moves: list[tuple[Path, Path, pa.Table]] = []
    loaded: dict[tuple, Any] = {}
    for (old_run, old_exp), (run, name, rebuild) in MIGRATIONS.items():
        exp = experiments.get(name)
        for path in sorted((root / old_run / old_exp).glob("*.parquet")):
            pf = pq.ParquetFile(path)
            meta = json.loads(pf.schema_arrow.metadata[b"lieq"])
            table = pf.read()
            first = table.slice(0, 1).to_pylist()[0]
            sweep = rebuild(meta["config"], first)
            config = exp.config(sweep["config"])
            key = store_key(exp, config, sweep["weights"], sweep["data"], sweep["n_images"], sweep["seed"])
            images = None
            if exp.models is None or exp.needs_images:
                image_seed = sweep.get("image_seed", sweep["seed"])
                if image_seed != sweep["seed"]:
                    key["image_seed"] = image_seed
                where = (sweep["data"], sweep["n_images"], image_seed)
                if where not in loaded:
                    loaded[where] = load_sweep_data(*where)
                images = loaded[where]
                key = images_key(key, images)
            _check(table, name, config, images)
            h = results.config_hash(key)
            # timm models under the tag the runner resolves the name to (a bare architecture name such as
            # ``resnet18`` builds exactly its default tag ``resnet18.a1_in1k``: same weights init and preprocessing)
            model = resolve_models(meta["model"])[0] if exp.models is None else meta["model"]
            cols = {"run": run, "experiment": name, "model": model, "config_hash": h}
            for column, value in cols.items():
                i = table.column_names.index(column)
                table = table.set_column(i, column, pa.array([value] * len(table), type=pa.string()))
            meta.update(config=results._jsonable(key), config_hash=h, model=model)
            table = table.replace_schema_metadata({**table.schema.metadata, b"lieq": json.dumps(meta).encode()})
            moves.append((path, results.result_path(run, name, meta["model"], key, root), table))
    targets = [new for _, new, _ in moves]
    if len(set(targets)) != len(targets):
        raise SystemExit("two old results map to the same new file: the rebuilt configurations are not distinct")
    for old, new, table in moves:
        print(f"{old.relative_to(root)} -> {new.relative_to(root)}")
        if dry_run:
            continue
        new.parent.mkdir(parents=True, exist_ok=True)
        tmp = new.with_name(f".{new.name}.migrate.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, new)
        if new != old:
            old.unlink()
    if not dry_run:
        for old_run, old_exp in MIGRATIONS:
            folder = root / old_run / old_exp
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    return [(old, new) for old, new, _ in moves]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default=None, help="result store (default: lieq.results.default_root())")
    p.add_argument("--dry-run", action="store_true", help="print the renames, write nothing")
    args = p.parse_args(argv)
    root = Path(args.root) if args.root else results.default_root()
    moves = migrate(root, args.dry_run)
    print(f"{len(moves)} result(s) {'to migrate' if args.dry_run else 'migrated'} under {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
