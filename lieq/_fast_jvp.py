"""Cheaper forward-mode rules for the layers that dominate image classifiers (used by the forward engine).

PyTorch's generic JVP rules for ``conv2d`` and ``linear`` also evaluate the term of the weight's tangent, which is
materialised as zeros when the weights carry no tangent (one extra primal-sized convolution and a broadcast add per
layer), and its eval-mode ``batch_norm`` rule runs the training-mode formula.  Inside a :class:`FastJvpRules` block
(a :class:`~torch.overrides.TorchFunctionMode`, so it applies to the calling thread only and ``torch.nn.functional``
itself is never modified), these functions, when called without autograd recording, are routed to custom functions
whose primal is computed by the native kernel (bit-identical outputs) and whose tangent is only the input term.
Weights and biases are treated as constants (``torch.func.jvp`` hands them all-zero tangents, which these rules
ignore); the engine differentiates with respect to the input only.

* ``conv2d(x, W, b)``: tangent ``conv2d(x_t, W)``;
* ``linear(x, W, b)``: tangent ``linear(x_t, W)``;
* eval-mode ``batch_norm``: tangent ``x_t * weight / sqrt(running_var + eps)``;
* exact ``gelu``: tangent ``x_t * (Phi(x) + x phi(x))`` with the slope computed once per primal, by GELU's fused
  backward kernel (PyTorch's rule re-evaluates it for every vectorised tangent);
* ``layer_norm``: with ``x_hat = (x - mean) * rstd`` and ``g = weight * rstd`` saved from the primal, the tangent is
  ``g * (x_t - mean(x_t) - x_hat * mean(x_hat * x_t))`` (means over the normalised dimensions): five passes over each
  tangent instead of the generic rule's recomputation of the statistics' derivatives;
* ``scaled_dot_product_attention`` (no dropout): the primal ``A = softmax(s q k^T + mask)``, ``out = A v`` is
  computed explicitly and ``A`` is kept, so each tangent costs
  ``S_t = [q_t | q] [s k | s k_t]^T`` (one matrix product over the doubled head dimension, no separate add),
  ``P = A * S_t`` and ``out_t = P v - rowsum(P) * out + A v_t`` (three passes over the N x N tangent, and ``A`` is
  never copied per tangent).  This also gives fused-attention models
  (timm's ``fused_attn``) a forward-mode rule, which the fused kernels lack.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.autograd import Function
from torch.overrides import TorchFunctionMode

_native_conv2d = F.conv2d
_native_linear = F.linear
_native_batch_norm = F.batch_norm
_native_gelu = F.gelu
_native_layer_norm = F.layer_norm
_native_sdpa = F.scaled_dot_product_attention


class _Conv2d(Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x, weight, bias, stride, padding, dilation, groups):
        return _native_conv2d(x, weight, bias, stride, padding, dilation, groups)

    @staticmethod
    def setup_context(ctx, inputs, output):
        _, weight, _, stride, padding, dilation, groups = inputs
        ctx.weight, ctx.args = weight, (stride, padding, dilation, groups)
        ctx.set_materialize_grads(False)  # no zero tangents for the weights

    @staticmethod
    def jvp(ctx, x_t, *_):
        return None if x_t is None else _native_conv2d(x_t, ctx.weight, None, *ctx.args)


class _Linear(Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x, weight, bias):
        return _native_linear(x, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.weight = inputs[1]
        ctx.set_materialize_grads(False)

    @staticmethod
    def jvp(ctx, x_t, *_):
        return None if x_t is None else _native_linear(x_t, ctx.weight)


class _EvalBatchNorm(Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x, running_mean, running_var, weight, bias, eps):
        return _native_batch_norm(x, running_mean, running_var, weight, bias, False, 0.0, eps)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, _, running_var, weight, _, eps = inputs
        scale = torch.rsqrt(running_var + eps)
        if weight is not None:
            scale = scale * weight
        ctx.scale = scale.reshape(-1, *([1] * (x.dim() - 2)))
        ctx.set_materialize_grads(False)

    @staticmethod
    def jvp(ctx, x_t, *_):
        return None if x_t is None else x_t * ctx.scale


class _Gelu(Function):
    """Exact (erf) GELU; its derivative ``Phi(x) + x phi(x)`` is computed once from the primal, not per tangent."""

    generate_vmap_rule = True

    @staticmethod
    def forward(x):
        return _native_gelu(x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        (ctx.x,) = inputs
        ctx.set_materialize_grads(False)

    @staticmethod
    def jvp(ctx, x_t):
        if x_t is None:
            return None
        # Phi(x) + x phi(x) in one fused pass: GELU's own backward kernel with an upstream gradient of one
        slope = torch.ops.aten.gelu_backward(
            torch.ones((), dtype=ctx.x.dtype, device=ctx.x.device).expand_as(ctx.x), ctx.x
        )
        return x_t * slope


class _LayerNorm(Function):
    generate_vmap_rule = True

    @staticmethod
    def forward(x, normalized_shape, weight, bias, eps):
        return _native_layer_norm(x, normalized_shape, weight, bias, eps)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.x, normalized_shape, ctx.weight, _, ctx.eps = inputs
        ctx.dims = tuple(range(-len(normalized_shape), 0))
        ctx.set_materialize_grads(False)

    @staticmethod
    def jvp(ctx, x_t, *_):
        if x_t is None:
            return None
        var, mean = torch.var_mean(ctx.x, dim=ctx.dims, unbiased=False, keepdim=True)
        rstd = torch.rsqrt(var + ctx.eps)
        x_hat = (ctx.x - mean) * rstd
        gain = rstd if ctx.weight is None else rstd * ctx.weight
        mean_t = x_t.mean(ctx.dims, keepdim=True)
        if len(ctx.dims) == 1:  # a row-wise dot product, without a tangent-sized temporary
            projection = torch.linalg.vecdot(x_t, x_hat).unsqueeze(-1) / x_t.shape[-1]
        else:
            projection = (x_t * x_hat).mean(ctx.dims, keepdim=True)
        return torch.addcmul(x_t - mean_t, x_hat, projection, value=-1.0).mul_(gain)


def _attention_bias(q: torch.Tensor, k: torch.Tensor, attn_mask, is_causal: bool) -> torch.Tensor | None:
    """The additive bias of ``scaled_dot_product_attention``'s mask arguments (``None`` when there is none)."""
    bias = None
    if is_causal:
        keep = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
        bias = torch.zeros(keep.shape, dtype=q.dtype, device=q.device).masked_fill(~keep, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            mask = torch.zeros(attn_mask.shape, dtype=q.dtype, device=q.device).masked_fill(~attn_mask, float("-inf"))
        else:
            mask = attn_mask
        bias = mask if bias is None else bias + mask
    return bias


class _LeftMatmul(Function):
    """``a @ x`` for an ``a`` shared by all vectorised tangents: under ``vmap`` the tangent axis of ``x`` is folded
    into its columns, so ``a`` (an attention matrix) is not copied once per tangent as the generic batching rule
    does."""

    @staticmethod
    def forward(a, x):
        return torch.matmul(a, x)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.a, ctx.x = inputs

    @staticmethod
    def jvp(ctx, a_t, x_t):
        out = None if a_t is None else torch.matmul(a_t, ctx.x)
        if x_t is not None:
            term = _LeftMatmul.apply(ctx.a, x_t)
            out = term if out is None else out + term
        return out

    @staticmethod
    def vmap(info, in_dims, a, x):
        a_dim, x_dim = in_dims
        if a_dim is not None:  # ``a`` itself is vectorised: a plain broadcasting product
            x = x.unsqueeze(0) if x_dim is None else x.movedim(x_dim, 0)
            return torch.matmul(a.movedim(a_dim, 0), x), 0
        x = x.movedim(x_dim, -2)  # (..., N, T, D)
        *lead, n, t, d = x.shape
        out = torch.matmul(a, x.reshape(*lead, n, t * d))
        return out.reshape(*out.shape[:-1], t, d).movedim(-2, 0), 0


class _Attention(Function):
    """Scaled dot-product attention that also returns the attention matrix ``A`` (a constant kept for the tangent).

    With ``P = A * S_t`` and ``r = rowsum(P)`` the tangent of ``A`` is ``P - A r``, so
    ``out_t = A_t v + A v_t = P v - r * out + A v_t``: the tangent of ``A`` itself is never materialised.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(q, k, v, bias, scale):
        scores = torch.matmul(q * scale, k.transpose(-2, -1))
        if bias is not None:
            scores = scores + bias
        attn = torch.softmax(scores, dim=-1)
        return torch.matmul(attn, v), attn

    @staticmethod
    def setup_context(ctx, inputs, output):
        q, k, v, _, scale = inputs
        out, attn = output
        ctx.mark_non_differentiable(attn)
        ctx.q, ctx.k, ctx.v, ctx.scale, ctx.out, ctx.attn = q, k, v, scale, out, attn
        ctx.set_materialize_grads(False)

    @staticmethod
    def jvp(ctx, q_t, k_t, v_t, bias_t, *_):
        attn, k_scaled = ctx.attn, ctx.k * ctx.scale
        scores_t = None
        if q_t is not None and k_t is not None:  # q_t (s k)^T + q (s k_t)^T as one product over the doubled head dim
            lhs = torch.cat([q_t, ctx.q.expand_as(q_t)], dim=-1)
            rhs = torch.cat([k_scaled.expand_as(k_t), k_t * ctx.scale], dim=-1)
            scores_t = torch.matmul(lhs, rhs.transpose(-2, -1))
        elif q_t is not None:
            scores_t = torch.matmul(q_t, k_scaled.transpose(-2, -1))
        elif k_t is not None:
            scores_t = torch.matmul(ctx.q, (k_t * ctx.scale).transpose(-2, -1))
        if bias_t is not None:  # an input-dependent mask
            scores_t = bias_t.clone() if scores_t is None else scores_t + bias_t
        out_t = None
        if scores_t is not None:
            weighted = scores_t.mul_(attn)
            out_t = torch.matmul(weighted, ctx.v) - weighted.sum(-1, keepdim=True) * ctx.out
        if v_t is not None:
            term = _LeftMatmul.apply(attn, v_t)
            out_t = term if out_t is None else out_t + term
        return out_t, None


def _scaled_dot_product_attention(
    query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False
):
    if dropout_p > 0.0:
        return _native_sdpa(query, key, value, attn_mask, dropout_p, is_causal, scale=scale, enable_gqa=enable_gqa)
    if enable_gqa and key.shape[-3] != query.shape[-3]:
        repeat = query.shape[-3] // key.shape[-3]
        key, value = key.repeat_interleave(repeat, -3), value.repeat_interleave(repeat, -3)
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else scale
    return _Attention.apply(query, key, value, _attention_bias(query, key, attn_mask, is_causal), scale)[0]


def _layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    return _LayerNorm.apply(input, tuple(normalized_shape), weight, bias, eps)


def _gelu(input, approximate="none"):
    if approximate != "none":
        return _native_gelu(input, approximate=approximate)
    return _Gelu.apply(input)


def _linear(input, weight, bias=None):
    return _Linear.apply(input, weight, bias)


# --------------------------------------------------------------------------------------------------------------
# Folding eval-mode batch norms into the convolutions that feed them
# --------------------------------------------------------------------------------------------------------------


class FoldMismatchError(Exception):
    """A folded batch norm was not called on the output of its convolution (the model's data flow changed)."""


@dataclass(frozen=True)
class FoldPair:
    """A ``conv2d -> batch_norm`` (eval mode) pair found by :func:`find_batch_norm_folds`.

    ``BN(conv(x, W) + b) = conv(x, W s) + (b - mean) s + beta`` with ``s = gamma / sqrt(running_var + eps)``: an
    exact reparametrisation (equal up to float rounding), after which the batch norm is the identity and costs
    nothing in the tangent passes (one multiply per tangent and layer saved).
    """

    conv_weight: torch.Tensor
    running_mean: torch.Tensor
    running_var: torch.Tensor
    gamma: torch.Tensor | None
    beta: torch.Tensor | None
    eps: float


class _FoldProbe(TorchFunctionMode):
    """Records conv2d outputs, how often each is used, and which eval batch norm consumes which output."""

    def __init__(self) -> None:
        super().__init__()
        self.outputs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # id(output) -> (output, conv weight)
        self.uses: Counter[int] = Counter()
        self.weight_calls: Counter[int] = Counter()
        self.mean_calls: Counter[int] = Counter()
        self.pairs: list[tuple[FoldPair, int]] = []  # (pair, id of the conv output it consumes)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        leaves = torch.utils._pytree.tree_leaves
        if any(isinstance(value, torch.Tensor) for value in leaves(out)):  # a use; metadata queries (dim()) are not
            for value in leaves((args, kwargs)):
                if isinstance(value, torch.Tensor) and id(value) in self.outputs:
                    self.uses[id(value)] += 1
        if func is _native_conv2d:
            bound = _CONV2D_SIGNATURE.bind(*args, **kwargs)
            self.outputs[id(out)] = (out, bound.arguments["weight"])  # keeps ``out`` alive: ids stay unique
            self.weight_calls[id(bound.arguments["weight"])] += 1
        elif func is _native_batch_norm:
            bound = _BATCH_NORM_SIGNATURE.bind(*args, **kwargs)
            a = {**{"weight": None, "bias": None, "training": False, "eps": 1e-5}, **bound.arguments}
            if a["running_mean"] is not None:
                self.mean_calls[id(a["running_mean"])] += 1
            x = a["input"]
            if id(x) in self.outputs and not a["training"] and a["running_mean"] is not None:
                conv_weight = self.outputs[id(x)][1]
                pair = FoldPair(conv_weight, a["running_mean"], a["running_var"], a["weight"], a["bias"], a["eps"])
                self.pairs.append((pair, id(x)))
        return out


def find_batch_norm_folds(f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> list[FoldPair]:
    """Run ``f`` once on ``x`` and find the ``conv2d -> batch_norm`` pairs that can be folded.

    A pair qualifies when the convolution's output is used by nothing but the batch norm (eval mode, running
    statistics present), and the convolution's weight and the batch norm's statistics are used by no other call.
    """
    probe = _FoldProbe()
    with torch.no_grad(), probe:
        f(x)
    return [
        pair
        for pair, out_id in probe.pairs
        if probe.uses[out_id] == 1
        and probe.weight_calls[id(pair.conv_weight)] == 1
        and probe.mean_calls[id(pair.running_mean)] == 1
    ]


@dataclass
class _ActiveFold:
    weight: torch.Tensor  # the convolution's own weight (identity check)
    running_mean: torch.Tensor  # the batch norm's running mean (identity check)
    folded_weight: torch.Tensor
    scale: torch.Tensor
    shift: torch.Tensor
    last_output: torch.Tensor | None = None


def _conv2d_arguments(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """The signature of ``F.conv2d`` (a builtin, which :mod:`inspect` cannot read)."""


_CONV2D_SIGNATURE = inspect.signature(_conv2d_arguments)
_BATCH_NORM_SIGNATURE = inspect.signature(_native_batch_norm)

#: Per thread: whether a rule of some :class:`FastJvpRules` is running.  The native calls a rule makes then pass
#: through every other (outer) :class:`FastJvpRules` on this thread's mode stack instead of being routed twice.
_in_rule = threading.local()


class FastJvpRules(TorchFunctionMode):
    """The cheaper forward-mode rules, and the batch-norm folds, for the calling thread inside the block.

    ``with FastJvpRules(folds):`` routes this thread's calls of ``F.conv2d``, ``F.linear``, ``F.batch_norm``,
    ``F.gelu``, ``F.layer_norm`` and ``F.scaled_dot_product_attention`` made while grad mode is off (however the
    caller reached the function: ``F.conv2d``, ``torch.conv2d``, ``nn.Conv2d``) to the custom functions above; calls
    with grad mode on, all other calls, and every call of other threads are PyTorch's own.  ``torch.nn.functional``
    is never modified: the mode lives on PyTorch's thread-local torch-function mode stack.

    The fold state (:class:`FoldPair` s from :func:`find_batch_norm_folds`, set with :meth:`folding`) is held by the
    instance: a folded pair's convolution is computed as one convolution with weights ``W s`` and bias
    ``(b - mean) s + beta``, and its batch norm returns that output unchanged.
    """

    def __init__(self, folds: Sequence[FoldPair] = ()) -> None:
        super().__init__()
        self._folds_by_weight: dict[int, _ActiveFold] = {}
        self._folds_by_mean: dict[int, _ActiveFold] = {}
        self._rules: dict[Callable, Callable] = {
            _native_conv2d: self._conv2d,
            _native_linear: _linear,
            _native_batch_norm: self._batch_norm,
            _native_gelu: _gelu,
            _native_layer_norm: _layer_norm,
            _native_sdpa: _scaled_dot_product_attention,
        }
        self._set_folds(folds)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        rule = self._rules.get(func)
        if rule is None or torch.is_grad_enabled() or getattr(_in_rule, "active", False):
            return func(*args, **kwargs)
        _in_rule.active = True
        try:
            return rule(*args, **kwargs)
        finally:
            _in_rule.active = False

    def _set_folds(self, pairs: Sequence[FoldPair]) -> None:
        self._folds_by_weight.clear()
        self._folds_by_mean.clear()
        for p in pairs:
            scale = torch.rsqrt(p.running_var + p.eps)
            if p.gamma is not None:
                scale = scale * p.gamma
            shift = -p.running_mean * scale if p.beta is None else p.beta - p.running_mean * scale
            folded = p.conv_weight * scale.reshape(-1, 1, 1, 1)
            fold = _ActiveFold(p.conv_weight, p.running_mean, folded, scale, shift)
            self._folds_by_weight[id(p.conv_weight)] = self._folds_by_mean[id(p.running_mean)] = fold

    @contextlib.contextmanager
    def folding(self, pairs: Sequence[FoldPair]) -> Iterator[None]:
        """Compute each pair folded for the duration of the block (the instance's folds are cleared afterwards)."""
        self._set_folds(pairs)
        try:
            yield
        finally:
            self._set_folds(())

    def _conv2d(self, input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        fold = self._folds_by_weight.get(id(weight))
        if fold is not None and fold.weight is weight:
            folded_bias = fold.shift if bias is None else torch.addcmul(fold.shift, bias, fold.scale)
            fold.last_output = _Conv2d.apply(input, fold.folded_weight, folded_bias, stride, padding, dilation, groups)
            return fold.last_output
        return _Conv2d.apply(input, weight, bias, stride, padding, dilation, groups)

    def _batch_norm(
        self, input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5
    ):
        if training or running_mean is None or running_var is None:
            return _native_batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)
        fold = self._folds_by_mean.get(id(running_mean))
        if fold is not None and fold.running_mean is running_mean:
            if input is not fold.last_output:
                raise FoldMismatchError("a folded batch norm was called on something other than its conv's output")
            return input
        return _EvalBatchNorm.apply(input, running_mean, running_var, weight, bias, eps)


def fast_jvp_rules(folds: Sequence[FoldPair] = ()) -> FastJvpRules:
    """A :class:`FastJvpRules` mode: ``with fast_jvp_rules():`` uses the cheaper rules in this thread for the block."""
    return FastJvpRules(folds)
