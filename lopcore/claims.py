"""The paper's qualitative claims as explicit predicates over tidy result frames.

Each claim returns (holds, evidence): a verdict computed from the results and the numbers behind
it. A claim that does not hold is a finding, reported as such, never hidden.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .plotting import COLLAPSE_BELOW, WINDOW, collapse_task, smoothed


def collapse_tasks(df: pd.DataFrame, label: str) -> list[float]:
    """Each seed's collapse task for one label (NaN: no collapse within the run)."""
    runs = df[df.label == label].assign(sliding=lambda d: smoothed(d, "online_accuracy", WINDOW))
    return [collapse_task(g["sliding"], g["task"]) for _, g in runs.groupby("run", sort=False)]


def _median_collapse(df, label) -> float:
    """Median collapse task over seeds, a run that never collapses counting as the horizon."""
    horizon = df["task"].max() + 1
    return float(np.median([horizon if np.isnan(c) else c for c in collapse_tasks(df, label)]))


def _show(tasks) -> str:
    return "[" + ", ".join("none" if np.isnan(t) else str(int(t)) for t in tasks) + "]"


def final_mean(df: pd.DataFrame, label: str, column: str) -> float:
    """Seed mean of a metric at the last task."""
    d = df[df.label == label]
    return float(d.loc[d.task == d.task.max(), column].mean())


def baseline_collapses_by(df, by_task: int = 200, baseline: str = "baseline"):
    median = _median_collapse(df, baseline)
    return median <= by_task, f"baseline collapse tasks per seed {_show(collapse_tasks(df, baseline))}"


def never_collapses(df, label: str):
    tasks = collapse_tasks(df, label)
    worst = df[df.label == label].assign(s=lambda d: smoothed(d, "online_accuracy", WINDOW))["s"].min()
    return all(np.isnan(tasks)), f"{label}: collapse tasks {_show(tasks)}, lowest sliding accuracy {worst:.3f}"


def collapses_later(df, later: str, than: str = "baseline"):
    a, b = _median_collapse(df, later), _median_collapse(df, than)
    horizon = df["task"].max() + 1
    holds = a > b and b < horizon  # "later" needs the reference to collapse at all
    return holds, (f"median collapse task {later}: {a:.0f}, {than}: {b:.0f} "
                   f"({horizon:.0f} = no collapse within the run)")


def slower_weight_growth(df, better: str, than: str = "baseline"):
    a, b = final_mean(df, better, "weight_norm"), final_mean(df, than, "weight_norm")
    return a < b, f"final weight norm {better}: {a:.3g}, {than}: {b:.3g}"


def fig2_claims(df: pd.DataFrame) -> pd.DataFrame:
    """Iqbal's Figure 2 claims evaluated on fig2's results (labels as in `figures.fig2`)."""
    labels = set(df.label)
    checks = [("The baseline collapses by about task 200", baseline_collapses_by, ())]
    if "persistent n=2" in labels:
        checks += [("Persistent state, n = 2: no collapse over the whole run", never_collapses, ("persistent n=2",)),
                   ("Persistent state, n = 2: slower weight-norm growth than the baseline",
                    slower_weight_growth, ("persistent n=2",))]
    if "persistent n=1" in labels:
        checks += [("Persistent state, n = 1: collapses later than the baseline", collapses_later,
                    ("persistent n=1",))]
    rows = []
    for claim, predicate, args in checks:
        holds, evidence = predicate(df, *args)
        rows.append({"claim": claim, "verdict": "✓" if holds else "✗", "evidence": evidence})
    out = pd.DataFrame(rows)
    out.attrs["definition"] = (f"collapse = first task whose {WINDOW}-task sliding online accuracy "
                               f"is below {COLLAPSE_BELOW}")
    return out
