"""Each claim predicate on synthetic frames that satisfy it and frames that contradict it."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_plotting import synthetic

from lopcore.papers.iqbal.claims import (
    CLAIMS,
    SAME,
    alternation_claims,
    alternation_does_not_hurt,
    choose_cbp_rate,
    collapse_by_seed,
    collapse_statistic,
    collapse_tasks,
    evaluate,
    figure_claims,
    line_key,
    paired_collapse,
    per_seed,
    scoreboard,
)


def labelled(names_to_runs, n_tasks=300):
    """Relabel synthetic runs: {new label: source label} ('steady' stays at 0.9; 'falling' decays
    from 0.9 to about 0.3 and collapses near task 200)."""
    df = synthetic(n_tasks=n_tasks)
    parts = [
        df[df.label == src].assign(label=new, run=lambda d, new=new: new + d["run"])
        for new, src in names_to_runs.items()
    ]
    return pd.concat(parts, ignore_index=True)


def verdicts(table):
    return dict(zip(table.claim, table.verdict))


def test_fig2_claims_hold_on_a_frame_that_satisfies_them():
    df = labelled({"baseline": "falling", "persistent n=2": "steady", "persistent n=1": "falling", "CBP": "steady"})
    df.loc[df.label == "persistent n=2", "weight_norm"] *= 0.5
    n1 = df.label == "persistent n=1"  # the baseline's curves 50 tasks later, seed by seed
    df.loc[n1, "online_accuracy"] = np.concatenate(
        [np.r_[np.full(50, 0.9), g.online_accuracy.to_numpy()[:-50]] for _, g in df[n1].groupby("seed", sort=True)]
    )
    table = figure_claims("fig2", df)
    assert len(table) == len(CLAIMS["fig2"]) and set(table.verdict) == {"✓"}, table.to_string()


def test_fig2_claims_fail_on_a_frame_that_contradicts_them():
    df = labelled({"baseline": "steady", "persistent n=2": "falling", "persistent n=1": "falling", "CBP": "falling"})
    table = figure_claims("fig2", df).set_index("claim")
    assert set(table.verdict) == {"✗"}, table.to_string()
    assert "none" in table.loc["The baseline collapses by about task 200", "evidence"]


@pytest.mark.parametrize("baseline, expected", [("falling", "✓"), ("steady", "✗")])
def test_collapse_within_the_run_needs_a_collapse(baseline, expected):
    df = labelled({"baseline": baseline})
    assert verdicts(figure_claims("fig3", df)) == {"Fashion-MNIST: the baseline collapses within the run": expected}


def test_claims_about_absent_learners_are_skipped():
    table = figure_claims("fig2", labelled({"baseline": "falling", "persistent n=2": "steady"}))
    assert not any("n = 1" in c or "CBP" in c for c in table.claim) and len(table) == 4


@pytest.mark.parametrize("zero, expected", [("falling", "✓"), ("steady", "✗")])
def test_ablation_claim(zero, expected):
    df = labelled({"baseline": "falling", "persistent n=2": "steady", "zero state n=2": zero})
    assert verdicts(figure_claims("fig6", df)) == {
        "State frozen at zero behaves like the baseline, not like the learned state": expected
    }


def stepping(collapse_at: dict[str, tuple[int, ...]], n_tasks=300) -> pd.DataFrame:
    """Per label, one run per seed at 0.9 that drops to 0.1 at the given task (one per seed)."""
    task = np.arange(n_tasks)
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "task": task,
                    "online_accuracy": np.where(task < at, 0.9, 0.1),
                    "label": label,
                    "seed": seed,
                    "run": f"{label}-{seed}",
                    "weight_norm": 1e-4,
                    "n_params": 1000.0,
                }
            )
            for label, ats in collapse_at.items()
            for seed, at in enumerate(ats)
        ],
        ignore_index=True,
    )


@pytest.mark.parametrize(
    "n1, expected",
    [
        ((150, 170, 185), "✓"),  # every seed ~50 tasks later
        ((160, 121, 100), "✗"),  # the median one task later, but paired by seed +60, +1, -40: no evidence
        ((90, 110, 130), "✗"),  # earlier
    ],
)
def test_collapsing_later_needs_the_seed_paired_difference_above_zero(n1, expected):
    df = stepping({"baseline": (100, 120, 140), "persistent n=1": n1})
    table = figure_claims("fig2", df).set_index("claim")
    row = table.loc["Persistent state, n = 1: collapses later than the baseline"]
    assert row.verdict == expected and "paired by seed" in row.evidence, row.evidence


def test_line_keys_name_every_iqbal_line_shortly_and_uniquely():
    from lopcore.papers.iqbal import figures
    from lopcore.papers.iqbal.claims import line_key

    assert [line_key(x) for x in ("baseline", "CBP", "persistent n=1", "persistent n=2 + CBP")] == [
        "baseline",
        "cbp",
        "n1",
        "n2_cbp",
    ]
    assert [line_key(x) for x in ("zero state n=2", "random state n=2", "persistent n=2, d=128")] == [
        "zero",
        "random",
        "n2_d128",
    ]
    for figure in ("fig2", "fig3", "fig4", "fig6", "fig7"):
        labels = {label for label, _ in figures.figure_runs(figure, "smoke", 1)}
        assert len({line_key(x) for x in labels}) == len(labels), figure


def test_the_collapse_table_pairs_each_line_with_the_reference_by_seed():
    from lopcore.papers.iqbal.claims import collapse_table

    df = stepping({"baseline": (100, 120, 140), "persistent n=1": (150, 170, 185), "CBP": (300, 300, 300)})
    table, numbers = collapse_table(df)
    assert list(table.index) == ["baseline", "persistent n=1", "CBP"] and table.loc["baseline", "95% CI"] == "-"
    base = collapse_by_seed(df, "baseline")
    assert numbers["regime_collapse_baseline"] == base.mean() and numbers["regime_collapse_cbp"] == 300
    assert (numbers["regime_collapse_n1_first"], numbers["regime_collapse_n1_last"]) == tuple(
        collapse_by_seed(df, "persistent n=1").agg(["min", "max"])
    )
    mean, low, high, _ = paired_collapse(df, "persistent n=1")
    assert (numbers["regime_minus_baseline_n1"], numbers["regime_minus_baseline_n1_low"]) == (mean, low)
    assert table.loc["persistent n=1", "minus baseline (paired)"] == mean and numbers["regime_start_n1"] == 0.9
    table, numbers = collapse_table(df, than="persistent n=1")  # Fig. 4 has no baseline: against n = 1
    assert "regime_minus_n1_cbp" in numbers and "regime_minus_baseline_cbp" not in numbers
    assert "minus persistent n=1 (paired)" in table.columns


def test_a_comparison_of_collapsed_lines_says_it_is_empty():
    from lopcore.papers.iqbal.claims import at_least_as_good_late, best_of, better_late

    df = stepping({"a": (50, 60), "b": (70, 80), "c": (40, 45)})  # all at 0.1 over their last 100 tasks
    for holds, evidence in (at_least_as_good_late(df, "a", "b"), best_of(df, "a", ("b", "c"))):
        assert holds and evidence.endswith("all at chance (0.10): collapsed lines, an empty comparison")
    assert "all at chance" in better_late(df, "a", "b")[1]
    healthy = stepping({"a": (300, 300), "b": (70, 80)})  # a never drops
    assert "at chance" not in at_least_as_good_late(healthy, "a", "b")[1]


def test_regime_tables_join_the_collapse_table_and_the_failure_modes():
    from lopcore.papers.iqbal.claims import collapse_table, failure_numbers, regime_tables
    from lopcore.study import DEAD_COLUMNS, failure_modes

    df = stepping({"baseline": (100, 120, 140), "persistent n=2": (90, 130, 300)})
    df = df.assign(diverged=(df.label == "persistent n=2") & (df.seed == 0) & (df.task >= 90), mean_abs_weight=0.2)
    df = df.assign(**{c: np.where(df.label == "baseline", 0.6, 0.3) for c in DEAD_COLUMNS})
    table, modes, numbers = regime_tables(df)
    pd.testing.assert_frame_equal(table, collapse_table(df)[0])
    pd.testing.assert_frame_equal(modes, failure_modes(df))
    assert numbers == collapse_table(df)[1] | failure_numbers(modes)
    assert (numbers["regime_diverged_n2"], numbers["regime_dead_end_baseline"]) == (1, 60.0)
    table, modes, numbers = regime_tables(df.iloc[:0])  # no line complete yet
    assert table.empty and modes.empty and numbers == {}


@pytest.mark.parametrize("n4, expected", [("falling", "✓"), ("steady", "✗")])
def test_n4_worse_than_n2(n4, expected):
    df = labelled({"persistent n=1": "falling", "persistent n=2": "steady", "persistent n=4": n4})
    if n4 == "steady":  # n = 4 clearly better: not worse than n = 2, and n = 2 not the best
        df.loc[df.label == "persistent n=4", "online_accuracy"] += 0.05
    assert set(verdicts(figure_claims("fig4", df)).values()) == {expected}


def test_d256_at_least_as_good_tolerates_small_differences():
    df = labelled({"baseline": "falling", "persistent n=2, d=128": "steady", "persistent n=2, d=256": "steady"})
    df.loc[df.label == "persistent n=2, d=256", "online_accuracy"] -= 0.01  # within the tolerance
    claim = "Fashion-MNIST: d_int = 256 at least as good as 128 (n = 2)"
    assert verdicts(figure_claims("fig3", df))[claim] == "✓"
    df.loc[df.label == "persistent n=2, d=256", "online_accuracy"] -= 0.05
    assert verdicts(figure_claims("fig3", df))[claim] == "✗"


def test_alternation_compares_fashion_tasks_only():
    alone = labelled({"n2": "steady"}).assign(dataset="fashion_mnist")
    alt = labelled({"n2": "steady"})
    alt["dataset"] = np.where(alt.task % 2 == 0, "fashion_mnist", "mnist")
    alt.loc[alt.dataset == "mnist", "online_accuracy"] = 0.2  # MNIST tasks do not count
    assert alternation_does_not_hurt(alt, "n2", alone, "n2")[0]
    alt.loc[alt.dataset == "fashion_mnist", "online_accuracy"] -= 0.1
    assert not alternation_does_not_hurt(alt, "n2", alone, "n2")[0]


def test_collapse_statistic_counts_seeds_and_gives_an_interval():
    table = collapse_statistic(labelled({"falling": "falling", "steady": "steady"}))
    assert table.loc["steady", "seeds collapsed"] == "0 of 2" and table.loc["steady", "95% CI"] == "-"
    assert table.loc["falling", "seeds collapsed"] == "2 of 2"
    low, high = map(float, table.loc["falling", "95% CI"].split(" to "))
    assert low < table.loc["falling", "mean collapse task"] < high


def test_evaluate_states_its_definitions():
    assert "sliding online accuracy is below 0.5" in evaluate([], labelled({"a": "steady"})).attrs["definition"]


def test_the_sweep_rule_prefers_the_smallest_rate_within_the_tolerance():
    df = labelled({"r1": "falling", "r2": "steady", "r3": "steady"})
    df["replacement_rate"] = df.label.map({"r1": 1e-5, "r2": 1e-4, "r3": 1e-3})
    df.loc[df.label == "r3", "online_accuracy"] += 0.004  # better, but within the tolerance
    assert choose_cbp_rate(df)[0] == 1e-4
    df.loc[df.label == "r3", "online_accuracy"] += 0.01  # now clearly better
    assert choose_cbp_rate(df)[0] == 1e-3


def test_test_accuracy_ranking_ignores_near_ties_and_catches_reversals():
    names = ("MNIST · baseline", "MNIST · persistent n=1", "MNIST · persistent n=2")
    df = labelled(dict(zip(names, ("falling", "steady", "steady"))))
    claim = "MNIST: test accuracy ranks the learners as online accuracy does"
    assert verdicts(figure_claims("fig5", df))[claim] == "✓"  # n=1 and n=2 tie: no constraint between them
    df.loc[df.label == names[0], "test_accuracy"] = 0.99  # the falling baseline tests best: a reversal
    assert verdicts(figure_claims("fig5", df))[claim] == "✗"


def test_ablation_claim_needs_the_state_to_differ_from_the_baseline():
    df = labelled({"baseline": "steady", "persistent n=2": "steady", "zero state n=2": "steady"})
    verdict = figure_claims("fig6", df)
    assert list(verdict.verdict) == ["✗"] and "untestable" in verdict.evidence[0]


# What book/intro.md says of the paper-scale results ("What we find at the paper's scale") holds for
# the committed results: one test per figure, each quoting the book and checking its numbers.
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def intro():
    return " ".join((REPO / "book" / "intro.md").read_text().split())


@pytest.fixture(scope="module")
def committed_store():
    from lopcore.store import Store

    return Store(REPO / "results")


@pytest.fixture(scope="module")
def paper_lines(committed_store):
    """A figure's complete lines at paper scale, from the committed store."""
    from lopcore.papers.iqbal.figures import stored_paper_lines

    return lambda figure: stored_paper_lines(figure, committed_store)


