"""The collapse boundary: the protocol readings (input scaling, early stop), the summed-loss
equivalence, the collapse-task statistic and the boundary claims."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from lopcore import data, params, study
from lopcore.engine import run, run_group
from lopcore.learners import Backprop
from lopcore.papers.iqbal import boundary, figures
from lopcore.params import ParameterError
from lopcore.spec import AT_CHANCE_BELOW, RunSpec, chance_stops
from lopcore.store import Store, spec_key
from lopcore.tasks import STANDARDIZE, PermutedStream, gather_examples

CPU = torch.device("cpu")


# --- input scaling --------------------------------------------------------------------------------


def test_unit_inputs_keep_the_store_key_and_standardized_inputs_change_it():
    unit = RunSpec(learner=Backprop(), stream=PermutedStream()).to_dict()
    assert unit["stream"] == {"datasets": ["mnist"], "examples_per_task": 60000, "batch_size": 8}
    standardized = RunSpec(learner=Backprop(), stream=PermutedStream(inputs="standardized")).to_dict()
    assert standardized["stream"]["inputs"] == "standardized" and spec_key(standardized) != spec_key(unit)


def test_a_bad_input_scaling_names_the_option_and_the_choices():
    with pytest.raises(ValueError, match=r"inputs='z' is not valid; choose one of: 'unit', 'standardized'"):
        PermutedStream(inputs="z")


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_standardized_inputs_are_the_unit_inputs_shifted_and_scaled(name):
    source = data.load(name)
    unit, std = PermutedStream(datasets=(name,)), PermutedStream(datasets=(name,), inputs="standardized")
    x_unit = gather_examples(source, unit.task([1], 0), 0, 50)[0]
    x_std = gather_examples(source, std.task([1], 0), 0, 50)[0]
    mean, sd = STANDARDIZE[name]
    torch.testing.assert_close(x_std, (x_unit - mean) / sd)


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_the_standardization_constants_are_the_training_pixels_mean_and_std(name):
    pixels = data.load(name).train_x.double() / 255
    mean, sd = STANDARDIZE[name]
    assert abs(pixels.mean().item() - mean) < 5e-4 and abs(pixels.std().item() - sd) < 5e-4


# --- summed loss = mean loss at lr x batch ---------------------------------------------------------


def test_the_summed_loss_at_lr_is_the_mean_loss_at_lr_times_batch():
    torch.manual_seed(0)
    batch, lr = 8, 0.05
    learner = Backprop(lr=lr * batch, hidden=(16, 16))
    state = learner.init_state([0], 784, 10, CPU)
    params = [p[0].clone().requires_grad_() for pair in zip(state["weights"], state["biases"]) for p in pair]
    for _ in range(3):
        x, y = torch.rand(1, batch, 784), torch.randint(0, 10, (1, batch))
        h = x[0]
        for i in range(0, len(params) - 2, 2):
            h = torch.relu(h @ params[i] + params[i + 1])
        loss = torch.nn.functional.cross_entropy(h @ params[-2] + params[-1], y[0], reduction="sum")
        grads = torch.autograd.grad(loss, params)
        with torch.no_grad():
            for p, g in zip(params, grads):
                p -= lr * g  # plain SGD on the summed loss, at the printed rate
        learner.step(state, x, y)  # the mean loss at lr x batch
    ours = [p[0] for pair in zip(state["weights"], state["biases"]) for p in pair]
    for a, b in zip(ours, params):
        torch.testing.assert_close(a, b.detach().reshape(a.shape), rtol=1e-4, atol=1e-5)


# --- early stop at chance --------------------------------------------------------------------------


def test_chance_stops_finds_the_end_of_each_runs_first_streak():
    low, high = AT_CHANCE_BELOW / 2, 0.9
    acc = torch.tensor(
        [[high, low, low, low, high, low], [high, high, low, high, low, low], [low, low, high, high, high, high]],
        dtype=torch.float64,
    )
    assert chance_stops(acc, 3) == [3, None, None]
    assert chance_stops(acc, 2) == [2, 5, 1]
    assert chance_stops(acc, None) == [None, None, None]
    assert chance_stops(acc[:, :2], 3) == [None, None, None]  # not enough tasks yet


def test_a_bad_stop_at_chance_is_named():
    with pytest.raises(ValueError, match=r"stop_at_chance=0 is not valid; give None or an integer >= 1"):
        RunSpec(learner=Backprop(), stop_at_chance=0)


def collapsing_specs(seeds, stop=2):
    """A step size far too large: the runs sit at chance from their first tasks."""
    stream = PermutedStream(examples_per_task=480, batch_size=8)
    return [
        RunSpec(
            learner=Backprop(lr=3.0),
            stream=stream,
            n_tasks=8,
            test_examples=200,
            probe_examples=64,
            seed=s,
            stop_at_chance=stop,
        )
        for s in seeds
    ]


def test_a_run_at_chance_stops_early_and_its_frame_says_so(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        df = run(collapsing_specs([0, 1]), device="cpu", store=Store(tmp_path), progress=False)
    for _, g in df.groupby("seed"):
        assert len(g) < 8 and g["stopped_early"].all()
        assert (g["online_accuracy"].iloc[-2:] < AT_CHANCE_BELOW).all()
    assert spec_key(collapsing_specs([0], stop=None)[0].to_dict()) != spec_key(collapsing_specs([0])[0].to_dict())
    assert "stop_at_chance" not in collapsing_specs([0], stop=None)[0].to_dict()


def test_where_a_run_stops_does_not_depend_on_its_group_mates():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone, _, _ = run_group(collapsing_specs([1]), CPU, progress=False)
        together, _, _ = run_group(collapsing_specs([0, 1, 2], stop=3), CPU, progress=False)
        again, _, _ = run_group(collapsing_specs([1], stop=3), CPU, progress=False)
    # its own stop, whatever its mates do (values to float tolerance: with several threads a group's
    # batched products may round differently from a single run's)
    assert together[1]["task"] == again[0]["task"] and alone[0]["task"] != again[0]["task"]
    assert together[1].keys() == again[0].keys()
    for key, value in again[0].items():  # every recorded column, not only the accuracy
        if isinstance(value, list) and value and isinstance(value[0], float):
            assert np.allclose(together[1][key], value, rtol=1e-3, equal_nan=True), key
        else:
            assert together[1][key] == value, key
    assert len(alone[0]["task"]) < len(again[0]["task"])


# --- figure specs ----------------------------------------------------------------------------------


def test_lines_at_a_regimes_step_size_are_the_figures_runs_and_the_others_stop_at_chance():
    def keys(figure):
        return {spec_key(s.to_dict()) for r in figures.REGIMES for _, s in figures.figure_runs(figure, "paper", 5, r)}

    fig2, fig3 = keys("fig2"), keys("fig3")
    for dataset, reused in (("mnist", fig2), ("fashion_mnist", fig3)):
        for label, spec in boundary.figure_runs("boundary", "paper", dataset=dataset):
            if label.endswith(("lr=0.05", "lr=0.125")):
                assert spec_key(spec.to_dict()) in reused and spec.stop_at_chance is None
            else:
                assert (spec.n_tasks, spec.stop_at_chance) == (300, boundary.STOP_AT_CHANCE)
                assert spec.stream.examples_per_task == 60000 and spec.stream.batch_size == 8
    readings = dict(boundary.figure_runs("sensitivity", "paper", 1))
    assert readings["standardized inputs, lr=0.05"].stream.inputs == "standardized"
    assert readings["Kaiming init, lr=0.15"].learner.init == "kaiming"
    assert readings["Kaiming init, lr=0.05"].stop_at_chance == boundary.STOP_AT_CHANCE  # not a printed line


@pytest.mark.parametrize(
    "options, message",
    [
        ({"dataset": "cifar"}, r"dataset='cifar' is not valid; choose one of: 'mnist', 'fashion_mnist'"),
        ({"learners": ["adam"]}, r"learners=\['adam'\] is not valid; give one or a list of: 'baseline'"),
        ({"lrs": [-1]}, r"lrs=\[-1\] is not valid"),
    ],
)
def test_bad_boundary_options_are_named(options, message):
    with pytest.raises(ParameterError, match=message):
        boundary.figure_runs("boundary", "paper", **options)


# --- the collapse statistic and the claims ---------------------------------------------------------


def synthetic(
    lines: dict[tuple[str, float], list[int | None]], horizon: int = 300, start: float = 0.9, dataset: str = "mnist"
) -> pd.DataFrame:
    """A frame of runs on `dataset` whose online accuracy is `start` until its collapse task's
    window, then 0.1 (None: never), one run per (learner, lr) and seed."""
    rows = []
    for (name, lr), collapses in lines.items():
        for seed, c in enumerate(collapses):
            acc = np.full(horizon, start)
            if c is not None:
                acc[c:] = 0.1
            rows.append(
                pd.DataFrame(
                    {
                        "task": range(horizon),
                        "online_accuracy": acc,
                        "lr": lr,
                        "seed": seed,
                        "label": f"{name} · lr={lr:g}",
                        "run": f"{name}{lr}{seed}",
                        "learner_name": name,
                        "reading": "printed",
                        "stopped_early": False,
                        "dataset": dataset,
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def test_labels_name_their_learner_and_step_size():
    labels = ["persistent n=2 + CBP · lr=0.125", "CBP · lr=0.3", "Kaiming init, lr=0.15", "lr=0.05"]
    assert list(boundary.learner_of(labels)) == ["persistent n=2 + CBP", "CBP", "baseline", "baseline"]
    assert list(boundary.rate_of(labels)) == [0.125, 0.3, 0.15, 0.05]
    assert boundary.learner_of(boundary.boundary()).tolist() == [  # every label boundary() makes
        name for name, lrs in boundary.GRID["mnist"].items() for _ in lrs
    ]


def test_per_run_collapse_tasks_are_the_sliding_means_first_crossing():
    runs = boundary.per_run(synthetic({("baseline", 0.2): [40, 100, None]}))
    # the 20-task trailing mean of 0.9 then 0.1 crosses 0.5 once 10 of its 20 tasks are 0.1
    assert runs.collapse.tolist()[:2] == [49.0, 109.0] and math.isnan(runs.collapse.iloc[2])
    assert runs.censored.tolist() == [49.0, 109.0, 300.0]
    table = boundary.collapse_by_rate(runs)
    row = table.loc["baseline · lr=0.2"]
    assert (row["collapsed"], row["median"], row["mean"]) == ("2 of 3", 109.0, round((49 + 109 + 300) / 3, 1))


def test_failure_modes_tell_a_divergence_from_a_collapse_with_dead_units():
    df = synthetic({("persistent n=2", 0.2): [40, 100, None]})
    df = df.assign(
        diverged=(df.seed == 0) & (df.task >= 30),  # seed 0: non-finite from task 30, before its collapse
        mean_abs_weight=np.where(df.seed == 1, 0.5, 0.1),
        **{c: np.where(df.seed == 1, 0.9, 0.0) for c in study.DEAD_COLUMNS},
    )
    df.loc[df.diverged, ["mean_abs_weight", *study.DEAD_COLUMNS]] = np.nan
    row = study.failure_modes(df).loc["persistent n=2 · lr=0.2"]
    assert (row.collapsed, row.diverged, row["diverged at task"], row["diverged first"]) == (
        "2 of 3",
        "1 of 3",
        "30",
        1,
    )
    # the medians are over the two seeds that did not diverge: 90% and 0% dead, |W| 0.5 and 0.1
    assert (row["dead % at end"], row["mean |W| at end"], row["largest mean |W|"]) == (45.0, 0.3, 0.5)


def test_before_divergence_reads_the_tasks_before_each_runs_first_non_finite_one():
    df = synthetic({("CBP", 0.3): [None, None]})
    df = df.assign(
        diverged=(df.seed == 1) & (df.task >= 20),
        mean_abs_weight=0.1 + 0.01 * df.task,  # grows: the largest before task 20 is task 19's
        **{c: 0.0 for c in study.DEAD_COLUMNS},
    )
    df.loc[(df.seed == 1) & (df.task == 16), "online_accuracy"] = 0.4  # inside the window of 5
    df.loc[(df.seed == 1) & (df.task == 14), "online_accuracy"] = 0.2  # outside it
    rows = study.before_divergence(df, tasks=5)
    assert len(rows) == 1  # seed 0 never diverged
    row = rows.iloc[0]
    assert (row.seed, row["diverged at task"], row["lowest accuracy"]) == (1, 20, 0.4)
    assert row["largest mean |W|"] == pytest.approx(0.29) and row["most dead %"] == 0.0
    assert study.before_divergence(df[df.seed == 0]).empty


def test_mean_ci_is_students_t_over_the_values():
    mean, low, high = study.mean_ci(np.array([1.0, 2.0, 3.0]))
    assert mean == 2.0 and high - mean == pytest.approx(4.303 * 1.0 / math.sqrt(3), rel=1e-6)
    assert math.isnan(study.mean_ci(np.array([5.0]))[1])


def test_the_premise_needs_a_good_start_and_a_collapse_by_task_200():
    late = synthetic({("baseline", 0.1): [None] * 3, ("baseline", 0.2): [150, 180, 260]})
    holds, evidence = boundary.premise(boundary.per_run(late))
    assert holds and "premise at lr = 0.2" in evidence
    early = synthetic({("baseline", 0.2): [250, 260, None]})
    assert not boundary.premise(boundary.per_run(early))[0]
    bad_start = synthetic({("baseline", 0.3): [0, 2, 3]})
    assert not boundary.premise(boundary.per_run(bad_start))[0]


@pytest.mark.parametrize("dataset, good", [("mnist", False), ("fashion_mnist", True)])
def test_a_good_start_is_judged_against_the_runs_data_set(dataset, good):
    """0.8 is a poor start on MNIST but a good one on the harder Fashion-MNIST."""
    runs = boundary.per_run(synthetic({("baseline", 0.1): [90, 100, 110]}, start=0.8, dataset=dataset))
    assert boundary.premise(runs)[0] is good and (boundary.paper_regime(runs) == [0.1]) is good


def test_the_good_start_thresholds_sit_equally_far_below_each_printed_start():
    """GOOD_START's rationale: 0.07 below the stored printed-rate baseline's start on each data set."""
    for dataset in boundary.GOOD_START:
        df, progress = boundary.page_data("boundary", "paper", dataset=dataset, learners="baseline", lrs="0.05")
        assert progress.complete.all()
        start = boundary.per_run(df).start.mean()
        assert start - boundary.GOOD_START[dataset] == pytest.approx(0.07, abs=0.005), dataset


def test_the_papers_regime_needs_a_good_start_and_a_median_collapse_in_100_to_200():
    runs = boundary.per_run(
        synthetic(
            {("baseline", 0.1): [150, 250, None], ("baseline", 0.2): [120, 130, 190], ("baseline", 0.3): [50] * 3}
        )
    )
    assert boundary.paper_regime(runs) == [0.2]  # 0.1: median 250; 0.3: too early


def test_the_stored_sensitivity_map_picks_the_regime_the_figures_use():
    """Of the stored grid points (the whole grid once every line is in), only the figures' regime."""
    df, progress = boundary.page_data("sensitivity", "paper", readings=False)
    assert progress.set_index("line").loc[f"lr={figures.REGIMES['collapse']:g}", "complete"]
    assert boundary.paper_regime(boundary.per_run(df)) == [figures.REGIMES["collapse"]]


