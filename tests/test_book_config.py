"""Cheap checks of the Jupyter Book configuration (no build): `make book` builds it for real."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())


def toc_files(node) -> list[str]:
    """Every `file:` entry of a jb-book table of contents, root first."""
    found = []
    if isinstance(node, dict):
        for key in ("root", "file"):
            if key in node:
                found.append(node[key])
        for value in node.values():
            if isinstance(value, (list, dict)):
                found.extend(toc_files(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(toc_files(item))
    return found


def source_of(name: str) -> Path | None:
    """The file the book builds for a toc entry: its .ipynb under notebooks/ (a text notebook's .md
    beside it is excluded from the build), else its .md or .ipynb, whichever exists."""
    exts = (".ipynb",) if name.startswith("notebooks/") else (".md", ".ipynb")
    found = [ROOT / f"{name}{ext}" for ext in exts if (ROOT / f"{name}{ext}").is_file()]
    return found[0] if len(found) == 1 else None


def book_sources() -> list[Path]:
    return [p for p in map(source_of, toc_files(TOC)) if p is not None]


def test_toc_is_jb_book_and_files_exist():
    assert TOC["format"] == "jb-book"
    names = toc_files(TOC)
    assert names[0] == "book/intro" and len(names) == len(set(names))
    for name in names:
        assert source_of(name) is not None, f"_toc.yml: {name} needs exactly one source file"
    assert "notebooks/*.md" in CONFIG["exclude_patterns"]  # a page's text side is not a second document


def test_execution_off():
    # a bare YAML `off` parses as False, which Jupyter Book also reads as "off"
    assert CONFIG["execute"]["execute_notebooks"] in ("off", False)


def test_only_toc_files_and_excludes():
    assert CONFIG["only_build_toc_files"] is True
    excluded = set(CONFIG["exclude_patterns"])
    for pattern in ("_build", ".venv", ".*", "tests", "results", "README.md", "**.ipynb_checkpoints"):
        assert pattern in excluded, pattern


def test_mathjax_is_local():
    sphinx = CONFIG["sphinx"]["config"]
    path = sphinx["mathjax_path"]
    assert not re.match(r"^([a-z]+:)?//", path), f"mathjax_path must be a local file, not {path}"
    assert path.endswith(".js") and not path.startswith("/")
    # relative mathjax_path is resolved inside the built _static/, filled from html_static_path
    assert sphinx["html_static_path"] == ["book/_static"]
    assert f"book/_static/{path.split('/')[0]}/" in (ROOT / ".gitignore").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^MATHJAX_DIR\s*:?=\s*book/_static/" + re.escape(path.split("/")[0]) + r"\s*$", makefile, re.M)


def test_no_remote_services():
    html = CONFIG.get("html", {})
    assert not html.get("analytics", {}).get("google_analytics_id")
    assert not any(html.get("comments", {}).values())
    launch = CONFIG.get("launch_buttons", {})
    assert not launch.get("thebe")
    assert not any(launch.get(k) for k in ("binderhub_url", "jupyterhub_url", "colab_url", "deepnote_url"))


def test_bibliography():
    bibfiles = CONFIG["bibtex_bibfiles"]
    assert bibfiles and all((ROOT / f).is_file() for f in bibfiles)
    keys = set()
    for f in bibfiles:
        keys |= set(re.findall(r"^@\w+\{([^,\s]+),", (ROOT / f).read_text(), re.M))
    texts = {p: p.read_text() for p in book_sources()}
    cited = set()
    for text in texts.values():
        for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text):
            cited |= {k.strip() for k in group.split(",")}
    assert not cited - keys, f"cited but not in {bibfiles}: {sorted(cited - keys)}"
    # one bibliography directive for the whole book: a second one duplicates citations (a warning)
    directives = sum(len(re.findall(r"\{bibliography\}", t)) for t in texts.values())
    assert directives == 1, f"expected one {{bibliography}} directive in the book, found {directives}"


def test_extensions_are_jupyter_books_without_thebe():
    """`sphinx.config.extensions` replaces Jupyter Book's list: keep it in step with the installed one."""
    from jupyter_book.config import get_default_sphinx_config

    defaults = get_default_sphinx_config()["extensions"]
    ours = CONFIG["sphinx"]["config"]["extensions"]
    assert "sphinx_thebe" in defaults and "sphinx_thebe" not in ours
    assert ours == [e for e in defaults if e != "sphinx_thebe"] + ["sphinxcontrib.bibtex"]


def test_book_prose_holds_no_control_characters():
    """A backslash escape written through a Python string (\\b in \\bar, \\t in \\text) turns into a
    control character that MathJax then fails on: it happened twice, so it is checked."""
    import json

    control = re.compile(r"[\x00-\x09\x0b-\x1f]")
    texts = {p: p.read_text() for p in [*ROOT.glob("book/*.md"), ROOT / "README.md"]}
    for nb in ROOT.glob("notebooks/*.ipynb"):
        cells = json.loads(nb.read_text())["cells"]
        texts[nb] = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    bad = {str(p.relative_to(ROOT)): repr(control.search(t).group()) for p, t in texts.items() if control.search(t)}
    assert not bad, f"control characters in: {bad}"
