"""Per-run metrics of loss of plasticity.

Every tensor argument carries the leading run axis R and every result has shape (R,), computed on
the argument's device with no host synchronisation (no ``.item()``, no branching on tensor values),
so the engine can call these inside its loop. ``sliding_mean`` is the exception: a plotting helper.
Ranks are computed from ``torch.linalg.svdvals`` in float64 and returned in the activations' dtype.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor


def _float_dtype(t: Tensor) -> torch.dtype:
    return t.dtype if t.is_floating_point() else torch.float32


def _singular_values(acts: Tensor) -> Tensor:
    """σ of each run's (N, width) matrix, float64, sorted descending: (R, min(N, width)).

    Tall matrices (N > width, e.g. 2000 samples x 100 units) are first reduced to their width x
    width QR factor R, which has the same singular values (an orthogonal transform, backward
    stable) and is ~10x cheaper to decompose than the tall matrix.

    A run whose matrix holds a non-finite value (a diverged run) gets NaN singular values: its matrix
    is zeroed for the decomposition (LAPACK refuses non-finite input, which would fail every run of
    the batch) and its result replaced by NaN. Finite runs' values are untouched, bit for bit.
    """
    a = acts.to(torch.float64)
    finite = a.isfinite().flatten(-2).all(-1)
    a = torch.where(finite[..., None, None], a, 0.0)
    if a.shape[-2] > a.shape[-1]:
        a = torch.linalg.qr(a, mode="r").R
    return torch.where(finite[..., None], torch.linalg.svdvals(a), float("nan"))


def online_accuracy(correct: Tensor, seen: int) -> Tensor:
    """Fraction correct: correct / seen, with correct the (R,) count of examples classified correctly
    *before* the update on their batch and seen (> 0) the number of examples of the task."""
    if seen <= 0:
        raise ValueError(f"seen must be positive, got {seen}")
    return correct.to(_float_dtype(correct)) / seen


def weight_stats(weights: Sequence[Tensor], biases: Sequence[Tensor]) -> dict[str, Tensor]:
    """Weight-magnitude statistics per run, over weight matrices W and bias vectors b (leading axis R).

    sq_norm         = Σ_W Σ w² + Σ_b Σ b²
    n_params        = #weights + #biases per run (float, the same for every run)
    weight_norm     = sqrt(sq_norm) / n_params     (Iqbal: L2 norm of all parameters / their count)
    weight_rms      = sqrt(sq_norm / n_params)
    mean_abs_weight = Σ_W Σ |w| / #weights         (Dohare's mean weight magnitude; biases excluded)
    """
    if not weights:
        raise ValueError("weight_stats needs at least one weight matrix")
    params = list(weights) + list(biases)
    ref = weights[0]
    dtype = _float_dtype(ref)
    sq_norm = sum(p.to(dtype).pow(2).flatten(1).sum(1) for p in params)
    abs_sum = sum(w.to(dtype).abs().flatten(1).sum(1) for w in weights)
    n_params = sum(p[0].numel() for p in params)
    n_weights = sum(w[0].numel() for w in weights)
    return {
        "sq_norm": sq_norm,
        "n_params": torch.full((ref.shape[0],), float(n_params), dtype=dtype, device=ref.device),
        "weight_norm": sq_norm.sqrt() / n_params,
        "weight_rms": (sq_norm / n_params).sqrt(),
        "mean_abs_weight": abs_sum / n_weights,
    }


def dead_fraction(acts: Tensor) -> Tensor:
    """Fraction of units whose activation is exactly 0 on all N samples.

    acts: (R, N, width) post-ReLU activations. dead_i = ∀n: a_{n,i} == 0; result = mean_i dead_i.
    """
    return (acts == 0).all(dim=1).to(_float_dtype(acts)).mean(-1)


def dormant_fraction(acts: Tensor, tau: float = 0.0) -> Tensor:
    """Fraction of τ-dormant units (Sokar et al. 2023).

    m_i = mean_n |a_{n,i}|,  s_i = m_i / ((1/width) Σ_j m_j),  unit i dormant iff s_i ≤ τ.
    Evaluated as m_i ≤ τ · mean_j m_j (no division), so a layer that is silent on every sample
    (0/0 scores) counts as entirely dormant. With τ = 0 a unit is dormant iff m_i = 0, i.e. it is zero
    on every sample, so the result equals ``dead_fraction`` (for any activation, ReLU included).
    """
    m = acts.abs().to(_float_dtype(acts)).mean(1)  # (R, width)
    return (m <= tau * m.mean(-1, keepdim=True)).to(m.dtype).mean(-1)


def effective_rank(acts: Tensor) -> Tensor:
    """Effective rank (Roy & Vetterli 2007) of each run's (N, width) activation matrix.

    σ_k singular values, p_k = σ_k / Σ_i σ_i, erank = exp(-Σ_k p_k log p_k) with 0·log 0 = 0.
    It lies in [1, rank]; for the all-zero matrix (Σσ = 0, p undefined) we return 0, and NaN for a
    matrix with a non-finite entry (a diverged run).
    """
    s = _singular_values(acts)
    total = s.sum(-1, keepdim=True)
    p = s / total.clamp_min(torch.finfo(s.dtype).tiny)
    erank = torch.exp(-torch.xlogy(p, p).sum(-1))
    return torch.where(total.squeeze(-1) == 0, torch.zeros_like(erank), erank).to(_float_dtype(acts))


def stable_rank(acts: Tensor, delta: float = 0.01) -> Tensor:
    """srank_δ (Kumar et al. 2021) of each run's (N, width) activation matrix, as a float.

    With σ sorted descending: srank = min{k : Σ_{i≤k} σ_i / Σ_i σ_i ≥ 1 − δ} (σ, not σ²; Dohare's
    code calls this the 'abs approximate rank'). Computed as 1 + #{k : Σ_{i≤k} σ_i < (1 − δ) Σ σ};
    the all-zero matrix gets 0. With δ → 0 round-off singular values (~1e-16 σ_1) count, so
    srank_0 of a numerically rank-deficient matrix is min(N, width). A matrix with a non-finite entry
    (a diverged run) gets NaN.
    """
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta must be in [0, 1), got {delta}")
    cum = _singular_values(acts).cumsum(-1)
    total = cum[..., -1:]  # the last partial sum, so cum ≤ total holds exactly
    srank = 1 + (cum < (1.0 - delta) * total).sum(-1)
    srank = torch.where(total.squeeze(-1) > 0, srank, torch.zeros_like(srank)).to(_float_dtype(acts))
    return torch.where(total.squeeze(-1).isnan(), float("nan"), srank)


def delta_accuracy(first: Tensor, last: Tensor) -> Tensor:
    """Relative drop in accuracy (Khan et al.): ΔA = (A_1 − A_T) / A_1 × 100, in percent."""
    return (first - last) / first * 100.0


def iaa(mitigated_mean: Tensor, baseline_mean: Tensor) -> Tensor:
    """Improvement in average accuracy (Khan et al.): (⟨A⟩_mit − ⟨A⟩_base) / ⟨A⟩_base × 100, in percent."""
    return (mitigated_mean - baseline_mean) / baseline_mean * 100.0


def sliding_mean(values, window: int):
    """Trailing moving average along the last axis, as pandas ``rolling(window, min_periods=1).mean()``:
    out[t] = mean of the non-NaN values among values[max(0, t−window+1) : t+1] (NaN if there are none).

    A torch tensor gives a tensor (same device; float dtype kept, else float32); anything else gives
    a float64 numpy array.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if isinstance(values, Tensor):
        x = torch.nn.functional.pad(values.to(torch.float64), (window - 1, 0), value=float("nan"))
        win = x.unfold(-1, window, 1)  # (..., T, window)
        ok = ~win.isnan()
        out = torch.where(ok, win, 0.0).sum(-1) / ok.sum(-1)
        return out.to(_float_dtype(values))
    x = np.asarray(values, dtype=np.float64)
    pad = np.full(x.shape[:-1] + (window - 1,), np.nan)
    win = np.lib.stride_tricks.sliding_window_view(np.concatenate([pad, x], -1), window, axis=-1)
    ok = ~np.isnan(win)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, win, 0.0).sum(-1) / ok.sum(-1)
