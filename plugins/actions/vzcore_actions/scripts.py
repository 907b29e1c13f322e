"""Finding, checking and running one action script of the config directory.

A script is a host root's file: it runs as root on the host (or is fed to the CT's
shell), so one that another user could have written is refused, never run.  Only the
config directory (``/etc/vz/conf``, where ``CTID.conf`` lives) is looked in; nothing in a
CT's tree is ever run on the host.  A missing script is no error (OpenVZ's behaviour).
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from vzcore.errors import ActionScriptError

if TYPE_CHECKING:
    from vzcore.container import Container
    from vzcore.runtime import Run

#: Host-side moments: the global script runs first, then the CT's (as OpenVZ).
HOST_MOMENTS = ("premount", "mount", "umount", "postumount")
#: The most an in-CT script may hold (it is passed as one argument to the CT's shell).
MAX_IN_CT_BYTES = 64 * 1024


def names(ct: Container, moment: str) -> list[str]:
    """The scripts of ``moment`` in the order they run: ``vps.MOMENT`` (host moments
    only), then ``CTID.MOMENT``."""
    own = f"{ct.ctid}.{moment}"
    return [f"vps.{moment}", own] if moment in HOST_MOMENTS else [own]


def environment(ct: Container) -> dict[str, str]:
    """What a host-side script gets besides vzctl's own environment."""
    return {"VEID": str(ct.ctid), "VE_CONFFILE": str(ct.config.path),
            "VE_ROOT": str(ct.root), "VE_PRIVATE": str(ct.private)}


def _refusal(ct: Container, path: Path, st: os.stat_result, *, executable: bool) -> str | None:
    """Why ``path`` (``st`` its status) must not run, or ``None``."""
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file"
    if st.st_uid != 0:
        return f"is owned by uid {st.st_uid}, not root; 'chown root {path}' if you trust it"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"is writable by group or others; 'chmod go-w {path}'"
    if executable and not st.st_mode & stat.S_IXUSR:
        return f"is not executable; 'chmod 755 {path}'"
    return None


def _ct_areas(ct: Container) -> list[str]:
    """Where any CT's tree lies on the host: this CT's areas, the fixed bases of vz.conf's
    ``VE_PRIVATE`` / ``VE_ROOT`` patterns (``/vz/private``, ``/vz/root``), and what the
    layouts name (``BTRFS_POOL``: ``vz_host_areas``)."""
    from vzcore.areas import fixed_base

    found = [str(ct.private), str(ct.root), *ct.host_areas()]
    for key in ("VE_PRIVATE", "VE_ROOT"):
        base = fixed_base(ct.area_pattern(key))
        if base is not None and base != "/":
            found.append(str(ct.paths.host(base)))
    return found


def _in_ct_area(ct: Container, fd: int) -> str | None:
    """The CT area holding the opened file (a symlink may lead there), or ``None``: a
    CT's root can change what lies there, so it is never run as an action script."""
    from vzcore.areas import is_within

    real = os.readlink(f"/proc/self/fd/{fd}")
    return next((area for area in _ct_areas(ct) if is_within(real, area)), None)


def _check_directory(ct: Container, directory: Path) -> None:
    st = os.stat(directory)
    if st.st_uid != 0 or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ActionScriptError(
            f"CT {ct.ctid}: not running action scripts from {directory}: it is not owned by "
            f"root or is writable by group or others; 'chown root {directory}; "
            f"chmod go-w {directory}'")


def _open(ct: Container, name: str, *, executable: bool) -> int | None:
    """A descriptor of the checked script ``name`` (``None`` when there is none).  The
    checks are made on the open file, so a rename between check and use changes nothing."""
    directory = ct.paths.conf_dir
    path = directory / name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO planted there cannot hang us
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ActionScriptError(f"CT {ct.ctid}: action script {path}: {exc.strerror}") from exc
    try:
        _check_directory(ct, directory)
        why = _refusal(ct, path, os.fstat(fd), executable=executable)
        area = _in_ct_area(ct, fd)
        if why is None and area is not None:
            why = (f"leads into {area}, where a CT's root can change it; keep action scripts "
                   f"in {directory}")
    except BaseException:
        os.close(fd)
        raise
    if why is not None:
        os.close(fd)
        raise ActionScriptError(f"CT {ct.ctid}: refusing action script {path}: it {why}")
    return fd


def run_on_host(ct: Container, moment: str, base_env: Mapping[str, str] | None = None) -> None:
    """Run the scripts of host ``moment`` in order; the first that fails raises (79)."""
    for name in names(ct, moment):
        fd = _open(ct, name, executable=True)
        if fd is None:
            continue
        path = ct.paths.conf_dir / name
        env = dict(os.environ if base_env is None else base_env)
        env.update(environment(ct))
        try:
            # exec the checked file itself (through its descriptor), not the name again
            done = subprocess.run([f"/proc/self/fd/{fd}"], env=env, pass_fds=(fd,),
                                  stdin=subprocess.DEVNULL, check=False)
        except OSError as exc:
            raise ActionScriptError(f"CT {ct.ctid}: cannot run action script {path}: "
                                    f"{exc.strerror}") from exc
        finally:
            os.close(fd)
        if done.returncode != 0:
            raise ActionScriptError(_failed(ct, path, done.returncode))


def run_in_ct(ct: Container, run: Run, moment: str) -> None:
    """Feed ``CTID.MOMENT`` to the CT's ``/bin/sh`` inside the running CT (its
    namespaces, cgroups and restrictions, as ``vzctl exec``); failing raises (79)."""
    for name in names(ct, moment):
        fd = _open(ct, name, executable=False)  # read, never executed on the host
        if fd is None:
            continue
        from vzcore.lifecycle.enter import run_in_ct as join_and_run  # only with a script
        path = ct.paths.conf_dir / name
        try:
            with os.fdopen(fd, "rb") as script:
                body = script.read(MAX_IN_CT_BYTES + 1)
        except OSError as exc:
            raise ActionScriptError(f"CT {ct.ctid}: cannot read action script {path}: "
                                    f"{exc.strerror}") from exc
        if len(body) > MAX_IN_CT_BYTES or b"\0" in body:
            raise ActionScriptError(f"CT {ct.ctid}: refusing action script {path}: it is "
                                    f"binary or larger than {MAX_IN_CT_BYTES} bytes; run a "
                                    "program of the CT from a short shell script instead")
        # VEID is all a script inside needs: the host's paths mean nothing there
        text = f"VEID={ct.ctid}; export VEID\n" + body.decode("utf-8", "surrogateescape")
        status = join_and_run(run, ["/bin/sh", "-c", text, name])
        if status != 0:
            raise ActionScriptError(_failed(ct, path, status, inside=True))


def _failed(ct: Container, path: Path, status: int, *, inside: bool = False) -> str:
    how = f"was killed by signal {-status}" if status < 0 else f"exited with {status}"
    where = " inside the CT" if inside else ""
    return f"CT {ct.ctid}: action script {path}{where} {how}"
