"""Cheaper forward-mode rules for the layers that dominate image classifiers (used by the forward engine).

PyTorch's generic JVP rules for ``conv2d`` and ``linear`` also evaluate the term of the weight's tangent, which is
materialised as zeros when the weights carry no tangent (one extra primal-sized convolution and a broadcast add per
layer), and its eval-mode ``batch_norm`` rule runs the training-mode formula.  Inside :func:`fast_jvp_rules` these
functions are replaced, when called without autograd recording, by custom functions whose primal is computed by the
native kernel (bit-identical outputs) and whose tangent is only the input term.  Weights and biases are treated as
constants (``torch.func.jvp`` hands them all-zero tangents, which these rules ignore); the engine differentiates with
respect to the input only.

* ``conv2d(x, W, b)``: tangent ``conv2d(x_t, W)``;
* ``linear(x, W, b)``: tangent ``linear(x_t, W)``;
* eval-mode ``batch_norm``: tangent ``x_t * weight / sqrt(running_var + eps)``;
* exact ``gelu``: tangent ``x_t * (Phi(x) + x phi(x))`` with the slope computed once per primal (PyTorch's rule
  re-evaluates it for every vectorised tangent).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch.autograd import Function

_native_conv2d = F.conv2d
_native_linear = F.linear
_native_batch_norm = F.batch_norm
_native_gelu = F.gelu


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
        (x,) = inputs
        ctx.slope = 0.5 * (1.0 + torch.erf(x * 0.7071067811865476)) + x * torch.exp(-0.5 * x * x) * 0.3989422804014327
        ctx.set_materialize_grads(False)

    @staticmethod
    def jvp(ctx, x_t):
        return None if x_t is None else x_t * ctx.slope


def _gelu(input, approximate="none"):
    if approximate != "none" or torch.is_grad_enabled():
        return _native_gelu(input, approximate=approximate)
    return _Gelu.apply(input)


def _conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    if torch.is_grad_enabled():
        return _native_conv2d(input, weight, bias, stride, padding, dilation, groups)
    return _Conv2d.apply(input, weight, bias, stride, padding, dilation, groups)


def _linear(input, weight, bias=None):
    if torch.is_grad_enabled():
        return _native_linear(input, weight, bias)
    return _Linear.apply(input, weight, bias)


def _batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
    if training or running_mean is None or running_var is None or torch.is_grad_enabled():
        return _native_batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)
    return _EvalBatchNorm.apply(input, running_mean, running_var, weight, bias, eps)


@contextlib.contextmanager
def fast_jvp_rules() -> Iterator[None]:
    """Swap in the cheaper rules for the duration of the block (they apply only where grad mode is off)."""
    saved = (F.conv2d, F.linear, F.batch_norm, F.gelu)
    F.conv2d, F.linear, F.batch_norm, F.gelu = _conv2d, _linear, _batch_norm, _gelu
    try:
        yield
    finally:
        F.conv2d, F.linear, F.batch_norm, F.gelu = saved
