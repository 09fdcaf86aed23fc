"""Batched ReLU MLP primitives and the plain backprop learner.

Every tensor has a leading run axis R: weights are (R, in, out), biases (R, 1, out),
activations (R, batch, width). One `bmm` advances all R runs, so R seeds cost about what one
costs on a GPU. Forward and backward are written out by hand (no autograd): it is faster here
(weight gradients are fused into the SGD update) and a step stays free of host syncs. The plain
autograd version it must agree with, step for step, is `ReferenceMLP` / `reference_losses` in
tests/test_learners.py (an `nn.Module` whose loss autograd differentiates, updated by plain SGD);
tests/test_mitigations.py holds every mitigation against torch's own (optim.Adam, dropout, ...).

The classic mitigations of loss of plasticity (Dohare's thesis, ch. 4) are options of `Backprop`,
each a small function in mitigations.py: L2 (`weight_decay`), Shrink & Perturb (`shrink`,
`noise_std`), inverted dropout (`dropout`), Adam (`optimizer="adam"`, `betas`, `eps`) and online
normalization (`online_norm`, see online_norm.py). At their defaults the learner is the plain
baseline, computed by exactly the same kernels as before they existed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import ClassVar, Sequence

import torch

from ..tasks import generator
from .mitigations import (
    adam_,
    dropout_masks,
    init_adam,
    interleave,
    layer_grads,
    normalized_deltas,
    normalized_forward,
    perturb_,
    run_generators,
    shrink_,
)
from .online_norm import init_norm

Tensor = torch.Tensor
INIT_SCHEMES = ("pytorch", "kaiming")
OPTIMIZERS = ("sgd", "adam")


def init_linear(
    seeds: Sequence[int], tag: str, fan_in: int, fan_out: int, scheme: str, device
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
            bound = fan_in**-0.5
            ws.append(torch.rand(fan_in, fan_out, generator=g) * (2 * bound) - bound)
            bs.append(torch.rand(1, fan_out, generator=g) * (2 * bound) - bound)
        else:
            ws.append(torch.randn(fan_in, fan_out, generator=g) * (2.0 / fan_in) ** 0.5)
            bs.append(torch.zeros(1, fan_out))
    return torch.stack(ws).to(device), torch.stack(bs).to(device)


def init_mlp(seeds, sizes: Sequence[int], scheme: str, device) -> tuple[list[Tensor], list[Tensor]]:
    """Weights and biases of an MLP with layer widths `sizes` (input first, logits last)."""
    layers = [
        init_linear(seeds, f"layer{i}", a, b, scheme, device) for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))
    ]
    return [w for w, _ in layers], [b for _, b in layers]


def forward(
    weights: Sequence[Tensor],
    biases: Sequence[Tensor],
    x: Tensor,
    first_bias: Tensor | None = None,
    masks: Sequence[Tensor] | None = None,
) -> tuple[Tensor, list[Tensor]]:
    """Logits and the activations [x, relu(z1), ..., relu(zL)] (the inputs of each layer).

    `first_bias` (R, 1, width) is added to the first pre-activation: the persistent-state learner
    passes h @ W_h there, since concat(x, h) @ W1 = x @ W_x + h @ W_h with h shared by the batch.
    `masks` (one (R, batch, width) per hidden layer, see `dropout_masks`) multiply the activations.
    """
    acts = [x]
    for i, (w, b) in enumerate(zip(weights[:-1], biases[:-1])):
        z = torch.baddbmm(b, acts[-1], w)
        if i == 0 and first_bias is not None:
            z = z + first_bias
        a = torch.relu_(z)
        acts.append(a if masks is None else a.mul_(masks[i]))
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


def hidden_deltas(
    weights: Sequence[Tensor], acts: Sequence[Tensor], d_last: Tensor, keep_scale: float = 1.0
) -> list[Tensor]:
    """Backpropagate d loss / d (last hidden activation) through the hidden layers.

    `weights` are the hidden layers' weights, as they are now (call this before updating them).
    Returns each hidden layer's delta d loss / d z_i, (R, batch, width); the layer's weight
    gradient is acts[i]^T delta_i and its bias gradient the batch sum of delta_i.
    With inverted dropout, `acts` are the dropped-out activations and `keep_scale` = 1/(1-p): a
    unit passes the gradient, times keep_scale, where its dropped-out output is > 0.
    """
    deltas = [None] * len(weights)
    d_act = d_last
    for i in reversed(range(len(weights))):
        deltas[i] = torch.ops.aten.threshold_backward(d_act, acts[i + 1], 0)  # ReLU: pass where output > 0
        if keep_scale != 1.0:
            deltas[i].mul_(keep_scale)
        if i:
            d_act = torch.bmm(deltas[i], weights[i].transpose(1, 2))
    return deltas


def deltas(
    weights: Sequence[Tensor], acts: Sequence[Tensor], d_logits: Tensor, keep_scale: float = 1.0
) -> list[Tensor]:
    """Deltas of every layer, head included (its delta is d_logits), from d loss / d logits."""
    d_last = torch.bmm(d_logits, weights[-1].transpose(1, 2))
    return hidden_deltas(weights[:-1], acts, d_last, keep_scale) + [d_logits]


def sgd_outer_(
    weight: Tensor, bias: Tensor | None, inputs: Sequence[Tensor], deltas_: Sequence[Tensor], lr: float
) -> None:
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


def options_dict(learner, omit_at_default: Sequence[str] = ()) -> dict:
    """A learner spec's options as stored in a run spec (its store key hashes them). Options named in
    `omit_at_default` are left out while at their defaults: options added after results were stored
    leave those results' keys unchanged."""
    d = asdict(learner)
    for f in fields(learner):
        if f.name in omit_at_default and d[f.name] == f.default:
            del d[f.name]
    return d


