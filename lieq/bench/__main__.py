"""``python -m lieq.bench [names...] [--device cpu|cuda]``: run benchmarks, print and write data/bench/<name>.csv."""

from __future__ import annotations

import argparse
import importlib
import platform
from pathlib import Path

import pandas as pd
import torch

from . import BENCHMARKS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lieq.bench")
    parser.add_argument("names", nargs="*", default=BENCHMARKS, help=f"benchmarks to run (default: {BENCHMARKS})")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out-dir", default="data/bench")
    args = parser.parse_args(argv)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    for name in args.names:
        module = importlib.import_module(f"lieq.bench.{name}")
        table = module.run(args.device)
        path = out_dir / f"{name}.csv"
        if path.exists() and args.device != "cpu":  # keep the CPU rows when adding GPU rows
            old = pd.read_csv(path)
            table = pd.concat([old[old.device != args.device], table], ignore_index=True)
        table.to_csv(path, index=False)
        print(f"\n== {name} -> {path}")
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
