"""LSTM and GRU learners, vectorized over a leading run axis R.

Parameters are stacked per run and the gates packed, in torch's gate order (LSTM i, f, g, o;
GRU r, z, n): input weights (R, n_in, G·H), recurrent weights (R, H, G·H), biases (R, 1, G·H)
(an input and a recurrent bias, as in torch: the GRU's candidate gate needs them apart), and a
linear head (R, H, n_out) on the hidden state of each example's last valid time step. Hidden unit
j owns the gate columns j, H + j, ..., (G - 1)·H + j; `hidden_units` describes that wiring so
continual backprop replaces whole units, never single gate rows.

Sequences are (R, B, T, n_in) floats, or (R, B, T) integer tokens whose input projection is a row
lookup (exactly a one-hot input times the input weights; vocabulary 256 bytes + a pad id), with
per-example lengths (R, B). Steps at or beyond an example's length keep the previous h and c, so
padding never touches the state and the final state is the last valid step's.

The forward is hand-written over batched matmuls; the backward is autograd over it (a recurrent
step is a handful of small ops, so hand-deriving BPTT buys little). A step stays free of host
syncs: no `.item()`, no branch on tensor values, fixed shapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Sequence

import torch

from ..sequences import Sequences
from ..tasks import generator
from .mitigations import perturb_, run_generators
from .mlp import Tensor, accumulate_, cross_entropy, init_linear, options_dict

CELLS = {"lstm": 4, "gru": 3}  # number of gates G
OPTIMIZERS = ("sgd", "adam")
PARAMS = ("w_ih", "w_hh", "b_ih", "b_hh", "w_out", "b_out")


def as_sequences(x) -> Sequences:
    """Accept a `Sequences`, an (inputs, lengths) pair, or bare inputs (every example full length)."""
    if isinstance(x, Tensor):
        R, B, T = x.shape[:3]
        return Sequences(x, torch.full((R, B), T, dtype=torch.int64, device=x.device))
    return Sequences(*x)


def init_recurrent(seeds: Sequence[int], cell: str, n_in: int, hidden: int, n_out: int, device) -> dict:
    """Parameters in torch's default init: everything ~ U(±1/sqrt(H)), the head as nn.Linear."""
    gh, bound = CELLS[cell] * hidden, hidden**-0.5
    draws = {name: [] for name in PARAMS[:4]}
    for seed in seeds:
        g = generator(seed, "init", cell)
        for name, shape in (("w_ih", (n_in, gh)), ("w_hh", (hidden, gh)), ("b_ih", (1, gh)), ("b_hh", (1, gh))):
            draws[name].append(torch.rand(shape, generator=g) * (2 * bound) - bound)
    params = {name: torch.stack(d).to(device) for name, d in draws.items()}
    params["w_out"], params["b_out"] = init_linear(seeds, "head", hidden, n_out, "pytorch", device)
    return params


def input_projection(w_ih: Tensor, inputs: Tensor) -> Tensor:
    """x_t @ W_ih for every step at once: (R, B, T, G·H). Tokens index rows (a one-hot matmul)."""
    if inputs.is_floating_point():
        R, B, T, n_in = inputs.shape
        return torch.bmm(inputs.reshape(R, B * T, n_in), w_ih).view(R, B, T, -1)
    rows = torch.arange(w_ih.shape[0], device=w_ih.device)  # one row per run
    return w_ih[rows[:, None, None], inputs]


