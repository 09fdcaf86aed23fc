"""The claims of "Loss of Plasticity in Recurrent Models" (Khan et al.) as predicates over results.

Every number here is computed from the per-task test accuracy A_k (column `test_accuracy`) of a
tidy frame from `khan.figures.load_figure`, *per seed* first, so that a verdict can ask
whether the seeds agree. A predicate returns (holds, evidence). The report's own numbers are in
`REPORTED`, shown beside ours; the report gives one run per setting, so "holds" asks more of our
results than the report could of its own: a difference counts only when it exceeds two standard
errors over seeds (`SEPARATION`); with a single seed there is no standard error
(`study.mean_se` gives NaN), so no such claim holds.

Metrics per seed (the report's, Section 5.1):
    ΔA         (A_first − A_last) / A_first × 100, the first and last task
    ΔA robust  the same with A_first, A_last the means over the first and last 10% of tasks
    IAA        (⟨A⟩_mitigated − ⟨A⟩_baseline) / ⟨A⟩_baseline × 100, seeds paired (seed s of a
               mitigation against seed s of the baseline: the same task stream)
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ...metrics import delta_accuracy, iaa
from ...study import Claim, mean_se
from ...study import evaluate as study_evaluate

COLUMN = "test_accuracy"
WINDOW = 0.1  # the robust ΔA's first/last fraction of tasks
SEPARATION = 2.0  # standard errors over seeds a difference must exceed
LOSS_MARGIN = 1.0  # percent: a robust ΔA below this is within the per-task test-set noise (a few
# thousand test examples), not a loss of plasticity, however consistent over seeds
PEAK_MARGIN = 5.0  # percent: the best of many noisy stretches of tasks sits above their average, so a
# flat but noisy curve shows a small "drop from the peak" by itself; only a larger one counts

# The report's numbers (percent). Its Table 1 and its text disagree on which column is which:
# the text gives the GRU L2 13.14 / CBP 15.56 / S&P −10.73 and the MLP S&P 36.69, the table
# GRU L2 15.56 / CBP 13.14 / S&P −10.08 and MLP L2 36.69 / S&P 49.45. We show the table's.
REPORTED = {
    "delta_accuracy": {("rfig1", "MLP"): 60.83, ("rfig1", "LSTM"): 27.47, ("rfig3", "reshuffle"): 50.62},
    "iaa": {
        ("rfig4", "L2"): 36.69,
        ("rfig4", "S&P"): 49.45,
        ("rfig4", "CBP"): 28.01,
        ("rfig5", "L2"): 15.56,
        ("rfig5", "S&P"): -10.08,
        ("rfig5", "CBP"): 13.14,
    },
}


# --- per-seed metrics --------------------------------------------------------------------------


def curves(df: pd.DataFrame, label: str, column: str = COLUMN) -> pd.DataFrame:
    """A_k of one label: one row per seed, one column per task."""
    d = df[df.label == label]
    return d.pivot_table(index="seed", columns="task", values=column).sort_index(axis=1)


def _ends(values: np.ndarray, window: float | None) -> tuple[np.ndarray, np.ndarray]:
    n = 1 if window is None else max(1, round(values.shape[-1] * window))
    return values[..., :n].mean(-1), values[..., -n:].mean(-1)


def seed_delta(df: pd.DataFrame, label: str, window: float | None = WINDOW) -> np.ndarray:
    """ΔA of every seed (window None: first and last task; else the robust variant)."""
    import torch

    first, last = _ends(curves(df, label).to_numpy(), window)
    return delta_accuracy(torch.tensor(first), torch.tensor(last)).numpy()


def seed_peak_drop(df: pd.DataFrame, label: str, window: float = WINDOW) -> np.ndarray:
    """Per seed: the drop from the best stretch of tasks to the last one, (A_peak − A_last) / A_peak
    × 100, both means over `window` of the tasks (A_peak the best such trailing mean). Not the
    report's metric: where the first tasks are still learning the data (our `small` scale), ΔA
    measures that learning, and the fall after the peak is what is left of a loss of plasticity."""
    values = curves(df, label).to_numpy()
    n = max(1, round(values.shape[1] * window))
    means = np.lib.stride_tricks.sliding_window_view(values, n, axis=1).mean(-1)
    peak, last = means.max(1), means[:, -1]
    return (peak - last) / peak * 100


def seed_iaa(df: pd.DataFrame, label: str, baseline: str = "baseline") -> np.ndarray:
    """IAA of every seed against the same seed's baseline."""
    import torch

    mine, base = curves(df, label).mean(axis=1), curves(df, baseline).mean(axis=1)
    common = mine.index.intersection(base.index)
    return iaa(torch.tensor(mine[common].to_numpy()), torch.tensor(base[common].to_numpy())).numpy()


