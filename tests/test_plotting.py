"""Plots and summaries from synthetic tidy frames (no training)."""

import matplotlib
import numpy as np
import pandas as pd

from lopcore.papers.iqbal.plotting import accuracy_and_weight_norm
from lopcore.study import collapse_task, provenance, smoothed, summary

matplotlib.use("Agg")


def synthetic(n_tasks=60):
    """'steady' stays at 0.9; 'falling' decays linearly from 0.9 to 0.3 (seed 1 a bit faster)."""
    rows = []
    for label, seeds in (("steady", (0, 1)), ("falling", (0, 1))):
        for seed in seeds:
            task = np.arange(n_tasks)
            acc = np.full(n_tasks, 0.9) if label == "steady" else 0.9 - (0.6 + 0.1 * seed) * task / (n_tasks - 1)
            rows.append(
                pd.DataFrame(
                    {
                        "task": task,
                        "online_accuracy": acc,
                        "test_accuracy": acc - 0.01,
                        "weight_norm": 1e-4 * (1 + task / n_tasks),
                        "n_params": 1000.0,
                        "label": label,
                        "seed": seed,
                        "run": f"{label}-{seed}",
                        "device_name": "cpu",
                        "wall_time_s": 1.0,
                        "git_commit": "abc",
                        "date": "2026-01-01",
                    }
                )
            )
    return pd.concat(rows, ignore_index=True)


def test_collapse_task_is_the_first_task_below_the_threshold():
    tasks = pd.Series(range(5))
    assert collapse_task(pd.Series([0.9, 0.6, 0.49, 0.7, 0.1]), tasks) == 2
    assert np.isnan(collapse_task(pd.Series([0.9] * 5), tasks))


def test_smoothing_is_per_run():
    df = synthetic()
    s = smoothed(df, "online_accuracy", window=20)
    first_of_second_run = df.index[(df.run == "steady-1") & (df.task == 0)][0]
    assert s[first_of_second_run] == 0.9  # no leakage from the previous run


def test_summary_reports_seeds_and_collapse_per_seed():
    table = summary(synthetic(), window=1, first=5, last=5)
    assert list(table.index) == ["steady", "falling"]
    assert table.loc["steady", "seeds"] == 2
    assert table.loc["steady", "collapse task per seed"] == "-, -"
    falling = table.loc["falling", "collapse task per seed"].split(", ")
    assert int(falling[1]) < int(falling[0])  # seed 1 decays faster
    assert table.loc["falling", "online acc, last 5"] < table.loc["steady", "online acc, last 5"]


def test_figure_has_two_panels_and_provenance_lists_labels():
    fig = accuracy_and_weight_norm(synthetic(), title="synthetic")
    assert len(fig.axes) == 2 and fig.axes[0].get_legend() is not None
    assert set(provenance(synthetic()).index) == {"steady", "falling"}


def test_figures_are_styled_without_touching_the_global_theme():
    import matplotlib.pyplot as plt

    matplotlib.rcdefaults()
    before = dict(matplotlib.rcParams)
    fig = accuracy_and_weight_norm(synthetic())
    assert any(line.get_visible() for line in fig.axes[0].get_ygridlines())  # whitegrid, though rc has no grid
    plt.close(fig)
    assert dict(matplotlib.rcParams) == before
