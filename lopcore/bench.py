"""Side-by-side benchmark: a naive per-run PyTorch loop against the vectorized engine.

    python -m lopcore.bench [--steps 300] [--runs 1 16 64] [--device auto] [--threads N] [--save]

For the baseline MLP and the persistent state (n = 2), it times in one process:
  naive   one run as a textbook loop: an `nn.Module`, autograd, `torch.optim.SGD`;
  engine  R runs stacked on the leading axis, one hand-written step for all of them.
Both see batches of 8 random images (the data pipeline is the same for both and not timed). It
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

from .engine import resolve_device
from .learners import Backprop, PersistentState

N_IN, N_OUT, BATCH, LR = 784, 10, 8, 0.05


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


def naive_seconds_per_step(learner, xs, ys, device) -> float:
    """Wall seconds per step of one run trained by the textbook loop (the paper's semantics for n > 1:
    in-place updates, backprop through the earlier step with the current weights)."""
    d_int = getattr(learner, "d_int", 0)
    n = getattr(learner, "n", 1)
    model = NaiveMLP(d_int).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    h = torch.zeros(d_int, device=device) if d_int else None

    def step(t, x, y, h):
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
        h = step(t, xs[t % len(xs)], ys[t % len(ys)], h)
    _sync(device)
    start = time.perf_counter()
    for t in range(len(xs)):
        h = step(t, xs[t], ys[t], h)
    _sync(device)
    del opt
    return (time.perf_counter() - start) / len(xs)


def engine_seconds_per_step(learner, runs: int, xs, ys, device) -> float:
    """Wall seconds per step of the engine advancing `runs` runs together."""
    state = learner.init_state(list(range(runs)), N_IN, N_OUT, device)
    xs = xs[:, None].expand(-1, runs, -1, -1).contiguous()
    ys = ys[:, None].expand(-1, runs, -1).contiguous()
    for t in range(10):  # warm-up
        learner.step(state, xs[t % len(xs)], ys[t % len(ys)])
    _sync(device)
    start = time.perf_counter()
    for t in range(len(xs)):
        learner.step(state, xs[t], ys[t])
    _sync(device)
    return (time.perf_counter() - start) / len(xs)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def paper_projection(us_per_run_step: dict[str, float], seeds: int = 5) -> float:
    """Hours to compute every run of every figure at `paper` scale with `seeds` seeds, at the
    measured per-run-step times (persistent-state timing for persistent learners, baseline otherwise)."""
    from .figures import FIGURES, figure_runs
    runs = {}
    for figure in FIGURES:
        for _, spec in figure_runs(figure, scale="paper", seeds=seeds):
            runs[repr(spec)] = spec
    steps = sum(s.n_tasks * s.stream.steps_per_task for s in runs.values() if "persistent" in s.learner.kind)
    other = sum(s.n_tasks * s.stream.steps_per_task for s in runs.values() if "persistent" not in s.learner.kind)
    return (steps * us_per_run_step["persistent"] + other * us_per_run_step["baseline"]) / 3.6e9


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m lopcore.bench", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300, help="timed steps per configuration (default 300)")
    p.add_argument("--runs", type=int, nargs="+", help="engine run counts R (default 1 16 64, and 256 on GPU)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--save", action="store_true", help="keep the result in the results store ($LOPCORE_RESULTS, "
                                                      "default results/) for the book's Performance page")
    args = p.parse_args(argv)
    if args.steps < 1 or (args.runs and min(args.runs) < 1):
        p.error("--steps and every --runs value must be at least 1")
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    runs = args.runs or ([1, 16, 64, 256] if device.type == "cuda" else [1, 16, 64])
    started = time.perf_counter()
    g = torch.Generator().manual_seed(0)
    xs = torch.rand(args.steps, BATCH, N_IN, generator=g).to(device)
    ys = torch.randint(0, N_OUT, (args.steps, BATCH), generator=g).to(device)
    learners = {"baseline": Backprop(lr=LR), "persistent": PersistentState(lr=LR, d_int=128, n=2)}
    rows = []
    for name, learner in learners.items():
        naive = naive_seconds_per_step(learner, xs, ys, device) * 1e6
        for r in runs:
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            engine = engine_seconds_per_step(learner, r, xs, ys, device) * 1e6 / r
            # GPU: peak allocated by this configuration; CPU: the process's peak resident set so far
            peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda"
                    else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2 ** 20
            rows.append({"learner": name, "runs": r, "naive_us_per_run_step": round(naive, 1),
                         "engine_us_per_run_step": round(engine, 1), "speedup": round(naive / engine, 2),
                         "peak_memory_mb": round(peak, 1)})
    best = {name: min(r["engine_us_per_run_step"] for r in rows if r["learner"] == name) for name in learners}
    hours = paper_projection(best)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {name}; {args.steps} timed steps per configuration, batch {BATCH}")
    print(f"{'learner':<11}{'R':>5}{'naive µs/run-step':>19}{'engine µs/run-step':>20}{'speedup':>9}")
    for r in rows:
        print(f"{r['learner']:<11}{r['runs']:>5}{r['naive_us_per_run_step']:>19.1f}"
              f"{r['engine_us_per_run_step']:>20.1f}{r['speedup']:>9.2f}")
    print(f"projected wall time of every figure at paper scale, 5 seeds, at the best R: {hours:.1f} h")
    result = {"device": name, "steps": args.steps, "configurations": rows, "paper_projection_hours": round(hours, 2)}
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
    return (store or Store()).save(spec, metrics, provenance(str(device), wall_time_s, runs_in_group=0))


if __name__ == "__main__":
    main()
