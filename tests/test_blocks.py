"""Blocks of steps (lopcore.blocks): the GPU's CUDA-graph path, its eager form on the CPU, and
groups that train at once. The recorded graphs themselves need a GPU (those tests skip here)."""

import pytest
import torch

from lopcore import blocks, data
from lopcore.blocks import BlockTrainer, block_steps
from lopcore.engine import run
from lopcore.learners import (
    Backprop,
    ContinualBackprop,
    PersistentState,
    PersistentStateCBP,
)
from lopcore.params import ParameterError
from lopcore.spec import RunSpec
from lopcore.store import Store
from lopcore.tasks import PermutedStream

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA GPU; none here")


def per_batch_and_blocks(
    learner, steps_per_task, most_steps, datasets=("mnist",), seeds=(0, 1, 2), tasks=3, capture=False, device="cpu"
):
    """The same runs trained by the engine's per-batch loop and by a BlockTrainer: both states."""
    stream = PermutedStream(datasets=datasets, examples_per_task=8 * steps_per_task, batch_size=8)
    source = stream.load(torch.device(device))
    loop, blocked = (learner.init_state(list(seeds), 784, 10, device) for _ in range(2))
    trainer = BlockTrainer(learner, blocked, stream, source, capture=capture, most_steps=most_steps)
    for k in range(tasks):
        task = stream.new_task(list(seeds), k, source)
        for x, y in stream.train_batches(source, task):
            learner.step(loop, x, y)
        trainer.train(task)
    return loop, blocked


def assert_same_state(learner, a, b):
    weights_a, biases_a = learner.parameters(a)
    weights_b, biases_b = learner.parameters(b)
    for p, q in zip(weights_a + biases_a, weights_b + biases_b):
        assert torch.equal(p, q)
    assert torch.equal(a["correct"], b["correct"]) and torch.equal(a["loss_sum"], b["loss_sum"])
    if "h" in a:
        assert torch.equal(a["h"], b["h"]) and a["t"] == b["t"]


@pytest.mark.parametrize(
    "learner",
    [
        Backprop(),
        PersistentState(d_int=16, n=1),
        PersistentState(d_int=16, n=2),
        PersistentState(d_int=16, n=4),
        PersistentState(d_int=16, n=3, through_state="forward_weights"),
        PersistentState(d_int=16, n=2, state="zero"),
    ],
    ids=["backprop", "n1", "n2", "n4", "n3-forward-weights", "zero-state"],
)
def test_blocks_compute_exactly_what_the_per_batch_loop_computes(learner):
    # 30 steps per task with blocks of at most 8: tasks start off the period (30 is no multiple of
    # 4 or 3), so every task has eager steps before, whole blocks, and eager steps after
    loop, blocked = per_batch_and_blocks(learner, steps_per_task=30, most_steps=8)
    assert_same_state(learner, loop, blocked)


def test_blocks_follow_the_data_set_of_each_task():
    learner = PersistentState(d_int=16, n=2)
    loop, blocked = per_batch_and_blocks(learner, 12, 4, datasets=("fashion_mnist", "mnist"), tasks=4)
    assert_same_state(learner, loop, blocked)


def test_block_period_says_which_learners_may_be_recorded():
    assert Backprop().block_period() == 1 and Backprop(weight_decay=1e-3).block_period() == 1
    for learner in (
        Backprop(dropout=0.1),
        Backprop(optimizer="adam"),
        Backprop(shrink=1e-3, noise_std=1e-3),
        Backprop(online_norm=True),
        ContinualBackprop(),
        PersistentStateCBP(),
        PersistentState(state="random"),
    ):
        assert learner.block_period() is None, learner
    assert [PersistentState(n=n).block_period() for n in (1, 2, 4)] == [1, 2, 4]
    assert PersistentState(n=2, state="zero").block_period() == 2


