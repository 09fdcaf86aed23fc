"""Hyperparameter sweeps: a small declarative grid in, run specs and a tidy DataFrame out.

A sweep spec is a dict (or a JSON file), e.g.

    {"learner": "persistent", "dataset": "fashion_mnist", "scale": "small", "seeds": 5,
     "n": [1, 2, 4], "d_int": [128, 256], "lr": 0.05}

`learner` names a learner kind (lopcore.learners.LEARNERS); `dataset` a data set, or a list of them
for an alternating stream (as Fig. 7); `scale` one of papers.iqbal.figures.SCALES; `seeds` a count or a list;
`task_fraction` (optional, in (0, 1]) runs only that prefix of the scale's tasks. Every other key is
an option of the learner, and every list-valued option is a grid axis: the sweep is the cartesian
product of the axes, times the seeds. (An option whose value is itself a tuple, `hidden`, is an
axis when given a list of lists.) Everything is validated before any work starts.

Runs are computed by a backend (lopcore.backends: `local` or `ray`) in units of work (lopcore.units),
and the results land in the results store like a figure's: a run already stored is never recomputed.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Sequence

import pandas as pd

from . import data, params
from .backends import BACKENDS, SweepError, run_local, run_ray
from .engine import RunSpec, frame
from .learners import LEARNERS, make_learner
from .papers.iqbal.figures import SCALES, _spec
from .store import Store, spec_key
from .units import Unit, execute, pack

SWEEP_KEYS = ("learner", "dataset", "scale", "seeds", "task_fraction")

__all__ = ["plan", "run_specs", "run_sweep", "load_spec", "SweepError"]


def learner_defaults(kind: str) -> dict:
    """The options a learner kind takes, with their defaults."""
    return {f.name: f.default for f in fields(LEARNERS[kind]) if f.default is not MISSING}


def _is_axis(value, default) -> bool:
    if not isinstance(value, list):
        return False
    return not isinstance(default, tuple) or all(isinstance(v, (list, tuple)) for v in value)


def _option_value(kind: str, name: str, value, default):
    """One value of a learner option, checked against the type of its default."""
    bad = f"{name}={value!r} is not valid for learner {kind!r}; "
    if isinstance(default, bool):
        return params.boolean(name, value)
    if isinstance(default, float):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise params.ParameterError(bad + f"give a number (default {default!r})")
        return float(value)  # lr=1 and lr=1.0 are one run (one store key)
    if isinstance(default, int):
        return params.int_at_least(name, value, 0)
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in value
        ):
            raise params.ParameterError(bad + f"give a list of integers, e.g. {list(default)}")
        return tuple(value)
    if not isinstance(value, type(default)):
        raise params.ParameterError(bad + f"give a {type(default).__name__} (default {default!r})")
    return value


def learner_grid(kind: str, options: dict) -> list[tuple[str, object]]:
    """(label, learner) for every point of the grid (the cartesian product of the list-valued
    options), validated; the label names the options that vary, e.g. "n=2, d_int=128"."""
    defaults = learner_defaults(kind)
    for name in options:
        if name not in defaults:
            raise params.ParameterError(
                f"unknown option {name!r} for learner {kind!r}; its options: {', '.join(defaults)}; "
                f"sweep keys: {', '.join(SWEEP_KEYS)}"
            )
    axes = {}
    for name, value in options.items():
        values = value if _is_axis(value, defaults[name]) else [value]
        if not values:
            raise params.ParameterError(f"{name}=[] is not valid; a grid axis needs at least one value")
        axes[name] = list(dict.fromkeys(_option_value(kind, name, v, defaults[name]) for v in values))
    learners = []
    for combo in itertools.product(*axes.values()):
        chosen = dict(zip(axes, combo, strict=True))
        try:
            learner = make_learner(kind, **chosen)
        except (ValueError, TypeError) as err:
            raise params.ParameterError(f"learner {kind!r} with {chosen}: {err}") from None
        label = ", ".join(
            f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in chosen.items() if len(axes[k]) > 1
        )
        learners.append((label or kind, learner))
    return learners


def _datasets(value) -> tuple[str, ...]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n in data.DATASETS for n in names):
        raise params.ParameterError(
            f"dataset={value!r} is not valid; choose one of {', '.join(map(repr, data.DATASETS))}"
            f", or a list of them for an alternating stream"
        )
    return tuple(names)


def plan(spec: dict) -> list[RunSpec]:
    """The run specs of a sweep spec (see the module doc), grid point by grid point, seeds innermost."""
    return [run for _, run in labeled_plan(spec)]


def labeled_plan(spec: dict) -> list[tuple[str, RunSpec]]:
    """(grid point label, run spec) for every run of a sweep spec; see `plan`."""
    if not isinstance(spec, dict):
        raise params.ParameterError(f"a sweep spec is a dict (a JSON object), got {type(spec).__name__}")
    if "learner" not in spec:
        raise params.ParameterError(f"a sweep spec needs 'learner'; choose one of {', '.join(map(repr, LEARNERS))}")
    kind = params.choice("learner", spec["learner"], LEARNERS)
    datasets = _datasets(spec.get("dataset", "mnist"))
    scale = SCALES[params.choice("scale", spec.get("scale", "small"), SCALES)]
    seeds = params.seed_list(spec.get("seeds", 3))
    fraction = spec.get("task_fraction", 1.0)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise params.ParameterError(f"task_fraction={fraction!r} is not valid; give a number in (0, 1]")
    options = {k: v for k, v in spec.items() if k not in SWEEP_KEYS}
    return [
        (label, _spec(learner, datasets, scale, seed, fraction))
        for label, learner in learner_grid(kind, options)
        for seed in seeds
    ]


def load_spec(path: str | Path) -> dict:
    """A sweep spec from a JSON file; an unreadable file is a ParameterError naming it."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise params.ParameterError(f"sweep spec {path}: {err}") from None


