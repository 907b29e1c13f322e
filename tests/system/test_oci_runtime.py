"""``vzcore-oci`` driven directly, as runc's CLI, on a bundle made from the busybox
template: the lifecycle (create leaves the process waiting, start releases it), exec,
ps, pause/resume, update, kill, delete leaving nothing; a terminal through the console
socket; the spec's seccomp profile enforced; namespaces joined by path and preserved
descriptors; a refused spec changes nothing."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vzcore.linux import mounts
from vzcore.testing.pytest_plugin import reap_orphans

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]

RUNTIME = str(Path(sys.executable).with_name("vzcore-oci"))
NAMESPACES = [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]
CAPS = ["CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETGID",
        "CAP_SETUID", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT"]


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vzcore_template import busybox

    root = tmp_path_factory.mktemp("oci") / "rootfs"
    root.mkdir()
    busybox.populate(root)
    return root


def config(args: list[str], **process: Any) -> dict[str, Any]:
    return {
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "hostname": "oci-test",
        "process": {"args": args, "cwd": "/", "user": {"uid": 0, "gid": 0},
                    "env": ["PATH=/bin:/sbin:/usr/bin"], "noNewPrivileges": True,
                    "capabilities": {k: CAPS for k in ("bounding", "effective", "permitted")},
                    **process},
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                   {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
                   {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
                    "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
                   {"destination": "/sys", "type": "sysfs", "source": "sysfs",
                    "options": ["nosuid", "noexec", "nodev", "ro"]},
                   {"destination": "/tmp/scratch", "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosuid", "size=1m"]}],
        "linux": {"namespaces": NAMESPACES, "maskedPaths": ["/proc/timer_list"],
                  "readonlyPaths": ["/proc/sys"], "resources": {"pids": {"limit": 40}}},
    }


class Oci:
    """One ``--root`` of vzcore-oci and its bundles."""

    def __init__(self, base: Path, rootfs: Path) -> None:
        self.root = base / "state"
        self.base = base
        self.rootfs = rootfs

    def __call__(self, *args: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run vzcore-oci; a container's process keeps create's (or a detached exec's)
        stdio, so those get files (pass ``stdout=``), never a pipe read to its end."""
        if "create" in args or "--detach" in args:
            kwargs.setdefault("stdout", subprocess.DEVNULL)
            with open(self.base / "stderr", "w+") as err:
                done = subprocess.run([RUNTIME, "--root", str(self.root), *args], stderr=err,
                                      text=True, timeout=120, check=False, **kwargs)
                err.seek(0)
                done.stderr = err.read()
        else:
            done = subprocess.run([RUNTIME, "--root", str(self.root), *args], capture_output=True,
                                  text=True, timeout=120, check=False, **kwargs)
        if check and done.returncode != 0:
            raise AssertionError(f"vzcore-oci {' '.join(args)}: {done.returncode}: {done.stderr}")
        return done

    def bundle(self, name: str, spec: dict[str, Any]) -> Path:
        directory = self.base / name
        directory.mkdir()
        (directory / "rootfs").symlink_to(self.rootfs)
        spec = {**spec, "root": {"path": str(self.rootfs)}}
        (directory / "config.json").write_text(json.dumps(spec))
        return directory

    def state(self, cid: str) -> dict[str, Any]:
        return json.loads(self("state", cid).stdout)


@pytest.fixture
def oci(tmp_path: Path, rootfs: Path) -> Iterator[Oci]:
    runtime = Oci(tmp_path, rootfs)
    yield runtime
    for cid in json.loads(runtime("list", "--format", "json").stdout or "[]"):
        runtime("delete", "--force", cid["id"], check=False)
    left = mounts.mounts_below(runtime.root)
    assert not left, f"mounts left: {left}"


