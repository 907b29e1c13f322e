"""Make a debootstrapped tree a template: what each CT must get fresh is removed, what a
CT cannot use is turned off, the flavour's services are configured.

Done on the host through :mod:`vzcore.linux.safefs` (the tree's own links are never
followed out of it); only ``update-rc.d`` runs inside the tree (:func:`build.in_target`).

- no getty on tty1-6 (a CT has no virtual terminals; OpenVZ's templates did the same):
  systemd's ``getty@tty1`` link removed, sysvinit's ``inittab`` getty lines commented;
- ``/etc/hostname`` empty (systemd) or absent (sysvinit, whose ``hostname.sh`` fails on
  an empty one), ``/etc/hosts`` localhost only, ``/etc/resolv.conf`` empty (debootstrap
  copied the host's): the CT keeps the host name vzctl gave it, and vzctl's distribution
  actions write these files;
- ``/etc/machine-id`` empty, so each CT gets its own at first boot: systemd writes it
  (its documented "first boot" behaviour); under sysvinit the ``vzcore-firstboot``
  init script does; ``/var/lib/dbus/machine-id`` is a link to it;
- SSH host keys removed: ``ssh-keygen -A`` makes the CT's own before sshd starts (a
  drop-in of ``ssh.service`` for systemd, ``vzcore-firstboot`` for sysvinit);
- ``/dev`` emptied (a CT's /dev is a tmpfs vzctl fills at start);
- rsyslog's ``imklog`` off (the kernel log is the host's, unreadable in a CT);
- apt's sources set to the mirror the template was built from; apt's caches emptied.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable
from typing import TYPE_CHECKING

from vzcore.errors import BadTemplate, KernelError
from vzcore.linux import safefs

if TYPE_CHECKING:
    from pathlib import Path

    from vzcore_template.build import Request

APT_LISTS = re.compile(r".*_(Packages|Release|InRelease|Release\.gpg)(\..*)?")
IMKLOG = re.compile(r'^(module\(load="imklog"\).*)$', re.M)

HOSTS = ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
         "ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")

SSH_DROPIN = """\
# vzcore template: each CT makes its own SSH host keys before sshd first starts
# (the template ships none). ExecStartPre= first resets the package's list.
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
"""

FIRSTBOOT = """\
#!/bin/sh
### BEGIN INIT INFO
# Provides:          vzcore-firstboot
# Required-Start:    $local_fs
# Required-Stop:
# X-Start-Before:    ssh
# Default-Start:     S
# Default-Stop:
# Short-Description: A CT's own machine-id and SSH host keys (vzcore template)
### END INIT INFO
# The template ships neither: each CT makes its own on its first boot.
case "$1" in
start)
    if [ ! -s /etc/machine-id ]; then
        tr -d - </proc/sys/kernel/random/uuid >/etc/machine-id
    fi
    [ -x /usr/bin/ssh-keygen ] && /usr/bin/ssh-keygen -A >/dev/null
    ;;