def lstm_cell(gx: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b_hh: Tensor) -> tuple[Tensor, Tensor]:
    i, f, g, o = torch.baddbmm(b_hh, h, w_hh).add_(gx).chunk(4, -1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def gru_cell(gx: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor) -> Tensor:
    xr, xz, xn = gx.chunk(3, -1)
    hr, hz, hn = torch.baddbmm(b_hh, h, w_hh).chunk(3, -1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return n + z * (h - n)  # (1 - z) n + z h


def final_hidden(params: dict, cell: str, seqs: Sequences) -> Tensor:
    """Hidden state after each example's last valid step, (R, B, H); h0 = c0 = 0."""
    w_hh, b_hh = params["w_hh"], params["b_hh"]
    gx = input_projection(params["w_ih"], seqs.inputs) + params["b_ih"][:, :, None]
    R, B, T, _ = gx.shape
    h = gx.new_zeros(R, B, w_hh.shape[1])
    c = torch.zeros_like(h)
    valid = (torch.arange(T, device=gx.device) < seqs.lengths[..., None])[..., None]  # (R, B, T, 1)
    for t in range(T):
        if cell == "lstm":
            h_new, c_new = lstm_cell(gx[:, :, t], h, c, w_hh, b_hh)
            c = torch.where(valid[:, :, t], c_new, c)
        else:
            h_new = gru_cell(gx[:, :, t], h, w_hh, b_hh)
        h = torch.where(valid[:, :, t], h_new, h)  # padded steps keep the previous state
    return h


def forward(params: dict, cell: str, seqs: Sequences) -> tuple[Tensor, Tensor]:
    """(logits (R, B, n_out), final hidden state (R, B, H))."""
    h = final_hidden(params, cell, seqs)
    return torch.baddbmm(params["b_out"], h, params["w_out"]), h


def init_adam(params: dict) -> dict:
    """Per-entry Adam state: moments and step counts, so a replaced unit's entries can restart alone."""
    return {
        name: {"m": torch.zeros_like(p), "v": torch.zeros_like(p), "t": torch.zeros_like(p)}
        for name, p in params.items()
    }


def adam_(p: Tensor, g: Tensor, s: dict, lr: float, betas: tuple[float, float], eps: float) -> None:
    """torch.optim.Adam's update (bias-corrected, default flags), with per-entry step counts."""
    b1, b2 = betas
    s["t"] += 1
    s["m"].lerp_(g, 1 - b1)
    s["v"].mul_(b2).addcmul_(g, g, value=1 - b2)
    correction1 = 1 - torch.pow(b1, s["t"])
    correction2 = 1 - torch.pow(b2, s["t"])
    denom = (s["v"].sqrt() / correction2.sqrt()).add_(eps)
    p.addcdiv_(s["m"], denom * correction1, value=-lr)


@dataclass(frozen=True)
class RecurrentUnits:
    """Where hidden unit j of a recurrent learner lives, as views into the state.

    Incoming: columns j + g·H (g < G) of `w_ih`, `w_hh`, `b_ih`, `b_hh`.
    Outgoing: row j of `w_hh` (what feeds every unit's gates from h_j) and row j of `w_out`,
    whose biases `b_hh` and `b_out` absorb a removed unit's mean contribution.
    """

    n_gates: int
    hidden: int
    params: dict = field(repr=False)

    def columns(self, idx: Tensor) -> Tensor:
        """Gate columns of units idx (R, k): (R, G·k), gate-major."""
        offsets = torch.arange(self.n_gates, device=idx.device) * self.hidden
        return (offsets[None, :, None] + idx[:, None, :]).flatten(1)


@dataclass(frozen=True)
class Recurrent:
    """A single-layer LSTM or GRU on sequences, a linear head on the last valid hidden state,
    trained online by SGD or Adam on the cross-entropy (prediction before the update).

    Mitigations (off by default), as the MLP's (`mlp.Backprop`):
    weight_decay  coupled L2: λθ is added to every weight's and bias's gradient (as torch's
                  optimizers do; with Adam it then enters the moments).
    shrink, noise_std
                  Shrink & Perturb every step: the same decay as L2 (shrink = λ), then after the
                  update θ <- θ + N(0, noise_std²) on every parameter, from a per-run generator
                  derived from the seed. Use weight_decay or shrink, not both.
    """

    kind: ClassVar[str] = "recurrent"
    version: ClassVar[str] = "1"  # bump whenever the numerics of this learner change
    cell: str = "gru"
    hidden: int = 128
    lr: float = 1e-3
    optimizer: str = "adam"
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    shrink: float = 0.0
    noise_std: float = 0.0

    def __post_init__(self):
        if self.cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {self.cell!r}")
        if not isinstance(self.hidden, int) or isinstance(self.hidden, bool) or self.hidden < 1:
            raise ValueError(f"hidden must be an integer >= 1, got {self.hidden!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if not (len(self.betas) == 2 and all(0.0 <= b < 1.0 for b in self.betas)):
            raise ValueError(f"betas must be two numbers in [0, 1), got {self.betas!r}")
        for name in ("weight_decay", "shrink", "noise_std"):  # 0 and 0.0: one store key
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < math.inf:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
            object.__setattr__(self, name, float(value))
        if not self.eps > 0:
            raise ValueError(f"eps must be > 0, got {self.eps!r}")
        if self.weight_decay and self.shrink:
            raise ValueError("set weight_decay (L2) or shrink (Shrink & Perturb), not both: shrink is S&P's L2")
        if isinstance(self.betas, list):
            object.__setattr__(self, "betas", tuple(self.betas))

    def to_dict(self) -> dict:
        """Options as stored in a run spec; Shrink & Perturb left out while off."""
        return options_dict(self, ("shrink", "noise_std"))

    @property
    def n_gates(self) -> int:
        return CELLS[self.cell]

    def init_state(self, seeds: Sequence[int], n_in: int, n_out: int, device) -> dict:
        """State for R = len(seeds) runs; `n_in` is the feature size, or the vocabulary size for tokens."""
        params = init_recurrent(seeds, self.cell, n_in, self.hidden, n_out, device)
        state = {
            "params": params,
            "correct": torch.zeros(len(seeds), dtype=torch.int64, device=device),
            "loss_sum": torch.zeros(len(seeds), device=device),
        }  # the metrics of mlp.new_state
        if self.optimizer == "adam":
            state["adam"] = init_adam(params)
        if self.noise_std:
            state["noise_rng"] = run_generators(seeds, "perturb", device)
        return state

    def step(self, state: dict, x, y: Tensor) -> list[Tensor]:
        """One online step on batch (x, y (R, B)) for all R runs, in place. Returns [final hidden state]."""
        leaves = {name: p.detach().requires_grad_() for name, p in state["params"].items()}
        with torch.enable_grad():
            logits, h = forward(leaves, self.cell, as_sequences(x))
            d_logits, loss, correct = cross_entropy(logits.detach(), y)
            grads = torch.autograd.grad(logits, list(leaves.values()), d_logits)
        accumulate_(state, loss, correct)
        self._update_(state, grads)
        return [h.detach()]

    def _update_(self, state: dict, grads: Sequence[Tensor]) -> None:
        """The optimizer step on every parameter, given its gradient (in `state["params"]` order),
        with L2 / Shrink & Perturb when set."""
        params = state["params"]
        decay = self.weight_decay + self.shrink
        with torch.no_grad():
            for (name, p), g in zip(params.items(), grads):
                if decay:
                    g = g.add(p, alpha=decay)
                if self.optimizer == "sgd":
                    p.sub_(g, alpha=self.lr)
                else:
                    adam_(p, g, state["adam"][name], self.lr, self.betas, self.eps)
            if self.noise_std:
                perturb_(list(params.values()), state["noise_rng"], self.noise_std)

    def logits(self, state: dict, x) -> Tensor:
        with torch.no_grad():
            return forward(state["params"], self.cell, as_sequences(x))[0]

    def hidden_activations(self, state: dict, x) -> list[Tensor]:
        """[final hidden state (R, N, H)]: one recurrent layer, read at each example's last valid step."""
        with torch.no_grad():
            return [final_hidden(state["params"], self.cell, as_sequences(x))]

    def hidden_units(self, state: dict) -> RecurrentUnits:
        return RecurrentUnits(self.n_gates, self.hidden, state["params"])

    def parameters(self, state: dict) -> tuple[list[Tensor], list[Tensor]]:
        """(weight matrices [w_ih, w_hh, w_out], biases [b_ih, b_hh, b_out]), for the weight metrics."""
        p = state["params"]
        return [p["w_ih"], p["w_hh"], p["w_out"]], [p["b_ih"], p["b_hh"], p["b_out"]]


def draw_columns(rngs: Sequence[torch.Generator], rows: int, cols: int, hidden: int, like: Tensor) -> Tensor:
    """(R, rows, cols) fresh entries from the initial distribution U(±1/sqrt(H)), one generator per run."""
    bound = hidden**-0.5
    draws = [torch.rand(rows, cols, generator=g, device=like.device) * (2 * bound) - bound for g in rngs]
    return torch.stack(draws).to(like.dtype)


def replace_recurrent_units_(
    units: RecurrentUnits,
    idx: Tensor,
    rngs: Sequence[torch.Generator],
    mean_hidden: Tensor | None = None,
    adam: dict | None = None,
) -> None:
    """Reinitialize whole hidden units idx (R, k) of a recurrent learner, in place.

    Every gate column of each unit (input and recurrent weights, both biases, self-connections
    included) is redrawn from the initial distribution; the unit's outgoing weights (its row of
    the recurrent weights into the other units, its row of the head) are zeroed. With
    `mean_hidden` (R, k), the unit's running mean hidden value, the biases downstream first absorb
    its mean contribution (b_hh += h̄·W_hh[j], b_out += h̄·W_out[j]; exact for the GRU too, since
    b_hn sits inside r·(W_hn h + b_hn)). With `adam` (the learner's state["adam"]) the moments and
    step counts of every redrawn or zeroed entry restart. No host sync: k is a shape.
    """
    p, H = units.params, units.hidden
    cols = units.columns(idx)  # (R, G·k)
    if mean_hidden is not None:
        for w, b in ((p["w_hh"], p["b_hh"]), (p["w_out"], p["b_out"])):
            rows = w.gather(1, idx[..., None].expand(-1, -1, w.shape[2]))  # (R, k, out)
            b += (mean_hidden[..., None] * rows).sum(1, keepdim=True)
    changed = []  # (name, dim, index) of every entry rewritten, for the optimizer reset
    for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
        w = p[name]
        index = cols[:, None, :].expand(-1, w.shape[1], -1)
        w.scatter_(2, index, draw_columns(rngs, w.shape[1], cols.shape[1], H, w))
        changed.append((name, 2, index))
    # Then the outgoing weights, after the columns: where two replaced units meet, the weight from
    # one into the other is outgoing and stays 0, so the network's function is unchanged.
    rows = torch.zeros(idx.shape[0], H, 1, dtype=torch.bool, device=idx.device).scatter_(1, idx[..., None], True)
    gh = p["w_hh"].shape[2]
    self_loops = torch.arange(H, device=idx.device)[:, None] == torch.arange(gh, device=idx.device) % H
    p["w_hh"].masked_fill_(rows & ~self_loops, 0.0)
    p["w_out"].masked_fill_(rows, 0.0)
    changed += [
        ("w_hh", 1, idx[..., None].expand(-1, -1, gh)),
        ("w_out", 1, idx[..., None].expand(-1, -1, p["w_out"].shape[2])),
    ]
    if adam is not None:
        for name, dim, index in changed:
            for moment in adam[name].values():
                moment.scatter_(dim, index, 0.0)
