"""Batched ReLU MLP primitives and the plain backprop learner.

Every tensor has a leading run axis R: weights are (R, in, out), biases (R, 1, out),
activations (R, batch, width). One `bmm` advances all R runs, so R seeds cost about what one
costs on a GPU. Forward and backward are written out by hand (no autograd): it is faster here
(weight gradients are fused into the SGD update), the tests pin it against autograd, and a step
stays free of host syncs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch

from ..tasks import generator

Tensor = torch.Tensor
INIT_SCHEMES = ("pytorch", "kaiming")


def init_linear(seeds: Sequence[int], tag: str, fan_in: int, fan_out: int, scheme: str, device
                ) -> tuple[Tensor, Tensor]:
    """Stacked (W (R, fan_in, fan_out), b (R, 1, fan_out)), each run drawn from its own seed.

    "pytorch": nn.Linear's default, W and b ~ U(±1/sqrt(fan_in)).
    "kaiming": W ~ N(0, 2/fan_in) (He et al., as in Dohare et al.), b = 0.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"init scheme must be one of {INIT_SCHEMES}, got {scheme!r}")
    ws, bs = [], []
    for seed in seeds:
        g = generator(seed, "init", tag)
        if scheme == "pytorch":
            bound = fan_in ** -0.5
            ws.append(torch.rand(fan_in, fan_out, generator=g) * (2 * bound) - bound)
            bs.append(torch.rand(1, fan_out, generator=g) * (2 * bound) - bound)
        else:
            ws.append(torch.randn(fan_in, fan_out, generator=g) * (2.0 / fan_in) ** 0.5)
            bs.append(torch.zeros(1, fan_out))
    return torch.stack(ws).to(device), torch.stack(bs).to(device)


def init_mlp(seeds, sizes: Sequence[int], scheme: str, device) -> tuple[list[Tensor], list[Tensor]]:
    """Weights and biases of an MLP with layer widths `sizes` (input first, logits last)."""
    layers = [init_linear(seeds, f"layer{i}", a, b, scheme, device)
              for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]
    return [w for w, _ in layers], [b for _, b in layers]


def forward(weights: Sequence[Tensor], biases: Sequence[Tensor], x: Tensor,
            first_bias: Tensor | None = None) -> tuple[Tensor, list[Tensor]]:
    """Logits and the activations [x, relu(z1), ..., relu(zL)] (the inputs of each layer).

    `first_bias` (R, 1, width) is added to the first pre-activation: the persistent-state learner
    passes h @ W_h there, since concat(x, h) @ W1 = x @ W_x + h @ W_h with h shared by the batch.
    """
    acts = [x]
    for i, (w, b) in enumerate(zip(weights[:-1], biases[:-1])):
        z = torch.baddbmm(b, acts[-1], w)
        if i == 0 and first_bias is not None:
            z = z + first_bias
        acts.append(torch.relu_(z))
    return torch.baddbmm(biases[-1], acts[-1], weights[-1]), acts


