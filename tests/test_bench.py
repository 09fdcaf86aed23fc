"""The benchmark in CI-sized form: it runs, its last line is the JSON the issues ask for, every reference
implementation computes the engine's numbers, and saved results (old and new) load for the page."""

import dataclasses
import json
import os
import re
import statistics
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from lopcore import bench
from lopcore.bench_references import (
    FuncLoop,
    NaiveLoop,
    RecordMatmuls,
    Roofline,
    compile_works,
    engine_matmuls,
    module_params,
    relative_error,
    signature,
)
from lopcore.store import CorruptResultError, Store

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--no-compile", "--repeats", "2"]  # the compiled reference has its own (slow) test


def test_benchmark_prints_a_table_and_ends_with_one_json_object(capsys):
    bench.main(["--steps", "3", "--runs", "1", "2", "--device", "cpu", *FAST])
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    # before it times anything, it says how long the timing will take (on stderr, beside its bars)
    assert re.search(r"timing 2 rounds of about \d+ s each: about [\d.]+ min", captured.err)
    result = json.loads(lines[-1])
    assert result["device"].startswith("cpu") and result["paper_projection_hours"] > 0
    assert result["repeats"] == 2 and result["threads"] == torch.get_num_threads()
    assert result["host_steal_share"] is None or 0 <= result["host_steal_share"] <= 1
    configs = {(c["learner"], c["runs"]): c for c in result["configurations"]}
    assert set(configs) == {("baseline", 1), ("baseline", 2), ("persistent", 1), ("persistent", 2)}
    for c in configs.values():
        assert c["naive_us_per_run_step"] > 0 and c["engine_us_per_run_step"] > 0 and c["peak_memory_mb"] > 0
        assert abs(c["speedup"] - c["naive_us_per_run_step"] / c["engine_us_per_run_step"]) < 0.05 * c["speedup"] + 0.01
        assert c["vmap_us_per_run_step"] > 0 and c["roofline_us_per_run_step"] > 0
        assert c["compile_us_per_run_step"] is None and c["best_alternative"] == "vmap"
        ratio = c["vmap_us_per_run_step"] / c["engine_us_per_run_step"]
        assert abs(c["engine_vs_best_alternative"] - ratio) < 0.05 * ratio + 0.01
        ratio = c["engine_us_per_run_step"] / c["roofline_us_per_run_step"]
        assert abs(c["engine_vs_roofline"] - ratio) < 0.05 * ratio + 0.01
        assert (
            c["repeats"] == 2
            and c["spread"] >= 0
            and set(c["min_us_per_run_step"]) == {"naive", "naive_per_core", "vmap", "engine", "roofline"}
        )
        fastest = min(c["naive_us_per_run_step"], c["naive_per_core_us_per_run_step"])
        assert abs(c["speedup_vs_fastest_naive"] - fastest / c["engine_us_per_run_step"]) < 0.05 * fastest + 0.01
        assert c["min_us_per_run_step"]["engine"] <= c["engine_us_per_run_step"]
        assert 0 < c["engine_matmul_share"] <= 1 and c["matmul_mflop_per_run_step"] > 3
    assert result["compile_unavailable"] == {
        "baseline": "not run (--no-compile)",
        "persistent": "not run (--no-compile)",
    }
    assert set(result["paper_projection_hours_by_implementation"]) == set(bench.IMPLEMENTATIONS)
    assert result["paper_projection_hours_by_implementation"]["compile"] is None
    assert any("naive" in line and "engine" in line and "roofline" in line for line in lines)
    assert any(line.startswith("device: cpu") and "threads" in line for line in lines)


def test_a_round_is_estimated_from_the_warm_up_and_a_compile_at_its_uncompiled_twin():
    def timed(impl, runs, warm):
        return bench.Timed("baseline", impl, runs, lambda: None, warm_up_s=warm)

    configs = [timed("naive", 1, 2.0), timed("vmap", 16, 3.0), timed("compile", 16, 90.0), timed("engine", 16, 0.5)]
    assert bench.round_seconds(configs) == 2.0 + 3.0 + 3.0 + 0.5


