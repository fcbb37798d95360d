"""The engine room's tests (``nst_utils.engine``): every test in this folder is marked ``engine``,
so ``pytest -m engine`` runs just them and ``pytest -m "not engine"`` skips them."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.engine)
