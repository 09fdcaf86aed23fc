"""Figure specs of Dohare's online permuted MNIST study (thesis ch. 4, also Dohare et al. 2024,
Extended Data Figs. 3-4): which runs each figure needs at each scale. The same shape as
Iqbal's figures (`papers.iqbal.figures`); `study.load_runs` loads and labels them; the runs go through the same
engine and results store.

The protocol (thesis §4.1): online permuted MNIST, every task a fresh pixel permutation of the
60000 training images shown once, one at a time (batch 1, no mini-batches), 800 tasks; a network of
three hidden layers of 2000 ReLU units, Kaiming initialisation, a 10-way linear head, cross-entropy,
plain SGD; step sizes 0.01, 0.003 and 0.001. The measure is each task's online accuracy. The width
study (Fig. 4.3) uses widths 100, 1000 and 10000 for 150 tasks; the change-rate study (Fig. 4.4)
switches the permutation every 10k, 100k or 1M examples, 48M examples in all. §4.3 compares the
classic mitigations at step size 0.003 (the best for backprop in Fig. 4.2).

The methods' settings (`METHODS`). The thesis prints only the step size (0.003 for all) and
Dropout's p = 0.1 (the value its Fig. 4.8 shows); it tunes the rest over three values each (its
Fig. 4.10) without printing the winners. Where it is silent we take the middle value of the
three-value grid in the authors' published configuration for this experiment, and say so:
    L2                  λ = 1e-4 (grid 1e-3, 1e-4, 1e-5), as torch's `weight_decay` (see mlp.py)
    Shrink & Perturb    λ = 1e-4, noise σ = 1e-5 (σ grid 1e-4, 1e-5, 1e-6; the thesis: large noise
                        hurts, small noise does nothing)
    Dropout             p = 0.1 (thesis)
    online norm         α_f = 0.999, α_b = 0.99: the defaults of Chiley et al.'s code (thesis: tuned,
                        values not printed)
    Adam                step size 1e-4 (grid 1e-4, 5e-5, 3e-5: the largest, as SGD's 0.003 is the
                        best of its grid), β = (0.9, 0.999), ε = 1e-8
    CBP                 replacement rate 1e-4 (grid 1e-4, 1e-5, 1e-6), decay 0.99, maturity 100; the
                        contribution utility of cbp.py (the authors' code for this experiment offers an
                        "adaptable" variant that divides by the incoming weights' magnitude)

Scales (`SCALES`):
    paper  the protocol exactly (48M SGD steps per run: a GPU job)
    small  CPU-sized, stated plainly on every page: the width is 100, not 2000 (the thesis's own
           narrowest network, which loses plasticity fastest; at batch 1 a 2000-wide network costs
           ~10 ms a step on one core), 100 tasks of 2500 images (250k steps per run, 1/192 of the
           paper's), widths 25/100/400 for the width study over the same 100 tasks, and the
           change-rate study at the same 250k examples, switching every 250, 2500 or 25000
    smoke  seconds: tiny networks and tasks, for tests
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import pandas as pd

from ... import params, study
from ...learners import Backprop, ContinualBackprop
from ...spec import RunSpec
from ...study import figure_loader
from ...tasks import PermutedStream
from .claims import correlate_changes, markdown_table
from .claims import summary as summary  # the table `lopcore run` prints for these figures


@dataclass(frozen=True)
class Scale(study.Scale):
    """`study.Scale` (n_tasks: tasks of the step-size, correlates and methods figures;
    examples_per_task: images per task, 60000 a pass over the training set; test_examples: end-of-task
    test images, recorded, not in the thesis; probe_examples: task-start correlates' samples, a task
    with fewer examples probes them all) and the studies' own sizes:"""

    width: int  # units in each of the three hidden layers of the main network
    widths: tuple[int, ...]  # the width study's
    width_tasks: int  # the width study's number of tasks
    change_every: tuple[int, ...]  # the change-rate study: examples per permutation
    change_examples: int  # the change-rate study: examples in all, for every interval


SCALES = {
    "paper": Scale(
        n_tasks=800,
        examples_per_task=60000,
        width=2000,
        widths=(100, 1000, 10000),
        width_tasks=150,
        change_every=(10_000, 100_000, 1_000_000),
        change_examples=48_000_000,
        probe_examples=2000,
        test_examples=10000,
    ),
    "small": Scale(
        n_tasks=100,
        examples_per_task=2500,
        width=100,
        widths=(25, 100, 400),
        width_tasks=100,
        change_every=(250, 2500, 25000),
        change_examples=250_000,
        probe_examples=2000,
        test_examples=2000,
    ),
    "smoke": Scale(
        n_tasks=3,
        examples_per_task=200,
        width=16,
        widths=(8, 16, 32),
        width_tasks=3,
        change_every=(50, 100, 200),
        change_examples=600,
        probe_examples=100,
        test_examples=200,
    ),
}
BATCH_SIZE = 1  # fully online: one SGD step per example
INIT = "kaiming"  # W ~ N(0, 2/fan_in), b = 0
STEP_SIZES = (0.01, 0.003, 0.001)  # Fig. 4.2
LR = 0.003  # the best step size for backprop in Fig. 4.2: the width, change-rate and methods studies use it
DORMANT_TAU = 0.1  # τ of the τ-dormant fraction (Sokar et al.; the thesis counts only dead units)
WEIGHT_DECAY = 1e-4
SHRINK, NOISE_STD = 1e-4, 1e-5
DROPOUT = 0.1
ADAM_LR = 1e-4
CBP_RATE = 1e-4


