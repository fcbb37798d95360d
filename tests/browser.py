"""What the two real-browser tests share: Debian's chromium driven by Playwright's Python API.

No ``playwright install``: Playwright launches ``/usr/bin/chromium`` (``NB_UI_CHROMIUM``). A test
module calls :func:`playwright_or_skip` from a module-scoped fixture; without playwright or
chromium it skips, unless ``NST_REQUIRE_BROWSER=1`` (CI), where it fails.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("NB_UI_CHROMIUM", "/usr/bin/chromium")
CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def missing(modules: Sequence[tuple[str, str]] = ()) -> str | None:
    """Why the browser tests cannot run here (``modules``: extra ``(module, how to get it)``), or None."""
    needed = [*modules, ("playwright.sync_api", "pip install playwright; no `playwright install` needed")]
    for module, hint in needed:
        try:
            importlib.import_module(module)
        except ImportError:
            return f"{module.split('.')[0]} is not installed ({hint})"
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} not found (apt-get install chromium)"
    return None


def playwright_or_skip(modules: Sequence[tuple[str, str]] = ()):
    """``playwright.sync_api``, or a skip (a failure under ``NST_REQUIRE_BROWSER=1``) naming what is
    missing."""
    reason = missing(modules)
    if reason and os.environ.get("NST_REQUIRE_BROWSER") == "1":
        pytest.fail(f"NST_REQUIRE_BROWSER=1 but {reason}")
    if reason:
        pytest.skip(reason)
    return importlib.import_module("playwright.sync_api")


@contextmanager
def chromium_page(sync_api, profile: Path, viewport: dict[str, int], timeout_ms: int) -> Iterator:
    """A page of a fresh headless chromium with its own profile folder, closed afterwards."""
    with sync_api.sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(profile), executable_path=CHROMIUM, headless=True, args=CHROME_ARGS, viewport=viewport)
        ctx.set_default_timeout(timeout_ms)
        try:
            yield ctx, ctx.pages[0] if ctx.pages else ctx.new_page()
        finally:
            ctx.close()
