"""The engine's overrides of PyTorch functions are scoped to the ``lie_derivative`` call and to its thread.

Inside a call the forward method routes ``F.conv2d``, ``F.linear``, ``F.batch_norm``, ``F.layer_norm``, ``F.gelu`` and
``F.scaled_dot_product_attention`` to its own forward-mode rules (which treat weights as constants, so a weight's
tangent is dropped), and the double-backward method computes ``F.hardsigmoid`` by a composite with a double backward.
After the call, and in another thread during it, every one of these functions must be PyTorch's own object with
PyTorch's own outcome: the same values, the weights' tangent terms, and the same errors where PyTorch has no rule
(forward-mode AD of the fused CPU attention kernel, double backward of ``hardsigmoid``).
"""

from __future__ import annotations

import sys
import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lieq.engine import lie_derivative

NAMES = ("conv2d", "linear", "batch_norm", "layer_norm", "gelu", "scaled_dot_product_attention", "hardsigmoid")
SDP_FLAGS = ("flash_sdp_enabled", "mem_efficient_sdp_enabled", "math_sdp_enabled", "cudnn_sdp_enabled")


def _inputs() -> dict:
    g = torch.Generator().manual_seed(0)
    shapes = {
        "x": (2, 3, 6, 6), "w": (4, 3, 3, 3), "b": (4,), "lw": (5, 6), "lb": (5,), "mean": (3,), "gamma": (3,),
        "beta": (3,), "nw": (6,), "nb": (6,), "q": (1, 2, 5, 4), "k": (1, 2, 5, 4), "v": (1, 2, 5, 4), "t": (2, 7, 6),
    }  # fmt: skip
    data = {name: torch.randn(shape, generator=g) for name, shape in shapes.items()}
    data["var"] = torch.rand(3, generator=g) + 0.5
    data["tangent"] = {name: torch.randn(value.shape, generator=g) for name, value in data.items()}
    return data


