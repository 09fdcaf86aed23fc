"""Dohare's permuted MNIST figure specs (lopcore/papers/dohare/figures.py), their claims and the engine
additions they need: the protocol's numbers at paper scale, validation, change-rate streams, the
τ-dormant correlate, and the store keys of Iqbal's results left unchanged."""

import numpy as np
import pandas as pd
import pytest
import torch

from lopcore import data
from lopcore.engine import correlates
from lopcore.learners import Backprop, ContinualBackprop
from lopcore.papers.dohare import claims as dohare_claims
from lopcore.papers.dohare import figures as dfig
from lopcore.papers.iqbal import figures
from lopcore.params import ParameterError
from lopcore.spec import RunSpec
from lopcore.store import REPO_ROOT, Store, spec_key
from lopcore.tasks import PermutedStream


def by_label(figure, scale="paper", seeds=1, **options):
    return dict(dfig.figure_runs(figure, scale, seeds, **options))


# --- the protocol at paper scale -------------------------------------------------------------------


def test_paper_scale_step_size_study_is_the_thesis_protocol():
    runs = by_label("dfig_stepsize")
    assert {s.learner.lr for s in runs.values()} == {0.01, 0.003, 0.001}
    for spec in runs.values():
        learner, stream = spec.learner, spec.stream
        assert type(learner) is Backprop and learner.hidden == (2000, 2000, 2000) and learner.init == "kaiming"
        assert learner.optimizer == "sgd" and not (learner.weight_decay or learner.shrink or learner.dropout)
        assert stream.batch_size == 1 and stream.datasets == ("mnist",)
        assert spec.n_tasks == 800 and stream.examples_per_task == 60000
        assert spec.probe_examples == 2000 and spec.dormant_tau == dfig.DORMANT_TAU
    assert by_label("dfig_correlates").keys() == runs.keys()  # Figs. 4.5-4.7 read Fig. 4.2's runs


def test_paper_scale_width_and_change_rate_studies():
    widths = by_label("dfig_width")
    assert {s.learner.hidden for s in widths.values()} == {(100,) * 3, (1000,) * 3, (10000,) * 3}
    assert {(s.n_tasks, s.stream.examples_per_task, s.learner.lr) for s in widths.values()} == {(150, 60000, 0.003)}
    rates = by_label("dfig_changerate")
    assert sorted(s.stream.examples_per_task for s in rates.values()) == [10_000, 100_000, 1_000_000]
    assert {s.n_tasks * s.stream.examples_per_task for s in rates.values()} == {48_000_000}
    assert {s.learner.hidden for s in rates.values()} == {(2000,) * 3}
    assert {s.stream.batch_size for s in [*widths.values(), *rates.values()]} == {1}


def test_paper_scale_methods_and_their_settings():
    runs = {label: s.learner for label, s in by_label("dfig_methods").items()}
    assert list(runs) == ["backprop", "L2", "Shrink & Perturb", "Dropout", "online norm", "Adam", "CBP"]
    assert all(x.hidden == (2000,) * 3 and x.init == "kaiming" for x in runs.values())
    assert {label: x.lr for label, x in runs.items() if x.lr != 0.003} == {"Adam": 1e-4}
    assert runs["L2"].weight_decay == 1e-4 and (
        runs["Shrink & Perturb"].shrink,
        runs["Shrink & Perturb"].noise_std,
    ) == (1e-4, 1e-5)
    assert runs["Dropout"].dropout == 0.1 and runs["online norm"].online_norm and runs["Adam"].optimizer == "adam"
    assert type(runs["CBP"]) is ContinualBackprop and runs["CBP"].replacement_rate == 1e-4
    assert (runs["CBP"].decay, runs["CBP"].maturity) == (0.99, 100)
    # backprop at 0.003 is one run, shared by the step-size, width (2000 wide), change-rate and methods figures
    assert by_label("dfig_methods")["backprop"] == by_label("dfig_stepsize")["backprop α=0.003"]