def test_later_everywhere_pairs_seeds_and_needs_every_collapsing_rate():
    base = {("baseline", 0.1): [None] * 3, ("baseline", 0.2): [100, 120, 140], ("baseline", 0.3): [10, 12, 14]}
    later = synthetic(
        {
            **base,
            ("persistent n=2", 0.1): [None] * 3,
            ("persistent n=2", 0.2): [150, 175, 190],
            ("persistent n=2", 0.3): [40, 45, 47],
        }
    )
    holds, evidence = boundary.collapses_later_everywhere(boundary.per_run(later), "persistent n=2")
    assert holds and "lr=0.1" not in evidence and "lr=0.2: +52" in evidence  # 0.1: the baseline never collapses
    mixed = synthetic({**base, ("persistent n=2", 0.2): [150, 175, 190], ("persistent n=2", 0.3): [10, 12, 14]})
    assert not boundary.collapses_later_everywhere(boundary.per_run(mixed), "persistent n=2")[0]
    never = synthetic({("baseline", 0.1): [None] * 3, ("persistent n=2", 0.1): [None] * 3})
    assert not boundary.collapses_later_everywhere(boundary.per_run(never), "persistent n=2")[0]


def test_collapses_nowhere_lists_where_it_does():
    ok = synthetic({("CBP", 0.1): [None] * 3, ("CBP", 0.3): [None] * 3})
    assert boundary.collapses_nowhere(boundary.per_run(ok), "CBP")[0]
    bad = synthetic({("CBP", 0.1): [None] * 3, ("CBP", 0.3): [None, 30, None]})
    holds, evidence = boundary.collapses_nowhere(boundary.per_run(bad), "CBP")
    assert not holds and "lr=0.3: 39" in evidence


