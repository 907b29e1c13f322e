"""Fixtures of the beancounters tests."""

from __future__ import annotations

import pytest

from vzcore.testing.contracts import PROFILES, profile_options
from vzcore.testing.pytest_plugin import Vzctl, VzEnv


@pytest.fixture(params=sorted(PROFILES))
def any_ct(request: pytest.FixtureRequest, vz_env: VzEnv, vzctl: Vzctl) -> int:
    """CT 101 from the busybox template, in a user namespace and privileged (the limits
    that live in the CT's namespaces and processes must hold for both)."""
    vzctl("create", 101, "--ostemplate", "busybox", *profile_options(vz_env, request.param))
    return 101
