"""Side-by-side benchmark: a naive per-run PyTorch loop against the vectorized engine.

    python -m lopcore.bench [--steps 300] [--runs 1 16 64] [--device auto] [--threads N] [--sharing G] [--save]

For the baseline MLP and the persistent state (n = 2), it times in one process:
  naive   one run as a textbook loop: an `nn.Module`, autograd, `torch.optim.SGD`;
  engine  R runs stacked on the leading axis, one hand-written step for all of them, trained as the
          engine trains (lopcore.blocks: blocks of steps, replayed as CUDA graphs on a GPU).
Both gather and permute their batches of 8 from the same random uint8 images on the device, and both
times include that. On a GPU it also times the engine without graphs, checks that the graphs leave
exactly the eager steps' weights, and times G groups of 5 runs sharing the device. It
prints a table, the projected wall time of the whole paper (every run of every figure at `paper`
scale, 5 seeds) from the measured engine speed, and, as its last line, one JSON object. With
--save the result is also kept in the results store (kind "bench", one file per device, thread
count and configuration set, with provenance), where the book's Performance page reads it.
"""
from __future__ import annotations

import argparse
import json
import resource
import time

import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from .blocks import BlockTrainer, per_batch
from .data import Dataset
from .engine import resolve_device
from .learners import Backprop, PersistentState
from .tasks import PermutedStream

N_IN, N_OUT, BATCH, LR = 784, 10, 8, 0.05
SEEDS = 5  # runs per group in the figures (their seeds): what groups sharing a device hold
LEARNERS_TIMED = {"baseline": Backprop(lr=LR), "persistent": PersistentState(lr=LR, d_int=128, n=2)}


class NaiveMLP(nn.Module):
    """The network written the textbook way; d_int > 0 adds Iqbal's state input and state head."""

    def __init__(self, d_int: int = 0, hidden=(100, 100, 100)):
        super().__init__()
        sizes = (N_IN + d_int, *hidden)
        self.body = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.head = nn.Linear(hidden[-1], N_OUT)
        self.state_head = nn.Linear(hidden[-1], d_int) if d_int else None

    def forward(self, x, h=None):
        a = x if h is None else torch.cat([x, h.expand(x.shape[0], -1)], 1)
        for layer in self.body:
            a = F.relu(layer(a))
        return self.head(a), (self.state_head(a.mean(0)) if self.state_head is not None else None)


def bench_data(steps: int, device, seed: int = 0) -> Dataset:
    """Random uint8 images and labels on the device, one example per timed or warm-up step and slot."""
    g = torch.Generator().manual_seed(seed)
    n = steps * BATCH
    images = torch.randint(0, 256, (n, N_IN), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, N_OUT, (n,), generator=g)
    return Dataset("mnist", images, labels, images[:BATCH], labels[:BATCH]).to(device)


def naive_seconds_per_step(learner, source: Dataset, device) -> float:
    """Wall seconds per step of one run trained by the textbook loop (the paper's semantics for n > 1:
    in-place updates, backprop through the earlier step with the current weights), each batch
    gathered and permuted from the device-resident uint8 images as the engine does."""
    d_int = getattr(learner, "d_int", 0)
    n = getattr(learner, "n", 1)
    model = NaiveMLP(d_int).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    h = torch.zeros(d_int, device=device) if d_int else None
    permutation = torch.randperm(N_IN, generator=torch.Generator().manual_seed(1)).to(device)
    steps = source.train_x.shape[0] // BATCH

    def step(t, h):
        batch = slice(t * BATCH, (t + 1) * BATCH)
        x, y = source.train_x[batch][:, permutation].float().div_(255.0), source.train_y[batch]
        if h is not None and t % n == 0:
            h = h.detach()
        logits, h_next = model(x, h)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward(retain_graph=h is not None and n > 1)
        with torch.no_grad():  # p.data-style update: the paper's in-place semantics for n > 1
            for p in model.parameters():
                if p.grad is not None:
                    p.data.add_(p.grad, alpha=-LR)
        return h_next

    for t in range(10):  # warm-up
        h = step(t, h)
    _sync(device)
    start = time.perf_counter()
    for t in range(steps):
        h = step(t, h)
    _sync(device)
    return (time.perf_counter() - start) / steps


