"""The text of the CT's configuration files, computed by pure functions (no I/O): what
each distribution's action writes.

* ``/etc/hosts``: a ``localhost`` line is kept or added; the host name's line follows
  OpenVZ's marker comment and is replaced on every change (the CT's first IPv4 venet
  address, else ``127.0.1.1``); every other line stays.
* ``/etc/resolv.conf``: ``nameserver`` lines are replaced by ``NAMESERVER`` and the
  ``search``/``domain`` line by ``SEARCHDOMAIN`` when set; other lines stay.
* ifupdown stanzas and systemd-networkd units for venet and veth addresses.
* ``/etc/shadow`` (or ``/etc/passwd`` without one) with new password hashes.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Mapping, Sequence

import attrs

HOSTS_MARKER = "# Auto-generated hostname. Please do not remove this comment."
VENET = "venet0"


@attrs.frozen
class Interface:
    """Addresses the CT's own configuration brings up on one interface.

    :ivar name: the interface inside the CT (``venet0``, ``eth0``).
    :ivar addresses: ``ADDR/PREFIX`` texts.
    :ivar default_route: a default route through the device (venet: no gateway, no ARP).
    """

    name: str
    addresses: tuple[str, ...]
    default_route: bool = False


# -- /etc/hosts and /etc/resolv.conf --------------------------------------------------------


def hosts_content(old: str, hostname: str, address: str | None) -> str:
    """``/etc/hosts`` with the managed host-name line for ``hostname``."""
    kept: list[str] = []
    skip_next = False
    for line in old.splitlines():
        if skip_next:
            skip_next = False
            continue
        if line.strip() == HOSTS_MARKER:
            skip_next = True  # the managed line follows the marker
            continue
        kept.append(line)
    if not any("localhost" in line.split()[1:] and line.split()[0] == "127.0.0.1" for line in kept
               if line.strip() and not line.lstrip().startswith("#")):
        kept.insert(0, "127.0.0.1\tlocalhost")
    names = [hostname.rstrip(".")]
    short = names[0].split(".")[0]
    if short != names[0]:
        names.append(short)
    kept += [HOSTS_MARKER, f"{address or '127.0.1.1'}\t{' '.join(names)}"]
    return "\n".join(kept) + "\n"


def resolv_content(old: str, nameservers: Sequence[str] | None,
                   searchdomains: Sequence[str] | None) -> str:
    """``/etc/resolv.conf`` with new ``nameservers`` and/or ``searchdomains`` (``None``:
    leave those lines as they are)."""
    kept = []
    for line in old.splitlines():
        word = line.split()[0] if line.split() else ""
        if nameservers is not None and word == "nameserver":
            continue
        if searchdomains is not None and word in ("search", "domain"):
            continue
        kept.append(line)
    if searchdomains:
        kept.insert(0, "search " + " ".join(searchdomains))
    if nameservers:
        kept += [f"nameserver {server}" for server in nameservers]
    return "\n".join(kept) + "\n" if kept else ""


# -- addresses ----------------------------------------------------------------------------------


def interfaces_of(ip_address: str | None, veths: Mapping[str, Sequence[str]]) -> list[Interface]:
    """The interfaces to configure: ``venet0`` with ``IP_ADDRESS``'s addresses (each
    ``ADDR[/PREFIX]``, the host's grammar; a bare address is a host route's /32 or /128)
    and a default route, and each veth (CT name -> its ``--ifaddr`` addresses) that lists
    addresses; a veth without them is left to the CT's administrator, as in OpenVZ."""
    result = []
    venet = tuple(str(ipaddress.ip_interface(word)) for word in (ip_address or "").split())
    if venet:
        result.append(Interface(VENET, venet, default_route=True))
    for name, addresses in veths.items():
        if addresses:
            result.append(Interface(name, tuple(str(ipaddress.ip_interface(a)) for a in addresses)))
    return result


def first_ipv4(ip_address: str | None) -> str | None:
    """The first IPv4 venet address (the host name's line in /etc/hosts), if any."""
    for word in (ip_address or "").split():
        address = ipaddress.ip_interface(word).ip
        if address.version == 4:
            return str(address)
    return None


IFUPDOWN_HEADER = """\
# Written by vzcore for CT {ctid} from its config (IP_ADDRESS, NETIF ifaddr);
# 'vzctl set' rewrites this file, so change the addresses there.  The host makes
# these addresses at every start; the commands below only repeat them ('replace'),
# so 'ifup -a' at a boot inside agrees with the host and never fails on them.
"""


def is_ours(text: str | None) -> bool:
    """Whether a file's text is one vzcore wrote (its header), so it may be replaced."""
    return text is not None and text.startswith("# Written by vzcore for CT ")


