"""Result store and sweep runner: atomic files, corruption detection, resume after SIGKILL, shards, failures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from lieq import results
from lieq.cli import main
from lieq.experiments import get as get_experiment
from lieq.experiments import register
from lieq.runner import parse_shard, run_sweep, shard_items

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SAMPLE = SHARED / "imagenet-sample"
needs_sample = pytest.mark.skipif(not SAMPLE.is_dir(), reason=f"shared data not found at {SAMPLE}")

PROV = {
    "weights": "random:seed=0",
    "data": "x",
    "seed": 0,
    "device": "cpu",
    "lieq_version": "0",
    "git_commit": "abc",
    "torch_version": "t",
    "timm_version": "t",
}
TINY = ["resnet10t.c3_in1k", "test_resnet.r160_in1k", "test_efficientnet.r160_in1k"]
OWN = ["image", "generator", "mean_abs", "mean_sq", "label", "pred", "correct"]


# ----------------------------------------------------------------------------------------------- store


def test_config_hash_is_canonical():
    a = results.config_hash({"a": 1, "b": [1, 2], "c": {"x": 1, "y": 2}})
    b = results.config_hash({"c": {"y": 2, "x": 1}, "b": [1, 2], "a": 1})
    assert a == b and len(a) == 12
    assert results.config_hash({"a": 2}) != results.config_hash({"a": 1})


def test_save_load_roundtrip_with_provenance(tmp_path):
    table = pd.DataFrame({"image": ["i0", "i1"], "mean_abs": [0.5, 0.25]})
    path = results.save(table, "r", "e2e", "m.tag", {"k": 1}, PROV, root=tmp_path)
    assert path == tmp_path / "r" / "e2e" / f"m.tag__{results.config_hash({'k': 1})}.parquet"
    assert not list(path.parent.glob("*.tmp"))
    back = results.load("r", root=tmp_path)
    assert list(back.columns[: len(results.PROVENANCE_COLUMNS)]) == results.PROVENANCE_COLUMNS
    assert back["mean_abs"].tolist() == [0.5, 0.25] and set(back["model"]) == {"m.tag"}
    assert results.load(experiment="e2e", root=tmp_path).shape == back.shape
    assert results.status("r", "e2e", "m.tag", {"k": 1}, tmp_path)[0] == "done"
    with pytest.raises(FileNotFoundError):
        results.load("other", root=tmp_path)


def test_truncated_file_is_detected_and_skipped(tmp_path):
    table = pd.DataFrame({"image": [f"i{k}" for k in range(50)], "v": np.arange(50.0)})
    good = results.save(table, "r", "e", "good", {}, PROV, root=tmp_path)
    bad = results.save(table, "r", "e", "bad", {}, PROV, root=tmp_path)
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    assert results.status("r", "e", "bad", {}, tmp_path)[0] == "corrupt"
    with pytest.raises(results.CorruptResult):
        results.read_result(bad)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = results.load("r", root=tmp_path)
    assert set(loaded.model) == {"good"} and len(loaded) == 50 and good.exists()
    assert any("bad" in str(w.message) for w in caught)


def test_load_imports_no_torch(tmp_path):
    results.save(pd.DataFrame({"image": ["a"], "v": [1.0]}), "r", "e", "m", {}, PROV, root=tmp_path)
    code = (
        "import sys; from lieq import results; "
        f"t = results.load('r', root={str(tmp_path)!r}); assert len(t) == 1; "
        "assert 'torch' not in sys.modules and 'timm' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_shard_split_is_a_partition():
    items = [f"m{k}" for k in range(11)]
    parts = [shard_items(items, parse_shard(f"{i}/3")) for i in range(3)]
    assert sorted(sum(parts, [])) == sorted(items)
    assert all(not set(a) & set(b) for a in parts for b in parts if a is not b)
    for bad in ("3/3", "x", "1-2"):
        with pytest.raises(ValueError):
            parse_shard(bad)


# ----------------------------------------------------------------------------------------------- runner (in process)

_CALLS: list[tuple[str, int]] = []


@register("_test_oom")
def _oom_experiment(model, inputs, image_ids, *, batch_size: int = 8, fail_above: int = 2):
    """Raises a CUDA-style out-of-memory error until ``batch_size`` is small enough."""
    _CALLS.append((type(model).__name__, batch_size))
    if batch_size > fail_above:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    return pd.DataFrame({"image": list(image_ids), "value": [float(inputs.mean())] * len(image_ids)})


@register("_test_nan")
def _nan_experiment(image_ids):
    return pd.DataFrame({"image": list(image_ids), "value": [float("nan")] * len(image_ids)})


# ----------------------------------------------------------------------------------------------- registry


def test_registry_binds_the_configuration_to_the_signature():
    """Keyword parameters with defaults are the configuration (written once); context parameters are not; strings
    from the command line are cast by the annotation; unknown keys and parameters without defaults are refused."""

    @register("_test_sig", description="a test experiment")
    def fn(model, inputs, seed, *, k: int = 3, scale: float = 0.5, on: bool = False, name: str = "a",
           size: int | None = None, progress: bool = False):  # fmt: skip
        return pd.DataFrame({"image": ["x"], "v": [k * scale]})

    exp = get_experiment("_test_sig")
    assert exp.defaults == {"k": 3, "scale": 0.5, "on": False, "name": "a", "size": None}
    assert exp.context == {"model", "inputs", "seed", "progress"} and exp.models is None
    assert exp.config({"k": "7", "scale": "2", "on": "yes", "name": "7", "size": "4"}) == {
        "k": 7, "scale": 2.0, "on": True, "name": "7", "size": 4}  # fmt: skip
    with pytest.raises(ValueError, match=r"has no parameter 'nope' \(parameters: k, scale, on, name, size\)"):
        exp.config({"nope": 1})
    with pytest.raises(ValueError, match="expected an integer"):
        exp.config({"k": "three"})
    assert exp({"k": 2, "scale": 0.25, "on": False, "name": "a", "size": None}, model=None, inputs=None, seed=0,
               images=None).v.iloc[0] == 0.5  # fmt: skip
    with pytest.raises(TypeError, match="needs a default"):
        register("_test_bad")(lambda model, k: None)
    with pytest.raises(TypeError, match="cannot take 'model'"):
        register("_test_bad", models="pseudo")(lambda model, *, k=1: None)


def test_one_spelling_every_stored_study_is_a_registered_experiment():
    """Every folder of the committed store is named after a registered experiment (no side routes, no legacy
    names), and the registry and lieq.conventions agree."""
    from lieq import conventions as C
    from lieq.experiments import names

    assert {n for n in names() if not n.startswith("_test")} == set(C.EXPERIMENTS)
    root = Path(__file__).resolve().parents[1] / "data" / "results"
    stored = {(p.parent.name, p.name) for p in root.glob("*/*") if p.is_dir() and any(p.glob("*.parquet"))}
    assert stored == {(run, e) for run, exps in C.STORE.items() for e in exps}
    assert {e for _, e in stored} <= set(C.EXPERIMENTS)
    for path in root.glob("*/*/*.parquet"):
        meta = pq.ParquetFile(path).schema_arrow.metadata[b"lieq"]
        assert json.loads(meta)["config_hash"] == path.stem.rsplit("__", 1)[1], path


def test_committed_results_keep_their_configuration_hashes():
    """The registered experiments bind to the same configuration as the committed results, so they stay done."""
    from lieq.experiments import get
    from lieq.runner import images_key, load_sweep_data, stored_state, sweep_config

    root = Path(__file__).resolve().parents[1] / "data" / "results"
    tag = "tf_efficientnet_lite0.in1k"
    for run, experiment, user, n_images in [
        ("embedded", "e2e", {}, 100),
        ("embedded", "layerwise", {"generators": "translate_x"}, 20),
        ("embedded", "baselines", {"samples": "20"}, 100),
        ("embedded", "layerwise-baselines", {"samples": "2"}, 20),
        ("random-init", "e2e", {}, 1),
        ("random-init", "prior", {}, 1),
    ]:
        weights = "random" if run == "random-init" else "pip"
        model = "resnet18.a1_in1k" if run == "random-init" else tag
        legacy = sweep_config(get(experiment).config(user), weights, "imagenet-sample", n_images, 0)
        # results computed since image fingerprints exist are keyed by the images too (lieq.runner.images_key)
        images = load_sweep_data(str(SAMPLE), n_images, 0) if SAMPLE.is_dir() else None
        key = images_key(legacy, images)
        state, detail = stored_state(run, experiment, model, key, legacy, images, root)
        assert state == "done", (run, experiment, detail)
        path = Path(detail.removeprefix("legacy:")) if detail.startswith("legacy:") else None
        path = path or results.result_path(run, experiment, model, key, root)
        stored = results.read_result(path)["config_hash"].iloc[0]
        assert stored in (results.config_hash(key), results.config_hash(legacy)), (experiment, path.name)


@pytest.fixture(scope="module")
def images():
    if not SAMPLE.is_dir():
        pytest.skip(f"shared data not found at {SAMPLE}")
    from lieq.data import load_image_folder

    return load_image_folder(SAMPLE, 2, seed=0)


def test_oom_retry_halves_batch(tmp_path, images):
    _CALLS.clear()
    s = run_sweep("_test_oom", "resnet10t.c3_in1k", data=str(SAMPLE), n_images=2, run="r", root=tmp_path,
                  images=images, input_size=32, progress=False)  # fmt: skip
    assert s.computed == ["resnet10t.c3_in1k"] and not s.failed
    assert [b for _, b in _CALLS] == [8, 4, 2]
    table = results.load("r", root=tmp_path)
    assert set(table.batch_size_used) == {2} and set(table.input_size) == {32}


def test_cached_work_says_already_computed_in_one_line(tmp_path, images, capsys):
    kw = dict(data=str(SAMPLE), n_images=2, run="r", root=tmp_path, images=images, input_size=32)
    assert run_sweep("_test_oom", "resnet10t.c3_in1k", progress=False, **kw).computed
    capsys.readouterr()
    again = run_sweep("_test_oom", "resnet10t.c3_in1k", progress=True, **kw)
    out, err = capsys.readouterr()
    assert again.skipped == ["resnet10t.c3_in1k"] and not again.computed
    assert out.strip() == "_test_oom / run r: already computed for 1 of 1 model(s)"
    assert "0model" not in err and "it/s" not in err  # no empty progress bar


def test_failures_are_isolated_recorded_and_skipped(tmp_path, images):
    kw = dict(data=str(SAMPLE), n_images=2, run="r", root=tmp_path, images=images, input_size=32, progress=False)
    # resnet10t has no pip weights; test_resnet at a tiny batch limit always runs out of "memory"
    s = run_sweep("_test_oom", "resnet10t.c3_in1k,test_resnet.r160_in1k", weights="pip", **kw)
    assert set(s.failed) == {"resnet10t.c3_in1k", "test_resnet.r160_in1k"} and not s.computed
    assert "no pip weights" in s.failed["resnet10t.c3_in1k"]
    fails = results.failures("r", root=tmp_path)
    assert set(fails.model) == set(s.failed) and fails.error.str.len().gt(0).all()
    again = run_sweep("_test_oom", "resnet10t.c3_in1k", weights="pip", **kw)
    assert "recorded earlier" in again.failed["resnet10t.c3_in1k"]
    s2 = run_sweep("_test_oom", "test_resnet.r160_in1k", config={"fail_above": 0}, **kw)
    assert "out of memory" in s2.failed["test_resnet.r160_in1k"]
    s3 = run_sweep("_test_nan", "test_resnet.r160_in1k", **kw)
    assert "non-finite" in s3.failed["test_resnet.r160_in1k"]
    fixed = run_sweep("_test_oom", "resnet10t.c3_in1k", weights="random", **kw)
    assert fixed.computed == ["resnet10t.c3_in1k"]


def test_dead_process_marker_counts_attempts(tmp_path, images):
    kw = dict(data=str(SAMPLE), n_images=2, run="r", root=tmp_path, images=images, input_size=32, progress=False)
    from lieq.runner import data_key, images_key, sweep_config

    key = sweep_config({"batch_size": 8, "fail_above": 2}, "random", data_key(str(SAMPLE)), 2, 0) | {"input_size": 32}
    key = images_key(key, images)  # results are keyed by the images' fingerprint too
    path = results.result_path("r", "_test_oom", "resnet10t.c3_in1k", key, tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    marker = results.running_path(path)
    marker.parent.mkdir(parents=True)
    import socket

    marker.write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "attempts": 2}))
    s = run_sweep("_test_oom", "resnet10t.c3_in1k", max_attempts=2, **kw)
    assert "died" in s.failed["resnet10t.c3_in1k"] and not marker.exists()
    marker.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname(), "attempts": 1}))
    busy = run_sweep("_test_oom", "resnet10t.c3_in1k", retry_failed=True, **kw)
    assert busy.busy == ["resnet10t.c3_in1k"]


def test_claim_is_exclusive_complete_and_cleans_a_killed_writers_leftovers(tmp_path):
    """The marker never exists empty; taking over a dead claim removes the dead writer's temporary files; a claim
    renamed aside that turns out to be live (taken over in between) is put back and the take-over fails."""
    import socket

    from lieq.runner import _Claim

    path = tmp_path / "e2e" / "m__0123456789ab.parquet"
    first = _Claim(path)
    assert first.take(1, seen=None)
    assert json.loads(first.path.read_text())["pid"] == os.getpid()  # complete the moment it exists
    assert not _Claim(path).take(1, seen=None)  # exclusive
    # a dead writer's leftovers: a half-written result and a half-written marker, plus another model's temp file
    leftovers = [path.parent / f".{path.name}.abc123.tmp", path.parent / f".{first.path.name}.def456.tmp"]
    other = path.parent / ".n__0123456789ab.parquet.xyz.tmp"
    for f in [*leftovers, other]:
        f.write_bytes(b"partial")
    dead = {"pid": 0, "host": socket.gethostname(), "attempts": 1}
    live = {"pid": os.getppid(), "host": socket.gethostname(), "attempts": 2}
    # someone else took the dead claim over after we read it: we must not steal theirs
    first.path.write_text(json.dumps(live))
    assert not _Claim(path).take(2, seen=dead)
    assert json.loads(first.path.read_text()) == live
    # a genuine take-over of the dead claim
    first.path.write_text(json.dumps(dead))
    assert _Claim(path).take(2, seen=dead)
    assert json.loads(first.path.read_text())["attempts"] == 2
    assert not any(f.exists() for f in leftovers) and other.exists()
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([first.path.name, other.name])


# ----------------------------------------------------------------------------------------------- bad inputs (CLI)


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--models", "no_such_preset_or_model"], "unknown model"),
        (["--models", "resnet50.no_such_tag"], "unknown tag"),
        (["--models", "gluon_xception65"], "not available"),
        (["--models", "smoke", "--data", "/nonexistent/folder"], "not found"),
        (["--models", "smoke", "--n-images", "0"], "positive"),
        (["--models", "smoke", "--config", "nokey=1"], "no parameter"),
        (["--models", "smoke", "--probes", "3"], "does not apply"),
        (["--models", "smoke", "--shard", "2/2"], "shard"),
    ],
)
def test_bad_inputs_give_one_line_errors(argv, words, capsys, tmp_path):
    data = ["--data", "embedded"] if "--data" not in argv else []  # always available (scikit-image photographs)
    code = main(["sweep", "e2e", *data, "--results", str(tmp_path), "--no-progress", *argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("lieq: error:") and len(err.splitlines()) == 1 and words in err


def test_cli_runs_a_model_free_study_and_reports_done(capsys, tmp_path):
    """``lieq sweep spectra`` needs no --models (stored under its pseudo-model); --dry-run reports it done; a study
    of timm models without --models is a one-line error."""
    argv = ["sweep", "spectra", "--config", "size=17", "--config", "oversample=4", "--config", "fracs=0.2,0.9",
            "--config", "nonlinearities=relu", "--results", str(tmp_path), "--run", "a", "--no-progress"]  # fmt: skip
    assert main(argv) == 0 and "1 computed" in capsys.readouterr().out
    assert main([*argv, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "1 already done" in out and "nonlinearities: done" in out
    assert main([*argv, "--list"]) == 0 and capsys.readouterr().out.split() == ["nonlinearities"]
    code = main(["sweep", "e2e", "--data", "embedded", "--results", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "needs --models" in err


def test_bad_labels_file_is_one_line_error(capsys, tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"")
    (tmp_path / "labels.csv").write_text("file,class_index\na.jpg,3\nb.jpg,x\n")
    code = main(["sweep", "e2e", "--models", "smoke", "--data", str(tmp_path), "--results", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "bad class_index" in err and "line 3" in err and len(err.splitlines()) == 1


# ----------------------------------------------------------------------------------------------- processes


def _sweep_cmd(root: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "lieq.cli", "sweep", "e2e", "--models", ",".join(TINY), "--data", str(SAMPLE),
        "--n-images", "2", "--input-size", "32", "--generators", "translate_x,rotate", "--batch-size", "1",
        "--results", str(root), "--run", "t", "--no-progress", *extra,
    ]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


@needs_sample
@pytest.mark.slow
def test_sigkill_resume_and_shards(tmp_path):
    """Kill a sweep mid-model with SIGKILL, resume: identical to an uninterrupted (sharded) run, nothing redone."""
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    # two concurrent shard processes on one results folder: the reference
    shards = [subprocess.Popen(_sweep_cmd(ref, "--shard", f"{i}/2"), env=_env()) for i in range(2)]
    # a sweep killed while its second model is in progress
    proc = subprocess.Popen(_sweep_cmd(killed), env=_env())
    folder = killed / "t" / "e2e"
    deadline = time.time() + 240
    caught = False
    while time.time() < deadline and proc.poll() is None:
        done = list(folder.glob("*.parquet")) if folder.is_dir() else []
        running = list(folder.glob("*.running.json")) if folder.is_dir() else []
        if len(done) == 1 and running:
            proc.send_signal(signal.SIGKILL)
            caught = True
            break
        time.sleep(0.002)  # the window (second model in progress) is short: the engine is fast on tiny models
    proc.wait(timeout=60)
    assert caught, "the sweep ended before it could be killed mid-model"
    assert proc.returncode == -signal.SIGKILL
    first = next(folder.glob("*.parquet"))
    stamp = (first.stat().st_mtime_ns, first.stat().st_ino, first.read_bytes())
    assert not [p for p in folder.iterdir() if p.suffix == ".parquet" and p != first]
    # resume
    subprocess.run(_sweep_cmd(killed), env=_env(), check=True, timeout=300)
    assert (first.stat().st_mtime_ns, first.stat().st_ino, first.read_bytes()) == stamp
    assert not list(folder.glob("*.running.json")) and not list(folder.glob("*.tmp"))
    for p in shards:
        assert p.wait(timeout=300) == 0
    a = results.load("t", root=killed).sort_values(["model", "image", "generator"]).reset_index(drop=True)
    b = results.load("t", root=ref).sort_values(["model", "image", "generator"]).reset_index(drop=True)
    assert sorted(set(a.model)) == sorted(TINY) == sorted(set(b.model))
    assert len(a) == len(b) == 3 * 2 * 2 and not a.duplicated(["model", "image", "generator"]).any()
    pd.testing.assert_frame_equal(a[["model", *OWN]], b[["model", *OWN]])
    assert (a.mean_abs > 0).all()


def test_slurm_falls_back_to_local_run(tmp_path, images, capsys, monkeypatch):
    pytest.importorskip("submitit")
    import shutil

    from lieq.runner import SweepSummary, submit_slurm

    which = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "sbatch" else which(name, *a, **k))

    kwargs = dict(experiment="_test_oom", models="resnet10t.c3_in1k", data=str(SAMPLE), n_images=2, run="r",
                  root=tmp_path, images=images, input_size=32, progress=False)  # fmt: skip
    out = submit_slurm(kwargs, 2, tmp_path / "logs", partition="gpu", gpus=1, time=10)
    assert isinstance(out, SweepSummary) and out.computed == ["resnet10t.c3_in1k"]
    assert "no Slurm here" in capsys.readouterr().out and not (tmp_path / "logs").exists()
