"""The recurrent report's figure specs: every figure and scale builds; a smoke figure runs end to
end through the engine and the store into a DataFrame with ΔAccuracy and IAA."""

import pytest

from lopcore.papers.khan import figures as rf
from lopcore.store import Store, spec_key


@pytest.fixture(autouse=True)
def computing_allowed(monkeypatch):
    """These tests compute smoke runs into their own scratch stores, even under `make test`
    (which sets LOPCORE_NO_COMPUTE=1 for the committed notebooks)."""
    monkeypatch.delenv("LOPCORE_NO_COMPUTE", raising=False)


@pytest.mark.parametrize("figure", list(rf.FIGURES))
@pytest.mark.parametrize("scale", list(rf.SCALES))
def test_every_figure_builds_at_every_scale(figure, scale):
    runs = rf.figure_runs(figure, scale, 2)
    assert runs and len({spec_key(s.to_dict()) for _, s in runs}) == len(runs)


def test_paper_scale_is_the_reports_protocol():
    runs = dict(rf.figure_runs("rfig1", "paper", 1))
    assert runs["LSTM"].n_tasks == 50 and runs["LSTM"].stream.examples_per_task == 30 * 60000
    lang = dict(rf.figure_runs("rfig3", "paper", 1))
    assert lang["reshuffle"].n_tasks == 100 and lang["binary"].stream.examples_per_task == 30 * 2000
    assert {s.stream.max_len for _, s in rf.figure_runs("rfig6", "paper", 1)} == {15, 25, 50, 75}
    assert {s.learner.hidden for _, s in rf.figure_runs("rfig6", "paper", 1)} == {32, 64, 128}


def test_smoke_mitigation_figure_end_to_end(tmp_path):
    store = Store(tmp_path)
    df = rf.load_figure("rfig5", "smoke", seeds=2, device="cpu", store=store, progress=False)
    assert set(df["label"]) == {"baseline", "L2", "S&P", "CBP"} and len(df) == 4 * 2 * 2
    assert df["test_accuracy"].between(0, 1).all() and set(df["kind"]) == {"recurrent", "recurrent_cbp"}
    again = rf.load_figure("rfig5", "smoke", seeds=2, device="cpu", store=store, progress=False)  # store hits
    assert again["test_accuracy"].equals(df["test_accuracy"])
    table = rf.summary(df)
    assert set(table.index) == set(df["label"]) and table.loc["baseline", "iaa"] == 0
    curve = df[df.label == "L2"].groupby("task")["test_accuracy"].mean()
    assert table.loc["L2", "delta_accuracy"] == pytest.approx((curve[0] - curve[1]) / curve[0] * 100)
    assert table.loc["L2", "delta_accuracy_robust"] == pytest.approx(table.loc["L2", "delta_accuracy"])  # 2 tasks
    base = table.loc["baseline", "mean_accuracy"]
    assert table.loc["S&P", "iaa"] == pytest.approx((table.loc["S&P", "mean_accuracy"] - base) / base * 100)


def test_smoke_mnist_figure_runs_mlp_and_lstm(tmp_path):
    df = rf.load_figure("rfig2", "smoke", seeds=1, device="cpu", store=Store(tmp_path), progress=False)
    assert set(df["label"]) == {"MLP", "LSTM"} and set(df["kind"]) == {"backprop", "recurrent"}
    assert df["test_accuracy"].between(0, 1).all()