def test_the_benchmark_pins_its_threads_and_puts_the_affinity_back():
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this platform")
    before = os.sched_getaffinity(0)
    result = bench.main(["--steps", "2", "--runs", "1", "--device", "cpu", "--threads", "1", *FAST])
    assert result["threads"] == 1 and result["device"] == "cpu (1 threads)" and len(result["pinned_cpus"]) == 1
    assert os.sched_getaffinity(0) == before


def test_the_naive_loop_learns_like_the_engine():
    """Same initial weights are not shared (the naive loop is nn.Linear-initialised), so compare what
    both compute on one batch from identical weights: the naive model's loss equals the engine's."""
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


# A step size ten times the benchmark's makes the persistent state's two readings of the gradient
# through earlier steps (current weights, the paper's; or the weights of the forward pass) differ
# well beyond float tolerance within a few steps, so the check below tells them apart.
CHECKED = {"baseline": bench.Backprop(lr=0.5), "persistent": bench.PersistentState(lr=0.5, d_int=128, n=2)}
STEPS, RUNS, TOLERANCE = 6, 3, 1e-3


def _batches(seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(STEPS, RUNS, bench.BATCH, bench.N_IN, generator=g),
        torch.randint(0, bench.N_OUT, (STEPS, RUNS, bench.BATCH), generator=g),
    )


def _update_errors(learner, engine_state, initial, reference_params) -> dict[str, float]:
    """Per parameter, the largest relative difference between the reference's and the engine's total
    update since the shared initialisation (the weights themselves agree far more closely)."""
    engine = module_params(learner, engine_state)
    return {k: relative_error(reference_params[k] - initial[k], engine[k] - initial[k]) for k in engine}


def _train_engine(learner, xs, ys):
    state = learner.init_state(list(range(RUNS)), bench.N_IN, bench.N_OUT, "cpu")
    initial = module_params(learner, state)
    references = {
        "naive": [NaiveLoop(learner, "cpu", state, run=r) for r in range(RUNS)],
        "vmap": FuncLoop(learner, RUNS, "cpu", state=state),
    }
    for t in range(STEPS):
        learner.step(state, xs[t], ys[t])
    return state, initial, references


@pytest.mark.parametrize("name", CHECKED)
def test_every_reference_computes_the_engines_numbers(name):
    """From the engine's initial weights, on the same batches, the textbook loop (run by run) and the
    vmap(grad) reference leave the engine's weights, loss and accuracy after a few steps."""
    learner = CHECKED[name]
    xs, ys = _batches()
    state, initial, refs = _train_engine(learner, xs, ys)
    for t in range(STEPS):
        for r, loop in enumerate(refs["naive"]):
            loop.step(xs[t, r], ys[t, r])
        refs["vmap"].step(xs[t], ys[t])
    naive = {k: torch.stack([loop.model.get_parameter(k).detach() for loop in refs["naive"]]) for k in initial}
    for which, params in (("naive", naive), ("vmap", refs["vmap"].params)):
        errors = _update_errors(learner, state, initial, params)
        assert max(errors.values()) < TOLERANCE, (which, errors)
    assert torch.allclose(refs["vmap"].loss_sum, state["loss_sum"], rtol=1e-5)
    assert torch.allclose(torch.stack([loop.loss_sum for loop in refs["naive"]]), state["loss_sum"], rtol=1e-5)
    assert torch.equal(refs["vmap"].correct, state["correct"])
    assert torch.equal(torch.stack([loop.correct for loop in refs["naive"]]), state["correct"])
    if name == "persistent":  # the state head learned (only the gradient through h_t reaches it)
        assert not torch.equal(refs["vmap"].params["state_head.weight"], initial["state_head.weight"])


def test_the_reference_check_tells_the_papers_gradient_from_the_exact_one():
    """Trained with the exact gradient through h (forward-time weights) or with no gradient through h
    (n = 1), the engine leaves weights the references (the paper's reading) do not: the tolerance
    above is tight enough to see either difference."""
    paper = CHECKED["persistent"]
    xs, ys = _batches()
    _, initial, refs = _train_engine(paper, xs, ys)
    for t in range(STEPS):
        refs["vmap"].step(xs[t], ys[t])
    for other in (dataclasses.replace(paper, through_state="forward_weights"), dataclasses.replace(paper, n=1)):
        state = other.init_state(list(range(RUNS)), bench.N_IN, bench.N_OUT, "cpu")
        for t in range(STEPS):
            other.step(state, xs[t], ys[t])
        assert max(_update_errors(paper, state, initial, refs["vmap"].params).values()) > 10 * TOLERANCE, other


