"""Browser tests: headless Chromium (Debian ``chromium``) driven over the DevTools pipe.

Skipped when Chromium is not installed, except in CI (``CI`` set), where its absence fails.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))  # artifact_factory

from cdp import Browser  # noqa: E402

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def _binary() -> str | None:
    found = [shutil.which(name) for name in CHROMIUM]
    return next((path for path in found if path), None)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    binary = _binary()
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is not installed (apt-get install -y chromium)")
        pytest.skip("Chromium is not installed")
    with Browser(binary, tmp_path_factory.mktemp("chromium-profile")) as chromium:
        yield chromium
