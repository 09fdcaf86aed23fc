"""What the benchmark times the engine against: the implementations a user would pick instead, and a floor.

  NaiveLoop   one run, the textbook way: an `nn.Module`, autograd, an in-place SGD update.
  FuncLoop    R runs the idiomatic batched way: the parameters stacked on a leading run axis,
              `torch.func.vmap(torch.func.grad(loss))` over `torch.func.functional_call` of the same
              `nn.Module`, the SGD update one `torch._foreach_add_`; with `compile=True` the whole
              step under `torch.compile(fullgraph=True)`.
  Roofline    the matrix products of the engine's own step and nothing else: every bmm/baddbmm a
              period of engine steps calls, recorded with their shapes, strides and arguments, and
              replayed on buffers of the same layout. No data, no elementwise work, no Python
              bookkeeping beyond one call per product: the floor a step of these shapes can reach.

The references compute the engine's numbers (the tests train each from the engine's initial weights on
the same batches and compare weights, loss and accuracy after a few steps). For the persistent state with
n > 1 that means the paper's semantics (see learners/persistent.py): the loss at step t also
backpropagates through the earlier steps its state h_t depends on, with the *current* weights and those
steps' saved activations. The textbook loop gets this from autograd (in-place `p.data` updates, a
retained graph). Functionally, `FuncLoop` replays an earlier step as a value-preserving expression
``old + (f(θ) - f(θ).detach())``: its value is the saved activation, its gradient that of the layer at the
current θ, with the saved ReLU mask.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils._python_dispatch import TorchDispatchMode

N_IN, N_OUT, BATCH = 784, 10, 8
Tensor = torch.Tensor


class NaiveMLP(nn.Module):
    """The network written the textbook way; d_int > 0 adds Iqbal's state input and state head."""

    def __init__(self, d_int: int = 0, hidden=(100, 100, 100), state_head: str = "linear"):
        super().__init__()
        self.state_activation = torch.tanh if state_head == "tanh" else (lambda z: z)
        sizes = (N_IN + d_int, *hidden)
        self.body = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.head = nn.Linear(hidden[-1], N_OUT)
        self.state_head = nn.Linear(hidden[-1], d_int) if d_int else None

    def forward(self, x, h=None, activations: bool = False):
        """(logits, next state or None), and with `activations` the hidden layers' outputs too."""
        a = x if h is None else torch.cat([x, h.expand(x.shape[0], -1)], 1)
        acts = []
        for layer in self.body:
            a = F.relu(layer(a))
            acts.append(a)
        out = (self.head(a), self.state_activation(self.state_head(a.mean(0))) if self.state_head is not None else None)
        return (*out, acts) if activations else out


def _shape(learner) -> tuple[int, int, tuple[int, ...]]:
    """(d_int, truncation period n, hidden widths) of a timed learner (d_int 0 and n 1: the baseline)."""
    return getattr(learner, "d_int", 0), getattr(learner, "n", 1), tuple(learner.hidden)


def module_params(learner, state: dict) -> dict[str, Tensor]:
    """The engine's parameters in `nn.Linear` layout, stacked over runs and named as NaiveMLP's:
    weights (R, out, in), biases (R, out), copies."""
    d_int, _, hidden = _shape(learner)
    names = [f"body.{i}" for i in range(len(hidden))] + ["head"] + (["state_head"] if d_int else [])
    ws, bs = learner.parameters(state)
    assert len(ws) == len(names), (len(ws), names)
    params = {}
    for name, w, b in zip(names, ws, bs):
        params[f"{name}.weight"] = w.transpose(1, 2).contiguous()
        params[f"{name}.bias"] = b[:, 0].clone()
    return params


class NaiveLoop:
    """One run, as a textbook loop (the paper's semantics for n > 1: in-place `p.data` updates, and
    backprop through the earlier steps with the current weights). `state`, if given, is an engine
    state whose run `run` gives the initial weights; otherwise `nn.Linear`'s initialisation."""

    def __init__(self, learner, device, state: dict | None = None, run: int = 0):
        self.d_int, self.n, hidden = _shape(learner)
        self.lr = learner.lr
        self.model = NaiveMLP(self.d_int, hidden).to(device)
        if state is not None:
            with torch.no_grad():
                for name, p in module_params(learner, state).items():
                    self.model.get_parameter(name).copy_(p[run])
        self.params = list(self.model.parameters())
        self.h = torch.zeros(self.d_int, device=device) if self.d_int else None
        self.t = 0
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)

    def step(self, x: Tensor, y: Tensor) -> None:
        """One SGD step on a batch x (B, 784), y (B,)."""
        h = self.h
        if h is not None and self.t % self.n == 0:
            h = h.detach()  # truncation: h_t is a constant for this step's loss
        logits, h_next = self.model(x, h)
        loss = F.cross_entropy(logits, y)
        self.loss_sum += loss.detach()
        self.correct += (logits.argmax(1) == y).sum()
        for p in self.params:
            p.grad = None
        loss.backward(retain_graph=h is not None and self.n > 1)
        with torch.no_grad():  # p.data-style update: the paper's in-place semantics for n > 1
            for p in self.params:
                if p.grad is not None:
                    p.data.add_(p.grad, alpha=-self.lr)
        self.h = h_next
        self.t += 1