@pytest.mark.slow
def test_the_compiled_reference_computes_the_engines_numbers():
    """torch.compile(fullgraph=True) of the vmap(grad) step, where this torch build compiles it (the
    benchmark then reports compile_us_per_run_step; otherwise null and the reason)."""
    bench._allow_compiles()
    reason = compile_works(CHECKED["baseline"], "cpu")
    if reason:
        pytest.skip(f"torch.compile is unavailable here: {reason}")
    for learner in CHECKED.values():
        xs, ys = _batches()
        state, initial, _ = _train_engine(learner, xs, ys)
        compiled = FuncLoop(
            learner,
            RUNS,
            "cpu",
            state=learner.init_state(list(range(RUNS)), bench.N_IN, bench.N_OUT, "cpu"),
            compile=True,
        )
        for t in range(STEPS):
            compiled.step(xs[t], ys[t])
        errors = _update_errors(learner, state, initial, compiled.params)
        assert max(errors.values()) < TOLERANCE, (learner, errors)
        assert torch.equal(compiled.correct, state["correct"])


@pytest.mark.parametrize("name", bench.LEARNERS_TIMED)
def test_the_roofline_replays_exactly_the_engines_matrix_products(name):
    learner = bench.LEARNERS_TIMED[name]
    roofline = Roofline(learner, 2, "cpu")
    engine = [signature(ops) for ops in engine_matmuls(learner, 2, "cpu")]
    assert len(engine) == learner.block_period()
    if name == "baseline":  # 4 forward products, 3 backward, 4 fused weight updates
        assert [len(ops) for ops in engine] == [11]
    replayed = []
    for calls in roofline.calls:
        with RecordMatmuls() as rec:
            for func, args, kw in calls:
                func(*args, **kw)
        replayed.append(signature(rec.ops))
    assert replayed == engine
    if name == "baseline":  # per run: forward and update read every weight once (batch 8), backward all but W1
        layers = 784 * 100 + 100 * 100 + 100 * 100 + 100 * 10
        assert roofline.flop_per_run_step == 2 * 8 * (2 * layers + 100 * 100 + 100 * 100 + 10 * 100)


@pytest.mark.parametrize("threads", [1, 2])
def test_the_naive_loop_per_core_is_its_single_thread_time_over_the_threads(threads, monkeypatch):
    seen = []  # the thread count each naive call ran with
    real = bench.naive_call

    def naive_call(*args):
        call = real(*args)
        return lambda: (seen.append(torch.get_num_threads()), call())

    monkeypatch.setattr(bench, "naive_call", naive_call)
    before = torch.get_num_threads()
    result = bench.main(
        ["--steps", "2", "--runs", "1", "--device", "cpu", "--threads", str(threads), "--no-pin", *FAST]
    )
    assert torch.get_num_threads() == threads  # the per-core twin put the thread count back
    torch.set_num_threads(before)
    assert sorted(set(seen)) == sorted({1, threads})  # with 2 threads, the twin ran on one
    for c in result["configurations"]:
        if threads == 1:  # on one thread the loop is its own per-core reference
            assert c["naive_per_core_us_per_run_step"] == c["naive_us_per_run_step"]
            assert c["speedup_vs_fastest_naive"] == c["speedup"]
        else:
            assert c["naive_per_core_us_per_run_step"] > 0 and "naive_per_core" in c["spread_by_implementation"]
    assert result["paper_projection_hours_by_implementation"]["naive_per_core"] > 0


def test_a_configuration_run_once_per_core_divides_its_time_by_the_cores():
    configs = [bench.Timed("baseline", impl, 1, lambda: time.sleep(0.02), copies=k) for impl, k in (("a", 1), ("b", 4))]
    bench.time_interleaved(configs, repeats=1, steps=1, device=torch.device("cpu"))
    assert configs[1].samples[0] < configs[0].samples[0] / 2  # 20 ms over 4 cores: about 5 ms


