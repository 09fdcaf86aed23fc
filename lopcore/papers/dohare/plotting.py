"""Figures of Dohare's permuted MNIST study from tidy result frames (`dohare.figures.load_figure`),
drawn like Iqbal's (`study.curve`): bold line the seed mean, band the seeds' range (min to max);
online accuracy also faint per task under a trailing sliding mean over a fiftieth of the run.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from ...metrics import sliding_mean
from ...study import curve, styled

CORRELATES = {  # column: axis label (the normalisations are those of dohare.figures.network_correlates)
    "dead_percent": "dead units (% of hidden units)",
    "dormant_percent": "τ-dormant units (% of hidden units)",
    "mean_abs_weight": "mean weight magnitude Σ|W| / #W",
    "effective_rank": "effective rank (mean over layers)",
    "effective_rank_l3": "effective rank, last hidden layer",
    "stable_rank": "srank, δ = 0.01 (mean over layers)",
}


def accuracy_window(df: pd.DataFrame) -> int:
    """The sliding-mean width of the accuracy curves: a fiftieth of the run's tasks, at least one."""
    return max(1, round(df["task"].nunique() / 50))


@styled
def online_accuracy(df: pd.DataFrame, title: str = "", ax=None):
    """Thesis Figs. 4.2, 4.3 and 4.8: each task's online accuracy over tasks."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(7.5, 4.2))
    w = accuracy_window(df)
    curve(df, "online_accuracy", ax, w, "online accuracy" + (f" ({w}-task sliding mean)" if w > 1 else ""))
    ax.set_title(title)
    fig.tight_layout()
    return fig


@styled
def accuracy_by_examples(df: pd.DataFrame, title: str = ""):
    """Thesis Fig. 4.4: online accuracy of each task at the number of examples seen by its end, one
    curve per change interval (each smoothed over a fiftieth of its own tasks)."""
    parts = []
    for _, g in df.groupby("run", sort=False):
        g = g.sort_values("task")
        parts.append(
            g.assign(
                value=sliding_mean(g["online_accuracy"].to_numpy(), accuracy_window(g)),
                millions=g["examples_seen"] / 1e6,
            )
        )
    data = pd.concat(parts)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    palette = dict(zip(data["label"].unique(), sns.color_palette("colorblind")))
    sns.lineplot(
        data=data, x="millions", y="value", hue="label", palette=palette, errorbar=("pi", 100), linewidth=1.8, ax=ax
    )
    ax.set_xlabel("examples seen (millions)")
    ax.set_ylabel("online accuracy per task (sliding mean)")
    ax.legend(title=None, frameon=False)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def spans_decades(values: pd.Series, decades: float) -> bool:
    """Whether the finite positive values span more than `decades` orders of magnitude."""
    v = values[(values > 0) & values.abs().lt(float("inf"))]
    return len(v) > 0 and v.max() / v.min() > 10**decades


@styled
def correlate_panels(df: pd.DataFrame, title: str = "", rank: str = "effective_rank"):
    """Thesis Figs. 4.5-4.7 and 4.9: online accuracy and the correlates at each task's start (the
    weight magnitude after each task), one panel each; `rank` picks the mean layer's effective rank
    (Fig. 4.7) or the last layer's ("effective_rank_l3", Fig. 4.9). The weight magnitude is drawn on a
    log axis where it spans more than two orders of magnitude (an exploding seed)."""
    columns = ["dead_percent", "dormant_percent", "mean_abs_weight", rank, "stable_rank"]
    columns = [c for c in columns if c in df]
    fig, axes = plt.subplots(2, 3, figsize=(16, 8.4))
    online_accuracy(df, ax=axes[0, 0])
    for ax, column in zip(axes.flat[1:], columns):
        curve(df, column, ax, None, CORRELATES[column])
        ax.get_legend().remove()
        if column == "mean_abs_weight" and spans_decades(df[column], 2):
            ax.set_yscale("log")  # a seed whose weights explode would flatten every other curve
    for ax in axes.flat[1 + len(columns) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
