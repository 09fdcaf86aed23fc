"""The benchmark in CI-sized form: it runs, and its last line is the JSON the issue asks for."""
import json

from lopcore import bench


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
