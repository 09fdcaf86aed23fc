"""Pages written as MyST-markdown text notebooks (notebooks/*.md, edited by people) must match their
committed, executed .ipynb (read by nbval and the book) cell for cell: an edit to one side only fails."""

from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
TEXT_PAGES = sorted((ROOT / "notebooks").glob("*.md"))


def cells(nb) -> list[tuple[str, str, tuple]]:
    """(type, source, tags) of every cell but papermill's injected parameters."""
    return [
        (c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", ())))
        for c in nb.cells
        if "injected-parameters" not in c.metadata.get("tags", ())
    ]


def test_there_are_text_pages():
    assert {p.stem for p in TEXT_PAGES} >= {"sensitivity", "boundary"}


@pytest.mark.parametrize("page", TEXT_PAGES, ids=lambda p: p.stem)
def test_the_text_page_and_its_executed_notebook_are_in_sync(page):
    paired = page.with_suffix(".ipynb")
    assert paired.is_file(), f"{paired.name} is missing: run `make page PAGE={page.stem}`"
    text, executed = cells(jupytext.read(page)), cells(nbformat.read(paired, as_version=4))
    assert text == executed, (
        f"{page.name} and {paired.name} differ: after editing either, run `make page PAGE={page.stem}`"
    )


def test_the_sync_check_notices_an_edit(tmp_path):
    page = TEXT_PAGES[0]
    nb = jupytext.read(page)
    nb.cells[0].source += "\nAn edit on the text side only."
    assert cells(nb) != cells(nbformat.read(page.with_suffix(".ipynb"), as_version=4))
