"""The built-in ``busybox`` OS template: a complete small system from the host's static
busybox, needing nothing from the network.

The private area gets the binary, a link for every applet busybox offers, the usual
directories, ``/etc/passwd``, ``/etc/group``, and an ``/etc/inittab`` whose ``sysinit``
runs ``/etc/init.d/rcS`` (which runs ``/etc/init.d/S??*`` scripts) and which respawns
nothing, so an idle CT is one sleeping init.  ``halt`` (a busybox applet) makes init run
``/etc/init.d/rcK``, stop every process and exit: that is what ``vzctl stop`` uses.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

from vzcore.errors import BadTemplate
from vzcore.linux import safefs

CANDIDATES = ("/bin/busybox", "/usr/bin/busybox", "/usr/sbin/busybox", "/sbin/busybox")
PT_INTERP = 3

DIRECTORIES = {
    "bin": 0o755, "sbin": 0o755, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755,
    "etc": 0o755, "etc/init.d": 0o755, "root": 0o700, "home": 0o755, "tmp": 0o1777,
    "var": 0o755, "var/log": 0o755, "var/tmp": 0o1777, "run": 0o755, "proc": 0o555,
    "sys": 0o555, "dev": 0o755, "mnt": 0o755, "opt": 0o755, "srv": 0o755, "www": 0o755,
}

FILES: dict[str, tuple[int, str]] = {
    "etc/passwd": (0o644, "root:x:0:0:root:/root:/bin/sh\n"
                          "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
                          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"),
    "etc/shadow": (0o640, "root:*:19000:0:99999:7:::\ndaemon:*:19000:0:99999:7:::\n"
                          "nobody:*:19000:0:99999:7:::\n"),
    "etc/group": (0o644, "root:x:0:\ndaemon:x:1:\ntty:x:5:\nnogroup:x:65534:\n"),
    "etc/inittab": (0o644, "# vzcore busybox template: nothing is respawned by default.\n"
                           "::sysinit:/etc/init.d/rcS\n"
                           "::shutdown:/etc/init.d/rcK\n"),
    "etc/init.d/rcS": (0o755, "#!/bin/sh\n# Run at CT start by init: start every S??* script.\n"
                              "for script in /etc/init.d/S[0-9][0-9]*; do\n"
                              "    [ -x \"$script\" ] && \"$script\" start\n"
                              "done\nexit 0\n"),
    "etc/init.d/rcK": (0o755, "#!/bin/sh\n# Run by init at halt: stop every S??* script, last first.\n"
                              "for script in $(ls -r /etc/init.d/S[0-9][0-9]* 2>/dev/null); do\n"
                              "    [ -x \"$script\" ] && \"$script\" stop\n"
                              "done\nexit 0\n"),
    "etc/profile": (0o644, "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
                           "export PS1='\\u@\\h:\\w\\$ '\n"),
    "etc/hosts": (0o644, "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"),
    "etc/resolv.conf": (0o644, ""),
    "etc/hostname": (0o644, "localhost\n"),
    "etc/os-release": (0o644, 'NAME="vzcore busybox"\nID=busybox\nPRETTY_NAME="vzcore busybox template"\n'),
    "etc/shells": (0o644, "/bin/sh\n/bin/ash\n"),
}


def is_static_elf(path: str) -> bool:
    """True for an ELF executable without a program interpreter (statically linked)."""
    try:
        with open(path, "rb") as f:
            header = f.read(64)
            if header[:4] != b"\x7fELF" or header[4] != 2:  # 64-bit only
                return False
            phoff, = struct.unpack_from("<Q", header, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
            for i in range(phnum):
                f.seek(phoff + i * phentsize)
                if struct.unpack("<I", f.read(4))[0] == PT_INTERP:
                    return False
            return True
    except (OSError, struct.error):
        return False


def find_static_busybox() -> str:
    for path in CANDIDATES:
        if os.path.exists(path) and is_static_elf(os.path.realpath(path)):
            return os.path.realpath(path)
    raise BadTemplate("the busybox template needs a statically linked busybox on the host; "
                      "install it with 'apt-get install busybox-static'")


def probe() -> bool:
    """Whether this host can make the template (entry point ``busybox`` of group
    ``vzcore.test_features``: the test suites ask it through vzcore.testing.probes)."""
    try:
        find_static_busybox()
        return True
    except BadTemplate:
        return False


def applets(busybox: str) -> list[str]:
    """Applet paths relative to the root (``bin/ls``, ``sbin/init``...)."""
    out = subprocess.run([busybox, "--list-full"], check=True, capture_output=True, text=True).stdout
    return [line.strip().lstrip("/") for line in out.splitlines() if line.strip()]


def populate(private: Path) -> None:
    """Fill the empty directory ``private`` with the busybox system."""
    busybox = find_static_busybox()
    root_fd = safefs.open_root(private)
    try:
        for directory, mode in DIRECTORIES.items():
            safefs.makedirs(root_fd, directory)
            with safefs.opened(root_fd, directory, os.O_RDONLY | os.O_DIRECTORY) as fd:
                os.fchmod(fd, mode)
        with safefs.opened(root_fd, "var", os.O_PATH | os.O_DIRECTORY) as var_fd:
            os.symlink("../run", "run", dir_fd=var_fd)
        binary = safefs.open_in(root_fd, "bin/busybox", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o755)
        with open(busybox, "rb") as src, os.fdopen(binary, "wb") as dst:
            shutil.copyfileobj(src, dst)
            os.fchmod(dst.fileno(), 0o755)
        for applet in applets(busybox):
            if applet == "bin/busybox":
                continue
            directory, _, name = applet.rpartition("/")
            safefs.makedirs(root_fd, directory)
            with safefs.opened(root_fd, directory, os.O_PATH | os.O_DIRECTORY) as dir_fd:
                try:
                    os.symlink("/bin/busybox", name, dir_fd=dir_fd)
                except FileExistsError:
                    pass
        for path, (mode, text) in FILES.items():
            safefs.write_file(root_fd, path, text.encode(), mode)
    finally:
        os.close(root_fd)
