"""Task streams, the results store, the engine and parameter validation, at smoke scale."""

import json

import pandas as pd
import pytest
import torch

from lopcore import data
from lopcore.device import resolve_device
from lopcore.engine import MissingResultsError, run
from lopcore.learners import Backprop, PersistentState
from lopcore.papers.iqbal.figures import CBP_RATE, SCALES, figure_runs, load_figure
from lopcore.params import ParameterError
from lopcore.spec import RunSpec
from lopcore.store import CorruptResultError, Store
from lopcore.tasks import PermutedStream, batches, gather_examples

TINY = dict(n_tasks=2, test_examples=200, probe_examples=64)


def tiny_spec(learner=None, seed=0, datasets=("mnist",)):
    stream = PermutedStream(datasets=datasets, examples_per_task=160, batch_size=8)
    return RunSpec(learner=learner or Backprop(), stream=stream, seed=seed, **TINY)


# --- task stream -------------------------------------------------------------------------


def test_task_is_a_pure_function_of_seed_and_index():
    stream = PermutedStream(examples_per_task=1000)
    a, b = stream.task([0, 1], 7), stream.task([0, 1], 7)
    assert torch.equal(a.permutation, b.permutation) and torch.equal(a.order, b.order)
    assert not torch.equal(a.permutation[0], a.permutation[1])  # seeds differ
    c = stream.task([0, 1], 8)
    assert not torch.equal(a.permutation, c.permutation) and not torch.equal(a.order, c.order)
    # regenerating task 7 does not depend on having generated 0..6 (no hidden RNG state)
    assert torch.equal(PermutedStream(examples_per_task=1000).task([0], 7).order[0], a.order[0])


def test_each_task_is_a_permutation_and_one_pass_without_repeats():
    task = PermutedStream().task([3], 0)
    assert sorted(task.permutation[0].tolist()) == list(range(784))
    assert sorted(task.order[0].tolist()) == list(range(60000))


def test_batches_apply_the_permutation_and_cover_the_task():
    mnist = data.load("mnist")
    stream = PermutedStream(examples_per_task=40, batch_size=8)
    task = stream.task([5, 6], 2)
    got = list(batches(mnist, task, 8, chunk_examples=16))
    assert len(got) == 5 and got[0][0].shape == (2, 8, 784)
    x = torch.cat([b[0] for b in got], 1)
    y = torch.cat([b[1] for b in got], 1)
    for r in range(2):
        expected = mnist.train_x[task.order[r]][:, task.permutation[r]].float() / 255
        assert torch.equal(x[r], expected)
        assert torch.equal(y[r], mnist.train_y[task.order[r]])
    xt, yt = gather_examples(mnist, task, 0, 10, train=False)
    assert torch.equal(xt[1], mnist.test_x[:10][:, task.permutation[1]].float() / 255)


def test_alternating_stream_switches_dataset_per_task():
    stream = PermutedStream(datasets=("fashion_mnist", "mnist"))
    assert [stream.dataset_of(k) for k in range(4)] == ["fashion_mnist", "mnist"] * 2


# --- store ---------------------------------------------------------------------------------


def test_store_roundtrip_and_corruption_is_detected(tmp_path):
    store = Store(tmp_path)
    spec = tiny_spec().to_dict()
    path = store.save(spec, {"task": [0, 1], "online_accuracy": [0.5, float("nan")]}, {"device": "cpu"})
    assert spec in store and store.load(spec)["metrics"]["online_accuracy"][0] == 0.5
    record = json.loads(path.read_text())
    record["metrics"]["online_accuracy"][0] = 0.9  # a hand edit
    path.write_text(json.dumps(record))
    with pytest.raises(CorruptResultError, match="checksum"):
        store.load(spec)
    path.write_text(path.read_text()[:50])  # truncation
    with pytest.raises(CorruptResultError, match=str(path.name)):
        store.load(spec)


def test_store_keys_change_with_anything_that_changes_the_numbers():
    base = tiny_spec().to_dict()
    others = [
        tiny_spec(seed=1),
        tiny_spec(Backprop(lr=0.01)),
        tiny_spec(PersistentState(n=1)),
        tiny_spec(PersistentState(n=2)),
        tiny_spec(datasets=("fashion_mnist",)),
    ]
    keys = {Store("x").path(s.to_dict()) for s in others} | {Store("x").path(base)}
    assert len(keys) == len(others) + 1


# --- engine ----------------------------------------------------------------------------------


def test_engine_runs_stores_and_reloads(tmp_path):
    store = Store(tmp_path)
    specs = [tiny_spec(PersistentState(d_int=8, n=2), seed=s) for s in (0, 1)]
    df = run(specs, device="cpu", store=store, progress=False)
    assert len(df) == 2 * TINY["n_tasks"] and df["run"].nunique() == 2
    for column in (
        "online_accuracy",
        "test_accuracy",
        "weight_norm",
        "mean_abs_weight",
        "dead_fraction_l1",
        "effective_rank_l3",
        "stable_rank_l2",
    ):
        assert df[column].notna().all(), column
    assert df["online_accuracy"].between(0, 1).all() and (df["n"] == 2).all()
    record = store.load(specs[0].to_dict())
    assert record["provenance"]["device"] == "cpu" and record["provenance"]["torch"] == torch.__version__
    again = run(specs, device="cpu", store=store, progress=False, compute=False)  # all cache hits
    pd.testing.assert_frame_equal(df, again)


