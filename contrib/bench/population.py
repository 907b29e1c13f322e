"""Shared by the benchmarks that run many CTs: a private ``VZ_ROOT``, timed vzctl calls,
cheap copies of one CT, and removal of everything at the end.

A population is set up quickly: CT 101 is created from the busybox template and every
other CT gets a copy of its config (with its own ``IP_ADDRESS``) and a hard-linked copy of
its private area.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

FIRST = 101
HOOKTIMES = str(Path(__file__).with_name("hooktimes.py"))
REEXEC_ENV = "VZ_BENCH_IN_NETNS"


def _timed(argv: list[str], env: dict[str, str], check: bool) -> tuple[float, str]:
    """Run ``argv``; return its wall time in seconds and its stderr."""
    started = time.perf_counter()
    result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if check and result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {result.stderr.strip()}")
    return elapsed, result.stderr


def vzctl(env: dict[str, str], *args: object, check: bool = True,
          hooks: dict[str, float] | None = None) -> float:
    """Run vzctl; return its wall time in seconds.  With ``hooks``, run it through
    ``hooktimes.py`` and add each plugin's hook time (seconds) to ``hooks[plugin]``."""
    argv = ([sys.executable, HOOKTIMES] if hooks is not None
            else [str(Path(sys.executable).with_name("vzctl"))])
    elapsed, stderr = _timed([*argv, "--quiet", *map(str, args)], env, check)
    if hooks is not None:
        for line in stderr.splitlines():
            words = line.split()
            if len(words) == 4 and words[0] == "hooktime" and words[1] != "total":
                hooks[words[1]] = hooks.get(words[1], 0.0) + float(words[3]) / 1000
    return elapsed


def vzlist(env: dict[str, str], *args: str) -> float:
    """Run vzlist; return its wall time in seconds."""
    return _timed([str(Path(sys.executable).with_name("vzlist")), *args], env, True)[0]


def address(index: int) -> str:
    """The venet address of the population's ``index``-th CT (10.200.0.0/16)."""
    return f"10.200.{index // 250}.{index % 250 + 1}"


def clone(root: Path, source: int, ctid: int, ip: str | None) -> None:
    """CT ``ctid`` as a copy of CT ``source``: its config (with ``ip``) and a hard-linked
    private area."""
    conf_dir = root / "etc/vz/conf"
    lines = [line for line in (conf_dir / f"{source}.conf").read_text().splitlines()
             if not line.startswith("IP_ADDRESS=")]
    if ip:
        lines.append(f'IP_ADDRESS="{ip}"')
    (conf_dir / f"{ctid}.conf").write_text("\n".join(lines) + "\n")
    subprocess.run(["cp", "-a", "--link", str(root / f"vz/private/{source}"),
                    str(root / f"vz/private/{ctid}")], check=True)
    from vzcore.areas import write_marker

    write_marker(root / f"vz/private/{ctid}", ctid)  # cp -a copied the source CT's mark


@contextmanager
def installation(prefix: str) -> Iterator[tuple[Path, dict[str, str], str]]:
    """A private ``VZ_ROOT`` with its own ``CGROUP_PARENT``; yields the root, the
    environment for vzctl and the cgroup parent.  On exit every CT still running is stopped
    with ``--fast``, and the root and the cgroup parent are removed."""
    root = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    env = {**os.environ, "VZ_ROOT": str(root)}
    parent = f"{prefix}-{uuid.uuid4().hex[:8]}"
    settings = {"CGROUP_PARENT": parent, "STOP_TIMEOUT": "5", "NEIGHBOUR_DEVS": "none"}
    (root / "etc/vz").mkdir(parents=True)
    (root / "etc/vz/vz.conf").write_text("".join(f'{k}="{v}"\n' for k, v in settings.items()))
    try:
        yield root, env, parent
    finally:
        run_dir = root / "run/vz"
        for state in run_dir.glob("*.json") if run_dir.exists() else []:
            vzctl(env, "stop", "--fast", state.stem, check=False)
        shutil.rmtree(root, ignore_errors=True)
        remove_cgroup_parent(parent)


def remove_cgroup_parent(parent: str) -> None:
    """Remove a benchmark's ``CGROUP_PARENT`` in every hierarchy, with any group left in it
    (a stopped CT's groups are gone already)."""
    from vzcore.linux.cgroups import parent_dirs

    for directory in parent_dirs(parent):
        if directory.is_dir():
            for child in directory.iterdir():
                if child.is_dir():
                    child.rmdir()
            directory.rmdir()


def reexec_in_netns() -> None:
    """Re-run this script in a network namespace of its own (lo up, and an uplink veth pair
    ``vzb-up0``/``vzb-up1`` with 10.200.255.1/24), unless it already runs in one."""
    from vzcore.testing.probes import in_private_netns

    if in_private_netns() or os.environ.get(REEXEC_ENV):
        return
    os.environ[REEXEC_ENV] = "1"  # (the probe cannot always tell, e.g. under nohup)
    os.execvp("unshare", ["unshare", "--net", "--", "sh", "-c",
                          "ip link set lo up && ip link add vzb-up0 type veth peer name vzb-up1"
                          " && ip addr add 10.200.255.1/24 dev vzb-up0 && ip link set vzb-up0 up"
                          ' && ip link set vzb-up1 up && exec "$0" "$@"', sys.executable,
                          os.path.abspath(sys.argv[0]), *sys.argv[1:]])