def test_timing_interleaves_the_configurations_and_measures_their_spread():
    calls = []
    configs = [bench.Timed("baseline", impl, 1, lambda impl=impl: calls.append(impl)) for impl in ("a", "b", "c")]
    bench.time_interleaved(configs, repeats=3, steps=1, device=torch.device("cpu"))
    assert calls == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]  # not three blocks, and rotated
    assert all(len(c.samples) == 3 for c in configs)
    assert bench.spread([1.0, 1.1, 1.5]) == pytest.approx(0.5 / 1.1)  # too few repeats for quartiles


def test_a_burst_keeps_every_call_and_its_fastest_as_the_rounds_sample():
    """A host that slows a stretch of the machine only ever adds time: a round's sample is the
    fastest call of its burst, and every call is kept beside it."""
    delays = iter([0.03, 0.01, 0.02, 0.02, 0.04, 0.01])
    config = bench.Timed("baseline", "engine", 1, lambda: time.sleep(next(delays)))
    bench.time_interleaved([config], repeats=2, steps=1, device=torch.device("cpu"), burst=3)
    assert [len(burst) for burst in config.calls] == [3, 3]
    assert config.samples == [min(burst) for burst in config.calls]
    assert 10_000 <= config.samples[0] < 20_000 and 10_000 <= config.samples[1] < 20_000  # µs: the 10 ms calls
    rows = bench.configurations(
        {(n, i, 1): config.samples for n in ("baseline",) for i in ("naive", "engine")},
        ["baseline"],
        [1],
        {},
        {},
        calls={("baseline", "engine", 1): config.calls},
    )
    assert rows[0]["engine_us_per_run_step"] == round(statistics.median(config.samples), 1)
    assert rows[0]["calls_us_by_implementation"] == {"engine": [[round(x, 1) for x in b] for b in config.calls]}


def test_the_medians_of_every_call_and_the_bursts_slowdowns_come_from_the_saved_calls():
    calls = {"naive": [[10.0, 12.0, 30.0], [11.0, 20.0, 10.0]], "engine": [[2.0, 3.0, 2.0], [2.0, 2.0, 4.0]]}
    rows = pd.DataFrame(
        {
            "learner": ["baseline"] * 2,
            "runs": [1, 16],
            "calls_us_by_implementation": [calls, {"naive": calls["naive"], "engine": [[1.0, 1.0, 1.0]] * 2}],
            "engine_us_per_run_step": [2.0, 1.0],
            "naive_us_per_run_step": [10.5, 10.5],
            **{ratio: [5.25, 10.5] for ratio in bench.RATIOS},
        }
    )
    every = bench.medians_of_every_call(rows)
    assert every.naive_us_per_run_step.tolist() == [11.5, 11.5] and every.engine_us_per_run_step.tolist() == [2.0, 1.0]
    assert every.vmap_us_per_run_step.isna().all() and every.speedup.isna().all()  # not run; the fastest's ratios
    # the naive loop's two bursts once (not once per row), the engine's per R
    assert sorted(bench.burst_slowdowns(rows)) == [0, 0, 0.5, 1.0, 1.0, 2.0]


def test_the_spread_ignores_one_slow_round_but_not_a_busy_quarter():
    quiet = [100.0, 101.0, 99.0, 100.5, 100.0, 99.5, 100.0, 250.0]  # one round hit by a host hiccup
    assert bench.spread(quiet) < bench.SPREAD_WARNING < bench.value_range(quiet)
    busy = [100.0, 101.0, 99.0, 100.5, 100.0, 99.5, 180.0, 250.0]  # a quarter of the rounds slow
    assert bench.spread(busy) > bench.SPREAD_WARNING


def test_a_busy_machine_gets_a_warning():
    rows = [{"spread": 0.02}, {"spread": 0.4}]
    assert "machine is busy" in bench.busy_warning(rows, load=3.5) and "40%" in bench.busy_warning(rows, 3.5)
    assert "`python -m lopcore.bench --steadiness 300` tells whether this one is" in bench.busy_warning(rows, 3.5)
    assert bench.busy_warning([{"spread": 0.02}], load=0.1) is None
    calls = {"engine": [[10.0, 11.0], [20.0, 23.0]]}  # bursts 10% and 15% apart, rounds twice as far
    bursts = [{"learner": "baseline", "runs": 16, "spread": 0.6, "calls_us_by_implementation": calls}]
    assert "calls back to back differed by 12% in the median burst" in bench.busy_warning(bursts, load=0.1)
    assert "back to back" not in bench.busy_warning(rows, load=0.1)  # saved without bursts
    warning = bench.busy_warning(rows, load=0.2, steal=0.125)  # the host's tenants, not this machine's
    assert "load average 0.20" in warning and "12.5% of the CPU time stolen by the host" in warning


