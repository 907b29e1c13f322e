"""A booted Debian CT's memory: vzcore against ``systemd-nspawn --boot``, same template, same run.

Run as root from the repository with the venv interpreter of the tree to measure (it
re-executes itself in a new network namespace, so no host interface is touched):

    .venv/bin/python contrib/bench/system_ct_memory.py [--runs 3] [--cache DIR] [--json FILE]

``--cache`` is a template cache directory holding ``NAME.tar.*`` and ``NAME.json`` as
``vzctl template create`` makes them (default ``$VZ_TEST_TEMPLATES``, else
``/vz/template/cache``); ``--template`` the name (default ``debian-12-x86_64-minimal``).

Each run boots the template twice, one after the other (which goes first alternates):

* **vzcore**: ``vzctl create --ostemplate NAME`` in a private ``VZ_ROOT`` (its
  ``TEMPLATE`` holds a copy of the cache), ``vzctl start --wait``;
* **nspawn**: the same tarball unpacked into a directory, ``systemd-nspawn --boot
  --private-network --register=no --keep-unit``, started in groups this benchmark makes
  below the run's ``CGROUP_PARENT`` in every hierarchy (the host runs no systemd, so
  nspawn stays in the groups it starts in), the way vzcore places a CT.

Before each boot the page cache of the unpacked tree is dropped (``fsync`` and
``POSIX_FADV_DONTNEED`` per file, nothing host-wide), so the files the boot reads are
charged to the CT's memory group in both cases and not to the benchmark that wrote them.
Each CT is up when ``systemctl is-system-running`` inside says running or degraded and
journald, cron and sshd are active (vzcore: ``vzctl exec``; nspawn: ``nsenter`` into the
leader's namespaces from the CT's memory group, so that what these commands map is
charged to the CT in both cases); then the benchmark waits ``--settle`` seconds and measures:

* the CT's memory group, found from its init's ``/proc/PID/cgroup``: ``memory.usage_in_bytes``
  on v1 (``memory.current`` on v2), and from ``memory.stat`` the anonymous memory (rss /
  anon), the page cache (cache / file), kernel memory where the kernel reports it;
* the CT's processes (every process in its init's PID namespace): count, names, sum of
  RSS and of PSS (``/proc/PID/smaps_rollup``);
* the host side: for vzcore every process whose command line or environment names the
  run's ``VZ_ROOT`` (shared daemons such as the beancounters view and lxcfs, one per host
  whatever the number of CTs); for nspawn its supervisor process (one per CT, the CT's
  parent). For nspawn the supervisor is also *inside* the measured memory group (nspawn
  cannot start its child elsewhere); its PSS is reported so it can be subtracted.

Everything is removed at the end: CTs, trees, cgroups, processes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from population import installation, reexec_in_netns, vzctl

from vzcore.linux.procfs import command_name

FIRST_CTID = 201
SERVICES = ("systemd-journald", "cron", "ssh")
UP_STATES = ("running", "degraded")


# --- what a process and a memory group cost ------------------------------------------

def smaps_rollup(pid: int) -> dict[str, int]:
    """``/proc/PID/smaps_rollup`` in KiB (empty for a process gone meanwhile)."""
    values: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                words = line.split()
                if len(words) == 3 and words[2] == "kB":
                    values[words[0].rstrip(":")] = int(words[1])
    except OSError:
        pass
    return values


def processes_in_pidns(init: int) -> list[int]:
    """Every process in the PID namespace of ``init`` (the CT's processes)."""
    namespace = os.readlink(f"/proc/{init}/ns/pid")
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == namespace:
                    found.append(int(entry))
            except OSError:
                continue
    return sorted(found)


def processes_cost(pids: list[int]) -> dict[str, Any]:
    rollups = {pid: smaps_rollup(pid) for pid in pids}
    by_name: dict[str, int] = {}
    for pid, rollup in rollups.items():
        by_name[command_name(pid)] = by_name.get(command_name(pid), 0) + rollup.get("Pss", 0)
    return {"count": len(pids), "names": sorted(command_name(pid) for pid in pids),
            "pss_kib_by_name": by_name,
            "rss_kib": sum(r.get("Rss", 0) for r in rollups.values()),
            "anon_kib": sum(r.get("Anonymous", 0) for r in rollups.values()),
            "pss_kib": sum(r.get("Pss", 0) for r in rollups.values())}


def memory_group(pid: int) -> Path:
    """The directory of the memory group ``pid`` is in."""
    from vzcore.linux import cgroups

    for hierarchy in cgroups.hierarchies(pid):
        if "memory" in hierarchy.controllers:
            return hierarchy.directory(hierarchy.own)
    raise SystemExit("no memory controller mounted")


def group_cost(directory: Path) -> dict[str, float]:
    """What a memory group's charge says, in KiB."""
    stat = {}
    for line in (directory / "memory.stat").read_text().splitlines():
        name, value = line.split()
        stat[name] = int(value)
    if (directory / "memory.usage_in_bytes").exists():  # v1
        usage = int((directory / "memory.usage_in_bytes").read_text())
        kmem_file = directory / "memory.kmem.usage_in_bytes"
        kmem = int(kmem_file.read_text()) if kmem_file.exists() else None
        anon, cache = stat["total_rss"], stat["total_cache"]
        shmem, mapped = stat["total_shmem"], stat["total_mapped_file"]
    else:
        usage = int((directory / "memory.current").read_text())
        kmem = stat.get("kernel")
        anon, cache = stat["anon"], stat["file"]
        shmem, mapped = stat["shmem"], stat["file_mapped"]
    result = {"charge_kib": usage / 1024, "anon_kib": anon / 1024, "cache_kib": cache / 1024,
              "shmem_kib": shmem / 1024, "mapped_kib": mapped / 1024}
    if kmem is not None:
        result["kernel_kib"] = kmem / 1024
    return result


def host_processes(root: Path) -> list[int]:
    """Host processes of the run's vzcore: those whose command line names its ``VZ_ROOT``
    or whose environment has it (vzctl itself leaves none)."""
    name, setting = str(root).encode(), b"VZ_ROOT=" + str(root).encode() + b"\0"
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read()
                with open(f"/proc/{entry}/environ", "rb") as f:
                    environ = f.read()
            except OSError:
                continue
            if name in cmdline or setting in environ:
                found.append(int(entry))
    return sorted(found)


# --- booting -----------------------------------------------------------------------

def drop_page_cache(tree: Path) -> None:
    """Write back and drop the page cache of every regular file under ``tree``, so the
    boot reads them from disk and its memory group is charged for them."""
    for directory, _dirs, files in os.walk(tree):
        for name in files:
            path = os.path.join(directory, name)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                continue  # symlinks, sockets, fifos
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            except OSError:
                pass
            finally:
                os.close(fd)


def wait_until_up(run_inside: Callable[[list[str]], subprocess.CompletedProcess[str]],
                  timeout: float) -> dict[str, Any]:
    """Poll until systemd is running/degraded and the services are active; return the
    state and the failed units."""
    deadline = time.monotonic() + timeout
    while True:
        state = run_inside(["systemctl", "is-system-running"]).stdout.strip()
        active = run_inside(["systemctl", "is-active", *SERVICES]).stdout.split()
        if state in UP_STATES and active == ["active"] * len(SERVICES):
            failed = run_inside(["systemctl", "list-units", "--failed", "--plain",
                                 "--no-legend"]).stdout.split("\n")
            return {"state": state, "failed": [line.split()[0] for line in failed if line]}
        if time.monotonic() > deadline:
            raise SystemExit(f"not up after {timeout:.0f} s: {state}, {SERVICES} {active}")
        time.sleep(0.5)


def vzcore_boot(root: Path, env: dict[str, str], ctid: int, name: str, settle: float,
                timeout: float) -> dict[str, Any]:
    vzctl(env, "create", ctid, "--ostemplate", name)
    try:
        drop_page_cache(root / f"vz/private/{ctid}")
        started = time.perf_counter()
        vzctl(env, "start", ctid, "--wait")
        vzctl_bin = str(Path(sys.executable).with_name("vzctl"))

        def inside(argv: list[str]) -> subprocess.CompletedProcess[str]:
            return subprocess.run([vzctl_bin, "--quiet", "exec", str(ctid), *argv], env=env,
                                  capture_output=True, text=True, check=False)

        up = wait_until_up(inside, timeout)
        up["boot_s"] = time.perf_counter() - started
        time.sleep(settle)
        up.update(wait_until_up(inside, timeout))  # units may have failed meanwhile
        state = json.loads((root / f"run/vz/{ctid}.json").read_text())
        init = state["init"]["pid"]
        result = {**up, **measure(init), "host": processes_cost(host_processes(root))}
        result["host"]["per_ct"] = False  # shared by every CT of the host
        return result
    finally:
        # A failed stop or destroy is not fatal here: the next run uses another ctid and
        # the installation's clean-up stops whatever still runs.
        for verb in ("stop", "destroy"):
            done = subprocess.run([str(Path(sys.executable).with_name("vzctl")), "--quiet",
                                  verb, str(ctid)], env=env, capture_output=True, text=True,
                                 check=False)
            if done.returncode:
                print(f"warning: vzctl {verb} {ctid}: {done.stderr.strip()}", file=sys.stderr)


def measure(init: int) -> dict[str, Any]:
    return {"group": group_cost(memory_group(init)),
            "processes": processes_cost(processes_in_pidns(init))}


@contextmanager
def nspawn_groups(parent: str, name: str) -> Iterator[list[Path]]:
    """A group ``name`` below ``parent`` in every hierarchy but cpuset; removed (with what
    nspawn made below it) on exit."""
    from vzcore.linux import cgroups

    made = []
    try:
        for hierarchy in cgroups.hierarchies():
            if "cpuset" in hierarchy.controllers:
                continue  # a new v1 cpuset group has no CPUs; vzcore's CTs get all of them
            directory = hierarchy.directory(cgroups.resolve_parent(parent, hierarchy)) / name
            directory.mkdir(parents=True, exist_ok=True)
            made.append(directory)
        yield made
    finally:
        for top in made:
            for below, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
                try:
                    os.rmdir(below)
                except OSError as error:
                    print(f"warning: {below} not removed: {error}", file=sys.stderr)


def nspawn_boot(work: Path, tarball: Path, parent: str, settle: float,
                timeout: float) -> dict[str, Any]:
    tree = work / "nspawn-root"
    tree.mkdir()
    subprocess.run(["tar", "-xpf", str(tarball), "--numeric-owner", "-C", str(tree)],
                   check=True)
    try:
        drop_page_cache(tree)
        with nspawn_groups(parent, "nspawn") as groups:
            def enter_groups() -> None:
                for group in groups:
                    (group / "cgroup.procs").write_text(str(os.getpid()))

            def enter_memory_group() -> None:
                # What runs inside is charged to the CT, as with vzctl exec: the first
                # systemctl may map libraries before the CT's own processes do.
                (memory / "cgroup.procs").write_text(str(os.getpid()))

            started = time.perf_counter()
            with open(work / "nspawn.log", "w") as log:
                nspawn = subprocess.Popen(
                    ["systemd-nspawn", "--quiet", "--boot", "-D", str(tree), "--private-network",
                     "--register=no", "--keep-unit", "--console=read-only"],
                    stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=enter_groups,
                    start_new_session=True)
                try:
                    leader = nspawn_leader(nspawn, timeout)
                    memory = memory_group(leader)

                    def inside(argv: list[str]) -> subprocess.CompletedProcess[str]:
                        return subprocess.run(["nsenter", "-t", str(leader), "-a", *argv],
                                              capture_output=True, text=True, check=False,
                                              preexec_fn=enter_memory_group)

                    up = wait_until_up(inside, timeout)
                    up["boot_s"] = time.perf_counter() - started
                    time.sleep(settle)
                    up.update(wait_until_up(inside, timeout))
                    result = {**up, **measure(leader),
                              "host": {**processes_cost([nspawn.pid]), "per_ct": True}}
                finally:
                    stop_nspawn(nspawn)
        return result
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def nspawn_leader(nspawn: subprocess.Popen[bytes], timeout: float) -> int:
    """The container's PID 1 as the host sees it: nspawn's child running systemd."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if nspawn.poll() is not None:
            raise SystemExit(f"systemd-nspawn exited with {nspawn.returncode}")
        children = Path(f"/proc/{nspawn.pid}/task/{nspawn.pid}/children").read_text().split()
        for child in children:
            try:
                if os.readlink(f"/proc/{child}/ns/pid") != os.readlink(f"/proc/{nspawn.pid}/ns/pid"):
                    return int(child)
            except FileNotFoundError:  # a short-lived helper
                continue
        time.sleep(0.1)
    raise SystemExit("systemd-nspawn started no container")


def stop_nspawn(nspawn: subprocess.Popen[bytes]) -> None:
    """SIGTERM makes nspawn shut the container down through its systemd; killed at 30 s."""
    nspawn.send_signal(signal.SIGTERM)
    try:
        nspawn.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(nspawn.pid, signal.SIGKILL)
        nspawn.wait()


# --- the run -----------------------------------------------------------------------

def run(runs: int, cache: Path, name: str, settle: float, timeout: float) -> dict[str, Any]:
    metadata = json.loads((cache / f"{name}.json").read_text())
    tarball = cache / metadata["tarball"]
    results: dict[str, Any] = {"template": name, "tarball_bytes": tarball.stat().st_size,
                               "settle_s": settle, "vzcore": [], "nspawn": []}
    with installation("vzbench-sysmem") as (root, env, parent):
        template_cache = root / "template/cache"
        template_cache.mkdir(parents=True)
        for source in (tarball, cache / f"{name}.json"):
            try:
                os.link(source, template_cache / source.name)
            except OSError:
                shutil.copy2(source, template_cache / source.name)
        with open(root / "etc/vz/vz.conf", "a") as f:
            f.write('TEMPLATE="/template"\n')  # inside VZ_ROOT
        work = Path(tempfile.mkdtemp(prefix="vzbench-sysmem-nspawn-"))
        try:
            for i in range(runs):
                order = ["vzcore", "nspawn"] if i % 2 == 0 else ["nspawn", "vzcore"]
                for kind in order:
                    print(f"run {i + 1}/{runs}: booting {name} under {kind} ...", flush=True)
                    if kind == "vzcore":
                        sample = vzcore_boot(root, env, FIRST_CTID + i, name, settle, timeout)
                    else:
                        sample = nspawn_boot(work, tarball, parent, settle, timeout)
                    results[kind].append(sample)
                    _line(kind, sample)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return results


def _line(kind: str, s: dict[str, Any]) -> None:
    g, p, h = s["group"], s["processes"], s["host"]
    print(f"  {kind}: {s['state']} in {s['boot_s']:.1f} s (failed: {', '.join(s['failed']) or '-'}); "
          f"group {g['charge_kib'] / 1024:.1f} MiB (anon {g['anon_kib'] / 1024:.1f}, cache "
          f"{g['cache_kib'] / 1024:.1f}, tmpfs {g['shmem_kib'] / 1024:.1f}); "
          f"{p['count']} processes, PSS {p['pss_kib'] / 1024:.1f} MiB; "
          f"host side {h['count']} processes, PSS {h['pss_kib'] / 1024:.1f} MiB", flush=True)


ROWS = [
    ("memory group: charge", lambda s: s["group"]["charge_kib"]),
    ("  of which anonymous", lambda s: s["group"]["anon_kib"]),
    ("  of which page cache", lambda s: s["group"]["cache_kib"]),
    ("    of it tmpfs (shmem)", lambda s: s["group"]["shmem_kib"]),
    ("    of it mapped", lambda s: s["group"]["mapped_kib"]),
    ("  kernel memory", lambda s: s["group"].get("kernel_kib", float("nan"))),
    ("CT processes: sum of PSS", lambda s: s["processes"]["pss_kib"]),
    ("CT processes: sum of RSS", lambda s: s["processes"]["rss_kib"]),
    ("host-side processes: PSS", lambda s: s["host"]["pss_kib"]),
    ("host-side processes: RSS", lambda s: s["host"]["rss_kib"]),
]


def report(results: dict[str, Any]) -> None:
    print()
    print(f"{results['template']}, {len(results['vzcore'])} runs, medians in MiB")
    print(f"{'':28} {'vzcore':>10} {'nspawn':>10}")
    for label, value in ROWS:
        cells = [statistics.median(value(s) for s in results[kind]) / 1024
                 for kind in ("vzcore", "nspawn")]
        print(f"{label:28} {cells[0]:10.1f} {cells[1]:10.1f}")
    for kind in ("vzcore", "nspawn"):
        s = results[kind][-1]
        print(f"{kind}: {s['processes']['count']} CT processes ({' '.join(s['processes']['names'])}), "
              f"{s['host']['count']} host-side ({'per CT' if s['host']['per_ct'] else 'shared'}: "
              f"{' '.join(s['host']['names']) or '-'}), boot "
              f"{statistics.median(x['boot_s'] for x in results[kind]):.1f} s")


def plot(results: dict[str, Any], path: Path) -> None:
    from svgplot import strip_plot

    series = []
    for label, value in (ROWS[0], ROWS[6], ROWS[8]):
        for kind in ("vzcore", "nspawn"):
            series.append((f"{kind}: {label.strip()}", [value(s) / 1024 for s in results[kind]]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(strip_plot(f"booted {results['template']}: vzcore vs systemd-nspawn --boot",
                               "MiB", series))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="boots of each (default 3)")
    parser.add_argument("--cache", type=Path,
                        default=Path(os.environ.get("VZ_TEST_TEMPLATES", "/vz/template/cache")),
                        help="template cache directory (default $VZ_TEST_TEMPLATES or /vz/template/cache)")
    parser.add_argument("--template", default="debian-12-x86_64-minimal", help="template name")
    parser.add_argument("--settle", type=float, default=5.0,
                        help="seconds to wait once up before measuring (default 5)")
    parser.add_argument("--timeout", type=float, default=120.0, help="boot timeout in seconds")
    parser.add_argument("--plot", type=Path, help="write an SVG of every run's numbers")
    parser.add_argument("--json", type=Path,
                        help="also write every measurement to this JSON file (- for stdout)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root")
    if not shutil.which("systemd-nspawn"):
        raise SystemExit("systemd-nspawn not found (Debian package systemd-container)")
    reexec_in_netns()
    results = run(args.runs, args.cache.resolve(), args.template, args.settle, args.timeout)
    report(results)
    if args.plot:
        plot(results, args.plot)
    if args.json == Path("-"):
        print(json.dumps(results, indent=1))
    elif args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
