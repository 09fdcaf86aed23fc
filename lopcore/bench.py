"""Side-by-side benchmark: a naive per-run PyTorch loop against the vectorized engine.

    python -m lopcore.bench [--steps 300] [--runs 1 16 64] [--device auto] [--threads N]

For the baseline MLP and the persistent state (n = 2), it times in one process:
  naive   one run as a textbook loop: an `nn.Module`, autograd, `torch.optim.SGD`;
  engine  R runs stacked on the leading axis, one hand-written step for all of them.
Both see batches of 8 random images (the data pipeline is the same for both and not timed). It
prints a table, the projected wall time of the whole paper (every run of every figure at `paper`
scale, 5 seeds) from the measured engine speed, and, as its last line, one JSON object.
"""
from __future__ import annotations

import argparse
import json
import resource
import time

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
    args = p.parse_args(argv)
    if args.steps < 1 or (args.runs and min(args.runs) < 1):
        p.error("--steps and every --runs value must be at least 1")
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    runs = args.runs or ([1, 16, 64, 256] if device.type == "cuda" else [1, 16, 64])
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
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
