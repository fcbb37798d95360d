"""Real-browser test of the rendered book (`make book`): Jupyter Book 1.x + headless chromium.

The book is built as `make book` builds it (book/ plus the committed notebooks/*.ipynb, staged
into a temporary folder, never re-executed) and served by a throw-away ``http.server`` on
127.0.0.1. Playwright's Python driver runs Debian's ``/usr/bin/chromium`` (no ``playwright
install``), with every request to another host refused, so the test is offline. It checks that
the landing page lists the chapters in reading order and that each chapter page shows its
figures (``img`` elements that decoded, ``naturalWidth > 0``). The figure check passes only
once the committed notebooks carry the outputs of a full `make notebooks` run.

Skipped when playwright, chromium or jupyter-book is missing, unless ``NST_REQUIRE_BROWSER=1``
(CI), where that is a failure. Screenshots go to ``$NB_BOOK_SHOTS`` (default: a folder in the
temp dir); ``$NB_BOOK_NOTEBOOKS`` builds the book from another folder of executed notebooks.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from browser import chromium_page, playwright_or_skip
from helpers import ROOT

pytestmark = pytest.mark.browser

BOOK = ROOT / "book"
NOTEBOOKS = Path(os.environ.get("NB_BOOK_NOTEBOOKS", ROOT / "notebooks"))
CHAPTERS = ["01_content_reconstruction", "02_style_reconstruction", "03_style_transfer",
            "04_controlling_perceptual_factors"]
SHOTS = Path(os.environ.get("NB_BOOK_SHOTS", Path(tempfile.gettempdir()) / "nb-book-shots"))
BUILD_TIMEOUT_S = 300
#: The same command as `make book`'s, run by this interpreter.
JUPYTER_BOOK = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()"]


@pytest.fixture(scope="module")
def sync_api():
    return playwright_or_skip([("jupyter_book", "pip install -e '.[test]'")])


@pytest.fixture(scope="module")
def book_html(sync_api, tmp_path_factory) -> Path:
    """Stage book/ and the notebooks as `make book` does, build, return the HTML folder."""
    src = tmp_path_factory.mktemp("book")
    shutil.copytree(BOOK, src, dirs_exist_ok=True)
    (src / "notebooks").mkdir()
    for notebook in NOTEBOOKS.glob("*.ipynb"):  # the .ipynb only: each paired .md would be a second copy
        shutil.copy2(notebook, src / "notebooks")
    proc = subprocess.run([*JUPYTER_BOOK, "build", "--warningiserror", "--keep-going", str(src)],
                          capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False)
    assert proc.returncode == 0, f"jupyter-book build failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    html = src / "_build" / "html"
    assert (html / "intro.html").is_file(), proc.stdout[-3000:]
    return html


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # the base class's signature; silences the request log
        pass


@pytest.fixture(scope="module")
def site(book_html):
    """The built book over http on 127.0.0.1 (a random port); stopped after the module."""
    handler = functools.partial(_QuietHandler, directory=str(book_html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def page(sync_api, site, tmp_path):
    viewport = {"width": 1280, "height": 1000}
    with chromium_page(sync_api, tmp_path / "chromium-profile", viewport, 30_000) as (ctx, pg):
        # offline: only our own server answers (MathJax too: the book ships its own copy)
        ctx.route(re.compile(r"^(?!http://127\.0\.0\.1:)"), lambda route: route.abort())
        yield pg


def _shot(page, name: str, full_page: bool = False) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=full_page)
    print(f"screenshot: {path}")
    return path


def test_landing_page_lists_the_chapters_in_order(sync_api, site, page):
    expect = sync_api.expect
    page.goto(f"{site}/index.html")  # the redirect a code host or a web server would serve first
    expect(page).to_have_url(re.compile(r"/intro\.html$"))
    expect(page.locator("article h1").first).to_contain_text("Neural style transfer, step by step")
    # the chapter list on the page itself ({tableofcontents}), then the sidebar: both in _toc.yml's order
    on_page = page.locator("article .toctree-wrapper a.reference")
    sidebar = page.locator("nav.bd-docs-nav a.reference")
    for links in (on_page, sidebar):
        hrefs = [links.nth(i).get_attribute("href").split("#")[0] for i in range(links.count())]
        chapters = [Path(href).stem for href in hrefs if "notebooks/" in href]
        assert chapters[:len(CHAPTERS)] == CHAPTERS, hrefs
    titles = page.locator("article .toctree-wrapper > ul > li > a.reference").all_inner_texts()
    assert [t.split("·")[0].strip() for t in titles[:3]] == ["1", "2", "3"], titles
    _shot(page, "1-landing.png")


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_page_shows_its_figures(sync_api, site, page, chapter):
    expect = sync_api.expect
    page.goto(f"{site}/notebooks/{chapter}.html")
    expect(page.locator("article h1").first).to_be_visible()
    outputs = page.locator("article .cell_output")
    expect(outputs.first).to_be_attached()
    figures = page.locator("article .cell_output img")
    assert figures.count() > 0, (f"{chapter}: no figure on the page; the committed notebook has no image "
                                 "outputs (run `make notebooks`, see tests/test_notebook_outputs.py)")
    # every figure decoded: loaded and with real pixels (a broken or empty image has naturalWidth 0)
    widths = figures.evaluate_all(
        "imgs => Promise.all(imgs.map(i => i.decode().then(() => i.naturalWidth, () => 0)))")
    assert all(w > 0 for w in widths), f"{chapter}: figures that did not load: {widths}"
    assert page.locator("article .cell_output", has_text="Traceback").count() == 0
    figures.first.scroll_into_view_if_needed()
    _shot(page, f"2-{chapter}.png")


def test_equations_render_offline(sync_api, site, page):
    """Chapter 2's equations are typeset by the book's own MathJax, with other hosts refused: no
    TeX source left on the page, and the script comes from the site itself."""
    expect = sync_api.expect
    page.goto(f"{site}/notebooks/02_style_reconstruction.html")
    typeset = page.locator("article mjx-container")
    expect(typeset.first).to_be_visible(timeout=30_000)
    assert typeset.count() > 10, typeset.count()
    scripts = page.locator("script[src*='mathjax' i]").evaluate_all("s => s.map(e => e.src)")
    assert scripts and all(src.startswith(site) for src in scripts), scripts
    untypeset = page.locator("article .math:not(:has(mjx-container))")
    assert untypeset.count() == 0, untypeset.first.inner_text()
    page.locator("article mjx-container[display='true']").first.scroll_into_view_if_needed()
    _shot(page, "3-equations.png")


def test_solutions_are_folded_under_their_checks(sync_api, site, page):
    """Chapter 2's "Your turn" solutions: closed <details> blocks whose code shows on a click."""
    expect = sync_api.expect
    page.goto(f"{site}/notebooks/02_style_reconstruction.html")
    solutions = page.locator("article details", has=page.locator("summary", has_text="Solution"))
    assert solutions.count() == 2, solutions.count()
    first = solutions.first
    code = first.locator("pre")
    assert first.get_attribute("open") is None
    expect(code).to_be_hidden()
    first.scroll_into_view_if_needed()
    _shot(page, "4-solution-folded.png")
    first.locator("summary").click()
    expect(code).to_be_visible()
    assert "def gram_matrix(features):" in code.inner_text()
    _shot(page, "5-solution-open.png")
