"""Iqbal's claims ("persistent internal state") as explicit predicates over tidy result frames.

A claim is (text, predicate, labels it needs; `study.Claim`). A predicate returns (holds, evidence): a verdict
computed from the results and the numbers behind it. A claim whose labels are absent from the
frame (a figure run with other parameters) is skipped; one that does not hold is a finding,
reported as such, never hidden. `CLAIMS[figure]` lists each figure's claims; `evaluate` turns
them into a table, and the book's scoreboard evaluates them all.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from ...study import (
    COLLAPSE_BELOW,
    PENDING,
    WINDOW,
    Claim,
    collapse_task,
    failure_modes,
    labels_in,
    load_runs,
    mean_ci,
    mean_se,
    progress_table,
    smoothed,
    stored_by_line,
    stored_lines,
    waiting_for,
)
from ...study import evaluate as study_evaluate

LATE = 100  # "late" accuracy: the mean over a run's last 100 tasks
SAME = 0.02  # accuracies closer than this count as "about the same"
CHANCE = 0.1  # accuracy of a guess among the 10 classes of every Iqbal task


# --- statistics over seeds -------------------------------------------------------------------


def collapse_tasks(df: pd.DataFrame, label: str) -> list[float]:
    """Each seed's collapse task for one label (NaN: no collapse within the run)."""
    runs = df[df.label == label].assign(sliding=lambda d: smoothed(d, "online_accuracy", WINDOW))
    return [collapse_task(g["sliding"], g["task"]) for _, g in runs.groupby("run", sort=False)]


def collapse_statistic(df: pd.DataFrame) -> pd.DataFrame:
    """Per label: how many seeds collapsed, and the mean collapse task of those that did with a
    95% confidence interval (Student t over seeds; none with fewer than two collapsed seeds)."""
    rows = []
    for label in df.label.unique():
        tasks = np.array(collapse_tasks(df, label))
        hit = tasks[~np.isnan(tasks)]
        mean, low, high = mean_ci(hit) if len(hit) else (np.nan, np.nan, np.nan)
        rows.append(
            {
                "label": label,
                "seeds collapsed": f"{len(hit)} of {len(tasks)}",
                "mean collapse task": round(mean, 1),
                "95% CI": "-" if np.isnan(low) else f"{low:.0f} to {high:.0f}",
            }
        )
    return pd.DataFrame(rows).set_index("label")


def collapse_by_seed(df: pd.DataFrame, label: str) -> pd.Series:
    """Each seed's collapse task for one label, indexed by seed; a run that never collapses counts
    as its length (censored: a lower bound)."""
    runs = df[df.label == label].drop_duplicates("run")
    tasks = np.array(collapse_tasks(df, label))
    return pd.Series(np.where(np.isnan(tasks), df.task.max() + 1, tasks), index=runs.seed.to_numpy(), name=label)


def paired_collapse(df: pd.DataFrame, label: str, than: str = "baseline") -> tuple[float, float, float, int]:
    """`label`'s collapse task minus `than`'s, paired by seed (both censored at the run's length):
    the mean difference, its 95% confidence interval and the number of seeds paired."""
    a, b = collapse_by_seed(df, label), collapse_by_seed(df, than)
    seeds = sorted(set(a.index) & set(b.index))
    return (*mean_ci(a[seeds].to_numpy() - b[seeds].to_numpy()), len(seeds))


def per_seed(
    df: pd.DataFrame,
    label: str,
    column: str = "online_accuracy",
    last: int | None = LATE,
    tasks: pd.Series | None = None,
) -> np.ndarray:
    """Each seed's mean of `column` over its last `last` tasks (all tasks if None)."""
    d = df[df.label == label]
    if tasks is not None:
        d = d[d.task.isin(tasks)]
    if last is not None:
        d = d[d.task >= d.task.max() + 1 - last]
    return d.groupby("run", sort=False)[column].mean().to_numpy()


def _show_tasks(tasks) -> str:
    return "[" + ", ".join("none" if np.isnan(t) else str(int(t)) for t in tasks) + "]"


def _median_collapse(df, label) -> float:
    """Median collapse task over seeds, a run that never collapses counting as the horizon."""
    horizon = df["task"].max() + 1
    return float(np.median([horizon if np.isnan(c) else c for c in collapse_tasks(df, label)]))


