"""The runtime's own CLI, called directly as the engines call it (runc's contract), on a
bundle the harness writes: create, state, start, kill, delete, features, --version."""

from __future__ import annotations

import json
import os
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


UIDS = [{"containerID": 0, "hostID": 200000, "size": 1},
        {"containerID": 1, "hostID": 300001, "size": 1999}]
GIDS = [{"containerID": 0, "hostID": 200000, "size": 1},
        {"containerID": 1, "hostID": 400001, "size": 2999}]
"""Two ranges per map, of sizes other than vzcore's 65536 (podman's ``--uidmap 0:200000:1
--uidmap 1:300001:1999``): container 1000 is host 301000 (uid) / 401000 (gid)."""


def userns_bundle(dest: Path, rootfs: Path, args: list[str]) -> tuple[Path, dict[str, Any]]:
    """A bundle with a user namespace of :data:`UIDS`/:data:`GIDS`; its rootfs owned by the
    container's root, ``/owned-1000`` by container 1000, ``/owned-host`` by host IDs the map
    leaves out. Returns the bundle and its config (to add to; the caller writes it)."""
    b = bundle(dest, rootfs, args)
    root = b / "rootfs"
    (root / "owned-1000").write_text("x")
    (root / "owned-host").write_text("x")
    for path in [root, *root.rglob("*")]:
        os.chown(path, 200000, 200000, follow_symlinks=False)
    os.chown(root / "owned-1000", 301000, 401000)
    os.chown(root / "owned-host", 4242, 4242)
    config = json.loads((b / "config.json").read_text())
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"], config["linux"]["gidMappings"] = UIDS, GIDS
    return b, config


def _ids(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.strip()]


def test_a_user_namespace_of_two_ranges_is_the_specs_map(
        runtime: Runtime, tmp_path: Path, busybox_image: dict[str, Path], is_vzcore: bool) -> None:
    """The container's uid_map and gid_map are exactly the spec's two ranges; files show
    their owners through them (unmapped ones as nobody); what the runtime makes for the
    container's root (/dev, the spec's /tmp tmpfs) is owned by its root."""
    b, config = userns_bundle(tmp_path / "bundle", busybox_image["rootfs"], [
        "sh", "-c", "stat -c '%u:%g %n' /owned-1000 /owned-host /dev /tmp /dev/console; id -u; "
                    "touch /tmp/made && stat -c '%u:%g %n' /tmp/made; sleep 1000"])
    (b / "config.json").write_text(json.dumps(config))
    log = tmp_path / "create.log"
    runtime.create("--bundle", str(b), "--pid-file", str(tmp_path / "pid"), "map2", log=log)
    pid = int((tmp_path / "pid").read_text())
    assert _ids(Path(f"/proc/{pid}/uid_map").read_text()) == [
        ["0", "200000", "1"], ["1", "300001", "1999"]]
    assert _ids(Path(f"/proc/{pid}/gid_map").read_text()) == [
        ["0", "200000", "1"], ["1", "400001", "2999"]]
    runtime("start", "map2")
    for _ in range(300):  # a poll for the program's output, not a timed assertion
        if "/tmp/made" in log.read_text():
            break
        time.sleep(0.1)
    seen = log.read_text().split("\n")
    assert "1000:1000 /owned-1000" in seen, seen
    assert "65534:65534 /owned-host" in seen, seen
    assert "0:0 /dev" in seen and "0:0 /tmp" in seen, seen
    assert "0:5 /dev/console" in seen, seen  # group tty: container GID 5 is host 400005
    assert "0" in seen and "0:0 /tmp/made" in seen, seen
    made = [p for p in Path(f"/proc/{pid}/root/tmp").iterdir() if p.name == "made"]
    assert made and (made[0].stat().st_uid, made[0].stat().st_gid) == (200000, 200000)
    assert runtime("exec", "--user", "1000:1000", "map2", "id", "-u").stdout.strip() == "1000"
    refused = runtime("exec", "--user", "5000", "map2", "id", "-u", check=False)
    assert refused.returncode != 0
    if is_vzcore:  # named before anything runs (setresuid would fail with EINVAL)
        assert "process.user.uid" in refused.stderr, refused.stderr
    runtime("delete", "--force", "map2")


