"""Sequence streams through the engine: store keys of MLP runs unchanged, recurrent runs stored,
resumed and framed like the MLP's."""

import pandas as pd
import pytest
import torch

from lopcore.engine import correlates, evaluate, run
from lopcore.frames import frame
from lopcore.learners import Recurrent
from lopcore.papers.iqbal import figures
from lopcore.sequences import (
    BinaryPairStream,
    ReshuffleStream,
    gather_examples,
    mnist_sequences,
)
from lopcore.spec import RunSpec
from lopcore.store import Store, spec_key

# Keys of MLP runs computed before sequence streams existed: generalizing the engine keeps them.
PINNED = {
    ("fig2", "small"): {
        "baseline": "bd121eb97b20732eed69",
        "CBP": "9ab24e967d1179da5d21",
        "persistent n=1": "0d763294e8b01bdfd033",
        "persistent n=2": "8931c0d868aa6f7050e3",
        "persistent n=2 + CBP": "8f929e3e67bf7e40b50d",
    },
    ("fig7", "small"): {"baseline": "7da78659c106d98f077a", "persistent n=2": "1666c75dcc1d22faef7b"},
    ("cbp_sweep", "smoke"): {
        "CBP rate=1e-05": "774d4134915058966ce1",
        "CBP rate=0.0001": "e3718a238a67d0c042aa",
        "CBP rate=0.001": "15c3a42554940c4a0eb5",
    },
}


@pytest.mark.parametrize("figure, scale", list(PINNED))
def test_mlp_store_keys_are_unchanged(figure, scale):
    assert {label: spec_key(s.to_dict()) for label, s in figures.figure_runs(figure, scale, 1)} == PINNED[figure, scale]


def tiny(stream_cls=ReshuffleStream, learner=None, seed=0, n_tasks=2, **stream):
    stream = stream_cls(**{"examples_per_task": 64, "batch_size": 16, **stream})
    return RunSpec(
        learner=learner or Recurrent(cell="gru", hidden=8, lr=0.01),
        stream=stream,
        n_tasks=n_tasks,
        test_examples=100,
        probe_examples=32,
        seed=seed,
    )


def test_sequence_streams_have_their_own_keys():
    keys = {
        spec_key(tiny(cls, **kw).to_dict())
        for cls in (ReshuffleStream, BinaryPairStream)
        for kw in ({}, {"source": "tatoeba"}, {"source": "tatoeba", "max_len": 15})
    }
    assert len(keys) == 6
    assert tiny().to_dict()["stream"]["kind"] == "reshuffle"


def test_recurrent_runs_go_through_engine_store_and_frame(tmp_path):
    store = Store(tmp_path)
    specs = [tiny(seed=s) for s in (0, 1)] + [tiny(BinaryPairStream, Recurrent(cell="lstm", hidden=8), seed=0)]
    df = run(specs, device="cpu", store=store, progress=False)
    assert len(df) == 6 and set(df["stream"]) == {"reshuffle", "binary"} and set(df["hidden"]) == {"8"}
    assert df[["test_accuracy", "online_accuracy", "effective_rank_l1", "mean_abs_weight"]].notna().all().all()
    assert ((df["test_accuracy"] >= 0) & (df["test_accuracy"] <= 1)).all()
    again = run(specs, device="cpu", store=store, progress=False, compute=False)  # cache hits
    pd.testing.assert_frame_equal(df, again)
    assert frame(store.load(specs[0].to_dict()))["dataset"].tolist() == ["mnist", "mnist"]


def test_runs_in_a_group_equal_runs_alone(tmp_path):
    together = run([tiny(seed=0), tiny(seed=3)], device="cpu", store=Store(tmp_path / "a"), progress=False)
    alone = run([tiny(seed=3)], device="cpu", store=Store(tmp_path / "b"), progress=False)
    cols = ["online_accuracy", "online_loss", "test_accuracy", "sq_norm"]
    assert together[together.seed == 3][cols].reset_index(drop=True).equals(alone[cols])


def test_test_accuracy_is_under_the_tasks_label_map():
    data = mnist_sequences()
    stream = BinaryPairStream(examples_per_task=32, batch_size=16)
    learner = Recurrent(cell="gru", hidden=8)
    state = learner.init_state([0], data.n_in, 2, "cpu")
    task = stream.new_task([0], 3, data)
    x, y = gather_examples(data, task, task.test_order[:, :50], train=False)
    expected = (learner.logits(state, x).argmax(-1) == y).float().mean(-1)
    assert set(y.flatten().tolist()) <= {0, 1}
    assert torch.allclose(evaluate(learner, state, data, task, 50, chunk=16, stream=stream), expected)
    assert set(correlates(learner, state, data, task, 20, stream=stream)) == {
        "dead_fraction_l1",
        "effective_rank_l1",
        "stable_rank_l1",
    }


def test_a_sequence_stream_rejects_an_unknown_source():
    with pytest.raises(ValueError, match="source"):
        ReshuffleStream(source="imagenet")


def test_an_interrupted_recurrent_group_resumes_bit_identically(tmp_path, monkeypatch):
    from test_reliability import stop_at

    specs = [tiny(seed=s, n_tasks=3) for s in (0, 1)]
    whole = run(specs, device="cpu", store=Store(tmp_path / "whole"), progress=False)
    store = Store(tmp_path / "resumed")
    stop_at(monkeypatch, specs, store, at_task=1)
    resumed = run(specs, device="cpu", store=store, progress=False)
    metrics = [c for c in whole if c.endswith(("accuracy", "loss", "norm", "_l1"))]
    assert resumed[metrics].equals(whole[metrics])
    assert store.load(specs[0].to_dict())["provenance"]["resumed_at_tasks"] == [1]