class Run(NamedTuple):
    """One curve of a figure: a learner on a task stream of this many tasks of this many examples."""

    learner: Backprop
    n_tasks: int
    examples_per_task: int


def mlp(width: int, lr: float = LR, **options) -> Backprop:
    """Dohare's network: three hidden ReLU layers of `width`, Kaiming initialisation, SGD at `lr`."""
    return Backprop(lr=lr, hidden=(width,) * 3, init=INIT, **options)


METHODS: dict[str, Callable[[int], Backprop]] = {
    "backprop": lambda w: mlp(w),
    "L2": lambda w: mlp(w, weight_decay=WEIGHT_DECAY),
    "Shrink & Perturb": lambda w: mlp(w, shrink=SHRINK, noise_std=NOISE_STD),
    "Dropout": lambda w: mlp(w, dropout=DROPOUT),
    "online norm": lambda w: mlp(w, online_norm=True),
    "Adam": lambda w: mlp(w, lr=ADAM_LR, optimizer="adam"),
    "CBP": lambda w: ContinualBackprop(lr=LR, hidden=(w,) * 3, init=INIT, replacement_rate=CBP_RATE),
}


def _step_size_label(lr: float) -> str:
    return f"backprop α={lr:g}"


def stepsize(scale: Scale, step_sizes=STEP_SIZES) -> dict[str, Run]:
    """Thesis Fig. 4.2: backprop at each step size, the main network."""
    step_sizes = params.float_list("step_sizes", step_sizes, 1e-9, 1.0)
    return {
        _step_size_label(lr): Run(mlp(scale.width, lr), scale.n_tasks, scale.examples_per_task) for lr in step_sizes
    }


def width(scale: Scale, widths=None) -> dict[str, Run]:
    """Thesis Fig. 4.3: backprop at step size 0.003, three hidden layers of each width (default: the scale's)."""
    widths = params.int_list("widths", scale.widths if widths is None else widths, 1)
    return {f"width {w}": Run(mlp(w), scale.width_tasks, scale.examples_per_task) for w in widths}


