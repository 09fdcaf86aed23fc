"""Units of work: the pieces a sweep is cut into, and how one is computed.

A unit is (part of) one run group: runs whose specs differ only in seed (`RunSpec.group_key`). Why a
group and never a mix of groups: the engine stacks a group's runs on the leading run axis and
advances them with one batched kernel per layer, so R runs cost about what one costs on a GPU;
runs of different learners or data cannot share those kernels and would only run one after the
other inside the unit. A group larger than `max_runs_per_unit` is split by seed, so a unit fits
one device (memory grows with R) and a large group can spread over several devices.

`execute` computes a unit wherever it runs (in-process or on a Ray worker) through the engine's
own `run_group`, so a unit's numbers do not depend on the backend, only on the device kind.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from . import params
from .device import resolve_device
from .engine import run_group
from .spec import RunSpec
from .store import Store, provenance, spec_key


@dataclass(frozen=True)
class Unit:
    """Runs of one group (same group key, distinct seeds), computed together on one device."""

    runs: tuple[RunSpec, ...]

    @property
    def label(self) -> str:
        """The learner kind, its options that differ from the defaults, the data and the seeds."""
        first = self.runs[0]
        default = type(first.learner)()
        options = [
            f"{f}={getattr(first.learner, f)}"
            for f in vars(first.learner)
            if getattr(first.learner, f) != getattr(default, f)
        ]
        return " ".join(
            [first.learner.kind, *options, "+".join(first.stream.datasets), f"seeds={[r.seed for r in self.runs]}"]
        )

    def keys(self) -> list[str]:
        """Store keys of the unit's runs, in order."""
        return [spec_key(r.to_dict()) for r in self.runs]


@dataclass(frozen=True)
class UnitResult:
    """What a computed unit sends back to the driver, which alone writes the store."""

    metrics: list[dict[str, list]]  # per run, in the unit's order
    provenance: dict  # where it ran: the worker's device, torch, git commit, wall time


def group_runs(runs: Sequence[RunSpec]) -> list[list[RunSpec]]:
    """Runs grouped by group key, groups and seeds in first-seen order; duplicate specs dropped."""
    groups: dict[str, dict[str, RunSpec]] = defaultdict(dict)
    for run in runs:
        groups[run.group_key()].setdefault(spec_key(run.to_dict()), run)
    return [list(group.values()) for group in groups.values()]


def pack(runs: Sequence[RunSpec], max_runs_per_unit: int = 8, store: Store | None = None) -> list[Unit]:
    """Cut runs into units: one per group, a group larger than `max_runs_per_unit` split by seed.

    With a store, runs already stored are left out first, so a unit whose runs are all stored is
    never formed (and never submitted).
    """
    params.int_at_least("max_runs_per_unit", max_runs_per_unit, 1)
    if store is not None:
        runs = [r for r in runs if r.to_dict() not in store]
    return [
        Unit(tuple(group[i : i + max_runs_per_unit]))
        for group in group_runs(runs)
        for i in range(0, len(group), max_runs_per_unit)
    ]


def execute(unit: Unit, device: str = "cpu", checkpoint: Path | None = None, threads: int = 1) -> UnitResult:
    """Compute a unit's runs with the engine's `run_group` on `device` (resolved where it runs).

    `threads` pins torch's CPU thread count for the unit: on CPU the bits of a result depend on it
    (kernels split their reductions by thread), so both backends pin the same count (recorded in the
    provenance) rather than inherit whatever the process, or a reused Ray worker, had.
    """
    dev = resolve_device(device)
    params.int_at_least("threads", threads, 1)
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    started = time.perf_counter()
    try:
        metrics, wall, resumed = run_group(list(unit.runs), dev, progress=False, checkpoint=checkpoint)
    finally:
        torch.set_num_threads(previous)
    prov = provenance(dev, wall, len(unit.runs), threads)
    prov["unit_wall_time_s"] = round(time.perf_counter() - started, 2)  # data loading included
    if resumed:
        prov["resumed_at_tasks"] = resumed
    return UnitResult(metrics, prov)