def glued(page: str) -> dict:
    """The values a committed, executed page glues for the book (name -> number or text; a glued table
    as its plain-text form)."""
    import ast
    import json

    def value(text: str):
        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text

    cells = json.loads((REPO / "notebooks" / f"{page}.ipynb").read_text())["cells"]
    return {
        o["metadata"]["scrapbook"]["name"]: value(o["data"]["application/papermill.record/text/plain"])
        for c in cells
        for o in c.get("outputs", [])
        if "scrapbook" in o.get("metadata", {})
    }


def test_the_books_figure_2_statement_holds_at_paper_scale(intro, paper_lines):
    df = paper_lines("fig2")
    assert "The baseline loses plasticity steadily but does not collapse" in intro
    baseline = df[df.label == "baseline"]
    assert baseline.seed.nunique() == 5
    assert np.isnan(collapse_tasks(df, "baseline")).all()  # no seed collapses
    first, last = (per_seed(df, "baseline", last=None, tasks=tasks).mean() for tasks in (range(20), range(580, 600)))
    assert last < first - 0.05  # but it loses plasticity
    assert "The persistent state with n = 2 ends about where the baseline ends" in intro
    state = df[df.label == "persistent n=2"]
    assert state.seed.nunique() == 5 and np.isnan(collapse_tasks(df, "persistent n=2")).all()
    assert abs(per_seed(df, "persistent n=2").mean() - per_seed(df, "baseline").mean()) < SAME
    final = (
        df[df.task == 599]
        .assign(l2=lambda d: d.weight_norm * d.n_params)
        .groupby("label")[["weight_norm", "l2"]]
        .mean()
    )
    assert final.weight_norm["persistent n=2"] < final.weight_norm["baseline"]  # normalised: smaller
    assert "its plain L2 norm is the baseline's" in intro
    assert abs(final.l2["persistent n=2"] / final.l2["baseline"] - 1) < 0.05  # plain: the same
    assert "fig2.ipynb::state_extra_params_percent" in intro  # "the difference is its parameter count"
    n_params = df.groupby("label").n_params.first()
    extra = 100 * (n_params["persistent n=2"] / n_params["baseline"] - 1)
    assert glued("fig2")["state_extra_params_percent"] == pytest.approx(extra) and 20 < extra < 30
    first, last = (per_seed(df, "baseline", last=None, tasks=tasks).mean() for tasks in (range(20), range(580, 600)))
    assert (
        glued("fig2")["baseline_first"] == pytest.approx(first, abs=5e-4) and first > 0.9
    )  # "drifts from" (3 decimals)
    assert glued("fig2")["baseline_last"] == pytest.approx(last, abs=5e-4) and 0.75 < last < 0.85  # "... to"
    assert "continual backprop keeps its accuracy over all 600 tasks" in intro
    cbp = df[df.label == "CBP"]
    assert cbp.seed.nunique() == 5 and np.isnan(collapse_tasks(df, "CBP")).all()
    early, late = (per_seed(df, "CBP", last=None, tasks=tasks).mean() for tasks in (range(20, 120), range(500, 600)))
    assert late > early - 0.01 and late > per_seed(df, "baseline").mean() + 0.1


