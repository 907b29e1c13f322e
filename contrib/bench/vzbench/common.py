"""What every part of the suite shares: timed commands, the machine's figures, medians,
and the clean-up registry that runs on success, failure and Ctrl-C alike."""

from __future__ import annotations

import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parents[3]
BENCH = REPO / "contrib/bench"
RESERVE_MIB = 2048
"""MemAvailable the suite leaves to the host: no population grows into it."""
BIN = Path(sys.executable).parent
"""The venv's bin directory: vzctl and vzlist of this checkout."""


def log(message: str) -> None:
    """A progress line on stderr (stdout carries the headline figures)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(argv: Sequence[str], *, env: dict[str, str] | None = None, check: bool = True,
        timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` and capture its output; a failure raises with its stderr."""
    result = subprocess.run(list(argv), env=env, capture_output=True, text=True, check=False,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): "
                           f"{(result.stderr or result.stdout).strip()[-1500:]}")
    return result


def timed(argv: Sequence[str], *, env: dict[str, str] | None = None, check: bool = True) -> float:
    """Wall time of ``argv`` from fork to exit, in seconds."""
    started = time.perf_counter()
    result = subprocess.run(list(argv), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, check=False)
    elapsed = time.perf_counter() - started
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): "
                           f"{result.stderr.strip()[-1500:]}")
    return elapsed


def timed_cpu(argv: Sequence[str], *, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall time of ``argv`` from fork to exit and its CPU time (user + system of the
    process and of the children it waited for, from ``wait4``), in seconds."""
    import os
    import tempfile

    with tempfile.TemporaryFile() as errors:  # (a pipe could fill before the exit)
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), env=env, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            errors.seek(0)
            text = errors.read().decode(errors="replace").strip()
            raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}): {text[-1500:]}")
    return elapsed, usage.ru_utime + usage.ru_stime


def vzctl(env: dict[str, str], *args: object, check: bool = True) -> float:
    """Run this checkout's vzctl (quiet) in ``env``; its wall time in seconds."""
    return timed([str(BIN / "vzctl"), "--quiet", *map(str, args)], env=env, check=check)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]


def meminfo() -> dict[str, int]:
    """/proc/meminfo in KiB."""
    values = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, rest = line.split(":", 1)
        values[name] = int(rest.split()[0])
    return values


class Cleanup:
    """Undo actions, run last-in first-out by :meth:`close` (each once, errors logged, not
    raised, so one failing step does not leave the others' leftovers behind)."""

    def __init__(self) -> None:
        self._actions: list[tuple[str, Callable[[], object]]] = []

    def push(self, what: str, action: Callable[[], object]) -> None:
        self._actions.append((what, action))

    def close(self) -> None:
        while self._actions:
            what, action = self._actions.pop()
            try:
                action()
            except Exception as exc:
                log(f"clean-up: {what} failed: {exc}")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # the first signal interrupts; further ones are ignored so the clean-up finishes
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def cleaned_up() -> Iterator[Cleanup]:
    """A :class:`Cleanup` closed on leaving, also on Ctrl-C, SIGTERM or SIGHUP (the first
    raises KeyboardInterrupt; later ones are ignored, so every ``finally`` on the way out
    and the clean-up finish)."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    cleanup = Cleanup()
    try:
        yield cleanup
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        cleanup.close()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)


RUNTIME_GROUPS = ("payload", "supervisor", "lxc.pivot")
"""Groups other runtimes make below their caller's own group in every hierarchy and leave
behind: systemd-nspawn (``payload``, ``supervisor``) and LXC (``lxc.pivot``); LXC's
per-container groups carry the container's name (``vzbench*``)."""


def runtime_groups() -> set[Path]:
    """The leftover-prone groups of :data:`RUNTIME_GROUPS` that exist now, below our own
    group in every hierarchy."""
    from vzcore.linux import cgroups

    found = set()
    for hierarchy in cgroups.hierarchies():
        own = hierarchy.directory(hierarchy.own)
        for name in RUNTIME_GROUPS:
            if (own / name).is_dir():
                found.add(own / name)
        found.update(p for p in own.glob("lxc.*.vzbench*") if p.is_dir())
    return found


def remove_new_runtime_groups(before: set[Path]) -> None:
    """rmdir the runtime groups made since ``before`` (empty ones only: the kernel refuses
    a group with processes, so one another user's runtime is using stays)."""
    for group in sorted(runtime_groups() - before, key=lambda p: -len(p.parts)):
        for directory in sorted((p for p in group.rglob("*") if p.is_dir()),
                                key=lambda p: -len(p.parts)):
            try:
                directory.rmdir()
            except OSError:
                pass
        try:
            group.rmdir()
        except OSError as exc:
            log(f"clean-up: {group} stays: {exc.strerror}")
