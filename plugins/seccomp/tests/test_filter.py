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
