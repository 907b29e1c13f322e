"""A CT's device nodes are its own: changing them inside never changes the host's.

Found while booting systemd in a privileged CT: the CT's /dev/null (and /dev/console,
and every masked /proc file) were bind mounts of the host's /dev/null, so the CT's root,
or its systemd fixing the console's owner and mode (root:tty 0620), changed the host's
/dev/null, and every user on the host got "Permission denied" opening it.
"""

from __future__ import annotations

import os

import pytest

from tests.security.conftest import RunningCt

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]

HOST_NODES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty")


def host_view() -> dict[str, tuple[int, int, int, int]]:
    """Mode, owner, group and change time of the host's nodes the CTs get."""
    view = {}
    for path in HOST_NODES:
        st = os.stat(path)
        view[path] = (st.st_mode, st.st_uid, st.st_gid, st.st_ctime_ns)
    return view


def test_chmod_and_chown_of_the_cts_nodes_leave_the_hosts_alone(ct: RunningCt) -> None:
    before = host_view()
    script = ("for n in null zero full random urandom tty; do "
              "chmod 600 /dev/$n && chown 0:5 /dev/$n || exit 1; done; "
              "chmod 600 /proc/kcore /proc/keys 2>/dev/null; echo done")
    result = ct.sh(script)
    assert result.stdout.strip() == "done", result.stderr
    assert host_view() == before
    # The CT's changed nodes still work for the CT's root, and are really its own.
    assert ct.sh("ls -ln /dev/null").stdout.split()[0] == "crw-------"
    assert ct.sh("echo x > /dev/null && head -c 3 /dev/zero | wc -c").stdout.strip() == "3"


def test_the_cts_nodes_are_not_the_hosts_inodes(ct: RunningCt) -> None:
    """A node made in the CT's /dev lives on its tmpfs (another device number)."""
    host_dev = os.stat("/dev/null").st_dev
    inside = ct.sh("stat -c %d /dev/null /dev/zero /dev/tty").stdout.split()
    assert inside and all(int(dev) != host_dev for dev in inside)
