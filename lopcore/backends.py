"""Backends that compute units of work: `local` (in this process) and `ray` (tasks on a Ray cluster).

Both compute a unit with `units.execute`, so the numbers are the same on either (on the same device
kind). The driver, this process, is the only writer to the results store: a unit's runs are saved
(atomically, through `Store.save`) as soon as its result arrives, so an interrupted sweep keeps every
finished unit. A unit that raises is retried `max_retries` times; one that still fails is collected
and reported by a `SweepError` naming its runs and its error once every other unit is done — never
silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from tqdm import tqdm

from . import params
from .store import Store
from .units import Unit, UnitResult, execute

BACKENDS = ("local", "ray")
RAY_DEVICES = ("auto", "cpu", "cuda")  # a Ray task sees only the GPUs it was given, so no cuda:N
Execute = Callable[..., UnitResult]  # (unit, device, checkpoint=None, threads=1), as units.execute


@dataclass(frozen=True)
class Failure:
    unit: Unit
    error: str


class SweepError(RuntimeError):
    """Units that still failed after their retries; every other unit's runs are stored."""

    def __init__(self, failures: Sequence[Failure], attempts: int):
        self.failures = list(failures)
        lines = [
            f"{len(failures)} unit(s) failed after {attempts} attempt(s) each; the other units' runs are "
            f"stored, and rerunning the same command computes only what is missing:"
        ]
        for f in failures:
            lines.append(
                f"  unit {f.unit.label}\n    runs (store keys): {', '.join(f.unit.keys())}\n    error: {f.error}"
            )
        super().__init__("\n".join(lines))


def store_result(store: Store, unit: Unit, result: UnitResult) -> None:
    """Save a unit's runs; only the driver calls this."""
    for run, metrics in zip(unit.runs, result.metrics, strict=True):
        store.save(run.to_dict(), metrics, result.provenance)


def _describe(err: BaseException) -> str:
    cause = getattr(err, "cause", None) or err  # a Ray task error wraps the worker's exception
    return f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1] if str(cause).strip() else ''}"


def threads_for(cpus_per_unit) -> int:
    """Torch threads of a unit that may use `cpus_per_unit` CPUs (validated): the same on either backend."""
    if isinstance(cpus_per_unit, bool) or not isinstance(cpus_per_unit, (int, float)) or cpus_per_unit <= 0:
        raise params.ParameterError(f"cpus_per_unit={cpus_per_unit!r} is not valid; give a number > 0")
    return max(1, int(cpus_per_unit))


def run_local(
    units: Sequence[Unit],
    store: Store,
    device: str = "auto",
    max_retries: int = 2,
    progress: bool = True,
    cpus_per_unit: float = 1,
    execute_unit: Execute = execute,
) -> list[Failure]:
    """Compute units one after another in this process, with the group checkpoints of the engine,
    each on `cpus_per_unit` torch threads."""
    params.device_name(device)
    threads = threads_for(cpus_per_unit)
    failures = []
    for unit in tqdm(units, desc="units", unit="unit", disable=not progress):
        checkpoint = store.checkpoint_path([r.to_dict() for r in unit.runs])
        for _attempt in range(max_retries + 1):
            try:
                result = execute_unit(unit, device, checkpoint=checkpoint, threads=threads)
                break
            except Exception as err:  # noqa: BLE001 - reported below with the unit's runs
                error = err
        else:
            failures.append(Failure(unit, _describe(error)))
            continue
        store_result(store, unit, result)
        checkpoint.unlink(missing_ok=True)
    return failures


def _call(execute_unit: Execute, unit: Unit, device: str, threads: int) -> UnitResult:
    return execute_unit(unit, device, threads=threads)


