"""Fixtures of the beancounters tests."""

from __future__ import annotations

import pytest

from vzcore.testing.contracts import PROFILES
from vzcore.testing.pytest_plugin import Vzctl


@pytest.fixture(params=sorted(PROFILES))
def any_ct(request: pytest.FixtureRequest, vzctl: Vzctl) -> int:
    """CT 101 from the busybox template, in a user namespace and privileged (the limits
    that live in the CT's namespaces and processes must hold for both)."""
    vzctl("create", 101, "--ostemplate", "busybox", *PROFILES[request.param])
    return 101
