"""``reboot`` inside a CT restarts it; ``poweroff`` (``halt``) inside leaves it stopped with
the host-side cleanup done, noticed by the console daemon, not by a process per CT
(docs/system-cts.md, "reboot and poweroff inside").

One CT per init kind: it boots, reboots from inside (a new init, started after the old one
ended, answering exec), then powers off from inside (status down; no process, mount, cgroup or
state file left).  The mechanism (the console daemon is init's parent) works on every
kernel, so the VM runs the systemd case as it is.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from vzcore.runtime import State
from vzcore.testing.pytest_plugin import Vzctl, VzEnv, reap_orphans
from vzcore.testing.templates import DebianTemplate

pytestmark = [pytest.mark.root]

DEADLINE = 900.0
"""Seconds after which a wait fails instead of hanging (the VM's emulation boots slowly)."""


def _state(vz_env: VzEnv, ctid: int) -> State | None:
    return State.load(vz_env.state(ctid), ctid)


def _wait(what: str, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not done():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        time.sleep(0.1)


def _mounted_below(path: Path) -> list[str]:
    root = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    return [p for p in points if p == root or p.startswith(root + "/")]


def _boot(vzctl: Vzctl, ctid: int, wait: bool) -> None:
    vzctl("start", ctid, *(["--wait", "--wait-timeout", str(int(DEADLINE))] if wait else []),
          timeout=DEADLINE + 60)


def _reboot_then_poweroff(vz_env: VzEnv, vzctl: Vzctl, ctid: int, reboot: str, poweroff: str,
                          wait: bool = True) -> None:
    _boot(vzctl, ctid, wait)
    before = _state(vz_env, ctid)
    assert before is not None and before.init is not None and before.pidns

    vzctl("exec2", ctid, reboot, check=False, timeout=DEADLINE)
    def rebooted() -> bool:
        state = _state(vz_env, ctid)
        return state is not None and state.init != before.init and state.is_running
    _wait("the CT to come back with a new init", rebooted)
    after = _state(vz_env, ctid)
    assert after is not None and after.init is not None
    # A new init, started after the old one (a PID namespace's inode number may be reused
    # once the old namespace is freed, so it proves nothing here).
    assert after.init.start_time > before.init.start_time
    assert not before.init.is_alive()
    # The start after the reboot has finished once exec answers from the new init.
    _wait("exec in the rebooted CT", lambda: vzctl("exec2", ctid, "true", check=False).returncode == 0)
    assert vzctl("exec", ctid, "cat /proc/1/stat").stdout.split()[0] == "1"
    assert "running" in vzctl("status", ctid).stdout
    if wait:  # the restart after the reboot did not wait: no notify socket for its init
        environ = vzctl("exec", ctid, "tr '\\0' '\\n' < /proc/1/environ").stdout.split()
        assert not any(v.startswith("NOTIFY_SOCKET=") for v in environ)
        assert not (vz_env.root / f"run/vz/{ctid}.host").exists()

    groups = [d.directory for d in after.cgroups.dirs] if after.cgroups else []
    assert groups and all(g.exists() for g in groups)
    vzctl("exec2", ctid, poweroff, check=False, timeout=DEADLINE)
    _wait("the cleanup after the power-off", lambda: not vz_env.state(ctid).exists())
    assert "down" in vzctl("status", ctid).stdout
    assert not after.init.is_alive()
    assert not any(g.exists() for g in groups), "the CT's cgroups are removed"
    assert _mounted_below(vz_env.ct_root(ctid)) == [], "nothing stays mounted"
    log = (vz_env.root / "run/vz/console/console.log").read_text()
    assert f"CT {ctid}: rebooted inside" in log and f"CT {ctid}: halted or powered off" in log


def test_busybox_reboot_and_poweroff_inside(vz_env: VzEnv, vzctl: Vzctl) -> None:
    vzctl("create", 101, "--ostemplate", "busybox", "--hostname", "ct101")
    _reboot_then_poweroff(vz_env, vzctl, 101, "reboot", "poweroff", wait=False)

    # The daemon killed: a reboot inside then ends the CT, and the next command recovers.
    _boot(vzctl, 101, wait=False)
    daemon = int((vz_env.root / "run/vz/console/console.pid").read_text().split()[0])
    os.kill(daemon, signal.SIGKILL)
    vzctl("exec2", 101, "reboot", check=False)
    _wait("the CT to end", lambda: "down" in vzctl("status", 101).stdout)
    reap_orphans()  # the CT's init, reparented to this subreaper with the daemon gone
    vzctl("start", 101)  # cleans up what the run left, then starts
    assert vzctl("exec", 101, "true").returncode == 0
    vzctl("stop", 101)
    assert not vz_env.state(101).exists()


def _debian(vz_env: VzEnv, vzctl: Vzctl, debian_template: Callable[[str], DebianTemplate],
            kind: str, ctid: int) -> None:
    template = debian_template(kind)
    template.install(vz_env)
    vzctl("create", ctid, "--ostemplate", template.name, "--hostname", f"ct{ctid}",
          timeout=DEADLINE)  # unpacking a Debian template takes minutes under emulation


def test_sysvinit_reboot_and_poweroff_inside(
        vz_env: VzEnv, vzctl: Vzctl, debian_template: Callable[[str], DebianTemplate]) -> None:
    _debian(vz_env, vzctl, debian_template, "sysvinit", 202)
    _reboot_then_poweroff(vz_env, vzctl, 202, "reboot", "poweroff")


@pytest.mark.vm
def test_systemd_reboot_and_poweroff_inside(
        vz_env: VzEnv, vzctl: Vzctl, debian_template: Callable[[str], DebianTemplate]) -> None:
    _debian(vz_env, vzctl, debian_template, "systemd", 201)
    _reboot_then_poweroff(vz_env, vzctl, 201, "systemctl reboot", "poweroff")
