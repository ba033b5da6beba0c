"""Command line: ``lieq e2e ...`` (one model) and the subcommands other modules add (``lieq sweep ...``).

Errors from bad input (unknown model, generator or image model, a batch size or image count below one, missing,
empty or undecodable data, labels outside the model's classes, a weights file that is no checkpoint, weights that
cannot be had) are printed as one line, ``lieq: error: ...``, with exit status 2; everything that can be checked
without a model (:func:`check_config`, :func:`check_weights`) is checked before a model is built.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["check_config", "check_weights", "main", "write_table"]

#: Configuration values that count things and must be at least 1.
POSITIVE = ("batch_size", "probes", "n_images", "samples")

#: Modules that add subcommands: each has ``add_subcommands(subparsers)``; handlers are set with ``set_defaults``.
SUBCOMMAND_MODULES: list[str] = ["lieq.runner", "lieq.prefetch"]


def _user_errors() -> tuple[type[BaseException], ...]:
    from .data import DataError
    from .weights import UnknownModel, WeightsUnavailable

    return (DataError, UnknownModel, WeightsUnavailable, ValueError, FileNotFoundError)


def check_config(config: dict) -> None:
    """Reject, with a one-line ``ValueError``, configuration values no experiment can use: counts
    (:data:`POSITIVE`) below 1, an unknown ``image_model``, ``method`` or generator name."""
    for key in POSITIVE:
        value = config.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"--{key.replace('_', '-')} must be a positive integer, got {value!r}")
    if config.get("image_model") is not None:
        from .image_model import BAND_LIMITED_IMAGE_MODELS, IMAGE_MODELS

        known = [*IMAGE_MODELS, *BAND_LIMITED_IMAGE_MODELS]
        if config["image_model"] not in known:
            raise ValueError(f"unknown image model {config['image_model']!r} (known: {', '.join(known)})")
    if config.get("method") is not None:
        from .engine import METHODS

        if config["method"] not in METHODS:
            raise ValueError(f"unknown method {config['method']!r} (known: {', '.join(METHODS)})")
    if config.get("generators") is not None:
        from .image_model import resolve_generators

        resolve_generators(config["generators"])


def check_weights(weights: str) -> None:
    """Reject a ``file:PATH`` weights source whose file is missing or is no PyTorch (zip or pickle) or safetensors
    checkpoint, by its first bytes and before any model is built (a folder is checked per model when loading)."""
    if not weights.startswith("file:"):
        return
    from .weights import WeightsUnavailable

    path = Path(weights[len("file:") :]).expanduser()
    if path.is_dir():
        return
    if not path.is_file():
        raise WeightsUnavailable(f"weights file not found: {path}")
    with open(path, "rb") as fh:
        head = fh.read(16)
    is_zip = head[:4] == b"PK\x03\x04"  # torch.save's default format
    is_pickle = head[:1] == b"\x80"  # legacy torch.save / pickle protocol 2+
    is_safetensors = len(head) > 8 and head[8:9] == b"{" and 0 < int.from_bytes(head[:8], "little") < 1 << 32
    if not (is_zip or is_pickle or is_safetensors):
        raise WeightsUnavailable(
            f"--weights {weights}: not a PyTorch (.pth/.pt/.bin) or safetensors checkpoint (by its first bytes)"
        )


def _summary_table(table):
    """Mean LEE per generator (rows in the order the generators were measured)."""
    return table.groupby("generator", sort=False)[["mean_abs", "mean_sq"]].mean()


def write_table(table, out: str | Path) -> Path:
    """Write a DataFrame as CSV or parquet, chosen by the file extension."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        table.to_parquet(out, index=False)
    elif out.suffix == ".csv":
        table.to_csv(out, index=False)
    else:
        raise ValueError(f"output must end in .csv or .parquet, got {out}")
    return out


