"""Resume, integrity and isolation of the engine (see book/reliability.md).

Resume: a run group killed with SIGKILL in the middle of a task and started again ends with stored
metrics identical, float for float, to an uninterrupted run's. Integrity: a truncated or edited
checkpoint is an error naming the file; a checkpoint made for other runs is ignored with a warning.
Isolation: a run that diverges inside a vectorized group is flagged and leaves its group mates'
numbers bit-identical.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from lopcore import checkpoint as ckpt
from lopcore import data, engine
from lopcore.checkpoint import CheckpointWarning, CorruptCheckpointError
from lopcore.engine import DivergenceWarning, correlates, evaluate, run, run_group
from lopcore.frames import frame
from lopcore.learners import Backprop, PersistentState, PersistentStateCBP
from lopcore.metrics import weight_stats
from lopcore.params import ParameterError
from lopcore.spec import RunSpec
from lopcore.store import CHECKPOINTS, Store, canonical
from lopcore.tasks import PermutedStream, batches

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")

# The runs of the resume test, as source so that the child processes build exactly the same specs.
# 808 images per task = 101 steps: not a multiple of n, so at task boundaries the persistent learner's
# chain of saved steps is non-empty and the next task's first steps backpropagate into it.
RESUME_SPECS = textwrap.dedent("""
    from lopcore.spec import RunSpec
    from lopcore.learners import PersistentState
    from lopcore.tasks import PermutedStream
    stream = PermutedStream(examples_per_task=808, batch_size=8)
    learners = [PersistentState(d_int=16, n=4),                                  # chain of 1-3 steps
                PersistentState(d_int=16, n=3, through_state="forward_weights"),  # chain with weight snapshots
                PersistentState(d_int=16, n=2, state="random")]                   # per-run noise generators
    SPECS = [RunSpec(learner=l, stream=stream, n_tasks=6, test_examples=200, probe_examples=64, seed=s)
             for l in learners for s in (0, 1)]
""")

CHILD = RESUME_SPECS + textwrap.dedent("""
    import sys, time
    from lopcore import engine
    from lopcore.store import Store
    pause = float(sys.argv[2])
    if pause:  # slow each step down (numerics untouched) so that the parent can kill it mid-task
        def slow_batches(self, *args, _batches=PermutedStream.train_batches, **kwargs):
            for batch in _batches(self, *args, **kwargs):
                time.sleep(pause)
                yield batch
        PermutedStream.train_batches = slow_batches
    engine.run(SPECS, device="cpu", store=Store(sys.argv[1]), progress=False)
""")


def resume_specs() -> list[RunSpec]:
    namespace: dict = {}
    exec(RESUME_SPECS, namespace)
    return namespace["SPECS"]


def start_child(store: Path, pause: float) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("LOPCORE_NO_COMPUTE", None)
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(store), str(pause)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_mid_task(child: subprocess.Popen, checkpoint: Path, min_task: int = 2, timeout: float = 120) -> int:
    """SIGKILL the child once `checkpoint` holds task >= min_task; returns that task index."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert child.poll() is None, f"the run ended before it could be killed:\n{child.communicate()[1][-3000:]}"
        try:
            task = ckpt.read_header(checkpoint)["task"]
        except (FileNotFoundError, CorruptCheckpointError):
            task = -1
        if task >= min_task:
            time.sleep(0.05)  # into the task after the checkpoint (a task takes > 0.2 s at this pace)
            child.send_signal(signal.SIGKILL)
            child.communicate()
            assert child.returncode == -signal.SIGKILL
            return task
        time.sleep(0.005)
    child.kill()
    raise AssertionError(f"no checkpoint for task >= {min_task} at {checkpoint} within {timeout} s")


def metrics_of(store: Store, specs) -> list[dict]:
    return [store.load(s.to_dict())["metrics"] for s in specs]