def test_the_books_figure_3_statement_holds_at_paper_scale(intro, paper_lines):
    df = paper_lines("fig3")
    assert df.groupby("label").seed.nunique().eq(5).all() and df.label.nunique() == 6
    assert "On Fashion-MNIST nothing collapses either" in intro
    assert all(np.isnan(collapse_tasks(df, label)).all() for label in df.label.unique())
    first, last = (per_seed(df, "baseline", last=None, tasks=tasks).mean() for tasks in (range(20), range(580, 600)))
    assert "The baseline's online accuracy falls from" in intro  # by 0.1: first and last 20 tasks (glued)
    assert 0.09 < first - last < 0.11
    states = [per_seed(df, f"persistent n={n}, d={d}").mean() for n in (1, 2) for d in (128, 256)]
    assert "every persistent state (n = 1 or 2, d_int = 128 or 256) ends with it" in intro  # within SAME
    assert max(states) - min(states) < SAME and abs(np.mean(states) - per_seed(df, "baseline").mean()) < SAME
    assert "continual backprop keeps" in intro and "throughout" in intro  # its first and last tasks agree
    cbp = [per_seed(df, "CBP", last=None, tasks=tasks).mean() for tasks in (range(20), range(500, 600))]
    assert abs(cbp[0] - cbp[1]) < 0.005


