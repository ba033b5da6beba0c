"""Command line: ``lieq e2e ...`` (one model) and the subcommands other modules add (``lieq sweep ...``).

Errors from bad input (unknown model or generator, missing or empty data, weights that cannot be had) are printed as
one line, ``lieq: error: ...``, with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main", "write_table"]

#: Modules that add subcommands: each has ``add_subcommands(subparsers)``; handlers are set with ``set_defaults``.
SUBCOMMAND_MODULES: list[str] = ["lieq.runner"]


def _user_errors() -> tuple[type[BaseException], ...]:
    from .data import DataError
    from .weights import UnknownModel, WeightsUnavailable

    return (DataError, UnknownModel, WeightsUnavailable, ValueError, FileNotFoundError)


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

    from .data import load_image_folder, preprocess
    from .image_model import resolve_generators
    from .metrics import e2e_lee
    from .weights import create_model

    if not str(args.out).endswith((".csv", ".parquet")):
        raise ValueError(f"--out must end in .csv or .parquet, got {args.out}")
    gens = resolve_generators(args.generators)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but no CUDA device is available")
    images = load_image_folder(args.images, args.n_images, args.seed)
    model, source = create_model(args.model, args.weights, seed=args.seed)
    model = model.to(args.device)
    inputs = preprocess(images.images, model)
    start = time.perf_counter()
    table = e2e_lee(
        model,
        inputs,
        labels=images.labels,
        generators=[g.name for g in gens],
        image_model=args.image_model,
        method=args.method,
        batch_size=args.batch_size,
        image_ids=images.ids,
        progress=True,
    )
    table.insert(0, "model", args.model)
    table["weights"] = source
    table["data"] = images.source
    table["seed"] = args.seed
    table["input_size"] = inputs.shape[-1]
    out = write_table(table, args.out)
    per = table.groupby("generator", sort=False)["mean_abs"].mean()
    print(f"{args.model} ({source}), {len(images)} images, {time.perf_counter() - start:.1f} s -> {out}")
    print(per.to_string(float_format=lambda v: f"{v:.6f}"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="lieq", description="Lie derivatives of image classifiers")
    parser.add_argument("--version", action="version", version=f"lieq {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    e2e = sub.add_parser("e2e", help="end-to-end LEE of one model on an image folder")
    e2e.add_argument("--model", required=True, help="timm model tag, e.g. resnet50.a1_in1k")
    e2e.add_argument("--weights", default="random", help="random | hub | pip | file:PATH (default random)")
    e2e.add_argument("--images", required=True, help="image folder (labels.csv or class sub-folders)")
    e2e.add_argument("--n-images", type=int, default=100)
    e2e.add_argument("--seed", type=int, default=0, help="image shuffle and random-init seed")
    e2e.add_argument("--generators", default="e2e", help="comma-separated names, or e2e / layerwise / all")
    image_models = "bilinear (paper) | bilinear_forward | bilinear_backward | central | fourier"
    e2e.add_argument("--image-model", default="bilinear", help=image_models)
    e2e.add_argument("--method", default="forward", choices=["forward", "double_backward"])
    e2e.add_argument("--batch-size", type=int, default=8)
    e2e.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    e2e.add_argument("--out", required=True, help="output table, .csv or .parquet")
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
