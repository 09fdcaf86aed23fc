"""Figure specs of "Loss of Plasticity in Recurrent Models" (Khan et al.): which runs each figure
needs at each scale. The same shape as Iqbal's and Dohare's (`lopcore.papers`); these runs go
through the same engine.

The report's protocol (its Section 4): every task is 30 epochs over the task's training data; the
per-task number plotted, A_k, is the test accuracy at the end of task k under that task's label
map or class pair; 50 tasks on MNIST, 100 on the language data (Tatoeba, 10 languages,
byte-level here). The report states no batch size, learning rate or width; the values below
follow the authors' repository configs where those are consistent (GRU width 64, lr 0.01, L2
1e-4, perturbation scale 1e-3, sequence length 50) and are our choices otherwise (Adam for all
learners, batch 64, LSTM width 64, an MLP of three hidden layers of 100).

Scales:
    paper  the protocol above (30 epochs per task)
    small  CPU minutes per run. MNIST: the report's 50 tasks, 6000 examples per task (a tenth of an
           epoch of the reshuffle, half an epoch of a pair). Tatoeba: 40 tasks (not 100) of 2000
           sentences each (a fifth of an epoch of the reshuffle, one epoch of a pair): measured on
           the 2-core development machine, the GRU costs about 14 s per task for 3 seeds at 10000
           sentences, so the report's 100 tasks x 10000 would take 23 minutes per learner and
           Figure 6's twelve learners more than four hours.
    smoke  seconds: two tiny tasks, for tests
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pandas as pd

from ... import params, study
from ...learners import (
    Backprop,
    ContinualBackprop,
    ContinualBackpropRecurrent,
    PersistentRecurrent,
    Recurrent,
)
from ...sequences import BinaryPairStream, ReshuffleStream
from ...spec import RunSpec
from ...study import figure_loader

EPOCHS = 30
# Training examples of one task: MNIST 60000 images (a pair of classes ≈ 12000), Tatoeba 10 × 1000
# sentences (a pair 2000).
TRAIN_SIZE = {
    ("mnist", "reshuffle"): 60000,
    ("mnist", "binary"): 12000,
    ("tatoeba", "reshuffle"): 10000,
    ("tatoeba", "binary"): 2000,
}


@dataclass(frozen=True)
class Scale(study.Scale):
    """`study.Scale` with n_tasks by source and examples_per_task by (source, stream kind); a task's
    test set is at most test_examples (the whole test set, or the pair's, when smaller)."""

    batch_size: int


SCALES = {
    "paper": Scale({"mnist": 50, "tatoeba": 100}, {k: EPOCHS * n for k, n in TRAIN_SIZE.items()}, 10000, 2000, 64),
    "small": Scale(
        {"mnist": 50, "tatoeba": 40},
        {
            ("mnist", "reshuffle"): 6000,
            ("mnist", "binary"): 6000,
            ("tatoeba", "reshuffle"): 2000,
            ("tatoeba", "binary"): 2000,
        },
        2000,
        500,
        64,
    ),
    "smoke": Scale({"mnist": 2, "tatoeba": 2}, {k: 64 for k in TRAIN_SIZE}, 100, 32, 16),
}
STREAMS = {"reshuffle": ReshuffleStream, "binary": BinaryPairStream}
LR, WIDTH, SEQ_LEN = 0.01, 64, 50
MLP_LR = 1e-3
WEIGHT_DECAY, SHRINK, NOISE_STD = 1e-4, 1e-4, 1e-3


def mlp(**options) -> Backprop:
    return Backprop(lr=MLP_LR, optimizer="adam", **options)


def lstm(**options) -> Recurrent:
    return Recurrent(cell="lstm", hidden=WIDTH, lr=MLP_LR, **options)


def gru(hidden: int = WIDTH, **options) -> Recurrent:
    return Recurrent(cell="gru", hidden=hidden, lr=LR, **options)


# A figure: {label: (source, stream kind, stream options, learner)}.


def fig1() -> dict[str, tuple]:
    """Report Fig. 1: MNIST label reshuffle, MLP (flat images) vs LSTM (rows as steps)."""
    return {"MLP": ("mnist", "reshuffle", {"flat": True}, mlp()), "LSTM": ("mnist", "reshuffle", {}, lstm())}


def fig2() -> dict[str, tuple]:
    """Report Fig. 2: MNIST binary pairs (distinct classes), MLP vs LSTM."""
    return {"MLP": ("mnist", "binary", {"flat": True}, mlp()), "LSTM": ("mnist", "binary", {}, lstm())}


LANGUAGE_DATA = {"local": "tatoeba", "report": "tatoeba_report"}  # see lopcore.tatoeba_export


def fig3(seq_len: int = SEQ_LEN, data: str = "local") -> dict[str, tuple]:
    """Report Fig. 3: Tatoeba language ID, label reshuffle and binary pairs, GRU."""
    seq_len = params.int_at_least("seq_len", seq_len, 1)
    source = LANGUAGE_DATA[params.choice("data", data, LANGUAGE_DATA)]
    return {kind: (source, kind, {"max_len": seq_len}, gru()) for kind in ("reshuffle", "binary")}


def fig4() -> dict[str, tuple]:
    """Report Fig. 4: mitigations on the MLP, MNIST reshuffle."""
    learners = {
        "baseline": mlp(),
        "L2": mlp(weight_decay=WEIGHT_DECAY),
        "S&P": mlp(shrink=SHRINK, noise_std=NOISE_STD),
        "CBP": ContinualBackprop(lr=MLP_LR, optimizer="adam"),
    }
    return {label: ("mnist", "reshuffle", {"flat": True}, learner) for label, learner in learners.items()}


def fig5(seq_len: int = SEQ_LEN) -> dict[str, tuple]:
    """Report Fig. 5: mitigations on the GRU, Tatoeba reshuffle."""
    seq_len = params.int_at_least("seq_len", seq_len, 1)
    learners = {
        "baseline": gru(),
        "L2": gru(weight_decay=WEIGHT_DECAY),
        "S&P": gru(shrink=SHRINK, noise_std=NOISE_STD),
        "CBP": ContinualBackpropRecurrent(cell="gru", hidden=WIDTH, lr=LR),
    }
    return {label: ("tatoeba", "reshuffle", {"max_len": seq_len}, learner) for label, learner in learners.items()}


def fig6(seq_lens=(15, 25, 50, 75), hidden=(32, 64, 128)) -> dict[str, tuple]:
    """Report Fig. 6: GRU on Tatoeba reshuffle, sequence length x width."""
    seq_lens, widths = params.int_list("seq_lens", seq_lens, 1), params.int_list("hidden", hidden, 1)
    return {f"T={t}, H={h}": ("tatoeba", "reshuffle", {"max_len": t}, gru(hidden=h)) for t in seq_lens for h in widths}


def fig7(n=(1, 2), d_int: int = WIDTH, seq_len: int = SEQ_LEN) -> dict[str, tuple]:
    """Beyond the report: Iqbal's persistent internal state on the GRU, Tatoeba reshuffle."""
    ns, d_int = params.int_list("n", n, 1), params.int_at_least("d_int", d_int, 1)
    seq_len = params.int_at_least("seq_len", seq_len, 1)
    learners = {
        "baseline": gru(),
        **{f"state n={k}": PersistentRecurrent(cell="gru", hidden=WIDTH, lr=LR, d_int=d_int, n=k) for k in ns},
    }
    return {label: ("tatoeba", "reshuffle", {"max_len": seq_len}, learner) for label, learner in learners.items()}


FIGURES: dict[str, Callable[..., dict[str, tuple]]] = {
    "rfig1": fig1,
    "rfig2": fig2,
    "rfig3": fig3,
    "rfig4": fig4,
    "rfig5": fig5,
    "rfig6": fig6,
    "rfig7": fig7,
}
DEFAULT_SEEDS = {name: 3 for name in FIGURES}


def _spec(source: str, kind: str, stream_options: dict, learner, scale: Scale, seed: int) -> RunSpec:
    family = "tatoeba" if source.startswith("tatoeba") else source  # either language data: the same sizes
    stream = STREAMS[kind](
        examples_per_task=scale.examples_per_task[family, kind],
        batch_size=scale.batch_size,
        source=source,
        **stream_options,
    )
    return RunSpec(
        learner=learner,
        stream=stream,
        n_tasks=scale.n_tasks[family],
        test_examples=scale.test_examples,
        probe_examples=scale.probe_examples,
        seed=seed,
    )


def figure_runs(figure: str, scale: str = "small", seeds=3, **options) -> list[tuple[str, RunSpec]]:
    """(label, run spec) for every run the figure needs at this scale, all parameters validated."""
    params.choice("figure", figure, FIGURES)
    params.choice("scale", scale, SCALES)
    seeds = params.seed_list(seeds)
    return [
        (label, _spec(*run_of, SCALES[scale], seed))
        for label, run_of in FIGURES[figure](**options).items()
        for seed in seeds
    ]


load_figure = figure_loader(figure_runs, doc="""The figure's tidy results (one row per run x task).""")


def summary(
    df: pd.DataFrame, baseline: str | None = "baseline", column: str = "test_accuracy", window: float = 0.1
) -> pd.DataFrame:
    """The report's metrics per label, from the seed-mean curve of `column` (A_k):

    delta_accuracy         ΔA = (A_first − A_last) / A_first × 100 (first and last task)
    delta_accuracy_robust  the same with A_first, A_last the means of the first and last `window`
                           fraction of tasks (at least one): less at the mercy of one noisy task
    mean_accuracy          ⟨A⟩ over tasks
    iaa                    (⟨A⟩ − ⟨A⟩_baseline) / ⟨A⟩_baseline × 100, when `baseline` is a label
    """
    import torch

    from ...metrics import delta_accuracy, iaa

    curves = df.groupby(["label", "task"])[column].mean().unstack("task").sort_index(axis=1)
    values = torch.tensor(curves.to_numpy(), dtype=torch.float64)  # (labels, tasks)
    n = max(1, round(values.shape[1] * window))
    out = pd.DataFrame(
        {
            "delta_accuracy": delta_accuracy(values[:, 0], values[:, -1]).numpy(),
            "delta_accuracy_robust": delta_accuracy(values[:, :n].mean(1), values[:, -n:].mean(1)).numpy(),
            "mean_accuracy": values.mean(1).numpy(),
        },
        index=curves.index,
    )
    if baseline is not None and baseline in out.index:
        base = torch.tensor(out.loc[baseline, "mean_accuracy"])
        out["iaa"] = iaa(torch.tensor(out["mean_accuracy"].to_numpy()), base).numpy()
    return out


def tatoeba_languages(seq_len: int = SEQ_LEN, data: str = "local") -> pd.DataFrame:
    """The language data the GRU figures use (`data` as for `fig3`): per language, training and test
    sentences and the share of sentences longer than `seq_len` bytes (cut there)."""
    from ... import tatoeba_export
    from ...sequences import LANGUAGES, load_tatoeba

    source = LANGUAGE_DATA[params.choice("data", data, LANGUAGE_DATA)]
    sentences = load_tatoeba(params.int_at_least("seq_len", seq_len, 1), source=source)
    rows = []
    for i, lang in enumerate(LANGUAGES if source == "tatoeba" else tatoeba_export.REPORT_LANGUAGES):
        train, test = sentences.train_y == i, sentences.test_y == i
        rows.append(
            {
                "language": lang,
                "train sentences": int(train.sum()),
                "test sentences": int(test.sum()),
                f"≥ {seq_len} bytes (cut)": f"{(sentences.train_len[train] == seq_len).float().mean().item():.0%}",
            }
        )
    return pd.DataFrame(rows).set_index("language")