def test_the_books_figure_4_statement_holds_at_paper_scale(intro, paper_lines):
    df = paper_lines("fig4")
    assert "n = 1, 2 and 4 the state ends within {glue:text}`../notebooks/fig4.ipynb::late_spread" in intro
    late = {n: per_seed(df, f"persistent n={n}") for n in (1, 2, 4)}
    assert all(len(x) == 5 for x in late.values())
    means = [x.mean() for x in late.values()]
    assert glued("fig4")["late_spread"] == pytest.approx(max(means) - min(means))
    assert max(means) - min(means) < 0.005  # "makes no difference"
    assert "n = 4 is not worse than n = 2, unlike in the paper" in intro
    assert verdicts(figure_claims("fig4", df))["n = 4 is worse than n = 2"] == "✗"


def test_the_books_figure_5_statement_holds_at_paper_scale(intro, paper_lines):
    df = paper_lines("fig5")
    assert "Test accuracy ranks the learners as online accuracy does, on both data sets" in intro
    assert set(verdicts(figure_claims("fig5", df)).values()) == {"✓"}
    assert (
        "the baseline and the states it ranks end within {glue:text}`../notebooks/fig5.ipynb::ranked_late_gap" in intro
    )
    gaps = [np.ptp([per_seed(df, label).mean() for label in labels]) for _, _, (labels,) in CLAIMS["fig5"]]
    assert glued("fig5")["ranked_late_gap"] == pytest.approx(max(gaps)) and max(gaps) < 0.01  # "little order"


def test_the_books_figure_6_statement_holds_at_paper_scale(intro, paper_lines):
    df = paper_lines("fig6")
    assert "Both ablated states (frozen at zero; random with the learned norm) end within {glue:text}" in intro
    gaps = []
    for label in ("zero state n=2", "random state n=2"):
        assert df[df.label == label].seed.nunique() == 5
        gaps.append(abs(per_seed(df, label).mean() - per_seed(df, "baseline").mean()))
    assert glued("fig6")["ablation_late_gap"] == pytest.approx(max(gaps)) and max(gaps) < SAME  # "no gap"


def test_the_books_figure_7_statement_holds_at_paper_scale(intro, paper_lines, committed_store):
    from lopcore.papers.iqbal.figures import alone_runs
    from lopcore.study import stored_lines

    assert "On the alternating stream the state does worse than on Fashion-MNIST alone" in intro
    alternating = paper_lines("fig7")
    alone = stored_lines(alone_runs("paper", 5), "paper", committed_store)
    verdict = alternation_claims(alternating, alone).iloc[0]
    assert verdict.verdict == "✗" and "its Fashion-MNIST tasks average" in intro  # glued: alternating vs alone
    fashion = alternating.loc[alternating.dataset == "fashion_mnist", "task"].unique()
    a = per_seed(alternating, "persistent n=2", last=None, tasks=fashion).mean()
    b = per_seed(alone, "persistent n=2, d=256", last=None, tasks=range(len(fashion))).mean()
    assert b - a > 0.05  # "does worse"
    assert "fig7.ipynb::state_collapsed_seeds" in intro and "fig7.ipynb::state_collapse_first" in intro
    collapsed = np.array(collapse_tasks(alternating, "persistent n=2"))
    collapsed = collapsed[~np.isnan(collapsed)]
    page = glued("fig7")
    assert (page["state_collapsed_seeds"], page["state_seeds"]) == (len(collapsed), 5) and len(collapsed) > 0
    assert (page["state_collapse_first"], page["state_collapse_last"]) == (collapsed.min(), collapsed.max())
    assert "the baseline on the same stream ends above it" in intro
    assert per_seed(alternating, "baseline").mean() > per_seed(alternating, "persistent n=2").mean()


