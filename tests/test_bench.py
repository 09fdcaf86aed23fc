"""The benchmark in CI-sized form: it runs, and its last line is the JSON the issue asks for."""
import json

import pytest

from lopcore import bench
from lopcore.store import CorruptResultError, Store


def test_benchmark_prints_a_table_and_ends_with_one_json_object(capsys):
    bench.main(["--steps", "3", "--runs", "1", "2", "--device", "cpu"])
    lines = capsys.readouterr().out.strip().splitlines()
    result = json.loads(lines[-1])
    assert result["device"].startswith("cpu") and result["paper_projection_hours"] > 0
    configs = {(c["learner"], c["runs"]): c for c in result["configurations"]}
    assert set(configs) == {("baseline", 1), ("baseline", 2), ("persistent", 1), ("persistent", 2)}
    for c in configs.values():
        assert c["naive_us_per_run_step"] > 0 and c["engine_us_per_run_step"] > 0 and c["peak_memory_mb"] > 0
        assert abs(c["speedup"] - c["naive_us_per_run_step"] / c["engine_us_per_run_step"]) < 0.05 * c["speedup"] + 0.01
    assert any("naive" in line and "engine" in line for line in lines)


def test_the_naive_loop_learns_like_the_engine():
    """Same initial weights are not shared (the naive loop is nn.Linear-initialised), so compare what
    both compute on one batch from identical weights: the naive model's loss equals the engine's."""
    import torch
    from torch.nn import functional as F
    learner = bench.Backprop()
    state = learner.init_state([0], bench.N_IN, bench.N_OUT, "cpu")
    model = bench.NaiveMLP()
    with torch.no_grad():
        for layer, w, b in zip([*model.body, model.head], *learner.parameters(state)):
            layer.weight.copy_(w[0].T)
            layer.bias.copy_(b[0, 0])
    x, y = torch.rand(8, bench.N_IN), torch.randint(0, 10, (8,))
    naive = F.cross_entropy(model(x)[0], y)
    learner.step(state, x[None], y[None])
    assert torch.allclose(state["loss_sum"][0], naive, atol=1e-6)


def test_a_saved_benchmark_is_a_verified_record_in_the_store(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOPCORE_RESULTS", str(tmp_path))
    result = bench.main(["--steps", "2", "--runs", "1", "--device", "cpu", "--save"])
    assert "saved to" in capsys.readouterr().out
    (record,) = Store(tmp_path).records("bench")
    assert record["spec"]["device"] == result["device"] and record["provenance"]["threads"] >= 1
    assert record["metrics"]["learner"] == ["baseline", "persistent"]
    assert record["metrics"]["speedup"] == [c["speedup"] for c in result["configurations"]]
    (path,) = (tmp_path / "bench").glob("*.json")
    path.write_text(path.read_text().replace('"steps": 2', '"steps": 3'))  # edited by hand
    with pytest.raises(CorruptResultError, match="different run than its name says"):
        Store(tmp_path).records("bench")


def test_the_sharing_measurement_times_every_way_and_is_saved(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOPCORE_RESULTS", str(tmp_path))
    result = bench.main(["--steps", "2", "--runs", "1", "--device", "cpu", "--sharing", "2", "--save"])
    assert result["sharing_groups"] == 2
    assert set(result["sharing_us_per_run_step"]) == {"sequential", "streams", "concatenated"}
    assert all(us > 0 for us in result["sharing_us_per_run_step"].values())
    assert "2 groups of 5 runs sharing the device" in capsys.readouterr().out
    (record,) = Store(tmp_path).records("bench")
    assert record["metrics"]["sharing_streams_us_per_run_step"] == [result["sharing_us_per_run_step"]["streams"]]
    with pytest.raises(SystemExit):
        bench.main(["--steps", "2", "--sharing", "0"])
