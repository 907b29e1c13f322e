"""Import the plugin from this source tree (a third party would ``pip install -e .``),
for these tests only: the rest of a run must not discover it."""

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def motd_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent))
