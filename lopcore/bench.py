"""Side-by-side benchmark: the engine against what a user would pick instead, and against a floor.

    python -m lopcore.bench [--steps 300] [--repeats 5] [--burst 1] [--runs 1 16 64] [--device auto]
                            [--threads N] [--no-pin] [--no-compile] [--profile] [--sharing G] [--save]
    python -m lopcore.bench --steadiness SECONDS [--threads N] [--save]   # is this CPU steady enough?

For the baseline MLP and the persistent state (n = 2), it times in one process:
  naive     one run as a textbook loop: an `nn.Module`, autograd, an in-place SGD update;
  naive_per_core
            the same loop on one thread, as one process per core would run it (a CPU with T threads:
            its time over T, as if T such processes scaled perfectly: the fairest naive reference,
            since the loop's tiny ops gain little from a second thread);
  vmap      R runs the idiomatic batched way: stacked parameters, torch.func.vmap(grad(loss)) over
            functional_call of the same module, the SGD update one torch._foreach_add_;
  compile   that step under torch.compile(fullgraph=True), where this torch build compiles it
            (null in the JSON, with the reason, where it does not);
  engine    R runs stacked on the leading axis, one hand-written step for all of them, trained as the
            engine trains (lopcore.blocks: blocks of steps, replayed as CUDA graphs on a GPU);
  roofline  the engine step's matrix products alone (every forward and backward bmm/baddbmm, with
            the recorded shapes and layouts, no other work): the floor.
(lopcore/bench_references.py; the tests check that every reference computes the engine's numbers.)
All but the roofline gather and permute their batches of 8 from the same random uint8 images on the
device, and their times include that. Every configuration is warmed up once (compiling, recording
graphs), then timed in `--repeats` interleaved rounds of `--steps` steps each (every configuration once
per round, the order rotated): the table shows medians, the JSON also the minimum, the spread
(interquartile range / median) and the range ((max - min) / median), and a spread above 10 % prints a
warning that the machine is busy. The torch thread count is set explicitly (and, on a CPU, the threads
pinned to as many cores) and printed, with OpenMP's wait policy ($OMP_WAIT_POLICY, "default" where
unset), which changes every multi-thread time (threads that sleep between small ops wait to be woken).
With --burst B each round times every configuration B times back to back and keeps the fastest (a
host's hiccup only ever adds time), saving every call: how far calls a second apart disagree, against
how far rounds disagree, tells a host whose speed changes from moment to moment from one that changes
over tens of seconds (which no estimator of one run removes: compare two runs, --compare).
On a GPU it also times the engine without graphs, checks that the graphs leave exactly the eager steps'
weights, and times G groups of 5 runs sharing the device. It prints a table, the projected wall
time of the whole paper (every run of every figure at `paper` scale, 5 seeds) per implementation
and, as its last line, one JSON object. With --save the result is also kept in the results store
(kind "bench", one file per device, thread count and configuration set, with provenance), where the
book's Performance page reads it.

The definitive CPU figures (a quiet machine, nothing else running):

    OMP_NUM_THREADS=2 python -m lopcore.bench --steps 100 --repeats 10 --burst 3 --threads 2 --save
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

import pandas as pd
import torch
from tqdm import tqdm

from .bench_references import BATCH, N_IN, N_OUT, FuncLoop, NaiveLoop, NaiveMLP, Roofline  # noqa: F401
from .blocks import EAGER_BLOCK_STEPS, BlockTrainer, per_batch
from .data import Dataset
from .device import resolve_device
from .learners import Backprop, PersistentState
from .tasks import PermutedStream, permuted

LR = 0.05
SEEDS = 5  # runs per group in the figures (their seeds): what groups sharing a device hold
LEARNERS_TIMED = {"baseline": Backprop(lr=LR), "persistent": PersistentState(lr=LR, d_int=128, n=2)}
IMPLEMENTATIONS = ("naive", "naive_per_core", "vmap", "compile", "engine", "roofline")
SPREAD_WARNING = 0.10  # spread (IQR / median) of a configuration's repeats above which the box is busy
MATMUL_OPS = ("aten::bmm", "aten::baddbmm", "aten::baddbmm_", "aten::mm", "aten::addmm", "aten::addmm_")


def bench_data(steps: int, device, seed: int = 0) -> Dataset:
    """Random uint8 images and labels on the device, one example per timed or warm-up step and slot."""
    g = torch.Generator().manual_seed(seed)
    n = steps * BATCH
    images = torch.randint(0, 256, (n, N_IN), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, N_OUT, (n,), generator=g)
    return Dataset("mnist", images, labels, images[:BATCH], labels[:BATCH]).to(device)


def _tasks(runs: int, source: Dataset, device) -> tuple[PermutedStream, list]:
    """A stream whose task is one pass over the source, and two of its tasks (alternated per call)."""
    n = source.train_x.shape[0]
    stream = PermutedStream(examples_per_task=n, batch_size=BATCH)
    return stream, [stream.task(list(range(runs)), k, n).to(device) for k in range(2)]


# ---- one call of each implementation: `steps` steps of its R runs -----------------------------


@dataclass
class Timed:
    """One configuration: `call()` advances its `runs` runs by `steps` steps (from where the last
    call stopped); `calls` are every timed call's µs per run-step, a burst of them per round."""

    learner: str
    implementation: str
    runs: int
    call: Callable[[], None]
    calls: list[list[float]] = field(default_factory=list)  # per round, every call of its burst
    copies: int = 1  # copies that would run side by side, one per core: µs per run-step are divided by it
    peak_memory_mb: float | None = None  # after its warm-up (see _peak_mb)
    warm_up_s: float | None = None  # its untimed first call: the same work as a timed call, plus any compile

    @property
    def samples(self) -> list[float]:
        """Per round, the fastest call of its burst (a host's hiccup only ever adds time)."""
        return [min(burst) for burst in self.calls]

    @property
    def name(self) -> str:
        return f"{self.learner} {self.implementation} R={self.runs}"


