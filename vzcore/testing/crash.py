"""The crash-checkpoint harness: kill the real vzctl at each named point of a verb.

:mod:`vzcore.faults` gives vzctl named checkpoints; ``VZ_FAULT_TRACE`` makes a run list
the points it passes and ``VZ_FAULT_KILL_AT`` makes it SIGKILL itself at one.  A test
first learns the points of a verb (:func:`learn_points`, so points added later are
covered too), then kills vzctl at each (:func:`kill_at`) and checks that the next command
cleans what the killed one left (:func:`leftovers`).  Needs root and a real kernel.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

from vzcore.faults import KILL_ENV, TRACE_ENV
from vzcore.testing.pytest_plugin import VzEnv, vzctl_binary


def learn_points(vz_env: VzEnv, argv: Sequence[str], prefixes: Sequence[str],
                 trace: Path) -> list[str]:
    """The checkpoints that ``vzctl argv`` passes (it must succeed), in order, once each,
    keeping those that start with one of ``prefixes`` (``"start:"``)."""
    trace.write_text("")
    env = {**vz_env.env, TRACE_ENV: str(trace)}
    subprocess.run([vzctl_binary(), *argv], env=env, check=True, capture_output=True)
    return [p for p in dict.fromkeys(trace.read_text().split()) if p.startswith(tuple(prefixes))]


def kill_at(vz_env: VzEnv, argv: Sequence[str], point: str) -> subprocess.CompletedProcess[bytes]:
    """Run ``vzctl argv`` and have it killed (SIGKILL) at ``point``; fails if it was not."""
    killed = subprocess.run([vzctl_binary(), *argv], env={**vz_env.env, KILL_ENV: point},
                            capture_output=True)
    assert killed.returncode == -9, f"vzctl {' '.join(argv)} was not killed at {point}: " \
                                    f"exit {killed.returncode}, {killed.stderr!r}"
    return killed


def ct_processes(vz_env: VzEnv, ctid: int) -> set[int]:
    """The processes in CT ``ctid``'s cgroups (none when it has none)."""
    pids: set[int] = set()
    for group in vz_env.ct_cgroup_dirs(ctid):
        for procs in group.rglob("cgroup.procs") if group.exists() else []:
            pids.update(int(p) for p in procs.read_text().split())
    return pids


def leftovers(vz_env: VzEnv, ctid: int) -> list[str]:
    """What a stopped CT ``ctid`` must not have: processes, a state file, mounts below
    its root or private area, cgroups.  Empty when all is clean."""
    from vzcore.linux import mounts

    left = [f"process {pid}" for pid in sorted(ct_processes(vz_env, ctid))]
    if vz_env.state(ctid).exists():
        left.append(f"state file {vz_env.state(ctid)}")
    for area in (vz_env.ct_root(ctid), vz_env.private(ctid)):
        left += [f"mount {m}" for m in mounts.mounts_below(area)]
    left += [f"cgroup {d}" for d in vz_env.ct_cgroup_dirs(ctid) if d.exists()]
    return left