def test_small_scale_shares_runs_between_figures():
    """The small scale's width study and change-rate study each include the main run (width 100,
    2500-example tasks), which is therefore computed once."""
    main = by_label("dfig_stepsize", "small")["backprop α=0.003"]
    assert by_label("dfig_width", "small")["width 100"] == main
    assert by_label("dfig_changerate", "small")["change every 2,500"] == main
    assert main.learner.hidden == (100,) * 3 and main.stream.batch_size == 1


# --- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "figure, options, message",
    [
        ("dfig_nope", {}, "'dfig_stepsize', 'dfig_width'"),
        ("dfig_stepsize", {"step_sizes": 0}, "step_sizes=0 is not valid"),
        ("dfig_stepsize", {"step_sizes": [0.01, 2.0]}, "step_sizes=[0.01, 2.0] is not valid"),
        ("dfig_width", {"widths": [0]}, "widths=[0] is not valid"),
        ("dfig_changerate", {"change_every": [10**9]}, "at most the 48000000 examples"),
        ("dfig_methods", {"methods": ["backprop", "EWC"]}, "'backprop', 'L2', 'Shrink & Perturb'"),
        ("dfig_methods", {"methods": []}, "methods=[] is not valid"),
    ],
)
def test_bad_parameters_name_the_valid_choices(figure, options, message):
    with pytest.raises(ParameterError, match=message.replace("[", r"\[").replace("]", r"\]")):
        dfig.figure_runs(figure, "paper", 1, **options)


def test_bad_scale_seeds_and_device_name_the_valid_choices():
    with pytest.raises(ParameterError, match="'paper', 'small', 'smoke'"):
        dfig.figure_runs("dfig_width", "huge")
    with pytest.raises(ParameterError, match="seeds=0 is not valid"):
        dfig.figure_runs("dfig_width", "smoke", seeds=0)
    with pytest.raises(ParameterError, match="'auto', 'cpu', 'cuda'"):
        dfig.load_figure("dfig_width", "smoke", seeds=1, device="tpu")


def test_dormant_tau_is_validated():
    with pytest.raises(ValueError, match="dormant_tau=1.5 is not valid"):
        RunSpec(Backprop(), dormant_tau=1.5)


# --- change-rate streams ---------------------------------------------------------------------------


def test_a_task_longer_than_the_training_set_is_fresh_passes_under_one_permutation():
    long, short = PermutedStream(examples_per_task=130_000, batch_size=1), PermutedStream(batch_size=1)
    task = long.task([4], 2)
    order = task.order[0]
    assert order.shape == (130_000,)
    for start in (0, 60_000):  # each full pass is a permutation of the training set ...
        assert sorted(order[start : start + 60_000].tolist()) == list(range(60_000))
    assert len(set(order[120_000:].tolist())) == 10_000  # ... and the partial last pass has no repeats
    assert not torch.equal(order[:60_000], order[60_000:120_000])  # a fresh shuffle each pass
    # the first pass is the order a one-pass task has: shorter tasks' numbers are unchanged
    assert torch.equal(order[:60_000], short.task([4], 2).order[0])
    assert torch.equal(task.permutation, short.task([4], 2).permutation)


def test_change_rate_streams_switch_permutation_every_interval():
    """Walk each smoke-scale change-rate run's stream as the engine does (batch 1): the permutation
    changes exactly at multiples of the interval, and every run sees the same number of examples."""
    mnist = {"mnist": data.load("mnist")}
    runs = by_label("dfig_changerate", "smoke")
    for label, spec in runs.items():
        every, stream = spec.stream.examples_per_task, spec.stream
        switches, seen, previous = [], 0, None
        for k in range(spec.n_tasks):
            task = stream.new_task([spec.seed], k, mnist)
            if previous is not None and not torch.equal(task.permutation, previous):
                switches.append(seen)
            previous = task.permutation
            for x, _ in stream.train_batches(mnist, task):
                assert x.shape == (1, 1, 784)
                seen += 1
        assert seen == dfig.SCALES["smoke"].change_examples, label
        assert switches == list(range(every, seen, every)), label


# --- correlates ------------------------------------------------------------------------------------


