"""Figure specs: the single source of truth for which runs a figure needs at each scale.

Notebooks, the CLI and the tests all go through `figure_runs` / `load_figure`, so a figure's
runs are defined once. Scales:
    paper  Iqbal's protocol: 600 tasks x one pass over 60000 images (4.5M steps at batch 8)
    small  CPU-sized: the same 600 tasks, 6000 images each (a tenth of the steps)
    smoke  seconds: a few tiny tasks, for tests
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import pandas as pd

from . import params
from .engine import RunSpec, run
from .learners import Backprop, PersistentState
from .store import Store, spec_key
from .tasks import PermutedStream


@dataclass(frozen=True)
class Scale:
    n_tasks: int
    examples_per_task: int
    test_examples: int
    probe_examples: int


SCALES = {
    "paper": Scale(n_tasks=600, examples_per_task=60000, test_examples=10000, probe_examples=2000),
    "small": Scale(n_tasks=600, examples_per_task=6000, test_examples=2000, probe_examples=2000),
    "smoke": Scale(n_tasks=4, examples_per_task=480, test_examples=500, probe_examples=200),
}
BATCH_SIZE, LR = 8, 0.05  # Iqbal's


def _spec(learner, datasets, scale: Scale, seed: int) -> RunSpec:
    stream = PermutedStream(datasets=datasets, examples_per_task=scale.examples_per_task, batch_size=BATCH_SIZE)
    return RunSpec(learner=learner, stream=stream, n_tasks=scale.n_tasks, test_examples=scale.test_examples,
                   probe_examples=scale.probe_examples, seed=seed)


def fig2(n=(1, 2), d_int: int = 128) -> dict[str, object]:
    """Iqbal Fig. 2: online permuted MNIST, no-mitigation baseline vs persistent state."""
    n = params.int_list("n", n, 1)
    d_int = params.int_at_least("d_int", d_int, 1)
    learners = {"baseline": Backprop(lr=LR)}
    learners.update({f"persistent n={k}": PersistentState(lr=LR, d_int=d_int, n=k) for k in n})
    return learners


FIGURES: dict[str, tuple[tuple[str, ...], Callable[..., dict]]] = {
    "fig2": (("mnist",), fig2),
}


def figure_runs(figure: str, scale: str = "small", seeds=3, **options) -> list[tuple[str, RunSpec]]:
    """(label, run spec) for every run the figure needs at this scale, all parameters validated."""
    params.choice("figure", figure, FIGURES)
    params.choice("scale", scale, SCALES)
    datasets, learners_of = FIGURES[figure]
    seeds = params.seed_list(seeds)
    return [(label, _spec(learner, datasets, SCALES[scale], seed))
            for label, learner in learners_of(**options).items() for seed in seeds]


def load_figure(figure: str, scale: str = "small", seeds=3, device: str = "auto", store: Store | None = None,
                progress: bool = True, **options) -> pd.DataFrame:
    """The figure's tidy results, computing only runs missing from the store.

    Paper-scale runs are never computed where $CI is set or $LOPCORE_NO_COMPUTE=1 (a cache miss
    there is an error naming the missing files, not a multi-hour run).
    """
    params.device_name(device)
    runs = figure_runs(figure, scale, seeds, **options)
    compute = not (os.environ.get("LOPCORE_NO_COMPUTE") == "1" or (scale == "paper" and os.environ.get("CI")))
    df = run([spec for _, spec in runs], device=device, store=store, progress=progress, compute=compute)
    df["label"] = df["run"].map({spec_key(spec.to_dict()): label for label, spec in runs})
    df["scale"] = scale
    return df
