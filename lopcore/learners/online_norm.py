"""Online normalization (Chiley et al. 2019, "Online Normalization for Training Neural Networks"),
for the hidden pre-activations of the batched MLP; tensors are (R, batch, width) as in mlp.py.

What is implemented, per hidden unit, for the examples of a batch taken one at a time in order:

Forward (running statistics instead of batch statistics, decay α_f):
    y_i  = (z_i − μ) / sqrt(σ² + ε)                       with μ, σ² as they were *before* example i
    σ²  <- α_f σ² + α_f (1 − α_f) (z_i − μ)²              (the exact variance update of an EMA)
    μ   <- α_f μ + (1 − α_f) z_i
  then an affine map γ y + β (learned; γ = 1, β = 0 at start), then the ReLU.

Backward (the paper's "control process", decay α_b): the exact gradient of a normalization would be
orthogonal to y and to 1; the running estimates do not give that, so two accumulators u, v remove,
online, the gradient's components along y and along 1:
    g   = dy_i − (1 − α_b) v y_i ;   v <- v + g y_i
    g   = g / sqrt(σ²_{(i)} + ε)                          (the scale used in example i's forward)
    dz_i = g − (1 − α_b) u ;         u <- u + dz_i

Simplifications, all stated: (1) the paper's layer scaling (dividing each example's layer output by
its root-mean-square, an option of the reference code) is left out; (2) ε = 1e-5, μ = 0, σ² = 1,
u = v = 0 at start, as in the reference code; (3) examples of a batch are processed sequentially in
batch order (the algorithm's definition for batch size 1), which costs a loop of batch-size short
steps per layer; (4) at test time (test accuracy, correlates) the current statistics are used and not
updated. Gradients for the linear layer then follow from dz as usual.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor
EPS = 1e-5


def init_norm(n_runs: int, widths, device) -> dict:
    """Per hidden layer: running mean and variance, control accumulators u, v, affine γ, β (R, 1, w)."""

    def full(value):
        return [torch.full((n_runs, 1, w), value, device=device) for w in widths]

    return {"mean": full(0.0), "var": full(1.0), "u": full(0.0), "v": full(0.0), "gamma": full(1.0), "beta": full(0.0)}


def normalize(z: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    """(z − μ) / sqrt(σ² + ε) with the statistics as they are (test time: nothing is updated)."""
    return (z - mean) / (var + EPS).sqrt()


def control_norm_forward_(z: Tensor, mean: Tensor, var: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """Normalize z (R, B, w) example by example, updating `mean` and `var` (R, 1, w) in place.
    Returns y and the scales sqrt(σ² + ε) each example was divided by (for the backward pass)."""
    ys, scales = [], []
    for i in range(z.shape[1]):
        zi = z[:, i : i + 1]
        scale = (var + EPS).sqrt()
        diff = zi - mean
        ys.append(diff / scale)
        scales.append(scale)
        var.mul_(alpha).addcmul_(diff, diff, value=alpha * (1.0 - alpha))
        mean.add_(diff, alpha=1.0 - alpha)
    return torch.cat(ys, 1), torch.cat(scales, 1)


def control_norm_backward_(dy: Tensor, y: Tensor, scales: Tensor, u: Tensor, v: Tensor, alpha: float) -> Tensor:
    """d loss / d z from d loss / d y, example by example, updating the accumulators u, v in place."""
    dzs = []
    for i in range(dy.shape[1]):
        yi = y[:, i : i + 1]
        g = dy[:, i : i + 1] - (1.0 - alpha) * v * yi
        v.add_(g * yi)
        dz = g / scales[:, i : i + 1] - (1.0 - alpha) * u
        u.add_(dz)
        dzs.append(dz)
    return torch.cat(dzs, 1)
