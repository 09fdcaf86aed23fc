"""Iqbal's persistent internal state on an LSTM or GRU, vectorized over R runs (beyond both papers:
does the state that keeps an MLP plastic help a recurrent network?).

The state s (d_int, shared by the batch, s_0 = 0) is an extra input of the cell at every time step:
concat(x_t, s) @ W = x_t @ W_ih + s @ W_sh, so s @ W_sh adds to the input bias b_ih. After the
batch's sequences are read, a state head on the batch mean of their final hidden states gives the
next state, s_{t+1} = mean_b(h_b) @ W_s + b_s, as the MLP's head on its last layer's batch mean.
Truncation as in `persistent`: s_t enters the loss of steps t ≡ 0 (mod n) as a constant, so the loss
at step t reaches back k = t mod n steps; with n = 1 the state head never learns.

Gradient through earlier steps: the exact gradient of the truncated graph, with the weights as they
were when each earlier step ran (the MLP learner's `through_state="forward_weights"`; its default,
the paper's backward through updated weights, is an artefact of in-place updates that autograd
does not reproduce). No autograd graph is kept between steps: the chain holds each earlier step's
inputs and weights, and a step rebuilds their forward passes (one more unroll per chained step).
A state is therefore plain tensors, checkpointed and resumed bit-identically like every learner's.

State modes as the MLP's: "learned"; "zero" (s ≡ 0: the plain recurrent net, W_sh unused);
"random" (a random direction with the norm the learned update would have had; no gradient).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch

from ..sequences import Sequences
from ..tasks import generator
from .mitigations import run_generators
from .mlp import Tensor, accumulate_, cross_entropy, init_linear
from .persistent import check_state_options, random_state_like
from .recurrent import Recurrent, as_sequences, final_hidden, forward, init_adam

HEAD = ("w_out", "b_out")  # the task head: not on the path from an earlier step's state to s_t


@dataclass(frozen=True)
class PersistentRecurrent(Recurrent):
    """A recurrent learner (see `Recurrent`) with a persistent internal state. Defaults: d_int 64, n 2."""

    kind: ClassVar[str] = "persistent_recurrent"
    version: ClassVar[str] = "1"  # bump whenever the numerics of this learner change
    d_int: int = 64
    n: int = 2
    state: str = "learned"

    def __post_init__(self):
        super().__post_init__()
        check_state_options(self.d_int, self.n, self.state)

    def to_dict(self) -> dict:
        return Recurrent.to_dict(self)

    def init_state(self, seeds: Sequence[int], n_in: int, n_out: int, device) -> dict:
        """The recurrent learner's state (the same initial cell and head as `Recurrent` for the same
        seeds) plus W_sh, the state head (W_s, b_s), s = 0 and the chain of earlier steps."""
        state = Recurrent.init_state(self, seeds, n_in, n_out, device)
        params, bound = state["params"], self.hidden**-0.5
        gh = self.n_gates * self.hidden  # W_sh: more input rows of the cell, drawn as torch draws W_ih
        params["w_sh"] = torch.stack(
            [
                torch.rand(self.d_int, gh, generator=generator(seed, "init", "state_input")) * (2 * bound) - bound
                for seed in seeds
            ]
        ).to(device)
        params["w_s"], params["b_s"] = init_linear(seeds, "state_head", self.hidden, self.d_int, "pytorch", device)
        if self.optimizer == "adam":
            state["adam"] = init_adam(params)
        R = len(seeds)
        state.update(
            s=torch.zeros(R, 1, self.d_int, device=device),
            t=0,
            chain_start=torch.zeros(R, 1, self.d_int, device=device),
            chain=[],
        )
        if self.state == "random":
            state["noise"] = run_generators(seeds, "random_state", device)
        return state

    def _with_state(self, params: dict, s: Tensor) -> dict:
        """Parameters whose input bias carries the state's contribution s @ W_sh."""
        if self.state == "zero":
            return params
        return {**params, "b_ih": params["b_ih"] + torch.bmm(s, params["w_sh"])}

    @staticmethod
    def _state_head(params: dict, h: Tensor) -> Tensor:
        return torch.baddbmm(params["b_s"], h.mean(1, keepdim=True), params["w_s"])

    def _state_in(self, state: dict) -> tuple[Tensor, list[dict]]:
        """s_t, with its graph back through the chained earlier steps, and those steps' weight leaves."""
        if not state["chain"]:
            return state["s"], []
        s, earlier = state["chain_start"], []
        for inputs, lengths, weights in state["chain"]:
            leaves = {name: w.detach().requires_grad_() for name, w in weights.items()}
            h = final_hidden(self._with_state(leaves, s), self.cell, Sequences(inputs, lengths))
            s = self._state_head(leaves, h)
            earlier.append(leaves)
        return s, earlier

    def step(self, state: dict, x, y: Tensor) -> list[Tensor]:
        """One online step for all R runs: predict with s_t, update every parameter by the gradient
        of this step's loss through s_t into the chained steps, then s_{t+1} from the state head."""
        seqs, params = as_sequences(x), state["params"]
        if state["t"] % self.n == 0:
            state["chain"] = []  # truncation: s_t enters this step's loss as a constant
        leaves = {name: p.detach().requires_grad_() for name, p in params.items()}
        with torch.enable_grad():
            s, earlier = self._state_in(state) if self.state == "learned" else (state["s"], [])
            logits, h = forward(self._with_state(leaves, s), self.cell, seqs)
            d_logits, loss, correct = cross_entropy(logits.detach(), y)
            targets = [*leaves.values(), *(w for step in earlier for w in step.values())]
            grads = torch.autograd.grad(logits, targets, d_logits, allow_unused=True)
        accumulate_(state, loss, correct)
        # a parameter's gradient: its use at this step plus its uses at the chained earlier steps
        total = dict(zip(leaves, grads))
        offset = len(leaves)
        for step_leaves in earlier:
            for name, g in zip(step_leaves, grads[offset : offset + len(step_leaves)]):
                if g is not None:
                    total[name] = g if total[name] is None else total[name] + g
            offset += len(step_leaves)
        with torch.no_grad():
            h = h.detach()
            s_next = self._state_head(params, h) if self.state != "zero" else None
            if self.state == "learned" and (state["t"] + 1) % self.n != 0:  # the next step reaches this one
                if not state["chain"]:
                    state["chain_start"] = s.detach()
                state["chain"].append(
                    (seqs.inputs, seqs.lengths, {name: p.clone() for name, p in params.items() if name not in HEAD})
                )
        self._update_(
            state, [g if g is not None else torch.zeros_like(p) for g, p in zip(total.values(), params.values())]
        )
        if self.state == "learned":
            state["s"] = s_next
        elif self.state == "random":
            state["s"] = random_state_like(s_next, state["noise"])
        state["t"] += 1
        return [h]

    def logits(self, state: dict, x) -> Tensor:
        with torch.no_grad():
            return forward(self._with_state(state["params"], state["s"]), self.cell, as_sequences(x))[0]

    def hidden_activations(self, state: dict, x) -> list[Tensor]:
        """[final hidden state (R, N, H)] with the current state s."""
        with torch.no_grad():
            return [final_hidden(self._with_state(state["params"], state["s"]), self.cell, as_sequences(x))]

    def parameters(self, state: dict) -> tuple[list[Tensor], list[Tensor]]:
        """The recurrent learner's parameters plus W_sh and the state head."""
        weights, biases = Recurrent.parameters(self, state)
        p = state["params"]
        return weights + [p["w_sh"], p["w_s"]], biases + [p["b_s"]]