esac
exit 0
"""

MPM_PREFORK = """\
# vzcore template (web flavour): eight pre-forked workers, as the original OpenVZ
# announcement's CTs ran them.
<IfModule mpm_prefork_module>
\tStartServers\t\t 8
\tMinSpareServers\t\t 8
\tMaxSpareServers\t\t10
\tMaxRequestWorkers\t150
\tMaxConnectionsPerChild\t0
</IfModule>
"""


APACHE_UNUSED = ("access_compat", "alias", "auth_basic", "authn_core", "authn_file",
                 "authz_user", "autoindex", "deflate", "env", "filter", "negotiation",
                 "setenvif", "status")
"""Debian's default apache2 modules a static site does not use (kept: authz_core and
authz_host for ``Require``, dir, mime, reqtimeout, the MPM); 0.4 MiB less per CT."""

EXIM_CA = ("${if exists{/etc/ssl/certs/ca-certificates.crt}"
           "{/etc/ssl/certs/ca-certificates.crt}{system}}")
EXIM_TRANSPORT_CA = f"tls_verify_certificates = {EXIM_CA}"
EXIM_REMOTE_SMTP = re.compile(r"^(remote_smtp:\n(?:(?!^\S).*\n)*?  driver = smtp)$", re.M)

EXIM_LOCALMACROS = f"""\
# vzcore template (web flavour): keep no CA bundle in the exim daemon's memory.
# exim preloads tls_verify_certificates at daemon start when the value needs no expansion
# (4.96's default is "system"), once for the server side and once per smtp transport:
# about 3.7 MiB each, 12 MiB of the daemon's heap.  The server verifies no client's
# certificate (tls_verify_hosts and tls_try_verify_hosts are empty), so it needs none;
# outgoing TLS still verifies servers against the same bundle, read per delivery because
# the value is an expansion (here for remote_smtp_smarthost; remote_smtp has the same
# line in exim4.conf.template).  STARTTLS is still offered.
tls_verify_certificates =
REMOTE_SMTP_SMARTHOST_TLS_VERIFY_CERTIFICATES = {EXIM_CA}
"""


def prepare(root: Path, request: Request) -> None:
    """Prepare the tree at ``root`` (built for ``request``) for CT use."""
    root_fd = safefs.open_root(root)
    try:
        _empty_dir(root_fd, "dev")
        for name in ("etc/resolv.conf", "etc/machine-id"):
            safefs.write_file(root_fd, name, b"", 0o644)
        if request.init == "systemd":  # empty: the hostname vzctl gave the CT stays
            safefs.write_file(root_fd, "etc/hostname", b"", 0o644)
        else:  # hostname.sh would run 'hostname ""' and fail; without the file it keeps it
            _remove(root_fd, "etc/hostname")
        safefs.write_file(root_fd, "etc/hosts", HOSTS.encode(), 0o644)
        if _exists(root_fd, "var/lib/dbus"):
            _remove(root_fd, "var/lib/dbus/machine-id")
            with safefs.opened(root_fd, "var/lib/dbus", os.O_PATH | os.O_DIRECTORY) as fd:
                os.symlink("/etc/machine-id", "machine-id", dir_fd=fd)
        _remove_matching(root_fd, "etc/ssh", re.compile(r"ssh_host_.*_key(\.pub)?"))
        _remove_matching(root_fd, "var/cache/apt/archives", re.compile(r".*\.deb"))
        _remove_matching(root_fd, "var/cache/apt", re.compile(r".*\.bin"))
        _remove_matching(root_fd, "var/lib/apt/lists", APT_LISTS)
        _edit(root_fd, "etc/rsyslog.conf",
              lambda t: IMKLOG.sub(r"#\1  # no kernel log in a CT", t))
        _sources(root_fd, request)
        if request.init == "systemd":
            _remove(root_fd, "etc/systemd/system/getty.target.wants/getty@tty1.service")
            safefs.makedirs(root_fd, "etc/systemd/system/ssh.service.d")
            safefs.write_file(root_fd, "etc/systemd/system/ssh.service.d/vzcore-host-keys.conf",
                              SSH_DROPIN.encode(), 0o644)
        else:
            _edit(root_fd, "etc/inittab",
                  lambda t: re.sub(r"^([1-6]:\d+:respawn:\S*getty.*)$", r"#\1", t, flags=re.M))
            safefs.write_file(root_fd, "etc/init.d/vzcore-firstboot", FIRSTBOOT.encode(), 0o755)
        if request.flavour == "web":
            _web(root_fd)
    finally:
        os.close(root_fd)
    if request.init == "sysvinit":
        from vzcore_template.build import in_target

        in_target(root, "update-rc.d", "vzcore-firstboot", "defaults")


def _sources(root_fd: int, request: Request) -> None:
    suite = request.distribution.suite
    lines = [f"deb {request.mirrors.main} {suite} main", f"deb {request.mirrors.main} {suite}-updates main"]
    if request.mirrors.security:
        lines.append(f"deb {request.mirrors.security} {suite}-security main")
    text = "# vzcore template: the mirror it was built from\n" + "\n".join(lines) + "\n"
    safefs.write_file(root_fd, "etc/apt/sources.list", text.encode(), 0o644)


EXIM_OTHER_HOSTNAMES = re.compile(r"^dc_other_hostnames=.*$", re.M)
"""The line of Debian's ``update-exim4.conf.conf`` naming the host's other mail names."""


def _web(root_fd: int) -> None:
    """apache2 with mpm_prefork (8 workers) instead of mpm_event and only the modules a
    static site uses; inetd serving only a local ``discard`` (openbsd-inetd does not start
    with nothing to serve); exim4 (Debian's default "local delivery only") without the
    CA bundles its daemon would hold in memory (:data:`EXIM_LOCALMACROS`)."""
    _apache(root_fd)
    _edit(root_fd, "etc/inetd.conf",
          lambda t: t + "# vzcore template: one local service, so inetd runs\n"
                        "127.0.0.1:discard\tstream\ttcp\tnowait\troot\tinternal\n")
    _exim(root_fd)


def _apache(root_fd: int) -> None:
    mods = "etc/apache2/mods-enabled"
    for name in ("mpm_event.load", "mpm_event.conf", "mpm_worker.load", "mpm_worker.conf"):
        _remove(root_fd, f"{mods}/{name}")
    with safefs.opened(root_fd, mods, os.O_PATH | os.O_DIRECTORY) as fd:
        for name in ("mpm_prefork.load", "mpm_prefork.conf"):
            try:
                os.symlink(f"../mods-available/{name}", name, dir_fd=fd)
            except FileExistsError:
                pass
    safefs.write_file(root_fd, "etc/apache2/mods-available/mpm_prefork.conf", MPM_PREFORK.encode(), 0o644)
    for module in APACHE_UNUSED:  # (a2dismod's job: remove the links)
        for suffix in (".load", ".conf"):
            _remove(root_fd, f"{mods}/{module}{suffix}")


def _exim(root_fd: int) -> None:
    """Debian's exim4 (4.96) preloads the system CA bundle at daemon start for the server
    side and for each smtp transport (about 3.7 MiB of heap each, 12 MiB in all); see
    :data:`EXIM_LOCALMACROS`.  The transport ``remote_smtp`` has no Debian macro for it,
    so the (conffile) template gets the setting, once."""
    safefs.write_file(root_fd, "etc/exim4/exim4.conf.localmacros", EXIM_LOCALMACROS.encode(), 0o644)

    def transport(text: str) -> str:
        if EXIM_TRANSPORT_CA in text:
            return text
        changed, count = EXIM_REMOTE_SMTP.subn(rf"\1\n  {EXIM_TRANSPORT_CA}", text, count=1)
        if count != 1:
            raise BadTemplate("template create: exim4.conf.template has no 'remote_smtp' "
                              "transport with 'driver = smtp' (exim4-config changed?)")
        return changed

    _edit(root_fd, "etc/exim4/exim4.conf.template", transport)
    # The build host's name, which Debian's exim4-config wrote, is no CT's: exim's own
    # '@' in local_domains is the CT's host name, and the dists plugin writes /etc/mailname
    # when the CT gets one (exim needs the file: 'localhost' until then).
    _edit(root_fd, "etc/exim4/update-exim4.conf.conf",
          lambda t: EXIM_OTHER_HOSTNAMES.sub("dc_other_hostnames=''", t))
    safefs.write_file(root_fd, "etc/mailname", b"localhost\n", 0o644)


def _exists(root_fd: int, path: str) -> bool:
    try:
        with safefs.opened(root_fd, path, os.O_PATH | os.O_NOFOLLOW):
            return True
    except KernelError:
        return False


def _parent(root_fd: int, path: str) -> tuple[int, str]:
    directory, _, name = path.rpartition("/")
    return safefs.open_in(root_fd, directory or ".", os.O_PATH | os.O_DIRECTORY), name


def _remove(root_fd: int, path: str) -> None:
    try:
        dir_fd, name = _parent(root_fd, path)
    except KernelError as exc:
        if exc.errno == errno.ENOENT:
            return
        raise
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        pass
    finally:
        os.close(dir_fd)


def _remove_matching(root_fd: int, directory: str, pattern: re.Pattern[str]) -> None:
    try:
        fd = safefs.open_in(root_fd, directory, os.O_RDONLY | os.O_DIRECTORY)
    except KernelError as exc:
        if exc.errno == errno.ENOENT:
            return
        raise
    try:
        for name in os.listdir(fd):
            is_dir = stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode)
            if pattern.fullmatch(name) and not is_dir:
                os.unlink(name, dir_fd=fd)
    finally:
        os.close(fd)


def _empty_dir(root_fd: int, directory: str) -> None:
    with safefs.opened(root_fd, directory, os.O_RDONLY | os.O_DIRECTORY) as fd:
        for name in os.listdir(fd):
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                with safefs.opened(fd, name, os.O_RDONLY | os.O_DIRECTORY) as child:
                    if os.listdir(child):
                        _empty_dir(fd, name)
                os.rmdir(name, dir_fd=fd)
            else:
                os.unlink(name, dir_fd=fd)


def _edit(root_fd: int, path: str, change: Callable[[str], str]) -> None:
    """Rewrite the text file ``path`` through ``change`` (text → text), keeping its mode;
    a missing file is left missing."""
    try:
        text = safefs.read_file(root_fd, path).decode()
    except KernelError as exc:
        if exc.errno == errno.ENOENT:
            return
        raise
    with safefs.opened(root_fd, path, os.O_RDONLY) as fd:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
    safefs.write_file(root_fd, path, change(text).encode(), mode)