def cross_entropy(logits: Tensor, y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Mean cross-entropy per run. Returns (d loss / d logits, loss (R,), #correct (R,)).

    Predictions are read off these logits, i.e. before the update on this batch (online accuracy).
    """
    log_p = torch.log_softmax(logits, dim=-1)
    loss = -log_p.gather(-1, y.unsqueeze(-1)).squeeze(-1).mean(-1)
    correct = (logits.argmax(-1) == y).sum(-1)
    grad = log_p.exp_()
    grad.scatter_add_(-1, y.unsqueeze(-1), torch.full_like(grad[..., :1], -1.0))
    return grad.div_(logits.shape[1]), loss, correct


def hidden_deltas(weights: Sequence[Tensor], acts: Sequence[Tensor], d_last: Tensor) -> list[Tensor]:
    """Backpropagate d loss / d (last hidden activation) through the hidden layers.

    `weights` are the hidden layers' weights, as they are now (call this before updating them).
    Returns each hidden layer's delta d loss / d z_i, (R, batch, width); the layer's weight
    gradient is acts[i]^T delta_i and its bias gradient the batch sum of delta_i.
    """
    deltas = [None] * len(weights)
    d_act = d_last
    for i in reversed(range(len(weights))):
        deltas[i] = torch.ops.aten.threshold_backward(d_act, acts[i + 1], 0)  # ReLU: pass where output > 0
        if i:
            d_act = torch.bmm(deltas[i], weights[i].transpose(1, 2))
    return deltas


def deltas(weights: Sequence[Tensor], acts: Sequence[Tensor], d_logits: Tensor) -> list[Tensor]:
    """Deltas of every layer, head included (its delta is d_logits), from d loss / d logits."""
    d_last = torch.bmm(d_logits, weights[-1].transpose(1, 2))
    return hidden_deltas(weights[:-1], acts, d_last) + [d_logits]


def sgd_outer_(weight: Tensor, bias: Tensor | None, inputs: Sequence[Tensor], deltas_: Sequence[Tensor],
               lr: float) -> None:
    """SGD on one layer, in place: W -= lr * Σ_k input_k^T delta_k, b -= lr * Σ_k Σ_batch delta_k.

    The weight gradient is never materialised: one fused baddbmm reads and writes W once, which
    is what bounds a step on a CPU (a (784, 100) gradient from a batch of 8 is memory, not FLOPs).
    Several (input, delta) pairs, e.g. from the steps a truncated state gradient reaches, are
    concatenated along the batch axis into the same single update.
    """
    a = inputs[0] if len(inputs) == 1 else torch.cat(list(inputs), 1)
    d = deltas_[0] if len(deltas_) == 1 else torch.cat(list(deltas_), 1)
    weight.baddbmm_(a.transpose(1, 2), d, alpha=-lr)
    if bias is not None:
        bias.sub_(d.sum(1, keepdim=True), alpha=lr)


def new_state(weights, biases, n_runs: int, device) -> dict:
    """The state every MLP learner shares: parameters plus on-device metric accumulators."""
    return {"weights": weights, "biases": biases,
            "correct": torch.zeros(n_runs, dtype=torch.int64, device=device),
            "loss_sum": torch.zeros(n_runs, device=device)}


def accumulate_(state: dict, loss: Tensor, correct: Tensor) -> None:
    state["correct"] += correct
    state["loss_sum"] += loss


@dataclass(frozen=True)
class Backprop:
    """The no-mitigation baseline: a ReLU MLP trained by plain SGD on the cross-entropy.

    Defaults are Iqbal's: hidden (100, 100, 100), lr 0.05 (batch size belongs to the stream).
    """

    kind: ClassVar[str] = "backprop"
    version: ClassVar[str] = "1"  # bump whenever the numerics of this learner change
    lr: float = 0.05
    hidden: tuple[int, ...] = (100, 100, 100)
    init: str = "pytorch"

    def init_state(self, seeds: Sequence[int], n_in: int, n_out: int, device) -> dict:
        weights, biases = init_mlp(seeds, (n_in, *self.hidden, n_out), self.init, device)
        return new_state(weights, biases, len(seeds), device)

    def step(self, state: dict, x: Tensor, y: Tensor) -> list[Tensor]:
        """One online SGD step on batch (x (R, B, n_in), y (R, B)) for all R runs, in place.
        Returns the step's hidden activations (before the update)."""
        w, b = state["weights"], state["biases"]
        logits, acts = forward(w, b, x)
        d_logits, loss, correct = cross_entropy(logits, y)
        accumulate_(state, loss, correct)
        for weight, bias, a, d in zip(w, b, acts, deltas(w, acts, d_logits)):
            sgd_outer_(weight, bias, [a], [d], self.lr)
        return acts[1:]

    def hidden_units(self, state: dict) -> list[tuple]:
        """Per hidden layer, the wiring of its units: (W_in, b_in, [(W_out, b_out)]), views into the state."""
        w, b = state["weights"], state["biases"]
        return [(w[i], b[i], [(w[i + 1], b[i + 1])]) for i in range(len(w) - 1)]

    def hidden_activations(self, state: dict, x: Tensor) -> list[Tensor]:
        """Post-ReLU activations of every hidden layer on x, (R, N, width) each."""
        return forward(state["weights"], state["biases"], x)[1][1:]

    def logits(self, state: dict, x: Tensor) -> Tensor:
        return forward(state["weights"], state["biases"], x)[0]

    def parameters(self, state: dict) -> tuple[list[Tensor], list[Tensor]]:
        """(weight matrices, biases), for the weight-norm metrics."""
        return list(state["weights"]), list(state["biases"])
