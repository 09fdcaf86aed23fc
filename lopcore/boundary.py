"""The collapse boundary: where plain backprop collapses on Iqbal's protocol, and whether a learner moves it.

At the protocol as printed (SGD, lr 0.05, batch 8, batch-mean cross-entropy, pixels / 255, PyTorch's
default init) our baseline never collapses (Fig. 2), so the paper's central claim, that the persistent
state keeps a network trainable where backprop collapses, has no premise there. Two figure specs put it
to the test:

    sensitivity  the baseline over step sizes (LRS) and two other readings of the protocol
                 (standardized inputs, Kaiming init; READINGS): where does it collapse?
    boundary     baseline, persistent state and CBP over the same step sizes (GRID): collapse task
                 against step size per learner, MNIST or Fashion-MNIST.

Runs are at the scale's protocol (paper: 60000 images per task, batch 8) for HORIZON_FRACTION of its
tasks (paper: 300), and a run stops early once it has sat at chance for STOP_AT_CHANCE tasks in a row
(`engine.RunSpec.stop_at_chance`; its stored result then ends there and its frame says
`stopped_early`). A line at the printed protocol (lr 0.05, unit inputs, PyTorch init) is Fig. 2's
(Fashion-MNIST: Fig. 3's) 600-task run, read to the same horizon, not a run of its own.

The summed loss is not a reading of its own: under plain SGD, the gradient of the batch sum is the
batch size times that of the batch mean, so summed loss at lr is mean loss at lr × batch size (8 × 0.05
= 0.4, beyond the grid); tests/test_boundary.py checks the equivalence.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from . import params
from .engine import RunSpec
from .figures import BATCH_SIZE, CBP_RATE, FASHION, LR, MNIST, SCALES, Scale, load_runs
from .learners import Backprop, ContinualBackprop, PersistentState, PersistentStateCBP
from .store import Store
from .tasks import PermutedStream

LRS = (0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.3)  # the step-size grid: 1x to 6x the printed rate
READINGS = {"standardized inputs": (0.05, 0.1), "Kaiming init": (0.05, 0.15)}  # other readings, their rates
HORIZON_FRACTION = 0.5  # of the scale's tasks (paper: 300 of 600)
STOP_AT_CHANCE = 50  # a run stops once it has been at chance this many tasks in a row
SEEDS = 3
DATASETS = {"mnist": MNIST, "fashion_mnist": FASHION}
D_INT = {"mnist": 128, "fashion_mnist": 256}  # the state sizes of Iqbal's Figs. 2 and 3/4
LEARNERS = ("baseline", "persistent n=2", "CBP", "persistent n=1", "persistent n=2 + CBP")
# The decisive grid: baseline, n = 2 and CBP at every step size; n = 1 and n = 2 + CBP at the four
# around the baseline's MNIST boundary; on Fashion-MNIST three learners at three rates around its own.
GRID = {
    "mnist": {"baseline": LRS, "persistent n=2": LRS, "CBP": LRS,
              "persistent n=1": (0.1, 0.125, 0.15, 0.2), "persistent n=2 + CBP": (0.1, 0.125, 0.15, 0.2)},
    "fashion_mnist": {"baseline": LRS, "persistent n=2": (0.1, 0.15, 0.2), "CBP": (0.1, 0.15, 0.2)},
}


@dataclass(frozen=True)
class Line:
    """One line of a figure here: a learner on a data set under an input scaling."""

    learner: object
    datasets: tuple[str, ...]
    inputs: str = "unit"

    @property
    def printed(self) -> bool:
        """Is this the protocol as printed (then its runs are Iqbal's figures' 600-task runs)?"""
        return self.learner.lr == LR and self.inputs == "unit" and getattr(self.learner, "init", "pytorch") == "pytorch"


def learner(name: str, lr: float, dataset: str = "mnist", init: str = "pytorch"):
    """The learner `name` (one of LEARNERS) at step size `lr`, configured as in Iqbal's figures."""
    params.choice("learner", name, LEARNERS)
    d_int = D_INT[dataset]
    if name == "baseline":
        return Backprop(lr=lr, init=init)
    if name == "CBP":
        return ContinualBackprop(lr=lr, replacement_rate=CBP_RATE)
    if name == "persistent n=2 + CBP":
        return PersistentStateCBP(lr=lr, d_int=d_int, n=2, replacement_rate=CBP_RATE)
    return PersistentState(lr=lr, d_int=d_int, n=int(name[-1]))


