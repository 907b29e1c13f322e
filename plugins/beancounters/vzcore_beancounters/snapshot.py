"""One CT's beancounter table right now: the code ``vzctl ubc``, vzlist and the in-CT
view share."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vzcore.linux.cgroups import CgroupSet
from vzcore_beancounters import counters, peaks
from vzcore_beancounters.limits import Limits
from vzcore_beancounters.record import BeancountersRecord
from vzcore_beancounters.resources import RESOURCES, UNLIMITED
from vzcore_beancounters.settings import applied_limits, config_limits
from vzcore_beancounters.table import Row, rows, running_rows

if TYPE_CHECKING:
    from vzcore.container import Container
    from vzcore.runtime import Run


def running_table(ctid: int, run_dir: Path, cgroups: CgroupSet, init_pid: int,
                  limits: Limits, wanted: Collection[str] | None = None) -> dict[str, Row]:
    """Rows of running CT ``ctid`` (its observed peaks updated); with ``wanted``, only
    those beancounters' usage is read (the others' read as 0)."""
    usage = counters.read(cgroups, init_pid, wanted)
    return running_rows(limits, usage, peaks.path_for(run_dir, ctid), wanted)


def table_of(ct: Container, run: Run | None,
             wanted: Collection[str] | None = None) -> dict[str, Row]:
    """Rows of ``ct``: live ones when it runs, zeros and its config when it is stopped."""
    if run is None:
        return rows(config_limits(ct), None)
    return running_table(ct.ctid, ct.paths.run_dir, run.cgroups, run.init_pid,
                         applied_limits(ct, run.record), wanted)


def from_state_file(run_dir: Path, ctid: int, record_name: str) -> dict[str, Row]:
    """Rows of a running CT read from its state file alone (the view daemon has no
    config, no plugins, no engine)."""
    from vzcore.runtime import State

    state = State.load(run_dir / f"{ctid}.json", ctid)
    if state is None or state.init is None or state.cgroups is None:
        raise LookupError(f"CT {ctid} is not running")
    record: BeancountersRecord | None = state.record(record_name, BeancountersRecord)
    if record is None or not record.limits:
        raise LookupError(f"CT {ctid} has no beancounters recorded")
    return running_table(ctid, run_dir, state.cgroups, state.init.pid, Limits.from_json(record.limits))


def collect(ct: Container, run: Run | None, fields: Collection[str]) -> Mapping[str, Any]:
    """vzlist's fields asked for: one object per beancounter, and ``vswap``."""
    wanted = {r.name for r in RESOURCES if r.name in fields}
    table = table_of(ct, run, wanted)
    values: dict[str, Any] = {name: table[name].as_dict() for name in wanted}
    values["vswap"] = table["physpages"].limit < UNLIMITED
    return values