def late_gap(df: pd.DataFrame, label: str, baseline: str = "baseline", window: float = WINDOW) -> np.ndarray:
    """Per seed: mean A_k over the last `window` of tasks, mitigation minus baseline (same seed)."""
    mine, base = curves(df, label), curves(df, baseline)
    n = max(1, round(mine.shape[1] * window))
    common = mine.index.intersection(base.index)
    return (mine.iloc[:, -n:].mean(axis=1)[common] - base.iloc[:, -n:].mean(axis=1)[common]).to_numpy()


def _show(x: np.ndarray, unit: str = "%") -> str:
    m, se = mean_se(x)
    return f"{m:.1f} ± {se:.1f}{unit} (seeds {', '.join(f'{v:.1f}' for v in x)})"


# --- predicates --------------------------------------------------------------------------------


def loses_plasticity(df, label: str):
    """Robust ΔA exceeds LOSS_MARGIN percent by SEPARATION standard errors: A_k falls from the first
    tasks to the last."""
    d = seed_delta(df, label)
    m, se = mean_se(d)
    return m - SEPARATION * se > LOSS_MARGIN, f"{label}: robust ΔA {_show(d)}"


def falls_from_peak(df, label: str):
    """Beyond the report: A_k falls from its best stretch of tasks to the last by more than
    PEAK_MARGIN percent, beyond SEPARATION standard errors."""
    d = seed_peak_drop(df, label)
    m, se = mean_se(d)
    return m - SEPARATION * se > PEAK_MARGIN, f"{label}: drop from peak {_show(d)}"


def degrades_less(df, label: str, than: str):
    """`label`'s robust ΔA is below `than`'s by more than SEPARATION standard errors."""
    a, b = seed_delta(df, label), seed_delta(df, than)
    (ma, sa), (mb, sb) = mean_se(a), mean_se(b)
    return mb - ma > SEPARATION * float(np.hypot(sa, sb)), f"robust ΔA {label} {_show(a)}; {than} {_show(b)}"


def improves_on_baseline(df, label: str):
    """IAA > 0 beyond SEPARATION standard errors over seeds."""
    x = seed_iaa(df, label)
    m, se = mean_se(x)
    return m > SEPARATION * se and m > 0, f"IAA {label} {_show(x)}"


def worse_than_baseline(df, label: str):
    """IAA < 0 beyond SEPARATION standard errors over seeds."""
    x = seed_iaa(df, label)
    m, se = mean_se(x)
    return m < -SEPARATION * se and m < 0, f"IAA {label} {_show(x)}"


def improvement_lasts(df, label: str):
    """A stable improvement: over the last 10% of tasks `label` still beats the baseline."""
    x = late_gap(df, label)
    m, se = mean_se(x)
    return m > SEPARATION * se and m > 0, f"last-10% A_k, {label} − baseline: {_show(100 * x, ' points')}"


def improvement_fades(df, label: str):
    """Not a stable improvement: over the last 10% of tasks `label` does not beat the baseline."""
    holds, evidence = improvement_lasts(df, label)
    return not holds, evidence


def _by_length(df) -> dict[int, np.ndarray]:
    """Robust ΔA per sequence length T, seed-wise averaged over the widths H (labels 'T=.., H=..')."""
    out: dict[int, list] = {}
    for label in df.label.unique():
        t = int(re.match(r"T=(\d+)", label).group(1))
        out.setdefault(t, []).append(seed_delta(df, label))
    return {t: np.mean(v, axis=0) for t, v in sorted(out.items())}


