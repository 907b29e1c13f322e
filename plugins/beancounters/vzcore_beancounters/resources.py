"""The User Beancounters: names, units, rows, options and vzlist headers (pure data).

Everything here is OpenVZ's own vocabulary (reference §2.4, §4, §5.1): the 21 resources,
their row in ``/proc/user_beancounters`` (with the four ``dummy`` rows of the old kernel
ABI), the unit each one is counted in, the short options of legacy vzctl, and the vzlist
headers.
"""

from __future__ import annotations

import attrs

from vzcore.values import LONG_MAX, PAGE_SIZE

BYTES = "bytes"
PAGES = "pages"
ITEMS = "items"

UNIT_SIZE = {BYTES: 1, PAGES: PAGE_SIZE, ITEMS: 0}
"""How :class:`vzcore.values.Size` counts each unit (0: a plain count, no suffixes)."""


@attrs.frozen
class Resource:
    """One beancounter.

    :ivar name: OpenVZ's name (``numproc``); the option is ``--NAME``, the config key the
        upper-case name.
    :ivar unit: ``bytes``, ``pages`` or ``items``.
    :ivar header: vzlist's column header (``NPROC``).
    :ivar short: legacy vzctl's one-letter option, if it has one.
    :ivar help: one line for ``vzctl set --help``.
    :ivar minimum: the smallest ``barrier[:limit]`` (option text, each part compared) with
        which a CT still runs its init and a joined command (``vzctl exec`` costs one task
        of the CT for vzctl's joining process and one for the command); 0 where no value
        can stop a CT (accounted only, or a feature init does not need).
    """

    name: str
    unit: str
    header: str
    help: str
    short: str | None = None
    aliases: tuple[str, ...] = ()
    minimum: str = "0"

    @property
    def key(self) -> str:
        return self.name.upper()


RESOURCES: tuple[Resource, ...] = (
    Resource("kmemsize", BYTES, "KMEMSIZE", "unswappable kernel memory of the CT", short="k",
             minimum="0:8M"),
    Resource("lockedpages", PAGES, "LOCKEDP", "memory locked with mlock(), per process", short="l"),
    Resource("privvmpages", PAGES, "PRIVVMP", "private memory allocated (accounted only)"),
    Resource("shmpages", PAGES, "SHMP", "SysV and POSIX shared memory (/dev/shm)",
             minimum="1"),
    Resource("numproc", ITEMS, "NPROC", "processes and threads", short="p", minimum="8"),
    Resource("physpages", PAGES, "PHYSP", "RAM: the limit caps the CT's memory (see --ram)",
             minimum="0:32M"),
    Resource("vmguarpages", PAGES, "VMGUARP", "memory allocation guarantee (accounted only)"),
    Resource("oomguarpages", PAGES, "OOMGUARP", "out-of-memory guarantee (accounted only)"),
    Resource("numtcpsock", ITEMS, "NTCPSOCK", "TCP sockets (accounted only)"),
    Resource("numflock", ITEMS, "NFLOCK", "file locks (accounted only)", short="f"),
    Resource("numpty", ITEMS, "NPTY", "pseudo-terminals", short="t", minimum="1"),
    Resource("numsiginfo", ITEMS, "NSIGINFO", "queued signals, per user", short="i",
             minimum="16"),
    Resource("tcpsndbuf", BYTES, "TCPSNDB", "TCP send buffers (with tcprcvbuf on cgroup v1)"),
    Resource("tcprcvbuf", BYTES, "TCPRCVB", "TCP receive buffers (with tcpsndbuf on cgroup v1)",
             short="b"),
    Resource("othersockbuf", BYTES, "OTHSOCKB", "other socket send buffers (accounted only)"),
    Resource("dgramrcvbuf", BYTES, "DGRAMRB", "datagram receive buffers (accounted only)"),
    Resource("numothersock", ITEMS, "NOTHSOCK", "non-TCP sockets (accounted only)"),
    Resource("dcachesize", BYTES, "DCACHESZ", "dentry and inode caches (accounted only)",
             short="x", aliases=("DCACHE",)),
    Resource("numfile", ITEMS, "NFILE", "open files, per process", short="n", minimum="32"),
    Resource("numiptent", ITEMS, "NIPTENT", "netfilter rules (not accounted)", short="e",
             aliases=("IPTENTRIES",)),
    Resource("swappages", PAGES, "SWAPP", "swap: the limit caps the CT's swap (see --swap)"),
)

BY_NAME = {r.name: r for r in RESOURCES}

DUMMY = "dummy"
ROWS: tuple[str, ...] = (
    "kmemsize", "lockedpages", "privvmpages", "shmpages", DUMMY, "numproc", "physpages",
    "vmguarpages", "oomguarpages", "numtcpsock", "numflock", "numpty", "numsiginfo",
    "tcpsndbuf", "tcprcvbuf", "othersockbuf", "dgramrcvbuf", "numothersock", "dcachesize",
    "numfile", DUMMY, DUMMY, DUMMY, "numiptent",
)
"""The rows of ``/proc/user_beancounters`` in the kernel's order (indices 0-23);
``swappages`` (index 24) is not in that file."""

UNLIMITED = LONG_MAX


def default_pair(name: str, host_pages: int) -> tuple[int, int]:
    """A new beancounter's barrier and limit when the config sets none (OpenVZ: all
    unlimited, except vmguarpages' barrier 0 and oomguarpages' barrier 75% of host RAM)."""
    if name == "vmguarpages":
        return (0, UNLIMITED)
    if name == "oomguarpages":
        return (host_pages * 3 // 4, UNLIMITED)
    return (UNLIMITED, UNLIMITED)
