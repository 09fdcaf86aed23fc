"""Iqbal's persistent internal state, vectorized over R runs.

Architecture: input concat(x, h_t) with h_t (d_int) shared by the batch; three ReLU layers of 100;
a task head on the last hidden layer; a state head on that layer's batch mean giving h_{t+1};
h_0 = 0. Weights follow SGD; h follows the learned rule h_{t+1} = g_θ(x_t, h_t).

Truncation: the graph through h is cut every n steps (h_t is a constant for the loss at steps
t ≡ 0 mod n), so the loss at step t also backpropagates through the k = t mod n steps before it.
With n = 1 the state head never receives a gradient and stays at its initial value.

Gradient through earlier steps (`through_state`):
  "current_weights" (default, the paper's): the weights were updated in place since step t−k ran,
      and the backward pass uses those current weights with the old activations (what PyTorch
      does once its in-place-modification check is bypassed).
  "forward_weights": the exact gradient of the truncated graph, with the weights as they were
      when each earlier step ran.
State ablations (`state`): "learned"; "zero" (h ≡ 0, the state head is never used); "random"
(each step h is a random direction scaled to the norm the learned update would have had; no
gradient flows through it).

The state head (`state_head`): "linear" (default, the paper's: "a linear 100 × d_int layer"), so h is
unbounded and the loop h -> network -> h can run away at large step sizes (the run diverges); "tanh"
(not in the paper) bounds h to (-1, 1), a reading that separates that numerical failure from a loss of
plasticity. Left out of the store key at its default.

Layout: the first layer, drawn as one (R, n_in + d_int, width) matrix as nn.Linear draws it, is kept as
two contiguous matrices, `weights[0]` (W_x) and `w_h` (W_h), so that their in-place batched updates
run as one product for all R runs (on slices of one matrix torch falls back to one product per run).
At R = 1 this is bit-identical to the sliced layout; at R > 1 the batched product rounds differently,
in the last bit, as a different thread count does: the version is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch

from .mitigations import run_generators
from .mlp import (
    Tensor,
    accumulate_,
    cross_entropy,
    deltas,
    forward,
    hidden_deltas,
    init_linear,
    init_mlp,
    new_state,
    options_dict,
    sgd_outer_,
)

STATE_MODES = ("learned", "zero", "random")
STATE_HEADS = ("linear", "tanh")
THROUGH_STATE = ("current_weights", "forward_weights")


def check_state_options(d_int, n, state) -> None:
    """The persistent state's options, shared by the MLP and the recurrent learner."""
    if not isinstance(d_int, int) or isinstance(d_int, bool) or d_int <= 0:
        raise ValueError(f"d_int must be a positive integer, got {d_int!r}")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n (truncation period) must be an integer >= 1, got {n!r}")
    if state not in STATE_MODES:
        raise ValueError(f"state must be one of {STATE_MODES}, got {state!r}")


def random_state_like(h_next: Tensor, generators) -> Tensor:
    """The `random` ablation's state: a random direction per run (R, 1, d_int), scaled to the norm
    the learned update h_next would have had."""
    direction = torch.stack([torch.randn(1, h_next.shape[-1], generator=g, device=h_next.device) for g in generators])
    return direction * (h_next.norm(dim=-1, keepdim=True) / direction.norm(dim=-1, keepdim=True))


