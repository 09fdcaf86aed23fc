"""Checkpoints of a run group in progress, so that an interrupted group resumes bit-identically.

The engine (`engine.run_group`) writes one after every task to
``<store root>/.checkpoints/<group key>.pt`` (`store.checkpoint_path`), where the group key is a
hash of the canonical specs of the group's runs, in order. A checkpoint holds everything the rest
of the group depends on:

* the learner state: every tensor of the state dict (weights, biases, persistent state ``h``, the
  ``chain`` of saved activations the truncated gradient still reaches, the step counter ``t``) and
  the states of the learner's random generators (the ``noise`` generators of the random-state
  ablation). The engine's own randomness needs nothing: task streams are pure functions of
  (seed, task index).
* the per-task metric rows measured so far, the next task's index, the wall time spent so far.

It is restored into a freshly initialised state by in-place copies (`restore_state_`), so tensors
that are views of one another stay views. Resuming is therefore exact: a group killed at any moment (SIGKILL
included) and started again ends with the same bits as one that ran through.

Integrity. A file is written atomically (temp file, fsync, rename, fsync of the folder), so a kill
leaves the previous checkpoint or the new one, never half of one. Its first line is a JSON header
with the sha256 and length of the payload that follows (a `torch.save` blob, read back with
``weights_only=True``: a checkpoint is data, never code). A truncated or edited file is an
error naming the file and the fix (`CorruptCheckpointError`). A well-formed checkpoint made for
other runs (other specs, another device type or torch version) is ignored with a
`CheckpointWarning` and overwritten, never used.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from pathlib import Path
from typing import Sequence

import torch

from .store import IntegrityError, canonical

FORMAT = 1
MAGIC = "lopcore-checkpoint"


class CorruptCheckpointError(IntegrityError):
    """A checkpoint that fails to parse or whose checksum does not match its content."""


class CheckpointWarning(UserWarning):
    """A checkpoint was found but not used (it belongs to other runs or another setting)."""


class StaleCheckpoint(Exception):
    """Internal: the checkpoint does not fit the group being run (the reason is the message)."""


# --- packing a learner state ----------------------------------------------------------------


def _whole(t: torch.Tensor) -> bool:
    return t.storage_offset() == 0 and t.untyped_storage().nbytes() == t.numel() * t.element_size()


def pack_state(state) -> object:
    """A learner state as plain containers of tensors that `torch.save` stores compactly.

    Tensors that own their storage are saved as they are; views into a tensor the state also holds
    share its storage in the file too; any other view (a batch
    held in the ``chain`` is a slice of a 4096-example chunk) is cloned, so the file holds only the
    bytes the state uses. Generators become ``{"__generator__": their state}``.
    """
    owners = set()

    def find_owners(obj):
        if isinstance(obj, torch.Tensor):
            if _whole(obj):
                owners.add(obj.untyped_storage().data_ptr())
        elif isinstance(obj, dict):
            for v in obj.values():
                find_owners(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                find_owners(v)

    def pack(obj):
        if isinstance(obj, torch.Tensor):
            obj = obj.detach()
            return obj if obj.untyped_storage().data_ptr() in owners else obj.clone()
        if isinstance(obj, torch.Generator):
            return {"__generator__": obj.get_state()}
        if isinstance(obj, dict):
            return {k: pack(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(pack(v) for v in obj)
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        raise TypeError(f"cannot checkpoint a learner state holding {type(obj).__name__}")

    find_owners(state)
    return pack(state)


def _unpack(obj, device):
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        if "__generator__" in obj:
            raise StaleCheckpoint("a random generator in the checkpoint has no counterpart in the state")
        return {k: _unpack(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unpack(v, device) for v in obj)
    return obj


# Entries a learner's state no longer holds whose values a checkpoint also keeps elsewhere: dropped
# on restore, so older checkpoints still resume. "first_layer": the persistent state's whole first
# layer, of which weights[0] and w_h were views (they are separate matrices now).
RETIRED_ENTRIES = {"first_layer"}


def restore_state_(fresh: dict, saved: dict) -> dict:
    """Load a packed state into a freshly initialised one of the same learner and runs, in place.

    Tensors are copied into the fresh tensors (`copy_`), so views stay views of what they viewed;
    generators get their saved state; lists of equal length are restored item by item; everything
    else (the step counter, the ``chain`` of saved steps) is taken from the checkpoint, its tensors
    moved to the fresh state's device. A structural mismatch raises `StaleCheckpoint`.
    """
    device = next(_tensors(fresh)).device

    def restore(f, s, where):
        if isinstance(f, torch.Tensor):
            if not isinstance(s, torch.Tensor) or s.shape != f.shape or s.dtype != f.dtype:
                raise StaleCheckpoint(f"{where}: expected a {f.dtype} tensor of shape {tuple(f.shape)}")
            return f.copy_(s)
        if isinstance(f, torch.Generator):
            if not isinstance(s, dict) or "__generator__" not in s:
                raise StaleCheckpoint(f"{where}: expected a generator state")
            f.set_state(s["__generator__"])
            return f
        if isinstance(f, dict):
            if isinstance(s, dict):
                s = {k: v for k, v in s.items() if not (k in RETIRED_ENTRIES and k not in f)}
            if not isinstance(s, dict) or set(s) != set(f):
                raise StaleCheckpoint(f"{where}: the state's entries differ")
            for k in f:
                f[k] = restore(f[k], s[k], f"{where}[{k!r}]")
            return f
        if isinstance(f, list) and f:  # a list the fresh state fills (weights, generators): item by item
            if not isinstance(s, list) or len(s) != len(f):
                raise StaleCheckpoint(f"{where}: expected a list of {len(f)} items")
            for i in range(len(f)):
                f[i] = restore(f[i], s[i], f"{where}[{i}]")
            return f
        if type(f) is not type(s) and not (f is None or s is None):
            raise StaleCheckpoint(f"{where}: expected {type(f).__name__}, found {type(s).__name__}")
        return _unpack(s, device)

    return restore(fresh, saved, "state")


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)


# --- files ------------------------------------------------------------------------------------


def _fix(path: Path) -> str:
    return (
        f"delete it (rm {path}) and rerun: the group restarts from its first task "
        f"(finished runs in the results store are not affected)"
    )


def save(path: Path, payload: dict) -> None:
    """Write a checkpoint atomically: header line + payload, temp file, fsync, rename, fsync folder."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    blob = buffer.getvalue()
    header = {
        "magic": MAGIC,
        "format": FORMAT,
        "task": payload["task"],
        "bytes": len(blob),
        "sha256": hashlib.sha256(blob).hexdigest(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(json.dumps(header, sort_keys=True).encode() + b"\n")
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def read_header(path: Path) -> dict:
    """The header of a checkpoint (task index, payload length and sha256), without verifying it."""
    with open(path, "rb") as f:
        line = f.readline()
    try:
        header = json.loads(line)
        if header.get("magic") != MAGIC:
            raise ValueError("not a lopcore checkpoint")
        return header
    except (ValueError, AttributeError) as err:
        raise CorruptCheckpointError(f"checkpoint {path} has no valid header ({err}); {_fix(path)}") from None


def load(path: Path) -> dict:
    """A checkpoint's payload, after verifying its length and sha256 (CorruptCheckpointError if not)."""
    path = Path(path)
    raw = path.read_bytes()
    header = read_header(path)
    blob = raw.partition(b"\n")[2]
    if header.get("format") != FORMAT:
        raise CorruptCheckpointError(
            f"checkpoint {path} has format {header.get('format')!r}, this lopcore reads format {FORMAT}; {_fix(path)}"
        )
    if len(blob) != header.get("bytes") or hashlib.sha256(blob).hexdigest() != header.get("sha256"):
        raise CorruptCheckpointError(f"checkpoint {path} fails its checksum (truncated or edited); {_fix(path)}")
    try:
        payload = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as err:  # a checksummed blob that does not load: written by something else
        raise CorruptCheckpointError(f"checkpoint {path} does not load ({err}); {_fix(path)}") from None
    if not isinstance(payload, dict) or payload.get("task") != header["task"]:
        raise CorruptCheckpointError(f"checkpoint {path}: header and content disagree; {_fix(path)}")
    return payload


def load_matching(path: Path, specs: Sequence[dict], device: torch.device) -> dict | None:
    """The checkpoint at `path` if it was made for exactly these runs on this kind of device with
    this torch version; None (with a CheckpointWarning) if it was not, or if there is none.
    A corrupt file raises CorruptCheckpointError."""
    _remove_orphaned_temp_files(path)
    if not path.exists():
        return None
    payload = load(path)
    reasons = []
    if canonical(payload.get("specs")) != canonical(list(specs)):
        reasons.append("it was made for other run specs")
    if payload.get("device_type") != torch.device(device).type:
        reasons.append(
            f"it was computed on {payload.get('device_type')!r}, this run uses {torch.device(device).type!r}"
        )
    if payload.get("torch") != str(torch.__version__):
        reasons.append(f"it was computed with torch {payload.get('torch')}, this is {torch.__version__}")
    if reasons:
        warnings.warn(
            f"ignoring checkpoint {path}: {'; '.join(reasons)}. The group starts from its first "
            f"task and this file will be overwritten.",
            CheckpointWarning,
            stacklevel=3,
        )
        return None
    return payload


def remove(path: Path) -> None:
    """Delete a group's checkpoint (after its results are saved)."""
    Path(path).unlink(missing_ok=True)


def _remove_orphaned_temp_files(path: Path) -> None:
    """Temp files of this checkpoint left by a process that was killed while writing."""
    for tmp in path.parent.glob(f"{path.name}.*.tmp"):
        try:
            pid = int(tmp.name.split(".")[-2])
        except ValueError:
            continue
        if pid == os.getpid() or not _alive(pid):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process
        return True
    return True