def ifupdown_stanzas(ctid: int, interfaces: Sequence[Interface], *, nodad: bool = True) -> str:
    """ifupdown stanzas (``inet manual`` with ``ip ... replace`` commands: idempotent,
    unlike ``inet static``, whose ``ip addr add`` fails on an address the host made);
    ``nodad``: iproute2's flag for IPv6 addresses, as the host adds them (busybox's ``ip``
    does not know it).  No ``lo`` stanza: the host brings lo up."""
    text = IFUPDOWN_HEADER.format(ctid=ctid)
    for iface in interfaces:
        # the kernel allows '$', '|', '`' in interface names: quoted for ifupdown's sh
        dev = shlex.quote(iface.name)
        lines = [f"auto {iface.name}", f"iface {iface.name} inet manual",
                 f"\tup ip link set dev {dev} up"]
        for address in iface.addresses:
            v6 = ipaddress.ip_interface(address).version == 6
            lines.append(f"\tup ip {'-6 ' if v6 else ''}addr replace {address} dev {dev}"
                         + (" nodad" if v6 and nodad else ""))
        if iface.default_route:
            lines.append(f"\tup ip route replace default dev {dev}")
            # as the host does; only where the CT has IPv6 at all
            lines.append(f"\tup [ ! -d /proc/sys/net/ipv6 ] || ip -6 route replace default "
                         f"dev {dev}")
        text += "\n" + "\n".join(lines) + "\n"
    return text


def ensure_source_line(interfaces: str | None, directory: str) -> str:
    """``/etc/network/interfaces`` that reads ``directory`` (Debian's own file already
    has ``source /etc/network/interfaces.d/*``)."""
    if interfaces is None:
        interfaces = "# interfaces(5) file used by ifup(8) and ifdown(8)\n"
    for line in interfaces.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] in ("source", "source-directory") \
                and words[1].startswith(directory):
            return interfaces
    if interfaces and not interfaces.endswith("\n"):
        interfaces += "\n"
    return interfaces + f"\nsource {directory}/*\n"


NETWORKD_HEADER = """\
# Written by vzcore for CT {ctid} from its config; 'vzctl set' rewrites it.
# The host makes these addresses at every start: networkd keeps what it finds.
"""


def networkd_unit(ctid: int, iface: Interface) -> str:
    """A systemd-networkd ``.network`` unit for one interface."""
    lines = [NETWORKD_HEADER.format(ctid=ctid).rstrip("\n"), "[Match]", f"Name={iface.name}", "",
             "[Network]"]
    lines += [f"Address={address}" for address in iface.addresses]
    lines += ["KeepConfiguration=yes"]
    if iface.default_route:
        lines += ["LinkLocalAddressing=no", "IPv6AcceptRA=no"]
        for destination in ("0.0.0.0/0", "::/0"):
            lines += ["", "[Route]", f"Destination={destination}", "Scope=link"]
    return "\n".join(lines) + "\n"


# -- passwords ---------------------------------------------------------------------------------


class UnknownUser(ValueError):
    """A user named for a password change is not in the CT's /etc/passwd."""


def users_of(passwd: str) -> list[str]:
    """User names in ``/etc/passwd`` text."""
    return [line.split(":", 1)[0] for line in passwd.splitlines()
            if line.strip() and not line.startswith(("#", "+", "-")) and ":" in line]


def shadow_content(passwd: str, shadow: str | None, hashes: Mapping[str, str],
                   today: int) -> tuple[str | None, str]:
    """New (``/etc/shadow``, ``/etc/passwd``) text with ``hashes`` (user -> crypt hash).

    With a shadow file each user's second field becomes the hash and the third the day
    of the change (days since 1970, as passwd(1)); a user without a shadow line gets one.
    Without a shadow file (``None``) the hash goes into /etc/passwd's second field.
    Raises :class:`UnknownUser` naming a user that /etc/passwd lacks, before anything.
    """
    known = users_of(passwd)
    missing = [user for user in hashes if user not in known]
    if missing:
        raise UnknownUser(", ".join(missing))
    if shadow is None:
        lines = []
        for line in passwd.splitlines():
            fields = line.split(":")
            if len(fields) >= 2 and fields[0] in hashes:
                fields[1] = hashes[fields[0]]
            lines.append(":".join(fields))
        return None, "\n".join(lines) + "\n"
    done: set[str] = set()
    lines = []
    for line in shadow.splitlines():
        fields = line.split(":")
        if len(fields) >= 2 and fields[0] in hashes:
            fields += [""] * (9 - len(fields))
            fields[1] = hashes[fields[0]]
            fields[2] = str(today)
            done.add(fields[0])
        lines.append(":".join(fields))
    for user, hashed in hashes.items():
        if user not in done:
            lines.append(f"{user}:{hashed}:{today}:0:99999:7:::")
    return "\n".join(lines) + "\n", passwd
