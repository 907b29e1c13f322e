"""containerd runs the runtime under test through its runc shim (``ctr --runc-binary``),
as a kubelet's containerd does through a RuntimeClass whose handler names it (docs/oci.md).

The daemon is Debian's, started by the fixture on a private socket, root and state; the
image comes from the tests' OCI archive (``ctr image import``), no registry.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import IMAGE, Containerd

pytestmark = [pytest.mark.root]


def runc_args(binary: Path, workdir: Path) -> list[str]:
    """``ctr run`` options for the runtime: its binary, a private state root, no cgroup path
    (ctr would ask for /default/ID in every hierarchy; vzcore-oci makes its own groups)."""
    return ["--runc-binary", str(binary), "--runc-root", str(workdir / "runc-root"), "--cgroup", ""]


def test_ctr_run_rm_prints_hi(containerd: Containerd, engine_binary: Path) -> None:
    proc = containerd.ctr("run", "--rm", *runc_args(engine_binary, containerd.dir), IMAGE,
                          "id1", "echo", "hi")
    assert proc.stdout == "hi\n"
    assert "id1" not in containerd.ctr("containers", "list", "-q").stdout


def test_ctr_run_net_host_shares_the_runtimes_network_namespace(containerd: Containerd,
                                                                engine_binary: Path) -> None:
    """``ctr run --net-host``: what a Kubernetes hostNetwork pod's containers get through
    containerd (no network namespace in config.json), in the one the shim runs in."""
    proc = containerd.ctr("run", "--rm", "--net-host", *runc_args(engine_binary, containerd.dir),
                          IMAGE, "idnet", "readlink", "/proc/self/ns/net")
    assert proc.stdout.strip() == os.readlink("/proc/self/ns/net")


@pytest.fixture(scope="module")
def task(containerd: Containerd, engine_binary: Path) -> Iterator[str]:
    """A running task ``id2`` (a shell that exits 7 on SIGTERM): its host PID. The kill
    test ends it."""
    containerd.ctr("run", "-d", *runc_args(engine_binary, containerd.dir), IMAGE, "id2",
                   "sh", "-c", "trap 'exit 7' TERM; while :; do sleep 1; done")
    try:
        tasks = containerd.ctr("task", "list").stdout
        line: list[str] = next((ln.split() for ln in tasks.splitlines() if ln.startswith("id2 ")), [])
        assert line[2:] == ["RUNNING"], tasks
        yield line[1]
    finally:
        containerd.ctr("task", "kill", "--signal", "SIGKILL", "id2", check=False)
        containerd.ctr("task", "rm", "--force", "id2", check=False)
        containerd.ctr("container", "rm", "id2", check=False)
        assert "id2" not in containerd.ctr("containers", "list", "-q").stdout.split()


def test_ctr_task_exec(containerd: Containerd, task: str) -> None:
    proc = containerd.ctr("task", "exec", "--exec-id", "e1", "id2", "sh", "-c",
                          "echo in-$(cat /proc/1/comm) && exit 4", check=False)
    # in the container's PID namespace, where the task's shell is PID 1; its exit status
    assert proc.returncode == 4 and proc.stdout == "in-sh\n", proc


def test_ctr_task_ps(containerd: Containerd, task: str, engine_binary: Path,
                     is_vzcore: bool) -> None:
    if engine_binary.name == "crun-nocgroup":
        pytest.skip("crun's ps lists the container's cgroup, and crun runs without cgroups here")
    # the runtime's ps --format json: the container's processes as host PIDs
    ps = containerd.ctr("task", "ps", "id2").stdout
    assert task in ps.split(), ps


def test_ctr_task_kill(containerd: Containerd, task: str) -> None:
    containerd.ctr("task", "kill", "--signal", "SIGTERM", "id2")
    for _ in range(600):  # until the shell's trap ran (a poll, not a timed assertion)
        tasks = containerd.ctr("task", "list").stdout
        if any(line.split()[::2] == ["id2", "STOPPED"] for line in tasks.splitlines()):
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"SIGTERM did not stop the task: {tasks}")
    assert not Path(f"/proc/{task}").exists()
