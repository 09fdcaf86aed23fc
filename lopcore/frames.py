"""Stored runs as tidy DataFrames: one row per run x task, the learner's options and the run's
provenance as columns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .learners import LEARNERS


def frame(record: dict) -> pd.DataFrame:
    """A stored run as a tidy DataFrame: per-task metrics plus the run's identifying options."""
    spec = record["spec"]
    df = pd.DataFrame(record["metrics"])
    options = {k: v for k, v in spec["learner"].items() if k != "version"}
    hidden = options.get("hidden", ())  # MLP widths (a tuple), or one recurrent width (an int)
    options["hidden"] = "x".join(map(str, hidden)) if isinstance(hidden, (list, tuple)) else str(hidden)
    options.update({k: ", ".join(map(str, v)) for k, v in options.items() if isinstance(v, (list, tuple))})  # betas
    prov = {
        k: record["provenance"].get(k) for k in ("device_name", "wall_time_s", "runs_in_group", "git_commit", "date")
    }
    if "online_loss" in df:  # derived, not stored: results stored before this column existed stay valid
        df["diverged"] = ~np.isfinite(df["online_loss"].to_numpy(dtype=float))
    if "stop_at_chance" in spec:  # the run may have stopped before n_tasks, having sat at chance
        df["stopped_early"] = len(df) < spec["n_tasks"]
    if spec["stream"].get("inputs", "unit") != "unit":
        df["inputs"] = spec["stream"]["inputs"]
    if "kind" in spec["stream"]:  # a sequence stream: say which (permuted-image frames keep their columns)
        options.update(
            {
                "stream": spec["stream"]["kind"],
                "source": spec["stream"]["source"],
                "max_len": spec["stream"]["max_len"],
                "flat": spec["stream"].get("flat", False),
            }
        )
    for k, v in {
        **options,
        "seed": spec["seed"],
        "batch_size": spec["stream"]["batch_size"],
        "examples_per_task": spec["stream"]["examples_per_task"],
        "probe_examples": spec["probe_examples"],
        "run": record["key"],
        **prov,
    }.items():
        df[k] = v
    return df


def learner_from_dict(d: dict):
    """Rebuild a learner spec from its stored form (the inverse of RunSpec.to_dict's learner, i.e. of
    the learner's `to_dict`: options it leaves out at their defaults come back as those defaults)."""
    options = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k not in ("kind", "version")}
    return LEARNERS[d["kind"]](**options)