@dataclass(frozen=True)
class PersistentState:
    """MLP with a persistent internal state h (Iqbal). Defaults: d_int 128, n 2, lr 0.05."""

    kind: ClassVar[str] = "persistent"
    version: ClassVar[str] = "1"  # bump whenever the numerics of this learner change
    lr: float = 0.05
    hidden: tuple[int, ...] = (100, 100, 100)
    d_int: int = 128
    n: int = 2
    state: str = "learned"
    through_state: str = "current_weights"
    init: str = "pytorch"
    state_head: str = "linear"

    def __post_init__(self):
        check_state_options(self.d_int, self.n, self.state)
        if self.through_state not in THROUGH_STATE:
            raise ValueError(f"through_state must be one of {THROUGH_STATE}, got {self.through_state!r}")
        if self.state_head not in STATE_HEADS:
            raise ValueError(f"state_head must be one of {STATE_HEADS}, got {self.state_head!r}")

    def to_dict(self) -> dict:
        """Options as stored in a run spec (see `Backprop.to_dict`); `state_head` only where not linear."""
        return options_dict(self, ("state_head",))

    def init_state(self, seeds: Sequence[int], n_in: int, n_out: int, device) -> dict:
        weights, biases = init_mlp(seeds, (n_in + self.d_int, *self.hidden, n_out), self.init, device)
        first = weights[0]  # (R, n_in + d_int, width): drawn as one matrix, as nn.Linear(n_in + d_int, width)
        # ... and kept as two contiguous matrices: an in-place batched product on a slice of it (whose
        # batch stride is not its own) falls back to one product per run. The same values; see Layout above.
        weights[0] = first[:, :n_in].contiguous()
        state = new_state(weights, biases, len(seeds), device)
        w_s, b_s = init_linear(seeds, "state_head", self.hidden[-1], self.d_int, self.init, device)
        state.update(
            w_h=first[:, n_in:].contiguous(),
            w_s=w_s,
            b_s=b_s,
            h=torch.zeros(len(seeds), 1, self.d_int, device=device),
            t=0,
            chain=[],
        )  # chain: saved steps the graph through h still reaches
        if self.state == "random":
            state["noise"] = run_generators(seeds, "random_state", device)
        return state

    def _first_bias(self, state: dict) -> Tensor | None:
        return None if self.state == "zero" else torch.bmm(state["h"], state["w_h"])

    def step(self, state: dict, x: Tensor, y: Tensor) -> list[Tensor]:
        """One online step for all R runs: predict, update h by the state head, SGD on θ.
        Returns the step's hidden activations (before the update)."""
        w, b, h = state["weights"], state["biases"], state["h"]
        if state["t"] % self.n == 0:
            state["chain"].clear()  # truncation: h_t enters this step's loss as a constant
        logits, acts = forward(w, b, x, self._first_bias(state))
        d_logits, loss, correct = cross_entropy(logits, y)
        accumulate_(state, loss, correct)
        layer_deltas = deltas(w, acts, d_logits)
        # Per parameter, the (input, delta) pairs of its SGD update; the W_h part of the first
        # layer sees input h (shared by the batch) with the batch-summed first-layer delta.
        layers = [([a], [d]) for a, d in zip(acts, layer_deltas)]
        w_h_pairs = ([h], [layer_deltas[0].sum(1, keepdim=True)])
        state_head_pairs = ([], [])
        if self.state != "zero":
            mean_last = acts[-1].mean(1, keepdim=True)
            h_next = torch.baddbmm(state["b_s"], mean_last, state["w_s"])
            if self.state_head == "tanh":
                h_next = h_next.tanh_()
        if self.state == "learned" and state["chain"]:
            self._through_state(state, layers, w_h_pairs, state_head_pairs)
        keep = self.state == "learned" and (state["t"] + 1) % self.n != 0  # next step reaches this one
        snapshot = self._weights(state, clone=True) if keep and self.through_state == "forward_weights" else None
        for weight, bias, (inputs, ds) in zip(w, b, layers):
            sgd_outer_(weight, bias, inputs, ds, self.lr)
        if self.state != "zero":
            sgd_outer_(state["w_h"], None, *w_h_pairs, self.lr)
        if state_head_pairs[0]:  # with n = 1 never: the state head keeps its initial values
            sgd_outer_(state["w_s"], state["b_s"], *state_head_pairs, self.lr)
        if keep:
            state["chain"].append((acts, h, mean_last, snapshot))
        if self.state == "learned":
            state["h"] = h_next
        elif self.state == "random":
            state["h"] = random_state_like(h_next, state["noise"])
        state["t"] += 1
        return acts[1:]

    def block_period(self) -> int | None:
        """n: the truncation repeats every n steps, so a block of a multiple of n steps that starts
        where the graph through h is cut always runs the same kernels. None for the random-state
        ablation, which draws from per-run generators."""
        return None if self.state == "random" else self.n

    def hidden_units(self, state: dict) -> list[tuple]:
        """Per hidden layer, the wiring of its units: (W_in, b_in, [(W_out, b_out), ...]). The first
        layer's incoming weights are its x and h parts, (W_x, W_h): a tuple of matrices that stacked
        along the fan-in axis are the whole first layer; the last layer feeds both the task head and
        the state head."""
        w, b = state["weights"], state["biases"]
        first_in = (w[0], state["w_h"])
        units = [(first_in if i == 0 else w[i], b[i], [(w[i + 1], b[i + 1])]) for i in range(len(w) - 1)]
        units[-1][2].append((state["w_s"], state["b_s"]))
        return units

    def _weights(self, state: dict, clone: bool = False) -> tuple[list[Tensor], Tensor, Tensor]:
        """(hidden weights, w_h, w_s): what backprop through an earlier step multiplies by."""
        ws = [*state["weights"][:-1], state["w_h"], state["w_s"]]
        if clone:
            ws = [t.clone() for t in ws]
        return ws[:-2], ws[-2], ws[-1]

    def _through_state(self, state, layers, w_h_pairs, state_head_pairs) -> None:
        """Append the (input, delta) pairs that this step's loss sends back through h_t into the
        earlier steps of the chain (most recent first), with the weights `through_state` names."""
        chain = state["chain"]
        d_h = torch.bmm(w_h_pairs[1][0], state["w_h"].transpose(1, 2))  # d loss / d h_t
        out = state["h"]  # the state head's output at the chain step being visited
        for k, (acts, h_in, mean_last, snapshot) in enumerate(reversed(chain)):
            hidden_w, w_h, w_s = snapshot or self._weights(state)
            if self.state_head == "tanh":
                d_h = d_h * (1 - out * out)  # through tanh: d loss / d (the head's pre-activation)
            out = h_in
            state_head_pairs[0].append(mean_last)
            state_head_pairs[1].append(d_h)
            batch = acts[0].shape[1]
            d_last = torch.bmm(d_h, w_s.transpose(1, 2)).div_(batch).expand(-1, batch, -1)
            for (inputs, ds), a, d in zip(layers, acts, hidden_deltas(hidden_w, acts, d_last)):
                inputs.append(a)
                ds.append(d)
            d_first = layers[0][1][-1].sum(1, keepdim=True)
            w_h_pairs[0].append(h_in)
            w_h_pairs[1].append(d_first)
            if k + 1 < len(chain):
                d_h = torch.bmm(d_first, w_h.transpose(1, 2))

    def hidden_activations(self, state: dict, x: Tensor) -> list[Tensor]:
        """Post-ReLU activations of every hidden layer on x with the current h, (R, N, width) each."""
        return forward(state["weights"], state["biases"], x, self._first_bias(state))[1][1:]

    def logits(self, state: dict, x: Tensor) -> Tensor:
        return forward(state["weights"], state["biases"], x, self._first_bias(state))[0]

    def parameters(self, state: dict) -> tuple[list[Tensor], list[Tensor]]:
        """(weight matrices, biases) of the whole network: first layer (x and h parts), hidden
        layers, task head and state head."""
        first = torch.cat([state["weights"][0], state["w_h"]], dim=1)  # (R, n_in + d_int, width), a copy
        return ([first, *state["weights"][1:], state["w_s"]], [*state["biases"], state["b_s"]])