def shortest_degrades_least(df):
    """The shortest sequences have the lowest robust ΔA (averaged over widths) of all lengths."""
    by_t = _by_length(df)
    shortest = min(by_t)
    means = {t: float(v.mean()) for t, v in by_t.items()}
    holds = all(means[shortest] < m for t, m in means.items() if t != shortest)
    return holds, "robust ΔA by T (mean over H): " + ", ".join(f"T={t} {m:.1f}%" for t, m in means.items())


def longer_degrades_more(df):
    """The report's hypothesis: robust ΔA (averaged over widths) increases with T, every step."""
    means = {t: float(v.mean()) for t, v in _by_length(df).items()}
    values = list(means.values())
    holds = len(values) > 1 and all(a < b for a, b in zip(values, values[1:]))
    return holds, "robust ΔA by T (mean over H): " + ", ".join(f"T={t} {m:.1f}%" for t, m in means.items())


# --- the claims of each figure -----------------------------------------------------------------

CLAIMS: dict[str, list[Claim]] = {
    "rfig1": [
        ("MNIST reshuffle: the MLP loses plasticity (report ΔA 60.83%)", loses_plasticity, ("MLP",)),
        ("MNIST reshuffle: the LSTM loses plasticity (report ΔA 27.47%)", loses_plasticity, ("LSTM",)),
        ("MNIST reshuffle: the LSTM degrades less than the MLP", degrades_less, ("LSTM", "MLP")),
        ("(ours) MNIST reshuffle: the MLP's A_k falls from its peak to the last tasks", falls_from_peak, ("MLP",)),
        ("(ours) MNIST reshuffle: the LSTM's A_k falls from its peak to the last tasks", falls_from_peak, ("LSTM",)),
    ],
    "rfig2": [
        ("MNIST binary pairs: the MLP loses plasticity", loses_plasticity, ("MLP",)),
        ("MNIST binary pairs: the LSTM loses plasticity", loses_plasticity, ("LSTM",)),
        ("MNIST binary pairs: the loss is less noticeable for the LSTM", degrades_less, ("LSTM", "MLP")),
        ("(ours) MNIST binary pairs: the MLP's A_k falls from its peak to the last tasks", falls_from_peak, ("MLP",)),
        ("(ours) MNIST binary pairs: the LSTM's A_k falls from its peak to the last tasks", falls_from_peak, ("LSTM",)),
    ],
    "rfig3": [
        ("Language reshuffle: the GRU loses plasticity (report ΔA 50.62%)", loses_plasticity, ("reshuffle",)),
        ("Language binary pairs: the GRU loses plasticity", loses_plasticity, ("binary",)),
        ("(ours) Language reshuffle: A_k falls from its peak to the last tasks", falls_from_peak, ("reshuffle",)),
        ("(ours) Language binary pairs: A_k falls from its peak to the last tasks", falls_from_peak, ("binary",)),
    ],
    "rfig4": [
        ("MLP: L2 improves on the baseline (IAA > 0)", improves_on_baseline, ("L2",)),
        ("MLP: shrink and perturb improves on the baseline (IAA > 0)", improves_on_baseline, ("S&P",)),
        ("MLP: CBP improves on the baseline (IAA > 0)", improves_on_baseline, ("CBP",)),
        ("MLP: L2's improvement lasts to the last tasks", improvement_lasts, ("L2",)),
        ("MLP: shrink and perturb's improvement lasts to the last tasks", improvement_lasts, ("S&P",)),
        ("MLP: CBP's improvement does not last (only L2 and S&P are stable)", improvement_fades, ("CBP",)),
    ],
    "rfig5": [
        ("GRU: L2 improves on the baseline (IAA > 0)", improves_on_baseline, ("L2",)),
        ("GRU: CBP improves on the baseline (IAA > 0)", improves_on_baseline, ("CBP",)),
        ("GRU: shrink and perturb is worse than the baseline (IAA < 0)", worse_than_baseline, ("S&P",)),
        ("GRU: L2's improvement lasts to the last tasks", improvement_lasts, ("L2",)),
        ("GRU: CBP's improvement lasts to the last tasks", improvement_lasts, ("CBP",)),
    ],
    "rfig6": [
        ("The shortest sequences (T = 15) degrade least", shortest_degrades_least, ()),
        ("Hypothesis left open by the report: ΔA grows with every step in T", longer_degrades_more, ()),
    ],
    "rfig7": [
        (
            "(ours) GRU: the persistent state with n = 2 improves on the baseline (IAA > 0)",
            improves_on_baseline,
            ("state n=2",),
        ),
        (
            "(ours) GRU: the persistent state with n = 1 improves on the baseline (IAA > 0)",
            improves_on_baseline,
            ("state n=1",),
        ),
        (
            "(ours) GRU: the persistent state's (n = 2) improvement lasts to the last tasks",
            improvement_lasts,
            ("state n=2",),
        ),
    ],
}
NEEDS_BASELINE = (improves_on_baseline, worse_than_baseline, improvement_lasts, improvement_fades)