def test_engine_group_equals_separate_runs(tmp_path):
    specs = [tiny_spec(seed=s) for s in (0, 1, 2)]
    together = run(specs, device="cpu", store=Store(tmp_path / "a"), progress=False)
    alone = run(specs[1:2], device="cpu", store=Store(tmp_path / "b"), progress=False)
    mine = together[together.seed == 1].reset_index(drop=True)
    for c in ("online_accuracy", "test_accuracy", "weight_norm"):
        assert (mine[c] - alone[c]).abs().max() < 1e-5, c


def test_missing_results_are_an_error_when_computing_is_off(tmp_path):
    with pytest.raises(MissingResultsError, match="not in the results store"):
        run([tiny_spec()], store=Store(tmp_path), compute=False)


def test_paper_scale_is_never_computed_in_ci(tmp_path, monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(MissingResultsError):
        load_figure("fig2", scale="paper", seeds=1, n=1, store=Store(tmp_path), progress=False)


# --- parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n=0), "n=0 is not valid"),
        (dict(n=[1, 0]), "n=\\[1, 0\\]"),
        (dict(n="two"), "n='two'"),
        (dict(scale="huge"), "'paper', 'small', 'smoke'"),
        (dict(seeds=0), "seeds=0"),
        (dict(d_int=0), "d_int=0"),
        (dict(d_int=1.5), "d_int=1.5"),
        (dict(figure="fig99"), "'fig2'"),
    ],
)
def test_bad_figure_parameters_name_the_valid_choices(kwargs, message):
    figure = kwargs.pop("figure", "fig2")
    with pytest.raises(ParameterError, match=message):
        figure_runs(figure, **kwargs)


def test_bad_device_is_rejected_before_any_work(tmp_path):
    with pytest.raises(ParameterError, match="'auto', 'cpu', 'cuda'"):
        load_figure("fig2", scale="smoke", device="tpu", store=Store(tmp_path))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")


def test_fig2_runs_follow_the_paper():
    runs = figure_runs("fig2", scale="paper", seeds=2)
    labels = sorted({label for label, _ in runs})
    assert labels == ["CBP", "baseline", "persistent n=1", "persistent n=2", "persistent n=2 + CBP"]
    cbp = dict(runs)["CBP"].learner
    assert (cbp.replacement_rate, cbp.decay, cbp.maturity) == (CBP_RATE, 0.99, 100)
    spec = dict(runs)["persistent n=2"]
    assert spec.learner.d_int == 128 and spec.learner.lr == 0.05 and spec.stream.batch_size == 8
    assert spec.n_tasks == 600 and spec.stream.examples_per_task == 60000 == SCALES["paper"].examples_per_task


@pytest.mark.parametrize(
    "figure, datasets, labels",
    [
        ("fig3", ("fashion_mnist",), {"baseline", "CBP", "persistent n=1, d=128", "persistent n=2, d=256"}),
        ("fig4", ("fashion_mnist",), {"persistent n=1", "persistent n=2", "persistent n=4"}),
        ("fig6", ("mnist",), {"baseline", "persistent n=2", "zero state n=2", "random state n=2"}),
        ("fig7", ("fashion_mnist", "mnist"), {"baseline", "persistent n=2"}),
    ],
)
def test_every_figure_has_its_learners_and_data(figure, datasets, labels):
    runs = figure_runs(figure, scale="small", seeds=1)
    assert labels <= {label for label, _ in runs}
    assert all(spec.stream.datasets == datasets for _, spec in runs)


def test_fig5_reuses_the_runs_of_fig2_and_fig3():
    keys = lambda fig: {s.to_dict()["learner"].__repr__() + str(s.stream) for _, s in figure_runs(fig, seeds=1)}  # noqa: E731
    assert keys("fig5") <= keys("fig2") | keys("fig3")


def test_the_sweep_runs_a_third_of_the_tasks_and_contains_the_chosen_rate():
    runs = figure_runs("cbp_sweep", scale="small", seeds=1)
    assert {s.n_tasks for _, s in runs} == {200}
    assert CBP_RATE in {s.learner.replacement_rate for _, s in runs}


def test_the_collapse_regime_is_the_same_runs_with_every_learner_at_its_step_size():
    from dataclasses import replace

    from lopcore.papers.iqbal.figures import REGIMES, regime_lr

    for figure in ("fig2", "fig3", "fig4", "fig5", "fig6", "fig7"):
        printed = figure_runs(figure, "paper", 2)
        assert figure_runs(figure, "paper", 2, "printed") == printed  # the default; keys unchanged
        collapse = figure_runs(figure, "paper", 2, "collapse")
        assert [label for label, _ in collapse] == [label for label, _ in printed]
        for (_, p), (_, c) in zip(printed, collapse, strict=True):
            assert c == replace(p, learner=replace(p.learner, lr=REGIMES["collapse"])) and p.learner.lr == 0.05
    with pytest.raises(ParameterError, match="regime='fast' is not valid; .*'printed', 'collapse', 'standardized'"):
        figure_runs("fig2", "paper", 1, "fast")
    with pytest.raises(ValueError, match="regime='collapse' is not valid for cbp_sweep"):
        regime_lr("cbp_sweep", "collapse")