def naive_call(learner, source: Dataset, device) -> Callable[[], None]:
    """The textbook loop over one task: each batch gathered and permuted from the device-resident
    uint8 images as it is needed."""
    _, tasks = _tasks(1, source, device)
    loop = NaiveLoop(learner, device)
    calls = iter(range(1 << 62))

    def call():
        task = tasks[next(calls) % 2]
        order, permutation = task.order[0], task.permutation[0]
        for t in range(order.shape[0] // BATCH):
            idx = order[t * BATCH : (t + 1) * BATCH]
            loop.step(source.train_x[idx][:, permutation].float().div_(255.0), source.train_y[idx])

    return call


def one_thread(call: Callable[[], None]) -> Callable[[], None]:
    """`call` on one torch thread (the thread count put back after it): one of the single-thread
    processes a user would start, one per core."""

    def single():
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            call()
        finally:
            torch.set_num_threads(threads)

    return single


def func_call(learner, runs: int, source: Dataset, device, compile: bool) -> Callable[[], None]:
    """vmap(grad) over functional_call (compiled or not) over one task, the batches gathered a block
    of steps at a time as the engine gathers them."""
    _, tasks = _tasks(runs, source, device)
    loop = FuncLoop(learner, runs, device, compile=compile)
    calls = iter(range(1 << 62))
    block = EAGER_BLOCK_STEPS * BATCH

    def call():
        task = tasks[next(calls) % 2]
        for start in range(0, task.order.shape[1], block):
            order = task.order[:, start : start + block]
            xs, ys = permuted(source.train_x[order], task.permutation), source.train_y[order]
            for i in range(order.shape[1] // BATCH):
                loop.step(xs[:, i * BATCH : (i + 1) * BATCH], ys[:, i * BATCH : (i + 1) * BATCH])

    return call


def engine_call(
    learner, runs: int, source: Dataset, device, graphs: bool = True, state: dict | None = None
) -> Callable[[], None]:
    """The engine over one task, as it trains (lopcore.blocks: CUDA graphs on a GPU where the
    learner allows and `graphs`). `state`, if given, is trained (to compare paths)."""
    stream, tasks = _tasks(runs, source, device)
    state = state if state is not None else learner.init_state(list(range(runs)), N_IN, N_OUT, device)
    data = {"mnist": source}
    train = (
        BlockTrainer(learner, state, stream, data, capture=graphs and device.type == "cuda").train
        if learner.block_period() is not None
        else per_batch(learner, state, stream, data)
    )
    calls = iter(range(1 << 62))
    return lambda: train(tasks[next(calls) % 2])


def roofline_call(learner, runs: int, source: Dataset, device) -> Callable[[], None]:
    roofline = Roofline(learner, runs, device)
    steps = source.train_x.shape[0] // BATCH
    return lambda: roofline.run(steps)


def engine_seconds_per_step(
    learner, runs: int, source: Dataset, device, graphs: bool = True, state: dict | None = None
) -> float:
    """Wall seconds per step of the engine advancing `runs` runs together over one task of the
    source's examples, after one untimed warm-up task (which records the graphs)."""
    return _seconds_per_step(engine_call(learner, runs, source, device, graphs, state), source, device)


def naive_seconds_per_step(learner, source: Dataset, device) -> float:
    """Wall seconds per step of the textbook loop over one task, after one untimed warm-up task."""
    return _seconds_per_step(naive_call(learner, source, device), source, device)


def _seconds_per_step(call: Callable[[], object], source: Dataset, device) -> float:
    """Wall seconds per step of `call` (one task of the source's examples), after one untimed call."""
    call()
    _sync(device)
    start = time.perf_counter()
    call()
    _sync(device)
    return (time.perf_counter() - start) / (source.train_x.shape[0] // BATCH)


def graphs_match_eager(learner, runs: int, source: Dataset, device) -> bool:
    """Whether two tasks trained with CUDA graphs leave exactly the weights the eager steps leave."""
    states = [learner.init_state(list(range(runs)), N_IN, N_OUT, device) for _ in range(2)]
    for state, graphs in zip(states, (True, False)):
        engine_seconds_per_step(learner, runs, source, device, graphs=graphs, state=state)
    return all(torch.equal(a, b) for a, b in zip(*(learner.parameters(s)[0] for s in states)))


def sharing_us_per_run_step(groups: int, runs: int, source: Dataset, device) -> dict[str, float]:
    """How groups that cannot share kernels best share one device, per run-step: `groups` groups of
    `runs` runs (baseline and persistent n = 2 alternating) one after another ("sequential") or at
    once, each in a thread on a CUDA stream of its own ("streams"); and, for comparison, the same
    number of baseline runs as one concatenated group ("concatenated", possible only where the
    groups' learners are the same)."""
    from concurrent.futures import ThreadPoolExecutor

    from .device import own_stream

    learners = [LEARNERS_TIMED[name] for name in ("baseline", "persistent")]

    def one(g):
        with own_stream(device):
            return engine_seconds_per_step(learners[g % 2], runs, source, device)

    start = time.perf_counter()
    for g in range(groups):
        one(g)
    sequential = time.perf_counter() - start
    start = time.perf_counter()
    with ThreadPoolExecutor(groups) as pool:
        list(pool.map(one, range(groups)))
    streams = time.perf_counter() - start
    start = time.perf_counter()
    with own_stream(device):
        engine_seconds_per_step(learners[0], groups * runs, source, device)
    concatenated = time.perf_counter() - start
    # whole wall times, each group's warm-up task (and graph recording) included: 2 tasks per group
    run_steps = 2 * (source.train_x.shape[0] // BATCH) * groups * runs
    return {
        way: round(wall / run_steps * 1e6, 2)
        for way, wall in (("sequential", sequential), ("streams", streams), ("concatenated", concatenated))
    }


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---- robust timing --------------------------------------------------------------------------


def _allow_compiles() -> None:
    """Every (learner, R, chain length) is a compiled graph of its own; never let dynamo fall back to
    eager silently because it has compiled many already."""
    import torch._dynamo as dynamo

    for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit", "accumulated_cache_size_limit"):
        if hasattr(dynamo.config, name):
            setattr(dynamo.config, name, max(getattr(dynamo.config, name), 256))
    if hasattr(dynamo.config, "fail_on_recompile_limit_hit"):
        dynamo.config.fail_on_recompile_limit_hit = True


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:300]}"


def warm_up(configs: list[Timed], device, unavailable: dict[str, str]) -> list[Timed]:
    """Call every configuration once, untimed (compiling, recording graphs, warming caches), and note
    the memory it left (GPU: the peak allocated by it; CPU: the process's peak resident set so far). A
    compiled configuration that fails here is dropped, its learner's reason kept in `unavailable`."""
    kept = []
    bar = tqdm(configs, desc="warm-up", unit="config", file=sys.stderr, leave=False)
    for c in bar:
        bar.set_postfix_str(c.name)
        if c.implementation == "compile" and c.learner in unavailable:
            continue
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        try:
            start = time.perf_counter()
            c.call()
            _sync(device)
            c.warm_up_s = time.perf_counter() - start
            c.peak_memory_mb = _peak_mb(device)
        except Exception as err:  # noqa: BLE001 - torch.compile's many ways to fail on a build
            if c.implementation != "compile":
                raise
            unavailable[c.learner] = _one_line(err)
            continue
        kept.append(c)
    return kept


def round_seconds(configs: list[Timed]) -> float:
    """What one timed round should take, from the warm-up calls (a compiled configuration's warm-up
    is mostly its compile: it is counted at its uncompiled twin's time)."""
    warm = {(c.learner, c.implementation, c.runs): c.warm_up_s or 0.0 for c in configs}
    twin = {"compile": "vmap"}
    return sum(warm[(c.learner, twin.get(c.implementation, c.implementation), c.runs)] for c in configs)


def time_interleaved(configs: list[Timed], repeats: int, steps: int, device, burst: int = 1) -> None:
    """`repeats` rounds, each timing every configuration in a burst of `burst` calls back to back (the
    order of the configurations rotated each round, so no configuration always follows the same one);
    appends every call's µs per run-step to each's `calls` (the burst's fastest is its `samples`). A
    bar on stderr shows the configuration being timed and the time left."""
    with tqdm(total=repeats * len(configs), desc="timing", unit="config", file=sys.stderr, leave=False) as bar:
        for rep in range(repeats):
            k = rep % len(configs)
            for c in configs[k:] + configs[:k]:
                bar.set_postfix_str(f"round {rep + 1}/{repeats}, {c.name}")
                got = []
                for _ in range(burst):
                    _sync(device)
                    start = time.perf_counter()
                    c.call()
                    _sync(device)
                    got.append((time.perf_counter() - start) / (steps * c.runs * c.copies) * 1e6)
                c.calls.append(got)
                bar.update()


def spread(samples: list[float]) -> float:
    """How much a configuration's repeats disagree: the interquartile range over the median where
    there are at least 4 repeats (one slow round, a host hiccup, does not move it; a machine busy for
    a quarter of the rounds does), else (max - min) / median."""
    if len(samples) < 4:
        return value_range(samples)
    q1, _, q3 = statistics.quantiles(samples, n=4)
    return (q3 - q1) / statistics.median(samples)


def value_range(samples: list[float]) -> float:
    """(max - min) / median: the repeats' full range, every outlier included."""
    return (max(samples) - min(samples)) / statistics.median(samples)


def engine_matmul_share(
    learner, runs: int, source: Dataset, device, steps: int = 64, top: int = 0
) -> tuple[float, list[tuple[str, float, float]]]:
    """From a profiled task of the engine (torch.profiler, CPU ops; `steps` steps after a warm-up):
    the share of its self CPU time spent in matrix products, and the `top` ops by self time as
    (op, calls per step, µs per run-step)."""
    from torch.profiler import ProfilerActivity, profile

    small = Dataset(
        "mnist", source.train_x[: steps * BATCH], source.train_y[: steps * BATCH], source.test_x, source.test_y
    )
    call = engine_call(learner, runs, small, device, graphs=False)
    call()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        call()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    share = sum(e.self_cpu_time_total for e in events if e.key in MATMUL_OPS) / total if total else float("nan")
    ranked = sorted(events, key=lambda e: -e.self_cpu_time_total)[:top]
    return share, [(e.key, e.count / steps, e.self_cpu_time_total / steps / runs) for e in ranked]


def pin_threads(threads: int) -> tuple[list[int] | None, dict[int, set[int]]]:
    """Pin this process's threads (those alive and those it starts) to its first `threads` allowed
    CPUs. Returns (the CPUs, every thread's previous affinity, for `unpin`)."""
    if not hasattr(os, "sched_setaffinity"):
        return None, {}
    cpus = sorted(os.sched_getaffinity(0))[:threads]
    before = {}
    for tid in _threads():
        try:
            before[tid] = os.sched_getaffinity(tid)
            os.sched_setaffinity(tid, cpus)
        except OSError:
            pass
    return cpus, before


def unpin(before: dict[int, set[int]]) -> None:
    for tid, cpus in before.items():
        try:
            os.sched_setaffinity(tid, cpus)
        except OSError:
            pass


def load_average() -> float | None:
    """The machine's 1-minute load average (None where the platform has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def wait_policy() -> str:
    """How OpenMP's threads wait between parallel regions, as this process's environment set it
    ("default": unset, OpenMP's own choice of spinning a while, then sleeping)."""
    return os.environ.get("OMP_WAIT_POLICY", "default").lower()


def _threads() -> list[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return [0]


def paper_projection(us_per_run_step: dict[str, float], seeds: int = 5) -> float:
    """Hours to compute every run of every figure at `paper` scale with `seeds` seeds, at the
    measured per-run-step times (persistent-state timing for persistent learners, baseline otherwise)."""
    from .papers.iqbal.figures import paper_runs

    runs = paper_runs(seeds)
    steps = sum(s.n_tasks * s.stream.steps_per_task for s in runs if "persistent" in s.learner.kind)
    other = sum(s.n_tasks * s.stream.steps_per_task for s in runs if "persistent" not in s.learner.kind)
    return (steps * us_per_run_step["persistent"] + other * us_per_run_step["baseline"]) / 3.6e9


def _r(x, digits=1):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(x, digits)


def configurations(
    samples: dict[tuple[str, str, int], list[float]],
    learners,
    runs,
    flop: dict,
    shares: dict,
    single_thread: bool = False,
    calls: dict[tuple[str, str, int], list[list[float]]] | None = None,
) -> list[dict]:
    """The JSON's rows, one per (learner, R), from every configuration's samples (µs per run-step, a
    round's fastest call) and, where given, every call of each round's burst (`calls`, kept in
    `calls_us_by_implementation`). `single_thread`: the benchmark ran on one CPU thread, so the naive
    loop is its own per-core reference. `speedup_vs_fastest_naive` is over the faster of the naive loop
    and its per-core twin."""
    calls = calls or {}
    rows = []
    for name in learners:
        naive = samples[(name, "naive", 1)]
        # on one thread the naive loop is its own per-core reference; on a GPU there is none
        per_core = samples.get((name, "naive_per_core", 1), naive if single_thread else None)
        # the naive loops run one run whatever R: theirs are the same figures in every row
        one_run = {"naive": (name, "naive", 1), "naive_per_core": (name, "naive_per_core", 1)}
        if single_thread:
            one_run["naive_per_core"] = one_run["naive"]
        for r in runs:
            got = {impl: samples.get((name, impl, r)) for impl in IMPLEMENTATIONS}
            got |= {"naive": naive, "naive_per_core": per_core}
            bursts = {impl: calls.get(one_run.get(impl, (name, impl, r))) for impl in IMPLEMENTATIONS}
            med = {impl: statistics.median(s) if s else None for impl, s in got.items()}
            spreads = {impl: round(spread(s), 3) for impl, s in got.items() if s}
            alternatives = {impl: med[impl] for impl in ("vmap", "compile") if med[impl] is not None}
            best = min(alternatives, key=alternatives.get) if alternatives else None
            engine = med["engine"]
            fastest_naive = min(v for v in (med["naive"], med["naive_per_core"]) if v is not None)
            rows.append(
                {
                    "learner": name,
                    "runs": r,
                    "naive_us_per_run_step": _r(med["naive"]),
                    "engine_us_per_run_step": _r(engine),
                    "speedup": _r(med["naive"] / engine, 2),
                    "naive_per_core_us_per_run_step": _r(med["naive_per_core"]),
                    "speedup_vs_fastest_naive": _r(fastest_naive / engine, 2),
                    "vmap_us_per_run_step": _r(med["vmap"]),
                    "compile_us_per_run_step": _r(med["compile"]),
                    "roofline_us_per_run_step": _r(med["roofline"]),
                    "best_alternative": best,
                    "engine_vs_best_alternative": _r(alternatives[best] / engine, 2) if best else None,
                    "engine_vs_roofline": _r(engine / med["roofline"], 2) if med["roofline"] else None,
                    "repeats": len(got["engine"]),
                    "spread": max(spreads.values()),
                    "spread_by_implementation": spreads,
                    "range_by_implementation": {impl: round(value_range(s), 3) for impl, s in got.items() if s},
                    "min_us_per_run_step": {impl: _r(min(s)) for impl, s in got.items() if s},
                    "calls_us_by_implementation": {
                        impl: [[_r(x) for x in burst] for burst in b] for impl, b in bursts.items() if b
                    },
                    "matmul_mflop_per_run_step": _r(flop.get((name, r), float("nan")) / 1e6, 3),
                    "engine_matmul_share": _r(shares.get((name, r)), 3),
                }
            )
    return rows


def parser() -> argparse.ArgumentParser:
    """The command line's options (`python -m lopcore.bench --help`)."""
    p = argparse.ArgumentParser(
        prog="python -m lopcore.bench",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--steps", type=int, default=300, help="timed steps per configuration and repeat (default 300)")
    p.add_argument("--repeats", type=int, default=5, help="interleaved timed rounds (default 5)")
    p.add_argument(
        "--burst",
        type=int,
        default=1,
        help="calls of each configuration back to back per round, the fastest kept (default 1)",
    )
    p.add_argument("--runs", type=int, nargs="+", help="run counts R (default 1 16 64, and 256 on GPU)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice, e.g. $OMP_NUM_THREADS)")
    p.add_argument("--no-pin", action="store_true", help="on a CPU, do not pin the threads to as many cores")
    p.add_argument(
        "--no-compile",
        action="store_true",
        help="skip the torch.compile reference (its compiles take minutes on a CPU); reported as null",
    )
    p.add_argument(
        "--profile",
        action="store_true",
        help="also print the engine's most expensive ops per configuration (torch.profiler)",
    )
    p.add_argument(
        "--sharing",
        type=int,
        metavar="G",
        help=f"also time G groups of {SEEDS} runs sharing the device: "
        f"one after another, on CUDA streams at once, concatenated (default: 8 on a GPU, none on a CPU)",
    )
    p.add_argument(
        "--save",
        action="store_true",
        help="keep the result in the results store ($LOPCORE_RESULTS, "
        "default results/) for the book's Performance page",
    )
    p.add_argument(
        "--steadiness",
        type=float,
        metavar="SECONDS",
        help="only check whether this CPU is steady enough to benchmark on: time the same matrix products "
        "again and again for SECONDS, on one thread and on --threads (lopcore.steadiness)",
    )
    p.add_argument(
        "--compare",
        nargs=2,
        metavar=("A", "B"),
        help="only compare two benchmark outputs (files whose last JSON line is the result, or saved "
        "benchmarks, results/bench/*.json): every median's relative difference; exit 1 if one exceeds "
        f"{REPEATABLE:.0%}".replace("%", "%%"),  # argparse %-formats help strings
    )
    return p


def main(argv=None) -> dict:
    p = parser()
    args = p.parse_args(argv)
    if args.compare:
        return compare_files(*args.compare)
    if (
        args.steps < 1
        or args.repeats < 1
        or args.burst < 1
        or (args.runs and min(args.runs) < 1)
        or (args.sharing is not None and args.sharing < 1)
    ):
        p.error("--steps, --repeats, --burst, every --runs value and --sharing must be at least 1")
    if args.steadiness is not None and not args.steadiness > 0:
        p.error(f"--steadiness {args.steadiness:g} is not valid; give the seconds to check for, above 0")
    if args.steadiness is not None and args.device not in ("auto", "cpu"):
        p.error(f"--steadiness checks the CPU; give --device cpu (or none), not --device {args.device}")
    device = torch.device("cpu") if args.steadiness is not None else resolve_device(args.device)
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    cpus, before = pin_threads(threads) if device.type == "cpu" and not args.no_pin else (None, {})
    try:
        return _steadiness(args, threads) if args.steadiness is not None else _run(args, device, threads, cpus)
    finally:
        unpin(before)


def _steadiness(args, threads: int) -> dict:
    """`--steadiness`: the check, its table, a verdict, the JSON last line, and with --save a record."""
    from . import steadiness
    from .store import Store, provenance

    started = time.perf_counter()
    load = load_average()
    ticks = cpu_ticks()
    calls = steadiness.sample(LEARNERS_TIMED["baseline"], sorted({1, threads}), args.steadiness)
    steal = steal_share(ticks, cpu_ticks())
    table = steadiness.summary(calls, REPEATABLE)
    windows = steadiness.window_medians(calls)
    print(f"the baseline's matrix products, µs per run-step, windows of {steadiness.WINDOW_S:.0f} s:")
    print(table.to_string(index=False))
    print(steadiness.verdict(table, REPEATABLE))
    result = {
        "device": f"cpu ({threads} threads)",
        "seconds": args.steadiness,
        "taken": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "window_s": steadiness.WINDOW_S,
        "tolerance": REPEATABLE,
        "steady": steadiness.steady(table),
        "configurations": table.to_dict("records"),
        "window_medians": windows.round({"us_per_run_step": 1}).to_dict("records"),
        "load_average_at_start": _r(load, 2),
        "host_steal_share": _r(steal, 4),
        "torch": torch.__version__,
    }
    if args.save and len(table):
        spec, metrics = steadiness.record(result)
        prov = provenance("cpu", time.perf_counter() - started, runs_in_group=0, threads=threads)
        print(f"saved to {Store().save(spec, metrics, prov)}")
    print(json.dumps(result))
    return result


def _run(args, device, threads: int, cpus) -> dict:
    runs = args.runs or ([1, 16, 64, 256] if device.type == "cuda" else [1, 16, 64])
    started = time.perf_counter()
    load = load_average()
    source = bench_data(args.steps, device)
    _allow_compiles()
    unavailable = {} if not args.no_compile else {n: "not run (--no-compile)" for n in LEARNERS_TIMED}
    configs, flop = [], {}
    for name, learner in LEARNERS_TIMED.items():
        configs.append(Timed(name, "naive", 1, naive_call(learner, source, device)))
        if device.type == "cpu" and threads > 1:
            per_core = one_thread(naive_call(learner, source, device))
            configs.append(Timed(name, "naive_per_core", 1, per_core, copies=threads))
        for r in runs:
            configs.append(Timed(name, "vmap", r, func_call(learner, r, source, device, compile=False)))
            if name not in unavailable:
                configs.append(Timed(name, "compile", r, func_call(learner, r, source, device, compile=True)))
            configs += [
                Timed(name, "engine", r, engine_call(learner, r, source, device)),
                Timed(name, "roofline", r, roofline_call(learner, r, source, device)),
            ]
    for name, learner in LEARNERS_TIMED.items():  # the products per run-step do not depend on R
        flop.update({(name, r): Roofline(learner, 1, device).flop_per_run_step for r in runs})
    print(f"warming up {len(configs)} configurations ({args.steps} steps each)...", file=sys.stderr, flush=True)
    configs = warm_up(configs, device, unavailable)
    each = round_seconds(configs)
    print(
        f"warm-up took {time.perf_counter() - started:.0f} s; timing {args.repeats} rounds of about "
        f"{each * args.burst:.0f} s "
        f"each: about {args.repeats * args.burst * each / 60:.1f} min, then the profile",
        file=sys.stderr,
        flush=True,
    )
    peak = {(c.learner, c.runs): c.peak_memory_mb for c in configs if c.implementation == "engine"}
    ticks = cpu_ticks()
    time_interleaved(configs, args.repeats, args.steps, device, args.burst)
    steal = steal_share(ticks, cpu_ticks())
    samples = {(c.learner, c.implementation, c.runs): c.samples for c in configs}
    calls = {(c.learner, c.implementation, c.runs): c.calls for c in configs}
    shares, profiles = {}, {}
    if device.type == "cpu":
        for name, learner in LEARNERS_TIMED.items():
            for r in runs:
                shares[(name, r)], profiles[(name, r)] = engine_matmul_share(
                    learner, r, source, device, steps=min(64, args.steps), top=10 if args.profile else 0
                )
    rows = configurations(
        samples, LEARNERS_TIMED, runs, flop, shares, single_thread=device.type == "cpu" and threads == 1, calls=calls
    )
    for row in rows:
        row["peak_memory_mb"] = peak[(row["learner"], row["runs"])]
        if device.type == "cuda":  # what the CUDA graphs bring, and that they change no number
            learner = LEARNERS_TIMED[row["learner"]]
            eager = engine_seconds_per_step(learner, row["runs"], source, device, graphs=False) * 1e6 / row["runs"]
            row.update(
                engine_eager_us_per_run_step=round(eager, 1),
                graphs_match_eager=graphs_match_eager(learner, row["runs"], source, device),
            )
    projections = {}
    for impl in IMPLEMENTATIONS:
        best = {}
        for name in LEARNERS_TIMED:
            got = [r[f"{impl}_us_per_run_step"] for r in rows if r["learner"] == name]
            got = [g for g in got if g is not None]
            best[name] = min(got) if got else None
        projections[impl] = round(paper_projection(best), 2) if None not in best.values() else None
    hours = projections["engine"]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({threads} threads)"
    busy = busy_warning(rows, load, steal)
    _print_table(args, name, threads, cpus, load, rows, unavailable, projections)
    result = {
        "device": name,
        "steps": args.steps,
        "configurations": rows,
        "paper_projection_hours": hours,
        "repeats": args.repeats,
        "burst": args.burst,
        "threads": threads,
        "pinned_cpus": cpus,
        "omp_wait_policy": wait_policy(),
        "load_average_at_start": _r(load, 2),
        "host_steal_share": _r(steal, 4),
        "paper_projection_hours_by_implementation": projections,
        "compile_unavailable": unavailable or None,
        "busy_warning": busy,
        "torch": torch.__version__,
    }
    if args.profile and profiles:
        result["engine_profile"] = {
            f"{n} R={r}": [[op, round(c, 2), round(us, 2)] for op, c, us in ops] for (n, r), ops in profiles.items()
        }
        for key, ops in result["engine_profile"].items():
            print(f"engine profile, {key} (op, calls per step, self µs per run-step):")
            for op, c, us in ops:
                print(f"    {op:<32}{c:>7.2f}{us:>10.2f}")
    if busy:
        print(busy)
    sharing = args.sharing if args.sharing is not None else (8 if device.type == "cuda" else 0)
    if sharing:
        result["sharing_groups"] = sharing
        result["sharing_us_per_run_step"] = sharing_us_per_run_step(sharing, SEEDS, source, device)
        print(
            f"{sharing} groups of {SEEDS} runs sharing the device, µs per run-step (warm-up included): "
            + ", ".join(f"{way} {us:.1f}" for way, us in result["sharing_us_per_run_step"].items())
        )
    if args.save:
        path = save(result, runs, device, time.perf_counter() - started)
        print(f"saved to {path}")
    print(json.dumps(result))
    return result


REPEATABLE = 0.15  # two runs on a quiet machine: every median within this of the other's


def _differences(a: dict, b: dict, keys: dict[str, str]) -> list[tuple[str, int, str, float, float, float]]:
    """(learner, R, name, value in a, in b, |a - b| / min(a, b)) for every JSON key of `keys` (key ->
    the name printed) that both benchmark results have for a configuration."""
    out = []
    rows_b = {(r["learner"], r["runs"]): r for r in b["configurations"]}
    for ra in a["configurations"]:
        rb = rows_b.get((ra["learner"], ra["runs"])) or {}
        for key, name in keys.items():
            x, y = ra.get(key), rb.get(key)
            if x and y:
                out.append((ra["learner"], ra["runs"], name, x, y, abs(x - y) / min(x, y)))
    return out


def repeatability(a: dict, b: dict) -> list[tuple[str, int, str, float, float, float]]:
    """(learner, R, implementation, median in a, in b, |a - b| / min(a, b)) for every median both
    benchmark results (their JSON) have."""
    return _differences(a, b, {f"{impl}_us_per_run_step": impl for impl in IMPLEMENTATIONS})


RATIOS = {"speedup": "×naive", "engine_vs_best_alternative": "×best alt", "engine_vs_roofline": "÷roofline"}


def ratio_repeatability(a: dict, b: dict) -> list[tuple[str, int, str, float, float, float]]:
    """Like `repeatability`, for the engine's ratios (RATIOS): times taken in the same rounds, so a
    host that is slower in one run than in the other moves them less than the medians themselves."""
    return _differences(a, b, RATIOS)


def from_record(record: dict) -> dict:
    """A saved benchmark (`--save`, a results-store record) as the result its run printed: the
    configurations' rows rebuilt from the metrics' columns (the per-benchmark facts left out)."""
    metrics = record["metrics"]
    facts = {*RESULT_FACTS, "paper_projection_hours"}
    columns = [c for c in metrics if c not in facts and not c.startswith("sharing_")]
    rows = [{c: metrics[c][i] for c in columns} for i in range(len(metrics["learner"]))]
    return {"device": record["spec"]["device"], "steps": record["spec"]["steps"], "configurations": rows}


def read_output(path: str) -> dict:
    """A benchmark output's result: its last line that is a JSON object with configurations, or a
    saved benchmark (results/bench/*.json, its checksum verified). A missing, corrupt or foreign file
    is a one-line error."""
    from .store import IntegrityError, read_record

    try:
        text = open(path).read()
    except OSError as e:
        raise SystemExit(f"--compare: cannot read {path}: {e.strerror}") from None
    if text.lstrip().startswith("{") and '"sha256"' in text:  # a results-store record
        try:
            body = read_record(path)
        except IntegrityError as err:
            raise SystemExit(f"--compare: {err}") from None
        if body["spec"].get("learner", {}).get("kind") == "bench":
            return from_record(body)
    lines = text.splitlines()
    for line in reversed(lines):
        if line.startswith("{"):
            try:
                result = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(result, dict) and "configurations" in result:
                return result
    raise SystemExit(f"--compare: {path} holds no benchmark result (a JSON line from python -m lopcore.bench)")


def compare_files(path_a: str, path_b: str) -> dict:
    """`--compare`: print how far two benchmark outputs' medians (and, for information, the engine's
    ratios) are apart; SystemExit(1) where a median moved beyond REPEATABLE."""
    a, b = read_output(path_a), read_output(path_b)
    diffs, ratios = repeatability(a, b), ratio_repeatability(a, b)
    for learner, runs, impl, x, y, d in diffs + ratios:
        flag = f"  > {REPEATABLE:.0%}" if d > REPEATABLE else ""
        print(f"{learner:<11}{runs:>5}  {impl:<10}{x:>10.2f}{y:>10.2f}{d:>8.1%}{flag}")
    worst = max((d for *_, d in diffs), default=0.0)
    worst_ratio = max((d for *_, d in ratios), default=0.0)
    print(f"largest difference of a ratio {worst_ratio:.1%}")
    verdict = "within" if worst <= REPEATABLE else "beyond"
    print(f"largest difference of a median {worst:.1%} ({verdict} {REPEATABLE:.0%})")
    if worst > REPEATABLE:
        raise SystemExit(1)
    return {"largest_difference": worst, "largest_ratio_difference": worst_ratio, "differences": diffs}


def cpu_ticks() -> tuple[int, int] | None:
    """(steal, total) CPU ticks of the whole machine so far, from /proc/stat (Linux); None elsewhere.
    Steal is time a virtual machine's CPUs were ready to run but the host ran something else."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def steal_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The share of the machine's CPU time the host stole between two `cpu_ticks` readings."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def busy_warning(rows: list[dict], load: float | None, steal: float | None = None) -> str | None:
    """The warning printed (and saved) when a configuration's repeats spread by more than
    SPREAD_WARNING of their median: something else was using the machine. None otherwise. It names
    the load average at the start and the share of CPU time the virtual machine's host stole while
    timing: a busy warning with little of either is noise of the host's own (its other tenants'
    memory traffic, frequency changes), which no setting here removes. Where the rows hold bursts of
    calls, it also names how far calls back to back disagreed (the median burst, `burst_slowdowns`):
    far less than the rounds, and the machine's speed changes over longer than a burst."""
    worst = max(r["spread"] for r in rows)
    if worst <= SPREAD_WARNING:
        return None
    facts = [] if load is None else [f"load average {load:.2f} when the benchmark started"]
    facts += [] if steal is None else [f"{steal:.1%} of the CPU time stolen by the host while timing"]
    if all(r.get("calls_us_by_implementation") for r in rows):
        bursts = burst_slowdowns(pd.DataFrame(rows))
        if bursts:
            facts.append(f"calls back to back differed by {statistics.median(bursts):.0%} in the median burst")
    at = f" ({'; '.join(facts)})" if facts else ""
    return (
        f"WARNING: repeats of one configuration differ by up to {worst:.0%} of their median (more than "
        f"{SPREAD_WARNING:.0%}): the machine is busy{at}, so these figures do not measure the "
        f"implementations; rerun on a quiet machine (`python -m lopcore.bench --steadiness 300` tells whether "
        f"this one is)"
    )


def _peak_mb(device) -> float:
    """GPU: peak allocated so far; CPU: the process's peak resident set so far (MiB)."""
    peak = (
        torch.cuda.max_memory_allocated(device)
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    return round(peak / 2**20, 1)


def _fmt(x, width, digits=1):
    return f"{'—' if x is None else f'{x:.{digits}f}':>{width}}"


def _print_table(args, name, threads, cpus, load, rows, unavailable, projections) -> None:
    pinned = f", pinned to CPU {', '.join(map(str, cpus))}" if cpus else ""
    print(
        f"device: {name}{pinned}, OMP_WAIT_POLICY {wait_policy()}; torch {torch.__version__}; load average at start "
        f"{'?' if load is None else f'{load:.2f}'}"
    )
    print(
        f"{args.steps} timed steps per call × {args.repeats} interleaved rounds of {args.burst} calls per "
        f"configuration (its fastest kept), after one warm-up; "
        f"batch {BATCH}; medians, µs per run-step (naive: one run)"
    )
    print(
        f"{'learner':<11}{'R':>5}{'naive':>9}{'n/core':>9}{'vmap':>9}{'compile':>9}{'engine':>9}{'roofline':>10}"
        f"{'×naive':>8}{'×fastest':>10}{'×best alt':>10}{'÷roofline':>10}{'spread':>8}"
    )
    for r in rows:
        print(
            f"{r['learner']:<11}{r['runs']:>5}{_fmt(r['naive_us_per_run_step'], 9)}"
            f"{_fmt(r['naive_per_core_us_per_run_step'], 9)}{_fmt(r['vmap_us_per_run_step'], 9)}"
            f"{_fmt(r['compile_us_per_run_step'], 9)}{_fmt(r['engine_us_per_run_step'], 9)}"
            f"{_fmt(r['roofline_us_per_run_step'], 10)}{_fmt(r['speedup'], 8, 2)}"
            f"{_fmt(r['speedup_vs_fastest_naive'], 10, 2)}"
            f"{_fmt(r['engine_vs_best_alternative'], 10, 2)}{_fmt(r['engine_vs_roofline'], 10, 2)}"
            f"{r['spread']:>8.0%}"
        )
    print(
        "(naive: the textbook loop, the engine's speedup over it is ×naive; n/core: that loop on one thread, "
        "over the number of threads, as one process per core would run it; ×fastest: the speedup over the faster "
        "of the two; ×best alt: over the faster of vmap and compile; ÷roofline: engine time over its matrix "
        "products alone)"
    )
    for learner, reason in unavailable.items():
        print(f"compile ({learner}): unavailable, {reason}")
    print(
        "projected wall time of every figure at paper scale, 5 seeds, at each implementation's best R: "
        + ", ".join(f"{impl} {'—' if h is None else f'{h:.1f} h'}" for impl, h in projections.items())
    )


# ---- saved results, the targets, and what the Performance page shows -----------------------------

COLUMNS = ("learner", "runs", "naive_us_per_run_step", "engine_us_per_run_step", "speedup", "peak_memory_mb")
# added with the side-by-side references and interleaved repeats (absent from older saved benchmarks)
NEW_COLUMNS = (
    "naive_per_core_us_per_run_step",
    "speedup_vs_fastest_naive",
    "vmap_us_per_run_step",
    "compile_us_per_run_step",
    "roofline_us_per_run_step",
    "best_alternative",
    "engine_vs_best_alternative",
    "engine_vs_roofline",
    "repeats",
    "spread",
    "spread_by_implementation",  # {implementation: spread}
    "range_by_implementation",  # {implementation: (max - min) / median}
    "calls_us_by_implementation",  # {implementation: every call, per round} (saved since bursts)
    "matmul_mflop_per_run_step",
    "engine_matmul_share",
)
# the numeric columns a saved benchmark may hold as None (a reference not run): float, NaN there
OPTIONAL_NUMBER_COLUMNS = (
    "naive_per_core_us_per_run_step",
    "speedup_vs_fastest_naive",
    "vmap_us_per_run_step",
    "compile_us_per_run_step",
    "roofline_us_per_run_step",
    "engine_vs_best_alternative",
    "engine_vs_roofline",
    "matmul_mflop_per_run_step",
    "engine_matmul_share",
)
NOT_MEASURED = "not measured yet"
# The engine-speed targets per device type: (label, column, R, at least (True) or at most, bound)
TARGETS = {
    "cpu": [
        ("≥ 10× naive at R = 16", "speedup_vs_fastest_naive", 16, True, 10.0),
        ("≥ 2× best of vmap/compile at R = 16", "engine_vs_best_alternative", 16, True, 2.0),
        ("≤ 1.5× roofline at R = 64", "engine_vs_roofline", 64, False, 1.5),
    ],
    "cuda": [("≥ 100× at R ≥ 64, paper ≤ 10 min", "speedup", 64, True, 100.0)],
}
GPU_MOST_HOURS = 10 / 60


def saved_results(store=None) -> pd.DataFrame:
    """Every saved benchmark (`--save`) as one tidy frame: a row per (benchmark, learner, R), with the
    benchmark's device, thread count, timed steps, date, lopcore commit and paper projection. Columns
    a benchmark predates (NEW_COLUMNS) are NaN, and `interleaved` is False for it; so are the numbers of a
    reference it did not run (OPTIONAL_NUMBER_COLUMNS are floats)."""
    from .store import Store

    rows = []
    for record in (store or Store()).records("bench"):
        metrics, prov, spec = record["metrics"], record["provenance"], record["spec"]
        unavailable = (metrics.get("compile_unavailable") or [None])[0]
        about = {
            "device": spec["device"],
            "device_type": "cuda" if prov["device"].startswith("cuda") else "cpu",
            "threads": prov.get("threads"),  # CPU: torch's threads (None on a GPU)
            "steps": spec["steps"],
            "date": prov["date"][:10],
            "saved_at": prov["date"],
            "git_commit": prov["git_commit"][:12],
            "paper_projection_hours": metrics["paper_projection_hours"][0],
            "interleaved": "repeats" in metrics,
            "per_core": "naive_per_core_us_per_run_step" in metrics,  # saved with the per-core reference
            "busy": bool((metrics.get("busy_warning") or [None])[0]),
            # how its threads waited (benchmarks saved before it was recorded: OpenMP's default)
            "omp_wait_policy": (metrics.get("omp_wait_policy") or ["default"])[0],
            "burst": (metrics.get("burst") or [1])[0],  # saved before bursts: one call per round
            "compile_unavailable": "; ".join(f"{k}: {v}" for k, v in unavailable.items()) if unavailable else None,
        }
        rows += [
            {**about, **{c: metrics[c][i] if c in metrics else None for c in (*COLUMNS, *NEW_COLUMNS)}}
            for i in range(len(metrics["learner"]))
        ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "device",
            "device_type",
            "threads",
            "steps",
            "date",
            "saved_at",
            "git_commit",
            "paper_projection_hours",
            "interleaved",
            "per_core",
            "busy",
            "omp_wait_policy",
            "burst",
            "compile_unavailable",
            *COLUMNS,
            *NEW_COLUMNS,
        ],
    )
    return frame.astype({c: float for c in OPTIONAL_NUMBER_COLUMNS})  # a reference not run: NaN, not None


def _benchmarks(results: pd.DataFrame):
    """One group per saved benchmark: (device, date, steps, git_commit, saved_at) and its rows."""
    return results.groupby(["device", "date", "steps", "git_commit", "saved_at"], sort=False)


def _cell(value, measured: bool, digits: int = 1, unavailable: str = "unavailable") -> str:
    if not measured:
        return NOT_MEASURED
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return unavailable
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else str(value)


def _mflop(learner: str, saved) -> float:
    """MFLOP of the matrix products per run-step: as saved, or (benchmarks that predate the column)
    counted from the engine's step now."""
    if saved is not None and not (isinstance(saved, float) and math.isnan(saved)):
        return float(saved)
    return Roofline(LEARNERS_TIMED[learner], 1, "cpu").flop_per_run_step / 1e6


def describe_saved(results: pd.DataFrame) -> str:
    """Every saved benchmark as a header line and a table of medians (µs per run-step), "not measured
    yet" in the columns it predates, "unavailable" where a reference could not run; the engine's
    GFLOP/s are its matrix products' FLOPs per run-step over its time."""
    if results.empty:
        return "No benchmark is saved in this results store; run `python -m lopcore.bench --save`."
    parts = []
    for (device, date, steps, commit, _), g in _benchmarks(results):
        new, per_core = bool(g.interleaved.iloc[0]), bool(g.per_core.iloc[0])
        if not new:
            repeats = "one block each (before repeats)"
        elif (burst := int(g.burst.iloc[0])) > 1:
            repeats = f"{int(g.repeats.iloc[0])} interleaved rounds of {burst} calls, the fastest kept"
        else:
            repeats = f"{int(g.repeats.iloc[0])} interleaved repeats"
        head = f"{device}, {date}, commit {commit}: {steps} timed steps × {repeats}"
        head += f", OMP_WAIT_POLICY {g.omp_wait_policy.iloc[0]}"
        if g.busy.iloc[0]:
            head += " — WARNING: the machine was busy (spread above 10 %), not a measurement"
        table = pd.DataFrame(
            {
                "learner": g.learner,
                "R": g.runs,
                "naive": [_cell(v, True) for v in g.naive_us_per_run_step],
                "naive/core": [_cell(v, per_core, 1, "—") for v in g.naive_per_core_us_per_run_step],
                "vmap": [_cell(v, new) for v in g.vmap_us_per_run_step],
                "compile": [_cell(v, new) for v in g.compile_us_per_run_step],
                "engine": [_cell(v, True) for v in g.engine_us_per_run_step],
                "roofline": [_cell(v, new) for v in g.roofline_us_per_run_step],
                "×naive": [_cell(v, True, 2) for v in g.speedup],
                "×fastest naive": [_cell(v, per_core, 2) for v in g.speedup_vs_fastest_naive],
                "×best alt": [_cell(v, new, 2) for v in g.engine_vs_best_alternative],
                "÷roofline": [_cell(v, new, 2) for v in g.engine_vs_roofline],
                "spread %": [_cell(None if v is None else 100 * v, new, 0) for v in g.spread],
                "matmul %": [_cell(None if v is None else 100 * v, new, 0, "—") for v in g.engine_matmul_share],
                "engine GFLOP/s": [
                    _cell(_mflop(learner, m) / us * 1e3, True, 0)
                    for learner, m, us in zip(g.learner, g.matmul_mflop_per_run_step, g.engine_us_per_run_step)
                ],
                "peak MB": [_cell(v, True, 0) for v in g.peak_memory_mb],
            }
        )
        absent = [c for c in table.columns if (table[c] == NOT_MEASURED).all()]
        text = head + "\n" + table.drop(columns=absent).to_string(index=False)
        if absent:
            text += f"\n{NOT_MEASURED} (this benchmark predates them): {', '.join(absent)}"
        parts.append(text)
        if new and g.compile_unavailable.iloc[0]:
            parts.append(f"compile unavailable: {g.compile_unavailable.iloc[0]}")
    return "\n\n".join(parts)


def target_verdicts(results: pd.DataFrame) -> pd.DataFrame:
    """Per saved benchmark, learner and target of its device type, whether the target holds (✓/✗), or
    "not measured yet" where the benchmark predates the column (or lacks the R) it needs. CPU: at
    R = 16, ≥ 10× the faster of the textbook loop and its one-process-per-core twin and ≥ 2× the faster
    of vmap and compile; at R = 64, within 1.5× of the roofline. GPU: ≥ 100× the textbook loop at
    R ≥ 64 and the whole paper (5 seeds) in ≤ 10 minutes. `note` says where the machine was busy (the
    figures then do not measure the implementations) and where a benchmark predates the per-core twin
    (its naive target is then judged against the loop as timed)."""
    rows = []
    for (device, date, steps, *_), group in _benchmarks(results):
        kind = group.device_type.iloc[0]
        busy = "machine busy: not a measurement" if group.busy.iloc[0] else ""
        for learner in ("baseline", "persistent"):
            mine = group[group.learner == learner]
            if mine.empty:
                continue
            for label, column, r, at_least, bound in TARGETS[kind]:
                at = mine[mine.runs >= r] if kind == "cuda" else mine[mine.runs == r]
                value, note = None, busy
                if not at.empty:
                    best = at.loc[at[column].astype(float).idxmax()] if kind == "cuda" else at.iloc[0]
                    value = best[column]
                    if column == "speedup_vs_fastest_naive" and not group.per_core.iloc[0]:
                        value = best["speedup"]  # saved before the per-core reference: the loop as timed
                        note = "; ".join(filter(None, [busy, "naive loop at the benchmark's threads only"]))
                where = {"device": device, "date": date, "steps": steps, "learner": learner, "target": label}
                if value is None or (isinstance(value, float) and math.isnan(value)):
                    rows.append({**where, "measured": NOT_MEASURED, "verdict": NOT_MEASURED, "note": note})
                    continue
                holds = value >= bound if at_least else value <= bound
                measured = f"{value:.2f}× at R = {best.runs}"
                if kind == "cuda":
                    hours = best.paper_projection_hours
                    holds = holds and hours <= GPU_MOST_HOURS
                    measured += f", paper {hours * 60:.0f} min"
                rows.append({**where, "measured": measured, "verdict": "✓" if holds else "✗", "note": note})
    return pd.DataFrame(rows, columns=["device", "date", "steps", "learner", "target", "measured", "verdict", "note"])


def projections(results: pd.DataFrame) -> pd.DataFrame:
    """Per saved benchmark, the projected wall time (hours) of every Iqbal figure at paper scale with
    5 seeds for each implementation, at its fastest measured R (the textbook loop: one run at a time)."""
    rows = []
    for (device, date, steps, *_), g in _benchmarks(results):
        new = bool(g.interleaved.iloc[0])
        row = {"device": device, "date": date, "steps": steps}
        for impl in IMPLEMENTATIONS:
            column = g[f"{impl}_us_per_run_step"].astype(float)
            if (not new and impl in ("vmap", "compile", "roofline")) or (
                impl == "naive_per_core" and not g.per_core.iloc[0]
            ):
                row[impl] = NOT_MEASURED
                continue
            best = {name: column[g.learner == name].min() for name in LEARNERS_TIMED}
            row[impl] = (
                "unavailable" if any(math.isnan(b) for b in best.values()) else f"{paper_projection(best):.1f} h"
            )
        rows.append(row)
    return pd.DataFrame(rows, columns=["device", "date", "steps", *IMPLEMENTATIONS])


STYLE = {
    "naive": dict(color="tab:red", ls=":", marker="o"),
    "naive_per_core": dict(color="tab:pink", ls=":", marker="v"),
    "vmap": dict(color="tab:orange", marker="s"),
    "compile": dict(color="tab:purple", marker="^"),
    "engine": dict(color="tab:blue", marker="D", lw=2),
    "roofline": dict(color="black", ls="--", marker=""),
}
LABELS = {
    "naive": "naive loop (one run per loop)",
    "naive_per_core": "naive loop, one single-thread process per core",
    "vmap": "vmap(grad) over functional_call",
    "compile": "vmap(grad) under torch.compile",
    "engine": "lopcore engine",
    "roofline": "roofline: the engine's matrix products alone",
}


def latest(
    results: pd.DataFrame, device_type: str = "cpu", interleaved_only: bool = True, threads: int | None = None
) -> pd.DataFrame | None:
    """The rows (learner × R) of the latest saved benchmark on this device type (and, on a CPU, with
    this many threads where `threads` is given), among those with the interleaved references unless
    `interleaved_only` is False (then the latest date, interleaved ones first on the same date). None
    if there is none."""
    mine = results[results.device_type == device_type]
    if threads is not None:
        mine = mine[mine.threads == threads]
    if interleaved_only:
        mine = mine[mine.interleaved]
    if mine.empty:
        return None
    return max(_benchmarks(mine), key=lambda kv: (kv[0][1], bool(kv[1].interleaved.iloc[0]), kv[0][4]))[1]


def medians_of_every_call(rows: pd.DataFrame) -> pd.DataFrame:
    """A benchmark's rows (saved with bursts) with each implementation's median over every call of
    every round in place of the median of the rounds' fastest calls: what timing single calls reports,
    from the same calls. The engine's ratios are left out (NaN): they are the fastest calls'."""
    out = rows.copy()
    for impl in IMPLEMENTATIONS:
        out[f"{impl}_us_per_run_step"] = [
            statistics.median(x for burst in calls[impl] for x in burst)
            if isinstance(calls, dict) and impl in calls
            else math.nan
            for calls in rows.calls_us_by_implementation
        ]
    out[list(RATIOS)] = math.nan
    return out


def burst_slowdowns(rows: pd.DataFrame) -> list[float]:
    """Every burst of a benchmark saved with bursts (each configuration and round once; the naive
    loops' calls, which every row of a learner repeats, counted once): how much longer its slowest call
    took than its fastest, (max - min) / min. Calls of one configuration back to back: what this
    measures is how the machine's speed changes from one call to the next, not the implementations."""
    seen = {}
    for learner, runs, calls in zip(rows.learner, rows.runs, rows.calls_us_by_implementation):
        if not isinstance(calls, dict):
            continue
        for impl, bursts in calls.items():
            seen[(learner, impl, 1 if impl.startswith("naive") else runs)] = bursts
    return [(max(b) - min(b)) / min(b) for bursts in seen.values() for b in bursts if len(b) > 1]


PAIR_KINDS = {  # the kinds of saved CPU benchmark the Performance page pairs: (label, threads, bursts)
    "single": ("two threads, single calls", 2, False),
    "bursts": ("two threads, bursts", 2, True),
    "one_thread": ("one thread, bursts", 1, True),
}


def of_kind(results: pd.DataFrame, kind: str) -> pd.DataFrame:
    """The saved benchmarks of one of PAIR_KINDS, with OpenMP's default wait policy."""
    _, threads, bursts = PAIR_KINDS[kind]
    mine = results[(results.threads == threads) & (results.omp_wait_policy == "default")]
    return mine[mine.burst > 1] if bursts else mine[mine.burst == 1]


def latest_pair(results: pd.DataFrame, device_type: str = "cpu", every_call: bool = False) -> pd.DataFrame | None:
    """How far the two latest saved benchmarks of one kind (this device type, the same device, timed
    steps, burst and OpenMP wait policy, with the interleaved and per-core references) are apart, as
    `--compare` reports it: a row per median (`repeatability`) and per engine ratio
    (`ratio_repeatability`), with `first`, `second`, `difference` (|a - b| / min(a, b)) and `kind`
    ("median" or "ratio"); `attrs` names the two benchmarks. `every_call`: the medians over every call
    instead (`medians_of_every_call`; no ratios). None where there is no such pair."""
    mine = results[(results.device_type == device_type) & results.interleaved & results.per_core]
    groups = sorted(_benchmarks(mine), key=lambda kv: kv[0][4])  # by the time they were saved
    if not groups:
        return None
    key, second = groups[-1]
    settings = second[["omp_wait_policy", "burst"]].iloc[0].tolist()
    same = [
        rows
        for k, rows in groups[:-1]
        if (k[0], k[2]) == (key[0], key[2]) and rows[["omp_wait_policy", "burst"]].iloc[0].tolist() == settings
    ]
    if not same:
        return None
    # a reference a benchmark did not run is NaN in the frame, None (skipped) in a result
    a, b = (
        {"configurations": rows.astype(object).where(rows.notna(), None).to_dict("records")}
        for rows in ((same[-1], second) if not every_call else map(medians_of_every_call, (same[-1], second)))
    )
    out = pd.DataFrame(
        [(*d, "median") for d in repeatability(a, b)] + [(*d, "ratio") for d in ratio_repeatability(a, b)],
        columns=["learner", "runs", "measure", "first", "second", "difference", "kind"],
    )
    out.attrs["benchmarks"] = [rows.saved_at.iloc[0] for rows in (same[-1], second)]
    return out


def plot_us_per_run_step(results: pd.DataFrame, device_type: str = "cpu", threads: int | None = None):
    """µs per run-step against R for every implementation of the latest saved benchmark on this device
    type (and thread count, see `latest`; one panel per learner, log-log), the roofline drawn dashed.
    None if there is none."""
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    g = latest(results, device_type, interleaved_only=False, threads=threads)
    if g is None:
        return None
    device, date, steps, commit = (g[c].iloc[0] for c in ("device", "date", "steps", "git_commit"))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    missing = [impl for impl in IMPLEMENTATIONS if g[f"{impl}_us_per_run_step"].isna().all()]
    for ax, learner in zip(axes, LEARNERS_TIMED):
        sub = g[g.learner == learner].sort_values("runs")
        for impl in IMPLEMENTATIONS:
            y = sub[f"{impl}_us_per_run_step"].astype(float)
            if y.isna().all():
                continue
            ax.plot(sub.runs, y, label=LABELS[impl], **STYLE[impl])
        ax.set(xscale="log", yscale="log", xlabel="runs trained together, R", title=learner)
        ax.set_xticks(list(sub.runs), [str(r) for r in sub.runs])
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes:
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
    axes[0].set_ylabel("µs per run-step" + (" (median of repeats)" if g.interleaved.iloc[0] else ""))
    axes[0].legend(fontsize=8)
    absent = NOT_MEASURED if not g.interleaved.iloc[0] else "unavailable"
    note = f"; {', '.join(missing)}: {absent}" if missing else ""
    if g.busy.iloc[0]:
        note += "; MACHINE BUSY, not a measurement"
    fig.suptitle(f"{device}, {date}, commit {commit}, {steps} steps{note}", fontsize=10)
    fig.tight_layout()
    return fig


# A result's facts about the whole benchmark, saved beside the configurations' columns (each a
# one-element list), as are paper_projection_hours and sharing_<way>_us_per_run_step.
RESULT_FACTS = (
    "paper_projection_hours_by_implementation",
    "compile_unavailable",
    "busy_warning",
    "burst",
    "threads",
    "pinned_cpus",
    "omp_wait_policy",
    "load_average_at_start",
    "host_steal_share",
    "engine_profile",
)


def save(result: dict, runs: list[int], device: torch.device, wall_time_s: float, store=None):
    """Keep a benchmark result in the results store: the spec names what was measured (device,
    threads, steps, repeats, run counts), the metrics are the table's columns and the run's facts."""
    from .store import Store, provenance

    spec = {"learner": {"kind": "bench"}, "device": result["device"], "steps": result["steps"], "runs": runs}
    if "repeats" in result:
        spec["repeats"] = result["repeats"]
    if result.get("burst", 1) != 1:  # the spec of a benchmark without bursts is as it was saved before
        spec["burst"] = result["burst"]
    # a measurement, not a computation to reuse: every save is a record of its own (a second run
    # with the same settings, to check that the figures repeat, or one on another machine, must not
    # replace the first)
    spec["taken"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    rows = result["configurations"]
    metrics = {column: [row.get(column) for row in rows] for column in rows[0]}
    metrics["paper_projection_hours"] = [result["paper_projection_hours"]]
    for key in RESULT_FACTS:
        if key in result:
            metrics[key] = [result[key]]
    for way, us in result.get("sharing_us_per_run_step", {}).items():
        metrics[f"sharing_{way}_us_per_run_step"] = [us]
    threads = result.get("threads") if device.type == "cpu" else None
    prov = provenance(str(device), wall_time_s, runs_in_group=0, threads=threads)
    return (store or Store()).save(spec, metrics, prov)


if __name__ == "__main__":
    main()