def test_dormant_fraction_is_recorded_only_when_asked_and_keys_stay_put():
    spec = RunSpec(Backprop())
    assert "dormant_tau" not in spec.to_dict()
    with_tau = RunSpec(Backprop(), dormant_tau=0.1)
    assert with_tau.to_dict()["dormant_tau"] == 0.1 and spec_key(with_tau.to_dict()) != spec_key(spec.to_dict())
    learner = Backprop(hidden=(6, 5))
    state = learner.init_state([0, 1], 784, 10, torch.device("cpu"))
    mnist = data.load("mnist")
    task = PermutedStream().task([0, 1], 0)
    plain = correlates(learner, state, mnist, task, 50)
    assert not any(k.startswith("dormant") for k in plain)
    found = correlates(learner, state, mnist, task, 50, dormant_tau=0.1)
    assert {k for k in found if k.startswith("dormant")} == {"dormant_fraction_l1", "dormant_fraction_l2"}
    assert all(torch.equal(found[k], plain[k]) for k in plain)  # the other correlates are untouched


def test_iqbal_store_keys_are_unchanged_and_their_committed_results_found():
    """Iqbal's specs carry no dormant τ, so their keys, and the committed small-scale files, still match."""
    runs = figures.figure_runs("fig2", "small", figures.DEFAULT_SEEDS["fig2"])
    assert all("dormant_tau" not in s.to_dict() for _, s in runs)
    seed0 = next(s for label, s in runs if label == "baseline" and s.seed == 0)
    assert spec_key(seed0.to_dict()) == "bd121eb97b20732eed69"  # pinned before these changes
    store = Store(REPO_ROOT / "results")
    assert all(s.to_dict() in store for _, s in runs)


def test_network_correlates_normalise_by_the_architecture():
    df = pd.DataFrame(
        {
            "hidden": ["100x100x100"] * 2,
            "probe_examples": [2000, 50],
            "examples_per_task": [2500, 50],
            "task": [0, 3],
            **{f"dead_fraction_l{i}": [0.1 * i, 0.0] for i in (1, 2, 3)},
            **{f"dormant_fraction_l{i}": [0.2, 0.5] for i in (1, 2, 3)},
            **{f"effective_rank_l{i}": [10.0 * i, 25.0] for i in (1, 2, 3)},
            **{f"stable_rank_l{i}": [50.0, 40.0] for i in (1, 2, 3)},
        }
    )
    out = dfig.network_correlates(df)
    assert np.allclose(out.dead_percent, [20.0, 0.0]) and np.allclose(out.dormant_percent, [20.0, 50.0])
    assert np.allclose(out.effective_rank, [20.0, 25.0])
    assert np.allclose(out.erank_fraction, [20 / 100, 25 / 50])  # at most min(units, probe images)
    assert np.allclose(out.srank_fraction, [50 / 100, 40 / 50])
    assert out.examples_seen.tolist() == [2500, 200]


# --- claims ----------------------------------------------------------------------------------------


def synthetic(curves: dict[str, list[float]], seeds: int = 2, column: str = "online_accuracy") -> pd.DataFrame:
    rows = [
        {"label": label, "run": f"{label}-{s}", "seed": s, "task": t, column: v + 0.001 * s}
        for label, values in curves.items()
        for s in range(seeds)
        for t, v in enumerate(values)
    ]
    return pd.DataFrame(rows)


def test_loss_of_plasticity_predicate_can_hold_and_fail():
    rising_then_falling = list(np.linspace(0.8, 0.9, 10)) + list(np.linspace(0.9, 0.8, 30))
    df = synthetic({"falls": rising_then_falling, "flat": [0.9] * 40})
    assert dohare_claims.loses_plasticity(df, "falls")[0]
    assert not dohare_claims.loses_plasticity(df, "flat")[0]
    assert dohare_claims.rises_first(df, "falls")[0] and not dohare_claims.rises_first(df, "flat")[0]
    assert dohare_claims.drops_in_order(df, ("falls", "flat"))[0]
    assert not dohare_claims.drops_in_order(df, ("flat", "falls"))[0]