def line_key(label: str) -> str:
    """A figure line's short name in the numbers a page glues for the book: baseline, cbp, n1,
    n2_cbp, zero and random (Fig. 6's ablations of n = 2), n2_d128 (Fig. 3), n4."""
    for long, short in (("persistent ", ""), (" state n=2", ""), (" + ", "_"), (", d=", "_d"), ("=", ""), (" ", "_")):
        label = label.replace(long, short)
    return label.lower()


def collapse_table(df: pd.DataFrame, than: str = "baseline") -> tuple[pd.DataFrame, dict[str, float]]:
    """Per line of `df`: its collapse task per seed (one that never collapses counting as the run's
    length), their mean, and its difference from `than`'s paired by seed with a 95% CI; and the
    numbers a page glues for the book, named by `line_key`: regime_collapse_<key> (mean; _first and
    _last: the earliest and latest seed), regime_start_<key> (online accuracy over tasks 0-9) and
    regime_minus_<than's key>_<key> (_low, _high: its CI), e.g. regime_minus_baseline_n2."""
    rows, numbers = [], {}
    minus, paired = f"minus {than} (paired)", len(df) > 0 and than in set(df.label)
    for label in df.label.unique() if len(df) else []:
        key, tasks = line_key(label), collapse_by_seed(df, label)
        numbers |= {
            f"regime_collapse_{key}": tasks.mean(),
            f"regime_collapse_{key}_first": tasks.min(),
            f"regime_collapse_{key}_last": tasks.max(),
            f"regime_start_{key}": per_seed(df, label, last=None, tasks=range(10)).mean(),
        }
        row = {"line": label, "collapse task per seed": ", ".join(f"{t:.0f}" for t in tasks), "mean": tasks.mean()}
        if paired and label != than:
            mean, low, high, _ = paired_collapse(df, label, than)
            name = f"regime_minus_{line_key(than)}_{key}"
            numbers |= {name: mean, f"{name}_low": low, f"{name}_high": high}
            row |= {minus: mean, "95% CI": f"{low:+.0f} to {high:+.0f}"}
        rows.append(row)
    table = pd.DataFrame(rows, columns=["line", "collapse task per seed", "mean", minus, "95% CI"])
    return table.set_index("line").fillna({"95% CI": "-"}), numbers


def failure_numbers(modes: pd.DataFrame) -> dict[str, float]:
    """The numbers a page glues from `study.failure_modes`, per line (`line_key`): regime_diverged_<key>
    (seeds whose loss turned non-finite), regime_dead_end_<key> (median dead % at the last task),
    regime_weight_end_<key> and regime_weight_max_<key> (median and largest mean |W| there)."""
    columns = {
        "diverged": "n_diverged",
        "dead_end": "dead % at end",
        "weight_end": "mean |W| at end",
        "weight_max": "largest mean |W|",
    }
    return {
        f"regime_{name}_{line_key(label)}": row[c] for label, row in modes.iterrows() for name, c in columns.items()
    }


def regime_tables(df: pd.DataFrame, than: str = "baseline") -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """What a figure page's regime section shows and glues: `collapse_table` (each line's collapse
    task per seed, paired with `than`), `study.failure_modes` (how its seeds fail) and the numbers
    of both (`collapse_table`'s and `failure_numbers`'). Empty frames where `df` has no line yet."""
    table, numbers = collapse_table(df, than)  # empty, with no numbers, where df is
    if not len(df):
        return table, pd.DataFrame(), numbers
    modes = failure_modes(df)
    return table, modes, numbers | failure_numbers(modes)


def final_mean(df: pd.DataFrame, label: str, column: str) -> float:
    """Seed mean of a metric at the last task."""
    d = df[df.label == label]
    return float(d.loc[d.task == d.task.max(), column].mean())


# --- predicates --------------------------------------------------------------------------------


def collapses_by(df, label: str = "baseline", by_task: int = 200):
    median = _median_collapse(df, label)  # a run that never collapses counts as the horizon
    holds = median <= by_task and median < df["task"].max() + 1
    return holds, f"{label}: collapse task per seed {_show_tasks(collapse_tasks(df, label))}"


def never_collapses(df, label: str):
    tasks = collapse_tasks(df, label)
    worst = df[df.label == label].assign(s=lambda d: smoothed(d, "online_accuracy", WINDOW))["s"].min()
    return all(np.isnan(tasks)), f"{label}: collapse tasks {_show_tasks(tasks)}, lowest sliding accuracy {worst:.3f}"