def test_a_nowhere_claim_is_refuted_by_one_stored_run_and_never_confirmed_early(monkeypatch):
    collapsed = synthetic({("CBP", 0.1): [None] * 3, ("CBP", 0.3): [None, 30, None]})
    healthy = synthetic({("CBP", 0.1): [None] * 3, ("CBP", 0.3): [None] * 3})
    for df, verdicts in ((collapsed, "✗"), (healthy, "pending")):
        progress = pd.DataFrame(
            {
                "line": ["CBP · lr=0.1", "CBP · lr=0.3", "CBP · lr=0.2", "baseline · lr=0.1", "persistent n=1 · lr=1"],
                "complete": [True, True, False, False, False],
                "runs stored": ["3 of 3", "3 of 3", "0 of 3", "0 of 3", "0 of 3"],
            }
        )
        monkeypatch.setattr(boundary, "page_data", lambda *a, df=df, progress=progress, **k: (df, progress))
        board = boundary.board("paper").set_index("claim").loc["CBP collapses nowhere on the grid"]
        assert board.verdict == verdicts and "CBP · lr=0.2 (0 of 3 runs stored)" in board.evidence


def test_the_fashion_board_judges_only_the_claims_whose_learners_are_on_its_grid(tmp_path):
    board = boundary.board("paper", dataset="fashion_mnist", store=Store(tmp_path))
    assert len(board) == 3 and not board.claim.str.contains("n = 1").any()
    assert (board.verdict == "pending").all() and (board.figure == "boundary (fashion_mnist)").all()