def wait_for(predicate: Any, what: str, limit: float = 30.0) -> None:
    """Wait for ``predicate``, reaping the container processes that were reparented to
    this (subreaper) test process meanwhile: a dead init stays a zombie until then, and
    its PID namespace with it, as under conmon or containerd's shim."""
    deadline = time.monotonic() + limit
    while True:
        reap_orphans()
        if predicate():
            return
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def test_a_container_lives_through_runcs_verbs_and_leaves_nothing(oci: Oci, rootfs: Path) -> None:
    marker = rootfs / "tmp" / "started"
    marker.unlink(missing_ok=True)
    bundle = oci.bundle("b1", config(["sh", "-c", "hostname > /tmp/started; exec sleep 1000"]))
    pid_file = oci.base / "pid"
    oci("create", "--bundle", str(bundle), "--pid-file", str(pid_file), "c1")
    state = oci.state("c1")
    assert state["status"] == "created" and state["pid"] == int(pid_file.read_text())
    assert state["bundle"] == str(bundle)
    assert not marker.exists(), "the program ran before start"
    ctid = oci("ctid", "c1").stdout.split()[0]

    oci("start", "c1")
    wait_for(marker.exists, "the program to run")
    assert marker.read_text() == "oci-test\n"
    assert oci.state("c1")["status"] == "running"

    process = config(["sh", "-c", "id -u; cat /proc/self/status | grep -E '^(CapEff|NoNewPrivs)'; "
                                  "grep -m1 ' /proc/sys proc ro,' /proc/mounts; "
                                  "stat -c %t,%T /proc/timer_list; "
                                  "grep ' /tmp/scratch ' /proc/mounts"])["process"]
    (oci.base / "p.json").write_text(json.dumps({**process, "user": {"uid": 1000, "gid": 1000}}))
    done = oci("exec", "--process", str(oci.base / "p.json"), "c1")
    lines = done.stdout.splitlines()
    assert lines[0] == "1000"
    assert lines[1].split()[1] == "0000000000000000", "a non-root user keeps no capability"
    assert lines[2].split()[1] == "1"
    assert lines[3].startswith("proc /proc/sys proc ro,")
    assert lines[4] == "1,3", "/proc/timer_list is masked with /dev/null"
    assert lines[5].startswith("tmpfs /tmp/scratch tmpfs")
    assert oci("exec", "c1", "sh", "-c", "exit 7", check=False).returncode == 7

    exec_pid = oci.base / "exec.pid"
    oci("exec", "--detach", "--pid-file", str(exec_pid), "c1", "sleep", "1000")
    pids = json.loads(oci("ps", "--format", "json", "c1").stdout)
    assert int(exec_pid.read_text()) in pids and state["pid"] in pids

    oci("pause", "c1")
    assert oci.state("c1")["status"] == "paused"
    oci("resume", "c1")
    assert oci.state("c1")["status"] == "running"

    oci("update", "--resources", "-", "c1", input=json.dumps({"pids": {"limit": 20}}))
    counters = json.loads(oci("ubc", "-j", "c1").stdout)
    assert counters[0]["numproc"]["limit"] == 20

    oci("kill", "c1", "KILL")
    wait_for(lambda: oci.state("c1")["status"] == "stopped", "the container to stop")
    oci("delete", "c1")
    assert oci("state", "c1", check=False).returncode == 1
    assert not list((oci.root / "c").iterdir())
    assert not (oci.root / "vz" / "etc" / "vz" / "conf" / f"{ctid}.conf").exists()
    assert not (oci.root / "vz" / "run" / "vz" / f"{ctid}.json").exists()


def test_a_terminal_goes_through_the_console_socket(oci: Oci) -> None:
    bundle = oci.bundle("tty", config(["sh", "-c", "tty; stty size"], terminal=True,
                                      consoleSize={"height": 30, "width": 100}))
    path = str(oci.base / "console.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(path)
        server.listen(1)
        oci("create", "--bundle", str(bundle), "--console-socket", path, "t1")
        connection, _ = server.accept()
        with connection:
            _message, fds, _flags, _addr = socket.recv_fds(connection, 1024, 1)
    master = fds[0]
    try:
        oci("start", "t1")
        output = b""
        while b"100" not in output:
            try:
                chunk = os.read(master, 1024)
            except OSError:  # EIO: the last slave descriptor closed
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(master)
    assert b"/dev/pts/0" in output and b"30 100" in output
    oci("delete", "--force", "t1")


def test_the_specs_seccomp_profile_is_enforced(oci: Oci) -> None:
    spec = config(["sh", "-c", "mkdir /tmp/scratch/x; echo status=$?"])
    spec["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": 13}]}
    bundle = oci.bundle("sc", spec)
    with open(oci.base / "out", "w") as out:
        oci("create", "--bundle", str(bundle), "s1", stdout=out)
    oci("start", "s1")
    wait_for(lambda: "status=" in (oci.base / "out").read_text(), "the program's output")
    text = (oci.base / "out").read_text()
    assert "Permission denied" in text or "status=1" in text, text
    oci("delete", "--force", "s1")


