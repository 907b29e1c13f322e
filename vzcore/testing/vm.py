"""Running a batch of tests inside a VM with vm-run, and reading back their results.

One :class:`VmBatch` is one boot: the host writes what to run (``request.json``) and a
snapshot of the code (:mod:`.snapshot`) to a work directory, starts
``vm-run --rw WORKDIR -- python -m vzcore.testing.vmguest WORKDIR``, and reads back what
the guest wrote there: ``guest.json`` (what the guest kernel is), ``report.jsonl`` (one
line per test phase, written as the tests run, so a guest that dies still leaves the
results it had) and ``exit.json`` (pytest's exit status).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import attrs

from vzcore.testing import snapshot

HOST = "host"
VM_RUN_ENV = "VZ_VM_RUN"


@attrs.frozen
class VmKernel:
    """A kernel the tests can run under in a VM, and the ``vm-run`` options that boot it."""

    name: str
    cgroup: str
    description: str

    @property
    def vm_run_args(self) -> list[str]:
        return ["--cgroup", self.cgroup]


VM_KERNELS = {
    "vm": VmKernel("vm", "v2", "Debian 12's stock kernel, cgroup v2 only"),
    "vm-hybrid": VmKernel("vm-hybrid", "hybrid",
                          "Debian 12's stock kernel, cgroup v1 controllers beside a cgroup2 mount"),
}
"""Names accepted by ``--kernel`` besides ``host``; each one is one VM boot per session."""


def parse_kernels(text: str) -> list[str]:
    """``"host,vm"`` -> ``["host", "vm"]``; raises :class:`ValueError` naming a bad one."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        if name != HOST and name not in VM_KERNELS:
            raise ValueError(f"unknown kernel {name!r}: choose from "
                             f"{', '.join([HOST, *VM_KERNELS])}")
    if not names:
        raise ValueError("no kernel named")
    return list(dict.fromkeys(names))


def find_vm_run(explicit: str | None, rootdir: Path) -> str | None:
    """The vm-run script: ``--vm-run``, ``$VZ_VM_RUN``, ``shared/tools/vm-run`` in a directory
    above the project (where this project's CI lays it), or ``vm-run`` on ``PATH``."""
    beside = [str(d / "shared/tools/vm-run") for d in rootdir.resolve().parents]
    for candidate in (explicit, os.environ.get(VM_RUN_ENV), *beside):
        if candidate and os.path.isfile(candidate):
            return os.path.abspath(candidate)
    return shutil.which("vm-run")


def _descendants(pid: int) -> list[int]:
    """Every descendant of ``pid``, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@attrs.define
class GuestTest:
    """What the guest reported about one test: its phases (``setup``, ``call``,
    ``teardown``) as dictionaries written by the guest's ``--vz-report``."""

    nodeid: str
    phases: dict[str, dict[str, Any]] = attrs.field(factory=dict)