def test_the_books_cbp_rate_statement_holds_at_paper_scale(intro, paper_lines):
    from lopcore.papers.iqbal.figures import CBP_RATE

    df = paper_lines("cbp_sweep")
    assert df.seed.nunique() == 5 and df.label.nunique() == 3
    assert "picks 10⁻⁴ at the paper's scale too, the rate every figure uses" in intro
    assert choose_cbp_rate(df)[0] == CBP_RATE == 1e-4


def test_the_books_statements_on_the_papers_regime_hold_at_paper_scale(intro, committed_store):
    """book/intro.md, "The paper's regime": Figure 2's lines at lr 0.125 (600 tasks, 5 seeds)."""
    from lopcore.papers.iqbal.figures import stored_paper_lines

    df = stored_paper_lines("fig2", committed_store, regime="collapse")
    assert "Every line is in:" in intro and df.label.nunique() == 5  # every figure's: the paper-scale test
    assert df.groupby("label").seed.nunique().eq(5).all() and df.task.max() == 599
    assert "The baseline collapses as the paper reports" in intro and "regime_collapse_baseline_first" in intro
    baseline = collapse_by_seed(df, "baseline")
    page = glued("fig2")
    assert len(baseline) == 5 and (page["regime_collapse_baseline_first"], page["regime_collapse_baseline_last"]) == (
        baseline.min(),
        baseline.max(),
    )
    start = per_seed(df, "baseline", last=None, tasks=range(10)).mean()
    assert page["regime_start_baseline"] == pytest.approx(start) and start > 0.85  # "a good start"
    assert "The persistent state collapses with it" in intro and "neither prevents the collapse nor delays it" in intro
    state = collapse_by_seed(df, "persistent n=2")
    assert len(state) == 5 and (state < 600).all()  # every seed collapses
    mean, low, high, seeds = paired_collapse(df, "persistent n=2")
    assert seeds == 5 and mean <= 0 and low < 0 < high  # no later on average; the interval spans zero
    from lopcore.papers.dohare.figures import correlates_at
    from lopcore.study import failure_modes

    pair = df[df.label.isin(["baseline", "persistent n=2"])]
    late = correlates_at(pair, (0, 599), statistic="median").loc[599]
    assert "In both the effective rank falls to almost nothing" in intro
    assert late["effective_rank"].max() < 2  # of 100 units, from about 45 at the start
    modes = failure_modes(pair)
    assert "with most of its hidden units dead" in intro and "with fewer" in intro
    assert page["regime_dead_end_baseline"] == modes.loc["baseline", "dead % at end"] > 85
    assert page["regime_dead_end_n2"] == modes.loc["persistent n=2", "dead % at end"] < page["regime_dead_end_baseline"]
    # "in some seeds, a numerical failure instead": a divergence, or weights far beyond the baseline's
    assert page["regime_diverged_n2"] == modes.loc["persistent n=2", "n_diverged"] >= 1
    assert modes.loc["baseline", "n_diverged"] == 0
    assert page["regime_weight_max_n2"] == modes.loc["persistent n=2", "largest mean |W|"]
    assert page["regime_weight_max_n2"] > 10 * page["regime_weight_max_baseline"]


def test_the_books_statements_on_n1_and_cbp_in_the_papers_regime_hold_at_paper_scale(intro, committed_store):
    """book/intro.md, "The paper's regime": n = 1 collapses with the baseline (not much later, as the
    paper has it); continual backprop collapses in no seed, with few dead units and small weights."""
    from lopcore.papers.iqbal.figures import stored_paper_lines
    from lopcore.study import failure_modes

    df = stored_paper_lines("fig2", committed_store, regime="collapse")
    page = glued("fig2")
    assert "So does the state that never learns (n = 1)" in intro and "regime_minus_baseline_n1_low" in intro
    n1 = collapse_by_seed(df, "persistent n=1")
    assert len(n1) == 5 and (n1 < 600).all() and page["regime_collapse_n1"] == pytest.approx(n1.mean())
    mean, low, high, seeds = paired_collapse(df, "persistent n=1")
    assert seeds == 5 and low < 0 < high and abs(mean) < 10  # "not the much later collapse"
    assert round(mean, 1) == 0.2  # README: "0.2 tasks later on average"
    assert (page["regime_minus_baseline_n1_low"], page["regime_minus_baseline_n1_high"]) == pytest.approx((low, high))
    assert "Continual backprop does not collapse." in intro and "regime_minus_baseline_cbp:" in intro
    cbp = collapse_by_seed(df, "CBP")
    assert len(cbp) == 5 and (cbp == 600).all()  # none collapses: censored at 600
    mean, low, high, seeds = paired_collapse(df, "CBP")
    assert seeds == 5 and page["regime_minus_baseline_cbp"] == pytest.approx(mean) and low > 400
    modes = failure_modes(df[df.label.isin(["baseline", "CBP", "persistent n=1"])])
    assert page["regime_dead_end_n1"] == modes.loc["persistent n=1", "dead % at end"] > 85
    assert page["regime_dead_end_cbp"] == modes.loc["CBP", "dead % at end"] < 5  # "keeping its units alive"
    assert page["regime_weight_end_cbp"] == modes.loc["CBP", "mean |W| at end"]
    assert page["regime_weight_end_cbp"] < 0.25 * page["regime_weight_end_baseline"]  # "its weights small"
    assert page["regime_start_cbp"] > 0.85


