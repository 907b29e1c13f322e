"""Actions every distribution shares (the files are the same in Debian, busybox and
most others); the per-distribution modules call these and add their own."""

from __future__ import annotations

import time
from collections.abc import Sequence

from vzcore.errors import InvalidValue, VzError
from vzcore_dists import content, passwd
from vzcore_dists.passwd import UserPass
from vzcore_dists.tree import CtTree


def write_hostname(tree: CtTree, hostname: str, address: str | None) -> None:
    """``/etc/hostname`` and the managed line of ``/etc/hosts``."""
    tree.write("etc/hostname", f"{hostname}\n")
    tree.write("etc/hosts", content.hosts_content(tree.read("etc/hosts") or "", hostname, address))


def write_dns(tree: CtTree, nameservers: Sequence[str] | None,
              searchdomains: Sequence[str] | None) -> None:
    """``/etc/resolv.conf``'s ``nameserver`` and ``search`` lines (``None``: kept)."""
    if nameservers is None and searchdomains is None:
        return
    old = tree.read("etc/resolv.conf") or ""
    tree.write("etc/resolv.conf", content.resolv_content(old, nameservers, searchdomains))


def check_users(tree: CtTree, pairs: Sequence[UserPass]) -> None:
    """Refuse a user the CT's /etc/passwd lacks (exit 21), naming it; nothing is written."""
    known = content.users_of(tree.read("etc/passwd") or "")
    missing = sorted({p.user for p in pairs} - set(known))
    if missing:
        names = ", ".join(missing)
        raise InvalidValue(f"CT {tree.ctid}: --userpasswd: no user {names} in the CT's "
                           f"/etc/passwd; create it inside first ('vzctl exec {tree.ctid} "
                           f"useradd -m {missing[0]}'), then set its password")


def write_passwords(tree: CtTree, pairs: Sequence[UserPass], method: str) -> None:
    """Each user's password hashed with ``method`` into /etc/shadow (or /etc/passwd on a
    system without shadow), under the CT's password-file lock."""
    check_users(tree, pairs)
    hashes = {p.user: passwd.hash_password(p.password, method) for p in pairs}
    with tree.password_lock():
        old_passwd = tree.read("etc/passwd") or ""
        old_shadow = tree.read("etc/shadow")
        try:
            shadow, new_passwd = content.shadow_content(old_passwd, old_shadow, hashes,
                                                        int(time.time() // 86400))
        except content.UnknownUser as exc:  # removed inside since check_users
            raise InvalidValue(f"CT {tree.ctid}: --userpasswd: no user {exc} in the CT's "
                               "/etc/passwd") from None
        if shadow is not None:
            tree.write("etc/shadow", shadow, mode=0o640)
        elif new_passwd != old_passwd:
            tree.write("etc/passwd", new_passwd)
        else:
            raise VzError(f"CT {tree.ctid}: --userpasswd: neither /etc/shadow nor /etc/passwd "
                          "could take the password", exit_code=passwd.CHANGEPASS)


def read_key(text: str | None, key: str) -> str | None:
    """The value of ``KEY=value`` (quotes removed) in an os-release or defaults file."""
    for line in (text or "").splitlines():
        name, eq, value = line.strip().partition("=")
        if eq and name == key:
            return value.strip().strip("'\"")
    return None
