"""Sequence task streams for the recurrent experiments: MNIST rows and Tatoeba language ID.

Two sources, one shape (`SequenceData`):
- MNIST as sequences: the 28 rows of an image are 28 time steps of 28 pixels (scaled to [0, 1]
  when a batch is gathered; the data stays uint8).
- Tatoeba language identification: UTF-8 bytes as tokens (no tokenizer), truncated to a fixed
  `max_len`, padded with `PAD`, with each sentence's length. Training: the `<lang>_1000.csv` files;
  test: `testset.csv` minus the sentences that also occur in training.

Two streams over either source, every task a pure function of (seed, task index), the learner
never told where a task starts:
- `ReshuffleStream`: every task a fresh permutation of the class labels, same inputs.
- `BinaryPairStream`: every task two *distinct* classes, drawn uniformly among the C·(C-1)/2
  pairs (which one is called 0 is a coin flip), on those classes' examples only.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import os
from pathlib import Path
from typing import ClassVar, Iterator, NamedTuple, Sequence

import torch

from . import data as image_data
from . import tatoeba_export
from .data import DataError
from .tasks import generator, repeated_shuffles

Tensor = torch.Tensor
PAD = 256  # token id of padding after the 256 byte values; padded steps never reach the state


class Sequences(NamedTuple):
    """A batch of sequences: `inputs` (R, B, T, n_in) float or (R, B, T) int tokens; `lengths` (R, B)."""

    inputs: Tensor
    lengths: Tensor


LANGUAGES = ("cat", "cmn", "eng", "fra", "glg", "ita", "jpn", "kor", "por", "spa")
TATOEBA_FOLDER = "tatoeba"
TATOEBA_TEST = "testset.csv"
TATOEBA_SHA256 = {  # of the files in the Tatoeba/tatodet data folder this project uses
    "cat_1000.csv": "2f80def03e62a0b8458d99e01368a3baa9564ab546ce0275618418709e7d8a67",
    "cmn_1000.csv": "3e1b0c3b7b81712cf2a0d3869e78ac207f6ec7d53a84413a6f2f492367312a34",
    "eng_1000.csv": "aa0c477dfba1911b378c8b02fa1877379f3e985bda093022fb8387eb7557e286",
    "fra_1000.csv": "b1dc6edb16d42c3ac4555a79f13c8665fbc3c45d6ad0a779a27ce8d35d9da450",
    "glg_1000.csv": "9807421fb15e5ada00624a86d5d014691b37af105e4d63794daffb3cad71d42e",
    "ita_1000.csv": "230aca08f5d30719af31bf77ff950b7964e90af1412279e63f23d9b442a165dd",
    "jpn_1000.csv": "fa0e9629203d5542857ef737dc4d5fdbf75e146a9b3efe22e9c2d9f361b9a2c7",
    "kor_1000.csv": "26bd30e908cfc83e92c69308d3fdd128af51dcbeb778d67ffbf17fc63d6d0c19",
    "por_1000.csv": "eff9fdd69dcd7c1564420381a303cd34976c163fbccf55aa3db2f735943f0ef4",
    "spa_1000.csv": "b7120b1d256c1bdc890a6090810f24cb63ea045d46b9a890b18623ff60b0fe88",
    TATOEBA_TEST: "3b7f69a00f9e68e4280194231fab0093ae02ba00e827c45488064246ea682330",
}
VENDORED_TATOEBA = Path(__file__).resolve().parent / "vendored" / TATOEBA_FOLDER
VOCABULARY = PAD + 1  # 256 byte values and the pad id
MNIST_SIDE = 28


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: tensor fields
class SequenceData:
    """A labelled sequence data set. `*_x`: uint8 (N, T, n_in) feature rows, or int64 (N, T) tokens;
    `*_len` (N,) valid steps; `*_y` (N,) class ids in [0, n_classes). `n_in` is the learner's input
    size: features per step, or the vocabulary size for tokens."""

    name: str
    train_x: Tensor
    train_len: Tensor
    train_y: Tensor
    test_x: Tensor
    test_len: Tensor
    test_y: Tensor
    n_classes: int
    n_in: int

    def to(self, device) -> "SequenceData":
        tensors = ("train_x", "train_len", "train_y", "test_x", "test_len", "test_y")
        return dataclasses.replace(self, **{f: getattr(self, f).to(device) for f in tensors})


# --- MNIST rows as time steps ---


def mnist_sequences(name: str = "mnist") -> SequenceData:
    """MNIST (or Fashion-MNIST) with each image's 28 rows as 28 time steps of 28 pixels."""
    images = image_data.load(name)

    def rows(x):
        return x.view(len(x), MNIST_SIDE, MNIST_SIDE)

    def full(x):
        return torch.full((len(x),), MNIST_SIDE, dtype=torch.int64)

    return SequenceData(
        name,
        rows(images.train_x),
        full(images.train_x),
        images.train_y,
        rows(images.test_x),
        full(images.test_x),
        images.test_y,
        10,
        MNIST_SIDE,
    )