DEFINITION = (
    f"A_k = test accuracy at the end of task k; robust ΔA from the first/last {WINDOW:.0%} of tasks; "
    f"a difference counts beyond {SEPARATION:g} standard errors over seeds; ± is one standard error; "
    f"a loss counts above {LOSS_MARGIN:g}% and a drop from the peak above {PEAK_MARGIN:g}%"
)


def evaluate(claims: list[Claim], df: pd.DataFrame) -> pd.DataFrame:
    """Verdict table (claim, verdict, evidence) of the claims whose labels the frame holds."""
    return study_evaluate(claims, df, needs_baseline=NEEDS_BASELINE, definition=DEFINITION)


def figure_claims(figure: str, df: pd.DataFrame) -> pd.DataFrame:
    """The verdicts of one report figure's claims on its results."""
    return evaluate(CLAIMS.get(figure, []), df)


def summary_table(figure: str, df: pd.DataFrame, baseline: str = "baseline") -> pd.DataFrame:
    """Per label, rounded: the report's ΔA (seed-mean curve, first and last task), the robust ΔA
    (mean and s.d. over seeds), the drop from the peak (seed mean), ⟨A⟩, and, with a baseline, IAA
    (mean and s.d. over paired seeds), each beside the report's number where it gives one."""
    rows = []
    for label in df.label.unique():
        curve = curves(df, label).mean(axis=0).to_numpy()
        robust = seed_delta(df, label)
        row = {
            "label": label,
            "seeds": len(robust),
            "ΔA %": (curve[0] - curve[-1]) / curve[0] * 100,
            "ΔA robust %": robust.mean(),
            "ΔA robust s.d.": robust.std(ddof=1) if len(robust) > 1 else 0.0,
            "drop from peak %": seed_peak_drop(df, label).mean(),
            "⟨A⟩": curve.mean(),
        }
        if (figure, label) in REPORTED["delta_accuracy"]:
            row["report ΔA %"] = REPORTED["delta_accuracy"][figure, label]
        if baseline in set(df.label):
            x = seed_iaa(df, label, baseline)
            row["IAA %"] = x.mean()
            row["IAA s.d."] = x.std(ddof=1) if len(x) > 1 else 0.0
            if (figure, label) in REPORTED["iaa"]:
                row["report IAA %"] = REPORTED["iaa"][figure, label]
        rows.append(row)
    return pd.DataFrame(rows).set_index("label").round(2)


def iaa_table(mlp: pd.DataFrame, gru: pd.DataFrame) -> pd.DataFrame:
    """The report's Table 1 from our runs: IAA of each mitigation on the MLP (Fig. 4's runs) and the
    GRU (Fig. 5's), as "mean ± s.d. over seeds (report)"."""
    table = {}
    for model, figure, df in (("MLP", "rfig4", mlp), ("GRU", "rfig5", gru)):
        cells = {}
        for label in ("L2", "S&P", "CBP"):
            if label in set(df.label):
                x = seed_iaa(df, label)
                sd = x.std(ddof=1) if len(x) > 1 else 0.0
                cells[label] = f"{x.mean():.1f} ± {sd:.1f}% (report {REPORTED['iaa'][figure, label]:.2f}%)"
        table[model] = cells
    return pd.DataFrame(table).T
