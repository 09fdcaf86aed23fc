"""Sequence task streams (MNIST rows, Tatoeba bytes): determinism, labels, pairs, padding, data checks."""

import shutil

import pytest
import torch

from lopcore import data, sequences
from lopcore.data import DataError
from lopcore.learners.recurrent import Recurrent
from lopcore.sequences import (
    PAD,
    BinaryPairStream,
    ReshuffleStream,
    SequenceData,
    Sequences,
    batches,
    class_pairs,
    encode_bytes,
    load_tatoeba,
    task_test_set,
)

SHARED_TATOEBA = sequences.VENDORED_TATOEBA  # the copy shipped with the package: always there


def toy_data(n_classes=10, per_class=30, T=5, n_in=3) -> SequenceData:
    """Tiny feature-row data: class c's examples are filled with the value c, so labels are checkable."""
    y = torch.arange(n_classes).repeat_interleave(per_class)
    x = y[:, None, None].expand(-1, T, n_in).to(torch.uint8).clone()
    lengths = torch.full((len(y),), T)
    return SequenceData("toy", x, lengths, y, x[::3], lengths[::3], y[::3], n_classes, n_in)


def source_class(seqs: Sequences) -> torch.Tensor:
    return (seqs.inputs[..., 0, 0] * 255).round().long()


# --- streams ---


@pytest.mark.parametrize(
    "stream",
    [ReshuffleStream(examples_per_task=50, batch_size=5), BinaryPairStream(examples_per_task=50, batch_size=5)],
)
def test_tasks_are_pure_functions_of_seed_and_index(stream):
    d = toy_data()
    a, b = stream.task([1, 2], 7, d), stream.task([1, 2], 7, d)
    for field in ("label_map", "order", "test_order"):
        assert torch.equal(getattr(a, field), getattr(b, field))
    assert not torch.equal(a.order, stream.task([1, 2], 8, d).order)
    alone = stream.task([2], 7, d)  # a run's task does not depend on the other runs of its group
    assert torch.equal(alone.label_map[0], a.label_map[1]) and torch.equal(alone.order[0], a.order[1])


def test_reshuffle_label_maps_are_permutations_and_vary():
    d, stream = toy_data(), ReshuffleStream(examples_per_task=40, batch_size=8)
    maps = torch.cat([stream.task([0, 1], k, d).label_map for k in range(200)])
    assert torch.equal(maps.sort(1).values, torch.arange(10).expand(len(maps), -1))
    assert len({tuple(m.tolist()) for m in maps}) == len(maps)  # 10! maps: repeats would be a bug here
    task = stream.task([0, 1], 3, d)
    for seqs, y in batches(d, task, 8):
        assert torch.equal(y, task.label_map.gather(1, source_class(seqs)))


def test_reshuffle_covers_the_training_set_each_epoch():
    d = toy_data()
    order = ReshuffleStream(examples_per_task=2 * 300 + 10).task([5], 0, d).order[0]
    for epoch in range(2):
        assert torch.equal(order[epoch * 300 : (epoch + 1) * 300].sort().values, torch.arange(300))


def test_binary_pairs_are_always_two_distinct_classes():
    d, stream = toy_data(), BinaryPairStream(examples_per_task=20, batch_size=5)
    for k in range(500):
        task = stream.task([3, 4], k, d)
        for r in range(2):
            m = task.label_map[r]
            assert (m == 0).sum() == 1 and (m == 1).sum() == 1 and (m == -1).sum() == 8
        for seqs, y in batches(d, task, 5):
            assert ((y == 0) | (y == 1)).all()  # only the pair's examples
            assert torch.equal(y, task.label_map.gather(1, source_class(seqs)))
        test_y = task.label_map.gather(1, d.test_y[task.test_order])
        assert ((test_y == 0) | (test_y == 1)).all()


def test_binary_pairs_are_uniform_over_the_45_pairs():
    stream = BinaryPairStream()
    drawn = [stream.pair(seed, k, 10) for seed in range(4) for k in range(500)]
    assert all(a != b for a, b in drawn)
    counts = {p: 0 for p in class_pairs(10)}
    for a, b in drawn:
        counts[min(a, b), max(a, b)] += 1
    assert min(counts.values()) > 0.4 * len(drawn) / 45  # expected 44 each
    assert sum(a < b for a, b in drawn) not in (0, len(drawn))  # both orientations occur


def test_binary_test_sets_have_one_shape_for_every_pair():
    d = toy_data()
    sizes = {BinaryPairStream().task([s], 0, d).test_order.shape[1] for s in range(20)}
    assert sizes == {sequences.smallest_pair_size(d.test_y, 10)}


# --- MNIST rows ---


def test_mnist_rows_are_time_steps():
    d = sequences.mnist_sequences()
    images = data.load("mnist")
    assert d.train_x.shape == (60000, 28, 28) and d.n_in == 28 and (d.train_len == 28).all()
    task = ReshuffleStream(examples_per_task=64, batch_size=16).task([0], 0, d)
    seqs, y = next(batches(d, task, 16))
    first = task.order[0, 0]
    assert seqs.inputs.shape == (1, 16, 28, 28) and seqs.inputs.dtype == torch.float32
    torch.testing.assert_close(seqs.inputs[0, 0, 3], images.train_x[first, 3 * 28 : 4 * 28].float() / 255)
    assert 0 <= seqs.inputs.min() and seqs.inputs.max() <= 1
    assert y[0, 0] == task.label_map[0, images.train_y[first]]


