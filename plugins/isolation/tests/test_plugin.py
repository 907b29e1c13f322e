"""The isolation plugin's hooks, exercised on the real kernel in forked children."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest

from vzcore.idmap import IdMap
from vzcore.linux import mounts, namespaces
from vzcore_isolation import capabilities, plugin

pytestmark = pytest.mark.root


def in_child(function) -> int:  # type: ignore[no-untyped-def]
    """Run ``function`` in a forked child in a new mount namespace; return its exit code."""
    pid = os.fork()
    if pid == 0:
        try:
            namespaces.unshare(["mnt"])
            mounts.make_private("/")
            os._exit(function())
        except BaseException as exc:  # the child reports through its exit code
            os.write(2, f"{exc!r}\n".encode())
            os._exit(99)
    _pid, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_vz_switch_root_makes_the_ct_root_slash(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/marker").write_text("inside")

    def child() -> int:
        mounts.bind(root, root)
        os.chdir(root)
        switched = plugin.vz_switch_root(SimpleNamespace(), SimpleNamespace(root=str(root),
                                                                            options={}))
        old_root_gone = not os.path.exists(str(tmp_path))
        return 0 if switched and Path("/etc/marker").read_text() == "inside" and old_root_gone else 1

    assert in_child(child) == 0


def test_vz_switch_root_chroots_in_a_mount_namespace_not_the_cts(tmp_path: Path) -> None:
    """A start sharing its caller's mount namespace (an OCI spec without one): pivot_root
    would move the root of every process there, so the builder chroots, leaves the
    mount tree as it was, and tells init where to chroot too."""
    from vzcore.lifecycle.spawn import CHROOT_OPTION, SHARE_OPTION

    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/marker").write_text("inside")

    def child() -> int:
        mounts.bind(root, root)
        os.chdir(root)
        # Another process of the namespace: pivot_root would move its root and drop the
        # old tree from what it sees; /proc is out of this root after the switch.
        other = os.fork()
        if other == 0:
            signal.pause()
            os._exit(0)
        proc = os.open(f"/proc/{other}", os.O_PATH | os.O_DIRECTORY)

        def tree() -> str:
            fd = os.open("mountinfo", os.O_RDONLY, dir_fd=proc)
            try:
                return os.read(fd, 1 << 20).decode()
            finally:
                os.close(fd)

        try:
            before = tree()
            run = SimpleNamespace(root=str(root), options={SHARE_OPTION: ["mnt"]})
            switched = plugin.vz_switch_root(SimpleNamespace(), run)
            inside = Path("/etc/marker").read_text() == "inside"
            same_tree = tree() == before
        finally:
            os.kill(other, signal.SIGKILL)
        told = run.options.get(CHROOT_OPTION) == str(root)
        return 0 if switched and inside and same_tree and told else 1

    assert in_child(child) == 0


def test_namespaces_cover_what_a_ct_needs() -> None:
    base = {"pid", "mnt", "uts", "ipc", "net", "cgroup"}
    assert set(plugin.vz_namespaces(SimpleNamespace(idmap=None))) == base
    assert set(plugin.vz_namespaces(SimpleNamespace(idmap=IdMap(100000, 100000)))) == base | {"user"}


def test_capability_settings() -> None:
    assert capabilities.merge(None, [(("sys_time", True),)]) == "SYS_TIME:on"
    assert capabilities.merge("SYS_TIME:on", [(("net_admin", False), ("sys_time", False))]) == \
        "NET_ADMIN:off SYS_TIME:off"
    kept = capabilities.kept("SYS_TIME:on NET_ADMIN:off")
    assert 25 in kept and 12 not in kept and 16 not in kept
    with pytest.raises(capabilities.CapabilityError, match="unknown capability"):
        capabilities.parse_setting("sys_bogus:on")
    with pytest.raises(capabilities.CapabilityError, match="NAME:on or NAME:off"):
        capabilities.parse_setting("sys_time:maybe")
