"""The host baseline: the web template's own apache2 (same binary, modules, prefork with
eight workers, same page), N times directly on the host, each on its own address.

The template tree is unpacked once; every server runs ``chroot TREE apache2`` (a chroot
only changes where paths are looked up: no namespace, no cgroup of its own), listening on
``10.201.X.Y:80``, an address on ``lo`` of the suite's network namespace."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from vzbench import web
from vzbench.common import run


def address(index: int) -> str:
    return f"10.201.{index // 250}.{index % 250 + 1}"


class HostServers:
    """N apache2 servers on the host; :meth:`stop` ends every process of them."""

    def __init__(self, tarball: Path, work: Path) -> None:
        self.tree = work / "host-tree"
        self.count = 0
        self.tree.mkdir()
        run(["tar", "--zstd", "-xpf", str(tarball), "-C", str(self.tree), "--numeric-owner"])
        for node, minor in (("null", 3), ("zero", 5), ("urandom", 9)):
            run(["mknod", "-m", "666", str(self.tree / "dev" / node), "c", "1", str(minor)])
        # the listening address and the page's directory come from each server's environment
        (self.tree / "etc/apache2/ports.conf").write_text("Listen ${BENCH_LISTEN}\n")
        site = self.tree / "etc/apache2/sites-available/000-default.conf"
        site.write_text("\n".join(
            line.replace("/var/www/html", "${BENCH_DOCROOT}") for line in
            site.read_text().splitlines()) + "\n")

    def start(self, count: int) -> list[str]:
        """Start ``count`` servers; their ``ADDR:80``."""
        targets = []
        for i in range(count):
            ip = address(i)
            run(["ip", "addr", "add", f"{ip}/32", "dev", "lo"])
            name = f"h{i}"
            for directory in (f"run/apache2/{name}", f"run/lock/apache2/{name}",
                              f"var/log/apache2/{name}", f"var/www/{name}"):
                (self.tree / directory).mkdir(parents=True, exist_ok=True)
            os.chown(self.tree / f"run/lock/apache2/{name}", 33, 33)  # www-data
            (self.tree / f"var/www/{name}/index.html").write_bytes(web.page(f"host {i}"))
            env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C",
                   "APACHE_RUN_USER": "www-data", "APACHE_RUN_GROUP": "www-data",
                   "APACHE_PID_FILE": f"/run/apache2/{name}/apache2.pid",
                   "APACHE_RUN_DIR": f"/run/apache2/{name}",
                   "APACHE_LOCK_DIR": f"/run/lock/apache2/{name}",
                   "APACHE_LOG_DIR": f"/var/log/apache2/{name}",
                   "BENCH_LISTEN": f"{ip}:80", "BENCH_DOCROOT": f"/var/www/{name}"}
            run(["chroot", str(self.tree), "/usr/sbin/apache2", "-k", "start"], env=env)
            self.count += 1
            targets.append(f"{ip}:80")
        return targets

    def pids(self) -> list[int]:
        """Every process whose root is the tree (the servers and their workers)."""
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.readlink(f"/proc/{entry}/root") == str(self.tree):
                        found.append(int(entry))
                except OSError:
                    continue
        return found

    def stop(self) -> None:
        """SIGTERM to every server, SIGKILL to what is left after 5 s; the addresses go."""
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 2.0)):
            for pid in self.pids():
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + wait
            while self.pids() and time.monotonic() < deadline:
                time.sleep(0.1)
        for i in range(self.count):
            subprocess.run(["ip", "addr", "del", f"{address(i)}/32", "dev", "lo"],
                           capture_output=True, check=False)
        self.count = 0
