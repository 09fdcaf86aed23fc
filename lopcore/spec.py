"""A run's specification: everything that determines its numbers, and so its results-store key.

A run is a learner on a task stream for `n_tasks` tasks, with one seed. `RunSpec.to_dict` is what the
store hashes; options added after results were stored are left out of it at their defaults, so those
results keep their keys. Validation happens here, when a spec is built, before any work starts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from . import data
from .learners import Backprop, PersistentState, Recurrent
from .sequences import BinaryPairStream, ReshuffleStream
from .tasks import PermutedStream

METRICS_VERSION = "1"  # bump when what the engine measures, or how, changes
AT_CHANCE_BELOW = 0.15  # a task's online accuracy below this (chance is 0.1) counts as "at chance"


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines one run's numbers (and so its store key)."""

    learner: Backprop | PersistentState | Recurrent
    stream: PermutedStream | ReshuffleStream | BinaryPairStream = field(default_factory=PermutedStream)
    n_tasks: int = 600
    test_examples: int = 10000  # held-out test examples per end-of-task evaluation (sequence streams:
    # at most this many, since a binary pair's test set may be smaller)
    probe_examples: int = 2000  # samples for the task-start correlates (dead units, ranks)
    seed: int = 0
    dormant_tau: float | None = None  # also record each layer's τ-dormant fraction at task start
    # (Sokar et al.); None: not recorded, and left out of the store key (results stored before it
    # existed keep their keys)
    stop_at_chance: int | None = None  # stop a run once its online accuracy has been at chance
    # (below AT_CHANCE_BELOW) for this many tasks in a row: its result then holds fewer than n_tasks
    # tasks (`frame` marks it `stopped_early`). None: run all n_tasks, left out of the store key

    def __post_init__(self):
        positive = {
            "n_tasks": self.n_tasks,
            "test_examples": self.test_examples,
            "probe_examples": self.probe_examples,
            "stream.batch_size": self.stream.batch_size,
        }
        for name, value in positive.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}={value!r} is not valid; it must be an integer >= 1")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ValueError(f"seed={self.seed!r} is not valid; it must be an integer >= 0")
        if self.dormant_tau is not None and (
            isinstance(self.dormant_tau, bool)
            or not isinstance(self.dormant_tau, (int, float))
            or not 0.0 <= self.dormant_tau < 1.0
        ):
            raise ValueError(f"dormant_tau={self.dormant_tau!r} is not valid; give None or a number in [0, 1)")
        if self.stop_at_chance is not None and (
            not isinstance(self.stop_at_chance, int) or isinstance(self.stop_at_chance, bool) or self.stop_at_chance < 1
        ):
            raise ValueError(f"stop_at_chance={self.stop_at_chance!r} is not valid; give None or an integer >= 1")
        if self.probe_examples > self.stream.examples_per_task:
            raise ValueError(
                f"probe_examples={self.probe_examples} is not valid; a task has only "
                f"{self.stream.examples_per_task} examples to probe with"
            )
        if not isinstance(self.stream, PermutedStream):
            if self.stream.batch_size > self.stream.examples_per_task:
                raise ValueError(
                    f"stream.examples_per_task={self.stream.examples_per_task!r} is not valid; it "
                    f"must be at least the batch size ({self.stream.batch_size})"
                )
            return  # a sequence stream checks its own fields
        if self.stream.examples_per_task < self.stream.batch_size:
            raise ValueError(
                f"stream.examples_per_task={self.stream.examples_per_task!r} is not valid; it must "
                f"be at least the batch size ({self.stream.batch_size}); beyond the 60000 training "
                f"images a task takes further passes"
            )
        if not self.stream.datasets:
            raise ValueError(f"stream.datasets={self.stream.datasets!r} is not valid; name at least one data set")
        for name in self.stream.datasets:
            if name not in data.DATASETS:
                raise ValueError(f"stream dataset {name!r} is not valid; choose from {', '.join(data.DATASETS)}")

    def to_dict(self) -> dict:
        learner = {"kind": self.learner.kind, "version": self.learner.version, **self.learner.to_dict()}
        # Permuted-image streams store their bare fields (their keys predate sequence streams).
        stream = self.stream.to_dict() if hasattr(self.stream, "to_dict") else asdict(self.stream)
        extra = {} if self.dormant_tau is None else {"dormant_tau": float(self.dormant_tau)}
        if self.stop_at_chance is not None:
            extra["stop_at_chance"] = self.stop_at_chance
        return {
            "learner": learner,
            "stream": stream,
            "n_tasks": self.n_tasks,
            "test_examples": self.test_examples,
            "probe_examples": self.probe_examples,
            "seed": self.seed,
            "metrics_version": METRICS_VERSION,
            **extra,
        }

    def group_key(self) -> str:
        """Runs with the same group key differ only in seed and can share kernels."""
        d = self.to_dict()
        d.pop("seed")
        return repr(sorted(d.items()))


def chance_stops(online_accuracy: torch.Tensor, streak: int | None) -> list[int | None]:
    """Per run, from its online accuracies so far (R, tasks): the task at which it had been at
    chance for `streak` tasks in a row (its last task to keep), or None (not yet, or no streak)."""
    if streak is None or online_accuracy.shape[1] < streak:
        return [None] * online_accuracy.shape[0]
    low = (online_accuracy < AT_CHANCE_BELOW).double()
    full = low.unfold(1, streak, 1).sum(-1) == streak  # (R, tasks - streak + 1): window ending at k is all low
    return [int(hits.nonzero()[0]) + streak - 1 if hits.any() else None for hits in full]
