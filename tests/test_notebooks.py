"""The numbered notebooks: sources in sync, every compute notebook runs under papermill with SMOKE=True, and the
figure pipeline draws every figure the committed index lists from the committed cache."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from lieq import pipeline, results
from lieq.figures import FIGURES, FigureContext

ROOT = Path(__file__).resolve().parents[1]
NB = ROOT / "notebooks"

jupytext = pytest.importorskip("jupytext")
pytest.importorskip("papermill")


@pytest.mark.parametrize("name", pipeline.NOTEBOOKS)
def test_sources_in_sync_and_parameterised(name):
    """The .ipynb (what Colab / Binder open) has the cells of the .py source (the reviewed source of truth)."""
    source = pipeline.read_source(name)
    paired = jupytext.read(NB / f"{name}.ipynb")
    assert [c.source for c in paired.cells] == [c.source for c in source.cells], "run: python -m lieq.pipeline sync"
    assert all(not c.get("outputs") for c in paired.cells if c.cell_type == "code"), "outputs must be stripped"
    params = [c for c in source.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    for key in ("RUN", "RESULTS_ROOT") if name in pipeline.FIGURE_NOTEBOOKS else ("PROFILE", "DEVICE", "RUN", "SMOKE"):
        assert f"{key} =" in params[0].source
    if name in pipeline.COMPUTE_NOTEBOOKS:
        text = "\n".join(c.source for c in source.cells)
        assert "colab.research.google.com" in text and '"google.colab" in sys.modules' in text


def test_notebook_setup_scopes_the_store_to_its_settings(tmp_path, monkeypatch):
    """The notebook preamble resolves the store into ``Settings.root`` and changes no environment variable."""
    monkeypatch.delenv("LIEQ_RESULTS", raising=False)
    before = dict(os.environ)
    s = pipeline.notebook_setup("embedded", device="cpu", root=str(tmp_path / "store"), smoke=True)
    assert dict(os.environ) == before
    assert (s.profile, s.smoke, s.root) == ("smoke", True, str(tmp_path / "store"))
    assert pipeline.settings("embedded", device="cpu").root == str(results.default_root())
    with pytest.raises(ValueError, match="unknown run profile"):
        pipeline.settings("layerwise-core")  # a model preset of lieq.zoo, not a run profile


@pytest.mark.slow
def test_compute_notebooks_run_with_smoke(tmp_path):
    """Every compute notebook executes with SMOKE=True (tiny random models, two images, CPU) into a temporary store."""
    root = tmp_path / "results"
    pipeline.results("smoke", device="cpu", root=root, executed_dir=tmp_path / "executed", progress=False)
    for name in pipeline.COMPUTE_NOTEBOOKS:
        assert (tmp_path / "executed" / f"{name}.ipynb").is_file()
    assert (root / "smoke" / "primer" / "primer.npz").is_file()
    for experiment in ("e2e", "layerwise", "baselines"):
        assert list((root / "smoke" / experiment).glob("*.parquet")), experiment
    # the figures of the primer and the layerwise sweep are drawn from that store
    ctx = FigureContext(run="smoke", root=root, out_dir=tmp_path / "figures", dpi=40)
    for name in ("fig1_left_lie_derivative", "primer_finite_differences", "fig1_centre_cumulative_layerwise"):
        outcome = ctx.draw(name)
        assert outcome.status == "drawn", (name, outcome.reason)


@pytest.mark.slow
def test_figures_pipeline_from_committed_cache(tmp_path):
    """``make figures`` from the committed cache: every figure the committed index lists as drawn is drawn again."""
    committed = ROOT / "figures" / "index.json"
    if not committed.is_file():
        pytest.skip("no committed figure index (figures/index.json)")
    expected = {n for n, o in json.loads(committed.read_text()).items() if o["status"] == "drawn"}
    out = tmp_path / "figures"
    seconds = pipeline.figures(out_dir=out, executed_dir=tmp_path / "executed", progress=False)
    index = json.loads((out / "index.json").read_text())
    assert set(index) == {s.name for s in FIGURES}
    drawn = {n for n, o in index.items() if o["status"] == "drawn"}
    assert expected <= drawn, f"figures of the committed index no longer drawn: {sorted(expected - drawn)}"
    for name in drawn:
        assert (out / f"{name}.pdf").stat().st_size > 1000 and (out / f"{name}.png").is_file()
    for name, o in index.items():
        if o["status"] == "skipped":
            assert o["reason"], name
    readme = (out / "README.md").read_text()
    assert all(f"`{s.name}`" in readme for s in FIGURES)
    assert seconds < 300


def test_executed_notebooks_read_cleanly():
    """The committed executed copies hold no warnings, empty progress bars or this machine's absolute paths."""
    executed = sorted((NB / "executed").glob("*.ipynb"))
    if not executed:
        pytest.skip("no executed notebooks committed")
    for path in executed:
        text = path.read_text()
        assert not re.search(r'"/(work|home|Users|tmp)/', text) and "/work/" not in text, f"{path.name}: machine path"
        for cell in json.loads(text)["cells"]:
            for o in cell.get("outputs", []):
                if o.get("output_type") == "stream" and o.get("name") == "stderr":
                    err = "".join(o["text"])
                    assert not any(n in err for n in pipeline._NOISE), f"{path.name}: stderr noise {err[:80]!r}"
