"""Task streams: online permuted MNIST / Fashion-MNIST.

Task k of run `seed` is a pixel permutation and an example order, both pure functions of
(seed, k): any task can be regenerated without replaying the ones before it, which makes
resume and spot checks cheap. The learner only ever sees batches; task boundaries are known
to the engine (for metrics) and never passed to the learner.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Sequence

import torch

if TYPE_CHECKING:
    from .data import Dataset

N_PIXELS = 784
N_CLASSES = 10
# Input scalings (`PermutedStream.inputs`). "unit": bytes / 255, in [0, 1] (our reading of Iqbal, and
# the default). "standardized": then (x - mean) / std with one mean and std per data set over its 60000
# training images' pixels, the PyTorch MNIST example's convention (its MNIST constants; Fashion-MNIST's
# computed the same way, tests/test_tasks_inputs.py recomputes both from the data).
INPUT_SCALINGS = ("unit", "standardized")
STANDARDIZE = {"mnist": (0.1307, 0.3081), "fashion_mnist": (0.2860, 0.3530)}


def derive_seed(*parts: object) -> int:
    """A stable 63-bit seed from any tuple of labels (same on every machine and Python run)."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def generator(*parts: object) -> torch.Generator:
    """A CPU generator seeded by `derive_seed(*parts)`."""
    return torch.Generator().manual_seed(derive_seed(*parts))


