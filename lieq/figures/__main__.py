"""``python -m lieq.figures notebook``: regenerate ``notebooks/05_figures.py`` from the figure declarations."""

from __future__ import annotations

import sys

from ..paths import notebooks_dir
from .registry import notebook_source


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv != ["notebook"]:
        print("usage: python -m lieq.figures notebook", file=sys.stderr)
        return 2
    path = notebooks_dir() / "05_figures.py"
    path.write_text(notebook_source())
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