# --- Tatoeba ---


def test_encode_bytes_pads_and_truncates():
    tokens, lengths = encode_bytes(["ab", "é", "", "abcdef"], 4)
    assert lengths.tolist() == [2, 2, 0, 4]
    assert tokens.tolist() == [[97, 98, PAD, PAD], [0xC3, 0xA9, PAD, PAD], [PAD] * 4, [97, 98, 99, 100]]


@pytest.fixture
def fresh_tatoeba(monkeypatch, tmp_path):
    """No shared copy, empty LOPCORE_DATA and cache, and no memoised load."""
    monkeypatch.setenv("LOPCORE_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("LOPCORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(data, "_SHARED", tmp_path / "no-shared")
    monkeypatch.setattr(sequences, "VENDORED_TATOEBA", tmp_path / "no-vendored")
    load_tatoeba.cache_clear()
    yield tmp_path / "env" / sequences.TATOEBA_FOLDER
    load_tatoeba.cache_clear()


def test_tatoeba_tokens_lengths_and_split():
    d = load_tatoeba(max_len=48)
    assert d.train_x.shape == (10000, 48) and d.n_in == PAD + 1 and d.n_classes == 10
    assert torch.equal(torch.bincount(d.train_y), torch.full((10,), 1000))
    rows = sequences.read_verified(SHARED_TATOEBA / "fra_1000.csv")
    i = sequences.LANGUAGES.index("fra") * 1000 + 5
    text = rows[5][2].encode("utf-8")[:48]
    assert d.train_len[i] == len(text) and bytes(d.train_x[i, : len(text)].tolist()) == text
    steps = torch.arange(48)
    assert ((d.train_x == PAD) == (steps >= d.train_len[:, None])).all()  # pad exactly after the end
    train_texts = {
        t for lang in sequences.LANGUAGES for _, _, t in sequences.read_verified(SHARED_TATOEBA / f"{lang}_1000.csv")
    }
    test_texts = [t for _, _, t in sequences.read_verified(SHARED_TATOEBA / "testset.csv") if t not in train_texts]
    assert len(d.test_y) == len(test_texts) < 2000  # training sentences are left out of the test set


@pytest.mark.parametrize(
    "stream",
    [ReshuffleStream(examples_per_task=64, batch_size=8), BinaryPairStream(examples_per_task=64, batch_size=8)],
)
def test_language_streams_feed_the_recurrent_learner(stream):
    d = load_tatoeba(max_len=32)
    learner = Recurrent(cell="gru", hidden=16)
    state = learner.init_state([0, 1], d.n_in, stream.n_outputs(d), "cpu")
    task = stream.task([0, 1], 2, d)
    for seqs, y in batches(d, task, 8):
        assert seqs.inputs.shape == (2, 8, 32) and seqs.lengths.shape == (2, 8) and y.shape == (2, 8)
        learner.step(state, seqs, y)
    assert torch.isfinite(state["loss_sum"]).all() and state["correct"].sum() > 0
    test_x, test_y = task_test_set(d, task)
    assert learner.logits(state, test_x).shape == (2, test_y.shape[1], stream.n_outputs(d))


def test_corrupt_language_file_is_named(fresh_tatoeba):
    shutil.copytree(SHARED_TATOEBA, fresh_tatoeba)
    target = fresh_tatoeba / "glg_1000.csv"
    target.chmod(0o644)
    raw = bytearray(target.read_bytes())
    raw[100] ^= 1
    target.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="glg_1000.csv.*LOPCORE_DATA"):
        load_tatoeba()


def test_missing_language_file_is_named(fresh_tatoeba):
    shutil.copytree(SHARED_TATOEBA, fresh_tatoeba)
    (fresh_tatoeba / "kor_1000.csv").unlink()
    with pytest.raises(DataError, match="missing kor_1000.csv"):
        load_tatoeba()


def test_the_copy_shipped_with_the_package_is_found_last(fresh_tatoeba, monkeypatch):
    monkeypatch.setattr(sequences, "VENDORED_TATOEBA", SHARED_TATOEBA)
    assert sequences.locate_tatoeba() == SHARED_TATOEBA
    assert load_tatoeba(max_len=8).train_x.shape == (10000, 8)  # every file passes its sha256 pin
    shutil.copytree(SHARED_TATOEBA, fresh_tatoeba)  # a copy in $LOPCORE_DATA comes first
    assert sequences.locate_tatoeba() == fresh_tatoeba


def test_no_language_data_says_where_to_put_it(fresh_tatoeba):
    with pytest.raises(DataError, match=f"not found.*{fresh_tatoeba}"):
        load_tatoeba()


@pytest.mark.parametrize(
    "bad", [dict(max_len=0), dict(languages=("eng",)), dict(languages=("eng", "xxx")), dict(languages=("eng", "eng"))]
)
def test_invalid_language_options(bad):
    with pytest.raises(ValueError):
        load_tatoeba(**bad)
