"""``vzctl template create``: a Debian template built with debootstrap, prepared for CT
use, packed into the cache atomically.

The steps, in ``$TEMPLATE/cache/.build-NAME/`` (same file system as the cache, so the
final rename is atomic):

1. ``debootstrap --variant=minbase --include=PACKAGES SUITE root/ MIRROR``, in a mount
   and PID namespace of its own (``unshare --mount --pid --fork --kill-child``): the
   ``/proc`` and ``/sys`` it mounts in the tree, and any daemon a package's script
   would start despite debootstrap's ``policy-rc.d``, vanish with it; it dies with vzctl
   (``PR_SET_PDEATHSIG``).  What it executes in the tree (``chroot``) is Debian's
   packages, from the mirror, signature-checked against the host's keyring: trusted
   like the mirror itself.
2. The tree is prepared for CT use (:mod:`vzcore_template.prepare`).
3. ``tar --numeric-owner | zstd`` into ``.build-NAME/NAME.tar.zst``; the metadata file,
   then the tarball, renamed into the cache.  A kill at any point leaves only
   ``.build-NAME/`` (and at worst a metadata file without its tarball), which the next
   create or remove of NAME cleans (:func:`vzcore_template.cache.remove_leftovers`).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import attrs

from vzcore.errors import BadTemplate, InvalidValue
from vzcore.linux import safefs
from vzcore_template import __version__, cache, metadata, prepare
from vzcore_template.metadata import Metadata
from vzcore_template.mirror import Mirrors
from vzcore_template.names import DEBIAN_ARCHES, Distribution
from vzcore_template.progress import DebootstrapOutput, Reporter

RECIPE_VERSION = 2
"""Bumped whenever what a build makes changes (packages, preparation): a ``--reuse`` of
a cache built by another recipe version rebuilds it."""

FLAVOUR_RECIPES = {"web": 2}
"""Bumped when the preparation of one flavour changes, so a ``--reuse`` rebuilds only that
flavour's caches (1: the web flavour's exim4 and apache2 tuning; 2: exim4 without the build
host's mail names)."""

COMMON_PACKAGES = ("cron", "rsyslog", "openssh-server", "iproute2", "ifupdown", "netbase",
                   "procps", "less", "ca-certificates")
"""Every flavour: a syslog, cron, an SSH server, and what a CT's admin expects."""

INIT_PACKAGES = {
    "systemd": ("systemd", "systemd-sysv", "dbus"),
    # orphan-sysvinit-scripts: init scripts for the packages that ship only systemd units
    "sysvinit": ("sysvinit-core", "orphan-sysvinit-scripts"),
}

FLAVOUR_PACKAGES = {
    "minimal": (),
    # the original announcement's process set: an inetd, an MTA, a pre-forking web server
    "web": ("openbsd-inetd", "exim4-daemon-light", "apache2"),
}

PR_SET_PDEATHSIG = 1


@attrs.frozen(kw_only=True)
class Request:
    """What ``vzctl template create`` was asked to build."""

    name: str
    distribution: Distribution
    arch: str                      # Debian's spelling (amd64)
    flavour: str
    init: str
    extra: tuple[str, ...] = ()
    mirrors: Mirrors

    @property
    def packages(self) -> tuple[str, ...]:
        wanted = (*COMMON_PACKAGES, *INIT_PACKAGES[self.init], *FLAVOUR_PACKAGES[self.flavour],
                  *self.extra)
        return tuple(dict.fromkeys(wanted))

    @property
    def recipe(self) -> str:
        """Identifies what this request builds (see :mod:`vzcore_template.metadata`)."""
        items = [str(self.distribution), self.arch, self.flavour, self.init,
                 sorted(self.packages), self.mirrors.main, self.mirrors.security,
                 __version__, RECIPE_VERSION]
        if self.flavour in FLAVOUR_RECIPES:  # (a flavour without one keeps its old recipe)
            items.append(FLAVOUR_RECIPES[self.flavour])
        text = json.dumps(items)
        return hashlib.sha256(text.encode()).hexdigest()


TOOLS = {"debootstrap": "debootstrap", "unshare": "util-linux", "chroot": "coreutils",
         "tar": "tar", "zstd": "zstd"}
"""The host's programs a build runs, and their Debian packages."""


def check_tools() -> None:
    """Refuse before anything is made when not root (debootstrap installs packages as
    root into the tree) or when a program the build runs is missing."""
    if os.geteuid() != 0:
        raise BadTemplate("template create must run as root (debootstrap installs the "
                          "packages, owners and all, into the new tree)")
    missing = [package for tool, package in TOOLS.items()
               if shutil.which(tool, path=_environment()["PATH"]) is None]
    if missing:
        raise BadTemplate(f"template create needs {', '.join(missing)}: "
                          f"apt-get install {' '.join(missing)}")