def ray_resources(device: str, cluster_gpus: float, gpus_per_unit: float | None) -> tuple[str, float]:
    """(the device a worker uses, GPUs a unit asks for): 'auto' means a GPU when the cluster has one."""
    params.choice("device", device, RAY_DEVICES)
    if gpus_per_unit is None:
        gpus_per_unit = 1.0 if device == "cuda" or (device == "auto" and cluster_gpus > 0) else 0.0
    if not isinstance(gpus_per_unit, (int, float)) or isinstance(gpus_per_unit, bool) or gpus_per_unit < 0:
        raise params.ParameterError(
            f"gpus_per_unit={gpus_per_unit!r} is not valid; give a number >= 0 "
            f"(a fraction such as 0.25 packs 4 units on one GPU)"
        )
    if device == "cuda" and gpus_per_unit == 0:
        raise params.ParameterError(
            "device='cuda' needs gpus_per_unit > 0 (Ray hides GPUs from a task that asks for none)"
        )
    if device == "cpu" and gpus_per_unit > 0:
        raise params.ParameterError(
            f"device='cpu' with gpus_per_unit={gpus_per_unit} would hold GPUs idle; "
            f"use device 'cuda' or 'auto', or gpus_per_unit=0"
        )
    return ("cuda" if gpus_per_unit > 0 else "cpu"), float(gpus_per_unit)


def code_env() -> dict:
    """The Ray runtime environment that ships this process's lopcore to a cluster's workers (as a
    py_module: imported from there, ahead of any copy a node may have) with the driver's commit."""
    from pathlib import Path

    from .store import git_commit

    return {"py_modules": [str(Path(__file__).resolve().parent)], "env_vars": {"LOPCORE_GIT_COMMIT": git_commit()}}


def run_ray(
    units: Sequence[Unit],
    store: Store,
    device: str = "auto",
    max_retries: int = 2,
    progress: bool = True,
    address: str | None = None,
    cpus_per_unit: float = 1,
    gpus_per_unit: float | None = None,
    execute_unit: Execute = execute,
) -> list[Failure]:
    """Compute units as Ray tasks, each asking for `cpus_per_unit` CPUs (and using as many torch
    threads, as `run_local` does) and `gpus_per_unit` GPUs.

    Uses the Ray runtime this process is already connected to, else connects to `address` ('auto'
    finds a cluster started with `ray start --head` on this machine; 'HOST:PORT' a remote one; None
    starts a private local one, shut down again at the end). Connecting to a cluster (`address`
    given), the driver ships its own copy of lopcore to the workers (`code_env`, the job's runtime
    environment), so a worker needs neither the checkout nor its path, and records the driver's
    commit; every node needs torch and the data sets (`python -m lopcore data fetch`). A process
    already connected keeps the runtime environment it connected with.
    """
    try:
        import ray
    except ImportError:
        raise params.ParameterError("backend 'ray' needs Ray: pip install ray==2.60.0 (or lopcore[ray])") from None
    ray_resources(device, 0.0, gpus_per_unit)  # bad options fail here, before connecting to a cluster
    threads = threads_for(cpus_per_unit)
    started_here = not ray.is_initialized()
    if started_here:
        env = {} if address is None else {"runtime_env": code_env()}  # Ray ships local code per job only
        ray.init(address=address, include_dashboard=False, log_to_driver=progress, **env)
    pending: dict = {}
    try:
        worker_device, gpus = ray_resources(device, ray.cluster_resources().get("GPU", 0), gpus_per_unit)
        task = ray.remote(_call).options(
            num_cpus=cpus_per_unit, num_gpus=gpus, max_retries=max_retries, retry_exceptions=True
        )
        pending = {task.remote(execute_unit, unit, worker_device, threads): unit for unit in units}
        failures = []
        with tqdm(total=len(units), desc="units", unit="unit", disable=not progress) as bar:
            while pending:
                [ref], _ = ray.wait(list(pending), num_returns=1)
                unit = pending.pop(ref)
                try:
                    store_result(store, unit, ray.get(ref))
                except ray.exceptions.RayError as err:
                    failures.append(Failure(unit, _describe(err)))
                    bar.write(f"unit failed after {max_retries + 1} attempt(s): {unit.label}: {_describe(err)}")
                bar.update()
        return failures
    finally:
        for ref in pending:  # interrupted (Ctrl-C, a store error): stop what a shared cluster still runs
            ray.cancel(ref)
        if started_here:
            ray.shutdown()