# --- Tatoeba: find, verify, read ---


def tatoeba_search_paths() -> list[Path]:
    """Folders that may hold the Tatoeba files, in the order `lopcore.data` searches for images, then
    the copy shipped with the package (no registry ships these sentences; see its ATTRIBUTION.md)."""
    paths = [Path(os.environ["LOPCORE_DATA"]).expanduser() / TATOEBA_FOLDER] if os.environ.get("LOPCORE_DATA") else []
    paths.append(image_data.cache_dir() / "data" / TATOEBA_FOLDER)
    paths += [image_data._SHARED / TATOEBA_FOLDER] if image_data._SHARED.is_dir() else []
    return paths + [VENDORED_TATOEBA]


def _how_to_fix(folder: Path | None = None) -> str:
    where = f"Replace {folder} with" if folder else "Put"
    return (
        f"{where} a copy of the Tatoeba/tatodet data folder (files {', '.join(sorted(TATOEBA_SHA256))}) "
        f"in one of: {', '.join(map(str, tatoeba_search_paths()))}; or set LOPCORE_DATA to a folder "
        f"holding {TATOEBA_FOLDER}/. No package registry ships these sentences."
    )


def locate_tatoeba() -> Path:
    """The first search folder holding any Tatoeba file; it must then hold all of them."""
    for folder in tatoeba_search_paths():
        present = {name: (folder / name).is_file() for name in TATOEBA_SHA256}
        if all(present.values()):
            return folder
        if any(present.values()):  # a half-filled folder is a mistake to report, not to skip silently
            missing = ", ".join(name for name, ok in present.items() if not ok)
            raise DataError(f"{folder} holds only part of the Tatoeba data: missing {missing}. {_how_to_fix(folder)}")
    raise DataError(f"Tatoeba language data not found. {_how_to_fix()}")


