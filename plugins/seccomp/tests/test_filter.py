"""The default filter on the real kernel, installed in a forked child."""

from __future__ import annotations

import ctypes
import errno
import json
import os

import pytest

from vzcore.linux import libc, seccomp
from vzcore_seccomp import policy

pytestmark = pytest.mark.root


def errno_of(name: str) -> int:
    """Call ``name`` with harmless arguments; 0 if it succeeded, else its errno."""
    number = seccomp.SYSCALLS[name][os.uname().machine]
    result = libc.syscall_number(number, 0, 0, 0)
    return 0 if result != -1 else ctypes.get_errno()


def test_denied_calls_fail_with_the_policy_errno_and_others_work() -> None:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        try:
            seccomp.install(seccomp.deny_filter(policy.denied()))
            results = {name: errno_of(name) for name in ("init_module", "keyctl", "syslog", "bpf")}
            results["getpid"] = 0 if os.getpid() > 0 else -1
            os.write(write_fd, json.dumps(results).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    results = json.loads(os.read(read_fd, 4096).decode())
    os.close(read_fd)
    os.waitpid(pid, 0)
    assert results == {"init_module": errno.EPERM, "keyctl": errno.ENOSYS,
                       "syslog": errno.EPERM, "bpf": errno.EPERM, "getpid": 0}


def _in_filtered_child(privileged: bool, calls: dict[str, tuple[str, tuple[int, ...]]]) -> dict[str, int]:
    """Install the profile's filter in a forked child, make each call (name, arguments)
    and return its errno (0: it succeeded)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        try:
            seccomp.install(seccomp.deny_filter(policy.denied(privileged), rules=policy.rules()))
            results = {}
            for label, (name, args) in calls.items():
                number = seccomp.SYSCALLS[name][os.uname().machine]
                failed = libc.syscall_number(number, *args) == -1
                results[label] = ctypes.get_errno() if failed else 0
            os.write(write_fd, json.dumps(results).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    results = json.loads(os.read(read_fd, 4096).decode())
    os.close(read_fd)
    os.waitpid(pid, 0)
    return results


def test_privileged_profile_refuses_the_mount_table_freezing_and_device_nodes(tmp_path) -> None:
    """Arguments that would succeed for the host's root (an invalid mount point, an fd
    of a directory, a path that exists) so that only the filter can refuse; EINVAL,
    ENOTTY or EEXIST show the call got past it."""
    root_fd = os.open("/", os.O_RDONLY)
    (tmp_path / "node").write_text("")
    node = ctypes.c_char_p(str(tmp_path / "node").encode())
    address = ctypes.cast(node, ctypes.c_void_p).value or 0
    calls = {
        "mount": ("mount", (0, 0, 0, 0, 0)),
        "umount2": ("umount2", (0, 0)),
        "fsopen": ("fsopen", (0, 0)),
        "move_mount": ("move_mount", (-1, 0, -1, 0, 0)),
        "freeze": ("ioctl", (root_fd, policy.FIFREEZE, 0)),
        "thaw": ("ioctl", (root_fd, policy.FITHAW, 0)),
        "other ioctl": ("ioctl", (root_fd, 0x5401, 0)),  # TCGETS: ENOTTY from the kernel
        "block node": ("mknodat", (-100, address, 0o060600, 0x700)),
        "null node": ("mknodat", (-100, address, 0o020666, 0x103)),
        "loop-control node": ("mknodat", (-100, address, 0o020600, policy._dev(10, 237))),
    }
    try:
        privileged = _in_filtered_child(True, calls)
        userns = _in_filtered_child(False, calls)
    finally:
        os.close(root_fd)
    assert privileged == {
        "mount": errno.EPERM, "umount2": errno.EPERM, "fsopen": errno.ENOSYS,
        "move_mount": errno.ENOSYS, "freeze": errno.EPERM, "thaw": errno.EPERM,
        "other ioctl": errno.ENOTTY, "block node": errno.EPERM, "null node": errno.EEXIST,
        "loop-control node": errno.EPERM}
    # The user-namespace profile keeps mount(2) (the kernel confines it); argument rules
    # are the same in both.
    assert userns["mount"] not in (0, errno.EPERM) and userns["fsopen"] != errno.ENOSYS
    assert {k: userns[k] for k in ("freeze", "block node", "null node")} == {
        "freeze": errno.EPERM, "block node": errno.EPERM, "null node": errno.EEXIST}