def test_block_steps_are_whole_periods():
    assert block_steps(1) == blocks.BLOCK_STEPS and block_steps(4, 30) == 28 and block_steps(3, 8) == 6
    assert block_steps(100, 64) == 100  # a period longer than the limit: one period per block


def test_blocks_are_used_only_on_a_gpu_and_can_be_turned_off(monkeypatch):
    stream = PermutedStream()
    assert not blocks.usable(Backprop(), stream, torch.device("cpu"))
    monkeypatch.setenv("LOPCORE_CUDA_GRAPHS", "yes")
    with pytest.raises(ParameterError, match="LOPCORE_CUDA_GRAPHS='yes' is not valid; give 1"):
        blocks.graphs_enabled()
    monkeypatch.setenv("LOPCORE_CUDA_GRAPHS", "0")
    assert not blocks.graphs_enabled()


def test_the_data_is_on_a_device_once_however_many_groups_use_it():
    assert data.on_device("mnist", "cpu") is data.load("mnist")
    stream = PermutedStream(datasets=("mnist",))
    assert stream.load(torch.device("cpu"))["mnist"].train_x.dtype == torch.uint8


def two_groups(seeds=(0, 1)):
    stream = PermutedStream(examples_per_task=80, batch_size=8)
    return [
        RunSpec(learner=learner, stream=stream, n_tasks=2, test_examples=100, probe_examples=32, seed=s)
        for learner in (Backprop(), PersistentState(d_int=8, n=2))
        for s in seeds
    ]


def numbers(df):
    """A results frame without what differs between two computations of the same runs (wall time, date, group size)."""
    return df[[c for c in df if c not in ("wall_time_s", "date", "runs_in_group")]]


def test_groups_that_train_at_once_give_the_same_numbers(tmp_path):
    specs = two_groups()
    one = run(specs, device="cpu", store=Store(tmp_path / "one"), progress=False, concurrent=1)
    both = run(specs, device="cpu", store=Store(tmp_path / "both"), progress=False, concurrent=2)
    assert numbers(one).equals(numbers(both))


def test_concurrent_groups_are_validated(monkeypatch, tmp_path):
    monkeypatch.setenv("LOPCORE_CONCURRENT_GROUPS", "0")
    with pytest.raises(ParameterError, match="LOPCORE_CONCURRENT_GROUPS='0' is not valid; give an integer >= 1"):
        run(two_groups(), device="cpu", store=Store(tmp_path), progress=False)
    with pytest.raises(ValueError, match="concurrent=0 is not valid"):
        run(two_groups(), device="cpu", store=Store(tmp_path), progress=False, concurrent=0)


@CUDA
@pytest.mark.parametrize(
    "learner",
    [Backprop(), PersistentState(n=1), PersistentState(n=2), PersistentState(n=4)],
    ids=["backprop", "n1", "n2", "n4"],
)
def test_recorded_blocks_replay_exactly_the_eager_steps(learner):
    loop, blocked = per_batch_and_blocks(
        learner,
        steps_per_task=30,
        most_steps=8,
        datasets=("fashion_mnist", "mnist"),
        tasks=4,
        capture=True,
        device="cuda",
    )
    assert_same_state(learner, loop, blocked)


@CUDA
def test_the_engine_on_a_gpu_gives_the_same_numbers_with_and_without_graphs(monkeypatch, tmp_path):
    specs = two_groups()
    graphed = run(specs, device="cuda", store=Store(tmp_path / "graphs"), progress=False, concurrent=2)
    monkeypatch.setenv("LOPCORE_CUDA_GRAPHS", "0")
    eager = run(specs, device="cuda", store=Store(tmp_path / "eager"), progress=False)
    assert numbers(graphed).equals(numbers(eager))


def test_a_run_asked_for_twice_is_computed_once(tmp_path):
    specs = two_groups(seeds=(0,))
    df = run(specs + specs, device="cpu", store=Store(tmp_path), progress=False)
    assert len(list(tmp_path.rglob("*.json"))) == 2 and len(df) == 2 * 2 * specs[0].n_tasks