def test_the_books_statements_on_the_state_with_cbp_and_the_zero_state_in_the_papers_regime_hold(
    intro, committed_store
):
    """book/intro.md, "The paper's regime": the state with CBP collapses in no seed, its units alive and
    its weights small; the zero-state ablation collapses with the baseline (no interval excludes zero)."""
    from lopcore.papers.iqbal.figures import stored_paper_lines
    from lopcore.study import failure_modes

    df = stored_paper_lines("fig2", committed_store, regime="collapse")
    page = glued("fig2")
    both = collapse_by_seed(df, "persistent n=2 + CBP")
    assert len(both) == 5 and (both == 600).all() and "regime_dead_end_n2_cbp" in intro
    modes = failure_modes(df[df.label.isin(["baseline", "persistent n=2 + CBP"])])
    assert page["regime_dead_end_n2_cbp"] == modes.loc["persistent n=2 + CBP", "dead % at end"] < 5
    assert page["regime_weight_end_n2_cbp"] == modes.loc["persistent n=2 + CBP", "mean |W| at end"]
    assert page["regime_weight_end_n2_cbp"] < 0.25 * page["regime_weight_end_baseline"]
    ablation = stored_paper_lines("fig6", committed_store, regime="collapse")
    assert "Both ablations collapse with both." in intro and "fig6.ipynb::regime_collapse_zero" in intro
    mean, low, high, seeds = paired_collapse(ablation, "random state n=2")
    assert seeds == 5 and low < 0 < high and glued("fig6")["regime_minus_baseline_random"] == pytest.approx(mean)
    zero = collapse_by_seed(ablation, "zero state n=2")
    assert len(zero) == 5 and (zero < 600).all()
    fig6 = glued("fig6")
    mean, low, high, seeds = paired_collapse(ablation, "zero state n=2")
    assert seeds == 5 and low < 0 < high and fig6["regime_minus_baseline_zero"] == pytest.approx(mean)
    assert fig6["regime_collapse_zero"] == pytest.approx(zero.mean())
    mean, low, high, _ = paired_collapse(ablation, "zero state n=2", than="persistent n=2")
    assert low < 0 < high  # nor does the learned state collapse later than its ablation


def test_the_books_statements_on_fashion_mnist_in_the_papers_regime_hold(intro, committed_store):
    """book/intro.md and the Fig. 3 page, "The paper's regime": on Fashion-MNIST at lr 0.125 every
    state line collapses earlier than the baseline, paired by seed (95% intervals below zero);
    n = 2, d = 256 diverges in most seeds, mostly before its collapse registers; continual backprop
    collapses in none of its seeds, its units alive."""
    from lopcore.papers.iqbal.figures import stored_paper_lines
    from lopcore.study import failure_modes

    df = stored_paper_lines("fig3", committed_store, regime="collapse")
    stored = set(df.label)
    assert len(stored) == 6  # "Every line is in"
    page = glued("fig3")
    baseline = collapse_by_seed(df, "baseline").mean()
    assert page["regime_collapse_baseline"] == pytest.approx(baseline) and baseline < 100  # earlier than MNIST's
    assert "every state line collapses earlier than the baseline" in intro
    assert round(baseline) == 44  # README: "the baseline collapses at task 44 on average"
    readme = {
        "persistent n=2, d=256": (-15.4, -29, -2),
        "persistent n=2, d=128": (-15.8, -25, -7),
        "persistent n=1, d=128": (-10.6,),
        "persistent n=1, d=256": (-10.6,),
    }
    for label in stored - {"baseline", "CBP"}:
        mean, low, high, seeds = paired_collapse(df, label)
        key = line_key(label)
        assert seeds == 5 and mean < 0 and high < 0, label  # earlier, the interval below zero
        assert page[f"regime_minus_baseline_{key}_high"] == pytest.approx(high)
        assert (round(mean, 1), round(low), round(high))[: len(readme[label])] == readme[label], label  # README
    modes = failure_modes(df)
    n2 = modes.loc["persistent n=2, d=256"]
    assert page["regime_diverged_n2_d256"] == n2.n_diverged == 4  # README: "in 4 of 5 seeds"
    assert modes.loc["baseline", "n_diverged"] == 0
    assert 2 * n2["diverged first"] > n2.n_diverged  # "in most of them before the sliding accuracy registers"
    assert page["regime_weight_max_baseline"] > 10  # "one of its seeds' weights grow to a mean |W| of" 76
    # continual backprop: "collapses in none of its five seeds", its units alive (README: 7% against 89%)
    assert np.isnan(collapse_tasks(df, "CBP")).all() and page["regime_minus_baseline_cbp_low"] > 0
    assert modes.loc["CBP", "n_diverged"] == 0
    assert (round(page["regime_dead_end_cbp"]), round(page["regime_dead_end_baseline"])) == (7, 89)
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "(7% of its units dead at the last task, against 89% for the baseline)" in readme
    # the settings' comparisons compare collapsed lines: the scoreboard says so
    verdicts = figure_claims("fig3", df).set_index("claim").evidence
    assert "an empty comparison" in verdicts["Fashion-MNIST: n = 2 beats n = 1 (d = 256)"]


