"""Shared fixtures."""

from pathlib import Path

import pytest

from lopcore import data


@pytest.fixture
def scratch_store(tmp_path, monkeypatch):
    """A scratch folder whose results/ is the results store for this test (never the committed one),
    with computing allowed (`make test` sets LOPCORE_NO_COMPUTE=1 for the committed notebooks)."""
    monkeypatch.setenv("LOPCORE_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv("LOPCORE_NO_COMPUTE", raising=False)
    return tmp_path


@pytest.fixture
def scratch(scratch_store):
    """The scratch results store's root itself (`scratch_store`'s results/ folder)."""
    return scratch_store / "results"


@pytest.fixture
def isolated(monkeypatch, tmp_path):
    """Empty LOPCORE_DATA and cache, no shared copy, fresh memo, retries without their waits: each
    test builds the data world it needs."""
    for var in ("LOPCORE_DATA", "LOPCORE_CACHE"):
        (tmp_path / var).mkdir()
        monkeypatch.setenv(var, str(tmp_path / var))
    monkeypatch.setattr(data, "_SHARED", tmp_path / "no-shared")
    monkeypatch.setattr(data.time, "sleep", lambda s: None)
    data.load.cache_clear()
    yield tmp_path
    data.load.cache_clear()


@pytest.fixture(scope="module")
def mnist_source() -> Path:
    """A real, complete MNIST folder (found the normal way, fetched if need be)."""
    data.load("mnist")
    return data.locate("mnist")