def test_the_board_is_pending_until_every_line_is_stored(tmp_path):
    board = boundary.board("paper", store=Store(tmp_path))
    assert (board.verdict == "pending").all() and len(board) == len(boundary.CLAIMS)
    assert "baseline · lr=0.075 (0 of 3 runs stored)" in board.evidence.iloc[0]


LRS_BELOW_03 = [lr for lr in boundary.LRS if 0.05 < lr < 0.3]  # CBP's at 0.05 is Fig. 2's line


# --- the book's statements about the boundary -------------------------------------------------------


def test_the_intros_boundary_statements_hold_for_the_committed_results():
    """book/intro.md and README.md paste or round the boundary page's numbers; the words around them
    are checked here against the committed paper-scale runs."""
    df, _ = boundary.page_data("boundary", "paper")
    runs = boundary.per_run(df)
    base = runs[runs.learner_name == "baseline"]
    means = base.groupby("lr").censored.mean()
    assert list(means.loc[[0.1, 0.125, 0.15, 0.2, 0.3]]) == sorted(
        means.loc[[0.1, 0.125, 0.15, 0.2, 0.3]], reverse=True
    )
    at = base[base.lr == 0.125]  # "the paper's premise": a good start, then a collapse in 100-200 in every seed
    assert 0.88 < at.start.mean() < 0.92 and at.collapse.between(100, 200).all()
    assert base[base.lr >= 0.2].collapse.max() < 35  # README: "within its first 35 tasks"
    pairs = boundary.paired_collapse(runs, "persistent n=2").set_index("lr")
    at_075 = runs[runs.lr == 0.075]  # "where the baseline does not collapse ..., neither does the state"
    assert set(at_075.learner_name) >= {"baseline", "persistent n=2"} and at_075.collapse.isna().all()
    board = boundary.board("paper")
    assert list(board.verdict.iloc[1:4]) == ["✗", "✗", "✗"]  # claims (b) and (c) "fail", (d) "refuted already"
    assert "CBP collapses at lr=0.3" in board.evidence.iloc[3]
    n1 = boundary.paired_collapse(runs, "persistent n=1")  # "the same": no later anywhere
    assert (n1.difference <= 0).all() and (n1.ci_low < 0).all()
    for lr in (0.1, 0.125, 0.15, 0.2, 0.3):  # "a few tasks earlier", "no 95% interval excludes zero"
        row = pairs.loc[lr]
        assert -20 < row.difference < 0 and row.ci_low < 0 < row.ci_high
    # "much of the state's earlier collapse is a divergence": the boundary page glues these counts
    modes = study.failure_modes(df)
    learner = boundary.learner_of(modes.index)
    state, base_modes = modes[learner == "persistent n=2"], modes[learner == "baseline"]
    assert state.n_diverged.sum() >= 3 and state["diverged first"].sum() >= 1
    assert (
        base_modes.n_diverged.sum() == 0
        and (base_modes.loc[base_modes.collapsed != "0 of 3", "dead % at end"] > 80).all()
    )
    # "bounding the state does not rescue it": at 0.2 the tanh state collapses no later than the
    # baseline and (README) one of its seeds still diverges
    tanh = boundary.paired_collapse(runs, boundary.TANH_STATE).set_index("lr")
    assert tanh.loc[0.2].difference <= 0 and modes.loc[f"{boundary.TANH_STATE} · lr=0.2", "n_diverged"] == 1
    assert (tanh.difference <= 0).all() and set(tanh.index) == {0.15, 0.2, 0.3}  # "no later ... at any"
    assert modes.loc[f"{boundary.TANH_STATE} · lr=0.3", "n_diverged"] == 1  # the page: "at 0.2 and 0.3 one"
    # "continual backprop ... does not collapse at 0.2: none of its three seeds within 300 tasks"
    both = runs[runs.learner_name == "persistent n=2 + CBP"]  # "at any of its step sizes, 0.1 to 0.2, either"
    assert len(both) == 12 and both.collapse.isna().all() and both.tasks_run.min() == boundary.horizon("paper")
    both_modes = study.failure_modes(df[df.learner_name == "persistent n=2 + CBP"])
    diverged = both_modes.set_index(boundary.rate_of(both_modes.index)).n_diverged
    assert diverged.loc[[0.1, 0.125, 0.15]].sum() == 0 and diverged.loc[0.2] == 1  # "at 0.2 one does"
    assert modes.loc["persistent n=2 · lr=0.15", "n_diverged"] > 0  # "though the state alone does at 0.15"
    assert both_modes.loc["persistent n=2 + CBP · lr=0.2", "diverged at task"] == "296"
    for lr in (0.05, 0.075, 0.1, 0.125, 0.15, 0.2):  # "at every step size from 0.05 to 0.2 none ... collapses"
        cbp_at = runs[(runs.learner_name == "CBP") & (runs.lr == lr)]
        assert len(cbp_at) == 3 and cbp_at.collapse.isna().all() and cbp_at.tasks_run.min() == boundary.horizon("paper")
    # "continual backprop ... collapses later than the baseline at 0.3, but its runs diverge, all at 0.3"
    cbp = boundary.paired_collapse(runs, "CBP").set_index("lr")
    assert cbp.loc[0.3].difference > 0
    assert modes[learner == "persistent n=1"].n_diverged.sum() == 0  # n = 1: "0 of 12 runs diverge"
    cbp_modes = modes[learner == "CBP"]
    assert set(cbp_modes.index[cbp_modes.n_diverged > 0]) == {"CBP · lr=0.3"}