def test_every_number_the_intro_pastes_is_glued_by_its_page():
    import re

    text = (REPO / "book" / "intro.md").read_text()
    used = re.findall(r"notebooks/(\w+)\.ipynb::(\w+):", text)
    used += [(page, key) for key, page in re.findall(r"\{glue:any\} (\w+)\n:doc: \.\./notebooks/(\w+)\.ipynb", text)]
    assert {page for page, _ in used} >= {"boundary", "fig3", "fig4", "fig7"}
    assert ("claims", "where_each_claim_holds") in used  # the table of where each claim holds
    for page in {page for page, _ in used}:
        assert {key for p, key in used if p == page} <= set(glued(page)), page


def test_pending_claims_are_listed_with_what_they_wait_for():
    df = labelled({"baseline": "falling", "persistent n=2": "steady"})
    table = figure_claims("fig2", df, pending=lambda absent: "waiting for " + ", ".join(sorted(absent)))
    assert len(table) == len(CLAIMS["fig2"])
    by_claim = table.set_index("claim")
    assert by_claim.loc["CBP keeps its plasticity (Dohare et al.)", "evidence"] == "waiting for CBP"
    assert (table.verdict == "pending").sum() == 2 and (table.verdict != "pending").sum() == 4


def test_the_stored_only_scoreboard_computes_nothing_and_marks_incomplete_lines_pending(scratch_store):
    from lopcore.engine import run
    from lopcore.papers.iqbal.figures import figure_runs

    tmp_path = scratch_store
    runs = figure_runs("fig2", "smoke", seeds=2)
    run([s for label, s in runs if label in ("baseline", "persistent n=2")], device="cpu", progress=False)
    run([s for label, s in runs if label == "CBP"][:1], device="cpu", progress=False)  # one of CBP's two seeds
    before = sorted(tmp_path.rglob("*.json"))
    board = scoreboard(scale="smoke", seeds=2, stored_only=True, device="cpu")
    assert sorted(tmp_path.rglob("*.json")) == before  # nothing computed
    fig2 = board[board.figure == "fig2"].set_index("claim")
    assert fig2.loc["Persistent state, n = 2: no collapse over the whole run", "verdict"] in ("✓", "✗")
    assert fig2.loc["CBP keeps its plasticity (Dohare et al.)", "verdict"] == "pending"
    assert fig2.loc["CBP keeps its plasticity (Dohare et al.)", "evidence"] == "waiting for CBP (1 of 2 runs stored)"
    assert (board[board.figure != "fig2"].verdict.isin(["pending", "✓", "✗"])).all()
    assert board[board.figure == "fig7"].evidence.str.startswith("waiting for persistent n=2 (0 of 2").all()
    assert (board.figure.value_counts()[["fig3", "fig4", "fig6"]] > 0).all()


def test_the_paper_scale_board_asks_for_five_seeds_per_line(scratch_store):  # an empty store: all pending
    board = scoreboard(scale="paper", stored_only=True, device="cpu")
    assert (board.verdict == "pending").all()
    assert board.evidence.str.contains(r"\(0 of 5 runs stored\)").all()


def test_where_a_claim_holds_reads_both_regimes_verdicts_and_waits_while_either_is_pending():
    from lopcore.papers.iqbal.claims import WHERE_IT_HOLDS, where_it_holds

    def board(*verdicts):
        return pd.DataFrame({"figure": "fig2", "claim": list("abcde"), "verdict": verdicts, "evidence": ""})

    where = where_it_holds(board("✓", "✓", "✗", "✗", "✓"), board("✓", "✗", "✓", "✗", "pending"))
    assert list(where) == ["both", "printed only", "paper's regime only", "neither", "pending"]
    assert set(where) <= set(WHERE_IT_HOLDS)


def test_the_where_table_lists_every_regimes_verdict_beside_where_the_claim_holds():
    from lopcore.papers.iqbal.claims import where_table

    def board(*verdicts):
        return pd.DataFrame({"figure": "fig2", "claim": list("abc"), "verdict": verdicts, "evidence": ""})

    boards = {"printed": ("✓", "✗", "✓"), "collapse": ("✗", "✗", "pending"), "standardized": ("✓", "pending", "✗")}
    table = where_table({regime: board(*verdicts) for regime, verdicts in boards.items()})
    assert list(table.columns) == ["printed", "collapse", "standardized", "holds"]
    assert list(table.holds) == ["printed only", "neither", "pending"]
    assert list(table.standardized) == ["✓", "pending", "✗"]  # a third regime is shown, not judged


