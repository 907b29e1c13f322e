"""``vzctl set`` on a running CT: every changed beancounter applied at once.

The new settings (the config text applied now, from the record, with the changed keys
replaced; never the config file, which a change without ``--save`` left behind) are
compared with those applied now, and only what differs is told to the kernel: cgroup
files, the limits of every process in the CT, the IPC sysctls, and remounts of devpts
and /dev/shm in the CT's mount namespace.  The record is updated afterwards, so
``vzctl ubc`` shows the new barrier and limit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vzcore_beancounters import apply
from vzcore_beancounters.plan import plan, rlimits
from vzcore_beancounters.record import BeancountersRecord
from vzcore_beancounters.settings import (
    applied_limits,
    host_swap,
    nr_open,
    running_config,
)

if TYPE_CHECKING:
    from vzcore.changes import ChangeSet
    from vzcore.container import Container
    from vzcore.runtime import Run


def change(ct: Container, changes: ChangeSet, run: Run) -> None:
    """Apply ``changes`` (those of any key; ours are picked out) to running ``run``."""
    old = applied_limits(ct, run.record)
    new, text = running_config(ct, run.record, changes)
    changed = {name for name in new if new[name] != old[name]}
    if not changed:
        return
    settings = plan(new, run.cgroups.version, nr_open=nr_open(), host_swap=host_swap(),
                    changed=changed)
    unenforced = apply.apply_cgroups(ct.ctid, run.cgroups, settings.cgroup)
    if settings.rlimits:
        # Twice: a process forked while the first pass ran inherited the old limits.
        for _ in range(2):
            apply.apply_rlimits(sorted(run.cgroups.pids()), settings.rlimits)
    apply.sysctls_in(run.init_pid, settings.sysctls, ct.root_owner)
    apply.remount_in(run.init_pid, settings.devpts_max, settings.shm_size)
    record: BeancountersRecord | None = run.record
    previous = set(record.unenforced) if record else set()
    run.record = BeancountersRecord(limits=new.to_json(), config=text, rlimits=rlimits(new, nr_open()),
                                    view=record.view if record else None,
                                    unenforced=(previous - changed) | unenforced)
