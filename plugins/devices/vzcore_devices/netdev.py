"""Host network interfaces passed into a CT (NETDEV) and back, with iproute2.

An interface moves into the CT's network namespace with its addresses and its up state:
moving it between namespaces drops its addresses, so they are read first, recorded, and
added again inside; on the way back the recorded ones are added on the host again.

Coming back is the reason for :data:`holder files <vzcore_devices.record.DevicesRecord.netns>`:
when a network namespace dies, the kernel destroys the virtual interfaces in it (a veth
end, a dummy, a macvlan) and moves only physical ones back, to the *initial* namespace,
whichever namespace they came from.  So the CT's namespace is bind-mounted on a file
under the run directory while the CT has interfaces of the host's: stop, and the next
command after its init died on its own, still find the namespace and move every
interface back to the namespace of the vzctl that runs it (the host's) before the file
is unmounted and the namespace ends.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

from vzcore.errors import VzError
from vzcore.linux import mounts
from vzcore_devices.record import Netdev


class NetdevError(VzError):
    """An interface could not be moved or configured."""

    exit_code = 130  # VZ_VETH_ERROR: the nearest of vzctl's network device errors


def _ip(args: Sequence[str], netns: str | None = None, check: bool = True) -> str:
    argv = ["ip", *args]
    if netns is not None:
        argv = ["nsenter", f"--net={netns}", "--", *argv]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise NetdevError(f"{' '.join(args)}: {result.stderr.strip() or 'failed'}")
    return result.stdout


def exists(name: str, netns: str | None = None) -> bool:
    """Whether interface ``name`` is in the caller's network namespace (or ``netns``)."""
    if netns is None:
        # not /sys/class/net: sysfs shows the namespace of whoever mounted it
        try:
            socket.if_nametoindex(name)
        except OSError:
            return False
        return True
    return bool(_ip(["-o", "link", "show", "dev", name], netns, check=False).strip())


def describe(name: str) -> Netdev:
    """Host interface ``name`` with its global addresses and up state."""
    shown = json.loads(_ip(["-j", "addr", "show", "dev", name]) or "[]")
    if not shown:
        raise NetdevError(f"interface {name} is not on the host")
    info = shown[0]
    addresses = tuple(f"{a['local']}/{a['prefixlen']}" for a in info.get("addr_info", ())
                      if a.get("scope") == "global")
    return Netdev(name=name, addresses=addresses, up="UP" in info.get("flags", ()))


def hold(netns_of_pid: int, holder: Path) -> None:
    """Bind-mount the network namespace of ``netns_of_pid`` on ``holder`` (made if missing)."""
    holder.parent.mkdir(parents=True, exist_ok=True)
    if mounts.is_mount_point(holder):
        return
    holder.touch(exist_ok=True)
    mounts.bind(f"/proc/{netns_of_pid}/ns/net", holder)


def release(holder: Path) -> None:
    """Unmount and remove ``holder``: the namespace ends once nothing else uses it."""
    if holder.exists():
        mounts.umount(holder, detach=True)
        holder.unlink(missing_ok=True)


def held(holder: str | None) -> bool:
    return holder is not None and mounts.is_mount_point(holder)


def move_in(netdev: Netdev, netns: str) -> None:
    """Move host interface ``netdev.name`` into ``netns`` and configure it as it was."""
    _ip(["link", "set", "dev", netdev.name, "netns", netns])
    _configure(netdev, netns)


def move_out(netdev: Netdev, netns: str) -> bool:
    """Move ``netdev.name`` from ``netns`` back to the caller's namespace and configure it
    as it was on the host; False when it is not in ``netns`` (gone already)."""
    if not exists(netdev.name, netns):
        return False
    _ip(["link", "set", "dev", netdev.name, "down"], netns, check=False)
    _ip(["link", "set", "dev", netdev.name, "netns", str(os.getpid())], netns)
    _configure(netdev, None)
    return True


def _configure(netdev: Netdev, netns: str | None) -> None:
    for address in netdev.addresses:
        # replace: the address may be there already (a move that was retried)
        _ip(["addr", "replace", address, "dev", netdev.name], netns)
    if netdev.up:
        _ip(["link", "set", "dev", netdev.name, "up"], netns)