def collapses_later(df, later: str, than: str = "baseline"):
    """`later` collapses later than `than`, which collapses at all (median within the run): the
    seed-paired difference of collapse tasks (each censored at the run's length) has a 95% CI above
    zero, as the boundary's claims ask; a single seed: its difference alone decides. A median a task
    later is not "later": at lr 0.125 n = 1's median is the baseline's plus one, the paired mean +0.2."""
    a, b = _median_collapse(df, later), _median_collapse(df, than)
    horizon = df["task"].max() + 1
    mean, low, high, seeds = paired_collapse(df, later, than)
    holds = b < horizon and (low > 0 if seeds > 1 else mean > 0)  # "later" needs the reference to collapse
    return holds, (
        f"median collapse task {later}: {a:.0f}, {than}: {b:.0f} ({horizon:.0f} = no collapse within the run); "
        f"{later} minus {than}, paired by seed: {mean:+.1f} tasks (95% CI {low:+.0f} to {high:+.0f}, {seeds} seeds)"
    )


def at_chance(*accuracies: float) -> str:
    """The note a comparison of late accuracies carries where every one of them is within SAME of
    chance: collapsed lines are "about the same" whatever they were before, so a verdict on their
    order says nothing about the learners."""
    if all(a < CHANCE + SAME for a in accuracies):
        return f"; all at chance ({CHANCE:.2f}): collapsed lines, an empty comparison"
    return ""


def better_late(df, better: str, than: str, margin: float = 0.0):
    """`better`'s late online accuracy exceeds `than`'s by more than `margin` plus two standard errors."""
    (a, sa), (b, sb) = mean_se(per_seed(df, better)), mean_se(per_seed(df, than))
    se = float(np.hypot(sa, sb)) if not np.isnan(sa + sb) else 0.0  # a single seed: its mean alone decides
    return a - b > margin + 2 * se, (
        f"online accuracy, last {LATE} tasks: {better} {a:.3f} ± {sa:.3f}, "
        f"{than} {b:.3f} ± {sb:.3f} (mean ± s.e. over seeds)" + at_chance(a, b)
    )


def at_least_as_good_late(df, label: str, than: str):
    """`label`'s late online accuracy is not below `than`'s by more than SAME."""
    a, b = per_seed(df, label).mean(), per_seed(df, than).mean()
    return a >= b - SAME, f"online accuracy, last {LATE} tasks: {label} {a:.3f}, {than} {b:.3f}" + at_chance(a, b)


def keeps_plasticity(df, label: str):
    """No loss of plasticity: the last tasks' online accuracy is within SAME of the first tasks'."""
    first = per_seed(df[df.task < LATE], label).mean()
    last = per_seed(df, label).mean()
    return last >= first - SAME, f"{label}: online accuracy, first {LATE} tasks {first:.3f}, last {LATE} {last:.3f}"


def slower_weight_growth(df, better: str, than: str = "baseline"):
    """The paper's normalised weight norm ‖θ‖₂/N_θ ends lower. The evidence also gives the plain ‖θ‖₂:
    the persistent state has more parameters, which alone lowers the normalised norm."""
    a, b = final_mean(df, better, "weight_norm"), final_mean(df, than, "weight_norm")
    plain = df.assign(weight_l2=df.weight_norm * df.n_params)
    pa, pb = final_mean(plain, better, "weight_l2"), final_mean(plain, than, "weight_l2")
    return a < b, (f"final weight norm ‖θ‖₂/N_θ {better}: {a:.3g}, {than}: {b:.3g} (plain ‖θ‖₂: {pa:.1f} and {pb:.1f})")


def like_baseline_not_state(df, ablation: str, baseline: str = "baseline", state: str = "persistent n=2"):
    """The ablation's late accuracy is closer to the baseline's than to the learned state's. Only
    testable where the learned state and the baseline differ by more than SAME: otherwise every
    ablation is "like the baseline" and "like the state" at once, and the claim is not supported."""
    a, b, s = (per_seed(df, x).mean() for x in (ablation, baseline, state))
    evidence = f"online accuracy, last {LATE} tasks: {ablation} {a:.3f}, {baseline} {b:.3f}, {state} {s:.3f}"
    if abs(b - s) <= SAME:
        return False, evidence + f" (untestable: {state} and {baseline} are within {SAME})"
    return abs(a - b) < abs(a - s), evidence


