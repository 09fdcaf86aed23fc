"""The recurrent report's languages from Tatoeba's official export (online), in the local copy's shape.

The report's configs list `spa por ita fra ron deu cmn rus hin ara`; the local copy
(`../shared/data/tatoeba`, the Tatoeba/tatodet sample) holds other languages and is what the
committed figures use. With internet access, `python -m lopcore data fetch --dataset tatoeba_report`
downloads Tatoeba's per-language sentence exports and keeps, per language, 1000 training and 200 test
sentences, disjoint: duplicates dropped (the lowest id kept), sorted by id, then drawn by a generator
seeded from (seed, language). They are written as `<lang>_1000.csv` and `testset.csv`
(`id<TAB>lang<TAB>text`, the local copy's format) into `<cache>/data/tatoeba_report/` with a manifest
of their sha256s, which every later read verifies. The export grows, so fetches on different days
can differ; the manifest records the export files' sha256s and the date.
"""

from __future__ import annotations

import bz2
import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Sequence

import torch

from . import data as image_data
from .data import DataError, DataUnreachable
from .tasks import generator

REPORT_LANGUAGES = ("spa", "por", "ita", "fra", "ron", "deu", "cmn", "rus", "hin", "ara")
EXPORT_URL = "https://downloads.tatoeba.org/exports/per_language/{lang}/{lang}_sentences.tsv.bz2"
FOLDER, MANIFEST, TEST_FILE = "tatoeba_report", "manifest.json", "testset.csv"
TRAIN, TEST = 1000, 200


def folder() -> Path:
    """Where the fetched sentences live: `$LOPCORE_DATA/tatoeba_report` when that exists, else the cache."""
    if os.environ.get("LOPCORE_DATA"):
        candidate = Path(os.environ["LOPCORE_DATA"]).expanduser() / FOLDER
        if candidate.is_dir():
            return candidate
    return image_data.cache_dir() / "data" / FOLDER


def pinned_sha256(where: Path) -> dict[str, str]:
    """{file name: sha256} from the folder's manifest; an error saying how to fetch it when absent."""
    fix = "fetch it (online) with `python -m lopcore data fetch --dataset tatoeba_report`"
    try:
        return json.loads((where / MANIFEST).read_text())["files"]
    except FileNotFoundError:
        raise DataError(f"the report's Tatoeba languages are not at {where}; {fix}") from None
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise DataError(f"{where / MANIFEST} is unreadable ({err}); delete {where} and {fix}") from None


def _download(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read()
    except OSError as e:  # URLError, HTTPError and socket timeouts are all OSErrors
        cls = DataError if isinstance(e, urllib.error.HTTPError) else DataUnreachable
        raise cls(
            f"cannot download {url}: {e}. The official Tatoeba export needs internet access; offline, "
            f"the figures use the local copy (../shared/data/tatoeba)."
        ) from e


def sample(rows: list[tuple[int, str, str]], lang: str, seed: int) -> tuple[list, list]:
    """(train, test) rows of one language: duplicates dropped (lowest id kept), sorted by id, then
    TRAIN + TEST distinct sentences drawn by a generator seeded from (seed, lang)."""
    first = {}
    for row in sorted(rows):
        first.setdefault(row[2], row)
    unique = sorted(first.values())
    if len(unique) < TRAIN + TEST:
        raise DataError(
            f"the Tatoeba export of {lang!r} has {len(unique)} distinct sentences; {TRAIN + TEST} are needed"
        )
    order = torch.randperm(len(unique), generator=generator(seed, "tatoeba_report", lang)).tolist()
    picked = [unique[i] for i in order[: TRAIN + TEST]]
    return picked[:TRAIN], picked[TRAIN:]


def fetch(
    languages: Sequence[str] = REPORT_LANGUAGES, dest: Path | None = None, url: str = EXPORT_URL, seed: int = 0
) -> Path:
    """Download, sample and write the languages' sentences (see the module doc); returns the folder.
    Built beside `dest` and renamed into place, so a reader never sees half of it."""
    dest = Path(dest) if dest is not None else folder()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        exports, test_rows = {}, []
        for lang in languages:
            raw = _download(url.format(lang=lang))
            exports[lang] = {"url": url.format(lang=lang), "sha256": hashlib.sha256(raw).hexdigest()}
            rows = []
            for line in bz2.decompress(raw).decode("utf-8").splitlines():
                parts = line.split("\t", 2)
                if len(parts) == 3 and parts[0].isdigit() and parts[2].strip():
                    rows.append((int(parts[0]), lang, parts[2]))
            train, test = sample(rows, lang, seed)
            _write(tmp / f"{lang}_{TRAIN}.csv", train)
            test_rows += test
        _write(tmp / TEST_FILE, test_rows)
        files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(tmp.glob("*.csv"))}
        manifest = {
            "files": files,
            "exports": exports,
            "languages": list(languages),
            "seed": seed,
            "train_per_language": TRAIN,
            "test_per_language": TEST,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
        tmp.chmod(0o755)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _write(path: Path, rows) -> None:
    path.write_text("".join(f"{i}\t{lang}\t{text}\n" for i, lang, text in rows), encoding="utf-8")
