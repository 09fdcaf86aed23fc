"""The classic mitigations of loss of plasticity as small functions on stacked run tensors (Dohare's
thesis, ch. 4): inverted dropout masks, L2 / Shrink & Perturb's decay and noise, Adam, and the online
normalization forward and backward passes. `mlp.Backprop` composes them; each takes and returns
tensors with a leading run axis R, and draws its randomness from one generator per run
(`run_generators`), so a run never depends on its group mates.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ..tasks import derive_seed
from .online_norm import control_norm_backward_, control_norm_forward_, normalize

Tensor = torch.Tensor


def run_generators(seeds: Sequence[int], tag: str, device) -> list[torch.Generator]:
    """One generator per run, seeded from (seed, tag): a run's draws never depend on its group mates."""
    return [torch.Generator(device=device).manual_seed(derive_seed(s, tag)) for s in seeds]


def dropout_masks(
    rngs: Sequence[torch.Generator], batch: int, widths: Sequence[int], p: float, like: Tensor
) -> list[Tensor]:
    """Inverted-dropout masks, one (R, batch, width) per hidden layer: 0 with probability p, else
    1/(1-p), so an activation's expectation is unchanged and nothing is rescaled at test time."""
    return [
        torch.stack([torch.rand(batch, w, generator=g, device=like.device, dtype=like.dtype) for g in rngs])
        .ge_(p)
        .to(like.dtype)
        .div_(1.0 - p)
        for w in widths
    ]


def shrink_(params: Sequence[Tensor], factor: float) -> None:
    """θ <- factor · θ in place: L2's (or Shrink & Perturb's) decay folded into an SGD step."""
    for p in params:
        p.mul_(factor)


def perturb_(params: Sequence[Tensor], rngs: Sequence[torch.Generator], std: float) -> None:
    """θ <- θ + N(0, std²) on every parameter; one draw per run, split over the parameters in order."""
    sizes = [p[0].numel() for p in params]
    noise = torch.stack(
        [torch.randn(sum(sizes), generator=g, device=params[0].device, dtype=params[0].dtype) for g in rngs]
    )
    for p, n in zip(params, noise.split(sizes, dim=1)):
        p.add_(n.view_as(p), alpha=std)


def layer_grads(acts: Sequence[Tensor], deltas_: Sequence[Tensor]) -> list[Tensor]:
    """Materialised gradients [dW_0, db_0, dW_1, db_1, ...] from each layer's input and delta."""
    grads = []
    for a, d in zip(acts, deltas_):
        grads += [torch.bmm(a.transpose(1, 2), d), d.sum(1, keepdim=True)]
    return grads


def init_adam(params: Sequence[Tensor]) -> dict:
    """Adam's per-run state: first and second moments per parameter (zeros) and the step count."""
    return {"m": [torch.zeros_like(p) for p in params], "v": [torch.zeros_like(p) for p in params], "t": 0}


def adam_(
    params: Sequence[Tensor], grads: Sequence[Tensor], adam: dict, lr: float, betas: tuple[float, float], eps: float
) -> None:
    """One bias-corrected Adam step (Kingma & Ba), in place, written as torch.optim.Adam computes it:
    θ <- θ - lr/(1-β1^t) · m / (sqrt(v)/sqrt(1-β2^t) + ε). The step count t is shared by all runs."""
    adam["t"] += 1
    b1, b2 = betas
    step_size = lr / (1.0 - b1 ** adam["t"])
    root_c2 = math.sqrt(1.0 - b2 ** adam["t"])
    for p, g, m, v in zip(params, grads, adam["m"], adam["v"]):
        m.lerp_(g, 1.0 - b1)
        v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
        p.addcdiv_(m, v.sqrt().div_(root_c2).add_(eps), value=-step_size)


def interleave(weights: Sequence[Tensor], biases: Sequence[Tensor]) -> list[Tensor]:
    """[W_0, b_0, W_1, b_1, ...]: the order of `layer_grads`, Adam's state and the noise draws."""
    return [p for pair in zip(weights, biases) for p in pair]


def normalized_forward(
    weights: Sequence[Tensor],
    biases: Sequence[Tensor],
    norm: dict,
    x: Tensor,
    masks: Sequence[Tensor] | None = None,
    alpha: float | None = None,
) -> tuple[Tensor, list[Tensor], list[Tensor], list[Tensor]]:
    """`forward` with online normalization of each hidden pre-activation, then γ y + β, then ReLU.
    With `alpha` (α_f) the running statistics are updated example by example (training); without,
    they are only read (test time). Returns logits, activations, normalized y's and their scales."""
    acts, ys, scales = [x], [], []
    for i, (w, b) in enumerate(zip(weights[:-1], biases[:-1])):
        z = torch.baddbmm(b, acts[-1], w)
        if alpha is None:
            y = normalize(z, norm["mean"][i], norm["var"][i])
        else:
            y, scale = control_norm_forward_(z, norm["mean"][i], norm["var"][i], alpha)
            scales.append(scale)
        ys.append(y)
        a = torch.relu_(torch.addcmul(norm["beta"][i], y, norm["gamma"][i]))
        acts.append(a if masks is None else a.mul_(masks[i]))
    return torch.baddbmm(biases[-1], acts[-1], weights[-1]), acts, ys, scales


def normalized_deltas(
    weights: Sequence[Tensor],
    acts: Sequence[Tensor],
    ys: Sequence[Tensor],
    scales: Sequence[Tensor],
    norm: dict,
    d_logits: Tensor,
    keep_scale: float,
    alpha: float,
) -> tuple[list[Tensor], list[Tensor]]:
    """Backward pass of `normalized_forward` (α_b = alpha), updating the control accumulators.
    Returns the linear layers' deltas (head included) and the gradients [dγ_0, ..., dβ_0, ...]."""
    n = len(weights) - 1
    layer_deltas, d_gamma, d_beta = [None] * n + [d_logits], [None] * n, [None] * n
    d_act = torch.bmm(d_logits, weights[-1].transpose(1, 2))
    for i in reversed(range(n)):
        d_out = torch.ops.aten.threshold_backward(d_act, acts[i + 1], 0)  # d loss / d (γ y + β)
        if keep_scale != 1.0:
            d_out.mul_(keep_scale)
        d_gamma[i], d_beta[i] = (d_out * ys[i]).sum(1, keepdim=True), d_out.sum(1, keepdim=True)
        layer_deltas[i] = control_norm_backward_(
            d_out * norm["gamma"][i], ys[i], scales[i], norm["u"][i], norm["v"][i], alpha
        )
        if i:
            d_act = torch.bmm(layer_deltas[i], weights[i].transpose(1, 2))
    return layer_deltas, d_gamma + d_beta
