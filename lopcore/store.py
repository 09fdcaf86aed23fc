"""Results store: one JSON file per run, keyed by a hash of the run's canonical spec.

A file holds the spec, the per-task metrics (columns of equal length) and provenance (lopcore
version, git commit, torch version, device, wall time, date), plus a sha256 of all of that.
Files are written atomically (temp file + rename), so an interrupted run leaves either the old
file or the new one; a truncated or edited file fails its checksum and is an error, never used.
Checkpoints of run groups in progress live in the store's `.checkpoints/` folder (lopcore.checkpoint).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

import torch

from . import __version__

FORMAT = 1
REPO_ROOT = Path(__file__).resolve().parents[1]


class IntegrityError(RuntimeError):
    """A stored file (result or checkpoint) that is unreadable, truncated or edited; the message
    names the file and how to recover."""


class CorruptResultError(IntegrityError):
    """A result file that fails to parse or whose checksum does not match its content."""


def canonical(obj) -> str:
    """The one JSON text of an object that hashing and checksums use."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def spec_key(spec: dict) -> str:
    """Store key of a run: sha256 of its canonical spec, shortened to 20 hex digits."""
    return hashlib.sha256(canonical(spec).encode()).hexdigest()[:20]


CHECKPOINTS = ".checkpoints"  # the store's folder of checkpoints of run groups in progress


def group_key(specs: Sequence[dict]) -> str:
    """Key of a run group: sha256 of the canonical specs of its runs, in order (20 hex digits)."""
    return hashlib.sha256(canonical(list(specs)).encode()).hexdigest()[:20]


def checkpoint_path(root: str | Path, specs: Sequence[dict]) -> Path:
    """Where the checkpoint of the group with these run specs lives under a store root (lopcore.checkpoint
    writes and reads it; the store only says where, so the two modules import in one direction)."""
    return Path(root) / CHECKPOINTS / f"{group_key(specs)}.pt"


def default_root() -> Path:
    """Where results are stored unless a Store is given a root:

    1. ``$LOPCORE_RESULTS`` when set;
    2. else the checkout's committed ``results/`` when lopcore is imported from a checkout (the folder
       above the package has a pyproject.toml naming lopcore and a ``results/`` folder: a clone, or
       an editable install of one);
    3. else a per-user cache folder, ``lopcore.data.cache_dir()/results``: ``$LOPCORE_CACHE/results``,
       else ``$XDG_CACHE_HOME/lopcore/results``, else ``~/.cache/lopcore/results`` (an installed
       package never writes into site-packages).
    """
    if os.environ.get("LOPCORE_RESULTS"):
        return Path(os.environ["LOPCORE_RESULTS"]).expanduser()
    checkout = Path(__file__).resolve().parents[1]
    try:
        names_lopcore = re.search(r"""^name\s*=\s*["']lopcore["']""", (checkout / "pyproject.toml").read_text(), re.M)
    except (OSError, UnicodeDecodeError):
        names_lopcore = None
    if names_lopcore and (checkout / "results").is_dir():
        return checkout / "results"
    from .data import cache_dir  # the per-user cache folder is defined once, with the data cache

    return cache_dir() / "results"


def git_commit() -> str:
    """The lopcore checkout's commit (+dirty), or $LOPCORE_GIT_COMMIT where set: a Ray driver sets it
    for its workers, whose copy of the code (shipped by the driver) is not a checkout."""
    if os.environ.get("LOPCORE_GIT_COMMIT"):
        return os.environ["LOPCORE_GIT_COMMIT"]
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def provenance(device: str, wall_time_s: float, runs_in_group: int, threads: int | None = None) -> dict:
    """Where and how a result was computed. On a CPU the last bits of a result depend on torch's
    thread count (kernels split their reductions by thread), so it is recorded."""
    cuda = str(device).startswith("cuda")
    name = torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu"
    cpu_threads = {} if cuda else {"threads": threads or torch.get_num_threads()}
    return {
        "lopcore": __version__,
        "git_commit": git_commit(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "device_name": name,
        "wall_time_s": round(wall_time_s, 2),
        "runs_in_group": runs_in_group,
        **cpu_threads,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


class Store:
    """A folder of run results. `root` defaults to `default_root()`."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_root()

    def path(self, spec: dict) -> Path:
        return self.root / spec["learner"]["kind"] / f"{spec_key(spec)}.json"

    def checkpoint_path(self, specs) -> Path:
        """Where the checkpoint of a run group in progress lives (see lopcore.checkpoint)."""
        return checkpoint_path(self.root, specs)

    def __contains__(self, spec: dict) -> bool:
        return self.path(spec).exists()

    def save(self, spec: dict, metrics: dict[str, list], prov: dict) -> Path:
        """Write a run's result atomically; returns its path."""
        body = {"format": FORMAT, "key": spec_key(spec), "spec": spec, "provenance": prov, "metrics": metrics}
        record = {**body, "sha256": hashlib.sha256(canonical(body).encode()).hexdigest()}
        path = self.path(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(record, f, sort_keys=True, indent=0, allow_nan=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    def records(self, kind: str) -> list[dict]:
        """Every stored record of one kind (a learner's, or "bench" for benchmark results), each
        verified as `load` verifies it, in file-name order."""
        out = []
        for path in sorted((self.root / kind).glob("*.json")):
            body, sha256 = _read(path)
            if self.path(body["spec"]) != path:
                raise CorruptResultError(f"result file {path} holds a different run than its name says; {_fix(path)}")
            out.append(_checked(path, body, sha256))
        return out

    def load(self, spec: dict) -> dict:
        """The stored record of a run (spec, provenance, metrics); verifies its checksum."""
        path = self.path(spec)
        body = _checked(path, *_read(path))
        if canonical(body["spec"]) != canonical(spec):
            raise CorruptResultError(f"result file {path} holds a different run than its name says; {_fix(path)}")
        return body


def read_record(path: str | Path) -> dict:
    """One result file's record (format, key, spec, provenance, metrics), its checksum verified."""
    path = Path(path)
    return _checked(path, *_read(path))


def _fix(path: Path) -> str:
    return f"delete it (rm {path}) and rerun to recompute it"


def _read(path: Path) -> tuple[dict, str]:
    """A result file's body (format, key, spec, provenance, metrics) and its recorded sha256."""
    try:
        record = json.loads(path.read_text())
        return {k: record[k] for k in ("format", "key", "spec", "provenance", "metrics")}, record["sha256"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as err:
        raise CorruptResultError(f"result file {path} is unreadable ({err}); {_fix(path)}") from None


def _checked(path: Path, body: dict, sha256: str) -> dict:
    """`body` if it hashes to the recorded `sha256`; an error naming the file otherwise."""
    if hashlib.sha256(canonical(body).encode()).hexdigest() != sha256:
        raise CorruptResultError(f"result file {path} fails its checksum (truncated or edited); {_fix(path)}")
    return body
