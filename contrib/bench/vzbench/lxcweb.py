"""The same web CTs as LXC containers (Debian's ``lxc``): a copy of the web template's tree
per container (``/usr`` and the package databases hard-linked, as for the vzcore CTs),
sysvinit as PID 1 started by ``lxc-start``, each with a veth in LXC's router mode (an
address inside, a host route to it: the same routed model as venet), serving its own
4,300-byte page.  Measured for memory and throughput beside the vzcore CTs."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from vzbench import memory, web
from vzbench.common import log, meminfo, run
from vzbench.webcts import SHARED, copy_tree


def address(index: int) -> str:
    return f"10.202.{index // 250}.{index % 250 + 1}"


CONFIG = """\
lxc.uts.name = {name}
lxc.rootfs.path = dir:{rootfs}
lxc.init.cmd = /sbin/init
lxc.apparmor.profile = unconfined
lxc.cgroup.relative = 1
lxc.autodev = 1
lxc.tty.max = 0
lxc.pty.max = 16
lxc.mount.auto = proc:mixed sys:ro cgroup:mixed
lxc.net.0.type = veth
lxc.net.0.veth.mode = router
lxc.net.0.veth.pair = vzbl{index}
lxc.net.0.flags = up
lxc.net.0.ipv4.address = {ip}/32
lxc.net.0.ipv4.gateway = dev
"""


class LxcServers:
    """N LXC web containers below ``work/lxc``; :meth:`stop` removes them."""

    def __init__(self, tarball: Path, work: Path) -> None:
        self.tree, self.path = work / "lxc-tree", work / "lxc"
        self.path.mkdir()
        self.tree.mkdir()
        self.names: list[str] = []
        run(["tar", "--zstd", "-xpf", str(tarball), "-C", str(self.tree), "--numeric-owner"])

    def _make(self, index: int) -> str:
        name = f"vzbench{index}"
        directory = self.path / name
        directory.mkdir()
        copy_tree(self.tree, directory / "rootfs", "", SHARED)
        html = directory / "rootfs/var/www/html"
        html.mkdir(parents=True, exist_ok=True)
        (html / "index.html").write_bytes(web.page(f"lxc {index}"))
        (directory / "config").write_text(CONFIG.format(name=name, rootfs=directory / "rootfs",
                                                        index=index, ip=address(index)))
        return name

    def start(self, count: int) -> list[str]:
        with ThreadPoolExecutor(4) as pool:
            names = list(pool.map(self._make, range(count)))
        for name in names:
            run(["lxc-start", "-n", name, "-P", str(self.path), "-d"])
            self.names.append(name)
        return [f"{address(i)}:80" for i in range(count)]

    def stop(self) -> None:
        for name in self.names:
            subprocess.run(["lxc-stop", "-k", "-n", name, "-P", str(self.path)],
                           capture_output=True, check=False, timeout=60)
        self.names.clear()
        shutil.rmtree(self.path, ignore_errors=True)

    def groups(self) -> list[Path]:
        """The containers' memory groups (``lxc.payload.NAME`` below ours)."""
        own = memory.memory_parent(".")  # "." resolves to our own group
        return [] if own is None else [own / f"lxc.payload.{name}" for name in self.names]

    def monitors(self) -> list[int]:
        """The host-side ``lxc-start`` monitor processes, one per container."""
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                except OSError:
                    continue
                if cmdline.startswith(b"[lxc monitor]") and str(self.path).encode() in cmdline:
                    found.append(int(entry))
        return found


def measure_memory(servers: LxcServers, before: dict[str, int], count: int) -> dict[str, Any]:
    """Per container: MemAvailable drop, PSS of its processes, memcg charge, processes, and
    the host-side monitor's PSS."""
    after = meminfo()
    pss = usage = processes = 0.0
    for group in servers.groups():
        if not group.is_dir():
            continue
        usage += int((group / "memory.usage_in_bytes").read_text()) / memory.MIB
        for pid in memory.group_pids(group):
            rollup = memory.smaps(pid)
            if rollup:
                processes += 1
                pss += rollup.get("Pss", 0) / 1024
    monitor = sum((memory.smaps(pid) or {}).get("Pss", 0) for pid in servers.monitors()) / 1024
    return {"memavailable_drop_mib_per_ct": (before["MemAvailable"] - after["MemAvailable"])
            / 1024 / count, "pss_mib_per_ct": pss / count, "memcg_usage_mib_per_ct": usage / count,
            "processes_per_ct": processes / count, "monitor_pss_mib_per_ct": monitor / count}


def wait(targets: list[str], count: int) -> float:
    started = time.monotonic()
    web.wait_serving([t.split(":")[0] for t in targets], limit=120 + count * 3)
    elapsed = time.monotonic() - started
    log(f"all {count} LXC containers serve after {elapsed:.1f} s")
    return elapsed