def engine_seconds_per_step(learner, runs: int, source: Dataset, device, graphs: bool = True,
                            state: dict | None = None) -> float:
    """Wall seconds per step of the engine advancing `runs` runs together over one task of the
    source's examples, as the engine trains (lopcore.blocks: CUDA graphs on a GPU where the learner
    allows and `graphs`). A first, untimed task warms up (and records the graphs). `state`, if
    given, is trained (to compare paths)."""
    stream = PermutedStream(examples_per_task=source.train_x.shape[0], batch_size=BATCH)
    seeds = list(range(runs))
    state = state if state is not None else learner.init_state(seeds, N_IN, N_OUT, device)
    data = {"mnist": source}
    train = (BlockTrainer(learner, state, stream, data, capture=graphs and device.type == "cuda").train
             if learner.block_period() is not None else per_batch(learner, state, stream, data))
    tasks = [stream.task(seeds, k, source.train_x.shape[0]).to(device) for k in range(2)]

    train(tasks[0])
    _sync(device)
    start = time.perf_counter()
    train(tasks[1])
    _sync(device)
    return (time.perf_counter() - start) / stream.steps_per_task


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

    from .engine import own_stream
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
    return {way: round(wall / run_steps * 1e6, 2) for way, wall in
            (("sequential", sequential), ("streams", streams), ("concatenated", concatenated))}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def paper_projection(us_per_run_step: dict[str, float], seeds: int = 5) -> float:
    """Hours to compute every run of every figure at `paper` scale with `seeds` seeds, at the
    measured per-run-step times (persistent-state timing for persistent learners, baseline otherwise)."""
    from .figures import paper_runs
    runs = paper_runs(seeds)
    steps = sum(s.n_tasks * s.stream.steps_per_task for s in runs if "persistent" in s.learner.kind)
    other = sum(s.n_tasks * s.stream.steps_per_task for s in runs if "persistent" not in s.learner.kind)
    return (steps * us_per_run_step["persistent"] + other * us_per_run_step["baseline"]) / 3.6e9


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m lopcore.bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300, help="timed steps per configuration (default 300)")
    p.add_argument("--runs", type=int, nargs="+", help="engine run counts R (default 1 16 64, and 256 on GPU)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--sharing", type=int, metavar="G", help=f"also time G groups of {SEEDS} runs sharing the device: "
                   f"one after another, on CUDA streams at once, concatenated (default: 8 on a GPU, none on a CPU)")
    p.add_argument("--save", action="store_true", help="keep the result in the results store ($LOPCORE_RESULTS, "
                                                      "default results/) for the book's Performance page")
    args = p.parse_args(argv)
    if args.steps < 1 or (args.runs and min(args.runs) < 1) or (args.sharing is not None and args.sharing < 1):
        p.error("--steps, every --runs value and --sharing must be at least 1")
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    runs = args.runs or ([1, 16, 64, 256] if device.type == "cuda" else [1, 16, 64])
    started = time.perf_counter()
    source = bench_data(args.steps, device)
    rows = []
    for name, learner in LEARNERS_TIMED.items():
        naive = naive_seconds_per_step(learner, source, device) * 1e6
        for r in runs:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            engine = engine_seconds_per_step(learner, r, source, device) * 1e6 / r
            # GPU: peak allocated by this configuration; CPU: the process's peak resident set so far
            peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
                    else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2 ** 20
            row = {"learner": name, "runs": r, "naive_us_per_run_step": round(naive, 1),
                   "engine_us_per_run_step": round(engine, 1), "speedup": round(naive / engine, 2),
                   "peak_memory_mb": round(peak, 1)}
            if device.type == "cuda":  # what the CUDA graphs bring, and that they change no number
                eager = engine_seconds_per_step(learner, r, source, device, graphs=False) * 1e6 / r
                row.update(engine_eager_us_per_run_step=round(eager, 1),
                           graphs_match_eager=graphs_match_eager(learner, r, source, device))
            rows.append(row)
    best = {name: min(r["engine_us_per_run_step"] for r in rows if r["learner"] == name) for name in LEARNERS_TIMED}
    hours = paper_projection(best)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {name}; {args.steps} timed steps per configuration, batch {BATCH}")
    print(f"{'learner':<11}{'R':>5}{'naive µs/run-step':>19}{'engine µs/run-step':>20}{'speedup':>9}")
    for r in rows:
        print(f"{r['learner']:<11}{r['runs']:>5}{r['naive_us_per_run_step']:>19.1f}"
              f"{r['engine_us_per_run_step']:>20.1f}{r['speedup']:>9.2f}")
    print(f"projected wall time of every figure at paper scale, 5 seeds, at the best R: {hours:.1f} h")
    result = {"device": name, "steps": args.steps, "configurations": rows, "paper_projection_hours": round(hours, 2)}
    sharing = args.sharing if args.sharing is not None else (8 if device.type == "cuda" else 0)
    if sharing:
        result["sharing_groups"] = sharing
        result["sharing_us_per_run_step"] = sharing_us_per_run_step(sharing, SEEDS, source, device)
        print(f"{sharing} groups of {SEEDS} runs sharing the device, µs per run-step (warm-up included): " +
              ", ".join(f"{way} {us:.1f}" for way, us in result["sharing_us_per_run_step"].items()))
    if args.save:
        path = save(result, runs, device, time.perf_counter() - started)
        print(f"saved to {path}")
    print(json.dumps(result))
    return result


