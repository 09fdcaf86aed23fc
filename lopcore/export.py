"""A figure's results as one tidy table on disk (`python -m lopcore export`).

One row per run x task: the figure, scale and line label; the per-task metrics; the learner's options
and the task stream's settings as columns (as `engine.frame` gives them); and each run's provenance
(store key, lopcore and torch versions, Python, device, threads, wall time, git commit, date).
Runs come from the results store exactly as `lopcore run` gets them (the figure module's
`load_figure`): stored runs are read, missing ones computed unless LOPCORE_NO_COMPUTE=1.

Read it back with pandas::

    df = pd.read_csv("fig2-small.csv")          # or pd.read_parquet("fig2-small.parquet")
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from . import params
from .store import Store

FORMATS = ("csv", "parquet")
SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
# provenance recorded with each run that engine.frame leaves out (it keeps device_name, wall_time_s,
# runs_in_group, git_commit and date)
PROVENANCE = ("lopcore", "torch", "python", "device", "threads")
FIRST = ("figure", "scale", "label", "seed", "task")  # the leading columns, in this order


def choose_format(fmt: str | None, path: str | Path | None) -> str:
    """The output format: `fmt` if given, else from the path's suffix (.parquet/.pq), else csv.
    Parquet needs pyarrow: without it, a ParameterError saying how to get it (before any work)."""
    if fmt is None:
        fmt = SUFFIXES.get(Path(path).suffix.lower(), "csv") if path is not None else "csv"
    params.choice("format", fmt, FORMATS)
    if fmt == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise params.ParameterError(
                "--format parquet needs pyarrow, which is not installed here: "
                "pip install pyarrow (or lopcore[parquet]), or use --format csv"
            ) from None
    return fmt


def default_path(figure: str, scale: str, fmt: str = "csv") -> Path:
    """FIGURE-SCALE.csv (or .parquet) in the current folder."""
    return Path(f"{figure}-{scale}.{fmt}")


def tidy(
    module,
    figure: str,
    scale: str,
    seeds,
    device: str = "auto",
    store: Store | None = None,
    progress: bool = True,
    **options,
) -> pd.DataFrame:
    """The figure's tidy frame from `module` (one of `lopcore.papers.PAPERS`),
    with `figure` and the provenance columns added."""
    store = store or Store()
    runs = module.figure_runs(figure, scale, seeds, **options)  # validates every parameter first
    df = module.load_figure(figure, scale=scale, seeds=seeds, device=device, store=store, progress=progress, **options)
    prov = {}
    for _, spec in runs:
        record = store.load(spec.to_dict())
        prov[record["key"]] = {k: record["provenance"].get(k) for k in PROVENANCE}
    extra = pd.DataFrame.from_dict(prov, orient="index").rename_axis("run").reset_index()
    df = df.drop(columns=[c for c in PROVENANCE if c in df]).merge(extra, on="run", how="left")
    df["figure"] = figure
    first = [c for c in FIRST if c in df]
    return df[first + [c for c in df.columns if c not in first]]


def write(df: pd.DataFrame, path: str | Path, fmt: str) -> Path:
    """Write `df` to `path` as `fmt` atomically (a temporary file beside it, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if fmt == "parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def export(
    module,
    figure: str,
    scale: str = "small",
    seeds=None,
    fmt: str | None = None,
    path: str | Path | None = None,
    device: str = "auto",
    store: Store | None = None,
    progress: bool = True,
    **options,
) -> tuple[Path, pd.DataFrame]:
    """Write the figure's tidy frame (see `tidy`) to `path` (default FIGURE-SCALE.FORMAT here);
    `seeds` defaults to the figure's (module.DEFAULT_SEEDS). Returns the path and the frame."""
    fmt = choose_format(fmt, path)
    seeds = module.DEFAULT_SEEDS[figure] if seeds is None else seeds
    df = tidy(module, figure, scale, seeds, device=device, store=store, progress=progress, **options)
    return write(df, default_path(figure, scale, fmt) if path is None else path, fmt), df
