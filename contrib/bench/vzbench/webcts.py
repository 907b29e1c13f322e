"""A population of web CTs from the ``web`` template, each with its own venet address and
its own copy of the page, in one of two layouts (``--layout``):

- ``copy`` (the default): CT 101 is created from the template, the others are copies of
  it with :data:`SHARED` hard-linked (cheap to make by the thousand);
- ``overlay``: every CT is made by ``vzctl create --layout overlay``, the template's
  shared tree below, the CT's changes in its own upper image: what a provider's
  ``vzctl create`` gives, one loop device and ext4 upper per CT."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from population import FIRST, installation, remove_cgroup_parent
from vzbench import memory, prereq, web
from vzbench.common import RESERVE_MIB, log, meminfo, run, vzctl

SHARED = ("usr", "var/lib/dpkg", "var/lib/apt", "var/cache")
"""Paths hard-linked between the copies: the programs and libraries (on Debian 12 /bin,
/sbin and /lib are links into /usr) and the package databases, none of them written by a
running CT.  Their page cache is then shared by every CT, as on OpenVZ's shared template
area or vzcore's overlay layout; everything else (/etc, the rest of /var with the logs,
the spool and the page) is each CT's own copy."""


LAYOUTS = ("copy", "overlay")
OVERLAY_DISKSPACE = "256M"
"""The upper image of an overlay web CT (its logs, spool and page; sparse)."""


def address(index: int) -> str:
    """The venet address of the ``index``-th web CT (10.200.0.0/16)."""
    return f"10.200.{index // 250}.{index % 250 + 1}"


def clone(root: Path, ctid: int, ip: str) -> None:
    """CT ``ctid`` as a copy of CT ``FIRST``: its config with ``ip``, its private area with
    :data:`SHARED` hard-linked and the rest copied, and its own page."""
    from vzcore.areas import write_marker

    conf_dir = root / "etc/vz/conf"
    lines = [line for line in (conf_dir / f"{FIRST}.conf").read_text().splitlines()
             if not line.startswith("IP_ADDRESS=")]
    (conf_dir / f"{ctid}.conf").write_text("\n".join([*lines, f'IP_ADDRESS="{ip}"']) + "\n")
    source, target = root / f"vz/private/{FIRST}", root / f"vz/private/{ctid}"
    copy_tree(source, target, "", SHARED)
    write_marker(target, ctid)
    write_page(target, ctid)


def copy_tree(source: Path, target: Path, relative: str, shared: tuple[str, ...]) -> None:
    """Copy ``source`` to ``target``, hard-linking the paths ``shared`` names (relative to
    the top, which ``relative`` is ``""`` for)."""
    if relative in shared:
        subprocess.run(["cp", "-a", "--link", str(source), str(target)], check=True)
    elif any(path.startswith(f"{relative}/") or not relative for path in shared):
        info = source.lstat()
        target.mkdir()
        os.chown(target, info.st_uid, info.st_gid)
        for entry in os.listdir(source):
            copy_tree(source / entry, target / entry, f"{relative}/{entry}".lstrip("/"), shared)
        shutil.copystat(source, target)
    else:
        subprocess.run(["cp", "-a", str(source), str(target)], check=True)


def write_page(private: Path, ctid: int) -> None:
    html = private / "var/www/html"
    html.mkdir(parents=True, exist_ok=True)
    (html / "index.html").write_bytes(web.page(f"CT {ctid}"))


def create_overlay(root: Path, env: dict[str, str], template: str, ctid: int, ip: str) -> None:
    """CT ``ctid`` made by ``vzctl create --layout overlay``, ONBOOT=yes, with its page
    written through its mounted root (the upper image is not a directory)."""
    vzctl(env, "create", ctid, "--ostemplate", template, "--layout", "overlay",
          "--diskspace", OVERLAY_DISKSPACE, "--ipadd", ip)
    with open(root / f"etc/vz/conf/{ctid}.conf", "a") as conf:  # what set --onboot --save adds
        conf.write('ONBOOT="yes"\n')
    vzctl(env, "mount", ctid)
    try:
        write_page(root / f"vz/root/{ctid}", ctid)
    finally:
        vzctl(env, "umount", ctid)