def test_the_hosts_steal_is_read_from_the_machines_cpu_ticks():
    assert bench.steal_share((10, 1000), (35, 1200)) == 25 / 200
    assert bench.steal_share(None, (35, 1200)) is None and bench.steal_share((10, 1000), (10, 1000)) is None
    ticks = bench.cpu_ticks()
    if ticks is None:
        pytest.skip("no /proc/stat here")
    steal, total = ticks
    assert 0 <= steal <= total
    later = bench.cpu_ticks()
    assert later[1] >= total and 0 <= (bench.steal_share(ticks, later) or 0) <= 1


def test_a_compile_failure_is_reported_with_its_reason_not_raised():
    def fails():
        raise RuntimeError("no C++ compiler\nfound")

    configs = [bench.Timed("baseline", "compile", 1, fails), bench.Timed("baseline", "engine", 1, lambda: None)]
    unavailable = {}
    kept = bench.warm_up(configs, torch.device("cpu"), unavailable)
    assert [c.implementation for c in kept] == ["engine"]
    assert unavailable == {"baseline": "RuntimeError: no C++ compiler found"}


def test_a_saved_benchmark_is_a_verified_record_in_the_store(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOPCORE_RESULTS", str(tmp_path))
    result = bench.main(["--steps", "2", "--runs", "1", "--device", "cpu", "--save", "--burst", "3", *FAST])
    assert "saved to" in capsys.readouterr().out
    (record,) = Store(tmp_path).records("bench")
    assert record["spec"]["device"] == result["device"] and record["provenance"]["threads"] >= 1
    assert record["spec"]["repeats"] == 2
    assert record["metrics"]["learner"] == ["baseline", "persistent"]
    assert record["metrics"]["speedup"] == [c["speedup"] for c in result["configurations"]]
    assert record["metrics"]["vmap_us_per_run_step"] == [c["vmap_us_per_run_step"] for c in result["configurations"]]
    frame = bench.saved_results(Store(tmp_path))
    assert frame.interleaved.all() and frame.compile_us_per_run_step.isna().all()
    assert (frame.roofline_us_per_run_step > 0).all()
    text = bench.describe_saved(frame)
    assert "2 interleaved rounds of 3 calls, the fastest kept" in text and "OMP_WAIT_POLICY" in text
    assert "unavailable" in text and bench.NOT_MEASURED not in text
    assert (frame.burst == 3).all() and record["spec"]["burst"] == 3  # part of the settings
    calls = frame.calls_us_by_implementation.iloc[0]["engine"]
    assert len(calls) == 2 and all(len(burst) == 3 for burst in calls)
    (path,) = (tmp_path / "bench").glob("*.json")
    path.write_text(path.read_text().replace('"steps": 2', '"steps": 3'))  # edited by hand
    with pytest.raises(CorruptResultError, match="different run than its name says"):
        Store(tmp_path).records("bench")


def test_a_second_saved_benchmark_with_the_same_settings_is_kept_beside_the_first(tmp_path, monkeypatch, capsys):
    """Two runs with the same settings (the check that the figures repeat) are two measurements: the
    second must not replace the first, and the page helpers list both."""
    monkeypatch.setenv("LOPCORE_RESULTS", str(tmp_path))
    for _ in range(2):
        bench.main(["--steps", "2", "--runs", "1", "--device", "cpu", "--save", *FAST])
        time.sleep(1.1)  # the records are told apart by the second they were taken
    records = Store(tmp_path).records("bench")
    assert len(records) == 2 and records[0]["spec"]["taken"] != records[1]["spec"]["taken"]
    frame = bench.saved_results(Store(tmp_path))
    assert frame.saved_at.nunique() == 2 and len(bench.projections(frame)) == 2
    assert bench.latest(frame) is not None and bench.latest(frame).saved_at.iloc[0] == frame.saved_at.max()


def test_the_committed_benchmark_predating_the_references_still_loads():
    """The benchmark saved before the references existed: its columns load, the new ones read "not
    measured yet" on the page, and the new targets it cannot answer say so."""
    frame = bench.saved_results(Store(ROOT / "results"))
    old = frame[~frame.interleaved.astype(bool)]
    if old.empty:
        pytest.skip("no benchmark from before the references is committed any more")
    assert old.vmap_us_per_run_step.isna().all() and (old.engine_us_per_run_step > 0).all()
    text = bench.describe_saved(old)
    assert bench.NOT_MEASURED in text and "one block each" in text
    verdicts = bench.target_verdicts(old)
    assert set(verdicts.verdict) <= {"✓", "✗", bench.NOT_MEASURED}
    assert (verdicts[verdicts.target.str.contains("roofline")].verdict == bench.NOT_MEASURED).all()
    assert (verdicts[verdicts.target.str.contains("naive")].verdict != bench.NOT_MEASURED).all()
    projected = bench.projections(old)
    assert (projected.vmap == bench.NOT_MEASURED).all() and projected.engine.str.endswith(" h").all()
    assert bench.plot_us_per_run_step(old) is not None


def test_a_benchmark_saved_before_the_per_core_reference_is_judged_on_the_loop_as_timed():
    frame = bench.saved_results(Store(ROOT / "results"))
    old = frame[frame.interleaved.astype(bool) & ~frame.per_core.astype(bool)]
    if old.empty:
        pytest.skip("every committed benchmark has the per-core reference")
    assert old.naive_per_core_us_per_run_step.isna().all()
    assert "predates them): naive/core, ×fastest naive" in bench.describe_saved(old)
    naive = bench.target_verdicts(old)
    naive = naive[naive.target.str.contains("naive")]
    assert (naive.verdict != bench.NOT_MEASURED).all() and naive.note.str.contains("threads only").all()
    assert (bench.projections(old).naive_per_core == bench.NOT_MEASURED).all()


def test_a_benchmark_with_the_per_core_reference_is_judged_on_the_faster_naive(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOPCORE_RESULTS", str(tmp_path))
    before = torch.get_num_threads()
    bench.main(["--steps", "2", "--runs", "16", "--device", "cpu", "--threads", "2", "--no-pin", "--save", *FAST])
    torch.set_num_threads(before)  # --threads sets the process's thread count
    frame = bench.saved_results(Store(tmp_path))
    assert frame.per_core.all() and (frame.naive_per_core_us_per_run_step > 0).all()
    verdicts = bench.target_verdicts(frame)
    naive = verdicts[verdicts.target.str.contains("naive")]
    fastest = frame.set_index("learner").speedup_vs_fastest_naive
    assert [float(m.split("×")[0]) for m in naive.measured] == [round(fastest[k], 2) for k in naive.learner]
    assert not naive.note.str.contains("threads only").any()
    assert (
        "naive/core" in bench.describe_saved(frame) and bench.projections(frame).naive_per_core.str.endswith(" h").all()
    )


def test_the_page_helpers_on_an_empty_store(tmp_path):
    frame = bench.saved_results(Store(tmp_path))
    assert frame.empty and "No benchmark is saved" in bench.describe_saved(frame)
    assert bench.target_verdicts(frame).empty and bench.projections(frame).empty
    assert bench.plot_us_per_run_step(frame) is None


def test_the_sharing_measurement_times_every_way_and_is_saved(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LOPCORE_RESULTS", str(tmp_path))
    result = bench.main(["--steps", "2", "--runs", "1", "--device", "cpu", "--sharing", "2", "--save", *FAST])
    assert result["sharing_groups"] == 2
    assert set(result["sharing_us_per_run_step"]) == {"sequential", "streams", "concatenated"}
    assert all(us > 0 for us in result["sharing_us_per_run_step"].values())
    assert "2 groups of 5 runs sharing the device" in capsys.readouterr().out
    (record,) = Store(tmp_path).records("bench")
    assert record["metrics"]["sharing_streams_us_per_run_step"] == [result["sharing_us_per_run_step"]["streams"]]
    with pytest.raises(SystemExit):
        bench.main(["--steps", "2", "--sharing", "0"])
    with pytest.raises(SystemExit):
        bench.main(["--steps", "2", "--repeats", "0"])


def test_two_outputs_are_compared_median_by_median(tmp_path, capsys):
    def output(engine):
        row = {
            "learner": "baseline",
            "runs": 16,
            "naive_us_per_run_step": 300.0,
            "engine_us_per_run_step": engine,
            "vmap_us_per_run_step": 100.0,
            "compile_us_per_run_step": None,
            "roofline_us_per_run_step": 30.0,
        }
        return "some table\n" + json.dumps({"configurations": [row]})

    (tmp_path / "a").write_text(output(40.0))
    (tmp_path / "b").write_text(output(44.0))
    (tmp_path / "c").write_text(output(50.0))
    compared = bench.main(["--compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert compared["largest_difference"] == pytest.approx(0.1)
    with pytest.raises(SystemExit):
        bench.main(["--compare", str(tmp_path / "a"), str(tmp_path / "c")])
    assert "beyond 15%" in capsys.readouterr().out
    (tmp_path / "d").write_text(output(44.0) + "\nrc=0\n")  # a shell's trailer after the JSON line
    compared = bench.main(["--compare", str(tmp_path / "a"), str(tmp_path / "d")])
    assert compared["largest_difference"] == pytest.approx(0.1)


def test_the_ratios_are_compared_beside_the_medians(tmp_path):
    def output(scale):  # a host `scale` times slower in every configuration: the ratios do not move
        row = {"learner": "baseline", "runs": 16, "engine_us_per_run_step": 40.0 * scale}
        row |= {"naive_us_per_run_step": 300.0 * scale, "speedup": 7.5, "engine_vs_roofline": 1.3}
        return json.dumps({"configurations": [row]})

    (tmp_path / "a").write_text(output(1.0))
    (tmp_path / "b").write_text(output(1.3))
    with pytest.raises(SystemExit):  # the medians moved by 30%
        bench.compare_files(str(tmp_path / "a"), str(tmp_path / "b"))
    assert bench.ratio_repeatability(*(bench.read_output(str(tmp_path / x)) for x in "ab"))[0][-1] == 0


def test_a_saved_benchmark_compares_as_the_output_it_was_saved_from(tmp_path):
    row = {"learner": "baseline", "runs": 16, "naive_us_per_run_step": 300.0, "engine_us_per_run_step": 40.0}
    result = {"device": "cpu (2 threads)", "steps": 200, "configurations": [row], "paper_projection_hours": 1.0}
    result |= {"threads": 2, "sharing_us_per_run_step": {"streams": 5.0}}
    saved = bench.save(result, [16], torch.device("cpu"), 1.0, store=Store(tmp_path))
    (tmp_path / "out.txt").write_text("a table\n" + json.dumps(result))
    assert bench.read_output(str(saved))["configurations"] == [row]
    assert bench.compare_files(str(saved), str(tmp_path / "out.txt"))["largest_difference"] == 0
    saved.write_text(saved.read_text().replace("40.0", "30.0"))  # edited: its checksum fails
    with pytest.raises(SystemExit) as e:
        bench.read_output(str(saved))
    assert "fails its checksum" in str(e.value) and "\n" not in str(e.value)


def test_the_latest_pair_of_saved_benchmarks_compares_as_compare_does():
    """The Performance page's repeatability table: the two latest CPU benchmarks of one kind, every
    median and ratio as `--compare` reports it on their two files."""
    store = Store(ROOT / "results")
    pair = bench.latest_pair(bench.saved_results(store), "cpu")
    if pair is None:
        pytest.skip("no pair of CPU benchmarks with the per-core reference is committed")
    paths = {json.loads(p.read_text())["provenance"]["date"]: p for p in (ROOT / "results" / "bench").glob("*.json")}
    first, second = (bench.read_output(str(paths[at])) for at in pair.attrs["benchmarks"])
    expected = bench.repeatability(first, second) + bench.ratio_repeatability(first, second)
    assert sorted(map(tuple, pair.drop(columns="kind").itertuples(index=False))) == sorted(expected)
    assert (pair.kind == "median").sum() == len(bench.repeatability(first, second))
    assert pair.attrs["benchmarks"][0] < pair.attrs["benchmarks"][1]


def test_there_is_no_pair_with_fewer_than_two_benchmarks_of_a_kind(tmp_path):
    frame = bench.saved_results(Store(tmp_path))
    assert bench.latest_pair(frame) is None
    committed = bench.saved_results(Store(ROOT / "results"))
    one = committed[committed.saved_at == committed[committed.per_core].saved_at.max()]
    assert bench.latest_pair(one) is None


@pytest.mark.parametrize("text", [None, "no json here\n", '{"not": "a benchmark"}\n'])
def test_a_file_that_is_not_a_benchmark_output_is_a_one_line_error(tmp_path, text):
    path = tmp_path / "out.txt"
    if text is not None:
        path.write_text(text)
    with pytest.raises(SystemExit) as e:
        bench.read_output(str(path))
    assert str(e.value).startswith("--compare: ") and "\n" not in str(e.value)


def test_the_benchmark_explains_its_options(capsys):
    from lopcore import bench

    with pytest.raises(SystemExit) as exit_:
        bench.main(["--help"])
    assert exit_.value.code == 0 and "exit 1 if one exceeds 15%" in " ".join(capsys.readouterr().out.split())


def test_the_performance_pages_statements_hold_for_the_latest_saved_benchmark():
    """notebooks/performance.md glues the latest saved CPU benchmark's numbers; the words around them
    (the products' share smallest at R = 1 and rising with R, 10× out of the engine's reach at R = 16,
    compile the best alternative and less than 2× slower than the engine, 2× of it asking for a step
    within a few µs of its products) are checked here. Where 2× compile falls below or above the
    products alone, the page glues the words from the same numbers."""
    latest = bench.latest(bench.saved_results(), "cpu", threads=2)
    assert latest is not None, "no CPU benchmark with the references is committed"
    at = latest.set_index(["learner", "runs"])
    for learner in ("baseline", "persistent"):
        shares = [at.loc[(learner, r), "engine_matmul_share"] for r in (1, 16, 64)]
        assert shares == sorted(shares)
        ratios = [at.loc[(learner, r), "engine_vs_roofline"] for r in (1, 64)]
        assert ratios[0] > ratios[1]  # the tail: further from the products at R = 1 than at 64
    base16 = at.loc[("baseline", 16)]
    naive = min(base16.naive_us_per_run_step, base16.naive_per_core_us_per_run_step)  # as the page glues it
    naive = base16.naive_us_per_run_step if pd.isna(naive) else naive
    assert naive / 10 < base16.engine_us_per_run_step  # "what keeps it from 10x"; the page words the roofline
    assert (latest.best_alternative == "compile").all() and (latest.engine_vs_best_alternative < 2).all()
    for r in (16, 64):  # "2× the compiled step ... asks for a step within a few µs of its products"
        row = at.loc[("baseline", r)]
        assert row.compile_us_per_run_step / 2 < 1.25 * row.roofline_us_per_run_step


def test_the_performance_pages_account_of_the_machines_noise_holds_for_the_saved_pairs():
    """The Regenerate section's words around its glued numbers: every benchmark of the three saved
    pairs is flagged busy; calls a second apart (a burst) agree far better than the fastest calls of
    different rounds, the bare matrix products included; the host's speed changes by two or three
    times (the roofline's fastest and slowest rounds in one run)."""
    results = bench.saved_results()
    for saved in (bench.of_kind(results, kind) for kind in bench.PAIR_KINDS):
        pair = bench.latest_pair(saved, "cpu")
        assert pair is not None
        assert saved[saved.saved_at.isin(pair.attrs["benchmarks"])].busy.all()
    bursts = bench.latest(bench.of_kind(results, "bursts"), "cpu")
    assert statistics.median(bench.burst_slowdowns(bursts)) < 0.15
    ranges = pd.DataFrame(list(bursts.range_by_implementation))
    assert ranges.roofline.max() > 4 * statistics.median(bench.burst_slowdowns(bursts))
    rounds = [
        [min(burst) for burst in calls["roofline"]]
        for calls in bursts.calls_us_by_implementation  # per (learner, R): each round's fastest call
    ]
    assert 2 <= max(max(r) / min(r) for r in rounds) <= 4  # "by up to two or three times"