def test_the_standardized_regime_is_the_printed_runs_with_standardized_inputs():
    from dataclasses import replace

    from lopcore import cli
    from lopcore.papers.iqbal import boundary
    from lopcore.papers.iqbal.figures import REGIMES

    assert cli.REGIME_CHOICES == tuple(REGIMES)
    for figure in ("fig2", "fig3", "fig6", "fig7"):
        printed = figure_runs(figure, "paper", 2)
        standardized = figure_runs(figure, "paper", 2, "standardized")
        assert [label for label, _ in standardized] == [label for label, _ in printed]
        for (_, p), (_, s) in zip(printed, standardized, strict=True):
            assert s == replace(p, stream=replace(p.stream, inputs="standardized"))
    # Fig. 2's baseline in this regime is the sensitivity map's reading, run to 600 tasks instead of
    # stopping at chance: the same learner and stream.
    (line,) = [
        s for label, s in boundary.figure_runs("sensitivity", "paper", 1) if label == "standardized inputs, lr=0.05"
    ]
    (fig2,) = [s for label, s in figure_runs("fig2", "paper", 1, "standardized") if label == "baseline"]
    assert (line.learner, line.stream) == (fig2.learner, fig2.stream) and fig2.n_tasks == 600


def test_paper_progress_counts_each_lines_stored_seeds(tmp_path):
    from lopcore.papers.iqbal.figures import paper_progress, stored_paper_lines
    from lopcore.store import provenance

    store = Store(tmp_path)
    baseline = [s for label, s in figure_runs("fig2", "paper", 5) if label == "baseline"]
    for spec in baseline[:4]:  # four of five seeds: the line is not complete
        store.save(
            spec.to_dict(), {"task": [0], "dataset": ["mnist"], "online_accuracy": [0.9]}, provenance("cpu", 7200.0, 5)
        )
    everything = paper_progress(store)
    assert set(everything.regime) == {"printed", "collapse", "standardized"}
    progress = everything[everything.regime == "printed"].set_index(["figure", "label"])
    assert progress.loc[("fig2", "baseline"), "seeds_stored"] == "4/5"
    assert progress.loc[("fig6", "baseline"), "seeds_stored"] == "4/5"  # the same runs
    assert (
        progress.loc[("fig2", "CBP"), "seeds_stored"] == "0/5"
        and progress.loc[("fig2", "baseline"), "wall_time_h"] == 2.0
    )
    assert stored_paper_lines("fig2", store).empty
    store.save(
        baseline[4].to_dict(),
        {"task": [0], "dataset": ["mnist"], "online_accuracy": [0.8]},
        provenance("cpu", 7200.0, 5),
    )
    df = stored_paper_lines("fig2", store)
    assert set(df.label) == {"baseline"} and sorted(df.seed) == [0, 1, 2, 3, 4] and set(df.scale) == {"paper"}


def test_the_fig7_page_also_reads_fig3s_state_on_fashion_mnist_alone_and_nothing_else_of_fig3():
    from lopcore.papers.iqbal.figures import page_runs

    own, page = figure_runs("fig7", "small", 2, n=1), page_runs("fig7", "small", 2, n=1)
    extra = page[len(own) :]
    assert page[: len(own)] == own and {label for label, _ in extra} == {"persistent n=1, d=256"}
    fig3 = [s.to_dict() for _, s in figure_runs("fig3", "small", 2, n=1, d_int=256)]
    assert len(extra) == 2 and all(s.stream.datasets == ("fashion_mnist",) and s.to_dict() in fig3 for _, s in extra)
    assert page_runs("fig3", "small", 2) == figure_runs("fig3", "small", 2)


def test_figure_pages_default_to_paper_scale_exactly_when_the_committed_store_has_all_their_runs():
    """A page at paper scale must load from committed results alone (CI computes nothing at paper
    scale), and a figure whose paper-scale runs are all committed must show them."""
    from pathlib import Path

    from lopcore.papers.iqbal.figures import (
        DEFAULT_SEEDS,
        FIGURES,
        PAPER_PAGES,
        PAPER_SEEDS,
        page_defaults,
        page_runs,
    )

    committed = Store(Path(__file__).resolve().parents[1] / "results")
    complete = {f for f in FIGURES if all(s.to_dict() in committed for _, s in page_runs(f, "paper", PAPER_SEEDS))}
    assert set(PAPER_PAGES) == complete
    assert all(
        page_defaults(f) == (("paper", PAPER_SEEDS) if f in complete else ("small", DEFAULT_SEEDS[f])) for f in FIGURES
    )
    with pytest.raises(ValueError, match="fig2"):
        page_defaults("fig9")