COLUMNS = ("learner", "runs", "naive_us_per_run_step", "engine_us_per_run_step", "speedup", "peak_memory_mb")
# The engine-speed targets: (device type, smallest R, learners, least speedup, most projected hours)
TARGETS = {"cpu": (16, ("baseline", "persistent"), 7.0, None), "cuda": (64, ("baseline", "persistent"), 100.0, 10 / 60)}


def saved_results(store=None) -> pd.DataFrame:
    """Every saved benchmark (`--save`) as one tidy frame: a row per (benchmark, learner, R), with the
    benchmark's device, thread count, timed steps, date, lopcore commit and paper projection."""
    from .store import Store
    rows = []
    for record in (store or Store()).records("bench"):
        metrics, prov = record["metrics"], record["provenance"]
        about = {"device": record["spec"]["device"], "device_type": "cuda" if prov["device"].startswith("cuda") else "cpu",
                 "steps": record["spec"]["steps"], "date": prov["date"][:10], "git_commit": prov["git_commit"][:12],
                 "paper_projection_hours": metrics["paper_projection_hours"][0]}
        rows += [{**about, **{c: metrics[c][i] for c in COLUMNS}} for i in range(len(metrics["learner"]))]
    return pd.DataFrame(rows, columns=["device", "device_type", "steps", "date", "git_commit",
                                       "paper_projection_hours", *COLUMNS])


def target_verdicts(results: pd.DataFrame) -> pd.DataFrame:
    """Per saved benchmark and learner, whether the engine-speed target for its device type holds:
    CPU, speedup >= 7 at R = 16; GPU, speedup >= 100 at R >= 64 and the whole paper (5 seeds) in
    <= 10 minutes."""
    rows = []
    for (device, date, steps, kind), group in results.groupby(["device", "date", "steps", "device_type"]):
        least_r, learners, least_speedup, most_hours = TARGETS[kind]
        for learner in learners:
            at = group[(group.learner == learner) & (group.runs >= least_r)]
            if at.empty:
                continue
            best = at.loc[at.speedup.idxmax()] if kind == "cuda" else at.loc[at.runs.idxmin()]
            hours = best.paper_projection_hours
            holds = best.speedup >= least_speedup and (most_hours is None or hours <= most_hours)
            target = f"≥ {least_speedup:g}× at R {'≥' if kind == 'cuda' else '='} {least_r}" + (
                f", paper ≤ {most_hours * 60:g} min" if most_hours else "")
            rows.append({"device": device, "date": date, "steps": steps, "learner": learner, "target": target,
                         "measured": f"{best.speedup:.2f}× at R = {best.runs}" + (
                             f", paper {hours * 60:.0f} min" if most_hours else ""),
                         "verdict": "✓" if holds else "✗"})
    return pd.DataFrame(rows, columns=["device", "date", "steps", "learner", "target", "measured", "verdict"])


def save(result: dict, runs: list[int], device: torch.device, wall_time_s: float, store=None):
    """Keep a benchmark result in the results store: the spec names what was measured (device,
    threads, steps, run counts), the metrics are the table's columns."""
    from .store import Store, provenance
    spec = {"learner": {"kind": "bench"}, "device": result["device"], "steps": result["steps"], "runs": runs}
    rows = result["configurations"]
    metrics = {column: [row[column] for row in rows] for column in rows[0]}
    metrics["paper_projection_hours"] = [result["paper_projection_hours"]]
    for way, us in result.get("sharing_us_per_run_step", {}).items():
        metrics[f"sharing_{way}_us_per_run_step"] = [us]
    return (store or Store()).save(spec, metrics, provenance(str(device), wall_time_s, runs_in_group=0))


if __name__ == "__main__":
    main()
