"""Helpers for the book's pages (the notebooks), kept out of the pages themselves."""

from __future__ import annotations


def glue(name: str, value) -> None:
    """Store `value` under `name` in the executing notebook for the book to paste elsewhere (MyST-NB's
    `{glue:text}` role, e.g. in book/intro.md), without showing it; a no-op where MyST-NB (which
    comes with jupyter-book) is not installed, so a page still runs under plain papermill."""
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return
    # numpy scalars as plain Python numbers: the glued text is their repr, which {glue:text}'s format reads
    myst_glue(name, value.item() if hasattr(value, "item") else value, display=False)