def test_a_refused_spec_changes_nothing(oci: Oci) -> None:
    spec = config(["true"])
    spec["linux"]["intelRdt"] = {"closID": "x"}
    bundle = oci.bundle("bad", spec)
    log = oci.base / "log.json"
    done = oci("--log", str(log), "--log-format", "json", "create", "--bundle", str(bundle), "x1",
               check=False)
    assert done.returncode == 1
    assert "config.json: linux.intelRdt: not supported" in done.stderr
    assert json.loads(log.read_text().splitlines()[-1])["level"] == "error"
    assert not (oci.root / "c").exists() or not list((oci.root / "c").iterdir())
    conf = oci.root / "vz" / "etc" / "vz" / "conf"
    assert not conf.exists() or not list(conf.iterdir())


def test_a_process_of_another_user_leaves_the_hosts_dev_null_alone(oci: Oci) -> None:
    """Its stdio is the host's /dev/null (what an engine gives a process without input or
    output): nothing may chown or chmod it (runc chowns only stdio it was given for the
    container, never a device)."""
    before = os.stat("/dev/null")
    spec = config(["sh", "-c", "id -u > /dev/stderr; exec sleep 1000"],
                  user={"uid": 1000, "gid": 1000, "additionalGids": [1000]})
    bundle = oci.bundle("user", spec)
    with open(os.devnull, "r+") as null:
        oci("create", "--bundle", str(bundle), "u1", stdin=null, stdout=null)
        oci("start", "u1")
        done = oci("exec", "--user", "1000:1000", "u1", "sh", "-c", "id -u; ls -ln /dev/null",
                   stdin=null)
    assert done.stdout.splitlines()[0] == "1000"
    oci("delete", "--force", "u1")
    after = os.stat("/dev/null")
    assert (after.st_uid, after.st_gid, after.st_mode, after.st_ctime_ns) == \
        (before.st_uid, before.st_gid, before.st_mode, before.st_ctime_ns)


