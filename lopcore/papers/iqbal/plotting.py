"""Iqbal's figures from tidy result DataFrames (never from learner state), drawn with the shared
primitives of `lopcore.study` (`curve`, `styled`; its `summary` and `provenance` tables).

Curves follow the paper's presentation: per-task values faint, a sliding average over tasks in
bold; across seeds, the bold line is the mean and the band spans the seeds' range (min to max).
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from ...metrics import sliding_mean
from ...study import COLLAPSE_BELOW, WINDOW, curve, styled


def weight_norm_panel(df: pd.DataFrame, ax):
    """The weight norm at each task's end, as the paper plots it (see book/methods)."""
    curve(df, "weight_norm", ax, None, r"weight norm $\|\theta\|_2 / N_\theta$")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    return ax


@styled
def accuracy_and_weight_norm(df: pd.DataFrame, title: str = "", window: int = WINDOW):
    """Two panels, as Iqbal's Figures 2-3: online accuracy and the weight norm over tasks."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    curve(df, "online_accuracy", left, window, f"online accuracy ({window}-task sliding mean)")
    weight_norm_panel(df, right)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


@styled
def test_accuracy_by_dataset(df: pd.DataFrame, window: int = WINDOW):
    """Iqbal's Figure 5: end-of-task test accuracy, one panel per data set. Labels are
    "<data set> · <learner>" (as `figures.fig5` names them)."""
    parts = df["label"].str.split(" · ", n=1, expand=True)
    df = df.assign(dataset_name=parts[0], label=parts[1])
    names = list(df["dataset_name"].unique())
    fig, axes = plt.subplots(1, len(names), figsize=(6 * len(names), 4.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        curve(
            df[df.dataset_name == name],
            "test_accuracy",
            ax,
            window,
            f"test accuracy at task end ({window}-task sliding mean)",
        )
        ax.set_title(f"permuted {name}")
    fig.tight_layout()
    return fig


@styled
def alternating(df: pd.DataFrame, window: int = WINDOW):
    """Iqbal's Figure 7: a stream alternating two data sets. The sliding mean runs over the tasks of
    one data set at a time (`window` tasks of the stream, i.e. window/2 of each data set); solid
    lines are MNIST tasks, dashed lines Fashion-MNIST tasks; colour is the learner."""
    per_set = max(1, window // 2)
    data = df.assign(
        value=df.groupby(["run", "dataset"], sort=False)["online_accuracy"].transform(
            lambda s: sliding_mean(s.to_numpy(), per_set)
        )
    )
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    palette = dict(zip(data["label"].unique(), sns.color_palette("colorblind")))
    data["data set"] = data["dataset"].map({"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"})
    sns.lineplot(
        data=data,
        x="task",
        y="value",
        hue="label",
        style="data set",
        palette=palette,
        style_order=["MNIST", "Fashion-MNIST"],
        errorbar=("pi", 100),
        linewidth=1.8,
        ax=left,
    )
    left.set_ylabel(f"online accuracy ({per_set}-task sliding mean per data set)")
    left.set_xlabel("task")
    left.legend(frameon=False, fontsize="small")
    weight_norm_panel(df, right)
    fig.tight_layout()
    return fig


@styled
def sensitivity_curves(df: pd.DataFrame, horizon: int, window: int = WINDOW):
    """The baseline under each protocol reading: online accuracy (sliding mean, band over seeds) per
    step size (left; the printed protocol's other options) and per other reading beside the printed
    reading at the same step sizes (right)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.4), sharey=True)
    printed = df[df.reading == "printed"]
    other = df[df.reading != "printed"]
    curve(printed, "online_accuracy", left, window, f"online accuracy ({window}-task sliding mean)")
    left.set_title("step size (unit inputs, PyTorch init)")
    if len(other):
        same_rates = printed[printed.lr.isin(set(other.lr))]
        curve(pd.concat([same_rates, other]), "online_accuracy", right, window, "")
    else:
        right.text(0.5, 0.5, "no other reading stored yet", ha="center", va="center", transform=right.transAxes)
    right.set_title("other readings beside the printed one")
    for ax in (left, right):
        ax.axhline(COLLAPSE_BELOW, color="0.4", linestyle=":", linewidth=1)
        ax.set_xlim(0, horizon)
    fig.tight_layout()
    return fig


@styled
def collapse_vs_rate(table: pd.DataFrame, horizon: int, title: str = ""):
    """Collapse task against step size, one line per learner: each seed a point (hollow at the
    horizon where it did not collapse), the line the mean over seeds with its 95% CI (a seed that did
    not collapse counting as the horizon, so the line is a lower bound where any did not)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    names = list(dict.fromkeys(table["learner"]))
    palette = dict(zip(names, sns.color_palette("colorblind")))
    for i, name in enumerate(names):
        rows = table[table.learner == name].sort_values("lr")
        shift = 1.0 + 0.012 * (i - (len(names) - 1) / 2)  # spread the learners' points a little
        low = rows["mean"] - rows["ci_low"].fillna(rows["mean"])
        high = rows["ci_high"].fillna(rows["mean"]) - rows["mean"]
        ax.errorbar(
            rows.lr * shift,
            rows["mean"],
            yerr=[low, high],
            color=palette[name],
            marker="o",
            capsize=3,
            linewidth=1.8,
            label=name,
        )
        for lr, seeds in zip(rows.lr, rows["per_seed"], strict=True):
            hit = [c for c in seeds if c < horizon]
            ax.scatter([lr * shift] * len(hit), hit, color=palette[name], s=14, alpha=0.6)
            ax.scatter(
                [lr * shift] * (len(seeds) - len(hit)),
                [horizon] * (len(seeds) - len(hit)),
                facecolors="none",
                edgecolors=palette[name],
                s=30,
            )
    ax.axhline(horizon, color="0.4", linestyle=":", linewidth=1)
    ax.set_xscale("log")
    lrs = sorted(set(table.lr))
    ax.set_xticks(lrs, [f"{lr:g}" for lr in lrs])
    ax.minorticks_off()
    ax.set_xlabel("step size (log scale)")
    ax.set_ylabel(f"collapse task (horizon {horizon}: no collapse)")
    ax.legend(frameon=False, fontsize="small")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


@styled
def curves_by_rate(df: pd.DataFrame, lrs, horizon: int, window: int = WINDOW):
    """Online accuracy (sliding mean, band over seeds) of every learner, one panel per step size of
    `lrs` that `df` holds (None if it holds none)."""
    lrs = [lr for lr in lrs if lr in set(df.lr)]
    if not lrs:
        return None
    palette = dict(zip(df["learner_name"].unique(), sns.color_palette("colorblind")))
    fig, axes = plt.subplots(1, len(lrs), figsize=(4.2 * len(lrs), 3.8), squeeze=False, sharey=True)
    for ax, lr in zip(axes[0], lrs, strict=True):
        rows = df[df.lr == lr]
        curve(
            rows.assign(label=rows.learner_name),
            "online_accuracy",
            ax,
            window,
            f"online accuracy ({window}-task sliding mean)",
            palette,
        )
        ax.axhline(COLLAPSE_BELOW, color="0.4", linestyle=":", linewidth=1)
        ax.set_xlim(0, horizon)
        ax.set_title(f"lr = {lr:g}")
        if ax is not axes[0][-1]:
            ax.get_legend().remove()
    fig.tight_layout()
    return fig