def test_the_kernels_340_ranges(runtime: Runtime, tmp_path: Path,
                                busybox_image: dict[str, Path]) -> None:
    """As many ranges as the kernel takes (340 lines), written exactly."""
    ranges = [{"containerID": 0, "hostID": 200000, "size": 1},
              *({"containerID": i, "hostID": 1000 + 2 * i, "size": 1} for i in range(1, 340))]
    b = bundle(tmp_path / "bundle", busybox_image["rootfs"], ["sleep", "1000"])
    config = json.loads((b / "config.json").read_text())
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = config["linux"]["gidMappings"] = ranges
    (b / "config.json").write_text(json.dumps(config))
    runtime.create("--bundle", str(b), "--pid-file", str(tmp_path / "pid"), "map340",
                   log=tmp_path / "create.log")
    pid = int((tmp_path / "pid").read_text())
    expected = [[str(r["containerID"]), str(r["hostID"]), "1"] for r in ranges]
    assert _ids(Path(f"/proc/{pid}/uid_map").read_text()) == expected
    assert _ids(Path(f"/proc/{pid}/gid_map").read_text()) == expected
    runtime("delete", "--force", "map340")


def test_a_map_without_the_containers_root_is_refused_by_field(
        runtime: Runtime, tmp_path: Path, busybox_image: dict[str, Path], is_vzcore: bool) -> None:
    if not is_vzcore:
        pytest.skip("vzcore-oci's own refusal (runc and crun run such a container)")
    b, config = userns_bundle(tmp_path / "bundle", busybox_image["rootfs"], ["true"])
    config["linux"]["uidMappings"] = UIDS[1:]
    (b / "config.json").write_text(json.dumps(config))
    refused = runtime("create", "--bundle", str(b), "noroot", check=False)
    assert refused.returncode != 0
    assert "linux.uidMappings" in refused.stderr and "ID 0" in refused.stderr, refused.stderr
    assert "noroot" not in runtime("list").stdout


def _hook(script: str) -> dict[str, Any]:
    return {"path": "/bin/sh", "args": ["sh", "-c", script]}