def test_the_process_joins_namespaces_by_path_and_keeps_preserved_fds(oci: Oci) -> None:
    """A spec's network and UTS namespaces given by path are the process's (the start's
    holder entered them before it forked init), and ``--preserve-fds 1`` hands create's
    descriptor 3 to the process as its 3 (init inherits create's descriptors)."""
    owner = subprocess.Popen(["unshare", "--net", "--uts", "sh", "-c", "echo ready; exec sleep 1000"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None and owner.stdout.readline() == "ready\n"
        spec = config(["sh", "-c", "readlink /proc/self/ns/net; readlink /proc/self/ns/uts; echo kept >&3"])
        spec["linux"]["namespaces"] = [
            *[n for n in NAMESPACES if n["type"] not in ("network", "uts")],
            {"type": "network", "path": f"/proc/{owner.pid}/ns/net"},
            {"type": "uts", "path": f"/proc/{owner.pid}/ns/uts"}]
        del spec["hostname"]  # the joined UTS namespace is not the container's to name
        bundle = oci.bundle("joined", spec)
        kept = oci.base / "kept"
        with open(oci.base / "out", "w") as out:
            subprocess.run(["sh", "-c", f'exec "$@" 3>{kept}', "sh", RUNTIME, "--root", str(oci.root),
                            "create", "--preserve-fds", "1", "--bundle", str(bundle), "j1"],
                           stdout=out, check=True, timeout=120)
        oci("start", "j1")
        wait_for(lambda: kept.read_text() == "kept\n", "the preserved descriptor's line")
        lines = (oci.base / "out").read_text().split()
        assert lines == [os.readlink(f"/proc/{owner.pid}/ns/net"),
                         os.readlink(f"/proc/{owner.pid}/ns/uts")]
        oci("delete", "--force", "j1")
    finally:
        owner.kill()
        owner.wait()


CREATE_POINTS = ("oci:recorded", "oci:configured", "start:state-saved", "start:forked",
                 "start:init-recorded", "start:released", "oci:created")


def test_a_create_killed_at_any_point_is_cleaned_by_delete_force(oci: Oci) -> None:
    """vzcore-oci killed (SIGKILL) at each step of create: ``state`` still answers, and
    ``delete --force`` leaves no process, mount, group, config or state behind."""
    from vzcore.ctgroups import group_name
    from vzcore.linux import cgroups
    from vzcore.paths import Paths

    bundle = oci.bundle("crash", config(["sleep", "1000"]))
    for point in CREATE_POINTS:
        env = {**os.environ, "VZ_FAULT_KILL_AT": point}
        done = oci("create", "--bundle", str(bundle), "k1", check=False, env=env)
        assert done.returncode == -9, f"{point}: {done.returncode} {done.stderr}"
        assert oci.state("k1")["status"] in ("created", "stopped"), point
        oci("delete", "--force", "k1")
        reap_orphans()
        assert oci("state", "k1", check=False).returncode == 1, point
        assert not list((oci.root / "c").iterdir()), point
        assert not list((oci.root / "vz" / "etc" / "vz" / "conf").iterdir()), point
        assert not list((oci.root / "vz" / "run" / "vz").glob("*.json")), point
        assert not mounts.mounts_below(oci.root), point
        name = group_name(Paths(oci.root / "vz"), 101)
        left = [d / name for d in cgroups.parent_dirs("vzcore-oci") if (d / name).exists()]
        assert not left, f"{point}: groups left: {left}"


def _host_namespaces_spec(args: list[str]) -> dict[str, Any]:
    """A spec without any namespace: the container shares every one of the runtime's."""
    spec = config(args)
    spec["linux"]["namespaces"] = []
    del spec["hostname"]  # the host's UTS namespace is not the container's to name
    spec["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                           "options": ["ro", "nosuid", "noexec", "nodev"]})
    return spec


def test_a_container_without_namespaces_shares_the_runtimes_and_leaves_no_mount(
        oci: Oci, rootfs: Path) -> None:
    """Every namespace is this process's (runtime-tools' linux_ns_itype); its view is
    built in this mount namespace below its root, propagates nowhere (not to the rootfs
    it is bound from) and is gone after delete; the host's name is left alone."""
    hostname = Path("/proc/sys/kernel/hostname").read_text()
    bundle = oci.bundle("host", _host_namespaces_spec(
        ["sh", "-c", "echo $$; ls /; grep -c . /proc/self/mountinfo; exec sleep 1000"]))
    out = oci.base / "out"
    with open(out, "w") as f:
        oci("create", "--bundle", str(bundle), "h1", stdout=f)
    pid = oci.state("h1")["pid"]
    for name in ("cgroup", "ipc", "mnt", "net", "pid", "user", "uts"):
        assert os.readlink(f"/proc/{pid}/ns/{name}") == os.readlink(f"/proc/self/ns/{name}"), name
    ct_root = Path(os.readlink(f"/proc/{pid}/root"))
    assert ct_root.is_relative_to(oci.root) and mounts.is_mount_point(ct_root / "proc")
    assert not mounts.is_mount_point(rootfs / "proc"), "the view propagated to the rootfs"
    oci("start", "h1")
    wait_for(lambda: len(out.read_text().split()) > 3, "the program's output")
    words = out.read_text().split()
    assert words[0] != "1" and "bin" in words and "root" in words
    done = oci("exec", "h1", "sh", "-c", "ls /sys/fs/cgroup >/dev/null && readlink /proc/1/root; "
               "cat /proc/self/cgroup >/dev/null; ls /tmp/scratch && echo scratch")
    assert "scratch" in done.stdout.split()
    oci("delete", "--force", "h1")
    assert not mounts.mounts_below(oci.root)
    assert Path("/proc/sys/kernel/hostname").read_text() == hostname


def test_what_needs_a_namespace_of_its_own_is_refused_without_one(oci: Oci) -> None:
    for change, field in ((lambda s: s.update(hostname="x"), "hostname"),
                          (lambda s: s["linux"].update(sysctl={"net.ipv4.ip_forward": "1"}),
                           "linux.sysctl.net.ipv4.ip_forward"),
                          (lambda s: s["linux"].update(sysctl={"vm.swappiness": "1"}),
                           "linux.sysctl.vm.swappiness")):
        spec = _host_namespaces_spec(["true"])
        change(spec)
        done = oci("create", "--bundle", str(oci.bundle(f"bad-{field}", spec)), "r1", check=False)
        assert done.returncode == 1 and f"config.json: {field}:" in done.stderr, done.stderr
        assert not (oci.root / "c").exists() or not list((oci.root / "c").iterdir())


def test_mount_and_pid_namespaces_joined_by_path(oci: Oci, rootfs: Path) -> None:
    """A mount and a PID namespace given by path (runtime-tools' linux_ns_path): the
    process is in them (not PID 1 there), its root is root.path as that namespace shows it,
    the namespace's own processes keep their root, and delete unmounts the view there."""
    owner = subprocess.Popen(["unshare", "--mount", "--pid", "--fork", "sh", "-c",
                              "echo ready; exec sleep 1000"], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None and owner.stdout.readline() == "ready\n"
        inside = int(subprocess.run(["pgrep", "-P", str(owner.pid)], capture_output=True,
                                    text=True, check=True).stdout.split()[0])
        spec = config(["sh", "-c", "echo $$; exec sleep 1000"])
        spec["linux"]["namespaces"] = [
            *[n for n in NAMESPACES if n["type"] not in ("mount", "pid")],
            {"type": "mount", "path": f"/proc/{inside}/ns/mnt"},
            {"type": "pid", "path": f"/proc/{inside}/ns/pid"}]
        bundle = oci.bundle("joinedmnt", spec)
        out = oci.base / "out"
        with open(out, "w") as f:
            oci("create", "--bundle", str(bundle), "m1", stdout=f)
        pid = oci.state("m1")["pid"]
        for name in ("mnt", "pid"):
            assert os.readlink(f"/proc/{pid}/ns/{name}") == os.readlink(f"/proc/{inside}/ns/{name}")
        oci("start", "m1")
        wait_for(lambda: out.read_text().strip() != "", "the program's PID")
        assert out.read_text().split()[0] != "1"
        assert os.readlink(f"/proc/{inside}/root") == "/", "the namespace's process was moved"
        view = [e for e in mounts.mountinfo(inside) if e.mount_point.startswith(str(rootfs))]
        assert view, "the view is not in the joined namespace"
        oci("delete", "--force", "m1")
        left = [e for e in mounts.mountinfo(inside) if e.mount_point.startswith(str(rootfs))]
        assert not left, f"left in the joined namespace: {left}"
    finally:
        owner.kill()
        owner.wait()


def test_a_create_sharing_the_hosts_mount_namespace_killed_is_cleaned(oci: Oci) -> None:
    """After the view was built in this mount namespace (and after create ended), a
    killed vzcore-oci leaves mounts that ``delete --force`` removes."""
    bundle = oci.bundle("crash-host", _host_namespaces_spec(["sleep", "1000"]))
    for point in ("start:released", "oci:created"):
        env = {**os.environ, "VZ_FAULT_KILL_AT": point}
        done = oci("create", "--bundle", str(bundle), "k2", check=False, env=env)
        assert done.returncode == -9, f"{point}: {done.returncode} {done.stderr}"
        assert mounts.mounts_below(oci.root), f"{point}: nothing was mounted yet"
        oci("delete", "--force", "k2")
        reap_orphans()
        assert not mounts.mounts_below(oci.root), point


def test_vzctl_stop_never_halts_a_joined_pid_namespaces_init(oci: Oci) -> None:
    """``vzctl stop`` of a container that is not PID 1 of its PID namespace: the
    isolation plugin's ``halt`` inside would signal that namespace's PID 1 (with
    ``--pid=host`` the host's init); the container's process gets SIGTERM instead."""
    marks = oci.base / "signals"
    # PID 1 there notes every signal it gets (a namespace's init gets only those it has a
    # handler for); USR2 is the test's own probe, sent last
    owner = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", "sh", "-c",
                              f"for s in USR1 TERM PWR INT HUP; do trap \"echo $s >> {marks}\" $s; done; "
                              f"trap 'echo probe >> {marks}' USR2; "
                              "while :; do sleep 1000 & wait $!; done"])
    try:
        wait_for(lambda: subprocess.run(["pgrep", "-P", str(owner.pid)], capture_output=True)
                 .returncode == 0, "the namespace's init")
        inside = int(subprocess.run(["pgrep", "-P", str(owner.pid)], capture_output=True,
                                    text=True, check=True).stdout.split()[0])
        spec = config(["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"])
        spec["linux"]["namespaces"] = [
            *[n for n in NAMESPACES if n["type"] != "pid"],
            {"type": "pid", "path": f"/proc/{inside}/ns/pid"}]
        oci("create", "--bundle", str(oci.bundle("stopme", spec)), "s1")
        oci("start", "s1")
        ctid, vz_root = oci("ctid", "s1").stdout.split()
        vzctl = str(Path(RUNTIME).with_name("vzctl"))
        subprocess.run([vzctl, "stop", ctid], env={**os.environ, "VZ_ROOT": vz_root},
                       check=True, capture_output=True, timeout=120)
        wait_for(lambda: oci.state("s1")["status"] == "stopped", "the container to stop")
        os.kill(inside, signal.SIGUSR2)
        wait_for(lambda: marks.exists() and "probe" in marks.read_text(), "the probe signal")
        assert marks.read_text().split() == ["probe"], "the joined namespace's init was signalled"
        oci("delete", "s1")
    finally:
        owner.kill()
        owner.wait()