def build(request: Request, directory: Path, reporter: Reporter, *, reuse: bool = False) -> Metadata:
    """Build ``request`` into the cache ``directory``; return the new cache's metadata.

    An existing template of the name is refused; with ``reuse`` one built from the same
    recipe is kept (its metadata returned) and one vzctl built from another recipe is
    rebuilt, replaced only once the new one is complete.
    """
    name = request.name
    with cache.locked(directory, name):
        existing = cache.tarballs(directory, name)
        if existing:
            meta = cache.valid_metadata(directory, name)
            if reuse and meta is not None and meta.recipe == request.recipe:
                reporter.done(f"template {name}: kept {existing[0]} (built {meta.created} "
                              "from the same recipe)")
                return meta
            if not reuse or meta is None:
                why = "exists" if meta is not None or not reuse else "exists, not built by vzctl"
                raise InvalidValue(f"template create: {name} {why} ({existing[0]}); remove it "
                                   f"first with 'vzctl template remove {name}'")
            reporter.stage(f"rebuilding: the cache was built from another recipe ({meta.builder})")
        workdir = cache.build_dir(directory, name)
        workdir.mkdir(mode=0o700)
        root = workdir / "root"
        root.mkdir(mode=0o755)
        started = time.monotonic()
        committed = False
        try:
            _debootstrap(request, root, workdir / "debootstrap.log", reporter)
            reporter.stage("preparing the tree for CT use")
            prepare.prepare(root, request)
            reporter.stage("packing")
            tarball = workdir / f"{name}.tar.zst"
            _pack(root, tarball)
            meta = Metadata(
                name=name, distribution=request.distribution.dist,
                version=request.distribution.version, suite=request.distribution.suite,
                architecture=DEBIAN_ARCHES.get(request.arch, request.arch),
                flavour=request.flavour, init=request.init, packages=request.packages,
                mirror=request.mirrors.main,
                created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                size=tarball.stat().st_size, tarball=tarball.name,
                builder=f"vzcore-template {__version__} recipe {RECIPE_VERSION}",
                recipe=request.recipe)
            metadata.write(workdir / f"{name}{metadata.SUFFIX}", meta)
            safefs.remove_tree(root)
            # The commit point: from here a kill is rolled forward by the next create or
            # remove of the name (cache.remove_leftovers moves the staged metadata in).
            os.replace(tarball, directory / tarball.name)
            committed = True
            _fsync_dir(directory)
            cache.finish_commit(directory, name)
        except BaseException:
            if not committed:  # all but the log, which the error message names
                for path in workdir.iterdir():
                    if path.is_dir():
                        safefs.remove_tree(path)
                    elif path.name != "debootstrap.log":
                        path.unlink()
            raise
        reporter.done(f"template {name}: created {directory / tarball.name} "
                      f"({meta.size / 1e6:.1f} MB, {len(meta.packages)} packages asked, "
                      f"{time.monotonic() - started:.0f} s)")
        return meta


def _die_with_parent() -> None:
    """In the child before exec: SIGKILL when vzctl dies, so a killed vzctl leaves no
    debootstrap running (its namespaces then end with it)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


NAMESPACE = ["unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child"]


def _environment() -> dict[str, str]:
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C.UTF-8",
            "DEBIAN_FRONTEND": "noninteractive", "DEBCONF_NONINTERACTIVE_SEEN": "true",
            "HOME": "/root", "TMPDIR": "/tmp"}


def _debootstrap(request: Request, root: Path, log: Path, reporter: Reporter) -> None:
    argv = [*NAMESPACE, "--", "sh", "-c", 'exec debootstrap "$@" 3>&1 >"$VZ_BUILD_LOG" 2>&1',
            "debootstrap", "--debian-installer", "--variant=minbase", f"--arch={request.arch}",
            "--components=main", f"--include={','.join(request.packages)}",
            request.distribution.suite, str(root), request.mirrors.main]
    output = DebootstrapOutput(reporter)
    reporter.stage(f"debootstrap {request.distribution.suite} from {request.mirrors.main}")
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                env={**_environment(), "VZ_BUILD_LOG": str(log)}, text=True,
                                preexec_fn=_die_with_parent)
    except FileNotFoundError as exc:
        raise BadTemplate(f"template create needs {exc.filename}: apt-get install debootstrap "
                          "util-linux") from None
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            output.feed(line)
    finally:
        code = proc.wait()
    if code != 0:
        why = output.error or f"debootstrap exited with status {code}"
        raise BadTemplate(f"template create {request.name}: {why} (full log: {log}; the next "
                          f"create or remove of {request.name} removes it)")


def in_target(root: Path, *argv: str) -> None:
    """Run ``argv`` chrooted in the tree being built, in namespaces of its own (as
    debootstrap ran), for the few steps only the tree's own tools do (update-rc.d)."""
    result = subprocess.run([*NAMESPACE, "--", "chroot", str(root), *argv], env=_environment(),
                            stdin=subprocess.DEVNULL, capture_output=True, text=True,
                            preexec_fn=_die_with_parent, check=False)
    if result.returncode != 0:
        raise BadTemplate(f"template create: '{' '.join(argv)}' in the new tree failed: "
                          f"{(result.stderr or result.stdout).strip()[-500:]}")


def _pack(root: Path, tarball: Path) -> None:
    """``tar | zstd`` of the tree: numeric owners (the CT's, shifted at unpack), sorted."""
    with open(tarball, "wb") as out:
        tar = subprocess.Popen(["tar", "--numeric-owner", "--sort=name", "--one-file-system",
                                "-C", str(root), "-cf", "-", "."], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, preexec_fn=_die_with_parent)
        assert tar.stdout is not None
        try:
            zstd = subprocess.run(["zstd", "-q", "-T0", "-c"], stdin=tar.stdout, stdout=out,
                                  stderr=subprocess.PIPE, check=False)
        except FileNotFoundError:
            tar.kill()
            tar.wait()
            raise BadTemplate("template create needs zstd: apt-get install zstd") from None
        finally:
            tar.stdout.close()
        tar_error = tar.stderr.read().decode(errors="replace") if tar.stderr else ""
        if tar.wait() != 0 or zstd.returncode != 0:
            raise BadTemplate(f"template create: packing {tarball.name} failed: "
                              f"{tar_error.strip() or zstd.stderr.decode(errors='replace').strip()}")
        out.flush()
        os.fsync(out.fileno())


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