@pytest.mark.slow
def test_sigkilled_groups_resume_bit_identically(tmp_path):
    specs = resume_specs()
    groups = [specs[i : i + 2] for i in range(0, len(specs), 2)]
    reference = start_child(tmp_path / "reference", 0)
    interrupted = Store(tmp_path / "interrupted")
    killed_at = []
    for i, group in enumerate(groups):  # kill each group in turn mid-task, the earlier ones resume and finish
        checkpoint = interrupted.checkpoint_path([s.to_dict() for s in group])
        killed_at.append(kill_mid_task(start_child(interrupted.root, 0.002), checkpoint))
        assert checkpoint.exists() and not any(s.to_dict() in interrupted for s in group)
        assert all(s.to_dict() in interrupted for g in groups[:i] for s in g)
    final = start_child(interrupted.root, 0)
    assert final.wait(timeout=300) == 0, final.communicate()[1][-3000:]
    assert reference.wait(timeout=300) == 0, reference.communicate()[1][-3000:]

    expected = metrics_of(Store(tmp_path / "reference"), specs)
    got = metrics_of(interrupted, specs)
    for spec, a, b in zip(specs, expected, got):
        assert canonical(a) == canonical(b), f"{spec.learner} seed {spec.seed}: resumed run differs"
        assert a == b  # every float equal (no NaN here)
    for group, task in zip(groups, killed_at):
        record = interrupted.load(group[0].to_dict())
        assert record["provenance"]["resumed_at_tasks"] == [task]
        assert "resumed_at_tasks" not in Store(tmp_path / "reference").load(group[0].to_dict())["provenance"]
    leftovers = list((interrupted.root / CHECKPOINTS).iterdir())
    assert not leftovers, f"checkpoints left after the results were saved: {leftovers}"


# --- in-process interruption, stale and corrupt checkpoints ------------------------------------


def tiny(learner, seeds=(0, 1), n_tasks=3):
    stream = PermutedStream(examples_per_task=160, batch_size=8)
    return [
        RunSpec(learner=learner, stream=stream, n_tasks=n_tasks, test_examples=200, probe_examples=64, seed=s)
        for s in seeds
    ]


def interrupt(monkeypatch, specs, store: Store, at_task: int) -> Path:
    """Run the group until `at_task` raises KeyboardInterrupt (a Ctrl-C); returns its checkpoint."""
    stop_at(monkeypatch, specs, store, at_task)
    path = store.checkpoint_path([s.to_dict() for s in specs])
    assert ckpt.read_header(path)["task"] == at_task and not any(s.to_dict() in store for s in specs)
    return path


