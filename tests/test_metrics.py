"""Known-answer tests for lopcore.metrics."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from lopcore import metrics


def with_singular_values(sv, n=20, width=8, seed=0) -> torch.Tensor:
    """An (n, width) matrix U diag(sv) V^T with random orthonormal U, V."""
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(n, width, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(width, width, generator=g, dtype=torch.float64))
    s = torch.zeros(width, dtype=torch.float64)
    s[: len(sv)] = torch.tensor(sv, dtype=torch.float64)
    return u @ torch.diag(s) @ v.T


# ---------------------------------------------------------------- effective rank


@pytest.mark.parametrize("k", [1, 2, 5, 8])
def test_effective_rank_equal_singular_values_is_k(k):
    acts = with_singular_values([3.0] * k)[None]
    assert metrics.effective_rank(acts).item() == pytest.approx(k, rel=1e-9)


def test_effective_rank_rank_one_outer_product():
    acts = (torch.arange(1.0, 11.0)[:, None] * torch.tensor([1.0, -2.0, 0.5, 4.0]))[None]
    assert metrics.effective_rank(acts).item() == pytest.approx(1.0, abs=1e-5)


def test_effective_rank_three_one_by_hand():
    # p = (0.75, 0.25): H = -(0.75 ln 0.75 + 0.25 ln 0.25) = 0.2157616 + 0.3465736 = 0.5623351
    expected = math.exp(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert expected == pytest.approx(1.7547653506, rel=1e-9)
    acts = with_singular_values([3.0, 1.0])[None]
    assert metrics.effective_rank(acts).item() == pytest.approx(expected, rel=1e-9)
    # the same in the float32 the engine uses
    assert metrics.effective_rank(acts.float()).item() == pytest.approx(expected, rel=1e-5)


def test_effective_rank_zero_matrix_is_zero_and_finite():
    acts = torch.stack([torch.zeros(6, 4), with_singular_values([1.0, 1.0], 6, 4).float()])
    out = metrics.effective_rank(acts)
    assert out.shape == (2,) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert out.tolist() == pytest.approx([0.0, 2.0], abs=1e-5)


# ---------------------------------------------------------------- stable rank


def test_stable_rank_dominant_value_is_one():
    acts = with_singular_values([1.0, 0.001])[None]
    assert metrics.stable_rank(acts, delta=0.01).item() == 1.0
    # but a second value above the δ share is counted: 0.02 / 1.02 > 0.01
    acts = with_singular_values([1.0, 0.02])[None]
    assert metrics.stable_rank(acts, delta=0.01).item() == 2.0


@pytest.mark.parametrize("k", [1, 3, 8])
def test_stable_rank_equal_values_is_k(k):
    acts = with_singular_values([2.0] * k)[None]
    assert metrics.stable_rank(acts).item() == k


def test_stable_rank_threshold_is_inclusive():
    # σ = (3, 1): the first value holds exactly 75 %; δ = 0.25 → 1, δ slightly below → 2
    acts = with_singular_values([3.0, 1.0])[None]
    assert metrics.stable_rank(acts, delta=0.25 + 1e-9).item() == 1.0
    assert metrics.stable_rank(acts, delta=0.25 - 1e-6).item() == 2.0


def test_stable_rank_delta_near_zero():
    # tiny δ: every nonzero value counts; round-off values (~1e-16) do not at δ = 1e-10
    acts = with_singular_values([1.0, 1e-3, 1e-6])[None]
    assert metrics.stable_rank(acts, delta=1e-10).item() == 3.0
    assert metrics.stable_rank(acts, delta=1e-4).item() == 2.0
    # δ = 0 on a full-rank matrix is its full rank, and never more than min(N, width)
    full = with_singular_values([5.0, 4.0, 3.0, 2.0], n=10, width=4)[None]
    assert metrics.stable_rank(full, delta=0.0).item() == 4.0
    with pytest.raises(ValueError):
        metrics.stable_rank(full, delta=1.0)


def test_stable_rank_zero_matrix_is_zero():
    assert metrics.stable_rank(torch.zeros(1, 5, 3)).tolist() == [0.0]


# ---------------------------------------------------------------- dead / dormant units


def dead_example() -> torch.Tensor:
    acts = torch.rand(2, 5, 4, generator=torch.Generator().manual_seed(1)) + 0.1
    acts[0, :, 2] = 0.0  # run 0: unit 2 dead
    acts[1, :, 0:3] = 0.0  # run 1: units 0, 1, 2 dead
    acts[1, 3, 1] = 0.7  # ... except unit 1 fires on one sample: not dead
    acts[1, :, 3] = 0.0  # ... and unit 3 dead → 3 dead of 4
    return acts


def test_dead_fraction_known_answer():
    out = metrics.dead_fraction(dead_example())
    assert out.tolist() == [0.25, 0.75]
    assert out.dtype == torch.float32


def test_dead_fraction_unit_active_on_one_sample_is_not_dead():
    acts = torch.zeros(1, 100, 2)
    acts[0, 57, 0] = 1e-30
    assert metrics.dead_fraction(acts).tolist() == [0.5]


def test_dormant_fraction_by_hand():
    # mean |a| per unit: (0, 0.25, 0.5, 1, 3.25); layer mean = 1; scores s = (0, .25, .5, 1, 3.25)
    # (all exact in binary, so the s = τ boundary is tested without round-off)
    acts = torch.tensor([[0.0, 0.5, 0.0, 1.0, 6.5], [0.0, 0.0, 1.0, 1.0, 0.0]])[None]
    out = lambda a, tau: metrics.dormant_fraction(a, tau).tolist()  # noqa: E731
    assert out(acts, 0.5) == pytest.approx([3 / 5])  # s ≤ 0.5 includes s = 0.5
    assert out(acts, 0.49) == pytest.approx([2 / 5])
    assert out(acts, 0.0) == pytest.approx([1 / 5])
    assert out(acts, 1.0) == pytest.approx([4 / 5])
    # scores are relative to the layer mean: scaling every unit changes nothing
    assert out(10 * acts, 0.5) == pytest.approx([3 / 5])
    # absolute values: sign does not matter
    assert out(-acts, 0.5) == pytest.approx([3 / 5])
    # a unit that swings ±1 is not dormant (mean |a| = 1, not mean a = 0)
    swing = torch.tensor([[[1.0, 0.5], [-1.0, 0.5]]])
    assert out(swing, 0.5) == [0.0]
    assert out(swing, 0.0) == metrics.dead_fraction(swing).tolist() == [0.0]


def test_dormant_at_tau_zero_equals_dead_fraction():
    acts = dead_example()
    assert torch.equal(metrics.dormant_fraction(acts, 0.0), metrics.dead_fraction(acts))
    relu = torch.relu(torch.randn(3, 50, 16, generator=torch.Generator().manual_seed(2)) - 1.5)
    assert torch.equal(metrics.dormant_fraction(relu, 0.0), metrics.dead_fraction(relu))


def test_dormant_silent_layer_is_all_dormant():
    assert metrics.dormant_fraction(torch.zeros(2, 3, 4), tau=0.1).tolist() == [1.0, 1.0]


# ---------------------------------------------------------------- weights


def test_weight_stats_by_hand():
    w1 = torch.tensor(
        [
            [[1.0, -2.0], [0.0, 2.0]],  # run 0: Σw² = 9,  Σ|w| = 5
            [[3.0, 0.0], [0.0, -4.0]],
        ]
    )  # run 1: Σw² = 25, Σ|w| = 7
    w2 = torch.tensor([[[2.0, 0.0]], [[0.0, -1.0]]])  # run 0: 4, 2   run 1: 1, 1
    b1 = torch.tensor([[2.0, 0.0], [-1.0, 1.0]])  # run 0: 4       run 1: 2
    b2 = torch.tensor([[-2.0], [0.0]])  # run 0: 4       run 1: 0
    out = metrics.weight_stats([w1, w2], [b1, b2])
    n = 4 + 2 + 2 + 1
    assert out["n_params"].tolist() == [n, n]
    assert out["sq_norm"].tolist() == [21.0, 28.0]
    torch.testing.assert_close(out["weight_norm"], torch.tensor([math.sqrt(21) / 9, math.sqrt(28) / 9]))
    torch.testing.assert_close(out["weight_rms"], torch.tensor([math.sqrt(21 / 9), math.sqrt(28 / 9)]))
    # biases excluded: Σ|W| / #weights over the 6 weights only
    torch.testing.assert_close(out["mean_abs_weight"], torch.tensor([7 / 6, 8 / 6]))
    assert all(v.shape == (2,) for v in out.values())


def test_weight_stats_without_biases():
    w = torch.tensor([[[3.0, 4.0]]])
    out = metrics.weight_stats([w], [])
    assert out["sq_norm"].tolist() == [25.0]
    assert out["weight_norm"].tolist() == [2.5]
    assert out["mean_abs_weight"].tolist() == [3.5]


# ---------------------------------------------------------------- accuracy summaries


def test_online_accuracy():
    assert metrics.online_accuracy(torch.tensor([50, 75]), 100).tolist() == [0.5, 0.75]
    with pytest.raises(ValueError):
        metrics.online_accuracy(torch.tensor([0]), 0)


def test_delta_accuracy_and_iaa():
    torch.testing.assert_close(
        metrics.delta_accuracy(torch.tensor([0.9, 0.8]), torch.tensor([0.45, 0.8])), torch.tensor([50.0, 0.0])
    )
    torch.testing.assert_close(
        metrics.iaa(torch.tensor([0.6, 0.4]), torch.tensor([0.5, 0.5])), torch.tensor([20.0, -20.0])
    )


# ---------------------------------------------------------------- sliding mean


def test_sliding_mean_numpy_and_torch():
    expected = [1.0, 1.5, 2.5, 3.5]
    out = metrics.sliding_mean(np.array([1, 2, 3, 4]), 2)
    assert isinstance(out, np.ndarray) and out.tolist() == expected
    t = metrics.sliding_mean(torch.tensor([1.0, 2.0, 3.0, 4.0]), 2)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32 and t.tolist() == expected
    assert metrics.sliding_mean(np.array([1.0, 2.0, 3.0]), 1).tolist() == [1.0, 2.0, 3.0]
    assert metrics.sliding_mean([2.0, 4.0], 10).tolist() == [2.0, 3.0]


def test_sliding_mean_matches_pandas_along_last_axis():
    x = np.random.default_rng(0).normal(size=(3, 40))
    x[1, 5] = x[1, 6] = np.nan
    expected = pd.DataFrame(x.T).rolling(7, min_periods=1).mean().to_numpy().T
    np.testing.assert_allclose(metrics.sliding_mean(x, 7), expected, rtol=1e-12)
    np.testing.assert_allclose(metrics.sliding_mean(torch.from_numpy(x), 7).numpy(), expected, rtol=1e-12)


# ---------------------------------------------------------------- batching


def test_batched_equals_per_run():
    g = torch.Generator().manual_seed(3)
    acts = torch.relu(torch.randn(4, 60, 12, generator=g) @ torch.randn(4, 12, 12, generator=g) - 0.5)
    acts[1, :, :3] = 0.0
    acts[2] = 0.0
    for fn in (
        metrics.dead_fraction,
        metrics.effective_rank,
        metrics.stable_rank,
        lambda a: metrics.dormant_fraction(a, 0.3),
    ):
        batched = fn(acts)
        assert batched.shape == (4,)
        single = torch.cat([fn(acts[r : r + 1]) for r in range(4)])
        torch.testing.assert_close(batched, single)
    ws = [torch.randn(4, 5, 3, generator=g), torch.randn(4, 2, 5, generator=g)]
    bs = [torch.randn(4, 5, generator=g), torch.randn(4, 2, generator=g)]
    batched = metrics.weight_stats(ws, bs)
    for r in range(4):
        single = metrics.weight_stats([w[r : r + 1] for w in ws], [b[r : r + 1] for b in bs])
        for key, value in single.items():
            torch.testing.assert_close(batched[key][r : r + 1], value)