def read_verified(path: Path, pins: dict[str, str] = TATOEBA_SHA256) -> list[tuple[str, str, str]]:
    """(id, lang, text) rows of a Tatoeba file after checking its pinned sha256 (`pins`: the tatodet
    copy's, or a fetched export's manifest)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path} is missing. {_how_to_fix(path.parent)}") from None
    actual, expected = hashlib.sha256(raw).hexdigest(), pins[path.name]
    if actual != expected:
        fix = (
            _how_to_fix(path.parent)
            if pins is TATOEBA_SHA256
            else f"Delete {path.parent} and fetch it again: `python -m lopcore data fetch --dataset tatoeba_report`."
        )
        raise DataError(
            f"sha256 mismatch for {path}: expected {expected}, got {actual}; the file is corrupt "
            f"or not the one its manifest names. {fix}"
        )
    return [tuple(line.split("\t", 2)) for line in raw.decode("utf-8").splitlines() if line]


def encode_bytes(texts: Sequence[str], max_len: int) -> tuple[Tensor, Tensor]:
    """UTF-8 byte tokens (N, max_len) int64, padded with PAD, and lengths (N,).

    Truncation may cut a multi-byte character: the model reads bytes, not characters."""
    tokens = torch.full((len(texts), max_len), PAD, dtype=torch.int64)
    lengths = torch.empty(len(texts), dtype=torch.int64)
    for i, text in enumerate(texts):
        encoded = list(text.encode("utf-8")[:max_len])
        tokens[i, : len(encoded)] = torch.tensor(encoded, dtype=torch.int64)
        lengths[i] = len(encoded)  # 0 for an empty sentence: it is classified from h0 = 0
    return tokens, lengths


@functools.lru_cache(maxsize=None)
def load_tatoeba(max_len: int = 64, languages: tuple[str, ...] | None = None, source: str = "tatoeba") -> SequenceData:
    """Tatoeba language identification, byte-level: train on the 1000-sentence files, test on
    `testset.csv` without the sentences that also occur in training (they would test recall).
    `source`: "tatoeba", the local tatodet copy (LANGUAGES); "tatoeba_report", the report's languages
    fetched from the official export (see `lopcore.tatoeba_export`). `languages`: a subset (default all)."""
    if max_len < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len!r}")
    known = {"tatoeba": LANGUAGES, "tatoeba_report": tatoeba_export.REPORT_LANGUAGES}.get(source)
    if known is None:
        raise ValueError(f"source must be 'tatoeba' or 'tatoeba_report', got {source!r}")
    languages = known if languages is None else languages
    if set(languages) - set(known) or len(set(languages)) != len(languages) or len(languages) < 2:
        raise ValueError(f"languages must be >= 2 distinct of {known}, got {languages!r}")
    if source == "tatoeba_report":
        folder = tatoeba_export.folder()
        pins = tatoeba_export.pinned_sha256(folder)
    else:
        folder, pins = locate_tatoeba(), TATOEBA_SHA256
    train = [row for lang in languages for row in read_verified(folder / f"{lang}_1000.csv", pins)]
    seen = {text for _, _, text in train}
    test = [row for row in read_verified(folder / TATOEBA_TEST, pins) if row[1] in languages and row[2] not in seen]
    label = {lang: i for i, lang in enumerate(languages)}

    def split(rows):
        tokens, lengths = encode_bytes([text for _, _, text in rows], max_len)
        return tokens, lengths, torch.tensor([label[lang] for _, lang, _ in rows])

    return SequenceData(f"{source}{max_len}", *split(train), *split(test), len(languages), VOCABULARY)


# --- task streams ---


@dataclasses.dataclass(frozen=True)
class LabelTask:
    """Task `index` for R runs: `label_map` (R, C) maps a source class to the task's label (-1: not
    in this task); `order` (R, n) training example indices in presentation order; `test_order`
    (R, n_test) test example indices."""

    index: int
    label_map: Tensor
    order: Tensor
    test_order: Tensor

    def to(self, device) -> "LabelTask":
        return LabelTask(self.index, self.label_map.to(device), self.order.to(device), self.test_order.to(device))


SOURCES = ("mnist", "fashion_mnist", "tatoeba", "tatoeba_report")


def load_source(source: str, max_len: int) -> SequenceData:
    """A stream's data: MNIST / Fashion-MNIST rows as steps, or Tatoeba bytes cut to `max_len` (the
    local copy, or the report's languages from the official export)."""
    return load_tatoeba(max_len, source=source) if source.startswith("tatoeba") else mnist_sequences(source)