def test_the_intros_fashion_mnist_statements_hold_for_the_committed_results():
    """book/intro.md on the Fashion-MNIST boundary: n = 2 no later than the baseline, no interval
    excluding zero; the baseline collapses near task 100 at 0.1 and never learns at 0.2 and above."""
    df, _ = boundary.page_data("boundary", "paper", dataset="fashion_mnist")
    runs = boundary.per_run(df)
    pairs = boundary.paired_collapse(runs, "persistent n=2").set_index("lr")
    assert set(pairs.index) == {0.1, 0.15, 0.2}
    assert (pairs.difference <= 0).all() and (pairs.ci_low < 0).all() and (pairs.ci_high > 0).all()
    base = runs[runs.learner_name == "baseline"].groupby("lr")
    assert 80 < base.censored.mean().loc[0.1] < 120  # "near task 100"
    start = base.start.mean()
    assert start.loc[0.2] < 0.5 and start.loc[0.3] < 0.5 and start.loc[0.05] > 0.75  # "never learns"
    cbp = runs[(runs.learner_name == "CBP") & (runs.lr == 0.2)]  # "collapses there at 0.2 (in all three seeds)"
    assert len(cbp) == 3 and cbp.collapse.notna().all()
    at_075 = runs[(runs.learner_name == "baseline") & (runs.lr == 0.075)]  # "two of its three seeds, late"
    assert at_075.collapse.notna().sum() == 2 and at_075.collapse.min() > 200
    for lr in (0.1, 0.15):  # "at 0.1 and 0.15 ... none of its three seeds collapses"
        cbp = runs[(runs.learner_name == "CBP") & (runs.lr == lr)]
        assert len(cbp) == 3 and cbp.collapse.isna().all() and cbp.tasks_run.min() == boundary.horizon("paper")
    assert round(base.censored.mean().loc[0.15]) == 19  # README: "at task 98 and 19 on average"
    assert round(base.censored.mean().loc[0.1]) == 98
    board = boundary.board("paper", dataset="fashion_mnist").set_index("claim")
    assert board.loc["CBP collapses nowhere on the grid", "verdict"] == "✗"
    # "At 0.125 it collapses ... after a good start, so the paper's premise holds here too (at 0.1 and
    # 0.125), and the claim that the state collapses later ... fails"
    assert start.loc[0.125] >= boundary.GOOD_START["fashion_mnist"] and base.censored.max().loc[0.125] < 100
    verdicts = board.verdict.to_numpy()
    assert list(verdicts[:2]) == ["✓", "✗"] and "lr = 0.1, 0.125;" in board.evidence.iloc[0]