@pytest.mark.parametrize("userns", [True, False], ids=["userns", "privileged"])
def test_create_hooks_run_in_the_specs_order_before_the_root_switch(
        runtime: Runtime, tmp_path: Path, busybox_image: dict[str, Path], userns: bool) -> None:
    """createRuntime on the host, then createContainer in the container's namespaces (its
    user namespace, as its root) with the container's mounts made and the rootfs at its
    working directory, before the root switch (it sees the host's tree at /); the program
    then finds what the hook wrote in the container's /tmp, a mount of the container's."""
    args = ["sh", "-c", "cat /tmp/hook-saw; sleep 1000"]
    if userns:
        b, config = userns_bundle(tmp_path / "bundle", busybox_image["rootfs"], args)
    else:
        b = bundle(tmp_path / "bundle", busybox_image["rootfs"], args)
        config = json.loads((b / "config.json").read_text())
    pid_of_state = "sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p'"
    config["hooks"] = {
        "createRuntime": [_hook(f"cat > {b}/rootfs/runtime-saw")],
        "createContainer": [_hook(
            f"{{ echo pid=$({pid_of_state}); "
            "test -e ./runtime-saw && echo after-createRuntime; "
            "test -e /etc/debian_version && test -x ./bin/busybox && echo host-tree-and-rootfs; "
            "echo uid=$(id -u); cat /proc/self/uid_map; "
            "for ns in pid net user mnt; do echo $ns=$(readlink /proc/self/ns/$ns); done; "
            "} > ./tmp/hook-saw")],
    }
    (b / "config.json").write_text(json.dumps(config))
    log = tmp_path / "create.log"
    runtime.create("--bundle", str(b), "--pid-file", str(tmp_path / "pid"), "hooks1", log=log)
    pid = int((tmp_path / "pid").read_text())
    # a privileged container's init keeps the mount namespace its mounts were made in; one
    # with a user namespace makes its own below it once released (which locks them)
    same = ("pid", "net", "user") if userns else ("pid", "net", "user", "mnt")
    namespaces = {ns: os.readlink(f"/proc/{pid}/ns/{ns}") for ns in same}
    state = json.loads((b / "rootfs" / "runtime-saw").read_text())
    assert state["status"] == "creating" and state["id"] == "hooks1" and state["pid"] == pid
    runtime("start", "hooks1")
    for _ in range(300):  # a poll for the program's output (one write), not a timed assertion
        if "uid=" in log.read_text():
            break
        time.sleep(0.1)
    seen = log.read_text().split("\n")
    for line in ("after-createRuntime", "host-tree-and-rootfs", "uid=0", f"pid={pid}",
                 *(f"{ns}={link}" for ns, link in namespaces.items())):
        assert line in seen, seen
    assert f"mnt={os.readlink('/proc/self/ns/mnt')}" not in seen  # never the runtime's
    assert f"mnt={os.readlink(f'/proc/{runtime.mountns.holder.pid}/ns/mnt')}" not in seen
    assert [line.split() for line in seen if line.split()[:1] in (["0"], ["1"])] == (
        [["0", "200000", "1"], ["1", "300001", "1999"]] if userns else
        [["0", "0", "4294967295"]]), seen
    runtime("delete", "--force", "hooks1")


@pytest.mark.parametrize("kind", ["createRuntime", "createContainer", "startContainer"])
def test_a_failing_create_or_start_hook_fails_and_leaves_nothing(
        runtime: Runtime, tmp_path: Path, busybox_image: dict[str, Path], kind: str) -> None:
    """The runtime spec: the operation fails, the container is destroyed and the poststop
    hooks run."""
    b = bundle(tmp_path / "bundle", busybox_image["rootfs"], ["sleep", "1000"])
    config = json.loads((b / "config.json").read_text())
    stopped = tmp_path / "poststop-ran"
    config["hooks"] = {kind: [_hook("echo the-hook-said-no >&2; exit 3")],
                       "poststop": [_hook(f"cat > {stopped}")]}
    (b / "config.json").write_text(json.dumps(config))
    cid = f"fail-{kind.lower()}"
    errors = tmp_path / "create.err"  # a file: the container's process inherits it
    with open(tmp_path / "create.log", "w") as out, open(errors, "w") as err:
        created = subprocess.run(runtime.mountns.command([
            str(runtime.binary), "--root", str(runtime.root), "create", "--bundle", str(b), cid]),
            stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True, timeout=120,
            check=False)
    created.stderr = errors.read_text()
    failed = created
    if kind == "startContainer":
        assert created.returncode == 0, created.stderr
        pid = runtime.state(cid)["pid"]
        failed = runtime("start", cid, check=False)
        assert not Path(f"/proc/{pid}").exists() or "sleep" not in Path(
            f"/proc/{pid}/cmdline").read_text()
    assert failed.returncode != 0
    assert f"{kind} hook" in failed.stderr and "the-hook-said-no" in failed.stderr, failed.stderr
    assert runtime("state", cid, check=False).returncode != 0
    assert cid not in runtime("list").stdout
    assert json.loads(stopped.read_text())["status"] == "stopped"
    assert not (runtime.root / "c" / cid).exists()
    roots = runtime.root / "vz" / "vz" / "root"
    assert not roots.exists() or not list(roots.iterdir())
