"""The runtime's own CLI, called directly as the engines call it (runc's contract), on a
bundle the harness writes: create, state, start, kill, delete, features, --version."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import MountNamespace, bundle, run

pytestmark = [pytest.mark.root]


class Runtime:
    """The runtime (as engines get it) with a private ``--root``, run in the mount namespace."""

    def __init__(self, name: str, binary: Path, root: Path, mountns: MountNamespace) -> None:
        self.name, self.binary, self.root, self.mountns = name, binary, root, mountns

    def __call__(self, *args: str, check: bool = True) -> Any:
        return run(self.mountns.command([str(self.binary), "--root", str(self.root), *args]),
                   check=check)

    def create(self, *args: str, log: Path) -> None:
        """``create``: the container's process inherits create's stdio, so that goes to *log*
        (a pipe would stay open as long as the container runs, as for conmon's)."""
        with open(log, "w") as out:
            proc = subprocess.run(self.mountns.command([str(self.binary), "--root", str(self.root),
                                                        "create", *args]),
                                  stdin=subprocess.DEVNULL, stdout=out, stderr=out, timeout=120,
                                  check=False)
        assert proc.returncode == 0, log.read_text()

    def state(self, cid: str) -> dict[str, Any]:
        return dict(json.loads(self("state", cid).stdout))

    def wait_for(self, cid: str, status: str) -> dict[str, Any]:
        for _ in range(300):  # a poll, not a timed assertion
            state = self.state(cid)
            if state["status"] == status:
                return state
            time.sleep(0.1)
        raise AssertionError(f"{cid} never became {status}: {state}")


@pytest.fixture
def runtime(oci_runtime: Path, engine_binary: Path, tmp_path: Path,
            mountns: MountNamespace) -> Iterator[Runtime]:
    rt = Runtime(oci_runtime.name, engine_binary, tmp_path / "state", mountns)
    yield rt
    for line in rt("list", check=False).stdout.splitlines()[1:]:
        if line.strip():
            rt("delete", "--force", line.split()[0], check=False)


def test_create_start_state_kill_delete(runtime: Runtime, tmp_path: Path,
                                        busybox_image: dict[str, Path]) -> None:
    b = bundle(tmp_path / "bundle", busybox_image["rootfs"], ["sleep", "1000"])
    cid = "direct1"
    runtime.create("--bundle", str(b), "--pid-file", str(tmp_path / "pid"), cid,
                   log=tmp_path / "create.log")
    state = runtime.state(cid)
    assert state["status"] == "created"
    assert state["id"] == cid and Path(state["bundle"]) == b
    assert state["ociVersion"].startswith("1.")
    pid = int((tmp_path / "pid").read_text())
    assert state["pid"] == pid
    # created: the process waits for start, not yet running sleep
    assert "sleep" not in Path(f"/proc/{pid}/cmdline").read_text()
    assert cid in runtime("list").stdout

    runtime("start", cid)
    assert runtime.state(cid)["status"] == "running"
    assert Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] == b"sleep"
    assert runtime("start", cid, check=False).returncode != 0  # not 'created' any more
    assert runtime("delete", cid, check=False).returncode != 0  # running: needs --force

    runtime("kill", cid, "KILL")
    runtime.wait_for(cid, "stopped")
    runtime("delete", cid)
    assert runtime("state", cid, check=False).returncode != 0
    assert cid not in runtime("list").stdout


def test_features_and_version(runtime: Runtime) -> None:
    assert "version" in runtime("--version").stdout.lower()
    probe = runtime("features", check=False)
    if probe.returncode != 0 and "unknown command" in probe.stderr:
        pytest.skip(f"{runtime.name} has no 'features' command (runc 1.1 and later "
                    f"have it, crun 1.8 not): {probe.stderr.strip()}")
    features = json.loads(probe.stdout)
    assert features["ociVersionMin"].startswith("1.") and features["ociVersionMax"].startswith("1.")
    assert "linux" in features


def test_poststart_hooks_run_after_the_program_was_executed(
        runtime: Runtime, tmp_path: Path, busybox_image: dict[str, Path]) -> None:
    """The runtime spec: poststart hooks run after the process is executed, before
    ``start`` returns. The hook reads the container's PID from the state on its stdin and
    records that process's command line: the program's, never the runtime's child's."""
    b = bundle(tmp_path / "bundle", busybox_image["rootfs"], ["sleep", "1000"])
    seen = tmp_path / "poststart-saw"
    config = json.loads((b / "config.json").read_text())
    config["hooks"] = {"poststart": [{
        "path": "/bin/sh",
        "args": ["sh", "-c", "pid=$(sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p'); "
                 f"tr '\\0' ' ' < /proc/$pid/cmdline > {seen}"],
    }]}
    (b / "config.json").write_text(json.dumps(config))
    runtime.create("--bundle", str(b), "post1", log=tmp_path / "create.log")
    runtime("start", "post1")
    assert seen.read_text().split() == ["sleep", "1000"]