def sensitivity(lrs=LRS, readings: bool = True) -> dict[str, Line]:
    """The baseline on permuted MNIST over step sizes and, with `readings`, the other protocol readings."""
    lrs = params.float_list("lrs", lrs, 1e-6, 10.0)
    params.boolean("readings", readings)
    lines = {f"lr={lr:g}": Line(Backprop(lr=lr), MNIST) for lr in lrs}
    if readings:
        for lr in READINGS["standardized inputs"]:
            lines[f"standardized inputs, lr={lr:g}"] = Line(Backprop(lr=lr), MNIST, "standardized")
        for lr in READINGS["Kaiming init"]:
            lines[f"Kaiming init, lr={lr:g}"] = Line(Backprop(lr=lr, init="kaiming"), MNIST)
    return lines


def boundary(dataset: str = "mnist", learners=None, lrs=None) -> dict[str, Line]:
    """Each learner of GRID[dataset] (or of `learners`) at its step sizes (or at `lrs`), labelled
    "<learner> · lr=<lr>"."""
    params.choice("dataset", dataset, DATASETS)
    names = GRID[dataset] if learners is None else params.choice_list("learners", learners, LEARNERS)
    chosen = None if lrs is None else params.float_list("lrs", lrs, 1e-6, 10.0)
    return {f"{name} · lr={lr:g}": Line(learner(name, lr, dataset), DATASETS[dataset])
            for name in names for lr in (chosen or GRID[dataset].get(name, LRS))}


FIGURES = {"sensitivity": sensitivity, "boundary": boundary}
DEFAULT_SEEDS = {name: SEEDS for name in FIGURES}


def horizon(scale: str) -> int:
    """Tasks a line is read to at `scale` (paper: 300)."""
    return max(1, round(SCALES[scale].n_tasks * HORIZON_FRACTION))


def run_spec(line: Line, scale: Scale, n_tasks: int, seed: int) -> RunSpec:
    """The run of `line` and `seed`: the printed protocol's 600-task run, or a horizon-long one that
    stops at chance."""
    stream = PermutedStream(datasets=line.datasets, examples_per_task=scale.examples_per_task,
                            batch_size=BATCH_SIZE, inputs=line.inputs)
    length = scale.n_tasks if line.printed else n_tasks
    return RunSpec(learner=line.learner, stream=stream, n_tasks=length, test_examples=scale.test_examples,
                   probe_examples=scale.probe_examples, seed=seed,
                   stop_at_chance=None if line.printed else STOP_AT_CHANCE)


def figure_runs(figure: str, scale: str = "paper", seeds=SEEDS, **options) -> list[tuple[str, RunSpec]]:
    """(label, run spec) for every run the figure needs at this scale, all parameters validated."""
    params.choice("figure", figure, FIGURES)
    params.choice("scale", scale, SCALES)
    seeds = params.seed_list(seeds)
    return [(label, run_spec(line, SCALES[scale], horizon(scale), seed))
            for label, line in FIGURES[figure](**options).items() for seed in seeds]


def load_figure(figure: str, scale: str = "paper", seeds=SEEDS, device: str = "auto", store: Store | None = None,
                progress: bool = True, **options) -> pd.DataFrame:
    """The figure's tidy results read to the horizon, computing only runs missing from the store, with
    columns `learner_name` and `reading` beside the learner's options (`lr`, `init`)."""
    params.device_name(device)
    df = load_runs(figure_runs(figure, scale, seeds, **options), scale, device, store, progress)
    return annotate(df[df.task < horizon(scale)].reset_index(drop=True))


def annotate(df: pd.DataFrame) -> pd.DataFrame:
    """Name each row's learner and protocol reading from its label and options."""
    inputs = df["inputs"].fillna("unit") if "inputs" in df else pd.Series("unit", index=df.index)
    stopped = df["stopped_early"].fillna(False).astype(bool) if "stopped_early" in df else False
    reading = inputs.where(inputs != "unit", df["init"].map({"pytorch": "printed", "kaiming": "Kaiming init"}))
    return df.assign(learner_name=df["label"].str.split(" · ").str[0].where(df["label"].str.contains(" · "),
                                                                              "baseline"),
                     reading=reading.replace({"standardized": "standardized inputs"}), stopped_early=stopped)
