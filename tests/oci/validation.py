"""Run the OCI runtime-tools validation suite against a runtime and count its results.

The suite is built offline by ``contrib/oci/build-runtime-tools`` (docs/oci.md); each of its
tests is a program (``validation/<name>/<name>.t``) that writes a config, calls the runtime
named by ``$RUNTIME`` (``create``, ``start``, ``state``, ``kill``, ``delete``) and checks,
with ``runtimetest`` inside the container, what the runtime did. It prints TAP.

:data:`NOT_HERE` lists the tests that cannot run on this machine, each with its reason,
:data:`SUITE_DEFECTS` the ones no runtime can pass with this build of the suite;
:func:`cannot_run` adds the ones whose kernel feature a probe finds missing.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import attrs
from harness import PROJECT, MountNamespace, runtime_name

CACHE = Path(os.environ.get("VZ_OCI_TOOLS_CACHE", PROJECT / ".cache" / "runtime-tools"))
CGROUP_REASON = ("creates cgroups of its own at a fixed path in every hierarchy, outside the "
                 "parent vzcore is given: this machine's cgroup tree is not ours (run them "
                 "in a VM of their own)")
NOT_HERE = {
    **{name: CGROUP_REASON for name in (
        "linux_cgroups_blkio", "linux_cgroups_cpus", "linux_cgroups_devices",
        "linux_cgroups_hugetlb", "linux_cgroups_memory", "linux_cgroups_network",
        "linux_cgroups_pids", "linux_cgroups_relative_blkio", "linux_cgroups_relative_cpus",
        "linux_cgroups_relative_devices", "linux_cgroups_relative_hugetlb",
        "linux_cgroups_relative_memory", "linux_cgroups_relative_network",
        "linux_cgroups_relative_pids")},
    "delete_resources": CGROUP_REASON + " (/sys/fs/cgroup/pids/cgrouptest)",
    "delete_only_create_resources": CGROUP_REASON + " (/sys/fs/cgroup/pids/cgrouptest)",
}
"""Tests that must not run here, with the reason (whatever the runtime)."""

SUITE_DEFECTS = {
    "hooks": ("the test expects 'post-start1' where its own hook writes 'post-start1 called' "
              "(validation/hooks/hooks.go, the comparison after the run): no runtime can pass it"),
    "pidfile": ("its process is 'true', which has exited when the test sends SIGKILL; the "
                "runtime spec requires kill of a stopped container to fail, so a conforming "
                "runtime fails the test unless it loses that race (crun fails it too)"),
}
"""Whole tests no runtime can pass with this build of the suite, with the defect."""

DEFECTIVE_CHECKS = {
    "start": {"`start` operation MUST generate an error if `process` was not set": (
        "the check is inverted: it passes when start succeeds without a process "
        "(validation/start/start.go asserts err == nil)")},
    "process_rlimits": {"has expected soft RLIMIT_NOFILE": (
        "runtimetest is built with Go 1.19, whose runtime raises its own soft RLIMIT_NOFILE "
        "to the hard limit at start: the soft value it reads is never the configured one")},
}
"""Single checks of a test that no runtime can pass: counted apart, the rest must pass."""


def suite_root() -> Path | None:
    """The built suite's source tree, or None when build-runtime-tools has not run."""
    marker = CACHE / "root"
    if not marker.is_file():
        return None
    root = Path(marker.read_text().strip())
    return root if (root / "runtimetest").is_file() else None


def suite_tests(root: Path) -> list[str]:
    """Every validation test the suite has, sorted."""
    return sorted(p.parent.name for p in root.glob("validation/*/*.t"))


def cannot_run(name: str) -> str | None:
    """Why *name* cannot run here (a listed reason or a probed missing feature), or None."""
    if name in NOT_HERE:
        return NOT_HERE[name]
    if name in SUITE_DEFECTS:
        return "a defect of the suite: " + SUITE_DEFECTS[name]
    if name == "linux_process_apparmor_profile" and not _flag("/sys/module/apparmor/parameters/enabled"):
        return "AppArmor is not enabled in this kernel (/sys/module/apparmor/parameters/enabled)"
    if name == "linux_mount_label" and not Path("/sys/fs/selinux/enforce").exists():
        return "SELinux is not enabled in this kernel (no /sys/fs/selinux)"
    if name == "process_capabilities" and not _has_all_caps():
        return ("grants every capability (a privileged container), and this machine's root "
                "lacks some in its bounding set (CapBnd in /proc/self/status; here "
                "CAP_SYS_RESOURCE): capset fails with EPERM in any runtime")
    return None


def _has_all_caps() -> bool:
    last_cap = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16) == (1 << (last_cap + 1)) - 1
    return False