def compute(
    runs: Sequence[RunSpec],
    backend: str = "local",
    store: Store | None = None,
    device: str = "auto",
    max_runs_per_unit: int = 8,
    max_retries: int = 2,
    progress: bool = True,
    address: str | None = None,
    cpus_per_unit: float = 1,
    gpus_per_unit: float | None = None,
    execute_unit=execute,
) -> list[Unit]:
    """Compute every run not yet in the store on `backend`; returns the units computed.

    Units hold at most `max_runs_per_unit` seeds of one run group and use `cpus_per_unit` torch
    threads on either backend (on CPU the bits depend on it), `gpus_per_unit` GPUs on Ray.

    Raises SweepError, after storing every other unit, when a unit still fails after `max_retries`.
    """
    params.choice("backend", backend, BACKENDS)
    params.int_at_least("max_retries", max_retries, 0)
    store = store or Store()
    units = pack(runs, max_runs_per_unit, store)
    if not units:
        return []
    if backend == "local":
        failures = run_local(units, store, device, max_retries, progress, cpus_per_unit, execute_unit)
    else:
        failures = run_ray(
            units, store, device, max_retries, progress, address, cpus_per_unit, gpus_per_unit, execute_unit
        )
    if failures:
        raise SweepError(failures, max_retries + 1)
    return units


def run_specs(runs: Sequence[RunSpec], backend: str = "local", store: Store | None = None, **options) -> pd.DataFrame:
    """Results of `runs` (tidy, one row per run x task), computing missing ones on `backend` (see
    `compute` for the options)."""
    store = store or Store()
    compute(runs, backend, store, **options)
    return pd.concat([frame(store.load(r.to_dict())) for r in runs], ignore_index=True)


def run_sweep(
    spec: dict | str | Path, backend: str = "local", address: str | None = None, store: Store | None = None, **options
) -> pd.DataFrame:
    """Results of a sweep (a spec dict or a JSON file's path), computed on `backend` where missing:
    tidy, one row per run x task, with the grid point as `label` (the options that vary).

    `backend="ray"` runs each unit as a Ray task (on the cluster at `address`, see backends.run_ray);
    options: device, max_runs_per_unit, max_retries, progress, cpus_per_unit, gpus_per_unit.
    """
    spec = spec if isinstance(spec, dict) else load_spec(spec)
    runs = labeled_plan(spec)
    df = run_specs([run for _, run in runs], backend, store, address=address, **options)
    df["label"] = df["run"].map({spec_key(run.to_dict()): label for label, run in runs})
    df["scale"] = spec.get("scale", "small")
    return df
