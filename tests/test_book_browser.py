"""The built book in a real browser: `make book`, then every page in headless Chromium.

Each page must load without console errors or missing local files; each figure page must show its
figure; every page with mathematics must have it typeset by the local MathJax (MathJax 3 CHTML
replaces each formula by an `mjx-container` element); and no relative link or resource may point at a
missing file. A screenshot of the Figure 2 page is saved to tests/artifacts/fig2.png (gitignored).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
SKIPPED_PAGES = {"genindex.html", "search.html"}  # generated indexes, not content
NOT_PAGES = ("_static", "_sources", "_images")  # theme template fragments and assets
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=8000",
    "--enable-logging=stderr",
    "--v=0",
]
CONSOLE_ERRORS = re.compile(r"Failed to load resource|Uncaught|ERR_FILE_NOT_FOUND|net::ERR_")


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


def install_chromium() -> str:
    """Chromium, installed with apt-get where it is missing and we may (CI runs as root); or why not."""
    if not shutil.which("apt-get") or os.geteuid() != 0:
        return "chromium is not installed and apt-get is unavailable (or not root) to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "install", "-y", "-q", "chromium"],
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "chromium"],
    ):
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
        if command[1] == "install" and result.returncode == 0 and find_chromium():
            return ""
    return f"chromium is not installed and `apt-get install -y chromium` failed: {result.stderr[-500:]}"


def chromium(browser: str, page: Path, *extra: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="lopcore-chromium-") as profile:
        return subprocess.run(
            ["timeout", "60", browser, *FLAGS, f"--user-data-dir={profile}", *extra, page.as_uri()],
            capture_output=True,
            text=True,
            timeout=90,
        )


class Links(HTMLParser):
    """`href` and `src` of every element, and the `<img>` sources."""

    def __init__(self):
        super().__init__()
        self.targets: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("href", "src"):
            if attrs.get(key):
                self.targets.append(attrs[key])
        if tag == "img" and attrs.get("src"):
            self.images.append(attrs["src"])


def parse(dom: str) -> Links:
    links = Links()
    links.feed(dom)
    return links


def local_target(page: Path, url: str) -> Path | None:
    """The file a relative URL of `page` points at (fragment and query dropped); None if not local."""
    parts = urlsplit(url)
    if parts.scheme or parts.netloc or not parts.path:  # http:, data:, mailto:, //host, "#anchor"
        return None
    return (page.parent / unquote(parts.path)).resolve()


@pytest.fixture(scope="module")
def rendered() -> dict[Path, tuple[str, str]]:
    """{page: (rendered DOM, browser console log)} for every page of a fresh `make book`."""
    browser = find_chromium()
    if browser is None:
        reason = install_chromium()
        browser = find_chromium()
        if browser is None:
            pytest.skip(reason)
    build = subprocess.run(["make", "book"], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert build.returncode == 0, f"make book failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
    pages = sorted(
        p for p in HTML.rglob("*.html") if p.name not in SKIPPED_PAGES and p.relative_to(HTML).parts[0] not in NOT_PAGES
    )
    assert HTML / "index.html" in pages and HTML / "notebooks" / "fig2.html" in pages
    out = {}
    for page in pages:
        redirect = re.search(r'http-equiv="Refresh" content="0; url=([^"]+)"', page.read_text(), re.I)
        if redirect:  # index.html only forwards to the root page, which is checked as itself
            target = local_target(page, redirect.group(1))
            assert target in pages, f"{page.relative_to(HTML)} redirects to a missing page {redirect.group(1)}"
            continue
        result = chromium(browser, page, "--dump-dom")
        assert result.returncode == 0 and "</html>" in result.stdout, (
            f"chromium failed on {page} (exit {result.returncode}):\n{result.stderr[-2000:]}"
        )
        out[page] = (result.stdout, result.stderr)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "fig2.png"
    shot.unlink(missing_ok=True)
    result = chromium(
        browser,
        HTML / "notebooks" / "fig2.html",
        f"--screenshot={shot}",
        "--window-size=1280,1800",
        "--hide-scrollbars",
    )
    assert result.returncode == 0 and shot.is_file(), f"no screenshot of fig2:\n{result.stderr[-2000:]}"
    return out


def test_every_page_loads_without_console_errors(rendered):
    for page, (dom, log) in rendered.items():
        errors = [line for line in log.splitlines() if "CONSOLE" in line and CONSOLE_ERRORS.search(line)]
        errors += [line for line in log.splitlines() if "ERR_FILE_NOT_FOUND" in line]
        assert not errors, f"{page.relative_to(HTML)}:\n" + "\n".join(errors[:10])
        assert re.search(r"<title>[^<]*\S[^<]*</title>", dom), page


def test_figure_pages_show_their_figures(rendered):
    # the scoreboard and the Performance page are tables
    figures = [p for p in rendered if p.parent.name == "notebooks" and p.stem not in ("claims", "performance")]
    assert {p.stem for p in figures} >= {
        "fig2",
        "fig3",
        "fig4",
        "fig5",
        "fig6",
        "fig7",
        *(f"rfig{i}" for i in range(1, 7)),
    }
    for page in figures:
        images = parse(rendered[page][0]).images
        pngs = [src for src in images if src.startswith("data:image/png")]
        for src in images:
            target = local_target(page, src)
            if target is not None:
                assert target.is_file(), f"{page.relative_to(HTML)}: image {src} is missing"
                head = target.read_bytes()[:8]
                if head == b"\x89PNG\r\n\x1a\n" and target.stat().st_size > 10_000:
                    pngs.append(src)
        assert pngs, f"{page.relative_to(HTML)} shows no figure (no PNG image)"


def test_math_is_typeset_by_mathjax(rendered):
    with_math = []
    for page, (dom, _) in rendered.items():
        formulas = len(re.findall(r'class="math[ "]', page.read_text()))  # as Sphinx wrote the page
        if formulas:
            with_math.append(page.relative_to(HTML).as_posix())
            typeset = len(re.findall(r"<mjx-container\b", dom))
            assert typeset >= formulas, f"{page.relative_to(HTML)}: {typeset} of {formulas} formulas typeset"
            assert "<mjx-merror" not in dom, f"{page.relative_to(HTML)}: a formula failed to typeset"
    assert {"book/intro.html", "book/methods.html"} <= set(with_math), with_math


def test_no_internal_link_is_broken(rendered):
    broken = []
    for page, (dom, _) in rendered.items():
        for url in parse(dom).targets:
            target = local_target(page, url)
            if target is not None and not target.exists():
                broken.append(f"{page.relative_to(HTML)}: {url}")
    assert not broken, "broken links:\n" + "\n".join(sorted(set(broken)))


def test_screenshot_of_fig2_is_saved(rendered):
    shot = ARTIFACTS / "fig2.png"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