def best_of(df, best: str, others: tuple[str, ...]):
    """`best`'s late online accuracy is at least every other's, up to SAME."""
    means = {label: per_seed(df, label).mean() for label in (best, *others)}
    holds = all(means[best] >= means[o] - SAME for o in others)
    shown = ", ".join(f"{k} {v:.3f}" for k, v in means.items())
    return holds, f"online accuracy, last {LATE} tasks: {shown}" + at_chance(*means.values())


def same_ranking(df, labels: tuple[str, ...]):
    """End-of-task test accuracy orders these learners as online accuracy does: whenever one's late
    online accuracy beats another's by more than SAME, its late test accuracy is higher too (pairs
    closer than that in online accuracy constrain nothing)."""
    online = {x: per_seed(df, x).mean() for x in labels}
    test = {x: per_seed(df, x, "test_accuracy").mean() for x in labels}
    broken = [(a, b) for a in labels for b in labels if online[a] - online[b] > SAME and test[a] <= test[b]]
    return not broken, "late online / test accuracy: " + ", ".join(
        f"{x} {online[x]:.3f} / {test[x]:.3f}" for x in labels
    ) + (f"; order broken for {broken}" if broken else "") + at_chance(*online.values(), *test.values())


def fashion_accuracies(df, label: str, alone: pd.DataFrame, alone_label: str) -> tuple[float, float, int]:
    """Fig. 7's comparison: `label`'s mean online accuracy over the alternating stream's Fashion-MNIST
    tasks, `alone_label`'s over as many tasks of a stream of Fashion-MNIST only (seed means), and how
    many tasks that is."""
    fashion = df.loc[(df.label == label) & (df.dataset == "fashion_mnist"), "task"].unique()
    a = per_seed(df, label, last=None, tasks=fashion).mean()
    b = per_seed(alone, alone_label, last=None, tasks=pd.Series(range(len(fashion)))).mean()
    return a, b, len(fashion)


def alternation_does_not_hurt(df, label: str, alone: pd.DataFrame, alone_label: str):
    """On the Fashion-MNIST tasks of the alternating stream, `label` does about as well (within SAME)
    as `alone_label` does on a stream of Fashion-MNIST tasks only (the same number of tasks)."""
    a, b, tasks = fashion_accuracies(df, label, alone, alone_label)
    return a >= b - SAME, (
        f"mean online accuracy on Fashion-MNIST tasks: {label} alternating {a:.3f}, "
        f"{alone_label} on Fashion-MNIST alone {b:.3f} (first {tasks} tasks)" + at_chance(a, b)
    )


def choose_cbp_rate(df: pd.DataFrame, tolerance: float = 0.005) -> tuple[float, pd.Series]:
    """The CBP sweep's rule: the smallest replacement rate whose late online accuracy (seed mean) is
    within `tolerance` of the best rate's. Smaller rates disturb the network less, and differences
    below the tolerance are within the seeds' spread. Returns (rate, late accuracy per rate)."""
    rates = df.drop_duplicates("label").set_index("label")["replacement_rate"]
    late = pd.Series({rates[label]: per_seed(df, label).mean() for label in rates.index}).sort_index()
    return float(late.index[late >= late.max() - tolerance][0]), late.rename("late online accuracy")


# --- the claims of each figure -----------------------------------------------------------------