def _flag(path: str) -> bool:
    try:
        return Path(path).read_text().strip() == "Y"
    except OSError:
        return False


@attrs.frozen
class Result:
    """One validation test's outcome: its TAP counts and output."""

    name: str
    returncode: int
    ok: int
    not_ok: int
    skipped: int
    todo: int
    defective: int
    errors: int
    planned: bool
    output: str

    @property
    def passed(self) -> bool:
        """Exit 0, no failure other than a TODO one, and no error reported outside a test
        line (the lifecycle tests, e.g. hooks, report theirs that way). No plan is needed:
        the ``*_fail`` tests print nothing when the runtime refused what it must refuse."""
        return self.returncode == 0 and self.not_ok == 0 and self.errors == 0


def parse_tap(name: str, returncode: int, output: str) -> Result:
    """Count the TAP lines of one test's *output*."""
    ok = not_ok = skipped = todo = defective = errors = 0
    defects = DEFECTIVE_CHECKS.get(name, {})
    planned = seen_test = in_orphan_yaml = False
    for line in output.splitlines():
        if line == "  ---" and not seen_test:
            in_orphan_yaml = True  # a YAML block before any test line: the test's own verdict
        elif line == "  ...":
            in_orphan_yaml = False
        elif in_orphan_yaml and line.startswith("  error:") and line.strip() != 'error: ""':
            errors += 1
        elif re.match(r"^1\.\.\d+", line):
            planned = True
        elif m := re.match(r"^(not ok|ok)\b", line):
            seen_test = True
            if "# SKIP" in line:
                skipped += 1
            elif "# TODO" in line:
                todo += 1
            elif m.group(1) == "ok":
                ok += 1
            elif re.sub(r"^not ok \d+ - ", "", line) in defects:
                defective += 1
            else:
                not_ok += 1
    return Result(name, returncode, ok, not_ok, skipped, todo, defective, errors, planned,
                  output)


def engine_runtime(runtime: Path, workdir: Path) -> Path:
    """The binary to give an engine or the suite for *runtime*: crun itself would make
    cgroups for every container (this machine's tree is not ours), so crun gets a wrapper
    that adds ``--cgroup-manager=disabled``, as podman passes it; others run as they are."""
    if runtime_name(runtime) != "crun":
        return runtime
    wrapper = workdir / "crun-nocgroup"
    wrapper.write_text(f'#!/bin/sh\nexec {runtime} --cgroup-manager=disabled "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def run_test(root: Path, name: str, runtime: Path, mountns: MountNamespace,
             timeout: float = 180) -> Result:
    """Run validation test *name* against *runtime* (as given to the suite) in *mountns*.

    Whatever the test leaves behind is removed, and noted at the end of its output: the
    containers it left in the runtime's list (``delete --force``) and every process that
    still has a file or its working directory in the test's temporary directory (a
    container whose runtime lost it, or the test itself after a timeout)."""
    before = _containers(runtime)
    with tempfile.TemporaryDirectory(prefix=f"oci-validate-{name}-") as tmp:
        env = {**os.environ, "RUNTIME": str(runtime), "TMPDIR": tmp}
        proc = subprocess.Popen(mountns.command([f"validation/{name}/{name}.t"], cwd=root),
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=timeout)
            returncode = proc.returncode
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            output, _ = proc.communicate()
            output += f"\n# harness: timed out after {timeout:.0f} s"
            returncode = -1
        for cid in sorted(_containers(runtime) - before):
            subprocess.run(mountns.command([str(runtime), "delete", "--force", cid]),
                           capture_output=True, timeout=60, check=False)
            output += f"\n# harness: removed the container {cid} the test left"
        for pid in _users_of(tmp):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                output += f"\n# harness: killed process {pid} the test left"
        if _users_of(tmp):
            time.sleep(0.5)  # SIGKILL is asynchronous: let them go before tmp is removed
    return parse_tap(name, returncode, output)


def _containers(runtime: Path) -> set[str]:
    """The IDs ``RUNTIME list`` shows (its first column, after the header)."""
    proc = subprocess.run([str(runtime), "list"], capture_output=True, text=True, check=False,
                          timeout=60)
    return {line.split()[0] for line in proc.stdout.splitlines()[1:] if line.strip()}


def _users_of(directory: str) -> list[int]:
    """PIDs with their working directory or an open file below *directory*."""
    users = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            links = [os.readlink(entry / "cwd")]
            links += [os.readlink(fd) for fd in (entry / "fd").iterdir()]
        except OSError:
            continue
        if any(link == directory or link.startswith(directory + "/") for link in links):
            users.append(int(entry.name))
    return users