def new_state(weights, biases, n_runs: int, device) -> dict:
    """The state every MLP learner shares: parameters plus on-device metric accumulators."""
    return {
        "weights": weights,
        "biases": biases,
        "correct": torch.zeros(n_runs, dtype=torch.int64, device=device),
        "loss_sum": torch.zeros(n_runs, device=device),
    }


def accumulate_(state: dict, loss: Tensor, correct: Tensor) -> None:
    state["correct"] += correct
    state["loss_sum"] += loss


MITIGATIONS = (
    "weight_decay",
    "shrink",
    "noise_std",
    "dropout",
    "optimizer",
    "betas",
    "eps",
    "online_norm",
    "norm_alpha_fwd",
    "norm_alpha_bkw",
)


@dataclass(frozen=True)
class Backprop:
    """A ReLU MLP trained online on the cross-entropy; by default plain SGD, the no-mitigation baseline.

    Defaults are Iqbal's: hidden (100, 100, 100), lr 0.05 (batch size belongs to the stream).
    Mitigations (all off by default; see book/methods.md, "Mitigations"):

    weight_decay  L2 with λ as torch's `weight_decay`: the gradient of every weight *and bias* gets
                  + λθ (Dohare's code passes it to the optimizer; the thesis writes the penalty as
                  λ‖θ‖², whose gradient is 2λθ: its λ is half ours). With SGD this is folded into
                  the step as θ <- (1 - lr·λ)θ - lr·g.
    shrink, noise_std
                  Shrink & Perturb: the same decay as L2 (shrink = λ), then after every update
                  θ <- θ + ε, ε ~ N(0, noise_std²), on every weight and bias, drawn from a
                  per-run generator derived from the seed. Use weight_decay or shrink, not both.
    dropout       p: inverted dropout on every hidden layer's activations during training. The online
                  prediction is that of the dropped-out forward pass the update uses (one pass per
                  step); test accuracy and the correlates use the network without dropout.
    optimizer     "sgd" or "adam" (bias-corrected, per-run moments, as torch.optim.Adam; L2 then
                  enters the gradient before the moments, as torch's Adam `weight_decay`), with
                  `betas` (β1, β2) and `eps`.
    online_norm   Online normalization (Chiley et al.) of every hidden pre-activation, with decays
                  `norm_alpha_fwd` (statistics) and `norm_alpha_bkw` (gradient control); see
                  online_norm.py for exactly what is implemented. Its γ, β are parameters like the
                  others (optimizer, L2, noise), but are not in `parameters()` (the weight metrics).
    """

    kind: ClassVar[str] = "backprop"
    version: ClassVar[str] = "1"  # bump whenever the numerics of this learner change
    lr: float = 0.05
    hidden: tuple[int, ...] = (100, 100, 100)
    init: str = "pytorch"
    weight_decay: float = 0.0
    shrink: float = 0.0
    noise_std: float = 0.0
    dropout: float = 0.0
    optimizer: str = "sgd"
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    online_norm: bool = False
    norm_alpha_fwd: float = 0.999
    norm_alpha_bkw: float = 0.99

    def __post_init__(self):
        for name in ("weight_decay", "shrink", "noise_std", "dropout", "eps"):  # 0 and 0.0: one store key
            if isinstance(getattr(self, name), int) and not isinstance(getattr(self, name), bool):
                object.__setattr__(self, name, float(getattr(self, name)))
        if isinstance(self.betas, list):
            object.__setattr__(self, "betas", tuple(self.betas))
        for name in ("weight_decay", "shrink", "noise_std"):
            value = getattr(self, name)
            if not isinstance(value, float) or not 0.0 <= value < math.inf:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.weight_decay and self.shrink:
            raise ValueError("set weight_decay (L2) or shrink (Shrink & Perturb), not both: shrink is S&P's L2")
        if self.optimizer == "sgd" and self.lr * (self.weight_decay + self.shrink) >= 1.0:
            raise ValueError(
                f"lr * (weight_decay + shrink) must be < 1 with SGD (θ is scaled by 1 - lr·λ), "
                f"got {self.lr * (self.weight_decay + self.shrink)!r}"
            )
        if not isinstance(self.dropout, float) or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be a probability in [0, 1), got {self.dropout!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if (
            not isinstance(self.betas, tuple)
            or len(self.betas) != 2
            or not all(isinstance(b, (int, float)) and 0.0 <= b < 1.0 for b in self.betas)
        ):
            raise ValueError(f"betas must be two numbers (β1, β2), each in [0, 1), got {self.betas!r}")
        if not isinstance(self.eps, float) or not 0.0 < self.eps < math.inf:
            raise ValueError(f"eps must be a finite number > 0, got {self.eps!r}")
        if not isinstance(self.online_norm, bool):
            raise ValueError(f"online_norm must be True or False, got {self.online_norm!r}")
        for name in ("norm_alpha_fwd", "norm_alpha_bkw"):
            if not isinstance(getattr(self, name), float) or not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"{name} must be a decay in (0, 1), got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        """Options as stored in a run spec; mitigations at their defaults are left out, so results of
        the baseline stored before they existed keep their keys."""
        return options_dict(self, MITIGATIONS)

    def init_state(self, seeds: Sequence[int], n_in: int, n_out: int, device) -> dict:
        weights, biases = init_mlp(seeds, (n_in, *self.hidden, n_out), self.init, device)
        state = new_state(weights, biases, len(seeds), device)
        if self.online_norm:
            state["norm"] = init_norm(len(seeds), self.hidden, device)
        if self.dropout:
            state["dropout_rng"] = run_generators(seeds, "dropout", device)
        if self.noise_std:
            state["noise_rng"] = run_generators(seeds, "perturb", device)
        if self.optimizer == "adam":
            state["adam"] = init_adam(interleave(weights, biases) + self._norm_params(state))
        return state

    def _norm_params(self, state: dict) -> list[Tensor]:
        """Online normalization's learned γ's and β's (none without it): updated like the weights."""
        return state["norm"]["gamma"] + state["norm"]["beta"] if self.online_norm else []

    def step(self, state: dict, x: Tensor, y: Tensor) -> list[Tensor]:
        """One online step on batch (x (R, B, n_in), y (R, B)) for all R runs, in place.
        Returns the step's hidden activations (before the update; after dropout, if any)."""
        w, b = state["weights"], state["biases"]
        masks = dropout_masks(state["dropout_rng"], x.shape[1], self.hidden, self.dropout, x) if self.dropout else None
        keep_scale, extra, extra_grads = 1.0 / (1.0 - self.dropout), self._norm_params(state), []
        if self.online_norm:
            logits, acts, ys, scales = normalized_forward(w, b, state["norm"], x, masks, self.norm_alpha_fwd)
        else:
            logits, acts = forward(w, b, x, masks=masks)
        d_logits, loss, correct = cross_entropy(logits, y)
        accumulate_(state, loss, correct)
        if self.online_norm:
            layer_deltas, extra_grads = normalized_deltas(
                w, acts, ys, scales, state["norm"], d_logits, keep_scale, self.norm_alpha_bkw
            )
        else:
            layer_deltas = deltas(w, acts, d_logits, keep_scale=keep_scale)
        decay = self.weight_decay + self.shrink
        if self.optimizer == "adam":
            params = interleave(w, b) + extra
            grads = layer_grads(acts, layer_deltas) + extra_grads
            if decay:
                for g, p in zip(grads, params):
                    g.add_(p, alpha=decay)
            adam_(params, grads, state["adam"], self.lr, self.betas, self.eps)
        else:
            for weight, bias, a, d in zip(w, b, acts, layer_deltas):
                if decay:
                    shrink_((weight, bias), 1.0 - self.lr * decay)
                sgd_outer_(weight, bias, [a], [d], self.lr)
            for p, g in zip(extra, extra_grads):
                if decay:
                    shrink_((p,), 1.0 - self.lr * decay)
                p.sub_(g, alpha=self.lr)
        if self.noise_std:
            perturb_(interleave(w, b) + extra, state["noise_rng"], self.noise_std)
        return acts[1:]

    def block_period(self) -> int | None:
        """1: every plain-SGD step runs the same kernels (lopcore.blocks may record them as a CUDA
        graph). None with dropout or Shrink & Perturb (per-run generators), Adam (its bias correction
        is a host constant that changes every step) or online normalization (not yet checked on a GPU)."""
        plain = self.optimizer == "sgd" and not self.dropout and not self.noise_std and not self.online_norm
        return 1 if plain else None

    def hidden_units(self, state: dict) -> list[tuple]:
        """Per hidden layer, the wiring of its units: (W_in, b_in, [(W_out, b_out)]), views into the state."""
        w, b = state["weights"], state["biases"]
        return [(w[i], b[i], [(w[i + 1], b[i + 1])]) for i in range(len(w) - 1)]

    def optimizer_units(self, state: dict) -> list[list[tuple]]:
        """Per hidden layer, the optimizer state wired like `hidden_units` (Adam: one wiring for the
        first moments, one for the second); empty lists with SGD, which has no state."""
        if "adam" not in state:
            return [[] for _ in self.hidden]
        wirings = []
        n_linear = 2 * len(state["weights"])
        for moments in (state["adam"]["m"], state["adam"]["v"]):
            mw, mb = moments[0:n_linear:2], moments[1:n_linear:2]
            wirings.append([(mw[i], mb[i], [(mw[i + 1], mb[i + 1])]) for i in range(len(mw) - 1)])
        return [list(layer) for layer in zip(*wirings)]

    def hidden_activations(self, state: dict, x: Tensor) -> list[Tensor]:
        """Post-ReLU activations of every hidden layer on x, (R, N, width) each (no dropout; online
        normalization with the current statistics, not updated)."""
        return self._test_forward(state, x)[1][1:]

    def logits(self, state: dict, x: Tensor) -> Tensor:
        return self._test_forward(state, x)[0]

    def _test_forward(self, state: dict, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        if self.online_norm:
            return normalized_forward(state["weights"], state["biases"], state["norm"], x)[:2]
        return forward(state["weights"], state["biases"], x)

    def parameters(self, state: dict) -> tuple[list[Tensor], list[Tensor]]:
        """(weight matrices, biases), for the weight-norm metrics."""
        return list(state["weights"]), list(state["biases"])
