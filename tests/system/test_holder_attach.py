"""The start's holder joins the CT's cgroups only once it waits (issue 17: about one start
in 1,000 of a boot-all failed with "Operation not permitted: /dev/null").

``vz_pre_start`` runs while the holder, forked just before, makes the CT's namespaces;
its hooks set up the CT's groups in steps (the v1 devices controller denies every device
before it allows the CT's own).  The holder used to be moved into the groups at once,
and a holder still at work then opened ``/dev/null`` (:func:`vzcore.lifecycle.execenv.detach`)
inside that window.  Here a test plugin holds such a window open in ``vz_pre_start``
(``/dev/null`` denied until the holder in the group has made its namespaces or died), and
the holder is held (``VZ_FAULT_PAUSE_AT``) before its own work, so that a holder attached
before it waits always meets the window: the start failed on the old code every time.
"""

from __future__ import annotations

import pytest

from vzcore.testing.pytest_plugin import Vzctl, VzEnv

pytestmark = [pytest.mark.root, pytest.mark.cgroup1, pytest.mark.needs("busybox")]

DEVICE_WINDOW = '''
import os
import time

from vzcore import hookimpl
from vzcore.plugin import PluginInfo

NULL = "c 1:3 rwm"


@hookimpl
def vz_plugin_info():
    return PluginInfo(subsystem="devicewindow", summary="denies /dev/null during vz_pre_start")


def _busy(pid):
    """Whether process ``pid`` is still before its namespaces (not gone, same mount ns)."""
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink("/proc/self/ns/mnt")
    except OSError:
        return False


@hookimpl
def vz_pre_start(ct, run):
    group = next(d.directory for d in run.cgroups.dirs
                 if d.version == 1 and "devices" in d.controllers)
    (group / "devices.deny").write_text(NULL)
    try:
        deadline = time.monotonic() + 20  # a guard only: the holder comes in at once
        holder = None
        while holder is None and time.monotonic() < deadline:
            procs = (group / "cgroup.procs").read_text().split()
            holder = int(procs[0]) if procs else None
            if holder is None:
                time.sleep(0.005)
        while holder is not None and _busy(holder) and time.monotonic() < deadline:
            time.sleep(0.005)
    finally:
        (group / "devices.allow").write_text(NULL)
'''


def test_the_holder_joins_the_cts_groups_only_once_it_waits(vz_env: VzEnv, vzctl: Vzctl) -> None:
    from vzcore.linux.cgroups import hierarchies

    if not any(h.version == 1 and "devices" in h.controllers for h in hierarchies()):
        pytest.skip("needs the cgroup v1 devices controller (cgroup2's device program is "
                    "replaced in one step: no window)")
    vzctl("create", 101, "--ostemplate", "busybox")
    vz_env.add_plugin_module("device_window", DEVICE_WINDOW)
    # The holder sleeps before it does anything: attached at once, it would meet the window.
    vz_env.extra_env["VZ_FAULT_PAUSE_AT"] = "spawn:holder-forked:1"
    started = vzctl("start", 101, check=False)
    assert started.returncode == 0, started.stderr
    assert vzctl("exec", 101, "echo ok > /dev/null && echo ok").stdout.strip() == "ok"
    vzctl("stop", 101)
