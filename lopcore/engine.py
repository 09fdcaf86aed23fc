"""The engine: run specs in (lopcore.spec), a tidy DataFrame (lopcore.frames) out.

Runs that differ only in seed form a group and advance together, stacked on the leading run
axis. Finished runs are read from the results store instead of recomputed; a group in progress
checkpoints after every task (lopcore.checkpoint), so an interrupted figure resumes at the task
where it stopped, with bit-identical results. Metrics accumulate on the device; the host reads
them once per task. On a GPU, learners whose steps always run the same kernels train in blocks of
steps replayed as CUDA graphs (lopcore.blocks), and `run` can train several groups at once, each on
a CUDA stream of its own. A run whose loss turns non-finite is flagged `diverged` (derived from its
stored `online_loss` when read) and does not change its group mates' numbers.

A stream is either online permuted images (`tasks.PermutedStream`, the MLP learners) or a
sequence stream (`sequences.ReshuffleStream` / `BinaryPairStream`, the recurrent learner). The
engine asks a stream only for: `load(device)` (its data), `n_inputs`/`n_outputs`, `new_task`,
`train_batches`, `test_batches` (the end-of-task test set under that task's permutation, label
map or class pair), `probe_inputs` (the task-start correlates' inputs), `test_size` and
`dataset_of`. For the recurrent learner the correlates (dead fraction, effective and stable rank)
are those of its final hidden state, the one layer it has (`_l1`); a tanh/sigmoid unit is rarely
exactly 0, so its dead fraction is mostly 0 by construction.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch
from tqdm import tqdm  # text bars: no ipywidgets (and no widget JS in the offline book)

from . import blocks, metrics
from . import checkpoint as ckpt
from .device import own_stream, resolve_device
from .frames import frame
from .params import from_env
from .spec import RunSpec, chance_stops
from .store import Store, provenance
from .tasks import PermutedStream, gather_examples, test_batches

N_CLASSES = 10


class MissingResultsError(RuntimeError):
    """Results are not in the store and computing them was not allowed."""


def evaluate(learner, state, dataset, task, n_examples: int, chunk: int = 2000, stream=None) -> torch.Tensor:
    """Test accuracy (R,) on the task's first `n_examples` test examples under its permutation,
    label map or class pair. `dataset` and `task` are as `stream` gives them; without `stream`,
    a permuted-image data set and task."""
    chunks = (
        stream.test_batches(dataset, task, n_examples, chunk)
        if stream
        else test_batches(dataset, task, n_examples, chunk)
    )
    correct = 0
    for x, y in chunks:
        correct = correct + (learner.logits(state, x).argmax(-1) == y).sum(-1)
    return correct / n_examples


def correlates(
    learner, state, dataset, task, n_examples: int, stream=None, dormant_tau: float | None = None
) -> dict[str, torch.Tensor]:
    """Dead-unit fraction, effective rank and srank (δ = 0.01) of every hidden layer at task start
    (the recurrent learner: of its final hidden state), and with `dormant_tau` the τ-dormant
    fraction. Arguments as for `evaluate`. (Weight magnitudes are recorded at each task's end,
    which is the next task's start: nothing updates the weights in between.)"""
    x = stream.probe_inputs(dataset, task, n_examples) if stream else gather_examples(dataset, task, 0, n_examples)[0]
    out = {}
    for i, acts in enumerate(learner.hidden_activations(state, x), start=1):
        out[f"dead_fraction_l{i}"] = metrics.dead_fraction(acts)
        out[f"effective_rank_l{i}"] = metrics.effective_rank(acts)
        out[f"stable_rank_l{i}"] = metrics.stable_rank(acts)
        if dormant_tau is not None:
            out[f"dormant_fraction_l{i}"] = metrics.dormant_fraction(acts, dormant_tau)
    return out


class DivergenceWarning(RuntimeWarning):
    """A run's loss became non-finite; it is stored flagged `diverged`, its group mates unaffected."""


def run_group(
    specs: Sequence[RunSpec],
    device: torch.device,
    progress: bool = True,
    checkpoint: Path | None = None,
    checkpoint_every_s: float = 0.0,
) -> tuple[list[dict[str, list]], float, list[int]]:
    """Train the runs of one group together.

    Returns per-run metric columns, the wall time spent on them (over all sessions, if resumed) and
    the tasks at which the group was resumed from a checkpoint (empty if it ran through).

    With `checkpoint` (a file path, see lopcore.checkpoint) the group's state is saved there after
    every task (or, with `checkpoint_every_s` > 0, after the first task that ends at least that many
    seconds after the last save: for paper-scale runs of many short tasks, where writing the state
    after every task would cost more than the tasks), and a matching checkpoint found there is
    resumed from: the results are then bit-identical to an uninterrupted run on the same kind of
    device. The caller deletes the file once the results are stored. Runs are independent: one whose
    loss turns non-finite (it diverged) is reported with a DivergenceWarning and keeps going; the others' numbers are
    unchanged, since every kernel treats the run axis as a batch of independent problems. With
    `stop_at_chance` a run's results end at its own stop task (see `chance_stops`), whatever its
    group mates do; the group stops once every run has stopped.
    """
    spec, seeds = specs[0], [s.seed for s in specs]
    learner, stream = spec.learner, spec.stream
    source = stream.load(device)
    n_test = stream.test_size(source)
    if spec.test_examples > n_test and isinstance(stream, PermutedStream):
        raise ValueError(f"test_examples={spec.test_examples} is not valid; the test sets hold {n_test} examples")
    n_test = min(n_test, spec.test_examples)
    state = learner.init_state(seeds, stream.n_inputs(source), stream.n_outputs(source), device)
    steps = stream.steps_per_task
    columns: list[str] | None = None
    rows: list[torch.Tensor] = []
    spec_dicts = [s.to_dict() for s in specs]
    label = f"{learner.kind} seeds={seeds}"
    saved = ckpt.load_matching(checkpoint, spec_dicts, device) if checkpoint is not None else None
    first_task, elapsed, resumed = 0, 0.0, []
    if saved is not None:
        _restore(state, saved, checkpoint)
        first_task, columns, elapsed = saved["task"], saved["columns"], saved["elapsed_s"]
        rows, resumed = list(saved["rows"].unbind(1)), [*saved["resumed_at"], first_task]
        if progress:
            tqdm.write(f"resuming {label} at task {first_task} from {checkpoint}", file=sys.stderr)
    train_task = (
        blocks.BlockTrainer(learner, state, stream, source, capture=True).train  # GPU: CUDA graphs
        if blocks.usable(learner, stream, device)
        else blocks.per_batch(learner, state, stream, source)
    )
    diverged = (
        set()
        if not rows
        else set(
            (~torch.stack(rows, 1)[:, :, columns.index("online_loss")].isfinite()).any(1).nonzero().flatten().tolist()
        )
    )
    started = last_saved = time.perf_counter()
    with tqdm(
        total=spec.n_tasks, initial=first_task, desc=label, unit="task", disable=not progress, leave=False
    ) as bar:
        for k in range(first_task, spec.n_tasks):
            task = stream.new_task(seeds, k, source)
            found = correlates(
                learner, state, source, task, spec.probe_examples, stream=stream, dormant_tau=spec.dormant_tau
            )
            state["correct"].zero_()
            state["loss_sum"].zero_()
            train_task(task)
            found["online_accuracy"] = state["correct"] / (steps * stream.batch_size)
            found["online_loss"] = state["loss_sum"] / steps
            found["test_accuracy"] = evaluate(learner, state, source, task, n_test, stream=stream)
            found.update(metrics.weight_stats(*learner.parameters(state)))
            columns = columns or list(found)
            rows.append(torch.stack([found[c].double() for c in columns], 1).cpu())  # one host read
            for r in (~rows[-1][:, columns.index("online_loss")].isfinite()).nonzero().flatten().tolist():
                if r not in diverged:
                    diverged.add(r)
                    warnings.warn(
                        f"{label}: run seed={seeds[r]} diverged at task {k} (non-finite loss); its "
                        f"results are kept, flagged `diverged`",
                        DivergenceWarning,
                        stacklevel=2,
                    )
            due = time.perf_counter() - last_saved >= checkpoint_every_s
            if checkpoint is not None and k + 1 < spec.n_tasks and due:
                last_saved = time.perf_counter()
                ckpt.save(
                    checkpoint,
                    {
                        "format": ckpt.FORMAT,
                        "specs": spec_dicts,
                        "device_type": device.type,
                        "torch": str(torch.__version__),
                        "task": k + 1,
                        "columns": columns,
                        "rows": torch.stack(rows, 1),
                        "elapsed_s": elapsed + time.perf_counter() - started,
                        "resumed_at": resumed,
                        "state": ckpt.pack_state(state),
                    },
                )
            bar.set_postfix(acc=f"{rows[-1][:, columns.index('online_accuracy')].mean():.3f}")
            bar.update()
            stops = chance_stops(torch.stack(rows, 1)[:, :, columns.index("online_accuracy")], spec.stop_at_chance)
            if all(stop is not None for stop in stops):
                break
    table = torch.stack(rows, 1)  # (R, tasks, metrics)
    stops = chance_stops(table[:, :, columns.index("online_accuracy")], spec.stop_at_chance)
    results = []
    for r in range(len(specs)):
        n = table.shape[1] if stops[r] is None else stops[r] + 1
        cols = {"task": list(range(n)), "dataset": [stream.dataset_of(k) for k in range(n)]}
        cols.update({c: [float(f"{v:.7g}") for v in table[r, :n, j].tolist()] for j, c in enumerate(columns)})
        results.append(cols)
    return results, elapsed + time.perf_counter() - started, resumed


def _restore(state: dict, saved: dict, checkpoint: Path) -> None:
    try:
        ckpt.restore_state_(state, saved["state"])
    except ckpt.StaleCheckpoint as err:
        raise ckpt.CorruptCheckpointError(
            f"checkpoint {checkpoint} does not fit the learner state ({err}); delete it "
            f"(rm {checkpoint}) and rerun: the group restarts from its first task"
        ) from None


def checkpoint_interval() -> float:
    """Seconds between checkpoints of a group in progress: $LOPCORE_CHECKPOINT_EVERY_S, default 0
    (after every task)."""
    return from_env(
        "LOPCORE_CHECKPOINT_EVERY_S",
        "0",
        lambda raw: float(raw) if 0 <= float(raw) < float("inf") else None,
        "give seconds >= 0 (0, the default: after every task)",
    )


def concurrent_groups() -> int:
    """Run groups that train at once: $LOPCORE_CONCURRENT_GROUPS, default 1 (one after another)."""
    return from_env(
        "LOPCORE_CONCURRENT_GROUPS",
        "1",
        lambda raw: int(raw) if raw.isdigit() and int(raw) >= 1 else None,
        "give an integer >= 1 (default 1)",
    )


def run(
    specs: Sequence[RunSpec],
    device: str = "auto",
    store: Store | None = None,
    progress: bool = True,
    compute: bool = True,
    concurrent: int | None = None,
) -> pd.DataFrame:
    """Results of every run in `specs`, computing (and storing) only those not yet stored.

    Returns a tidy DataFrame, one row per run x task, with the learner's options as columns.
    With compute=False a missing run is a MissingResultsError instead of a computation. A group in
    progress checkpoints after every task, or at most every $LOPCORE_CHECKPOINT_EVERY_S seconds.
    `concurrent` groups (default $LOPCORE_CONCURRENT_GROUPS, 1) train at once, each in a thread of
    its own and, on a GPU, on a CUDA stream of its own: groups of different learners cannot share
    kernels, but a GPU runs their small kernels side by side. Their numbers do not change.
    """
    store = store or Store()
    every = checkpoint_interval()
    concurrent = concurrent_groups() if concurrent is None else concurrent
    if isinstance(concurrent, bool) or not isinstance(concurrent, int) or concurrent < 1:
        raise ValueError(f"concurrent={concurrent!r} is not valid; give an integer >= 1")
    # each missing run once, even where several figures' lines share it (the baseline, Fig. 5)
    missing = list({store.path(s.to_dict()): s for s in specs if s.to_dict() not in store}.values())
    if missing and not compute:
        paths = "\n  ".join(str(store.path(s.to_dict())) for s in missing[:5])
        raise MissingResultsError(
            f"{len(missing)} run(s) are not in the results store {store.root}, "
            f"e.g.\n  {paths}\nrun them first (they are not computed here)"
        )
    dev = resolve_device(device) if missing else None
    groups: dict[str, list[RunSpec]] = defaultdict(list)
    for s in missing:
        groups[s.group_key()].append(s)

    def compute_group(group: list[RunSpec]) -> None:
        checkpoint = store.checkpoint_path([s.to_dict() for s in group])
        with own_stream(dev):
            results, wall, resumed = run_group(group, dev, progress, checkpoint=checkpoint, checkpoint_every_s=every)
        prov = provenance(dev, wall, len(group))
        if resumed:
            prov["resumed_at_tasks"] = resumed
        for s, cols in zip(group, results, strict=True):
            store.save(s.to_dict(), cols, prov)
        ckpt.remove(checkpoint)  # only once every run of the group is stored

    with tqdm(total=len(groups), desc="run groups", unit="group", disable=not progress or len(groups) < 2) as bar:
        if concurrent == 1 or len(groups) < 2:
            for group in groups.values():
                compute_group(group)
                bar.update()
        else:
            with ThreadPoolExecutor(concurrent) as pool:
                for done in as_completed([pool.submit(compute_group, g) for g in groups.values()]):
                    done.result()  # a group's error surfaces here; finished groups are already stored
                    bar.update()
    return pd.concat([frame(store.load(s.to_dict())) for s in specs], ignore_index=True)