def test_the_boundary_pages_statements_on_divergence_hold():
    """The boundary page: CBP's runs (and the state with CBP's one) are healthy until they diverge; the
    state's were collapsing."""
    df, _ = boundary.page_data("boundary", "paper")
    before = study.before_divergence(df)
    learner, lr = boundary.learner_of(before.line), boundary.rate_of(before.line)
    cbp = before[np.char.endswith(learner.astype(str), "CBP")]
    assert len(cbp) and (cbp["lowest accuracy"] > 0.8).all() and (cbp["largest mean |W|"] < 0.15).all()
    state = np.isin(learner, ["persistent n=2", boundary.TANH_STATE])
    early = before[state & (lr < 0.3)]
    assert (early["most dead %"] >= 40).all() and (early["lowest accuracy"] < 0.8).all()
    assert (before.loc[state & (lr == 0.3), "diverged at task"] <= 1).all()


def test_every_line_of_the_boundary_grid_is_stored():
    """book/intro.md and the boundary page speak of the whole grid, on both data sets, as stored."""
    for dataset in boundary.GRID:
        _, progress = boundary.page_data("boundary", "paper", dataset=dataset)
        assert progress.complete.all(), f"not stored on {dataset}: {list(progress.line[~progress.complete])}"


def test_the_sensitivity_pages_statements_on_the_readings_hold():
    """notebooks/sensitivity.md: standardized inputs at 0.05 give the paper's baseline (a good start,
    every seed collapsing, the median within 100-200; unit inputs never collapse there); Kaiming init
    at 0.15 collapses about when PyTorch's default does (within 10 tasks)."""
    df, _ = boundary.page_data("sensitivity", "paper")
    table = boundary.collapse_by_rate(boundary.per_run(df)).set_index(["reading", "lr"])
    standardized, unit = table.loc[("standardized inputs", 0.05)], table.loc[("printed", 0.05)]
    assert standardized.start >= boundary.GOOD_START["mnist"] and standardized.collapsed == "3 of 3"
    assert 100 <= standardized["median"] <= 200 and unit.collapsed == "0 of 3"
    assert round(standardized["mean"]) == 167  # README: "at task 167 on average"
    mean = table["mean"]  # "between unit inputs at 0.1 and 0.125"; "a little before unit inputs at 0.2"
    assert mean.loc[("printed", 0.1)] > mean.loc[("standardized inputs", 0.05)] > mean.loc[("printed", 0.125)]
    assert mean.loc[("printed", 0.3)] < mean.loc[("standardized inputs", 0.1)] < mean.loc[("printed", 0.2)]
    kaiming, printed = table.loc[("Kaiming init", 0.15)], table.loc[("printed", 0.15)]
    assert kaiming.collapsed == "3 of 3" and abs(kaiming["mean"] - printed["mean"]) < 10
    assert table.loc[("Kaiming init", 0.05)].collapsed == "0 of 3"  # "does not collapse ... either"


