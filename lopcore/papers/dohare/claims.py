"""Dohare's claims about online permuted MNIST (thesis ch. 4; Dohare et al. 2024, Extended Data
Figs. 3-4) as predicates over the tidy frames of `dohare_figures.load_figure`, evaluated by
`claims.evaluate` like Iqbal's.

Runs of different figures have different lengths (100 tasks at `small`, 800 at `paper`, 10 to 1000
in the change-rate study), so every window is a fraction of a run's tasks: *early* is the mean over
its first tenth, *late* over its last tenth, and the *peak* the highest trailing mean over a tenth.
A run *loses plasticity* when its late online accuracy is more than DROP below its peak; a
correlate *rises* (or falls) when its late mean is above (below) its early mean in every seed.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from ...metrics import sliding_mean
from ...study import Claim, evaluate

FRACTION = 0.1  # early / late / peak windows: a tenth of a run's tasks (at least one task)
DROP = 0.01  # loss of plasticity: late online accuracy more than 1 point below the peak
FEW_DEAD = 1.0  # "almost no dead units": under 1% of the hidden units, late
DEFINITION = (
    f"early / late = mean over the first / last {FRACTION:.0%} of a run's tasks; peak = highest "
    f"trailing mean over {FRACTION:.0%} of them; loses plasticity = late online accuracy more than "
    f"{DROP} below the peak in every seed; a correlate rises (falls) = late above (below) early in "
    f"every seed; comparisons between learners use seed means"
)


def window(n_tasks: int) -> int:
    return max(1, round(FRACTION * n_tasks))


def _seeds(df: pd.DataFrame, label: str, column: str) -> list[np.ndarray]:
    """One array per seed (run): `column` over the label's tasks, in task order."""
    d = df[df.label == label].sort_values("task")
    return [g[column].to_numpy(dtype=float) for _, g in d.groupby("run", sort=False)]


def early(df, label, column="online_accuracy") -> np.ndarray:
    return np.array([v[: window(len(v))].mean() for v in _seeds(df, label, column)])


def late(df, label, column="online_accuracy") -> np.ndarray:
    return np.array([v[-window(len(v)) :].mean() for v in _seeds(df, label, column)])


def peak(df, label, column="online_accuracy") -> np.ndarray:
    """Each seed's highest trailing mean over a tenth of its tasks (full windows only)."""
    return np.array([sliding_mean(v, window(len(v)))[window(len(v)) - 1 :].max() for v in _seeds(df, label, column)])


def drop(df, label) -> np.ndarray:
    """Each seed's fall of online accuracy from its peak to its late mean (positive: a loss)."""
    return peak(df, label) - late(df, label)


def _list(values) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in values) + "]"


# --- predicates: (holds, evidence) -------------------------------------------------------------


def loses_plasticity(df, label):
    p, lt = peak(df, label), late(df, label)
    return bool(np.all(p - lt > DROP)), (
        f"{label}: peak {p.mean():.3f}, late {lt.mean():.3f}, drop per seed {_list(p - lt)}"
    )


def rises_first(df, label):
    """Accuracy rises above the first task's before it falls: the peak exceeds task 0's by more than DROP."""
    first = np.array([v[0] for v in _seeds(df, label, "online_accuracy")])
    p = peak(df, label)
    return bool((p - first).mean() > DROP), f"{label}: first task {first.mean():.3f}, peak {p.mean():.3f}"


def best_overall(df, best, others):
    """`best` has the highest mean online accuracy over all tasks (seed means)."""
    means = {x: df.loc[df.label == x, "online_accuracy"].mean() for x in (best, *others)}
    return all(means[best] > means[o] for o in others), "mean online accuracy, all tasks: " + ", ".join(
        f"{k} {v:.3f}" for k, v in means.items()
    )


def drops_in_order(df, labels):
    """The relative drop (peak − late) / peak is larger for each label than for the next one."""
    rel = {x: (drop(df, x) / peak(df, x)).mean() for x in labels}
    values = list(rel.values())
    holds = all(a > b for a, b in zip(values, values[1:]))
    return holds, "relative drop from the peak: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in rel.items())


def _trend(df, labels, column, rising: bool):
    changes = {x: late(df, x, column) - early(df, x, column) for x in labels}
    holds = all(np.all(c > 0) if rising else np.all(c < 0) for c in changes.values())
    return holds, f"{column}, early → late: " + "; ".join(
        f"{x} {early(df, x, column).mean():.4g} → {late(df, x, column).mean():.4g}" for x in labels
    )


def rises(df, labels, column):
    return _trend(df, labels, column, rising=True)


def falls(df, labels, column):
    return _trend(df, labels, column, rising=False)


def most_at_end(df, label, others, column):
    values = {x: late(df, x, column).mean() for x in (label, *others)}
    return all(values[label] > values[o] for o in others), f"{column}, late: " + ", ".join(
        f"{k} {v:.4g}" for k, v in values.items()
    )


def less_at_end(df, labels, than, column):
    values = {x: late(df, x, column).mean() for x in (*labels, than)}
    return all(values[x] < values[than] for x in labels), f"{column}, late: " + ", ".join(
        f"{k} {v:.4g}" for k, v in values.items()
    )