CLAIMS: dict[str, list[Claim]] = {
    "fig2": [
        ("The baseline collapses by about task 200", collapses_by, ("baseline",)),
        ("Persistent state, n = 2: no collapse over the whole run", never_collapses, ("persistent n=2",)),
        ("Persistent state, n = 1: collapses later than the baseline", collapses_later, ("persistent n=1",)),
        (
            "Persistent state, n = 2: higher late online accuracy than the baseline",
            better_late,
            ("persistent n=2", "baseline"),
        ),
        (
            "Persistent state, n = 2: slower weight-norm growth than the baseline",
            slower_weight_growth,
            ("persistent n=2",),
        ),
        ("CBP keeps its plasticity (Dohare et al.)", keeps_plasticity, ("CBP",)),
    ],
    "fig3": [
        ("Fashion-MNIST: the baseline collapses within the run", collapses_by, ("baseline", 10**9)),
        ("Fashion-MNIST: n = 1 collapses later than the baseline", collapses_later, ("persistent n=1, d=256",)),
        ("Fashion-MNIST: n = 2 beats n = 1 (d = 256)", better_late, ("persistent n=2, d=256", "persistent n=1, d=256")),
        (
            "Fashion-MNIST: d_int = 256 at least as good as 128 (n = 2)",
            at_least_as_good_late,
            ("persistent n=2, d=256", "persistent n=2, d=128"),
        ),
        (
            "Fashion-MNIST: d_int = 256 at least as good as 128 (n = 1)",
            at_least_as_good_late,
            ("persistent n=1, d=256", "persistent n=1, d=128"),
        ),
        (
            "Fashion-MNIST: n = 2 has slower weight-norm growth than the baseline",
            slower_weight_growth,
            ("persistent n=2, d=256",),
        ),
    ],
    "fig4": [
        ("n = 4 is worse than n = 2", better_late, ("persistent n=2", "persistent n=4")),
        (
            "n = 2 is the best of n in {1, 2, 4} (up to 0.02)",
            best_of,
            ("persistent n=2", ("persistent n=1", "persistent n=4")),
        ),
    ],
    "fig5": [
        (
            "MNIST: test accuracy ranks the learners as online accuracy does",
            same_ranking,
            (("MNIST · baseline", "MNIST · persistent n=1", "MNIST · persistent n=2"),),
        ),
        (
            "Fashion-MNIST: test accuracy ranks the learners as online accuracy does",
            same_ranking,
            (
                (
                    "Fashion-MNIST · baseline",
                    "Fashion-MNIST · persistent n=1, d=256",
                    "Fashion-MNIST · persistent n=2, d=256",
                ),
            ),
        ),
    ],
    "fig6": [
        (
            "State frozen at zero behaves like the baseline, not like the learned state",
            like_baseline_not_state,
            ("zero state n=2",),
        ),
        (
            "Random state (learned norm) behaves like the baseline, not like the learned state",
            like_baseline_not_state,
            ("random state n=2",),
        ),
    ],
}


DEFINITION = (
    f"collapse = first task whose {WINDOW}-task sliding online accuracy "
    f"is below {COLLAPSE_BELOW}; late = last {LATE} tasks; 'about the "
    f"same' = within {SAME}; 'collapses later' = the seed-paired difference of collapse tasks has a 95% "
    f"CI above zero"
)


def evaluate(claims: list[Claim], df: pd.DataFrame, pending: Callable[[set[str]], str] | None = None) -> pd.DataFrame:
    """`study.evaluate` with Iqbal's terms: the predicates that compare with the baseline need it,
    and the table's definition is DEFINITION (see `study.evaluate` for `pending`)."""
    return study_evaluate(
        claims, df, needs_baseline=(collapses_later, slower_weight_growth), definition=DEFINITION, pending=pending
    )


def figure_claims(figure: str, df: pd.DataFrame, pending: Callable[[set[str]], str] | None = None) -> pd.DataFrame:
    """The verdicts of one figure's claims on its results (see `evaluate` for `pending`)."""
    return evaluate(CLAIMS.get(figure, []), df, pending=pending)


def alternation_claims(
    df: pd.DataFrame,
    alone: pd.DataFrame,
    n: int = 2,
    d_int: int = 256,
    pending: Callable[[set[str]], str] | None = None,
) -> pd.DataFrame:
    """Fig. 7's claim: `df` holds the alternating runs, `alone` Fig. 3's runs on Fashion-MNIST only."""
    label, alone_label = f"persistent n={n}", f"persistent n={n}, d={d_int}"
    text = f"Alternating with MNIST does not hurt the persistent state (n = {n}) on Fashion-MNIST"
    absent = ({label} - labels_in(df)) | ({alone_label} - labels_in(alone))
    if absent and pending is not None:
        row = {"claim": text, "verdict": PENDING, "evidence": pending(absent)}
    else:
        holds, evidence = alternation_does_not_hurt(df, label, alone, alone_label)
        row = {"claim": text, "verdict": "✓" if holds else "✗", "evidence": evidence}
    out = pd.DataFrame([row])
    out.attrs["definition"] = DEFINITION
    return out


