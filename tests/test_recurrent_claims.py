"""Each recurrent-report claim holds on a synthetic frame built to satisfy it and fails on one built
to contradict it."""

import numpy as np
import pandas as pd
import pytest

from lopcore.papers.khan import claims as rc


def frame(curves: dict[str, list[list[float]]]) -> pd.DataFrame:
    """Tidy frame from {label: per-seed A_k lists}."""
    rows = [
        {"label": label, "seed": seed, "run": f"{label}/{seed}", "task": k, "test_accuracy": a}
        for label, seeds in curves.items()
        for seed, curve in enumerate(seeds)
        for k, a in enumerate(curve)
    ]
    return pd.DataFrame(rows)


def falling(start, end, n=20, jitter=0.0):
    """Three seeds of a linear A_k from start to end, each shifted a little."""
    return [list(np.linspace(start, end, n) + jitter * s) for s in (-1, 0, 1)]


FLAT, FALL, STEEP = falling(0.8, 0.8, jitter=0.01), falling(0.9, 0.6, jitter=0.01), falling(0.9, 0.3, jitter=0.01)


def verdict(claim, df):
    holds, evidence = claim[1](df, *claim[2])
    assert isinstance(evidence, str) and evidence
    return holds


def claim_of(figure, start):
    return next(c for c in rc.CLAIMS[figure] if c[0].startswith(start))


def test_per_seed_metrics_follow_the_reports_formulas():
    df = frame({"baseline": [[0.5, 0.5, 0.5, 0.5]], "L2": [[0.8, 0.6, 0.6, 0.4]]})
    assert rc.seed_delta(df, "L2", None) == pytest.approx([50.0])
    assert rc.seed_delta(df, "L2", 0.5) == pytest.approx([(0.7 - 0.5) / 0.7 * 100])
    assert rc.seed_iaa(df, "L2") == pytest.approx([(0.6 - 0.5) / 0.5 * 100])
    assert rc.late_gap(df, "L2", window=0.25) == pytest.approx([-0.1])
    rising = frame({"GRU": [[0.2, 0.6, 0.8, 0.7, 0.4]]})
    assert rc.seed_peak_drop(rising, "GRU", 0.2) == pytest.approx([50.0])  # the peak, not the first task


def test_a_fall_after_learning_is_seen_from_the_peak_only():
    rise_then_fall = [list(np.r_[np.linspace(0.4, 0.8, 10), np.linspace(0.8, 0.6, 10)] + 0.01 * s) for s in (-1, 0, 1)]
    df = frame({"reshuffle": rise_then_fall, "binary": FLAT})
    table = rc.figure_claims("rfig3", df).set_index("claim").verdict
    assert list(table) == ["✗", "✗", "✓", "✗"]


@pytest.mark.parametrize(
    "mlp, lstm, claims",
    [
        (STEEP, FALL, [True, True, True]),  # as the report says
        (FLAT, FALL, [False, True, False]),  # the MLP keeps its plasticity, the LSTM does not
        (FALL, STEEP, [True, True, False]),  # the LSTM degrades more
    ],
)
def test_mnist_claims(mlp, lstm, claims):
    df = frame({"MLP": mlp, "LSTM": lstm})
    for figure in ("rfig1", "rfig2"):
        table = rc.figure_claims(figure, df)
        assert list(table.verdict == "✓")[:3] == claims


def test_language_claims():
    assert (rc.figure_claims("rfig3", frame({"reshuffle": FALL, "binary": STEEP})).verdict == "✓").all()
    table = rc.figure_claims("rfig3", frame({"reshuffle": FLAT, "binary": falling(0.6, 0.9)}))
    assert (table.verdict == "✗").all()


