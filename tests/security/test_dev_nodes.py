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
from vzcore_isolation.rootfs import MASKED

pytestmark = [pytest.mark.root, pytest.mark.needs("busybox")]

HOST_NODES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty",
              "/dev/console", "/dev/ptmx")
CT_NODES = ("null", "zero", "full", "random", "urandom", "tty", "console")
MASKED_FILES = tuple(p for p in MASKED if os.path.isfile("/" + p))
"""The masked /proc files this kernel has (each gets the CT's /dev/null bound over it)."""


def host_view() -> dict[str, tuple[int, int, int, int]]:
    """Mode, owner, group and change time of the host's nodes a CT could reach."""
    view = {}
    for path in HOST_NODES:
        st = os.stat(path)
        view[path] = (st.st_mode, st.st_uid, st.st_gid, st.st_ctime_ns)
    return view


def test_chmod_and_chown_of_the_cts_nodes_leave_the_hosts_alone(ct: RunningCt) -> None:
    assert MASKED_FILES, "no masked /proc file exists on this kernel to try"
    before = host_view()
    # Every step must succeed (exit 1 or 2 says which failed): each is the CT's own node.
    script = (f"for n in {' '.join(CT_NODES)}; do "
              "chmod 600 /dev/$n && chown 0:5 /dev/$n || exit 1; done; "
              f"for f in {' '.join('/' + p for p in MASKED_FILES)}; do "
              "chmod 640 $f && chown 0:5 $f || exit 2; done; echo done")
    result = ct.sh(script)
    assert result.stdout.strip() == "done", (result.returncode, result.stderr)
    assert host_view() == before
    # The CT's changed nodes still work for the CT's root, and are really its own: a
    # masked file is the CT's /dev/null, so its chmod is seen there (and nowhere else).
    assert ct.sh("ls -ln /dev/null").stdout.split()[0] == "crw-r-----"
    assert ct.sh("ls -ln /dev/zero").stdout.split()[0] == "crw-------"
    assert ct.sh("echo x > /dev/null && head -c 3 /dev/zero | wc -c").stdout.strip() == "3"
    # /dev/console is the CT's console pty (devpts, major 136), never the host's console
    assert ct.sh("stat -c %t /dev/console").stdout.strip() == "88"


def test_the_cts_nodes_are_not_the_hosts_inodes(ct: RunningCt) -> None:
    """A node made in the CT's /dev lives on its tmpfs (another device number)."""
    host_dev = os.stat("/dev/null").st_dev
    inside = ct.sh("stat -c %d /dev/null /dev/zero /dev/tty").stdout.split()
    assert inside and all(int(dev) != host_dev for dev in inside)
