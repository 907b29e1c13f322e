"""``vzctl runscript`` of a stopped CT (OpenVZ's semantics): the root is mounted, the
script runs in it alone (no /proc, no init, PID 1 of its own PID namespace), isolated as
the CT (its ID map, its root as '/', no host path), then the root is unmounted again,
unless it was mounted before."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from vzcore.linux import mounts
from vzcore.testing.crash import leftovers
from vzcore.testing.pytest_plugin import Vzctl, VzEnv

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]

LINGER = "sleep 4243"
"""What the script leaves in the background: it must not outlive the script."""


def _script(tmp_path: Path) -> Path:
    host_only = tmp_path / "host-only"
    host_only.write_text("the host's\n")
    script = tmp_path / "inside.sh"
    script.write_text(
        'echo "uid=$(id -u) pid=$$ host=$(hostname)"\n'
        'if [ -e /proc/self ]; then echo proc=yes; else echo proc=no; fi\n'
        f'if [ -e {host_only} ]; then echo hostpath=yes; else echo hostpath=no; fi\n'
        'echo made > /root/mark\n'
        f'{LINGER} &\n'
        'exit 5\n')
    return script


def _lingering() -> bool:
    found = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return any(line.strip() == LINGER for line in found.splitlines())


@pytest.mark.parametrize("profile", ["userns", "privileged"])
def test_runscript_on_a_stopped_ct_runs_in_its_root_alone_then_unmounts(
        vz_env: VzEnv, vzctl: Vzctl, tmp_path: Path, profile: str) -> None:
    create: list[object] = ["create", 101, "--ostemplate", "busybox", "--hostname", "ct101"]
    if profile == "privileged":
        vz_env.allow_privileged()
        create += ["--local_uid", "0", "--local_gid", "0"]
    vzctl(*create)
    assert not mounts.is_mount_point(vz_env.ct_root(101))

    ran = vzctl("runscript", 101, _script(tmp_path), check=False)

    assert ran.returncode == 5, ran.stdout + ran.stderr  # the script's own status
    # the CT's root (0 inside), PID 1 of a PID namespace of its own, no /proc, no host path
    assert ran.stdout.split() == ["uid=0", "pid=1", "host=ct101", "proc=no", "hostpath=no"]
    mark = vz_env.private(101) / "root/mark"
    assert mark.read_text() == "made\n"
    # written as the CT's root: its host owner is the CT's mapped root (0 only when privileged)
    ct_root_uid = (vz_env.private(101) / "bin").stat().st_uid
    assert mark.stat().st_uid == ct_root_uid
    assert (ct_root_uid == 0) == (profile == "privileged")
    assert not _lingering()  # the PID namespace ended with the script
    assert not mounts.is_mount_point(vz_env.ct_root(101))  # unmounted again
    assert vzctl("status", 101).stdout.split()[3:5] == ["unmounted", "down"]
    assert leftovers(vz_env, 101) == []


def test_runscript_leaves_a_mounted_stopped_ct_mounted(
        vz_env: VzEnv, vzctl: Vzctl, tmp_path: Path) -> None:
    vzctl("create", 101, "--ostemplate", "busybox")
    vzctl("mount", 101)
    try:
        script = tmp_path / "s.sh"
        script.write_text("echo in > /root/mounted-run\n")
        vzctl("runscript", 101, script)
        assert mounts.is_mount_point(vz_env.ct_root(101))
        assert (vz_env.ct_root(101) / "root/mounted-run").read_text() == "in\n"
        # the CT can still start from there (no state file, no lock left)
        vzctl("start", 101)
        assert vzctl("exec", 101, "cat /root/mounted-run").stdout == "in\n"
        vzctl("stop", 101)
    finally:
        vzctl("umount", 101, check=False)
    assert leftovers(vz_env, 101) == []


def test_runscript_of_a_missing_script_changes_nothing(
        vz_env: VzEnv, vzctl: Vzctl, tmp_path: Path) -> None:
    vzctl("create", 101, "--ostemplate", "busybox")
    result = vzctl("runscript", 101, tmp_path / "nosuch.sh", check=False)
    assert result.returncode == 11 and "cannot read the script" in result.stderr
    assert not mounts.is_mount_point(vz_env.ct_root(101))
    assert leftovers(vz_env, 101) == []
