"""The Lie-derivative engine.

For a network ``f`` and an image ``x`` the Lie derivative along generator ``g`` is (docs/conventions.md section 1)

    L_g f(x) = d/dt [ T_out(-t) f(T_in(t) x) ] at t = 0 = J_f(x) v_g - (output action of g on f(x)),

with ``v_g = d/dt T_in(t) x |_{t=0}`` (:func:`lieq.image_model.lie_action`).  For an invariant output (logits,
probabilities, pooled vectors) ``T_out`` is the identity and ``L_g f(x) = J_f(x) v_g``, a Jacobian-vector product.
For an equivariant (image-like) output ``T_out`` is the same transformation acting on the feature map, and its
derivative is subtracted.

Two independent implementations:

``method="forward"`` (default)
    Forward-mode autodiff (``torch.func.jvp``) with the tangents of all generators vectorised by ``torch.func.vmap``,
    so the primal computation is done once and each tangent adds one tangent pass (about ``1 + G`` forward-pass
    equivalents for ``G`` tangents).  Where a model's operations cannot be vmapped (in-place updates of primal
    tensors, some custom kernels), it falls back to forward mode on a batch that repeats the images once per tangent.

    The Lie derivative is linear in the generator: for affine generators with matrices ``A_g`` in the Lie algebra
    of the affine group (``A_g = dA/dt`` at ``t = 0``), the input action is ``v_g(x) = grad x . (A_g p)``, linear in
    ``A_g`` for every image model (the one-sided ``bilinear`` derivative too, because all generators share the same
    grid, hence the same floor, at ``t = 0``), and ``J_f(x)`` and the output action are linear as well.  So with
    ``basis=True`` only the generators of a basis of the span of the requested ones get a tangent pass and the rest
    are exact linear combinations of them: ``rotate = shear_x - shear_y``, ``scale = -(stretch_x + stretch_y)`` and
    ``hyperbolic_rotate = shear_x + shear_y``.  The paper's 8 end-to-end generators need 7 tangent passes, all 10
    generators 7 instead of 10.

    With ``fold_batch_norm=True`` every eval-mode batch norm that only consumes a convolution's output is folded
    into that convolution for the forward pass (``BN(conv(x, W) + b) = conv(x, W s) + (b - mean) s + beta``, exact
    up to float rounding), which removes one multiply per layer from every tangent pass.  The pairs are found once
    per model and input shape by a probe pass on one image (:func:`lieq._fast_jvp.find_batch_norm_folds`); if the
    model's data flow later differs, the engine notices and recomputes without folding.  Convolution, linear,
    batch and layer norm, GELU and attention use the cheaper forward-mode rules of :mod:`lieq._fast_jvp`.

    On CPUs the engine is about 2x faster when glibc's ``malloc`` keeps freed memory for reuse
    (:func:`lieq.retain_freed_memory`, :mod:`lieq._memory`); that is a process-wide setting, so the library never
    makes it: the command line, the runner and the benchmarks do, and a program using the Python API may.
``method="double_backward"``
    The original code's Jacobian-vector product: ``t`` is a scalar that requires grad, ``y = f(T(t) x)`` is built
    through the finite warp, and ``d y / d t`` is obtained with two reverse passes (the "double-backward trick").
    One generator at a time.  It is the test oracle and the benchmark baseline.

PyTorch function overrides (the forward rules and batch-norm folds of :class:`lieq._fast_jvp.FastJvpRules`, a
twice-differentiable ``hardsigmoid``, math-kernel attention) are :class:`~torch.overrides.TorchFunctionMode` s
entered by :func:`lie_derivative` (:func:`call_overrides`) and :func:`autodiff_ready`: PyTorch keeps its mode stack
per thread, so nothing outside the call, another thread running at the same time included, sees them, and
``torch.nn.functional`` itself is never modified.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from . import memory_plan
from ._fast_jvp import FastJvpRules, FoldMismatchError, FoldPair, find_batch_norm_folds
from .image_model import Generator, algebra_element, feature_layout, lie_action, resolve_generators, transform
from .precision import autocast_network, measurement_precision

__all__ = ["autodiff_ready", "call_overrides", "generator_basis", "lie_derivative", "resolve_output"]

OUTPUTS = ("invariant", "equivariant", "auto")
METHODS = ("forward", "double_backward")

#: Tangent images per forward-mode pass on CPUs (``tangent_batch="auto"``): the paper's 8 generators x 8 images in
#: one pass, so the primal is computed once.  On GPUs the chunk is sized from free memory (:mod:`lieq.memory_plan`).
CPU_TANGENT_BATCH = 64


_native_sdpa = F.scaled_dot_product_attention
_native_hardsigmoid = F.hardsigmoid


def _math_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """``F.scaled_dot_product_attention`` by PyTorch's composite "math" kernel (the backend ``sdpa_kernel(MATH)``
    selects, bit-identical to it), which has forward-mode AD and double backward."""
    if attn_mask is not None and attn_mask.dtype == torch.bool:  # as the dispatcher converts it for the kernels
        attn_mask = torch.zeros_like(attn_mask, dtype=query.dtype).masked_fill_(attn_mask.logical_not(), float("-inf"))
    out = torch.ops.aten._scaled_dot_product_attention_math(
        query, key, value, attn_mask, dropout_p, is_causal, None, scale=scale, enable_gqa=enable_gqa
    )
    return out[0]


class MathAttention(TorchFunctionMode):
    """This thread's ``F.scaled_dot_product_attention`` calls use the composite math kernel inside the block.

    ``torch.nn.attention.sdpa_kernel`` would do the same by switching PyTorch's backend flags, which are global to
    the process (another thread's attention would change kernel, and its results their rounding)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is _native_sdpa:
            return _math_attention(*args, **(kwargs or {}))
        return func(*args, **(kwargs or {}))


def _composite_hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:
    return F.relu6(input + 3.0) / 6.0


class TwiceDifferentiable(TorchFunctionMode):
    """This thread's ``F.hardsigmoid`` calls are computed as ``relu6(x + 3) / 6`` inside the block (bit-identical).

    ``hardsigmoid`` has no double backward in PyTorch (MobileNetV3, GhostNet, ... use it in squeeze-excite); the
    composite has one, which the double-backward reference needs."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is _native_hardsigmoid:
            return _composite_hardsigmoid(*args, **(kwargs or {}))
        return func(*args, **(kwargs or {}))


def call_overrides(method: str) -> TorchFunctionMode:
    """The PyTorch function overrides of one :func:`lie_derivative` call with ``method``, as a thread-local mode.

    ``"forward"``: :class:`lieq._fast_jvp.FastJvpRules` (the cheaper forward-mode rules, used where grad mode is off;
    the engine sets the batch-norm folds on the instance); ``"double_backward"``: :class:`TwiceDifferentiable`.
    """
    return FastJvpRules() if method == "forward" else TwiceDifferentiable()


@contextlib.contextmanager
def autodiff_ready(module: nn.Module | None, keep_fused_attention: bool = False) -> Iterator[None]:
    """Make a model differentiable in forward mode and twice in reverse mode, for the duration of the block.

    * timm attention modules read ``self.fused_attn`` at call time; fused scaled-dot-product kernels have neither
      forward-mode AD nor double backward, so it is switched off (and restored afterwards), unless
      ``keep_fused_attention`` (the forward engine, whose :class:`lieq._fast_jvp.FastJvpRules` give
      ``scaled_dot_product_attention`` a forward-mode rule);
    * ``scaled_dot_product_attention`` called directly uses the composite "math" kernel (:class:`MathAttention`,
      for this thread only);
    * in-place activations (``inplace=True``) are made out-of-place, so that vmapped tangents can flow through them.
    """
    saved: list[tuple[nn.Module, str, object]] = []
    if module is not None:
        for m in module.modules():
            if getattr(m, "fused_attn", None) is True and not keep_fused_attention:
                saved.append((m, "fused_attn", True))
                m.fused_attn = False
            if getattr(m, "inplace", None) is True:
                saved.append((m, "inplace", True))
                m.inplace = False
    try:
        with MathAttention():
            yield
    finally:
        for m, name, value in saved:
            setattr(m, name, value)


def resolve_output(output: str, shape: Sequence[int]) -> str:
    """``"invariant"`` or ``"equivariant"``; ``"auto"`` decides by the output shape (docs/conventions.md section 2)."""
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    if output == "auto":
        return "invariant" if feature_layout(shape) == "invariant" else "equivariant"
    if output == "equivariant" and feature_layout(shape) == "invariant":
        raise ValueError(f"output of shape {tuple(shape)} is not image-like, so it cannot be treated as equivariant")
    return output


def _jvp_vmapped(f: Callable[[Tensor], Tensor], x: Tensor, tangents: Tensor) -> tuple[Tensor, Tensor]:
    def one(v: Tensor) -> tuple[Tensor, Tensor]:
        return torch.func.jvp(f, (x,), (v,))

    return torch.func.vmap(one, in_dims=0, out_dims=(None, 0))(tangents)


def _jvp_repeated(f: Callable[[Tensor], Tensor], x: Tensor, tangents: Tensor) -> tuple[Tensor, Tensor]:
    g, b = tangents.shape[0], x.shape[0]
    xs = x.repeat(g, *([1] * (x.dim() - 1)))
    y, jv = torch.func.jvp(f, (xs,), (tangents.reshape(g * b, *x.shape[1:]),))
    return y[:b], jv.reshape(g, b, *jv.shape[1:])


def jvp_many(
    f: Callable[[Tensor], Tensor],
    x: Tensor,
    tangents: Tensor,
    vectorize: str = "auto",
    tangent_batch: int | str | None = "auto",
) -> tuple[Tensor, Tensor]:
    """``f(x)`` and ``J_f(x) v`` for each tangent ``v`` in ``tangents`` (shape ``(G, *x.shape)``).

    ``vectorize="vmap"`` shares the primal pass across tangents; ``"repeat"`` repeats the batch once per tangent;
    ``"auto"`` tries vmap and falls back to repeat when an operation has no batching rule.  ``tangent_batch`` caps
    the number of tangent images processed together (memory); tangents are split into chunks of
    ``max(1, tangent_batch // B)`` generators, each chunk repeating the primal pass.  ``None`` puts all in one pass;
    ``"auto"`` is :data:`CPU_TANGENT_BATCH` on CPUs and, on GPUs, sized from the free memory and the measured
    activation memory of one image (:func:`lieq.memory_plan.auto_tangent_batch`).  Out of memory, the chunk is
    halved, then the image batch (:func:`lieq.memory_plan.run_in_chunks`).
    """
    if tangent_batch == "auto":
        tangent_batch = memory_plan.auto_tangent_batch(f, x, len(tangents), CPU_TANGENT_BATCH)
    chunk = len(tangents) if tangent_batch is None else max(1, int(tangent_batch) // max(1, x.shape[0]))
    mode = [vectorize]  # "auto" becomes "repeat" for the rest of the call once vmap failed

    def one_pass(xs: Tensor, part: Tensor) -> tuple[Tensor, Tensor]:
        if mode[0] == "repeat":
            return _jvp_repeated(f, xs, part)
        try:
            return _jvp_vmapped(f, xs, part)
        except (RuntimeError, NotImplementedError, ValueError) as exc:
            if mode[0] == "vmap" or memory_plan.is_oom(exc):
                raise
            mode[0] = "repeat"
            return _jvp_repeated(f, xs, part)

    return memory_plan.run_in_chunks(one_pass, x, tangents, chunk)


def generator_basis(gens: Sequence[Generator]) -> tuple[list[int], Tensor]:
    """A basis of the span of ``gens`` chosen among them, and the coefficients of every generator in it.

    Returns ``(basis, coefficients)`` with ``L_{gens[i]} = sum_k coefficients[i, k] L_{gens[basis[k]]}``.
    Spatial generators are vectors ``dA/dt`` in the 6-dimensional affine Lie algebra; every distinct pointwise
    generator (``saturate``) is an independent direction of its own.  Generators with fewer non-zero entries (the
    coordinate directions: translations, shears, stretches) are preferred as basis elements, in the order given.
    """
    pointwise = sorted({g.name for g in gens if not g.spatial})
    vectors = []
    for g in gens:
        v = [0.0] * (6 + len(pointwise))
        if g.spatial:
            v[:6] = algebra_element(g).reshape(-1).tolist()
        else:
            v[6 + pointwise.index(g.name)] = 1.0
        vectors.append(v)
    matrix = torch.tensor(vectors, dtype=torch.float64)
    order = sorted(range(len(gens)), key=lambda i: int((matrix[i].abs() > 1e-12).sum()))
    basis: list[int] = []
    for i in order:
        if int(torch.linalg.matrix_rank(matrix[basis + [i]])) > len(basis):
            basis.append(i)
    basis.sort()
    coefficients = torch.linalg.lstsq(matrix[basis].T, matrix.T).solution.T  # (G, K)
    nearest = coefficients.round()
    near = (coefficients - nearest).abs() < 1e-9
    coefficients[near] = nearest[near]  # the generators above combine with integer coefficients
    coefficients[basis] = torch.eye(len(basis), dtype=torch.float64)  # basis generators: copied exactly
    return basis, coefficients


_fold_cache: weakref.WeakKeyDictionary[nn.Module, dict[tuple, list[FoldPair]]] = weakref.WeakKeyDictionary()


def _batch_norm_folds(f: Callable[[Tensor], Tensor], x: Tensor) -> list[FoldPair]:
    if not isinstance(f, nn.Module):
        return []
    key = (tuple(x.shape[1:]), x.dtype, x.device, f.training)
    per_model = _fold_cache.setdefault(f, {})
    if key not in per_model:
        per_model[key] = find_batch_norm_folds(f, x[:1])
    return per_model[key]


def _forward(
    f: Callable[[Tensor], Tensor],
    x: Tensor,
    gens: list[Generator],
    output: str,
    image_model: str,
    vectorize: str,
    tangent_batch: int | str | None,
    basis: bool,
    fold_batch_norm: bool,
    rules: FastJvpRules,
) -> Tensor:
    """The forward method, inside ``rules`` (entered by :func:`lie_derivative`), which hold the folds of the call."""
    if basis:
        chosen, coefficients = generator_basis(gens)
    else:
        chosen, coefficients = list(range(len(gens))), torch.eye(len(gens), dtype=torch.float64)
    tangents, x0 = lie_action(x, [gens[i] for i in chosen], image_model, return_primal=True)
    folds = _batch_norm_folds(f, x0) if fold_batch_norm else []
    with torch.no_grad():
        try:
            with rules.folding(folds):
                y, jv = jvp_many(f, x0, tangents, vectorize, tangent_batch)
        except FoldMismatchError:  # the data flow differs from the probe's: no folding for this model
            _fold_cache.get(f, {}).clear()  # type: ignore[call-overload]
            y, jv = jvp_many(f, x0, tangents, vectorize, tangent_batch)
    if len(chosen) < len(gens):
        # rows of the identity copy basis generators exactly; the others are combined in float64
        jv = torch.einsum("gk,k...->g...", coefficients.to(device=jv.device), jv.double()).to(jv.dtype)
    if resolve_output(output, y.shape) == "equivariant":
        jv = jv - lie_action(y.detach(), gens, image_model)
    return jv


def _double_backward(
    f: Callable[[Tensor], Tensor], x: Tensor, gens: list[Generator], output: str, image_model: str
) -> Tensor:
    """The double-backward method, inside :class:`TwiceDifferentiable` (entered by :func:`lie_derivative`)."""
    x = x.detach()
    results = []
    with torch.enable_grad():
        for g in gens:
            t = torch.zeros(1, dtype=x.dtype, device=x.device, requires_grad=True)
            y = f(transform(x, g, t, image_model)[0])
            if resolve_output(output, y.shape) == "equivariant":
                y = transform(y, g, -t, image_model)[0]
            u = torch.ones_like(y, requires_grad=True)
            (u_dy_dt,) = torch.autograd.grad(y, t, u, create_graph=True)
            (dy_dt,) = torch.autograd.grad(u_dy_dt, u, torch.ones_like(u_dy_dt))
            results.append(dy_dt.detach())
    return torch.stack(results)


def lie_derivative(
    f: Callable[[Tensor], Tensor],
    x: Tensor,
    generators: str | Sequence[str] = "e2e",
    output: str = "invariant",
    method: str = "forward",
    image_model: str = "bilinear",
    vectorize: str = "auto",
    tangent_batch: int | str | None = "auto",
    basis: bool = True,
    fold_batch_norm: bool = True,
) -> Tensor:
    """Lie derivatives ``L_g f(x)`` for each generator: returns ``(G, *f(x).shape)``.

    ``f`` maps a batch ``x`` (images ``(B, C, H, W)`` or tokens ``(B, N, C)``) to a batch of outputs.  ``output``
    is ``"invariant"`` (``T_out`` = identity), ``"equivariant"`` (the output is transformed back) or ``"auto"``
    (decided from the output's shape).  ``method`` is ``"forward"`` or ``"double_backward"`` (module docstring).
    The units are those of the generator's parameter ``t`` (half image widths for translations, radians for
    rotations).  ``vectorize`` and ``tangent_batch`` tune the forward method (:func:`jvp_many`); ``basis`` lets it
    compute only a basis of the requested generators' span and ``fold_batch_norm`` folds eval batch norms into the
    convolutions before them (module docstring).  If ``f`` is an ``nn.Module`` it is
    made autodiff-ready (:func:`autodiff_ready`) for the call.
    """
    gens = resolve_generators(generators)
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    model = f if isinstance(f, nn.Module) else None
    f = autocast_network(f, x.device)  # f itself unless lieq.precision.use_precision("bf16")
    # The call's PyTorch function overrides: entered here only, thread-local, gone when the call returns.
    # Strict float32 (TF32 off) unless lieq.precision.use_precision chose otherwise; restored on return.
    with (
        measurement_precision(x.device),
        autodiff_ready(model, keep_fused_attention=method == "forward"),
        call_overrides(method) as overrides,
    ):
        if method == "forward":
            return _forward(
                f, x, gens, output, image_model, vectorize, tangent_batch, basis, fold_batch_norm, rules=overrides
            )
        return _double_backward(f, x, gens, output, image_model)
