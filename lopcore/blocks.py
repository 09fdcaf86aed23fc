"""A task's training steps in blocks, replayed as CUDA graphs on a GPU.

On a GPU one step of a few small runs is some sixty tiny kernels, and launching them costs more
than running them: the naive loop is launch-bound. A CUDA graph records a block of K steps once,
the batches' gather from the device-resident uint8 images included, and replays the whole block
with a single launch. The host then only copies the next block's example indices into the
graph's input buffer and adds K to the learner's step counter: no host sync inside a task.

What may be recorded: a step whose kernels and their constants are the same at every step. A
learner says so with `block_period()`, the number of steps its pattern repeats after (1 for
plain SGD; n for the persistent state, whose truncation cuts the graph through h every n steps),
or None where a step draws random numbers from per-run generators (dropout, Shrink & Perturb,
the random-state ablation), has host-side constants that change per step (Adam's bias correction)
or decides on the host what to do at which step (continual backprop's replacement schedule).
Those learners run the same steps eagerly. Steps outside whole blocks (before the step counter
is aligned to the period, and a task's tail) also run eagerly, by the same code.

Replays compute exactly the kernels the eager steps compute, in the same order. On a CPU there
is no graph: `BlockTrainer(capture=False)` runs the same blocks eagerly, which the tests pin to the
engine's plain per-batch loop bit for bit.
"""

from __future__ import annotations

import torch

from .params import from_env
from .tasks import PermutedStream, Task, permuted

BLOCK_STEPS = 64  # at most this many steps per replay (a whole number of periods dividing into it)
EAGER_BLOCK_STEPS = 8  # without a graph: a block's gathered batches then stay in the CPU's cache


def block_steps(period: int, most: int = BLOCK_STEPS) -> int:
    """Steps per block: the largest multiple of `period` up to `most` (at least one period)."""
    return max(period, most // period * period)


def graphs_enabled() -> bool:
    """$LOPCORE_CUDA_GRAPHS: "1" (default) records blocks as CUDA graphs on a GPU, "0" runs every
    step eagerly (to compare, or to debug)."""
    return from_env("LOPCORE_CUDA_GRAPHS", "1", {"1": True, "0": False}.get, "give 1 (CUDA graphs, the default) or 0")


def per_batch(learner, state: dict, stream, data: dict):
    """The plain way to train a task, for every learner and stream: one step per batch the stream
    gives. Returns a function of the task, like `BlockTrainer.train`."""

    def train(task) -> None:
        for x, y in stream.train_batches(data, task):
            learner.step(state, x, y)

    return train


def usable(learner, stream, device: torch.device) -> bool:
    """Whether the engine trains this group in (graph-recorded) blocks: a GPU, a permuted-image
    stream, a learner with a `block_period`, and $LOPCORE_CUDA_GRAPHS not 0."""
    return (
        device.type == "cuda"
        and isinstance(stream, PermutedStream)
        and getattr(learner, "block_period", lambda: None)() is not None
        and graphs_enabled()
    )


class BlockTrainer:
    """Trains one group's runs on permuted-image tasks, K steps per block.

    `state` is the learner's (already restored, if resuming); `data` the stream's data sets by
    name (on the device). With `capture` each data set's block is recorded once as a CUDA graph
    (after one eager block that warms up the libraries' workspaces) and replayed after that.
    A block is at most `most_steps` steps (default 64 with graphs, 8 without).
    """

    def __init__(
        self, learner, state: dict, stream: PermutedStream, data: dict, capture: bool, most_steps: int | None = None
    ):
        self.learner, self.state, self.stream, self.data, self.capture = learner, state, stream, data, capture
        self.period = learner.block_period()
        self.steps = block_steps(self.period, most_steps or (BLOCK_STEPS if capture else EAGER_BLOCK_STEPS))
        runs, batch = state["correct"].shape[0], stream.batch_size
        device = state["correct"].device
        # The recorded block reads only these buffers; the host fills them before each replay.
        self.order = torch.zeros(runs, self.steps * batch, dtype=torch.int64, device=device)
        self.permutation = torch.zeros(runs, 784, dtype=torch.int64, device=device)
        self.graphs: dict[str, torch.cuda.CUDAGraph] = {}
        self.warm: set[str] = set()
        self.static = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
        self.counter_steps: dict[str, int] = {}  # host counters a block advances, and by how much

    def train(self, task: Task) -> None:
        """All of the task's steps, in order."""
        batch, total = self.stream.batch_size, self.stream.steps_per_task
        done = min(total, (-self.state.get("t", 0)) % self.period)  # align to the period first
        self._eager(task, 0, done)
        self.permutation.copy_(task.permutation)
        while total - done >= self.steps:
            self.order.copy_(task.order[:, done * batch : (done + self.steps) * batch])
            self._block(task.dataset)
            done += self.steps
        self._eager(task, done, total)

    def _eager(self, task: Task, first: int, stop: int) -> None:
        b = self.stream.batch_size
        self._run(task.dataset, task.order[:, first * b : stop * b], task.permutation, task.standardize)

    def _run(
        self,
        dataset: str,
        order: torch.Tensor,
        permutation: torch.Tensor,
        standardize: tuple[float, float] | None = None,
    ) -> None:
        """The steps over these examples (R, steps * batch), their batches gathered in one go."""
        b, source = self.stream.batch_size, self.data[dataset]
        xs, ys = permuted(source.train_x[order], permutation, standardize), source.train_y[order]
        for i in range(order.shape[1] // b):
            self.learner.step(self.state, xs[:, i * b : (i + 1) * b], ys[:, i * b : (i + 1) * b])

    def _steps(self, dataset: str) -> None:
        """One block: gather its batches from the index buffer, K steps, and leave every state
        tensor the step replaced (e.g. the persistent state h) back in the buffer it started in
        (recorded, this copy is what lets the next replay start from where this one ended)."""
        self._run(dataset, self.order, self.permutation, self.stream.standardize_of(dataset))
        self._home()

    def _home(self) -> None:
        """Copy every state tensor a step replaced back into the buffer it started in."""
        for k, v in self.static.items():
            if self.state[k] is not v:
                v.copy_(self.state[k])
                self.state[k] = v

    def _block(self, dataset: str) -> None:
        self._home()  # eager steps before it may have replaced state tensors; a graph reads the buffers
        if not self.capture:
            self._steps(dataset)
            return
        if dataset not in self.warm:  # one eager block on a side stream warms up cuBLAS before recording
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self._steps(dataset)
            torch.cuda.current_stream().wait_stream(side)
            self.warm.add(dataset)
            return
        if dataset not in self.graphs:
            self.graphs[dataset] = self._record(dataset)
        self.graphs[dataset].replay()
        for k, delta in self.counter_steps.items():
            self.state[k] += delta

    def _record(self, dataset: str) -> "torch.cuda.CUDAGraph":
        """Record one block. Recording runs no kernel; the host-side bookkeeping the block did while
        recording (step counters, the persistent state's chain of saved steps) is put back, and the
        counters' advance is replayed by hand."""
        host = {k: (list(v) if isinstance(v, list) else v) for k, v in self.state.items() if isinstance(v, (int, list))}
        torch.cuda.current_stream().synchronize()
        graph = torch.cuda.CUDAGraph()
        # a memory pool of its own (alternating data sets replay their graphs in turn); other groups'
        # threads go on launching work while this one records
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            self._steps(dataset)
        for k, before in host.items():
            if isinstance(before, list):
                self.state[k][:] = before  # in place: the learner holds on to this list
            else:
                self.counter_steps[k] = self.state[k] - before
                self.state[k] = before
        return graph
