"""``lieq sweep --slurm`` on a real single-node Slurm cluster started by the test (Debian's slurm-wlm and munge).

The module fixture writes a munge key and a ``slurm.conf`` into a temporary folder (one node: this host with its
real CPU count and memory; one partition; localhost addresses and free ports only), starts ``munged``,
``slurmctld`` and ``slurmd`` as child processes, and stops them by their process ids at the end.  The client
commands get the configuration through ``SLURM_CONF`` in their environment only.  ``.ci/run`` installs the packages;
elsewhere the module is skipped with the reason.
"""

from __future__ import annotations

import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from lieq import results, zoo

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scancel", "sinfo")
OWN = ["image", "generator", "mean_abs", "mean_sq"]  # the embedded photographs have no labels


def _missing() -> list[str]:
    return [c for c in (*DAEMONS, *CLIENTS) if shutil.which(c) is None and not Path(f"/usr/sbin/{c}").is_file()]


def _exe(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Cluster:
    root: Path
    conf: Path
    env: dict[str, str]
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def run(self, *cmd: str, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(list(cmd), capture_output=True, text=True, env=self.env, timeout=60, **kw)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-1500:]}" for p in sorted((self.root / "log").glob("*.log")))

    def queued(self, job: str) -> list[str]:
        """Array tasks of ``job`` still pending or running (``ID STATE`` lines)."""
        out = self.run("squeue", "-h", "-r", "-j", job, "-o", "%i %T")
        return [line for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else []

    def stop(self) -> None:
        for name in ("slurmd", "slurmctld", "munged"):  # by process id, in reverse order of start
            proc = self.procs.get(name)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _slurm_conf(root: Path, host: str, node: str, munge_socket: Path) -> str:
    return "\n".join([
        "ClusterName=lieqtest",
        f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={_free_port()}",
        f"SlurmdPort={_free_port()}",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={munge_socket}",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "MpiDefault=none",
        "ReturnToService=2",
        "KillWait=1",
        "SchedulerParameters=sched_interval=1",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd.pid'}",
        f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
        f"{node} NodeAddr=127.0.0.1 State=UNKNOWN",
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP",
        "",
    ])  # fmt: skip


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    missing = _missing()
    if missing:
        pytest.skip(f"Slurm/munge not installed ({', '.join(missing)}): apt-get install slurm-wlm munge (.ci/run)")
    pytest.importorskip("submitit")
    if os.geteuid() != 0:
        pytest.skip("the test cluster runs its daemons as root (SlurmUser=root)")
    root = tmp_path_factory.mktemp("slurm")
    for d in ("munge", "state", "spool", "log"):
        (root / d).mkdir()
    (root / "munge").chmod(0o700)
    key = root / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    sock = root / "munge" / "munge.socket"
    host = socket.gethostname().split(".")[0]
    # this host's real CPU count and memory, as slurmd itself sees them
    node = subprocess.run([_exe("slurmd"), "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    conf = root / "slurm.conf"
    conf.write_text(_slurm_conf(root, host, node, sock))
    env = {**os.environ, "SLURM_CONF": str(conf), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    c = Cluster(root, conf, env)
    quiet = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        c.procs["munged"] = subprocess.Popen(
            [_exe("munged"), "-F", "--force", f"--socket={sock}", f"--key-file={key}",
             f"--pid-file={root / 'munge' / 'munged.pid'}", f"--seed-file={root / 'munge' / 'munged.seed'}",
             f"--log-file={root / 'log' / 'munged.log'}"], **quiet,
        )  # fmt: skip
        deadline = time.time() + 20
        while not sock.exists() and time.time() < deadline and c.procs["munged"].poll() is None:
            time.sleep(0.1)
        assert sock.exists(), f"munged did not start\n{c.logs()}"
        c.procs["slurmctld"] = subprocess.Popen([_exe("slurmctld"), "-D", "-i", "-f", str(conf)], **quiet)
        c.procs["slurmd"] = subprocess.Popen([_exe("slurmd"), "-D", "-f", str(conf)], **quiet)
        deadline = time.time() + 60
        state = ""
        while time.time() < deadline:
            state = c.run("sinfo", "-h", "-o", "%T").stdout.strip()
            if state == "idle":
                break
            time.sleep(0.5)
        assert state == "idle", f"the node did not come up (sinfo: {state!r})\n{c.logs()}"
        yield c
    finally:
        c.stop()


def _sweep(root: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "lieq.cli", "sweep", "e2e", "--models", "smoke", "--data", "embedded",
        "--n-images", "2", "--input-size", "32", "--generators", "translate_x", "--batch-size", "1",
        "--results", str(root), "--run", "t", "--no-progress", *extra,
    ]  # fmt: skip


def _job_id(stdout: str) -> str:
    line = next(ln for ln in stdout.splitlines() if "submitted" in ln)
    return line.split(": job ")[1].split()[0]


def _wait_drained(cluster: Cluster, job: str, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while cluster.queued(job):
        assert time.time() < deadline, f"job {job} still queued: {cluster.queued(job)}\n{cluster.logs()}"
        time.sleep(0.5)


def _reports(folder: Path, job: str) -> dict[str, str]:
    """The array tasks' return values (their sweep summaries), read from submitit's result files
    (``<job>_<task>_0_result.pkl``; ``<job>_0_result.pkl`` when submitit submitted a single task as a plain job)."""
    out = {}
    for f in sorted(folder.glob(f"{job}_*result.pkl")):
        parts = f.name[len(job) + 1 :].split("_")
        status, value = pickle.loads(f.read_bytes())
        out[parts[0] if len(parts) == 3 else "0"] = f"{status}: {str(value).strip().splitlines()[-1]}"
    return out


def test_default_options_submit_and_a_rejection_is_one_line(cluster, tmp_path):
    """Default options (no GPU request on a cluster without GPUs) are accepted by sbatch; a request the cluster
    cannot meet (a GPU here) is a one-line ``lieq: error`` with sbatch's reason, not a traceback."""
    ok = subprocess.run(_sweep(tmp_path, "--slurm"), capture_output=True, text=True, env=cluster.env, timeout=180)
    assert ok.returncode == 0 and "submitted" in ok.stdout and "no GPU" in ok.stdout, ok.stdout + ok.stderr
    job = _job_id(ok.stdout)
    cluster.run("scancel", job)
    script = (tmp_path / "slurm-logs" / f"{job}_submission.sh").read_text()
    assert "--gpus" not in script and "--cpus-per-task=" in script and "--array=0-3" in script  # 4 models, 4 tasks
    bad = subprocess.run(_sweep(tmp_path, "--slurm", "--gpus", "1"), capture_output=True, text=True,
                         env=cluster.env, timeout=180)  # fmt: skip
    err = bad.stderr.strip().splitlines()
    assert bad.returncode == 2 and len(err) == 1, bad.stderr
    assert err[0].startswith("lieq: error: sbatch rejected") and "gres" in err[0].lower(), err[0]
    _wait_drained(cluster, job, timeout=60)


def test_array_cancel_resume_equals_local_run(cluster, tmp_path):
    """A submitit job array; one array task cancelled with scancel while its model is being computed; the same
    command again: the results equal a local run's, nothing computed twice, nothing duplicated."""
    t0 = time.time()
    timeline: list[tuple[float, str]] = []

    def mark(event: str) -> None:
        timeline.append((time.time() - t0, event))

    try:
        _cancel_and_resume(cluster, tmp_path, mark)
    finally:
        print("\nSlurm timeline (seconds from the first submission's start):")
        for t, event in timeline:
            print(f"  {t:6.1f}  {event}")


def _cancel_and_resume(cluster: Cluster, tmp_path: Path, mark) -> None:

    ref, root = tmp_path / "local", tmp_path / "slurm"
    local = subprocess.Popen(_sweep(ref), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=cluster.env)  # fmt: skip
    cmd = _sweep(root, "--slurm", "--slurm-shards", "2", "--cpus-per-task", "1")
    first = subprocess.run(cmd, capture_output=True, text=True, env=cluster.env, timeout=180)
    assert first.returncode == 0, first.stdout + first.stderr
    job = _job_id(first.stdout)
    mark(f"submitted job array {job} (2 tasks, 2 smoke models each, 1 CPU per task)")
    models = zoo.resolve_models("smoke")
    folder = root / "t" / "e2e"
    cancelled = victim = None
    deadline = time.time() + 180
    while cancelled is None and time.time() < deadline and cluster.queued(job):
        done = {p.name.split("__")[0] for p in folder.glob("*.parquet")} if folder.is_dir() else set()
        for marker in folder.glob("*.running.json") if folder.is_dir() else []:
            tag = marker.name.split("__")[0]
            if tag in done or tag not in models:
                continue
            task = models.index(tag) % 2
            out = cluster.run("scancel", f"{job}_{task}")
            assert out.returncode == 0, out.stderr
            cancelled, victim = f"{job}_{task}", tag
            mark(f"scancel {cancelled} while computing {tag}")
            break
        time.sleep(0.05)
    assert cancelled is not None, f"no array task could be caught mid-model\n{cluster.logs()}"
    _wait_drained(cluster, job)
    mark(f"array {job} drained")
    stored = {p.name.split("__")[0]: p for p in folder.glob("*.parquet")}
    assert victim not in stored, "the cancelled task's model was finished anyway"
    stamps = {tag: (p.stat().st_mtime_ns, p.stat().st_ino, p.read_bytes()) for tag, p in stored.items()}
    reports = _reports(root / "slurm-logs", job)
    task = cancelled.split("_")[1]
    assert reports.get(str(1 - int(task)), "").startswith("success"), reports  # the other task finished
    assert task not in reports or "stopped (SIGTERM)" in reports[task], reports  # the cancelled one stopped at once

    again = subprocess.run(cmd, capture_output=True, text=True, env=cluster.env, timeout=180)
    assert again.returncode == 0, again.stdout + again.stderr
    job2 = _job_id(again.stdout)
    mark(f"resubmitted the same command: job array {job2}")
    _wait_drained(cluster, job2)
    mark(f"array {job2} drained")
    assert f"shards {task}/2;" in again.stdout, again.stdout  # only the cancelled task's shard is resubmitted
    resumed = _reports(root / "slurm-logs", job2)
    assert len(resumed) == 1 and all(r.startswith("success") for r in resumed.values()), resumed
    computed = sum(int(r.split(": ", 2)[2].split(" computed")[0]) for r in resumed.values())
    assert computed == len(models) - len(stored), resumed  # only what the cancelled task left undone
    done = subprocess.run(cmd, capture_output=True, text=True, env=cluster.env, timeout=180)
    assert done.returncode == 0 and "nothing to submit" in done.stdout, done.stdout + done.stderr
    assert f"0 computed, {len(models)} already done (same images" in done.stdout
    mark("the same command once more: nothing to submit, every model done")

    assert local.wait(timeout=240) == 0, local.stdout.read()
    mark("local reference run finished")
    for tag, p in stored.items():  # finished results were not recomputed or rewritten
        assert (p.stat().st_mtime_ns, p.stat().st_ino, p.read_bytes()) == stamps[tag], tag
    assert not list(folder.glob("*.running.json")) and not list(folder.glob(".*.tmp"))
    assert sorted(p.name for p in folder.glob("*.parquet")) == sorted(p.name for p in (ref / "t" / "e2e").iterdir())
    keys = ["model", "image", "generator"]
    a = results.load("t", root=root).sort_values(keys).reset_index(drop=True)
    b = results.load("t", root=ref).sort_values(keys).reset_index(drop=True)
    assert sorted(set(a.model)) == sorted(models) and len(a) == len(models) * 2 and not a.duplicated(keys).any()
    pd.testing.assert_frame_equal(a[["model", "config_hash", *OWN]], b[["model", "config_hash", *OWN]])
    assert (a.mean_abs > 0).all()
    mark("compared: identical to the local run, one result per model")
    mark("first array's tasks: " + "; ".join(f"{k}: {v}" for k, v in sorted(reports.items())))
    mark("resumed array's tasks: " + "; ".join(f"{k}: {v}" for k, v in sorted(resumed.items())))