def better_throughout(df, label, than):
    """In every tenth of the run, `label`'s mean online accuracy is above `than`'s (seed means)."""

    def blocks(x):
        d = df[df.label == x]
        w = window(d.task.nunique())
        return d.groupby(d.task // w)["online_accuracy"].mean()

    a, b = blocks(label), blocks(than)
    worst = (a - b).min()
    return bool((a > b).all()), (
        f"online accuracy per tenth of the run, {label} − {than}: lowest {worst:+.3f}, "
        f"{int((a > b).sum())} of {len(a)} tenths above"
    )


def almost_no_drop(df, label):
    d = drop(df, label)
    return bool(d.mean() <= DROP), f"{label}: drop from peak to late, per seed {_list(d)}"


def best_late(df, best, others):
    values = {x: late(df, x).mean() for x in (best, *others)}
    return all(values[best] > values[o] for o in others), "late online accuracy: " + ", ".join(
        f"{k} {v:.3f}" for k, v in values.items()
    )


def worse_late(df, label, than):
    a, b = late(df, label).mean(), late(df, than).mean()
    return bool(a < b), f"late online accuracy: {label} {a:.3f}, {than} {b:.3f}"


def better_early_worse_late(df, label, than):
    ea, eb, la, lb = early(df, label).mean(), early(df, than).mean(), late(df, label).mean(), late(df, than).mean()
    return bool(ea > eb and la < lb), (
        f"online accuracy early / late: {label} {ea:.3f} / {la:.3f}, {than} {eb:.3f} / {lb:.3f}"
    )


def few_dead(df, label):
    v = late(df, label, "dead_percent")
    return bool(v.mean() < FEW_DEAD), f"{label}: dead units, late, per seed {_list(v)} %"


# --- each figure's claims ---------------------------------------------------------------------


def on(column: str, predicate):
    """`predicate` applied to `column` (claims.evaluate reads a claim's string arguments as labels)."""
    return functools.partial(predicate, column=column)


def _claims(figure: str, labels: list[str]) -> list[Claim]:
    """The claims of a figure, for the labels its frame holds (the figures' parameters choose them)."""
    if figure == "dfig_stepsize":
        out = [
            (f"{x}: online accuracy falls after its peak (loss of plasticity)", loses_plasticity, (x,)) for x in labels
        ]
        out += [(f"{x}: accuracy first rises above the first task's", rises_first, (x,)) for x in labels]
        best = "backprop α=0.003"
        return out + [
            (
                "α = 0.003 has the best mean online accuracy over all tasks (so §4.3 uses it)",
                best_overall,
                (best, tuple(x for x in labels if x != best)),
            )
        ]
    if figure == "dfig_width":
        ordered = tuple(sorted(labels, key=lambda x: int(x.split()[-1])))
        return [(f"{x}: loses plasticity", loses_plasticity, (x,)) for x in ordered] + [
            ("Smaller networks lose plasticity faster (larger relative drop)", drops_in_order, (ordered,))
        ]
    if figure == "dfig_changerate":
        ordered = tuple(sorted(labels, key=lambda x: int(x.split()[-1].replace(",", ""))))
        return [(f"{x}: loses plasticity", loses_plasticity, (x,)) for x in ordered] + [
            ("The faster the permutation changes, the more severe the loss", drops_in_order, (ordered,))
        ]
    if figure == "dfig_correlates":
        every = tuple(labels)
        return [
            ("Dead units increase over time, at every step size (Fig. 4.5)", on("dead_percent", rises), (every,)),
            (
                "The largest step size ends with the most dead units (thesis: a quarter at α = 0.01)",
                on("dead_percent", most_at_end),
                ("backprop α=0.01", tuple(x for x in labels if x != "backprop α=0.01")),
            ),
            (
                "Mean weight magnitude increases over time, at every step size (Fig. 4.6)",
                on("mean_abs_weight", rises),
                (every,),
            ),
            (
                "Effective rank (mean over layers) decreases over time, at every step size (Fig. 4.7)",
                on("effective_rank", falls),
                (every,),
            ),
            (
                "Beyond the thesis: srank (δ = 0.01) decreases over time, at every step size",
                on("stable_rank", falls),
                (every,),
            ),
            (
                "Beyond the thesis: τ-dormant units increase over time, at every step size",
                on("dormant_percent", rises),
                (every,),
            ),
        ]
    if figure == "dfig_methods":
        existing = ("L2", "Shrink & Perturb", "Dropout", "online norm", "Adam")
        return [
            ("L2: higher online accuracy than backprop throughout", better_throughout, ("L2", "backprop")),
            (
                "Shrink & Perturb: higher online accuracy than backprop throughout",
                better_throughout,
                ("Shrink & Perturb", "backprop"),
            ),
            ("Shrink & Perturb: almost no drop in online accuracy", almost_no_drop, ("Shrink & Perturb",)),
            (
                "Shrink & Perturb: the best late accuracy of the five existing methods",
                best_late,
                ("Shrink & Perturb", tuple(x for x in existing if x != "Shrink & Perturb")),
            ),
            ("Dropout loses more plasticity than backprop (lower late accuracy)", worse_late, ("Dropout", "backprop")),
            (
                "Online norm loses more plasticity than backprop (lower late accuracy)",
                worse_late,
                ("online norm", "backprop"),
            ),
            ("Adam loses more plasticity than backprop (lower late accuracy)", worse_late, ("Adam", "backprop")),
            (
                "Online norm: better than backprop early, worse late",
                better_early_worse_late,
                ("online norm", "backprop"),
            ),
            ("CBP: no loss of plasticity (Nature, Ext. Data Fig. 4)", almost_no_drop, ("CBP",)),
            ("CBP: the best late accuracy of all methods", best_late, ("CBP", tuple(x for x in labels if x != "CBP"))),
            (
                "Mean weight magnitude grows for backprop, Dropout, online norm and Adam",
                on("mean_abs_weight", rises),
                (("backprop", "Dropout", "online norm", "Adam"),),
            ),
            (
                "L2, Shrink & Perturb and CBP end with smaller weights than backprop",
                on("mean_abs_weight", less_at_end),
                (("L2", "Shrink & Perturb", "CBP"), "backprop"),
            ),
            ("Dead units increase for every method but CBP", on("dead_percent", rises), (("backprop",) + existing,)),
            (
                "Shrink & Perturb ends with fewer dead units than backprop",
                on("dead_percent", less_at_end),
                (("Shrink & Perturb",), "backprop"),
            ),
            ("CBP: almost no dead units (under 1% late)", few_dead, ("CBP",)),
            (
                "The last layer's effective rank decreases for every method",
                on("effective_rank_l3", falls),
                (tuple(labels),),
            ),
            (
                "CBP keeps a higher last-layer effective rank than backprop and Shrink & Perturb",
                on("effective_rank_l3", most_at_end),
                ("CBP", ("backprop", "Shrink & Perturb")),
            ),
        ]
    raise ValueError(f"no claims for figure {figure!r}")


def figure_claims(figure: str, df: pd.DataFrame) -> pd.DataFrame:
    """Verdicts (claim, ✓/✗, evidence) of the figure's claims whose learners the frame holds."""
    return evaluate(_claims(figure, list(df.label.unique())), df, definition=DEFINITION)


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """One row per label, seed means: online accuracy (first task, peak, late, drop) and the
    correlates late in the run (dead and τ-dormant %, mean weight magnitude, effective rank of the
    mean layer and the last, srank)."""
    rows = {}
    for label in df.label.unique():
        row = {
            "seeds": df.loc[df.label == label, "run"].nunique(),
            "tasks": df.loc[df.label == label, "task"].nunique(),
            "acc, first task": np.mean([v[0] for v in _seeds(df, label, "online_accuracy")]),
            "acc, peak": peak(df, label).mean(),
            "acc, late": late(df, label).mean(),
            "drop": drop(df, label).mean(),
        }
        for column, name in (
            ("dead_percent", "dead %, late"),
            ("dormant_percent", "dormant %, late"),
            ("mean_abs_weight", "mean |W|, late"),
            ("effective_rank", "erank, late"),
            ("effective_rank_l3", "erank l3, late"),
            ("stable_rank", "srank, late"),
        ):
            if column in df:
                row[name] = late(df, label, column).mean()
        rows[label] = row
    table = pd.DataFrame.from_dict(rows, orient="index")
    return table.round(
        {
            c: (4 if c == "mean |W|, late" else 3 if c.startswith(("acc", "drop")) else 1)
            for c in table.columns
            if c not in ("seeds", "tasks")
        }
    )


CHANGES = {
    "dead_percent": "dead %",
    "dormant_percent": "dormant %",
    "mean_abs_weight": "mean |W|",
    "effective_rank": "erank",
    "stable_rank": "srank",
}


def correlate_changes(df: pd.DataFrame) -> pd.DataFrame:
    """Per label, each correlate early → late in the run (seed means; a correlate the frame lacks is
    left out), and the online accuracy's peak and late values: the thesis's correlates read on any
    three-hidden-layer runs, Iqbal's included."""
    rows = {}
    for label in df.label.unique():
        row = {"acc peak → late": f"{peak(df, label).mean():.3f} → {late(df, label).mean():.3f}"}
        for column, name in CHANGES.items():
            if column in df:
                digits = 4 if column == "mean_abs_weight" else 1
                row[f"{name}: early → late"] = (
                    f"{early(df, label, column).mean():.{digits}f} → {late(df, label, column).mean():.{digits}f}"
                )
        rows[label] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def markdown_table(table: pd.DataFrame) -> str:
    """A frame as a Markdown table (index first), for book pages that quote results."""
    header = ["", *map(str, table.columns)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join([str(i), *map(str, row)]) + " |" for i, row in zip(table.index, table.to_numpy())]
    return "\n".join(lines).replace("|W|", "\\|W\\|")  # a bare pipe would split the cell
