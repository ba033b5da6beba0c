"""Layerwise attribution of the Lie derivative: which layers break equivariance (docs/conventions.md section 5).

For a classifier with softmax output ``p = f_N o ... o f_1`` and hidden features ``h_i = f_i(h_{i-1})`` the chain
rule gives

    L p(x) = sum_i J_{N..i+1}(h_i) (L f_i)(h_{i-1}),    L f_i(h) = J_{f_i}(h) v_in(h) - v_out(f_i(h)),

where ``v(h) = d/dt T(t) h |_{t=0}`` is :func:`lieq.image_model.lie_action` on the feature map in its layout
(:mod:`lieq.layers`), ``0`` for invariant (non image-like) features.  ``term_i = J_{N..i+1} L f_i`` (a vector in
the ``K``-dimensional output space) is the equivariance error created by layer ``i`` and carried to the output.
Layers are the modules chosen by :func:`lieq.layers.select_layers`; every *call* of a layer is a separate term.

Units.  Contribution of layer ``i`` = ``E_z[(z . term_i)^2] = ||term_i||^2`` with ``z ~ N(0, I_K)`` on the
softmax probabilities, per unit of the generator parameter squared (half image widths for translations, radians
for rotations; docs/conventions.md sections 2-3).  The end-to-end value ``e2e = ||L p(x)||^2`` (from
:func:`lieq.engine.lie_derivative`) is in the same units; it equals ``K * mean_sq`` of :func:`lieq.metrics.e2e_lee`.
Our units (the paper's Fig. 1/4 normalisation is open, docs/conventions.md section 5); shares (contribution over
the sum of contributions) are unit-free.

Estimator (``exact=False``).  Reported per layer call: ``contribution`` = mean over probes of ``(z . term_i)^2``
and ``contribution_se`` = its standard error.  A recording forward pass computes, in forward hooks, each layer call's
own Lie derivative ``L f_i`` (one forward-mode pass of that layer, all generators vectorised); the values
``z . term_i`` for all probes are then obtained by one of three methods, which agree per probe to float rounding:

* ``method="forward"``: ``term_i = d p / d s_i`` for a scalar ``s_i`` that injects ``s_i * L f_i`` at the call's
  output, by forward-mode autodiff, vectorised over chunks of (call, generator) pairs in execution order.  Only the
  chunk's own scalars carry tangents, so the network runs plainly up to the chunk's first call.  Pairs whose Lie
  derivative is numerically zero (``||L f_i|| <= zero_rtol * max(||J_f v_in||, ||v_out||)``, default ``1e-4``:
  pointwise linear layers under spatial generators give ~1e-7 from float rounding, the other layers >= 1e-2) are
  skipped and reported as 0.  Then ``z . term_i`` is a dot product.  Cost: about (pairs / chunk) primal passes plus
  one tangent pass per pair over the network after its chunk's first call, independent of the number of probes.
* ``method="reverse"``: the recording pass adds ``s_i * L f_i`` to the outputs with ``s_i = 0`` and a single
  reverse pass of ``z . p`` with the probes batched (``torch.autograd.grad(..., is_grads_batched=True)``) gives
  ``d(z . p)/d s_i = z . term_i`` for every call at once.  Cost: about one backward pass per probe.
* ``method="loop"``: the original code's approach and the benchmark reference -- after the recording pass, for each
  probe one forward pass (recorded ``L f_i`` injected with zero scalars) and one backward pass.
* ``method="auto"`` (default) picks ``forward`` when the hooked layers times the generators are at most three times
  the probes (e.g. ResNet-50, ViT-S, EfficientNet-Lite0 with 100 probes and one generator) and ``reverse``
  otherwise (many layers, few probes).

Completeness.  ``sum_i z . term_i`` equals ``z . L p(x)`` when every non-equivariant operation is a hooked layer.
``unattributed = mean_z |z . (L p - sum_i term_i)| / mean_z |z . L p|`` (ratio of probe means, a stable form of
the relative remainder; its expectation ratio is ``||L p - sum_i term_i|| / ||L p||``).  Operations outside
modules (position-embedding additions, window partitions written as functions, ...) show up here.

Exact mode (``exact=True``).  ``term_i`` computed as in ``method="forward"``; ``contribution = ||term_i||^2`` exactly,
``contribution_se = 0`` and ``unattributed = ||L p - sum_i term_i|| / ||L p||``.  Cost grows with the number of
layer calls; meant for small models and tests.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from ._fast_jvp import fast_jvp_rules
from .adapters import OutputHead, Preprocessing, prepare_inputs, select_output
from .engine import autodiff_ready, jvp_many, lie_derivative
from .experiments import register
from .image_model import Generator, feature_layout, lie_action, resolve_generators, token_grid
from .layers import LayerSpec, is_identity_in_eval, norm_part, out_of_place, select_layers

__all__ = ["feature_action", "layerwise", "layerwise_experiment"]

METHODS = ("auto", "forward", "reverse", "loop")


# --------------------------------------------------------------------------------------------------------------
# Feature actions in a layout
# --------------------------------------------------------------------------------------------------------------


_STENCIL_RADIUS = 2
_STENCILS: dict[tuple, list[tuple[int, int, Tensor]] | None] = {}


def _stencil(h: int, w: int, gen: Generator, image_model: str, dtype: torch.dtype, device) -> list | None:
    """The infinitesimal action of a spatial generator on ``h x w`` images as a local stencil.

    At ``t = 0`` the sample points of every image model sit on the pixel centres, so ``d/dt T(t) x`` at pixel ``p``
    is ``sum_d k_d(p) x(p + d)`` over offsets ``d`` within :data:`_STENCIL_RADIUS` (taps reflected at the edges
    land within the same distance).  The coefficients depend only on ``(h, w, generator, image model)``: they are
    read off :func:`lieq.image_model.lie_action` applied to ``(2r + 1)^2`` colour-coded images (pixels of equal
    ``(i mod 2r+1, j mod 2r+1)`` never share a stencil), once per key.  Returns ``[(dy, dx, k_d (h, w))]`` for the
    offsets with a non-zero coefficient, or ``None`` when the image model is not local (checked on a random image).
    """
    key = (h, w, gen.name, image_model, dtype, str(device))
    if key not in _STENCILS:
        r = _STENCIL_RADIUS
        n = 2 * r + 1
        iy = torch.arange(h, device=device)[:, None]
        ix = torch.arange(w, device=device)[None, :]
        colour = (iy % n) * n + (ix % n)
        basis = (colour[None] == torch.arange(n * n, device=device)[:, None, None]).to(dtype)[None]
        coef = lie_action(basis, [gen], image_model)[0, 0]  # (n*n, h, w): coefficient of the colour-c pixel
        stencil = []
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                qy, qx = iy + dy, ix + dx
                inside = (qy >= 0) & (qy < h) & (qx >= 0) & (qx < w)
                c = ((qy % n) * n + (qx % n)).expand(h, w)
                k = torch.where(inside, coef.gather(0, c[None]).squeeze(0), torch.zeros((), dtype=dtype, device=device))
                if bool((k != 0).any()):
                    stencil.append((dy, dx, k))
        # Image models that are not local (e.g. a global Fourier interpolant) have no such stencil: check on a
        # random image once and fall back to lie_action for this key when they disagree.
        probe = torch.randn(1, 2, h, w, generator=torch.Generator().manual_seed(0), dtype=dtype).to(device)
        ref = lie_action(probe, [gen], image_model)[0]
        got = _apply_stencil(probe, stencil)
        ok = bool(((got - ref).abs() <= 1e-4 * (1 + ref.abs().max())).all())
        _STENCILS[key] = stencil if ok else None
    return _STENCILS[key]


def _apply_stencil(img: Tensor, stencil: list[tuple[int, int, Tensor]]) -> Tensor:
    h, w = img.shape[-2:]
    r = _STENCIL_RADIUS
    padded = torch.nn.functional.pad(img, (r, r, r, r))
    if not stencil:
        return torch.zeros_like(img)
    (dy, dx, k), rest = stencil[0], stencil[1:]
    acc = k * padded[..., r + dy : r + dy + h, r + dx : r + dx + w]
    for dy, dx, k in rest:
        acc = acc.addcmul(k, padded[..., r + dy : r + dy + h, r + dx : r + dx + w])
    return acc


def _image_action(img: Tensor, gens: Sequence[Generator], image_model: str) -> Tensor:
    """``lie_action(img, gens, image_model)`` for images ``(B, C, H, W)``, with spatial generators applied as
    precomputed stencils (:func:`_stencil`); equal to :func:`lieq.image_model.lie_action` up to float rounding."""
    h, w = img.shape[-2:]
    out = []
    for g in gens:
        if not g.spatial:
            out.append(img)
            continue
        stencil = _stencil(h, w, g, image_model, img.dtype, img.device)
        out.append(_apply_stencil(img, stencil) if stencil is not None else lie_action(img, [g], image_model)[0])
    return torch.stack(out)


def feature_action(x: Tensor, layout: str, gens: Sequence[Generator], image_model: str) -> Tensor | None:
    """``d/dt T(t) x`` for each generator, with ``x`` read in ``layout`` (:mod:`lieq.layers`); ``None`` if invariant.

    Same values as :func:`lieq.image_model.lie_action` (tokens: the leading class / distillation tokens do not move
    under spatial generators; ``saturate`` scales every entry), computed with precomputed stencils.
    """
    gens = list(gens)
    if layout == "nhwc" and x.dim() == 4:
        if x.shape[1] == 1 and x.shape[2] == 1:
            return None
        return _image_action(x.permute(0, 3, 1, 2), gens, image_model).permute(0, 1, 3, 4, 2)
    if layout == "tokens_t" and x.dim() == 3:
        if token_grid(x.shape[2]) is None:
            return None
        return _token_action(x.transpose(1, 2), gens, image_model).transpose(2, 3)
    kind = feature_layout(x.shape)
    if kind == "invariant":
        return None
    if kind == "tokens":
        return _token_action(x, gens, image_model)
    return _image_action(x, gens, image_model)


def _token_action(x: Tensor, gens: list[Generator], image_model: str) -> Tensor:
    b, n, c = x.shape
    s, k = token_grid(n)  # type: ignore[misc]
    grid = x[:, k:].reshape(b, s, s, c).permute(0, 3, 1, 2)
    a = _image_action(grid, gens, image_model).permute(0, 1, 3, 4, 2).reshape(len(gens), b, s * s, c)
    head = torch.stack([x[:, :k] if not g.spatial else torch.zeros_like(x[:, :k]) for g in gens])
    return torch.cat([head, a], dim=2)


# --------------------------------------------------------------------------------------------------------------
# Hooks
# --------------------------------------------------------------------------------------------------------------


@dataclass
class _Call:
    spec: LayerSpec
    call: int
    lie: Tensor | None  # (G, *out.shape) or None (exactly zero)
    scale: Tensor | None = None  # (G,) on the device, per generator: max(||J_f v_in||, ||v_out||)


@dataclass
class _State:
    gens: list[Generator]
    image_model: str
    output_field: str | int | None = None  # the model output's field of the logits (lieq.adapters.select_output)
    mode: str = "off"  # "off" | "record" (compute L f_i, inject s_i) | "replay" (inject stored L f_i)
    busy: bool = False
    calls: list[_Call] = field(default_factory=list)
    scalars: list[Tensor] = field(default_factory=list)
    counts: dict[int, int] = field(default_factory=dict)
    pending: dict[int, list[Tensor]] = field(default_factory=dict)
    cache: dict[int, tuple[Tensor, int, str, Tensor | None]] = field(default_factory=dict)
    replay: list[Tensor | None] = field(default_factory=list)
    # replay: call index -> list of (scalars (B,), generator index) injected at that call (absent: not injected)
    replay_s: dict[int, list[tuple[Tensor, int]]] = field(default_factory=dict)
    position: int = 0

    def reset(self, mode: str) -> None:
        self.mode, self.position = mode, 0
        self.calls, self.scalars, self.counts, self.pending, self.cache = [], [], {}, {}, {}

    def action(self, x: Tensor, layout: str) -> Tensor | None:
        # cache keyed by tensor identity and version (in-place updates such as ``x += shortcut`` invalidate it)
        hit = self.cache.get(id(x))
        if hit is not None and hit[0] is x and hit[1] == x._version and hit[2] == layout:
            return hit[3]
        a = feature_action(x.detach(), layout, self.gens, self.image_model)
        self.cache[id(x)] = (x, x._version, layout, a)
        return a

    @contextlib.contextmanager
    def inside(self) -> Iterator[None]:
        self.busy = True
        try:
            yield
        finally:
            self.busy = False

    def layer_lie(
        self, fn: Callable[[Tensor], Tensor], h: Tensor, out: Tensor, spec: LayerSpec
    ) -> tuple[Tensor, list[float]] | None:
        """``L f_i(h) = J_f(h) v_in(h) - v_out(f(h))`` for all generators, ``(G, *out.shape)``, with the size of the
        larger of its two terms per generator; ``None`` when both terms vanish (no image-like input or output)."""
        v_in = self.action(h, spec.in_layout)
        v_out = self.action(out, spec.out_layout)
        if v_in is None and v_out is None:
            return None
        g = len(self.gens)
        with torch.no_grad(), self.inside(), fast_jvp_rules():
            if v_in is not None:
                if v_in.shape[0] == 1:  # one generator: a plain forward-mode pass (no vmap overhead)
                    lie = torch.func.jvp(fn, (h.detach(),), (v_in[0],))[1].unsqueeze(0)
                else:
                    lie = jvp_many(fn, h.detach(), v_in, tangent_batch=None)[1]
                lie = lie.detach()
            else:
                lie = torch.zeros((g, *out.shape), dtype=out.dtype, device=out.device)
            scale = lie.reshape(g, -1).norm(dim=1)
            if v_out is not None:
                scale = torch.maximum(scale, v_out.reshape(g, -1).norm(dim=1))
                lie = lie - v_out
        return lie, scale  # kept on the device: no synchronisation per layer call

    def inject(self, spec: LayerSpec, out: Tensor, make_lie: Callable[[], Tensor | None]) -> Tensor | None:
        """Record one layer call and return the output with the injection term (or ``None`` to keep it)."""
        key = id(spec)
        call = self.counts.get(key, 0)
        self.counts[key] = call + 1
        if self.mode == "record":
            made = make_lie()
            lie, scale = made if made is not None else (None, None)
            self.calls.append(_Call(spec, call, lie, scale))
            if lie is None:
                return None
            s = torch.zeros(lie.shape[:2], dtype=out.dtype, device=out.device, requires_grad=True)
            self.scalars.append(s)
            new = out + torch.einsum("gb,gb...->b...", s, lie)
            hit = self.cache.get(id(out))
            if hit is not None and hit[0] is out and hit[1] == out._version:  # same values (s = 0): reuse
                self.cache[id(new)] = (new, new._version, hit[2], hit[3])
            return new
        # replay: inject the stored Lie derivative scaled by the (possibly dual / batched) scalars
        j = self.position
        self.position += 1
        lie = self.replay[j]
        pairs = self.replay_s.get(j)
        if lie is None or not pairs:
            return None
        shape = (-1,) + (1,) * (out.dim() - 1)
        for s, gi in pairs:
            out = out + s.reshape(shape) * lie[gi]
        return out


def _probabilities(model: nn.Module, x: Tensor, state: _State) -> Tensor:
    """``softmax`` of the logits field of ``model(x)`` (:func:`lieq.adapters.select_output`)."""
    return torch.softmax(select_output(model(x), state.output_field), dim=-1)


def _first_tensor(args: tuple) -> Tensor | None:
    return args[0] if args and isinstance(args[0], Tensor) and args[0].is_floating_point() else None


def _install(model: nn.Module, specs: list[LayerSpec], state: _State) -> list:
    handles = []
    for spec in specs:
        module = spec.module
        if spec.split == "norm":
            handles.extend(_install_split(spec, state))
            continue

        def hook(mod, args, kwargs, output, spec=spec):
            if state.busy or state.mode == "off":
                return None
            h = _first_tensor(args)
            if h is None or not isinstance(output, Tensor) or not output.is_floating_point():
                return None
            if is_identity_in_eval(mod):
                return state.inject(spec, output, lambda: None)

            def fn(u: Tensor) -> Tensor:
                return mod(u, *args[1:], **kwargs)

            return state.inject(spec, output, lambda: state.layer_lie(fn, h, output, spec))

        handles.append(module.register_forward_hook(hook, with_kwargs=True))
    return handles


def _install_split(spec: LayerSpec, state: _State) -> list:
    """Hooks for the normalisation part of a fused norm + activation module (input: the module's input; output: the
    input of its ``act`` child)."""
    module = spec.module
    act = module.act

    def pre(mod, args):
        if not state.busy and state.mode != "off":
            h = _first_tensor(args)
            if h is not None:
                state.pending.setdefault(id(mod), []).append(h)

    def norm_only(u: Tensor) -> Tensor:
        return norm_part(module, u)

    def act_pre(mod, args):
        if state.busy or state.mode == "off":
            return None
        stack = state.pending.get(id(module))
        a = _first_tensor(args)
        if not stack or a is None:
            return None
        h = stack.pop()
        new = state.inject(spec, a, lambda: state.layer_lie(norm_only, h, a, spec))
        return None if new is None else (new, *args[1:])

    return [module.register_forward_pre_hook(pre), act.register_forward_pre_hook(act_pre)]


@contextlib.contextmanager
def _hooked(model: nn.Module, state: _State, forward_only: bool = False) -> Iterator[list[LayerSpec]]:
    """Install the hooks; ``forward_only`` (no reverse pass will be taken) keeps fused attention, whose
    forward-mode rule is in :mod:`lieq._fast_jvp`."""
    specs = select_layers(model)
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    handles = _install(model, specs, state)
    try:
        with autodiff_ready(model, keep_fused_attention=forward_only), out_of_place(model):
            yield specs
    finally:
        for h in handles:
            h.remove()
        for p in params:
            p.requires_grad_(True)
        state.reset("off")


# --------------------------------------------------------------------------------------------------------------
# Core computations for one batch of images
# --------------------------------------------------------------------------------------------------------------


def _probe_dots(
    model: nn.Module, x: Tensor, state: _State, z: Tensor, probe_batch: int = 8
) -> tuple[list[_Call], Tensor]:
    """One recording forward pass and one batched backward: ``(calls, dots)`` with ``dots`` of shape
    ``(n_calls, P, G, B)`` holding ``z . term_i`` (zeros for calls whose Lie derivative vanishes)."""
    state.reset("record")
    with torch.enable_grad():
        p = _probabilities(model, x, state)
    calls, scalars = state.calls, state.scalars
    state.reset("off")
    n_p, g, b = z.shape[0], len(state.gens), x.shape[0]
    dots = torch.zeros(len(calls), n_p, g, b, dtype=x.dtype, device=x.device)  # to the CPU once, at the end
    if scalars:
        if not p.requires_grad:
            grads = [torch.zeros(n_p, *s.shape, dtype=s.dtype, device=s.device) for s in scalars]
        elif n_p == 1:
            grads = [
                gr.unsqueeze(0)
                for gr in torch.autograd.grad(p, scalars, z[0], allow_unused=True, materialize_grads=True)
            ]
        else:
            # probes in chunks: the cost per probe of a vmapped backward grows with the chunk (memory traffic)
            parts = []
            chunks = z.split(max(1, probe_batch))
            for q, zc in enumerate(chunks):
                parts.append(
                    torch.autograd.grad(
                        p,
                        scalars,
                        zc,
                        is_grads_batched=True,
                        allow_unused=True,
                        materialize_grads=True,
                        retain_graph=q < len(chunks) - 1,
                    )
                )
            grads = [torch.cat(gs) for gs in zip(*parts, strict=True)]
        j = 0
        for i, c in enumerate(calls):
            if c.lie is not None:
                dots[i] = grads[j].detach()
                j += 1
    return calls, dots.cpu()


def _record(model: nn.Module, x: Tensor, state: _State) -> tuple[list[_Call], Tensor]:
    """A forward pass that records every layer call and its own Lie derivative: ``(calls, softmax output)``."""
    state.reset("record")
    with torch.no_grad():
        p0 = _probabilities(model, x, state)
    calls = state.calls
    state.reset("off")
    return calls, p0


def _forward_terms(
    model: nn.Module, x: Tensor, state: _State, chunk: int = 16, zero_rtol: float = 0.0
) -> tuple[list[_Call], Tensor]:
    """Exact ``term_i`` for every layer call by forward-mode autodiff: ``(calls, terms)``, ``terms`` of shape
    ``(n_calls, G, B, K)``.

    After a recording pass, each (call, generator) pair's Lie derivative is injected at the call's output as the
    tangent of a scalar ``s`` and carried to the output (``term_i = d p / d s_i``).  Pairs are processed in execution
    order, ``chunk`` at a time (vectorised with ``vmap``); only the chunk's own scalars are dual, so the network runs
    without tangents up to the chunk's first call and the cost is about one primal pass per chunk plus, per pair,
    the tangent pass of the network *after* the chunk's first call.  ``zero_rtol > 0`` skips pairs whose Lie
    derivative is numerically zero, ``||L f_i|| <= zero_rtol * ||d/dt T(t) f_i||`` (pointwise linear layers under
    spatial generators, whose exact value is 0); their term is reported as 0.
    """
    calls, p0 = _record(model, x, state)
    g, b, k = len(state.gens), x.shape[0], p0.shape[-1]
    terms = torch.zeros(len(calls), g, b, k, dtype=x.dtype, device=x.device)  # to the CPU once, at the end
    lived = [i for i, c in enumerate(calls) if c.lie is not None]
    small: dict[int, list[bool]] = {}
    if zero_rtol > 0 and lived:  # ||L f_i|| <= zero_rtol * scale for every call, in one device-to-host copy
        norms = torch.stack([calls[i].lie.reshape(g, -1).norm(dim=1) for i in lived])  # (calls, G)
        scales = torch.stack([calls[i].scale for i in lived])  # type: ignore[misc]
        small = dict(zip(lived, (norms <= zero_rtol * scales).tolist(), strict=True))
    active = [(i, gi) for i in lived for gi in range(g) if not (i in small and small[i][gi])]
    if not active:
        return calls, terms.cpu()
    state.replay = [c.lie for c in calls]
    try:
        for start in range(0, len(active), chunk):
            part = active[start : start + chunk]
            s0 = torch.zeros(len(part), b, dtype=x.dtype, device=x.device)

            def f(s: Tensor, part: list[tuple[int, int]] = part) -> Tensor:
                state.reset("replay")
                state.replay_s = {}
                for r, (i, gi) in enumerate(part):
                    state.replay_s.setdefault(i, []).append((s[r], gi))
                return _probabilities(model, x, state)

            def one(t: Tensor, f: Callable[[Tensor], Tensor] = f, s0: Tensor = s0) -> Tensor:
                return torch.func.jvp(f, (s0,), (t,))[1]

            basis = torch.eye(len(part), dtype=x.dtype, device=x.device)[:, :, None].expand(-1, -1, b)
            with torch.no_grad(), fast_jvp_rules():
                out = torch.func.vmap(one)(basis.contiguous())  # (n_part, B, K)
            for r, (i, gi) in enumerate(part):
                terms[i, gi] = out[r]
    finally:
        state.replay, state.replay_s = [], {}
        state.reset("off")
    return calls, terms.cpu()


# --------------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------------


def layerwise(
    model: nn.Module,
    images: Tensor,
    generator: str | Sequence[str] = "translate_x",
    probes: int = 100,
    image_model: str = "bilinear",
    *,
    exact: bool = False,
    method: str = "auto",
    batch_size: int = 1,
    probe_batch: int = 8,
    chunk: int = 16,
    zero_rtol: float = 1e-4,
    seed: int = 0,
    image_ids: Sequence[str] | None = None,
    progress: bool = False,
    field: str | int | None = None,
    preprocessing: Preprocessing | Callable[[Any], Tensor] | None = None,
) -> pd.DataFrame:
    """Layerwise attribution of the Lie derivative of ``softmax(model(x))``: one row per (image, generator, call).

    ``model``: any ``nn.Module`` classifier; its output may be a tensor, tuple, dict or ``ModelOutput``, with the
    logits in ``field`` (:func:`lieq.adapters.select_output`; default ``logits`` when present, else the tensor).
    ``images``: preprocessed inputs ``(N, C, H, W)`` (any ``H, W``; ``C = 1`` or ``3``), or images with a
    ``preprocessing`` (:func:`lieq.adapters.prepare_inputs`); ``generator``: one name, a list, or ``"layerwise"`` /
    ``"all"`` (:func:`lieq.image_model.resolve_generators`).  ``probes`` Gaussian probes per image (seeded by
    ``seed`` and the image index; shared by the generators), ``K`` = the model's number of outputs.  ``batch_size``
    images share one forward pass.  ``method`` (module docstring): ``"auto"`` (default: ``"forward"`` when the
    hooked layers times the generators are at most three times the probes, else ``"reverse"``), ``"forward"``
    (``chunk`` (call, generator) pairs per vectorised forward-mode pass, ``zero_rtol`` skips numerically zero layer
    Lie derivatives), ``"reverse"`` (``probe_batch`` probes per vectorised backward pass) or ``"loop"`` (one
    forward and one backward pass per probe, the original's approach).  The three give the same ``z . term_i`` per
    probe up to float rounding.

    Columns: ``image, generator, layer`` (qualified module name), ``module`` (class), ``category``, ``order``
    (execution order of the call within the forward pass), ``call`` (index among the calls of the same layer),
    ``contribution`` and ``contribution_se`` (module docstring), ``e2e`` (``||L p(x)||^2``), ``e2e_probe`` (mean
    over probes of ``(z . L p)^2``), ``unattributed``, ``probes``, ``image_model``, ``mode`` (``"probes"`` or
    ``"exact"``), ``method``.
    """
    gens = resolve_generators(generator)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    images = prepare_inputs(model, images, preprocessing)
    if not exact and probes < 1:
        raise ValueError(f"probes must be >= 1, got {probes}")
    n = images.shape[0]
    if image_ids is not None and len(image_ids) != n:
        raise ValueError(f"{len(image_ids)} image ids for {n} images")
    model = model.eval()
    device = next(iter(model.parameters()), images).device
    state = _State(gens, image_model, output_field=field)
    rows: list[dict] = []
    starts = range(0, n, batch_size)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="layerwise", unit="batch", leave=False)
    if method == "auto":  # forward-mode cost grows with the layer calls, reverse-mode cost with the probes
        method = "forward" if exact or len(select_layers(model)) * len(gens) <= 3 * probes else "reverse"
    with _hooked(model, state, forward_only=method == "forward" or exact):
        for start in starts:
            x = images[start : start + batch_size].to(device)
            b = x.shape[0]
            with torch.no_grad():
                lp = (
                    lie_derivative(
                        OutputHead(model, "logits", field),
                        x,
                        [g.name for g in gens],
                        "invariant",
                        image_model=image_model,
                    )
                    .detach()
                    .cpu()
                )  # (G, B, K)
            k = lp.shape[-1]
            e2e = lp.pow(2).sum(-1)  # (G, B)
            if exact:
                calls, terms = _forward_terms(model, x, state, chunk)
                contrib = terms.pow(2).sum(-1)  # (C, G, B)
                se = torch.zeros_like(contrib)
                resid = (lp - terms.sum(0)).norm(dim=-1)
                unattributed = resid / lp.norm(dim=-1)
                e2e_probe = torch.full_like(e2e, float("nan"))
            else:
                z = torch.stack([_probes(probes, k, seed, start + j, x.dtype) for j in range(b)], dim=1)  # (P, B, K)
                zd = z.to(device, x.dtype)
                if method == "forward":
                    calls, terms = _forward_terms(model, x, state, chunk, zero_rtol)
                    dots = torch.einsum("pbk,cgbk->cpgb", z.to(terms.dtype), terms)
                elif method == "reverse":
                    calls, dots = _probe_dots(model, x, state, zd, probe_batch)
                else:
                    calls, dots = _loop_dots(model, x, state, zd)
                contrib = dots.pow(2).mean(1)  # (C, G, B)
                se = dots.pow(2).std(1) / math.sqrt(probes) if probes > 1 else torch.full_like(contrib, float("nan"))
                zlp = torch.einsum("pbk,gbk->pgb", z.to(lp.dtype), lp)
                resid = zlp - dots.sum(0)
                unattributed = resid.abs().mean(0) / zlp.abs().mean(0)
                e2e_probe = zlp.pow(2).mean(0)
            for j in range(b):
                image = image_ids[start + j] if image_ids is not None else start + j
                for gi, g in enumerate(gens):
                    for order, c in enumerate(calls):
                        rows.append(
                            {
                                "image": image,
                                "generator": g.name,
                                "layer": c.spec.name,
                                "module": c.spec.kind,
                                "category": c.spec.category,
                                "order": order,
                                "call": c.call,
                                "contribution": float(contrib[order, gi, j]),
                                "contribution_se": float(se[order, gi, j]),
                                "e2e": float(e2e[gi, j]),
                                "e2e_probe": float(e2e_probe[gi, j]),
                                "unattributed": float(unattributed[gi, j]),
                                "probes": 0 if exact else probes,
                                "image_model": image_model,
                                "mode": "exact" if exact else "probes",
                                "method": "exact" if exact else method,
                            }
                        )
    return pd.DataFrame(rows)


def _probes(p: int, k: int, seed: int, index: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """``p`` Gaussian probes of ``k`` entries for image ``index``: drawn on the CPU in float32 (the same numbers on
    every device and for every dtype), then cast exactly to ``dtype``."""
    gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, index]).generate_state(1)[0]))
    return torch.randn(p, k, generator=gen).to(dtype)


def _loop_dots(model: nn.Module, x: Tensor, state: _State, z: Tensor) -> tuple[list[_Call], Tensor]:
    """Reference implementation, the original code's approach: the layers' Lie derivatives are recorded once, then
    for each probe one forward pass (each call's Lie derivative injected with a zero scalar) and one backward pass
    of ``z . p`` give ``z . term_i`` as the gradient with respect to the scalars."""
    calls, _ = _record(model, x, state)
    n_p, g, b = z.shape[0], len(state.gens), x.shape[0]
    dots = torch.zeros(len(calls), n_p, g, b, dtype=x.dtype, device=x.device)  # to the CPU once, at the end
    active = [i for i, c in enumerate(calls) if c.lie is not None]
    state.replay = [c.lie for c in calls]
    try:
        for q in range(n_p):
            scalars = {i: torch.zeros(g, b, dtype=x.dtype, device=x.device, requires_grad=True) for i in active}
            state.reset("replay")
            state.replay_s = {i: [(scalars[i][gi], gi) for gi in range(g)] for i in active}
            with torch.enable_grad():
                p = _probabilities(model, x, state)
            if not active or not p.requires_grad:
                continue
            grads = torch.autograd.grad(
                p, [scalars[i] for i in active], z[q], allow_unused=True, materialize_grads=True
            )
            for i, gr in zip(active, grads, strict=True):
                dots[i, q] = gr.detach()
    finally:
        state.replay, state.replay_s = [], {}
        state.reset("off")
    return calls, dots.cpu()


@register("layerwise", description="layerwise attribution of the softmax Lie derivative (contribution per layer call)")
def layerwise_experiment(
    model,
    inputs,
    labels,
    image_ids,
    *,
    generators: str = "layerwise",
    probes: int = 100,
    image_model: str = "bilinear",
    batch_size: int = 1,
    exact: bool = False,
    seed: int = 0,
    progress: bool = False,
) -> pd.DataFrame:
    """Runner experiment ``layerwise``: :func:`layerwise` with the configuration's generators, probes, image model.

    ``seed`` (the probes' seed) is the sweep's seed, which is part of every stored configuration.
    """
    return layerwise(
        model,
        inputs,
        generators,
        probes=int(probes),
        image_model=image_model,
        exact=bool(exact),
        batch_size=int(batch_size),
        seed=int(seed),
        image_ids=image_ids,
        progress=progress,
    )