def changerate(scale: Scale, change_every=None) -> dict[str, Run]:
    """Thesis Fig. 4.4: backprop at step size 0.003, the permutation switched every `change_every`
    examples (default: the scale's), the same number of examples in all for every interval."""
    change_every = params.int_list("change_every", scale.change_every if change_every is None else change_every, 1)
    too_long = [n for n in change_every if n > scale.change_examples]
    if too_long:
        raise params.ParameterError(
            f"change_every={too_long!r} is not valid; an interval must be at most the "
            f"{scale.change_examples} examples of the study at this scale"
        )
    return {f"change every {n:,}": Run(mlp(scale.width), scale.change_examples // n, n) for n in change_every}


def correlates(scale: Scale, step_sizes=STEP_SIZES) -> dict[str, Run]:
    """Thesis Figs. 4.5-4.7: dead units, weight magnitude and effective rank of Fig. 4.2's runs (the
    same runs: nothing is trained for this figure that Fig. 4.2 has not)."""
    return stepsize(scale, step_sizes)


def methods(scale: Scale, methods=tuple(METHODS)) -> dict[str, Run]:
    """Thesis Figs. 4.8-4.9 (and the Nature paper's Extended Data Fig. 4, which adds CBP): backprop and
    each mitigation on the main network, with the settings documented in this module's docstring."""
    chosen = params.choice_list("methods", methods, METHODS)
    return {m: Run(METHODS[m](scale.width), scale.n_tasks, scale.examples_per_task) for m in chosen}


FIGURES: dict[str, Callable[..., dict[str, Run]]] = {
    "dfig_stepsize": stepsize,
    "dfig_width": width,
    "dfig_changerate": changerate,
    "dfig_correlates": correlates,
    "dfig_methods": methods,
}
DEFAULT_SEEDS = {name: 3 for name in FIGURES}  # the committed results' seeds (the thesis: 30)


def run_spec(run: Run, scale: Scale, seed: int) -> RunSpec:
    """The engine's spec of one curve and seed: batch 1, the τ-dormant fraction recorded."""
    stream = PermutedStream(datasets=("mnist",), examples_per_task=run.examples_per_task, batch_size=BATCH_SIZE)
    return RunSpec(
        learner=run.learner,
        stream=stream,
        n_tasks=run.n_tasks,
        test_examples=scale.test_examples,
        probe_examples=min(scale.probe_examples, run.examples_per_task),
        seed=seed,
        dormant_tau=DORMANT_TAU,
    )


def figure_runs(figure: str, scale: str = "small", seeds=3, **options) -> list[tuple[str, RunSpec]]:
    """(label, run spec) for every run the figure needs at this scale, all parameters validated."""
    params.choice("figure", figure, FIGURES)
    params.choice("scale", scale, SCALES)
    seeds = params.seed_list(seeds)
    size = SCALES[scale]
    return [(label, run_spec(r, size, seed)) for label, r in FIGURES[figure](size, **options).items() for seed in seeds]


def _with_correlates(df: pd.DataFrame, scale: str) -> pd.DataFrame:
    return network_correlates(df)


load_figure = figure_loader(
    figure_runs,
    then=_with_correlates,
    doc="""The figure's tidy results (one row per run x task) with the network-level correlates added
(`network_correlates`).""",
)


def network_correlates(df: pd.DataFrame) -> pd.DataFrame:
    """Adds the thesis's network-level correlates to a frame of three-hidden-layer runs:

    dead_percent      dead units (zero on every probe image) as a percentage of all hidden units;
                      the layers have equal widths, so this is 100 x the mean of the layers' fractions
    dormant_percent   the same for τ-dormant units (τ = DORMANT_TAU)
    effective_rank    the mean over the three layers of each layer's effective rank (Fig. 4.7)
    effective_rank_l3 (stored) the last hidden layer's, as Fig. 4.9 plots it
    erank_fraction    effective_rank / min(width, probe images): 1 is the most a layer can have, so
                      networks of different widths compare
    stable_rank       the mean over layers of srank (δ = 0.01); srank_fraction likewise normalised
    examples_seen     examples trained on by the end of the task (the change-rate study's axis)
    mean_abs_weight   (stored) Σ|W| / #weights over all weight matrices, head included, biases not,
                      after each task, which is the next task's start
    """
    layers = [1, 2, 3]
    width = df["hidden"].str.split("x").str[0].astype(int)
    ceiling = width.clip(upper=df["probe_examples"])  # rank <= min(samples, units)
    out = df.assign(
        dead_percent=100 * df[[f"dead_fraction_l{i}" for i in layers]].mean(axis=1),
        effective_rank=df[[f"effective_rank_l{i}" for i in layers]].mean(axis=1),
        stable_rank=df[[f"stable_rank_l{i}" for i in layers]].mean(axis=1),
        examples_seen=(df["task"] + 1) * df["examples_per_task"],
    )
    out["erank_fraction"] = out["effective_rank"] / ceiling
    out["srank_fraction"] = out["stable_rank"] / ceiling
    if all(f"dormant_fraction_l{i}" in df for i in layers):
        out["dormant_percent"] = 100 * df[[f"dormant_fraction_l{i}" for i in layers]].mean(axis=1)
    return out


def correlates_at(
    df: pd.DataFrame, tasks, columns=("dead_percent", "mean_abs_weight", "effective_rank"), statistic: str = "mean"
) -> pd.DataFrame:
    """The correlates (`network_correlates`) of each line at the start of these tasks, the mean or
    the median over seeds (`statistic`; the median where one exploding seed would dominate a mean):
    one row per task, one column per (correlate, line)."""
    params.choice("statistic", statistic, ("mean", "median"))
    out = network_correlates(df[df.task.isin(list(tasks))])
    return out.groupby(["label", "task"], sort=False)[list(columns)].agg(statistic).round(3).unstack("label")


def comparison_tables(scale: str = "small", device: str = "auto") -> dict[str, str]:
    """The book's comparison of Iqbal's learners with Dohare's through the thesis's correlates, as
    Markdown tables from the results store: "iqbal" (Fig. 2's baseline, CBP and persistent state,
    n = 2, with their default seeds) and "dohare" (the methods figure's backprop, Shrink & Perturb
    and CBP). book/dohare_correlates.md quotes them; a test checks that it quotes them as they are."""
    from ..iqbal import figures as iqbal  # late: Iqbal's figures are the other paper's

    fig2 = network_correlates(
        iqbal.load_figure(
            "fig2", scale=scale, seeds=iqbal.DEFAULT_SEEDS["fig2"], device=device, n=2, combined=False, progress=False
        )
    )
    dohare = load_figure(
        "dfig_methods",
        scale=scale,
        seeds=DEFAULT_SEEDS["dfig_methods"],
        device=device,
        methods=["backprop", "Shrink & Perturb", "CBP"],
        progress=False,
    )
    return {"iqbal": markdown_table(correlate_changes(fig2)), "dohare": markdown_table(correlate_changes(dohare))}
