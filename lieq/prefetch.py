"""``lieq weights prefetch --models PRESET``: put every weight a preset needs into the local caches before a GPU job.

Compute nodes often have no internet.  On a login node, ``lieq weights prefetch --models paper`` downloads, for each
model tag, the file timm's ``pretrained=True`` would load (the safetensors file of the tag's ``hf_hub_id`` in the
Hugging Face cache, falling back to the ``.bin`` file as timm does; the ``torch.hub`` checkpoint folder for the few
tags timm gets from a plain URL); ``--weights hub`` sweeps then load from that cache without touching the network
(:func:`lieq.weights.cached_weights`).  Models already cached are skipped, so an interrupted prefetch resumes where it
stopped (``huggingface_hub`` also resumes a partly downloaded file).  The summary lists what is present, what was
downloaded and what is missing with a one-line reason; the exit status is 1 when something is missing.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["PrefetchReport", "add_subcommands", "prefetch"]


@dataclass
class PrefetchReport:
    """Per model tag: already ``present`` (path), ``downloaded`` now (path) or ``missing`` (one-line reason)."""

    present: dict[str, str] = field(default_factory=dict)
    downloaded: dict[str, str] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)

    def report(self) -> str:
        from .weights import _hf_cache

        lines = [
            f"weights: {len(self.present)} already cached, {len(self.downloaded)} downloaded, {len(self.missing)} "
            f"missing (Hugging Face cache {_hf_cache()})"
        ]
        lines += [f"  MISSING {tag}: {why}" for tag, why in self.missing.items()]
        return "\n".join(lines)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def _download(cfg: dict) -> str:
    """Download what timm's ``pretrained=True`` loads for ``cfg``; returns the local path (raises on failure)."""
    from .weights import _hf_cache, hub_filenames

    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError

        repo, _, revision = hub_id.partition("@")
        names = hub_filenames(cfg)
        for name in names:
            try:
                return hf_hub_download(repo, name, revision=revision or None, cache_dir=_hf_cache())
            except EntryNotFoundError:
                continue
        raise FileNotFoundError(f"{hub_id} has none of {', '.join(names)}")
    from timm.models._hub import download_cached_file

    return download_cached_file(cfg["url"], progress=True)


def prefetch(models: str | list[str], progress: bool = True) -> PrefetchReport:
    """Cache the pretrained weights of every model of ``models`` (presets and/or tags; :func:`lieq.zoo.resolve_models`).

    Cached models are not downloaded again; when the hub is unreachable (or ``HF_HUB_OFFLINE`` is set) nothing is
    attempted and the uncached models are reported missing.
    """
    from .weights import cached_weights, hub_reachable, pretrained_cfg
    from .zoo import resolve_models

    tags = resolve_models(models)
    out = PrefetchReport()
    reachable: bool | None = None
    bar = tags
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(tags, desc="weights", unit="model", dynamic_ncols=True)
    for tag in bar:
        if progress:
            bar.set_postfix_str(tag, refresh=False)
        cfg = pretrained_cfg(tag)
        if not (cfg.get("hf_hub_id") or cfg.get("url")):
            out.missing[tag] = "timm has no pretrained weights for this tag"
            continue
        hit = cached_weights(cfg)
        if hit is not None:
            out.present[tag] = hit
            continue
        if reachable is None:
            reachable = hub_reachable()
        if not reachable:
            out.missing[tag] = f"not cached and the hub is unreachable (offline): {cfg.get('hf_hub_id') or cfg['url']}"
            continue
        try:
            out.downloaded[tag] = _download(cfg)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # network errors, gated or removed repositories, ...
            out.missing[tag] = _one_line(exc)
    return out


def _cmd_prefetch(args: argparse.Namespace) -> int:
    import os

    if args.cache_dir:
        os.environ["HF_HUB_CACHE"] = str(Path(args.cache_dir).expanduser())
    summary = prefetch(args.models, progress=not args.no_progress)
    print(summary.report())
    return 1 if summary.missing else 0


def add_subcommands(subparsers) -> None:
    """Add ``lieq weights prefetch ...`` to the CLI."""
    p = subparsers.add_parser("weights", help="manage pretrained weights (prefetch into the local caches)")
    sub = p.add_subparsers(dest="weights_command", required=True)
    q = sub.add_parser(
        "prefetch",
        help="download every weight of the models into the caches (skips what is cached)",
        description=(
            "Download the pretrained weights timm loads for each model (Hugging Face cache; torch.hub for URL-only "
            "weights), skipping cached ones; list what is missing. Exit status 1 when something is missing."
        ),
    )
    q.add_argument("--models", required=True, help="presets and/or timm tags, comma-separated (paper, paper-core, ...)")
    q.add_argument("--cache-dir", default=None, help="Hugging Face cache folder (default: $HF_HUB_CACHE or ~/.cache)")
    q.add_argument("--no-progress", action="store_true", help="no progress bar")
    q.set_defaults(handler=_cmd_prefetch)