def test_the_books_statements_on_the_truncation_period_in_the_papers_regime_hold(intro, committed_store):
    """The Fig. 4 page, "The paper's regime", and the intro: at lr 0.125 on Fashion-MNIST every truncation
    period collapses, no n moves the collapse against n = 2 (paired intervals include zero), n = 4
    collapses before Fig. 3's baseline (the same seeds and tasks), diverging in 4 of 5 seeds as n = 2
    does, and both of the figure's claims compare lines at chance."""
    from lopcore.papers.iqbal.figures import stored_paper_lines
    from lopcore.study import failure_modes

    df = stored_paper_lines("fig4", committed_store, regime="collapse")
    baseline = stored_paper_lines("fig3", committed_store, regime="collapse").query("label == 'baseline'")
    assert set(df.label) == {"persistent n=1", "persistent n=2", "persistent n=4"} and len(baseline)
    page = glued("fig4")
    for label in ("persistent n=1", "persistent n=4"):
        mean, low, high, seeds = paired_collapse(df, label, "persistent n=2")
        assert seeds == 5 and low < 0 < high, label  # "both intervals include zero"
        assert page[f"regime_minus_n2_{line_key(label)}_low"] == pytest.approx(low)
    both = pd.concat([baseline, df])
    for label in df.label.unique():
        assert paired_collapse(both, label)[2] < 0, label  # "all before the baseline's collapse"
    mean, low, high, _ = paired_collapse(both, "persistent n=4")
    assert page["regime_minus_baseline_n4_high"] == pytest.approx(high) and high < 0
    assert (round(mean, 1), round(low), round(high)) == (-12.4, -18, -6)
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "12.4 tasks before the baseline, paired by seed (95% interval -18 to -6)" in readme
    assert f"n = 4 collapses at task {collapse_by_seed(df, 'persistent n=4').mean():.1f} on average" in readme
    modes = failure_modes(df)
    assert modes.loc["persistent n=4", "n_diverged"] == modes.loc["persistent n=2", "n_diverged"] == 4
    assert page["regime_diverged_n4"] == 4 and (modes["collapsed"] == "5 of 5").all()
    evidence = figure_claims("fig4", df).evidence
    assert evidence.str.contains("an empty comparison").all()
    assert "every truncation period" in intro  # the intro's bullet


def test_a_comparison_of_lines_shows_only_once_every_line_is_in():
    from lopcore.study import lines_if_all_in

    df = stepping({"baseline": (40, 50), "persistent n=2": (60, 70), "CBP": (300, 300)})
    pair = lines_if_all_in(df, ["baseline", "persistent n=2"])
    assert set(pair.label) == {"baseline", "persistent n=2"} and len(pair) == 2 * len(df) // 3
    assert lines_if_all_in(df[df.label != "baseline"], ["baseline", "persistent n=2"]) is None
    assert lines_if_all_in(pd.DataFrame(), ["baseline"]) is None  # nothing stored yet


def test_the_paper_scale_pages_account_of_each_regime_holds(committed_store):
    """notebooks/paper_scale.md: every line of the printed protocol and of the paper's regime is stored;
    of the standardized reading, Figure 2's baseline and n = 2 (and the figures sharing them) only."""
    from lopcore.papers.iqbal.figures import paper_progress

    progress = paper_progress(committed_store)
    done = progress.seeds_stored == "5/5"
    assert done[progress.regime.isin(["printed", "collapse"])].all()
    standardized = progress[(progress.regime == "standardized") & done]
    assert set(standardized.label) == {"baseline", "persistent n=2", "MNIST · baseline", "MNIST · persistent n=2"}
    assert set(standardized.figure) == {"fig2", "fig5", "fig6"}
    text = " ".join((REPO / "notebooks" / "paper_scale.md").read_text().split())
    assert "Every line of the first two is stored. Of the standardized reading only Figure 2's baseline" in text


def test_the_books_statements_on_the_alternating_stream_in_the_papers_regime_hold(intro, committed_store):
    """The Fig. 7 page, "The paper's regime", the intro and the README: at lr 0.125 on the alternating
    stream both lines collapse in every seed, the state neither later nor earlier than the baseline
    (the paired interval includes zero); the alternation claim holds by its measure, but between two
    runs collapsed for almost all of the tasks it averages over."""
    from lopcore.papers.iqbal.claims import fashion_accuracies
    from lopcore.papers.iqbal.figures import stored_paper_lines
    from lopcore.study import failure_modes

    df = stored_paper_lines("fig7", committed_store, regime="collapse")
    assert set(df.label) == {"baseline", "persistent n=2"}
    page = glued("fig7")
    mean, low, high, seeds = paired_collapse(df, "persistent n=2")
    assert seeds == 5 and low < 0 < high  # "neither delays it ... nor brings it forward"
    assert page["regime_minus_baseline_n2_low"] == pytest.approx(low)
    for label in ("baseline", "persistent n=2"):
        tasks = collapse_tasks(df, label)
        assert not np.isnan(tasks).any() and max(tasks) < 100, label  # collapsed for ~5/6 of the run
    alone = stored_paper_lines("fig3", committed_store, regime="collapse")
    assert max(collapse_tasks(alone, "persistent n=2, d=256")) < 50  # alone: collapsed by task 50 of 300
    alternating, alone_mean, tasks = fashion_accuracies(df, "persistent n=2", alone, "persistent n=2, d=256")
    assert tasks == 300 and page["regime_alternating_fashion"] == pytest.approx(alternating)
    assert alternating >= alone_mean - SAME and max(alternating, alone_mean) < 0.2  # holds; both near chance
    assert alternation_claims(df, alone).verdict.iloc[0] == "✓"
    assert page["regime_diverged_n2"] == failure_modes(df).loc["persistent n=2", "n_diverged"]
    assert "On the alternating stream the state collapses with the baseline" in intro
    readme = " ".join((REPO / "README.md").read_text().split())
    base, state = (collapse_by_seed(df, x).mean() for x in ("baseline", "persistent n=2"))
    assert f"the baseline collapses at task {base:.1f} on average and the state (n = 2) at {state:.1f}" in readme
    assert f"{mean:.1f} tasks later paired by seed (95% interval {low:+.1f} to {high:+.1f})" in readme
    assert f"accuracy of {alternating:.3f} there against {alone_mean:.3f} on Fashion-MNIST alone" in readme