def add(root: Path, env: dict[str, str], template: str, ctid: int, ip: str, layout: str) -> None:
    """One more web CT in ``layout``, like the population's first."""
    if layout == "overlay":
        create_overlay(root, env, template, ctid, ip)
    else:
        clone(root, ctid, ip)


@contextmanager
def _own_disk(root: Path, parent: str, count: int) -> Iterator[None]:
    """``root/vz`` (templates, private areas, CT roots) on an ext4 file system of its own in
    a sparse image file, mounted without ``discard``.  The host's disk here is mounted with
    ``discard``, where removing ~2,000 copied files a CT issues as many synchronous discards
    (minutes for 100 CTs); the image is unmounted and removed as one file instead.  On
    leaving (after the CTs are stopped) also the cgroup parent goes, also when an interrupt
    cut the installation's own clean-up short."""
    image, mount_point = root / "vz.img", root / "vz"
    mount_point.mkdir(exist_ok=True)
    # a CT's own files are about 12 MiB and 4,000 inodes (every directory of the hard-linked
    # /usr is its own); twice that leaves room for the LXC containers' copies
    size, inodes = 2048 + 48 * count, 100_000 + 10_000 * count
    run(["truncate", "-s", f"{size}M", str(image)])
    run(["mkfs.ext4", "-q", "-E", "nodiscard", "-O", "^has_journal", "-N", str(inodes),
         str(image)])
    run(["mount", "-o", "loop,nodiscard", str(image), str(mount_point)])
    try:
        yield
    finally:
        if run(["umount", str(mount_point)], check=False).returncode != 0:
            run(["umount", "--lazy", str(mount_point)], check=False)  # frees the loop at last use
        image.unlink(missing_ok=True)
        try:
            remove_cgroup_parent(parent)
        except OSError as exc:
            log(f"clean-up: cgroup parent {parent}: {exc}")


@contextmanager
def population(count: int, tarball: Path, prefix: str, room: int | None = None,
               layout: str = "copy") -> Iterator[tuple[Path, dict[str, str], str, list[int]]]:
    """``count`` stopped web CTs (ONBOOT=yes) in ``layout`` in a private installation (its
    memory capped to leave :data:`RESERVE_MIB` to the host) whose
    ``/run`` is a tmpfs (as a host's is) and whose ``vz`` has room for ``room`` CTs
    (default ``count``); yields root, environment, cgroup parent and the CT IDs.  On
    leaving, every CT is stopped and everything removed."""
    with installation(prefix) as (root, env, parent), _own_disk(root, parent, room or count):
        memory.cap_parent(parent, meminfo()["MemAvailable"] / 1024 - RESERVE_MIB)
        prereq.link_template(tarball, root)
        (root / "run").mkdir()
        run(["mount", "-t", "tmpfs", "-o", "mode=755", "vzbench", str(root / "run")])
        try:
            name = tarball.name.removesuffix(".tar.zst")
            log(f"creating CT {FIRST} from {name} (layout {layout})")
            if layout == "overlay":
                create_overlay(root, env, name, FIRST, address(0))
            else:
                vzctl(env, "create", FIRST, "--ostemplate", name, "--ipadd", address(0))
                vzctl(env, "set", FIRST, "--onboot", "yes", "--save")
                write_page(root / f"vz/private/{FIRST}", FIRST)
            ctids = [FIRST]
            if count > 1:
                log(f"{'creating' if layout == 'overlay' else 'copying it to'} {count - 1} more CTs")
            with ThreadPoolExecutor(4) as pool:  # cp and mkfs wait on the disk as much as the CPU
                list(pool.map(lambda i: add(root, env, name, FIRST + i, address(i), layout),
                              range(1, count)))
            ctids += [FIRST + i for i in range(1, count)]
            yield root, env, parent, ctids
        finally:
            vzctl(env, "stop-all", "--fast", check=False)
            # the console daemon may still hold its socket there for a moment after the last
            # CT: detached then, the tmpfs goes with its last user (else it stayed mounted)
            if run(["umount", str(root / "run")], check=False).returncode != 0:
                run(["umount", "--lazy", str(root / "run")], check=False)