def test_the_readings_the_pages_call_computing_are_not_all_stored():
    """The sensitivity page, the intro and the README name lines still computing; once one is stored
    the text is stale."""
    _, sensitivity = boundary.page_data("sensitivity", "paper")
    _, reading = boundary.page_data("boundary", "paper", inputs="standardized", **boundary.READING_GRID["standardized"])
    stored = set(sensitivity.loc[sensitivity.complete, "line"]) | set(reading.loc[reading.complete, "line"])
    assert set(sensitivity.line) | set(reading.line) == stored  # the text calls none of these computing


def test_the_600_task_statements_on_the_standardized_baseline_hold():
    """The boundary page: over Fig. 2's 600 tasks with standardized inputs at 0.05 the baseline collapses
    in every seed and does not recover (from task 300 on, no seed's sliding accuracy above 0.2), with
    almost every unit of its second and third layers dead, and the state (which never collapses)
    outlasts it by more than 400 tasks in every seed."""
    from lopcore.papers.iqbal import claims

    df = figures.stored_paper_lines("fig2", regime="standardized")
    base = df[df.label == "baseline"].assign(sliding=lambda d: study.smoothed(d, "online_accuracy"))
    assert base.seed.nunique() == 5 and base.task.max() == 599
    tasks = claims.collapse_by_seed(df, "baseline")
    assert (tasks < 600).all() and round(tasks.mean()) == 174  # README: "at task 174 on average"
    by_task = base.groupby("task").sliding.mean()
    assert by_task.loc[[299, 599]].max() < study.COLLAPSE_BELOW
    assert base[base.task >= 299].sliding.max() < 0.2  # "from task 300 on no seed rises above" 0.19
    final = base[base.task == 599]
    assert min(final.dead_fraction_l2.median(), final.dead_fraction_l3.median()) > 0.9
    gap = claims.collapse_by_seed(df, "persistent n=2") - tasks
    assert gap.min() > 400


def test_the_600_task_statements_on_the_standardized_state_hold():
    """The boundary page, the intro and the README: over Fig. 2's 600 tasks with standardized inputs at
    0.05 no seed of n = 2 collapses (its sliding accuracy 0.76 at the last task, README), but its
    accuracy falls all the way and its units keep dying (a median of 60% of the first layer at the last
    task, README; every layer more than half dead)."""
    from lopcore.papers.iqbal import claims

    df = figures.stored_paper_lines("fig2", regime="standardized")
    state = df[df.label == "persistent n=2"].assign(sliding=lambda d: study.smoothed(d, "online_accuracy"))
    assert state.seed.nunique() == 5 and state.task.max() == 599
    assert (claims.collapse_by_seed(df, "persistent n=2") == 600).all()  # none collapses: censored at 600
    by_task = state.groupby("task").sliding.mean()
    assert round(by_task.loc[599], 2) == 0.76 and (np.diff(by_task.loc[[99, 199, 299, 399, 499, 599]]) < 0).all()
    final = state[state.task == 599]
    assert round(100 * final.dead_fraction_l1.median()) == 60
    assert all(final[f"dead_fraction_l{i}"].median() > 0.5 for i in (1, 2, 3))
    first = state[state.task == 0][[f"dead_fraction_l{i}" for i in (1, 2, 3)]]
    assert (first <= 0.05).all().all()  # "at the first task at most 5% in any layer of any seed"


def test_the_standardized_readings_statements_on_the_state_hold():
    """The boundary page, the intro and the README: with standardized inputs at 0.05 no seed of n = 2
    collapses within the horizon, at least 133 tasks later than the baseline paired by seed (README),
    so the reading's n = 2 claim holds, while on the unit-input grid claim (b) fails."""
    df, _ = boundary.page_data("boundary", "paper", inputs="standardized", **boundary.READING_GRID["standardized"])
    runs = boundary.per_run(df)
    state = runs[runs.learner_name == "persistent n=2"]
    assert len(state) == 3 and state.collapse.isna().all()
    pair = boundary.paired_collapse(runs, "persistent n=2", reading="standardized inputs").iloc[0]
    assert pair.seeds == 3 and int(pair.difference) == 132 and pair.ci_low > 0  # "at least 133": censored
    assert round(pair.difference) == 133
    verdicts = boundary.board("paper", reading="standardized").set_index("claim").verdict
    assert verdicts.iloc[0] == "✓"
    # "fed a zero state instead, the same network collapses with the baseline": every seed collapses,
    # the paired difference's interval holds zero, and the learned state's claim against it holds
    zero = runs[runs.learner_name == boundary.ZERO_STATE]
    assert len(zero) == 3 and zero.collapse.notna().all()
    pair = boundary.paired_collapse(runs, boundary.ZERO_STATE, reading="standardized inputs").iloc[0]
    assert pair.ci_low < 0 < pair.ci_high
    assert verdicts.iloc[2] == "✓"
    # "with n = 1 ... no seed collapses within 300 tasks either" (its claim holds)
    n1 = runs[runs.learner_name == "persistent n=1"]
    assert len(n1) == 3 and n1.collapse.isna().all() and n1.tasks_run.min() == boundary.horizon("paper")
    assert verdicts.iloc[1] == "✓"
    # "a random state ... collapses with the baseline"; "Continual backprop does not collapse either"
    random = runs[runs.learner_name == boundary.RANDOM_STATE]
    assert len(random) == 3 and random.collapse.notna().all() and verdicts.iloc[3] == "✓"
    pair = boundary.paired_collapse(runs, boundary.RANDOM_STATE, reading="standardized inputs").iloc[0]
    assert pair.ci_low < 0 < pair.ci_high
    cbp = runs[runs.learner_name == "CBP"]
    assert len(cbp) == 3 and cbp.collapse.isna().all()
    modes = study.failure_modes(df[df.learner_name == "CBP"])
    assert (modes["dead % at end"] == 0).all()  # "with no dead units at all"
    assert boundary.board("paper").set_index("claim").verdict.iloc[1] == "✗"  # "one reading ... holds"