def repeated_shuffles(pool: torch.Tensor, count: int, g: torch.Generator) -> torch.Tensor:
    """`count` indices from `pool`: fresh shuffles of the whole pool back to back (epochs). The
    first `len(pool)` are exactly `pool[randperm(len(pool), generator=g)]`."""
    epochs = -(-count // len(pool))
    return torch.cat([pool[torch.randperm(len(pool), generator=g)] for _ in range(epochs)])[:count]


@dataclass(frozen=True)
class Task:
    """One task for R runs: `permutation` (R, 784) and `order` (R, examples) index tensors."""

    def to(self, device) -> "Task":
        return Task(self.index, self.dataset, self.permutation.to(device), self.order.to(device), self.standardize)

    index: int
    dataset: str  # the data set this task draws from (alternating streams change it per task)
    permutation: torch.Tensor
    order: torch.Tensor
    standardize: tuple[float, float] | None = None  # (mean, std) after / 255, or None (unit inputs)


@dataclass(frozen=True)
class PermutedStream:
    """Online permuted-image tasks: every task is a fresh pixel permutation and a fresh pass
    over (the first `examples_per_task` of a fresh shuffle of) the 60000 training images.

    A task longer than the training set (Dohare's change-rate study switches the permutation only
    every 100k or 1M examples) is several passes, each a fresh shuffle, under the same permutation;
    its first pass is the order a shorter task would have, so shorter tasks' numbers are unchanged.
    `batch_size` 1 is the fully online protocol (one SGD step per example).

    `datasets` cycles per task: ("mnist",) is permuted MNIST; ("fashion_mnist", "mnist")
    alternates the two (Iqbal's Figure 7). `inputs` is the input scaling, one of INPUT_SCALINGS
    (the paper does not say; see the sensitivity page): left out of the store key at its default, so
    results stored before it existed keep their keys.
    """

    datasets: tuple[str, ...] = ("mnist",)
    examples_per_task: int = 60000
    batch_size: int = 8
    inputs: str = "unit"

    def __post_init__(self):
        if self.inputs not in INPUT_SCALINGS:
            raise ValueError(
                f"inputs={self.inputs!r} is not valid; choose one of: {', '.join(map(repr, INPUT_SCALINGS))}"
            )

    def to_dict(self) -> dict:
        """The stream as stored in a run spec: its fields, `inputs` only where it is not "unit"."""
        d = {
            "datasets": list(self.datasets),
            "examples_per_task": self.examples_per_task,
            "batch_size": self.batch_size,
        }
        return d if self.inputs == "unit" else {**d, "inputs": self.inputs}

    def dataset_of(self, task: int) -> str:
        return self.datasets[task % len(self.datasets)]

    def task(self, seeds: Sequence[int], k: int, n_train: int = 60000) -> Task:
        perms = [torch.randperm(N_PIXELS, generator=generator(s, k, "permutation")) for s in seeds]
        orders = [
            repeated_shuffles(torch.arange(n_train), self.examples_per_task, generator(s, k, "order")) for s in seeds
        ]
        dataset = self.dataset_of(k)
        return Task(k, dataset, torch.stack(perms), torch.stack(orders), self.standardize_of(dataset))

    def standardize_of(self, dataset: str) -> tuple[float, float] | None:
        """(mean, std) that inputs of `dataset` are standardized with, or None (unit inputs)."""
        return STANDARDIZE[dataset] if self.inputs == "standardized" else None

    @property
    def steps_per_task(self) -> int:
        return self.examples_per_task // self.batch_size

    # What the engine asks of a stream (see engine.run_group); `data` is what `load` returns.

    def load(self, device) -> dict[str, "Dataset"]:
        """The stream's data sets by name, on `device`."""
        from . import data  # late: data pulls in the download machinery

        return {name: data.on_device(name, str(device)) for name in set(self.datasets)}

    def n_inputs(self, data: dict) -> int:
        return N_PIXELS

    def n_outputs(self, data: dict) -> int:
        return N_CLASSES

    def test_size(self, data: dict) -> int:
        """Most test examples a task can be evaluated on."""
        return min(d.test_x.shape[0] for d in data.values())

    def new_task(self, seeds: Sequence[int], k: int, data: dict) -> Task:
        """Task k for these runs, on the data's device."""
        n_train = next(iter(data.values())).train_x.shape[0]
        return self.task(seeds, k, n_train).to(next(iter(data.values())).train_x.device)

    def train_batches(self, data: dict, task: Task) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return batches(data[task.dataset], task, self.batch_size)

    def test_batches(self, data: dict, task: Task, n_examples: int, chunk: int = 2000):
        return test_batches(data[task.dataset], task, n_examples, chunk)

    def probe_inputs(self, data: dict, task: Task, n_examples: int) -> torch.Tensor:
        """Inputs for the task-start correlates: the task's first training examples."""
        return gather_examples(data[task.dataset], task, 0, n_examples)[0]


def permuted(
    images: torch.Tensor, permutation: torch.Tensor, standardize: tuple[float, float] | None = None
) -> torch.Tensor:
    """Apply each run's pixel permutation: images (R, N, 784) uint8 -> float32 in [0, 1], then,
    with `standardize` (mean, std), (x - mean) / std."""
    idx = permutation[:, None, :].expand(-1, images.shape[1], -1)
    x = torch.gather(images, 2, idx).float().div_(255.0)
    return x if standardize is None else x.sub_(standardize[0]).div_(standardize[1])


def gather_examples(data: "Dataset", task: Task, start: int, stop: int, train: bool = True):
    """Examples [start, stop) of the task's order for every run, permuted: x (R, N, 784), y (R, N)."""
    source_x, source_y = (data.train_x, data.train_y) if train else (data.test_x, data.test_y)
    idx = (
        task.order[:, start:stop]
        if train
        else torch.arange(start, stop, device=source_x.device).expand(task.permutation.shape[0], -1)
    )
    return permuted(source_x[idx], task.permutation, task.standardize), source_y[idx]


def batches(
    data: "Dataset", task: Task, batch_size: int, chunk_examples: int = 4096
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The task's batches, in order: each (R, batch, 784) float and (R, batch) int64.

    Examples are gathered and permuted a chunk at a time (one gather per ~4k examples, not per
    step); a batch is then a view into the chunk. A trailing partial batch is dropped.
    """
    n = task.order.shape[1] // batch_size * batch_size
    chunk = max(batch_size, chunk_examples // batch_size * batch_size)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        xs, ys = gather_examples(data, task, start, stop)
        for i in range(0, stop - start, batch_size):
            yield xs[:, i : i + batch_size], ys[:, i : i + batch_size]


def test_batches(data: "Dataset", task: Task, n_examples: int, chunk: int = 2000):
    """The first `n_examples` test images under the task's permutation, `chunk` at a time: (x, y)."""
    for start in range(0, n_examples, chunk):
        yield gather_examples(data, task, start, min(start + chunk, n_examples), train=False)