def test_mitigation_claims_on_the_mlp():
    good = falling(0.9, 0.88, jitter=0.01)
    fading = [
        list(np.linspace(1.0, 0.56, 20) + 0.01 * s) for s in (-1, 0, 1)
    ]  # better on average, ends below the baseline
    df = frame({"baseline": FALL, "L2": good, "S&P": good, "CBP": fading})
    assert (rc.figure_claims("rfig4", df).verdict == "✓").all()
    df = frame({"baseline": FALL, "L2": falling(0.5, 0.4, jitter=0.01), "S&P": FALL, "CBP": good})
    assert list(rc.figure_claims("rfig4", df).verdict) == ["✗", "✗", "✓", "✗", "✗", "✗"]  # CBP stable


def test_mitigation_claims_on_the_gru():
    good = falling(0.9, 0.88, jitter=0.01)
    df = frame({"baseline": FALL, "L2": good, "CBP": good, "S&P": falling(0.6, 0.4, jitter=0.01)})
    assert (rc.figure_claims("rfig5", df).verdict == "✓").all()
    df = frame({"baseline": FALL, "L2": FALL, "CBP": falling(0.6, 0.4, jitter=0.01), "S&P": good})
    assert (rc.figure_claims("rfig5", df).verdict == "✗").all()


def test_noisy_seeds_do_not_make_a_claim_hold():
    """An IAA whose seeds disagree in sign is within two standard errors of zero: not an improvement."""
    noisy = [list(np.full(20, 0.9)), list(np.full(20, 0.5)), list(np.full(20, 0.7))]
    df = frame({"baseline": falling(0.7, 0.7), "L2": noisy})
    assert not verdict(claim_of("rfig5", "GRU: L2 improves"), df)


def test_sequence_length_claims():
    def grid(delta_of_t):
        return frame(
            {f"T={t}, H={h}": falling(0.9, 0.9 - delta_of_t[t], jitter=0.005) for t in delta_of_t for h in (32, 64)}
        )

    growing = rc.figure_claims("rfig6", grid({15: 0.1, 25: 0.2, 50: 0.3, 75: 0.4}))
    assert list(growing.verdict) == ["✓", "✓"]
    like_report = rc.figure_claims("rfig6", grid({15: 0.1, 25: 0.3, 50: 0.2, 75: 0.3}))
    assert list(like_report.verdict) == ["✓", "✗"]
    reversed_ = rc.figure_claims("rfig6", grid({15: 0.4, 25: 0.3, 50: 0.2, 75: 0.1}))
    assert list(reversed_.verdict) == ["✗", "✗"]


def test_claims_of_absent_labels_are_skipped_and_tables_show_the_report():
    df = frame({"baseline": FALL, "L2": falling(0.9, 0.88, jitter=0.01)})
    assert len(rc.figure_claims("rfig5", df)) == 2  # the L2 claims only
    table = rc.summary_table("rfig5", df)
    assert table.loc["L2", "report IAA %"] == 15.56 and table.loc["baseline", "IAA %"] == 0
    iaa = rc.iaa_table(df, df)
    assert list(iaa.columns) == ["L2"] and "report 36.69%" in iaa.loc["MLP", "L2"]


def test_a_flat_noisy_curve_does_not_fall_from_its_peak():
    """The best of many noisy stretches is above the average: that alone must not count as a fall."""
    rng = np.random.default_rng(0)
    noisy = [list(0.8 + 0.02 * rng.standard_normal(40)) for _ in range(3)]
    assert 0 < rc.seed_peak_drop(frame({"MLP": noisy}), "MLP").mean() < rc.PEAK_MARGIN
    assert not rc.falls_from_peak(frame({"MLP": noisy}), "MLP")[0]


def test_a_consistent_but_tiny_decline_is_not_a_loss_of_plasticity():
    tiny = falling(0.980, 0.978, jitter=0.0001)  # ΔA ≈ 0.2%, the same in every seed
    assert rc.seed_delta(frame({"MLP": tiny}), "MLP").mean() < rc.LOSS_MARGIN
    assert not verdict(claim_of("rfig2", "MNIST binary pairs: the MLP"), frame({"MLP": tiny}))
    assert verdict(claim_of("rfig2", "MNIST binary pairs: the MLP"), frame({"MLP": FALL}))
