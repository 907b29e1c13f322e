"""``vzctl status`` and the data behind vzlist: what is true of a CT right now."""

from __future__ import annotations

import os
from collections.abc import Collection
from typing import Any

import attrs

from vzcore.container import Container
from vzcore.engine import Engine
from vzcore.errors import ConfigError
from vzcore.linux.mounts import mountinfo
from vzcore.runtime import Run, State


@attrs.frozen
class CtStatus:
    """A CT's status, verified against the kernel (not just read from files)."""

    ctid: int
    exists: bool
    mounted: bool
    running: bool
    state: State | None

    def line(self) -> str:
        """vzctl's status line: ``CTID 101 exist mounted running``."""
        return (f"CTID {self.ctid} {'exist' if self.exists else 'deleted'} "
                f"{'mounted' if self.mounted else 'unmounted'} {'running' if self.running else 'down'}")

    @property
    def name(self) -> str:
        """vzlist's STATUS: running, mounted or stopped."""
        if self.running:
            return "running"
        return "mounted" if self.mounted else "stopped"


def mount_points() -> frozenset[str]:
    """Every mount point of this mount namespace (read once per vzlist)."""
    return frozenset(e.mount_point for e in mountinfo())


def status(engine: Engine, ct: Container, mounted: Collection[str] | None = None) -> CtStatus:
    state = engine.state(ct)
    points = mount_points() if mounted is None else mounted
    try:
        root = os.path.realpath(ct.root)
    except ConfigError:
        root = None  # an unusable VE_ROOT: no verb mounts there; status still answers
    return CtStatus(
        ctid=ct.ctid,
        exists=ct.exists,
        mounted=root in points,
        running=state is not None and state.is_running,
        state=state,
    )


def check(engine: Engine, ct: Container, st: CtStatus) -> None:
    """Let plugins repair a running CT's host-side services (``vz_check``); as root only,
    failures are warnings."""
    if not st.running or st.state is None or os.geteuid() != 0:
        return
    engine.plugins.run_each("vz_check", ct=ct, run=Run(ct, st.state, engine.plugins),
                            on_error=lambda e: engine.warn(f"warning: {e}"))


def collect(engine: Engine, ct: Container, st: CtStatus,
            fields: Collection[str] | None = None) -> dict[str, Any]:
    """The plugins' vzlist fields for ``ct`` (``fields``: the names wanted, default all);
    a failing plugin leaves its fields out."""
    check(engine, ct, st)
    run = Run(ct, st.state, engine.plugins) if st.running and st.state is not None else None
    wanted = frozenset(engine.registry.fields if fields is None else fields)
    values: dict[str, Any] = {}
    for _plugin, result in engine.plugins.call_each(
        "vz_collect", ct=ct, run=run, fields=wanted,
        on_error=lambda e: engine.warn(f"warning: {e}"),
    ):
        values.update(result or {})
    values["status"] = st.name
    return values