class VmBatch:
    """The tests of one session that run under one VM kernel, and their boot."""

    def __init__(self, kernel: VmKernel, nodeids: Sequence[str], *, rootdir: Path,
                 inifile: Path | None, vm_run: str | None, timeout: float,
                 pytest_args: Sequence[str] = (), workdir: Path | None = None) -> None:
        self.kernel = kernel
        self.nodeids = list(dict.fromkeys(nodeids))
        self.rootdir = rootdir
        self.inifile = inifile
        self.vm_run = vm_run
        self.timeout = timeout
        self.workdir = workdir
        self.pytest_args = list(pytest_args)
        self.results: dict[str, GuestTest] = {}
        self.collect_errors: list[dict[str, Any]] = []
        self.facts: dict[str, Any] = {}
        self.exit_status: int | None = None
        self.error: str | None = None
        self.seconds = 0.0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._started = 0.0
        self.done = False

    @property
    def log_path(self) -> Path:
        return (self.workdir or Path("/nonexistent")) / "vm.log"

    def start(self) -> None:
        """Write the request and the snapshot, and start vm-run (it runs in the background)."""
        if self._process is not None or self.done:
            return
        self._started = time.monotonic()
        if self.vm_run is None:
            self._finish(f"vm-run was not found: pass --vm-run PATH or set {VM_RUN_ENV} "
                         "(see docs/testing.md)")
            return
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix=f"vzcore-{self.kernel.name}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        layers = snapshot.build(self.workdir / "layers.tar", self.rootdir)
        request = {
            "kernel": self.kernel.name,
            "rootdir": str(self.rootdir),
            "inifile": str(self.inifile) if self.inifile else None,
            "nodeids": self.nodeids,
            "pytest_args": self.pytest_args,
            "layers": [attrs.asdict(layer) for layer in layers],
            "env": {k: v for k, v in os.environ.items()
                    if k.startswith("VZ_TEST_") and k != "VZ_TEST_KERNELS"},
        }
        (self.workdir / "request.json").write_text(json.dumps(request, indent=1))
        argv = [self.vm_run, *self.kernel.vm_run_args, "--rw", str(self.workdir), "--",
                sys.executable, "-m", "vzcore.testing.vmguest", str(self.workdir)]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in wait()
        self._process = subprocess.Popen(
            argv, cwd=self.rootdir, stdin=subprocess.DEVNULL, stdout=self._log,
            stderr=subprocess.STDOUT, env={**os.environ, "VM_TIMEOUT": str(int(self.timeout))})

    def wait(self) -> None:
        """Wait for the guest and load its results (starting it first if needed)."""
        if self.done:
            return
        self.start()
        if self._process is None:
            return
        try:
            self._process.wait(timeout=self.timeout + 120)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        status = self._process.returncode
        assert self._log is not None
        self._log.close()
        self._load()
        error = None
        if self.exit_status is None:
            error = (f"the VM did not finish the tests (vm-run exited {status}; "
                     f"timeout {self.timeout:.0f} s); last lines of its output:\n{self.log_tail()}")
        self._finish(error)
        if self.workdir is not None:
            (self.workdir / "layers.tar").unlink(missing_ok=True)

    def _finish(self, error: str | None) -> None:
        self.error = error
        self.seconds = time.monotonic() - self._started
        self.done = True

    def _load(self) -> None:
        workdir = self.workdir
        assert workdir is not None

        def load(name: str) -> Any:
            try:
                return json.loads((workdir / name).read_text())
            except (OSError, ValueError):
                return None

        self.facts = load("guest.json") or {}
        exit_data = load("exit.json")
        self.exit_status = exit_data.get("status") if isinstance(exit_data, dict) else None
        try:
            lines = (workdir / "report.jsonl").read_text().splitlines()
        except OSError:
            lines = []
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut short by a dying guest
            if "collect_error" in entry:
                self.collect_errors.append(entry)
                continue
            test = self.results.setdefault(entry["nodeid"], GuestTest(entry["nodeid"]))
            test.phases[entry["when"]] = entry

    def cancel(self) -> None:
        """Stop a batch that is still running (a session ended early): vm-run and all its
        descendants (timeout, vng, QEMU), which run in process groups of their own."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        tree = [process.pid, *_descendants(process.pid)]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in tree:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            try:
                process.wait(timeout=5)
                break
            except subprocess.TimeoutExpired:
                continue
        self.done = True

    def result(self, nodeid: str) -> GuestTest | None:
        """What the guest reported for ``nodeid`` (waits for the batch)."""
        self.wait()
        return self.results.get(nodeid)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no output)"
        return "\n".join(text.splitlines()[-lines:])

    def describe(self) -> str:
        """One line: the kernel and cgroup mode the guest reported (not what was asked)."""
        facts = self.facts
        if not facts:
            return f"{self.kernel.name} ({self.kernel.description}): the guest reported nothing"
        controllers = " ".join(facts.get("controllers", [])) or "none"
        return (f"{self.kernel.name}: the guest ran Linux {facts.get('release', '?')}, cgroup "
                f"mode {facts.get('cgroup_mode', '?')}, controllers: {controllers} "
                f"(asked for {self.kernel.description})")
