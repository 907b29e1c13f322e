"""Actions for Debian (and distributions like it: ``ID=debian`` or ``ID_LIKE`` naming it).

* host name: ``/etc/hostname`` (systemd and sysvinit's ``hostname.sh`` set it at boot),
  ``/etc/hosts``, and ``/etc/mailname`` where an MTA made one;
* addresses: with ifupdown (Debian's default, ``networking.service``),
  ``/etc/network/interfaces.d/vzcore`` holds ``inet manual`` stanzas whose ``ip ...
  replace`` commands repeat what the host made, so ``ifup -a`` at a boot inside neither
  fails nor changes the host's setup; ``/etc/network/interfaces`` gets a ``source`` line
  if it lacks one.  A CT that uses systemd-networkd (enabled, or no ifupdown) gets
  ``/etc/systemd/network/10-vzcore-IFACE.network`` units instead (``KeepConfiguration``);
* name servers: ``/etc/resolv.conf``;
* passwords: ``/etc/shadow``, hashed as the CT's PAM config says (yescrypt on Debian 12,
  ``pam_unix`` in ``/etc/pam.d/common-password``), else ``ENCRYPT_METHOD`` of
  ``/etc/login.defs``.
"""

from __future__ import annotations

from collections.abc import Sequence

from vzcore_dists import common, content
from vzcore_dists.passwd import METHODS, UserPass
from vzcore_dists.tree import CtTree

NAME = "debian"
INTERFACES = "etc/network/interfaces"
INTERFACES_D = "etc/network/interfaces.d"
OURS = f"{INTERFACES_D}/vzcore"
NETWORKD = "etc/systemd/network"
NETWORKD_PREFIX = "10-vzcore-"
NETWORKD_ENABLED = ("etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
                    "etc/systemd/system/sockets.target.wants/systemd-networkd.socket")
IFUP = ("sbin/ifup", "usr/sbin/ifup")
MAILNAME = "etc/mailname"
"""The host's mail name (Debian policy 11.6), read by its MTAs."""


def set_hostname(tree: CtTree, hostname: str, address: str | None) -> None:
    common.write_hostname(tree, hostname, address)
    if tree.exists(MAILNAME):  # an MTA is installed (Debian's exim4, postfix): mail's name
        tree.write(MAILNAME, f"{hostname.rstrip('.')}\n")


def network_manager(tree: CtTree) -> str | None:
    """``networkd``, ``ifupdown`` or ``None`` (neither installed): what the CT's boot uses."""
    if any(tree.exists(path) for path in NETWORKD_ENABLED):
        return "networkd"
    if any(tree.exists(path) for path in IFUP) or tree.exists(INTERFACES):
        return "ifupdown"
    if tree.exists("lib/systemd/systemd-networkd") or tree.exists("usr/lib/systemd/systemd-networkd"):
        return "networkd"
    return None


def set_addresses(tree: CtTree, interfaces: Sequence[content.Interface]) -> None:
    manager = network_manager(tree)
    if manager == "ifupdown":
        _ifupdown(tree, interfaces)
    elif manager == "networkd":
        _networkd(tree, interfaces)


def _ifupdown(tree: CtTree, interfaces: Sequence[content.Interface]) -> None:
    if not interfaces and not tree.exists(OURS):
        return
    tree.write(OURS, content.ifupdown_stanzas(tree.ctid, interfaces))
    old = tree.read(INTERFACES)
    tree.write(INTERFACES, content.ensure_source_line(old, "/" + INTERFACES_D))


def _networkd(tree: CtTree, interfaces: Sequence[content.Interface]) -> None:
    wanted = {f"{NETWORKD_PREFIX}{iface.name}.network": iface for iface in interfaces}
    for name in tree.listdir(NETWORKD):
        if name.startswith(NETWORKD_PREFIX) and name.endswith(".network") and name not in wanted:
            tree.remove(f"{NETWORKD}/{name}")
    for name, iface in wanted.items():
        tree.write(f"{NETWORKD}/{name}", content.networkd_unit(tree.ctid, iface))


def set_dns(tree: CtTree, nameservers: Sequence[str] | None,
            searchdomains: Sequence[str] | None) -> None:
    common.write_dns(tree, nameservers, searchdomains)


def password_method(tree: CtTree) -> str:
    """The hash method the CT's own ``passwd`` would use."""
    for line in (tree.read("etc/pam.d/common-password") or "").splitlines():
        words = line.split()
        if "pam_unix.so" in words and not line.lstrip().startswith("#"):
            for method in METHODS:
                if method in words:
                    return method
    method = (common.read_key(_login_defs(tree), "ENCRYPT_METHOD") or "").lower()
    return method if method in METHODS else "yescrypt"


def _login_defs(tree: CtTree) -> str:
    # login.defs is "KEY value", not "KEY=value"
    return "\n".join("=".join(line.split(None, 1)) for line in
                     (tree.read("etc/login.defs") or "").splitlines() if line.strip())


def check_userpass(tree: CtTree, pairs: Sequence[UserPass]) -> None:
    common.check_users(tree, pairs)


def set_userpass(tree: CtTree, pairs: Sequence[UserPass]) -> None:
    common.write_passwords(tree, pairs, password_method(tree))
