"""What the papers' studies share: the scale of a study, loading a figure's runs from the results
store, claims as predicates and their verdict table, statistics over seeds, the collapse definition,
and the plotting primitives every paper's figures are drawn with.

Each paper (`lopcore.papers`) builds its figures, claims and plots on this module; nothing here
knows a paper's figures.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import seaborn as sns

from . import params
from .engine import run
from .metrics import sliding_mean
from .spec import RunSpec
from .store import Store, spec_key

# --- scales and runs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    """The size of a study's runs: what every paper's scale names (a paper's own scale may add
    fields; the recurrent report's gives n_tasks and examples_per_task per data source)."""

    n_tasks: int
    examples_per_task: int
    test_examples: int
    probe_examples: int


def load_runs(
    runs: list[tuple[str, RunSpec]], scale: str, device: str = "auto", store: Store | None = None, progress: bool = True
) -> pd.DataFrame:
    """The tidy results of (label, run spec) pairs at `scale`, labelled; computes only runs missing
    from the store, and none where $LOPCORE_NO_COMPUTE=1, nor at paper scale where $CI is set."""
    compute = not (os.environ.get("LOPCORE_NO_COMPUTE") == "1" or (scale == "paper" and os.environ.get("CI")))
    df = run([spec for _, spec in runs], device=device, store=store, progress=progress, compute=compute)
    df["label"] = df["run"].map({spec_key(spec.to_dict()): label for label, spec in runs})
    df["scale"] = scale
    return df


def figure_loader(
    figure_runs: Callable[..., list[tuple[str, RunSpec]]],
    scale: str = "small",
    seeds=3,
    then: Callable[[pd.DataFrame, str], pd.DataFrame] | None = None,
    doc: str = "",
) -> Callable[..., pd.DataFrame]:
    """A paper's `load_figure(figure, scale, seeds, device, store, progress, **options)`: the tidy
    results of `figure_runs(figure, scale, seeds, **options)` (`load_runs`: computing only runs missing
    from the store), passed through `then(df, scale)` where given. `scale` and `seeds` are its defaults."""
    default_scale, default_seeds = scale, seeds

    def load_figure(
        figure: str,
        scale: str = default_scale,
        seeds=default_seeds,
        device: str = "auto",
        store: Store | None = None,
        progress: bool = True,
        **options,
    ) -> pd.DataFrame:
        params.device_name(device)
        df = load_runs(figure_runs(figure, scale, seeds, **options), scale, device, store, progress)
        return then(df, scale) if then is not None else df

    load_figure.__doc__ = (doc + "\n\n" if doc else "") + (
        "Computes only runs missing from the store; none where $LOPCORE_NO_COMPUTE=1, and none at paper\n"
        "scale where $CI is set (a cache miss there is an error naming the missing files)."
    )
    load_figure.__module__ = getattr(figure_runs, "__module__", __name__)
    return load_figure


def stored_by_line(runs: list[tuple[str, RunSpec]], store: Store | None = None) -> dict[str, list[bool]]:
    """Per label of (label, run spec) pairs: whether each of its runs is in the store."""
    store = store or Store()
    stored: dict[str, list[bool]] = {}
    for label, spec in runs:
        stored.setdefault(label, []).append(spec.to_dict() in store)
    return stored


def stored_lines(
    runs: list[tuple[str, RunSpec]], scale: str, store: Store | None = None, progress: bool = False
) -> pd.DataFrame:
    """The tidy results of the lines (labels) of `runs` whose runs are all stored (nothing is
    computed); empty if none is complete."""
    complete = {label for label, stored in stored_by_line(runs, store).items() if all(stored)}
    chosen = [(label, s) for label, s in runs if label in complete]
    return load_runs(chosen, scale, store=store, progress=progress) if chosen else pd.DataFrame()


def progress_table(stored: dict[str, list[bool]]) -> pd.DataFrame:
    """Per line of `stored_by_line`'s answer: how many of its runs are stored, and whether all are."""
    return pd.DataFrame(
        [{"line": label, "runs stored": f"{sum(s)} of {len(s)}", "complete": all(s)} for label, s in stored.items()],
        columns=["line", "runs stored", "complete"],
    )


def page_lines(
    runs: list[tuple[str, RunSpec]], scale: str, device: str = "auto", store: Store | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """What a page shows of `runs`: at paper scale only the lines whose runs are all stored (nothing
    computed; hours per line), at other scales every line (computing what is missing); and per line
    how many of its runs are stored."""
    stored = stored_by_line(runs, store)
    progress = progress_table(stored)
    if scale != "paper":
        return load_runs(runs, scale, device, store, progress=False), progress
    return stored_lines(runs, scale, store), progress


# --- statistics over seeds ---------------------------------------------------------------------

T975 = [
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
]  # Student t 97.5% quantiles, 1..20 degrees of freedom


def mean_se(x) -> tuple[float, float]:
    """Mean and standard error of the mean over seeds. The standard error of a single seed is NaN:
    one seed has no spread to estimate, so a test "beyond k standard errors" on it does not pass
    (NaN compares false) unless its caller decides otherwise and says so."""
    x = np.asarray(x, dtype=float)
    return float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


# --- the collapse definition -------------------------------------------------------------------

WINDOW = 20  # Iqbal's sliding-average width, in tasks
COLLAPSE_BELOW = 0.5  # a run has collapsed once its sliding online accuracy falls below this


def mean_ci(x: np.ndarray) -> tuple[float, float, float]:
    """Mean and 95% confidence interval (Student t over the values; NaN bounds for one value)."""
    x = np.asarray(x, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, float("nan"), float("nan")
    half = T975[min(len(x) - 2, len(T975) - 1)] * x.std(ddof=1) / np.sqrt(len(x))
    return mean, mean - half, mean + half


def smoothed(df: pd.DataFrame, column: str, window: int = WINDOW) -> pd.Series:
    """Trailing sliding mean of `column` over tasks, within each run."""
    return df.groupby("run", sort=False)[column].transform(lambda s: sliding_mean(s.to_numpy(), window))


def collapse_task(sliding: pd.Series, tasks: pd.Series, below: float = COLLAPSE_BELOW) -> float:
    """First task whose sliding online accuracy is below `below` (NaN if it never is)."""
    hit = tasks[sliding.to_numpy() < below]
    return float(hit.iloc[0]) if len(hit) else float("nan")


DEAD_COLUMNS = ("dead_fraction_l1", "dead_fraction_l2", "dead_fraction_l3")


def diverged_at(run: pd.DataFrame) -> float:
    """The first task at which one run's loss was non-finite (its `diverged` flag); NaN if none."""
    if "diverged" not in run:
        return float("nan")
    bad = run.loc[run["diverged"].astype(bool), "task"]
    return float(bad.min()) if len(bad) else float("nan")


def failure_modes(df: pd.DataFrame) -> pd.DataFrame:
    """How each line's runs fail, one row per label: a collapse (sliding online accuracy below
    COLLAPSE_BELOW) can come with dead units, as Dohare describes the loss of plasticity, or with
    divergence (the loss turns non-finite: the `diverged` flag), a numerical failure of another kind.
    Columns: seeds; how many collapsed and how many diverged, with the first non-finite task per
    diverged seed and how many diverged no later than their collapse task (the sliding window lags:
    such a collapse is the divergence's doing, not a slow loss of plasticity); at each run's last
    task, the median share of dead hidden units (%) and the median and largest mean |W| over the
    seeds that did not diverge (a diverged run's weights are not numbers)."""
    rows = []
    for label, line in df.groupby("label", sort=False):
        per_seed = []
        for _, g in line.groupby("seed", sort=True):
            g = g.sort_values("task")
            at = diverged_at(g)
            last = g.iloc[-1]
            per_seed.append(
                {
                    "collapse": collapse_task(pd.Series(sliding_mean(g["online_accuracy"].to_numpy(), WINDOW)), g.task),
                    "diverged_at": at,
                    "dead_end": 100 * float(np.mean([last[c] for c in DEAD_COLUMNS])) if np.isnan(at) else np.nan,
                    "weight_end": float(last["mean_abs_weight"]) if np.isnan(at) else np.nan,
                }
            )
        s = pd.DataFrame(per_seed)
        n, healthy = len(s), s[s.diverged_at.isna()]
        rows.append(
            {
                "line": label,
                "seeds": n,
                "collapsed": f"{int(s.collapse.notna().sum())} of {n}",
                "diverged": f"{int(s.diverged_at.notna().sum())} of {n}",
                "diverged at task": ", ".join(str(int(t)) for t in s.diverged_at.dropna()) or "-",
                "diverged first": int((s.diverged_at <= s.collapse).sum()),
                "dead % at end": round(float(healthy.dead_end.median()), 1) if len(healthy) else np.nan,
                "mean |W| at end": round(float(healthy.weight_end.median()), 3) if len(healthy) else np.nan,
                "largest mean |W|": round(float(healthy.weight_end.max()), 3) if len(healthy) else np.nan,
                "n_diverged": int(s.diverged_at.notna().sum()),
            }
        )
    return pd.DataFrame(rows).set_index("line")


def before_divergence(df: pd.DataFrame, tasks: int = 5) -> pd.DataFrame:
    """What each diverged run looked like just before: one row per diverged (label, seed), with the
    first non-finite task and, over the `tasks` tasks before it, the lowest online accuracy, the
    largest mean |W| and the largest share of dead hidden units (%). A run that was healthy until then
    ran away within one task: a step beyond what the loss's curvature allows, not a slow decline."""
    rows = []
    for (label, seed), g in df.groupby(["label", "seed"], sort=False):
        at = diverged_at(g)
        if np.isnan(at):
            continue
        at = int(at)
        before = g[(g.task >= at - tasks) & (g.task < at)]
        rows.append(
            {
                "line": label,
                "seed": int(seed),
                "diverged at task": at,
                "lowest accuracy": float(before.online_accuracy.min()) if len(before) else np.nan,
                "largest mean |W|": float(before.mean_abs_weight.max()) if len(before) else np.nan,
                "most dead %": 100 * float(before[list(DEAD_COLUMNS)].mean(axis=1).max()) if len(before) else np.nan,
            }
        )
    columns = ["line", "seed", "diverged at task", "lowest accuracy", "largest mean |W|", "most dead %"]
    return pd.DataFrame(rows, columns=columns)


# --- claims ------------------------------------------------------------------------------------

# A claim: (text, predicate, arguments). The predicate is called as predicate(df, *arguments) and
# returns (holds, evidence); the labels among the arguments are those the claim needs.
Claim = tuple[str, Callable, tuple]
PENDING = "pending"  # the verdict of a claim whose runs are not all stored yet


def claim_labels(args) -> set[str]:
    """The labels among a claim's arguments (strings, also inside tuples)."""
    out = set()
    for a in args:
        if isinstance(a, str):
            out.add(a)
        elif isinstance(a, tuple):
            out |= claim_labels(a)
    return out


def labels_in(df: pd.DataFrame) -> set[str]:
    """The labels a results frame holds (none in an empty frame, which has no columns)."""
    return set(df.label) if len(df) else set()


def lines_if_all_in(df: pd.DataFrame, labels) -> pd.DataFrame | None:
    """The rows of these lines, or None unless every one of them is in `df` (a page's comparison of
    lines that are not all stored yet shows nothing rather than half of it)."""
    return df[df.label.isin(list(labels))] if set(labels) <= labels_in(df) else None


def evaluate(
    claims: list[Claim],
    df: pd.DataFrame,
    needs_baseline: tuple = (),
    definition: str = "",
    pending: Callable[[set[str]], str | None] | None = None,
) -> pd.DataFrame:
    """Verdict table (claim, verdict, evidence) of the claims whose labels the frame holds; the
    predicates in `needs_baseline` also need the label "baseline". A claim with labels absent is
    skipped, or, given `pending` (absent labels -> text, or None: skip it too), listed with the
    verdict PENDING and that text. `definition` (the terms the verdicts use) is kept in the table's attrs."""
    present = labels_in(df)
    rows = []
    for text, predicate, args in claims:
        needed = claim_labels(args) | ({"baseline"} if predicate in needs_baseline else set())
        if needed - present:
            waiting = None if pending is None else pending(needed - present)
            if waiting is not None:
                rows.append({"claim": text, "verdict": PENDING, "evidence": waiting})
            continue
        holds, evidence = predicate(df, *args)
        rows.append({"claim": text, "verdict": "✓" if holds else "✗", "evidence": evidence})
    out = pd.DataFrame(rows, columns=["claim", "verdict", "evidence"])
    out.attrs["definition"] = definition
    return out


def waiting_for(progress: pd.DataFrame) -> Callable[[set[str]], str | None]:
    """`evaluate`'s `pending` text from a page's progress table (columns line and "runs stored",
    as `page_lines` gives it): which lines a claim waits for, and how many runs each has; None (the
    claim is skipped) when it needs a line the page does not run at all."""
    stored = dict(zip(progress["line"], progress["runs stored"]))
    return lambda absent: (
        None
        if absent - set(stored)
        else "waiting for " + ", ".join(f"{label} ({stored[label]} runs stored)" for label in sorted(absent))
    )


# --- plotting primitives -----------------------------------------------------------------------


def styled(draw):
    """Draw a figure inside seaborn's whitegrid style and notebook context, leaving the caller's own
    matplotlib settings as they were (no global theme is set)."""

    @functools.wraps(draw)
    def inside_style(*args, **kwargs):
        with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
            return draw(*args, **kwargs)

    return inside_style


def curve(
    df: pd.DataFrame,
    column: str,
    ax,
    window: int | None = WINDOW,
    ylabel: str | None = None,
    palette: dict | None = None,
):
    """Per-label curve over tasks: faint per-task seed mean, bold sliding mean, band over seeds
    (colours from `palette`, label -> colour, else in the order the labels appear)."""
    data = df.assign(value=smoothed(df, column, window) if window else df[column])
    palette = palette or dict(zip(data["label"].unique(), sns.color_palette("colorblind")))
    if window:
        sns.lineplot(
            data=df,
            x="task",
            y=column,
            hue="label",
            palette=palette,
            errorbar=None,
            alpha=0.25,
            linewidth=0.6,
            legend=False,
            ax=ax,
        )
    sns.lineplot(data=data, x="task", y="value", hue="label", palette=palette, errorbar=("pi", 100), linewidth=2, ax=ax)
    ax.set_ylabel(ylabel or column.replace("_", " "))
    ax.set_xlabel("task")
    ax.legend(title=None, frameon=False)
    return ax


def summary(df: pd.DataFrame, window: int = WINDOW, first: int = WINDOW, last: int = WINDOW) -> pd.DataFrame:
    """One row per label: early and late online accuracy, the worst sliding accuracy, test accuracy
    and weight norm at the end (means over seeds), and each seed's collapse task ("-" for none)."""
    df = df.assign(sliding=smoothed(df, "online_accuracy", window))
    n_tasks = df["task"].max() + 1
    per_run = df.groupby(["label", "run"], sort=False).apply(
        lambda g: pd.Series(
            {
                f"online acc, first {first}": g.loc[g.task < first, "online_accuracy"].mean(),
                f"online acc, last {last}": g.loc[g.task >= n_tasks - last, "online_accuracy"].mean(),
                "lowest sliding acc": g["sliding"].min(),
                "test acc, end": g.loc[g.task == n_tasks - 1, "test_accuracy"].mean(),
                "weight norm ×1e4, end": 1e4 * g.loc[g.task == n_tasks - 1, "weight_norm"].mean(),
                "collapse": collapse_task(g["sliding"], g["task"]),
            }
        ),
        include_groups=False,
    )
    by_label = per_run.groupby("label", sort=False)
    table = by_label.mean().drop(columns="collapse").round(3)
    table.insert(0, "seeds", by_label.size())
    table["collapse task per seed"] = by_label["collapse"].agg(
        lambda c: ", ".join("-" if pd.isna(v) else str(int(v)) for v in c)
    )
    return table


def provenance(df: pd.DataFrame) -> pd.DataFrame:
    """Where each label's runs were computed: device, seeds, wall time per group, commit, date."""
    runs = df.drop_duplicates("run")
    return runs.groupby("label", sort=False).agg(
        seeds=("seed", "size"),
        device=("device_name", "first"),
        wall_time_s=("wall_time_s", "max"),
        git_commit=("git_commit", lambda c: ", ".join(sorted({v[:12] for v in c}))),
        date=("date", "max"),
    )