def _jvp(fn, primals: tuple[torch.Tensor, ...], d: dict, names: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Primal and tangent of ``fn`` with every argument varying (weights included), without autograd recording."""
    tangents = tuple(d["tangent"][n] for n in names.split())
    with torch.no_grad():
        return torch.func.jvp(fn, primals, tangents)


def _double_backward(fn, x: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_()
    (g,) = torch.autograd.grad(fn(x).sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), x)
    return gg


def _probes(d: dict) -> dict:
    """What PyTorch's functions give: values, tangents with respect to inputs and weights, double backward."""
    x, t = d["x"], d["t"]

    def eval_batch_norm(x, gamma, beta):
        return F.batch_norm(x, d["mean"], d["var"], gamma, beta, training=False)

    return {
        "conv2d": lambda: _jvp(lambda x, w, b: F.conv2d(x, w, b, padding=1), (x, d["w"], d["b"]), d, "x w b"),
        "linear": lambda: _jvp(lambda t, w, b: F.linear(t, w, b), (t, d["lw"], d["lb"]), d, "t lw lb"),
        "batch_norm": lambda: _jvp(eval_batch_norm, (x, d["gamma"], d["beta"]), d, "x gamma beta"),
        "layer_norm": lambda: _jvp(lambda t, w, b: F.layer_norm(t, (6,), w, b), (t, d["nw"], d["nb"]), d, "t nw nb"),
        "gelu": lambda: _jvp(F.gelu, (x,), d, "x"),
        "attention": lambda: F.scaled_dot_product_attention(d["q"], d["k"], d["v"]),
        "attention_jvp": lambda: _jvp(F.scaled_dot_product_attention, (d["q"], d["k"], d["v"]), d, "q k v"),
        "hardsigmoid_jvp": lambda: _jvp(F.hardsigmoid, (x,), d, "x"),
        "hardsigmoid_double_backward": lambda: _double_backward(F.hardsigmoid, x),
    }


def _outcome(fn) -> tuple:
    try:
        out = fn()
    except Exception as exc:  # PyTorch has no rule here: the error is its outcome
        return ("error", type(exc), str(exc).splitlines()[0])
    return ("value", tuple(out) if isinstance(out, tuple) else (out,))


def _outcomes(d: dict) -> dict:
    return {name: _outcome(fn) for name, fn in _probes(d).items()}


def _same(a: dict, b: dict) -> list[str]:
    """The probes whose outcomes differ."""
    differ = []
    for name in a:
        (kind_a, *rest_a), (kind_b, *rest_b) = a[name], b[name]
        if kind_a != kind_b:
            differ.append(name)
        elif kind_a == "error":
            differ += [name] if rest_a != rest_b else []
        elif not all(torch.equal(u, v) for u, v in zip(rest_a[0], rest_b[0], strict=True)):
            differ.append(name)
    return differ


def _state() -> dict:
    """PyTorch's process and thread state that an override could change."""
    return {
        "functional": {name: getattr(F, name) for name in NAMES},
        "sdp_flags": {flag: getattr(torch.backends.cuda, flag)() for flag in SDP_FLAGS},
        "modes": list(torch.overrides._get_current_function_mode_stack()),
    }


def _check_untouched(before_state: dict, before: dict, d: dict) -> None:
    state = _state()
    for name in NAMES:
        assert state["functional"][name] is before_state["functional"][name], f"F.{name} was replaced"
    assert state["sdp_flags"] == before_state["sdp_flags"], "attention backends were switched for the process"
    assert state["modes"] == [], "a torch function mode is active outside the call"
    assert _same(before, _outcomes(d)) == []


class AllFunctions(nn.Module):
    """A small network that calls every overridden function (conv -> BN -> GELU, hardsigmoid squeeze-excite,
    layer norm, attention, linear), optionally waiting inside the differentiated pass until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.bn.running_mean.uniform_(-1, 1)
        self.bn.running_var.uniform_(0.5, 2)
        self.norm, self.qkv, self.head = nn.LayerNorm(8), nn.Linear(8, 24), nn.Linear(8, 5)
        self.entered, self.release = threading.Event(), threading.Event()
        self.release.set()
        self.modes_inside: list[type] = []
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        differentiated = x.requires_grad or torch._C._functorch.is_functorch_wrapped_tensor(x)
        if differentiated and not self.release.is_set():  # inside the call's tangent or reverse pass
            self.modes_inside = [type(m) for m in torch.overrides._get_current_function_mode_stack()]
            self.entered.set()
            assert self.release.wait(timeout=120), "the other thread did not finish"
        h = F.gelu(self.bn(self.conv(x)))
        h = h * F.hardsigmoid(h.mean((2, 3), keepdim=True))
        tokens = self.norm(h.flatten(2).transpose(1, 2))
        q, k, v = self.qkv(tokens).unsqueeze(1).chunk(3, dim=-1)
        tokens = F.scaled_dot_product_attention(q, k, v).squeeze(1)
        return self.head(tokens.mean(1)).softmax(-1)


def test_the_probes_tell_the_overrides_from_pytorchs_own_functions():
    """Inside the overrides (entered by hand here) the probes' outcomes change: weights' tangents are dropped, the
    attention gets a forward-mode rule and hardsigmoid a double backward.  So the checks below can fail."""
    from lieq.engine import MathAttention, TwiceDifferentiable, call_overrides

    d = _inputs()
    before = _outcomes(d)
    values = ["conv2d", "linear", "batch_norm", "layer_norm", "gelu", "attention", "hardsigmoid_jvp"]
    assert [name for name in values if before[name][0] != "value"] == []
    assert before["hardsigmoid_double_backward"][0] == "error", "PyTorch now differentiates hardsigmoid twice"
    with call_overrides("forward"):
        changed = _same(before, _outcomes(d))
    assert {"conv2d", "linear", "batch_norm", "layer_norm"} <= set(changed)
    with MathAttention():
        assert "attention_jvp" in _same(before, _outcomes(d)) or before["attention_jvp"][0] == "value"
    with TwiceDifferentiable():
        assert "hardsigmoid_double_backward" in _same(before, _outcomes(d))
    assert _same(before, _outcomes(d)) == []


@pytest.mark.parametrize("method", ["forward", "double_backward"])
def test_functional_is_pytorchs_own_after_a_call(method):
    d = _inputs()
    before_state, before = _state(), _outcomes(d)
    lie = lie_derivative(AllFunctions(), torch.randn(2, 3, 8, 8), ["translate_x", "rotate"], method=method)
    assert torch.isfinite(lie).all() and lie.abs().sum() > 0
    _check_untouched(before_state, before, d)


@pytest.mark.parametrize("method", ["forward", "double_backward"])
def test_another_thread_sees_pytorchs_own_functions_during_a_call(method):
    d = _inputs()
    before_state, before = _state(), _outcomes(d)
    model = AllFunctions()
    model.release.clear()
    errors: list[BaseException] = []

    def other_thread() -> None:
        try:
            assert model.entered.wait(timeout=120), "the call did not reach the model"
            _check_untouched(before_state, before, d)
        except BaseException as exc:  # re-raised in the main thread
            errors.append(exc)
        finally:
            model.release.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    try:
        x = torch.randn(2, 3, 8, 8)
        lie = lie_derivative(model, x, ["translate_x", "rotate"], method=method)
    finally:
        model.release.set()
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    assert model.entered.is_set(), "the model never waited inside the call"
    expected = "FastJvpRules" if method == "forward" else "TwiceDifferentiable"
    assert expected in [m.__name__ for m in model.modes_inside], "the call's overrides were not active inside it"
    reference = lie_derivative(AllFunctions(), x, ["translate_x", "rotate"], method="double_backward")
    torch.testing.assert_close(lie, reference, rtol=1e-4, atol=1e-6)


def test_concurrent_calls_agree_with_serial_calls():
    """A forward-method call (folded batch norms, fast rules) waits inside its tangent pass while another thread runs
    a whole double-backward call and a forward call: each result equals the one of the same call made alone."""
    x = torch.randn(2, 3, 8, 8)
    gens = ["translate_x", "rotate"]
    serial = {
        method: lie_derivative(AllFunctions(), x, gens, method=method) for method in ("forward", "double_backward")
    }
    blocked = AllFunctions()
    blocked.release.clear()
    results: dict[str, torch.Tensor] = {}
    errors: list[BaseException] = []

    def other_thread() -> None:
        try:
            assert blocked.entered.wait(timeout=120), "the call did not reach the model"
            for method in ("double_backward", "forward"):
                results[method] = lie_derivative(AllFunctions(), x, gens, method=method)
        except BaseException as exc:
            errors.append(exc)
        finally:
            blocked.release.set()

    thread = threading.Thread(target=other_thread)
    thread.start()
    try:
        results["blocked"] = lie_derivative(blocked, x, gens)
    finally:
        blocked.release.set()
        thread.join(timeout=120)
    if errors:
        raise errors[0]
    assert torch.equal(results["blocked"], serial["forward"])
    assert torch.equal(results["forward"], serial["forward"])
    assert torch.equal(results["double_backward"], serial["double_backward"])


# --------------------------------------------------------------------------------------------------------------
# The allocator policy (lieq._memory) is the program's choice: a library call changes no process-wide setting
# --------------------------------------------------------------------------------------------------------------

_PROGRAM = """
import sys, torch, lieq
from lieq import _memory
before = _memory.is_applied()
nn = torch.nn
model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(144, 5))
lieq.lie_derivative(model.eval(), torch.randn(2, 3, 8, 8), "e2e")
from lieq.baselines import baseline_metrics
baseline_metrics(model, torch.randn(1, 3, 8, 8), metrics="eq_t", samples=2, batch_size=4)
after_calls = _memory.is_applied()
explicit = lieq.retain_freed_memory() if sys.argv[1] == "explicit" else None
print(before, after_calls, explicit, _memory.is_applied())
"""


def _run_program(mode: str, env_value: str | None) -> list[str]:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "LIEQ_RETAIN_MEMORY"}
    if env_value is not None:
        env["LIEQ_RETAIN_MEMORY"] = env_value
    out = subprocess.run(
        [sys.executable, "-c", _PROGRAM, mode], env=env, capture_output=True, text=True, timeout=300, check=True
    )
    return out.stdout.split()


def test_importing_and_calling_lieq_changes_no_malloc_setting():
    before, after_calls, _, end = _run_program("library", None)
    assert (before, after_calls, end) == ("False", "False", "False")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_program_opts_in_explicitly_or_by_the_environment():
    assert _run_program("explicit", None) == ["False", "False", "True", "True"]  # lieq.retain_freed_memory()
    assert _run_program("library", "1") == ["True", "True", "None", "True"]  # LIEQ_RETAIN_MEMORY=1: at import
    assert _run_program("explicit", "0") == ["False", "False", "False", "False"]  # LIEQ_RETAIN_MEMORY=0: never