def scoreboard(
    scale: str = "small",
    device: str = "auto",
    progress: bool = False,
    seeds: int | None = None,
    stored_only: bool = False,
    regime: str = "printed",
) -> pd.DataFrame:
    """Every figure's claims, evaluated on its results at `scale` in `regime` (figures.REGIMES: the
    printed step size, or the paper's regime where the baseline collapses) with `seeds` seeds per
    line (default: PAPER_SEEDS at paper scale, else each figure's own default).

    With `stored_only` nothing is computed: each claim is evaluated on the lines whose seeds are all
    in the store, and a claim that needs a line not complete yet is listed as "pending", with how
    many of that line's runs are stored. This is the paper-scale board while its runs come in.
    """
    # late: the figures sit on the engine
    from .figures import DEFAULT_SEEDS, PAPER_SEEDS, alone_runs, figure_runs

    def lines(runs) -> tuple[pd.DataFrame, dict[str, list[bool]]]:
        """The runs' results (with `stored_only`, only their complete lines) and, with `stored_only`,
        per label which of its runs are stored."""
        if not stored_only:
            return load_runs(runs, scale, device, progress=progress), {}
        return stored_lines(runs, scale, progress=progress), stored_by_line(runs)

    def waiting(stored: dict[str, list[bool]]) -> Callable[[set[str]], str | None] | None:
        return waiting_for(progress_table(stored)) if stored_only else None

    def n_seeds(df):
        return df.seed.nunique() if len(df) else 0

    def seeds_of(figure: str) -> int:
        return seeds or (PAPER_SEEDS if scale == "paper" else DEFAULT_SEEDS[figure])

    tables = []
    for figure in ("fig2", "fig3", "fig4", "fig5", "fig6"):
        df, stored = lines(figure_runs(figure, scale, seeds_of(figure), regime))
        tables.append(figure_claims(figure, df, waiting(stored)).assign(figure=figure, seeds=n_seeds(df)))
    alt, stored = lines(figure_runs("fig7", scale, seeds_of("fig7"), regime))
    alone, stored_alone = lines(alone_runs(scale, seeds_of("fig3"), regime=regime))
    tables.append(
        alternation_claims(alt, alone, pending=waiting({**stored_alone, **stored})).assign(
            figure="fig7", seeds=n_seeds(alt)
        )
    )
    board = pd.concat(tables, ignore_index=True)[["figure", "claim", "verdict", "evidence", "seeds"]]
    board.attrs["definition"] = tables[0].attrs["definition"]
    board.attrs["regime"] = regime
    return board


def side_by_side(boards: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Scoreboards of several regimes (name -> `scoreboard`) as one table: per (figure, claim) each
    regime's verdict, then each regime's evidence."""
    parts = {name: b.set_index(["figure", "claim"]) for name, b in boards.items()}
    verdicts = pd.concat({name: b.verdict for name, b in parts.items()}, axis=1)
    evidence = pd.concat({f"evidence ({name})": b.evidence for name, b in parts.items()}, axis=1)
    return verdicts.join(evidence)


WHERE_IT_HOLDS = ("both", "printed only", "paper's regime only", "neither", PENDING)


def where_it_holds(printed: pd.DataFrame, regime: pd.DataFrame) -> pd.Series:
    """Per (figure, claim) of two scoreboards (the printed protocol's and the paper's regime's):
    where the claim holds, one of WHERE_IT_HOLDS ("pending" while either verdict is)."""
    a, b = (board.set_index(["figure", "claim"]).verdict for board in (printed, regime))
    a, b = a.align(b)
    names = {(True, True): "both", (True, False): "printed only", (False, True): "paper's regime only"}
    return pd.Series(
        [PENDING if PENDING in (x, y) else names.get((x == "✓", y == "✓"), "neither") for x, y in zip(a, b)],
        index=a.index,
        name="holds",
    )


def where_table(boards: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per (figure, claim): each regime's verdict (`boards`: regime name -> `scoreboard`, "printed"
    and "collapse" among them), then where it holds between the printed protocol and the paper's
    regime (`where_it_holds`): the table the intro pastes."""
    verdicts = pd.concat({name: b.set_index(["figure", "claim"]).verdict for name, b in boards.items()}, axis=1)
    return verdicts.join(where_it_holds(boards["printed"], boards["collapse"]))