@dataclasses.dataclass(frozen=True)
class EngineHooks:
    """What the engine asks of a sequence stream (see engine.run_group), and the fields both streams
    share. A stream names its `source` (one of SOURCES) and, for Tatoeba, the sequence length
    `max_len`; with `flat` (MNIST only) every image is one 784-vector instead of 28 steps, for the MLP.
    Each stream sets its own default `examples_per_task`; the field order is the stored specs'."""

    examples_per_task: int = 60000
    batch_size: int = 16
    source: str = "mnist"
    max_len: int = 64  # Tatoeba only: bytes kept per sentence
    flat: bool = False  # MNIST only: images as 784-vectors (the MLP)

    def __post_init__(self):
        self._check()

    @property
    def steps_per_task(self) -> int:
        return self.examples_per_task // self.batch_size

    def _check(self):
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        if not isinstance(self.max_len, int) or isinstance(self.max_len, bool) or self.max_len < 1:
            raise ValueError(f"max_len must be an integer >= 1, got {self.max_len!r}")
        if self.flat and self.source.startswith("tatoeba"):
            raise ValueError("flat=True is for MNIST sources: sentences are token sequences")

    def _shaped(self, examples: tuple[Sequences, Tensor]) -> tuple[Sequences | Tensor, Tensor]:
        """Images as flat vectors (R, n, 784) when the stream is `flat`; sequences otherwise."""
        seqs, y = examples
        return (seqs.inputs.flatten(2), y) if self.flat else (seqs, y)

    def to_dict(self) -> dict:
        """As stored in a run spec: the stream's kind and its fields (`flat` only when set)."""
        d = {"kind": self.kind, **dataclasses.asdict(self)}
        if not self.flat:
            del d["flat"]
        return d

    def load(self, device) -> SequenceData:
        return load_source(self.source, self.max_len).to(device)

    def dataset_of(self, task: int) -> str:
        return self.source

    def n_inputs(self, data: SequenceData) -> int:
        return data.n_in * data.train_x.shape[1] if self.flat else data.n_in

    def new_task(self, seeds: Sequence[int], k: int, data: SequenceData) -> LabelTask:
        return self.task(seeds, k, data).to(data.train_y.device)

    def train_batches(self, data: SequenceData, task: LabelTask):
        return map(self._shaped, batches(data, task, self.batch_size))

    def test_batches(self, data: SequenceData, task: LabelTask, n_examples: int, chunk: int = 2000):
        """The first `n_examples` of the task's test set under its label map, `chunk` at a time."""
        for start in range(0, n_examples, chunk):
            yield self._shaped(
                gather_examples(data, task, task.test_order[:, start : min(start + chunk, n_examples)], train=False)
            )

    def probe_inputs(self, data: SequenceData, task: LabelTask, n_examples: int) -> Sequences:
        """Inputs for the task-start correlates: the task's first training examples."""
        return self._shaped(gather_examples(data, task, task.order[:, :n_examples]))[0]


@dataclasses.dataclass(frozen=True)
class ReshuffleStream(EngineHooks):
    """Every task: a fresh permutation of the C labels (class c is called label_map[c]) and
    `examples_per_task` training examples (repeated fresh shuffles of the training set)."""

    kind: ClassVar[str] = "reshuffle"
    examples_per_task: int = 60000

    def n_outputs(self, data: SequenceData) -> int:
        """Size of the learner's head: every class keeps a label."""
        return data.n_classes

    def test_size(self, data: SequenceData) -> int:
        """Test examples of every task: the whole test set."""
        return len(data.test_y)

    def task(self, seeds: Sequence[int], k: int, data: SequenceData) -> LabelTask:
        all_train = torch.arange(len(data.train_y))
        maps = [torch.randperm(data.n_classes, generator=generator(s, k, "labels")) for s in seeds]
        orders = [repeated_shuffles(all_train, self.examples_per_task, generator(s, k, "order")) for s in seeds]
        test = torch.arange(len(data.test_y)).expand(len(seeds), -1)
        return LabelTask(k, torch.stack(maps), torch.stack(orders), test)


def class_pairs(n_classes: int) -> list[tuple[int, int]]:
    """The C·(C-1)/2 unordered pairs of distinct classes."""
    return list(itertools.combinations(range(n_classes), 2))


def smallest_pair_size(labels: Tensor, n_classes: int) -> int:
    """Examples of the rarest pair of classes: every run's test set is cut to this, so shapes agree."""
    counts = torch.bincount(labels, minlength=n_classes).sort().values
    return int(counts[0] + counts[1])


