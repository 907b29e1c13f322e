"""Helpers of the beancounters acceptance tests."""

from __future__ import annotations

import json
from typing import Any

from vzcore.runtime import State
from vzcore.testing.pytest_plugin import Vzctl, VzEnv

MIB = 1024 * 1024
PAGE = 4096


def ubc(vzctl: Vzctl, ctid: int) -> dict[str, Any]:
    data: list[dict[str, Any]] = json.loads(vzctl("ubc", "-j", ctid).stdout)
    assert [d["ctid"] for d in data] == [ctid]
    return data[0]


def state(vz_env: VzEnv, ctid: int) -> State:
    loaded = State.load(vz_env.state(ctid), ctid)
    assert loaded is not None and loaded.cgroups is not None and loaded.init is not None
    return loaded
