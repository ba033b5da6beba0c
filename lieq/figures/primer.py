"""The primer figures: the Lie derivative on one photograph, the generators' fields, finite differences.

Like the rest of :mod:`lieq.figures`, this module imports no torch and no timm.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from .. import conventions
from .registry import FigureContext, Needs, figure, section
from .style import IMAGE_MODEL_COLORS, label

section(
    "primer",
    "Primer",
    (
        "Fig. 1 (left): the Lie derivative of a trained classifier on a real photograph. Transform the input "
        "along the rotation orbit, apply the network, differentiate at t = 0. With the paper's bilinear image"
        " model the orbit has a kink at t = 0 and the autodiff derivative is a rounding-dependent mix of one-"
        "sided derivatives (docs/conventions.md section 2); the smooth `central` image model gives a "
        "derivative the finite differences converge to. The generators: how each moves the image content "
        "(`saturate` scales the pixel values instead)."
    ),
)


def generator_flow_fields(generators: Sequence[str] | None = None, n: int = 11) -> Figure:
    """Velocity fields of the generators on the normalised image square [-1, 1]^2 (pure numpy).

    For ``(T_t x)(p) = x(A(t) p)`` the sample point of pixel ``p`` moves with velocity ``A'(0) [p; 1]``; the image
    content moves the opposite way, ``-A'(0) [p; 1]``, which is what the arrows show.  ``y`` points down (image rows).
    Default: every generator of :data:`lieq.conventions.GENERATORS` (their Lie-algebra elements are declared there);
    pointwise generators (``saturate``: ``x -> (1 + t) x``) have no flow and are drawn as a value ramp.
    """
    names = list(generators) if generators else list(conventions.GENERATORS)
    unknown = [g for g in names if g not in conventions.GENERATORS]
    if unknown:
        raise ValueError(f"generator_flow_fields: unknown generator(s) {', '.join(unknown)}")
    u = np.linspace(-1, 1, n)
    px, py = np.meshgrid(u, u)
    pts = np.stack([px.ravel(), py.ravel(), np.ones(px.size)])
    ncol = min(5, len(names))
    nrow = int(np.ceil(len(names) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.0 * ncol, 2.1 * nrow), squeeze=False)
    for ax, g in zip(axes.flat, names):
        if conventions.is_pointwise(g):
            ramp = np.linspace(0, 1, 64)[None, :].repeat(8, 0)
            ax.imshow(np.concatenate([ramp, 1.3 * ramp]), cmap="cividis", extent=(-1, 1, 1, -1), vmin=0, vmax=1.3)
            ax.text(0, -0.5, "x", ha="center", va="center", fontsize=7, color="white")
            ax.text(0, 0.5, "(1 + t) x, t = 0.3", ha="center", va="center", fontsize=7, color="black")
        else:
            v = -conventions.algebra_element(g) @ pts
            speed = np.hypot(v[0], v[1])
            q = ax.quiver(pts[0], pts[1], v[0], v[1], speed, cmap="viridis", angles="xy", scale_units="xy",
                          scale=max(float(speed.max()), 1e-12) / (0.7 * 2 / (n - 1)), width=0.008)  # fmt: skip
            q.set_clim(0, float(speed.max()) * 1.1)
            ax.set_xlim(-1.15, 1.15)
            ax.set_ylim(1.15, -1.15)
        ax.set_title(label(g), fontsize=8)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.flat[len(names) :]:
        ax.set_visible(False)
    fig.suptitle("Generators: motion of the image content, -A'(0)[p; 1] (normalised coordinates, y down)", fontsize=8)
    fig.tight_layout()
    return fig


PRIMER_KEYS = ("image", "generators", "fields", "rot_t", "rotated", "curve_t", "curve_p", "lie_p", "meta")


def _check_primer(primer: dict, keys: Iterable[str], what: str) -> dict:
    if not hasattr(primer, "keys"):
        raise ValueError(f"{what}: expected a mapping of arrays (the primer cache), got {type(primer).__name__}")
    missing = [k for k in keys if k not in primer]
    if missing:
        raise ValueError(f"{what}: primer cache lacks {', '.join(missing)}")
    return primer


def _primer_meta(primer: dict) -> dict:
    import json

    return json.loads(str(np.asarray(primer["meta"]).item()))


def _signed(ax, field: np.ndarray, title: str) -> None:
    lim = float(np.percentile(np.abs(field), 99.5)) or 1.0
    ax.imshow(field, cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax.set_title(title, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])


def lie_derivative_diagram(primer: dict) -> Figure:
    """Paper Fig. 1 (left), on a real photograph: rotated copies ``T(t) x``, the Lie-derivative field of the input
    ``d/dt T(t) x`` at 0 (summed over colour channels), and the top-class probability ``p_c(T(t) x)`` of a trained
    classifier as a function of the angle with its tangent of slope ``L p_c`` (the Lie derivative of the network)."""
    what = "lie_derivative_diagram"
    _check_primer(primer, PRIMER_KEYS, what)
    meta = _primer_meta(primer)
    gens = [str(g) for g in primer["generators"]]
    if "rotate" not in gens:
        raise ValueError(f"{what}: the primer cache has no rotate field")
    rot_t = np.asarray(primer["rot_t"])
    rotated = np.asarray(primer["rotated"])
    k = len(rot_t)
    fig = plt.figure(figsize=(2.0 * (k + 1), 5.2))
    grid = fig.add_gridspec(2, k + 1, height_ratios=[1, 1.1])
    for i in range(k):
        ax = fig.add_subplot(grid[0, i])
        ax.imshow(np.clip(rotated[i], 0, 1))
        ax.set_title(f"T(t) x, t = {rot_t[i]:+.2f} rad", fontsize=7)
        ax.axis("off")
    _signed(fig.add_subplot(grid[0, k]), np.asarray(primer["fields"])[gens.index("rotate")], "d/dt T(t) x at t = 0")
    ims = [str(s) for s in meta["curve_image_models"]]
    panels = [("curve_t", "curve_p", "along the orbit")]
    if "zoom_t" in primer and "zoom_p" in primer:
        panels.append(("zoom_t", "zoom_p", "close to t = 0"))
    half = (k + 1) // len(panels)
    for q, (tk, pk, where) in enumerate(panels):
        ax = fig.add_subplot(grid[1, q * half : (q + 1) * half if q < len(panels) - 1 else k + 1])
        t = np.asarray(primer[tk])
        for j, im in enumerate(ims):
            p = np.asarray(primer[pk])[j]
            slope = float(np.asarray(primer["lie_p"])[j])
            p0 = float(np.interp(0.0, t, p))
            ax.plot(
                t,
                p,
                "o-",
                ms=2.5,
                lw=1,
                color=IMAGE_MODEL_COLORS.get(im, "#777777"),
                label=f"p_c(T(t) x), {label(im)}",
            )
            span = np.array([t.min(), t.max()]) / (4 if q == 0 else 1)
            ax.plot(
                span,
                p0 + slope * span,
                "--",
                color=IMAGE_MODEL_COLORS.get(im, "#777777"),
                lw=1.4,
                label=f"tangent, slope L p_c = {slope:+.3f} ({label(im)})",
            )
        ax.set_xlabel(f"rotation angle t (rad), {where}", fontsize=7)
        ax.set_ylabel(f"p(class '{meta['class_name']}')", fontsize=7)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"The Lie derivative of a classifier: {meta['model']} ({meta['weights']}) on {meta['image_source']}",
                 fontsize=8)  # fmt: skip
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.02), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def lie_fields(primer: dict) -> Figure:
    """The Lie-derivative field ``d/dt T_g(t) x`` at 0 of every generator on the primer photograph (channel sum;
    red positive, blue negative)."""
    what = "lie_fields"
    _check_primer(primer, ("image", "generators", "fields", "meta"), what)
    meta = _primer_meta(primer)
    gens = [str(g) for g in primer["generators"]]
    fields = np.asarray(primer["fields"])
    if fields.shape[0] != len(gens):
        raise ValueError(f"{what}: {fields.shape[0]} fields for {len(gens)} generators")
    ncol = 4
    nrow = int(np.ceil((len(gens) + 1) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.2 * ncol, 2.3 * nrow), squeeze=False)
    axes.flat[0].imshow(np.clip(np.asarray(primer["image"]), 0, 1))
    axes.flat[0].set_title("x", fontsize=7)
    axes.flat[0].axis("off")
    for ax, g, f in zip(axes.flat[1:], gens, fields):
        _signed(ax, f, label(g))
    for ax in axes.flat[len(gens) + 1 :]:
        ax.set_visible(False)
    im = label(meta["field_image_model"])
    fig.suptitle(f"Lie-derivative fields of the generators on {meta['image_source']} ({im} image model)", fontsize=8)
    fig.tight_layout()
    return fig


def primer_finite_differences(primer: dict) -> Figure:
    """Check of the Lie derivative against finite differences: ``|(p(T(h)x) - p(T(-h)x)) / 2h - L p|`` and the
    one-sided ``|(p(T(h)x) - p(x)) / h - L p|`` vs ``h`` (log-log), per image model."""
    what = "primer_finite_differences"
    _check_primer(primer, ("fd_h", "fd_central", "fd_forward", "lie_p", "meta"), what)
    meta = _primer_meta(primer)
    ims = [str(s) for s in meta["curve_image_models"]]
    h = np.asarray(primer["fd_h"])
    fig, ax = plt.subplots(figsize=(4.8, 3.6))
    for j, im in enumerate(ims):
        lie = float(np.asarray(primer["lie_p"])[j])
        for arr, ls, lab in (("fd_central", "-", "central FD"), ("fd_forward", ":", "forward FD")):
            err = np.abs(np.asarray(primer[arr])[j] - lie) + 1e-12
            ax.loglog(h, err, ls, marker="o", ms=3, color=IMAGE_MODEL_COLORS.get(im, "#777777"), label=f"{im}: {lab}")
    ax.set_xlabel("step h (rad)")
    ax.set_ylabel("|finite difference - L p_c|")
    ax.legend(fontsize=7)
    lie, cen, fwd = (np.asarray(primer[k]) for k in ("lie_p", "fd_central", "fd_forward"))
    limits = "; ".join(
        f"{im}: L p_c = {lie[j]:+.3f}, FD at h = {h[0]:.0e}: central {cen[j][0]:+.3f}, forward {fwd[j][0]:+.3f}"
        for j, im in enumerate(ims)
    )
    ax.set_title(f"Lie derivative vs finite differences (rotation), {meta['model']} ({meta['weights']})\n{limits}",
                 fontsize=7)  # fmt: skip
    fig.tight_layout()
    return fig


def _primer_note(p: dict, run: str) -> str:
    meta = json.loads(str(np.asarray(p["meta"]).item()))
    return (
        f"run `{run}` / primer cache (`primer/primer.npz`); photograph: {meta['image_source']}; model "
        f"{meta['model']}, weights: {meta['weights']}"
    )


@figure("fig1_left_lie_derivative", "Fig. 1 (left)", needs=Needs("primer", text="primer cache (notebooks/00_primer)"))
def _fig1_left(ctx: FigureContext):
    """The Lie derivative of a trained classifier on a real photograph: rotated inputs, the input's Lie-derivative field
    and the class probability p_c(T(t)x) along the rotation orbit with its tangent of slope L p_c. With the paper's
    bilinear image model the orbit has a kink at t = 0, so the autodiff 'tangent' is one-sided and need not look
    tangent there; the smooth bicubic image model gives a true tangent."""
    p = ctx.primer()
    return lie_derivative_diagram(p), _primer_note(p, ctx.run)


@figure("primer_lie_fields", "new (primer)", needs=Needs("primer", text="primer cache"))
def _primer_fields(ctx: FigureContext):
    """The Lie-derivative field d/dt T(t)x of every generator on the photograph (signed, per pixel). Each generator
    moves the image content differently; saturation acts on the values, not the positions."""
    p = ctx.primer()
    return lie_fields(p), _primer_note(p, ctx.run)


@figure("primer_finite_differences", "new (primer)", needs=Needs("primer", text="primer cache"))
def _primer_fd(ctx: FigureContext):
    """The autodiff Lie derivative L p_c against central and forward finite differences as the step shrinks, per image
    model. Under the bilinear image model the finite differences do not converge to the autodiff value (the kink at t
    = 0); under the smooth image models they do."""
    p = ctx.primer()
    return primer_finite_differences(p), _primer_note(p, ctx.run)


@figure("generator_flow_fields", "new (illustration)", needs=Needs("none"))
def _flow(ctx: FigureContext):
    """The flow field of every spatial generator on the unit square (how each moves a sample point). Saturation is
    pointwise and has no flow."""
    return generator_flow_fields(), "no data (the generators' definitions, docs/conventions.md section 3)"
