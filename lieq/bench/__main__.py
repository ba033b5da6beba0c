"""``python -m lieq.bench [names...] [--device cpu|cuda]``: run benchmarks, print and write data/bench/<name>.csv."""

from __future__ import annotations

import argparse
import importlib
import platform
from pathlib import Path

import pandas as pd
import torch

from .._memory import retain_freed_memory
from . import BENCHMARKS


def _write(table: pd.DataFrame, path: Path, device: str) -> None:
    table = table.copy()
    table.attrs = {}
    if path.exists() and device != "cpu":  # keep the CPU rows when adding GPU rows
        old = pd.read_csv(path)
        table = pd.concat([old[old.device != device], table], ignore_index=True)
    table.to_csv(path, index=False)
    print(f"\n== {path.stem} -> {path}")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lieq.bench")
    parser.add_argument("names", nargs="*", default=BENCHMARKS, help=f"benchmarks to run (default: {BENCHMARKS})")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out-dir", default="data/bench")
    args = parser.parse_args(argv)
    memory = retain_freed_memory()  # an entry point: the engine's speed on CPUs (lieq._memory; LIEQ_RETAIN_MEMORY=0)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cpu = platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, {cpu}, {torch.get_num_threads()} threads, malloc retains freed memory: {memory}")
    for name in args.names:
        module = importlib.import_module(f"lieq.bench.{name}")
        table = module.run(args.device)
        for table_name, part in {name: table, **table.attrs.get("extra", {})}.items():
            _write(part, out_dir / f"{table_name}.csv", args.device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