def stop_at(monkeypatch, specs, store: Store, at_task: int) -> None:
    """Run the group until task `at_task` raises KeyboardInterrupt (a Ctrl-C) in its evaluation."""
    calls = []

    def evaluate_then_stop(*args, **kwargs):
        calls.append(1)
        if len(calls) > at_task:
            raise KeyboardInterrupt
        return evaluate(*args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(engine, "evaluate", evaluate_then_stop)
        with pytest.raises(KeyboardInterrupt):
            run(specs, device="cpu", store=store, progress=False)


@pytest.mark.parametrize(
    "learner",
    [PersistentState(d_int=8, n=3), PersistentStateCBP(d_int=8, n=3, replacement_rate=0.05, maturity=5)],
    ids=lambda learner: learner.kind,
)
def test_interrupted_group_resumes_and_then_deletes_its_checkpoint(tmp_path, monkeypatch, learner):
    specs = tiny(learner)
    path = interrupt(monkeypatch, specs, Store(tmp_path / "a"), at_task=2)
    run(specs, device="cpu", store=Store(tmp_path / "a"), progress=False)
    run(specs, device="cpu", store=Store(tmp_path / "b"), progress=False)
    assert metrics_of(Store(tmp_path / "a"), specs) == metrics_of(Store(tmp_path / "b"), specs)
    assert Store(tmp_path / "a").load(specs[0].to_dict())["provenance"]["resumed_at_tasks"] == [2]
    assert not path.exists()


def test_a_checkpoint_interval_skips_task_boundaries_and_the_rerun_is_still_exact(tmp_path, monkeypatch):
    monkeypatch.setenv("LOPCORE_CHECKPOINT_EVERY_S", "3600")  # no task of this group ends that late
    specs, store = tiny(Backprop()), Store(tmp_path / "a")
    stop_at(monkeypatch, specs, store, at_task=2)
    assert not store.checkpoint_path([s.to_dict() for s in specs]).exists()  # two tasks ended, none saved
    run(specs, device="cpu", store=store, progress=False)
    monkeypatch.delenv("LOPCORE_CHECKPOINT_EVERY_S")
    run(specs, device="cpu", store=Store(tmp_path / "b"), progress=False)
    assert metrics_of(store, specs) == metrics_of(Store(tmp_path / "b"), specs)
    assert "resumed_at_tasks" not in store.load(specs[0].to_dict())["provenance"]


@pytest.mark.parametrize("value", ["-1", "soon", "inf"])
def test_a_bad_checkpoint_interval_is_refused_before_any_work(tmp_path, monkeypatch, value):
    monkeypatch.setenv("LOPCORE_CHECKPOINT_EVERY_S", value)
    with pytest.raises(ParameterError, match=f"LOPCORE_CHECKPOINT_EVERY_S='{value}' is not valid; give seconds >= 0"):
        run(tiny(Backprop()), device="cpu", store=Store(tmp_path), progress=False)
    assert not (tmp_path / "backprop").exists()


def test_checkpoint_of_other_runs_is_ignored_with_a_warning(tmp_path, monkeypatch):
    store = Store(tmp_path / "a")
    mine, other = tiny(Backprop(lr=0.01)), tiny(Backprop())
    foreign = interrupt(monkeypatch, other, store, at_task=1)
    path = store.checkpoint_path([s.to_dict() for s in mine])
    path.parent.mkdir(exist_ok=True)
    shutil.copy(foreign, path)  # a stale file where this group's checkpoint belongs
    with pytest.warns(CheckpointWarning, match="ignoring checkpoint .*other run specs"):
        run(mine, device="cpu", store=store, progress=False)
    run(mine, device="cpu", store=Store(tmp_path / "b"), progress=False)
    assert metrics_of(store, mine) == metrics_of(Store(tmp_path / "b"), mine)
    assert "resumed_at_tasks" not in store.load(mine[0].to_dict())["provenance"]
    assert not path.exists() and foreign.exists()  # someone else's checkpoint is left alone


@pytest.mark.parametrize("damage", ["truncate", "edit", "header"])
def test_corrupt_checkpoint_is_an_error_naming_the_file(tmp_path, monkeypatch, damage):
    store = Store(tmp_path)
    specs = tiny(Backprop(), n_tasks=2)
    path = interrupt(monkeypatch, specs, store, at_task=1)
    raw = bytearray(path.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    elif damage == "edit":
        raw[-100] ^= 1  # one bit of the payload
    else:
        raw[:10] = b"0123456789"
    path.write_bytes(bytes(raw))
    with pytest.raises(CorruptCheckpointError, match=f"checkpoint {path}.*rm {path}"):
        run(specs, device="cpu", store=store, progress=False)
    assert path.exists() and not any(s.to_dict() in store for s in specs)


def test_temp_files_of_killed_writers_are_removed(tmp_path):
    path = tmp_path / CHECKPOINTS / "abc.pt"
    path.parent.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = path.with_name(f"{path.name}.{int(dead.stdout)}.tmp")
    live = path.with_name(f"{path.name}.{os.getppid()}.tmp")  # a running writer's file is not touched
    orphan.write_bytes(b"half a checkpoint")
    live.write_bytes(b"being written")
    assert ckpt.load_matching(path, [], CPU) is None
    assert not orphan.exists() and live.exists()


def test_result_file_errors_say_how_to_recover(tmp_path):
    store = Store(tmp_path)
    spec = tiny(Backprop())[0].to_dict()
    path = store.save(spec, {"task": [0]}, {})
    path.write_text(path.read_text().replace('"task"', '"tusk"', 1))
    with pytest.raises(Exception, match=f"{path}.*rm {path}.*recompute"):
        store.load(spec)


# --- isolation -------------------------------------------------------------------------------

POISON = 1  # the seed whose run is made to diverge


def poison_(state: dict, seeds, keys=("weights",)) -> dict:
    """Multiply every weight of the run with seed POISON by 1e30: its activations overflow to inf,
    its loss is NaN from the first step on."""
    if POISON in seeds:
        r = list(seeds).index(POISON)
        for key in keys:
            for w in state[key] if isinstance(state[key], list) else [state[key]]:
                w[r] *= 1e30
    return state


class PoisonedBackprop(Backprop):
    """Backprop with run POISON's weights blown up after initialisation (the same spec otherwise)."""

    def init_state(self, seeds, *args):
        return poison_(super().init_state(seeds, *args), seeds)


def flat(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for key in sorted(obj):
            yield from flat(obj[key])
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from flat(v)


@pytest.mark.parametrize(
    "learner",
    [
        Backprop(),
        PersistentState(d_int=8, n=3),
        PersistentState(d_int=8, n=2, through_state="forward_weights"),
        PersistentState(d_int=8, n=2, state="random"),
    ],
    ids=str,
)
def test_a_diverging_run_leaves_the_others_bit_identical(learner):
    """State and every metric of runs 0 and 2 after two tasks are the same bits whether run 1 is
    healthy or poisoned; run 1's loss is not finite."""
    mnist = data.load("mnist")
    stream = PermutedStream(examples_per_task=200, batch_size=8)
    seeds = [0, POISON, 2]
    outcomes = []
    for poisoned in (False, True):
        state = learner.init_state(seeds, 784, 10, CPU)
        if poisoned:
            poison_(state, seeds, ("weights", "w_h") if "w_h" in state else ("weights",))
        for k in range(2):
            task = stream.task(seeds, k)
            state["loss_sum"].zero_()
            for x, y in batches(mnist, task, 8):
                learner.step(state, x, y)
        measured = {
            **correlates(learner, state, mnist, task, 100),
            "test": evaluate(learner, state, mnist, task, 300),
            "loss": state["loss_sum"].clone(),
            **weight_stats(*learner.parameters(state)),
        }
        state.pop("noise", None)
        outcomes.append((list(flat(state)), measured))
    (healthy, healthy_m), (poisoned, poisoned_m) = outcomes
    assert not poisoned_m["loss"][1].isfinite() and healthy_m["loss"].isfinite().all()
    for layer in (1, 2, 3):  # ranks of a diverged run are unknown (NaN), not 0 as for a dead layer
        assert poisoned_m[f"effective_rank_l{layer}"][1].isnan() and poisoned_m[f"stable_rank_l{layer}"][1].isnan()
    for a, b in zip(healthy, poisoned):
        if a.dim() and a.shape[0] == 3:  # run axis
            assert torch.equal(a[[0, 2]], b[[0, 2]])
    for name in healthy_m:
        assert torch.equal(healthy_m[name][[0, 2]], poisoned_m[name][[0, 2]]), name


def test_diverged_run_is_stored_flagged_and_its_group_mates_unchanged(tmp_path):
    stream = PermutedStream(examples_per_task=160, batch_size=8)

    def specs(learner, seeds):
        return [
            RunSpec(learner=learner, stream=stream, n_tasks=3, test_examples=200, probe_examples=64, seed=s)
            for s in seeds
        ]

    with pytest.warns(DivergenceWarning, match=f"seed={POISON} diverged at task 0"):
        df = run(specs(PoisonedBackprop(), (0, POISON, 2)), device="cpu", store=Store(tmp_path / "p"), progress=False)
    assert df.loc[df.seed == POISON, "diverged"].all() and not df.loc[df.seed != POISON, "diverged"].any()
    assert df["diverged"].dtype == bool
    healthy, _, _ = run_group(specs(Backprop(), (0, POISON, 2)), CPU, progress=False)
    poisoned = [Store(tmp_path / "p").load(s.to_dict())["metrics"] for s in specs(Backprop(), (0, POISON, 2))]
    assert poisoned[0] == healthy[0] and poisoned[2] == healthy[2]  # exact float equality
    # on this machine a run's numbers do not depend on which other runs share its kernels at all
    pair, _, _ = run_group(specs(Backprop(), (0, 2)), CPU, progress=False)
    if pair == [healthy[0], healthy[2]]:
        assert pair == [poisoned[0], poisoned[2]]


def test_frame_derives_diverged_from_the_stored_loss(tmp_path):
    store = Store(tmp_path)
    spec = tiny(Backprop())[0].to_dict()
    store.save(spec, {"task": [0, 1, 2], "online_loss": [0.5, float("inf"), float("nan")]}, {})
    assert frame(store.load(spec))["diverged"].tolist() == [False, True, True]
    record = json.loads(store.path(spec).read_text())
    assert "diverged" not in record["metrics"]  # derived when read: stored results stay valid