def _replay(params: dict, chain: Sequence[tuple], n_hidden: int) -> Tensor:
    """h_t as a function of the current parameters through the saved earlier steps of the chain
    (oldest first): each value exactly the saved one, each gradient the layer's at the current θ."""
    h = chain[0][1]  # where the graph through h is cut: a constant
    for x, _, acts, h_out in chain:
        a = torch.cat([x, h.expand(x.shape[0], -1)], 1)
        for i in range(n_hidden):
            z = F.linear(a, params[f"body.{i}.weight"], params[f"body.{i}.bias"]) * (acts[i] > 0)
            a = acts[i] + (z - z.detach())
        hh = F.linear(a.mean(0), params["state_head.weight"], params["state_head.bias"])
        h = h_out + (hh - hh.detach())
    return h


class FuncLoop:
    """R runs, stacked: vmap(grad(loss)) over functional_call of NaiveMLP, SGD as one _foreach_add_.
    With `compile`, the whole step is `torch.compile(fullgraph=True)`d at its first call (which
    raises where this torch build cannot compile it). `state`, if given, is the engine state whose
    weights it starts from (default: the engine's initialisation for seeds 0..R-1)."""

    def __init__(self, learner, runs: int, device, state: dict | None = None, compile: bool = False):
        from torch.func import functional_call, grad, vmap

        self.d_int, self.n, hidden = _shape(learner)
        self.lr = learner.lr
        if state is None:
            state = learner.init_state(list(range(runs)), N_IN, N_OUT, device)
        self.params = module_params(learner, state)
        base = NaiveMLP(self.d_int, hidden).to("meta")
        n_hidden = len(hidden)

        if self.d_int:

            def loss(params, x, y, h, chain):
                if chain:
                    h = _replay(params, chain, n_hidden)
                logits, h_next, acts = functional_call(base, params, (x, h), {"activations": True})
                value = F.cross_entropy(logits, y)
                return value, (value.detach(), (logits.argmax(-1) == y).sum(), h_next.detach(), acts)
        else:

            def loss(params, x, y, h, chain):
                logits, _ = functional_call(base, params, (x,))
                value = F.cross_entropy(logits, y)
                return value, (value.detach(), (logits.argmax(-1) == y).sum())

        grads = vmap(grad(loss, has_aux=True), in_dims=(0, 0, 0, 0, 0))
        lr = self.lr

        def step(params, x, y, h, chain):
            g, aux = grads(params, x, y, h, chain)
            torch._foreach_add_(list(params.values()), [g[k] for k in params], alpha=-lr)
            return aux

        self._step = torch.compile(step, fullgraph=True, dynamic=False) if compile else step
        self.h = torch.zeros(runs, self.d_int, device=device) if self.d_int else torch.zeros(runs, 0, device=device)
        self.chain: list[tuple] = []
        self.t = 0
        self.loss_sum = torch.zeros(runs, device=device)
        self.correct = torch.zeros(runs, dtype=torch.int64, device=device)

    def step(self, x: Tensor, y: Tensor) -> None:
        """One SGD step for all R runs on x (R, B, 784), y (R, B)."""
        if self.t % self.n == 0:
            self.chain = []
        aux = self._step(self.params, x, y, self.h, tuple(self.chain))
        self.loss_sum += aux[0]
        self.correct += aux[1]
        if self.d_int:
            h_next, acts = aux[2], aux[3]
            if (self.t + 1) % self.n != 0:  # the next step's loss reaches back into this one
                self.chain.append((x, self.h, acts, h_next))
            self.h = h_next
        self.t += 1


# ---- the roofline: the engine step's matrix products alone ------------------------------------

_aten = torch.ops.aten
MATMULS = (
    _aten.bmm.default,
    _aten.baddbmm.default,
    _aten.baddbmm_.default,
    _aten.mm.default,
    _aten.addmm.default,
    _aten.addmm_.default,
)


class _Meta:
    """A recorded tensor argument: its layout and which storage it lived in."""

    __slots__ = ("shape", "stride", "offset", "storage", "numel", "dtype")

    def __init__(self, t: Tensor):
        self.shape, self.stride, self.offset = tuple(t.shape), t.stride(), t.storage_offset()
        self.storage, self.dtype = t.untyped_storage().data_ptr(), t.dtype
        self.numel = t.untyped_storage().nbytes() // t.element_size()