def _cmd_e2e(args: argparse.Namespace) -> int:
    import torch

    from .adapters import PREFIXES, load_model
    from .data import check_labels, load_source
    from .image_model import resolve_generators
    from .metrics import e2e_lee

    if args.out is not None and not str(args.out).endswith((".csv", ".parquet")):
        raise ValueError(f"--out must end in .csv or .parquet, got {args.out}")
    from .precision import check_precision, use_precision

    check_config(dict(batch_size=args.batch_size, n_images=args.n_images, image_model=args.image_model))
    check_precision(args.precision)
    check_weights(args.weights)
    gens = resolve_generators(args.generators)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but no CUDA device is available")
    images = load_source(args.images, args.n_images, args.seed, skip_bad=args.skip_bad_images)
    loaded = load_model(args.model, args.weights, seed=args.seed, output=args.output)
    model, source = loaded.model.to(args.device), loaded.source
    if args.output == "logits":
        check_labels(images, getattr(model, "num_classes", 0))
    if args.model.partition(":")[0] not in PREFIXES[1:]:  # timm (the default): the model's own timm eval transform
        inputs = loaded.preprocessing(images.images, upsample=images.upsample).to(args.device)
    else:
        inputs = loaded.preprocessing(images.images).to(args.device)
    start = time.perf_counter()
    with use_precision(args.precision):  # strict float32 unless --precision tf32 / bf16 (lieq.precision)
        table = e2e_lee(
            model,
            inputs,
            labels=images.labels if images.label_space == "imagenet" else None,
            output=args.output,
            field=args.field if args.field is not None else loaded.field,
            generators=[g.name for g in gens],
            image_model=args.image_model,
            method=args.method,
            batch_size=args.batch_size,
            image_ids=images.ids,
            progress=True,
        )
    table.insert(0, "model", args.model)
    table["weights"] = source
    table["precision"] = args.precision
    table["data"] = images.source
    table["seed"] = args.seed
    table["input_size"] = inputs.shape[-1]
    for key, value in images.provenance().items():
        table[key] = value
    seconds = time.perf_counter() - start
    where = f" -> {write_table(table, args.out)}" if args.out is not None else ""
    print(f"{args.model} ({source}), {len(images)} images, {seconds:.1f} s{where}")
    if images.skipped:
        print(f"  skipped {len(images.skipped)} undecodable image(s): {'; '.join(images.skipped)}")
    print(_summary_table(table).to_string(float_format=lambda v: f"{v:.6g}"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="lieq", description="Lie derivatives of image classifiers")
    parser.add_argument("--version", action="version", version=f"lieq {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    e2e = sub.add_parser("e2e", help="end-to-end LEE of one model on an image folder")
    e2e.add_argument(
        "--model",
        required=True,
        help="timm tag (default), timm:TAG, torchvision:NAME or hf:CONFIG (a transformers model type or a folder)",
    )
    e2e.add_argument("--output", default="logits", choices=["logits", "embedding", "dense"], help="kind of output")
    e2e.add_argument("--field", default=None, help="field of the model's output to measure (default: logits)")
    e2e.add_argument("--weights", default="random", help="random | hub | pip | file:PATH (default random)")
    e2e.add_argument(
        "--images",
        required=True,
        help="image folder (labels.csv or class sub-folders), or imagenet-sample | embedded | cifar10 | cifar100",
    )
    e2e.add_argument(
        "--skip-bad-images", action="store_true", help="skip undecodable image files (listed in the output)"
    )
    e2e.add_argument("--n-images", type=int, default=100)
    e2e.add_argument("--seed", type=int, default=0, help="image shuffle and random-init seed")
    e2e.add_argument("--generators", default="e2e", help="comma-separated names, or e2e / layerwise / all")
    image_models = "bilinear (paper) | bilinear_forward | bilinear_backward | central | fourier"
    e2e.add_argument("--image-model", default="bilinear", help=image_models)
    e2e.add_argument("--method", default="forward", choices=["forward", "double_backward"])
    e2e.add_argument("--batch-size", type=int, default=8)
    e2e.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    e2e.add_argument(
        "--precision", default="fp32", help="fp32 (default: strict float32, TF32 off) | tf32 | bf16 (labelled)"
    )
    e2e.add_argument("--out", default=None, help="output table, .csv or .parquet (default: only print the summary)")
    e2e.set_defaults(handler=_cmd_e2e)

    for name in SUBCOMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.add_subcommands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ._memory import retain_freed_memory

    retain_freed_memory()  # an entry point: malloc keeps freed memory (lieq._memory; LIEQ_RETAIN_MEMORY=0: off)
    try:
        return int(args.handler(args) or 0)
    except _user_errors() as exc:
        print(f"lieq: error: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lieq: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
