"""Figures of "Loss of Plasticity in Recurrent Models" (Khan et al.) from tidy result frames
(`khan.figures.load_figure`), drawn with the shared `study.curve`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from ...study import curve, styled


@styled
def task_accuracy(df: pd.DataFrame, title: str = "", panels: str | None = None):
    """The recurrent report's figures: A_k, the test accuracy at the end of each task, per task (no
    smoothing: the report plots it raw); the line is the seed mean and the band spans the seeds.

    panels None: one panel, a line per label. "label": a panel per label (the language figure's
    reshuffle and binary streams, whose chance levels differ). "H": labels "T=.., H=.." (Figure 6),
    a panel per width H with a line per sequence length T."""
    if panels == "H":
        parts = df["label"].str.split(", ", n=1, expand=True)
        df = df.assign(label=parts[0], panel=parts[1])
    elif panels == "label":
        df = df.assign(panel=df["label"])
    else:
        df = df.assign(panel="")
    names = list(df["panel"].unique())
    fig, axes = plt.subplots(1, len(names), figsize=(min(6 * len(names), 16), 4.2), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], names):
        curve(df[df.panel == name], "test_accuracy", ax, None, "test accuracy at task end, $A_k$")
        ax.set_title(name)
        if panels == "label":
            ax.get_legend().remove()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