def test_the_standardized_probes_statements_hold():
    """The boundary page, the intro and the README: with standardized inputs at 0.1 (READING_PROBE) the
    state collapses in every seed, at task 36 on average against the baseline's 21 (README), the paired
    interval including zero, and one of its three seeds diverges."""
    probe = boundary.READING_PROBE["standardized"]
    df, progress = boundary.page_data("boundary", "paper", inputs="standardized", **probe)
    assert progress.complete.all()
    runs = boundary.per_run(df)
    table = boundary.collapse_by_rate(runs).set_index("learner")
    assert table.loc["persistent n=2", "collapsed"] == "3 of 3" and table.loc["baseline", "collapsed"] == "3 of 3"
    assert round(table.loc["persistent n=2", "mean"]) == 36 and round(table.loc["baseline", "mean"]) == 21
    pair = boundary.paired_collapse(runs, "persistent n=2", reading="standardized inputs").iloc[0]
    assert pair.seeds == 3 and pair.ci_low < 0 < pair.ci_high
    modes = study.failure_modes(df)
    modes.index = boundary.learner_of(modes.index)
    assert modes.loc["persistent n=2", "n_diverged"] == 1 and modes.loc["baseline", "n_diverged"] == 0


def test_the_standardized_readings_statements_on_dead_units_hold():
    """The boundary page: with standardized inputs the baseline's second layer dies first (far more of
    it dead by task 100 than the state's); at task 200 the state has fewer dead units in layers 2 and 3
    and more in layer 1 than the baseline (medians over seeds)."""
    df, _ = boundary.page_data("boundary", "paper", inputs="standardized", **boundary.READING_GRID["standardized"])
    dead = df[df.task.isin([100, 200])].groupby(["learner_name", "task"])[list(study.DEAD_COLUMNS)].median()
    base, state = dead.loc["baseline"], dead.loc["persistent n=2"]
    assert base.loc[100, "dead_fraction_l2"] > 0.5 > 0.2 > state.loc[100, "dead_fraction_l2"]
    assert (
        state.loc[200, ["dead_fraction_l2", "dead_fraction_l3"]]
        < base.loc[200, ["dead_fraction_l2", "dead_fraction_l3"]]
    ).all()
    assert state.loc[200, "dead_fraction_l1"] > base.loc[200, "dead_fraction_l1"]


def test_a_reading_board_names_a_bad_reading():
    with pytest.raises(params.ParameterError, match="reading"):
        boundary.board("paper", reading="bogus")


def test_the_boundary_takes_the_input_scaling_on_the_command_line(capsys):
    from lopcore import cli

    args = cli.parser().parse_args(["run", "boundary", "--inputs", "standardized"])
    assert cli.figure_options("boundary", args)["inputs"] == "standardized"
    (label,) = boundary.boundary(learners="baseline", lrs="0.05", inputs="standardized")
    assert label == "baseline · standardized inputs · lr=0.05"
    with pytest.raises(params.ParameterError, match="inputs"):
        boundary.boundary(inputs="bogus")


def test_the_command_lines_learners_help_names_every_boundary_learner(capsys):
    from lopcore import cli

    with pytest.raises(SystemExit):
        cli.parser().parse_args(["run", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert all(name in shown for name in boundary.LEARNERS)


def test_regime_lines_with_labels_read_those_lines_only_and_name_the_valid_labels(scratch_store):
    lines, progress = figures.regime_lines("fig3", "paper", 5, "collapse", labels=["baseline"])
    assert lines.empty and list(progress.line) == ["baseline"]  # an empty store: no line is complete
    _, every = figures.regime_lines("fig3", "paper", 5, "collapse")
    assert len(every) > 1
    with pytest.raises(ParameterError, match=r"labels=\['base'\] is not valid; give one or a list of: 'baseline'"):
        figures.regime_lines("fig3", "paper", 5, "collapse", labels=["base"])