class RecordMatmuls(TorchDispatchMode):
    """Records every matrix product run under it: (op, args with tensors as _Meta, kwargs)."""

    def __init__(self):
        super().__init__()
        self.ops: list[tuple] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in MATMULS:
            self.ops.append((func, tuple(_Meta(a) if isinstance(a, Tensor) else a for a in args), dict(kwargs)))
        return func(*args, **kwargs)


def signature(ops: Sequence[tuple]) -> list[tuple]:
    """What a list of recorded products computes, comparable across recordings: op, shapes, strides."""
    return [
        (str(f), tuple((a.shape, a.stride) if isinstance(a, _Meta) else a for a in args), tuple(sorted(kw.items())))
        for f, args, kw in ops
    ]


def flops(ops: Sequence[tuple]) -> int:
    """Floating-point operations of the products (2·m·n·k per output matrix, bias adds not counted)."""
    total = 0
    for func, args, _ in ops:
        if func in (_aten.bmm.default,):
            (b, m, k), (_, _, n) = args[0].shape, args[1].shape
        elif func in (_aten.baddbmm.default, _aten.baddbmm_.default):
            (b, m, k), (_, _, n) = args[1].shape, args[2].shape
        elif func is _aten.mm.default:
            b, (m, k), (_, n) = 1, args[0].shape, args[1].shape
        else:  # addmm
            b, (m, k), (_, n) = 1, args[1].shape, args[2].shape
        total += 2 * b * m * n * k
    return total


def engine_matmuls(learner, runs: int, device, steps: int | None = None) -> list[list[tuple]]:
    """The matrix products of each step of one period of the engine's steps (from where the graph
    through h is cut), recorded from a fresh state on random batches."""
    steps = steps or (learner.block_period() or 1)
    state = learner.init_state(list(range(runs)), N_IN, N_OUT, device)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(runs, BATCH, N_IN, generator=g).to(device)
    y = torch.randint(0, N_OUT, (runs, BATCH), generator=g).to(device)
    per_step = []
    for _ in range(steps):
        with RecordMatmuls() as rec:
            learner.step(state, x, y)
        per_step.append(rec.ops)
    return per_step


class Roofline:
    """Replays the engine's matrix products (one period of steps, cycled) on buffers of the recorded
    layouts: one buffer per storage the engine used, so the working set is the engine's."""

    def __init__(self, learner, runs: int, device):
        self.recorded = engine_matmuls(learner, runs, device)
        self.runs, self.device, self.graph = runs, torch.device(device), None
        sizes: dict[int, tuple[int, torch.dtype]] = {}
        for ops in self.recorded:
            for _, args, _ in ops:
                for a in args:
                    if isinstance(a, _Meta):
                        sizes[a.storage] = (max(a.numel, sizes.get(a.storage, (0,))[0]), a.dtype)
        g = torch.Generator().manual_seed(0)
        buffers = {k: (torch.randn(n, generator=g, dtype=dtype) * 0.01).to(device) for k, (n, dtype) in sizes.items()}
        self.calls: list[list[tuple[Callable, tuple, dict]]] = [
            [
                (
                    func,
                    tuple(
                        buffers[a.storage].as_strided(a.shape, a.stride, a.offset) if isinstance(a, _Meta) else a
                        for a in args
                    ),
                    kw,
                )
                for func, args, kw in ops
            ]
            for ops in self.recorded
        ]

    @property
    def flop_per_run_step(self) -> float:
        return sum(flops(ops) for ops in self.recorded) / len(self.recorded) / self.runs

    def run(self, steps: int) -> None:
        """`steps` steps' products. On a GPU, whole blocks of steps replay as one CUDA graph (recorded
        at the first call, after an eager warm-up block), as the engine's blocks do: without it the
        floor would be the launches', not the products'."""
        if self.device.type != "cuda":
            return self._eager(steps)
        block = len(self.calls) * max(1, 64 // len(self.calls))
        if self.graph is None:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._eager(block)
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self._eager(block)
        for _ in range(steps // block):
            self.graph.replay()
        self._eager(steps % block)

    def _eager(self, steps: int) -> None:
        period = len(self.calls)
        for t in range(steps):
            for func, args, kw in self.calls[t % period]:
                func(*args, **kw)


def compile_works(learner, device) -> str | None:
    """None where `FuncLoop(compile=True)` compiles and runs one step on this torch build; otherwise
    the reason, in one line."""
    try:
        ref = FuncLoop(learner, 1, device, compile=True)
        x, y = torch.rand(1, BATCH, N_IN, device=device), torch.zeros(1, BATCH, dtype=torch.int64, device=device)
        for _ in range(max(2, getattr(learner, "n", 1))):
            ref.step(x, y)
        return None
    except Exception as err:  # noqa: BLE001 - any failure means: not available here, and why
        text = " ".join(str(err).split())
        return f"{type(err).__name__}: {text[:300]}"


def relative_error(a: Tensor, b: Tensor) -> float:
    """max |a - b| / max(max |b|, tiny)."""
    return float((a - b).abs().max() / max(float(b.abs().max()), math.ulp(1.0)))
