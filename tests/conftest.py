"""Shared fixtures."""

import pytest


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