def test_trend_predicates_need_every_seed():
    df = synthetic({"up": list(np.linspace(1, 5, 20)), "down": list(np.linspace(5, 1, 20))}, column="dead_percent")
    assert dohare_claims.rises(df, ("up",), column="dead_percent")[0]
    assert not dohare_claims.rises(df, ("up", "down"), column="dead_percent")[0]
    assert dohare_claims.falls(df, ("down",), column="dead_percent")[0]


def test_smoke_figures_evaluate_every_claim(scratch_store):
    store = Store(scratch_store / "results")
    expected = {"dfig_stepsize": 7, "dfig_width": 4, "dfig_changerate": 4, "dfig_correlates": 6, "dfig_methods": 17}
    for figure, n_claims in expected.items():
        df = dfig.load_figure(figure, "smoke", seeds=1, device="cpu", store=store, progress=False)
        verdict = dohare_claims.figure_claims(figure, df)
        assert len(verdict) == n_claims and set(verdict.verdict) <= {"✓", "✗"}, figure
        assert len(dohare_claims.summary(df)) == df.label.nunique()
    # a subset of methods evaluates only the claims its learners allow
    df = dfig.load_figure(
        "dfig_methods", "smoke", seeds=1, device="cpu", store=store, progress=False, methods=["backprop", "CBP"]
    )
    assert len(dohare_claims.figure_claims("dfig_methods", df)) == 4  # CBP: no drop, best, few dead; rank falls


# --- the book page and the command line ---------------------------------------------------------------


def test_the_book_page_quotes_the_comparison_tables_as_they_are(monkeypatch):
    """book/dohare_correlates.md quotes tables computed from the committed small-scale results."""
    monkeypatch.setenv("LOPCORE_NO_COMPUTE", "1")
    monkeypatch.delenv("LOPCORE_RESULTS", raising=False)
    page = (REPO_ROOT / "book" / "dohare_correlates.md").read_text()
    tables = dfig.comparison_tables("small", device="cpu")
    for name, table in tables.items():
        assert table in page, (
            f"the {name} table of book/dohare_correlates.md is stale; regenerate it with "
            f"lopcore.papers.dohare.figures.comparison_tables():\n{table}"
        )


def test_the_command_line_runs_dohare_figures(scratch_store, capsys):
    from argparse import Namespace

    from lopcore import cli

    assert cli.figure_options("dfig_width", Namespace(hidden=[8, 16])) == {"widths": [8, 16]}
    assert cli.figure_options("dfig_methods", Namespace(methods=["CBP"])) == {"methods": "CBP"}
    with pytest.raises(cli.UsageError, match="--n does not apply to figure 'dfig_width'; its options: --hidden"):
        cli.figure_options("dfig_width", Namespace(n=[2]))
    assert (
        cli.main(["run", "dfig_methods", "--scale", "smoke", "--seeds", "1", "--methods", "backprop", "CBP", "--quiet"])
        == 0
    )
    out = capsys.readouterr().out
    assert "CBP" in out and "dead %, late" in out and "Adam" not in out


@pytest.mark.parametrize("largest, scale", [(0.3, "linear"), (4e8, "log")])
def test_the_weight_panel_turns_logarithmic_where_a_seed_explodes(largest, scale):
    import matplotlib.pyplot as plt

    from lopcore.papers.dohare.plotting import correlate_panels

    task = np.arange(40)
    df = pd.concat(
        [
            pd.DataFrame(
                {
                    "label": label,
                    "seed": seed,
                    "run": f"{label}-{seed}",
                    "task": task,
                    "online_accuracy": 0.8,
                    "dead_percent": 10.0,
                    "mean_abs_weight": np.where((seed == 1) & (task > 20), largest, 0.05 + 0.001 * task),
                    "effective_rank": 30.0,
                    "stable_rank": 60.0,
                }
            )
            for label in ("baseline", "persistent n=2")
            for seed in (0, 1)
        ]
    )
    fig = correlate_panels(df)
    (weights,) = [ax for ax in fig.axes if ax.get_ylabel().startswith("mean weight magnitude")]
    assert weights.get_yscale() == scale
    plt.close(fig)
