"""``make gpu-check``'s script in its quick CPU mode: every row is produced and the checks that can fail pass."""

from __future__ import annotations

import math
import subprocess
import sys

import pandas as pd


def test_quick_cpu_gpu_check_writes_the_expected_rows(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "lieq.bench.gpu_check", "--device", "cpu", "--quick", "--threads", "1",
         "--out-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    table = pd.read_csv(tmp_path / "gpu_check_quick.csv")
    assert list(table.columns) == ["check", "name", "device", "value", "unit", "passed", "detail"]
    assert set(table.device) == {"cpu"}
    checks = table.groupby("check").size()
    for check in ("environment", "agreement_fp32", "agreement_tf32", "bench", "oom", "sweep", "projection"):
        assert checks.get(check, 0) >= 1, check
    (fp32,) = table[table.check == "agreement_fp32"].itertuples()
    assert fp32.passed is True or fp32.passed == "True"
    assert float(fp32.value) <= 1e-4 and "8 generators" in fp32.detail
    bench = table[table.check == "bench"]
    assert {n.rsplit(" ", 1)[-1] for n in bench.name} == {"forward", "double_backward"}
    assert (bench.value.astype(float) > 0).all()
    (oom,) = table[table.check == "oom"].itertuples()
    assert str(oom.passed) == "True" and int(float(oom.value)) > 0
    sweep = table[table.check == "sweep"]
    assert len(sweep) == 3 and sweep.value.astype(float).gt(0).all()  # two models and their mean
    projection = table[table.check == "projection"]
    assert set(projection.name) == {
        f"{p} {e}" for p in ("paper", "paper-core") for e in ("e2e", "layerwise", "baselines")
    }
    hours = projection.set_index("name").value.astype(float)
    assert all(math.isfinite(v) and v > 0 for v in hours)
    assert hours["paper e2e"] > hours["paper-core e2e"]  # 481 vs 83 models at the same cost per image
    assert not table.passed.astype(str).eq("False").any()
