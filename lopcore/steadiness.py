"""Is this machine steady enough to benchmark on?

    python -m lopcore.bench --steadiness SECONDS [--threads T] [--save]

A benchmark's medians can only repeat if the machine's own speed does. This check times the same work
again and again for SECONDS: the baseline's matrix products alone (the benchmark's roofline: no data,
no elementwise work, nothing an implementation could do differently), at R = 1 (small products, where
the threads meet at a barrier every few µs) and at R = 16, alternately on one thread and on T threads.
Per configuration it reports the median and how far the medians of windows of WINDOW_S seconds move
(`window_range`, (max - min) / median): where that exceeds the benchmark's tolerance, two benchmarks'
medians cannot be expected to agree within it, whatever they timed. `lopcore.bench` runs it and saves
it (kind "steadiness"); the Performance page reads it from there.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Sequence

import pandas as pd
import torch
from tqdm import tqdm

from .bench_references import Roofline

WINDOW_S = 10.0  # the machine's slow stretches last seconds to tens of seconds: a benchmark round's scale
PROBES = {1: 100, 16: 10}  # R: steps per timed call (5-10 ms on a 2-core CPU)
MIN_CALLS = 3  # a window with fewer calls (cut by the end) has no median
KIND = "steadiness"  # the results store's folder
SUMMARY_COLUMNS = ("threads", "runs", "calls", "median", "p10", "p90", "windows", "window_range", "steady")
WINDOW_COLUMNS = ("threads", "runs", "start_s", "us_per_run_step")


def sample(learner, threads: Sequence[int], seconds: float, probes: dict[int, int] | None = None) -> pd.DataFrame:
    """Every timed call of the check, one row each: `elapsed_s` (its start, from the check's), `threads`,
    `runs`, `us_per_run_step`. The configurations take turns, call by call, so that every one meets the
    machine in the same states; each timed call follows an untimed one of the same configuration (a
    change of thread count re-forms OpenMP's team, which is not what is measured). `probes`: R -> steps
    per call (default PROBES)."""
    probes = probes or PROBES
    rooflines = {r: Roofline(learner, r, "cpu") for r in probes}
    before, rows = torch.get_num_threads(), []
    start = time.perf_counter()
    try:
        with tqdm(total=round(seconds), unit="s", desc="steadiness", file=sys.stderr, leave=False) as bar:
            while time.perf_counter() - start < seconds:
                for t in threads:
                    torch.set_num_threads(t)
                    for r, steps in probes.items():
                        rooflines[r].run(steps)
                        began = time.perf_counter()
                        rooflines[r].run(steps)
                        took = time.perf_counter() - began
                        rows.append(
                            {
                                "elapsed_s": began - start,
                                "threads": t,
                                "runs": r,
                                "us_per_run_step": took / (steps * r) * 1e6,
                            }
                        )
                bar.update(min(round(time.perf_counter() - start), round(seconds)) - bar.n)
    finally:
        torch.set_num_threads(before)
    return pd.DataFrame(rows, columns=["elapsed_s", "threads", "runs", "us_per_run_step"])


def window_medians(calls: pd.DataFrame, window_s: float | None = None) -> pd.DataFrame:
    """Per configuration (`threads`, `runs`) and window of `window_s` seconds (default WINDOW_S;
    `start_s`), the median of its calls (`us_per_run_step`); windows with fewer than MIN_CALLS calls
    are left out."""
    window_s = window_s or WINDOW_S
    start = (calls.elapsed_s // window_s * window_s).rename("start_s")
    grouped = calls.groupby(["threads", "runs", start]).us_per_run_step
    out = grouped.agg(["median", "size"]).reset_index()
    out = out[out["size"] >= MIN_CALLS].drop(columns="size")
    return out.rename(columns={"median": "us_per_run_step"}).reset_index(drop=True)


def summary(calls: pd.DataFrame, tolerance: float, window_s: float | None = None) -> pd.DataFrame:
    """Per configuration: `calls`, the `median`, `p10` and `p90` of its calls (µs per run-step),
    `windows`, `window_range` ((max - min) / median of its window medians: how far the machine's speed
    moved for it) and `steady` (`window_range` at most `tolerance`); windows as `window_medians`."""
    windows = window_medians(calls, window_s)
    rows = []
    for (threads, runs), mine in calls.groupby(["threads", "runs"]):
        w = windows[(windows.threads == threads) & (windows.runs == runs)].us_per_run_step
        spread = float((w.max() - w.min()) / w.median()) if len(w) >= 2 else float("nan")
        rows.append(
            {
                "threads": int(threads),
                "runs": int(runs),
                "calls": len(mine),
                "median": round(float(mine.us_per_run_step.median()), 1),
                "p10": round(float(mine.us_per_run_step.quantile(0.1)), 1),
                "p90": round(float(mine.us_per_run_step.quantile(0.9)), 1),
                "windows": len(w),
                "window_range": round(spread, 3),
                "steady": bool(spread <= tolerance),
            }
        )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def steady(table: pd.DataFrame) -> bool:
    """Whether a `summary` has configurations and every one of them is steady."""
    return not table.empty and bool(table.steady.all())


def verdict(table: pd.DataFrame, tolerance: float) -> str:
    """One line: whether every configuration of a `summary` is steady, else which are not and by how much."""
    if table.empty:
        return "NOT steady: no call was timed"
    if steady(table):
        return f"steady: every configuration's window medians stay within {tolerance:.0%} of each other"
    moved = [
        f"{t} thread{'s' * (t > 1)} R={r} ({'too short to tell' if w != w else f'{w:.0%}'})"
        for t, r, w in table[~table.steady][["threads", "runs", "window_range"]].itertuples(index=False)
    ]
    return (
        f"NOT steady: the window medians of {', '.join(moved)} moved by more than "
        f"{tolerance:.0%} (or had fewer than two windows): two benchmarks on as many threads cannot be "
        f"expected to repeat within it here"
    )


@dataclass
class Check:
    """A saved steadiness check: where and when, its `summary` and its `windows` (window_medians)."""

    device: str
    saved_at: str
    git_commit: str
    seconds: float
    window_s: float
    tolerance: float
    load_average_at_start: float | None
    host_steal_share: float | None
    summary: pd.DataFrame
    windows: pd.DataFrame


def record(check: dict) -> tuple[dict, dict]:
    """The results store's (spec, metrics) of a check's JSON result (`lopcore.bench --steadiness`):
    every save is a record of its own, as a benchmark's is."""
    spec = {"learner": {"kind": KIND}, "device": check["device"], "seconds": check["seconds"], "taken": check["taken"]}
    rows, windows = check["configurations"], check["window_medians"]
    metrics = {column: [row[column] for row in rows] for column in SUMMARY_COLUMNS}
    metrics |= {f"window_{column}": [w[column] for w in windows] for column in WINDOW_COLUMNS}
    for key in ("window_s", "tolerance", "load_average_at_start", "host_steal_share", "torch"):
        metrics[key] = [check[key]]
    return spec, metrics


def saved(store=None) -> list[Check]:
    """Every saved check, oldest first (each file's checksum verified by the store)."""
    from .store import Store

    checks = []
    for rec in (store or Store()).records(KIND):
        m, prov, spec = rec["metrics"], rec["provenance"], rec["spec"]
        table = pd.DataFrame({c: m[c] for c in SUMMARY_COLUMNS}).astype({"window_range": float})  # None: NaN
        windows = pd.DataFrame({c: m[f"window_{c}"] for c in WINDOW_COLUMNS})
        checks.append(
            Check(
                device=spec["device"],
                saved_at=prov["date"],
                git_commit=prov["git_commit"][:12] + ("+dirty" if prov["git_commit"].endswith("+dirty") else ""),
                seconds=spec["seconds"],
                window_s=m["window_s"][0],
                tolerance=m["tolerance"][0],
                load_average_at_start=m["load_average_at_start"][0],
                host_steal_share=m["host_steal_share"][0],
                summary=table,
                windows=windows,
            )
        )
    return sorted(checks, key=lambda c: c.saved_at)


def plot_windows(check: Check):
    """Each configuration's window medians over the check, relative to its median (1 = its usual
    speed), one line per configuration, the tolerance drawn as a band around 1. Returns the figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    w = check.windows.merge(check.summary[["threads", "runs", "median"]], on=["threads", "runs"])
    w = w.assign(
        relative=w.us_per_run_step / w["median"],
        configuration=[f"{t} thread{'s' * (t > 1)}, R = {r}" for t, r in zip(w.threads, w.runs)],
    )
    fig, ax = plt.subplots(figsize=(8, 3.5))
    band = f"± {check.tolerance / 2:.1%}: as wide as the tolerance"
    ax.axhspan(1 - check.tolerance / 2, 1 + check.tolerance / 2, color="0.9", label=band)
    sns.lineplot(data=w, x="start_s", y="relative", hue="configuration", style="configuration", markers=True, ax=ax)
    ax.set(
        xlabel=f"seconds into the check (windows of {check.window_s:g} s)",
        ylabel="window median / median",
        title="The same matrix products, timed again and again",
    )
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1, 1))
    fig.tight_layout()
    return fig