@dataclasses.dataclass(frozen=True)
class BinaryPairStream(EngineHooks):
    """Every task: two distinct classes drawn uniformly among all pairs, relabelled 0/1 (which is 0
    is a coin flip), `examples_per_task` training examples of those two classes only, and a test
    set of `smallest_pair_size` of their test examples (a fixed random subset, the same shape
    for every pair)."""

    kind: ClassVar[str] = "binary"
    examples_per_task: int = 10000

    def n_outputs(self, data: SequenceData) -> int:
        """Size of the learner's head: two labels, whatever the number of source classes."""
        return 2

    def test_size(self, data: SequenceData) -> int:
        """Test examples of every task: those of the rarest pair of classes."""
        return smallest_pair_size(data.test_y, data.n_classes)

    def pair(self, seed: int, k: int, n_classes: int) -> tuple[int, int]:
        """(class called 0, class called 1) of task k of run `seed`."""
        g = generator(seed, k, "pair")
        pairs = class_pairs(n_classes)
        a, b = pairs[int(torch.randint(len(pairs), (1,), generator=g))]
        return (b, a) if bool(torch.randint(2, (1,), generator=g)) else (a, b)

    def task(self, seeds: Sequence[int], k: int, data: SequenceData) -> LabelTask:
        n_test = smallest_pair_size(data.test_y, data.n_classes)
        maps, orders, tests = [], [], []
        for s in seeds:
            zero, one = self.pair(s, k, data.n_classes)
            label_map = torch.full((data.n_classes,), -1, dtype=torch.int64)
            label_map[zero], label_map[one] = 0, 1
            train_pool = torch.nonzero(label_map[data.train_y.cpu()] >= 0).squeeze(1)
            test_pool = torch.nonzero(label_map[data.test_y.cpu()] >= 0).squeeze(1)
            maps.append(label_map)
            orders.append(repeated_shuffles(train_pool, self.examples_per_task, generator(s, k, "order")))
            tests.append(test_pool[torch.randperm(len(test_pool), generator=generator(s, k, "test"))[:n_test]])
        return LabelTask(k, torch.stack(maps), torch.stack(orders), torch.stack(tests))


# --- batches ---


def gather_examples(data: SequenceData, task: LabelTask, idx: Tensor, train: bool = True) -> tuple[Sequences, Tensor]:
    """Examples idx (R, n) of the train or test split: (Sequences, task labels (R, n)).
    Feature rows become float in [0, 1]; tokens stay int64."""
    x, lengths, y = (data.train_x, data.train_len, data.train_y) if train else (data.test_x, data.test_len, data.test_y)
    inputs = x[idx]
    if not data.train_x.dtype == torch.int64:  # uint8 feature rows (MNIST)
        inputs = inputs.float().div_(255.0)
    return Sequences(inputs, lengths[idx]), task.label_map.gather(1, y[idx])


def batches(
    data: SequenceData, task: LabelTask, batch_size: int, chunk_examples: int = 4096
) -> Iterator[tuple[Sequences, Tensor]]:
    """The task's training batches in order: (Sequences, labels (R, batch)). Examples are gathered a
    chunk at a time; a trailing partial batch is dropped."""
    n = task.order.shape[1] // batch_size * batch_size
    chunk = max(batch_size, chunk_examples // batch_size * batch_size)
    for start in range(0, n, chunk):
        seqs, y = gather_examples(data, task, task.order[:, start : min(start + chunk, n)])
        for i in range(0, seqs.inputs.shape[1], batch_size):
            yield (
                Sequences(seqs.inputs[:, i : i + batch_size], seqs.lengths[:, i : i + batch_size]),
                y[:, i : i + batch_size],
            )


def task_test_set(data: SequenceData, task: LabelTask) -> tuple[Sequences, Tensor]:
    """The task's whole test set under its label map: (Sequences (R, n_test, ...), labels (R, n_test))."""
    return gather_examples(data, task, task.test_order, train=False)
