"""The kernel matrix: run chosen tests again under another kernel, in a VM.

``pytest --kernel host,vm`` runs the whole suite on this machine (``host``) and, in
addition, every test marked ``@pytest.mark.vm`` (or ``cgroup2``) inside a VM booted by
vm-run under Debian 12's stock kernel with cgroup v2 only (``vm``; ``vm-hybrid`` boots the
same kernel with cgroup v1 controllers).  ``--kernel vm`` runs only the VM copies.  The
copies are ordinary test items named ``test_x[vm]``: all copies of one kernel run in ONE
boot, started in the background before the host's tests (the copies come after those and
wait for it), and each reports the guest's outcome, with the guest's traceback and
captured output on failure.

Inside the guest the same plugin runs with ``--kernel host`` and ``--vz-report FILE``,
which writes every test phase's result as a JSON line the host reads back.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import IO, Any

import pytest

from vzcore.testing.vm import HOST, VM_KERNELS, VmBatch, find_vm_run, parse_kernels

KERNELS_ENV = "VZ_TEST_KERNELS"
VM_MARKERS = ("vm", "cgroup2")
"""A test with one of these markers also runs under each VM kernel that ``--kernel`` names."""
PHASES = ("setup", "call", "teardown")

_matrix_key = pytest.StashKey["Matrix"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("vzcore", "vzcore kernel matrix")
    group.addoption(
        "--kernel", dest="vz_kernels", metavar="KERNELS",
        default=os.environ.get(KERNELS_ENV) or HOST,
        help="comma-separated kernels to run on: host (this machine, default), vm (Debian 12's "
             "stock kernel in a VM, cgroup v2 only), vm-hybrid (the same with cgroup v1); the "
             f"VM kernels run only the tests marked {' or '.join(VM_MARKERS)} (env {KERNELS_ENV})")
    group.addoption("--vm-run", dest="vz_vm_run", metavar="PATH", default=None,
                    help="the vm-run script (default: $VZ_VM_RUN, ../shared/tools/vm-run, PATH)")
    group.addoption("--vm-timeout", dest="vz_vm_timeout", metavar="SECONDS", type=float,
                    default=1200.0, help="give up on a VM batch after this long (default 1200)")
    group.addoption("--vz-report", dest="vz_report", default=None, help=argparse.SUPPRESS)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "vm: also run this test under the VM kernels of --kernel (one boot per "
                   "kernel and session; see docs/testing.md)")
    try:
        kernels = parse_kernels(config.option.vz_kernels)
    except ValueError as exc:
        raise pytest.UsageError(f"--kernel: {exc}") from None
    if kernels != [HOST]:
        matrix = Matrix(config, kernels)
        config.stash[_matrix_key] = matrix
        config.pluginmanager.register(matrix, "vzcore-kernel-matrix")
    if config.option.vz_report:
        config.pluginmanager.register(ReportWriter(Path(config.option.vz_report)),
                                      "vzcore-vm-report")


class GuestFailure(Exception):
    """A VM copy failed: the message is the guest's report."""


class VmItem(pytest.Item):
    """The copy of a test that runs under a VM kernel; its outcome is the guest's."""

    runs_in_vm = True

    def __init__(self, *, original: pytest.Item, kernel: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.original = original
        self.kernel = kernel
        for mark in original.own_markers:
            self.own_markers.append(mark)
            self.keywords[mark.name] = mark
        self.extra_keyword_matches.update(original.extra_keyword_matches)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        path, lineno, domain = self.original.reportinfo()
        return path, lineno, f"{domain} [{self.kernel}]"

    def runtest(self) -> None:
        batch = self.config.stash[_matrix_key].batches[self.kernel]
        test = batch.result(self.original.nodeid)
        where = f"[{batch.describe()}]"
        if test is None:
            why = batch.error or "the guest did not report it; the end of the VM's output:\n" + \
                batch.log_tail()
            errors = "\n".join(e["longrepr"] for e in batch.collect_errors)
            raise GuestFailure(f"{where}\n{self.original.nodeid} did not run in the VM: {why}"
                               + (f"\ncollection errors in the guest:\n{errors}" if errors else ""))
        failed = [test.phases[p] for p in PHASES if test.phases.get(p, {}).get("outcome") == "failed"]
        if failed:
            texts = [where]
            for phase in failed:
                texts.append(f"--- in the guest, {phase['when']}:\n{phase['longrepr']}")
                texts.extend(f"--- {title}, in the guest:\n{content.rstrip()}"
                             for title, content in phase.get("sections", ()))
            self.add_report_section("call", "VM output (its last lines)", batch.log_tail(15))
            raise GuestFailure("\n".join(texts))
        for name in ("setup", "call"):
            skipped = test.phases.get(name)
            if skipped and skipped["outcome"] == "skipped":
                if skipped.get("wasxfail") is not None:
                    pytest.xfail(f"in the VM: {skipped['wasxfail']}")
                pytest.skip(f"in the VM ({self.kernel}): {skipped.get('skip_reason')}")
        missing = [p for p in PHASES if p not in test.phases]
        if missing:
            raise GuestFailure(f"{where}\nthe guest stopped during the test (no {missing[0]} "
                               f"report); the end of the VM's output:\n{batch.log_tail()}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> Any:
        if isinstance(excinfo.value, GuestFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


def _vm_name(name: str, kernel: str) -> str:
    return f"{name[:-1]}-{kernel}]" if name.endswith("]") else f"{name}[{kernel}]"


def _wants_vm(item: pytest.Item) -> bool:
    return any(item.get_closest_marker(m) is not None for m in VM_MARKERS)


class Matrix:
    """The host side: VM copies of the marked tests, their batches, and the summary."""

    def __init__(self, config: pytest.Config, kernels: list[str]) -> None:
        self.config = config
        self.kernels = kernels
        self.vm_kernels = [k for k in kernels if k != HOST]
        self.batches: dict[str, VmBatch] = {}
        self.copies: dict[str, str] = {}
        self.originals: dict[str, str] = {}
        self.outcomes: dict[str, str] = {}

    @pytest.hookimpl(tryfirst=True)  # before -k/-m deselection, so that it applies to the copies
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        host_items = [i for i in items if not isinstance(i, VmItem)]
        copies: list[pytest.Item] = []
        for item in host_items:
            if _wants_vm(item) and item.parent is not None:
                copies.extend(VmItem.from_parent(item.parent, name=_vm_name(item.name, kernel),
                                                 original=item, kernel=kernel)
                              for kernel in self.vm_kernels)
        if HOST not in self.kernels and host_items:
            self.config.hook.pytest_deselected(items=host_items)
            host_items = []
        items[:] = host_items + copies

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """One batch per VM kernel, of the copies that survived selection."""
        config = self.config
        copies = [i for i in session.items if isinstance(i, VmItem)]
        self.copies = {i.nodeid: i.kernel for i in copies}
        self.originals = {i.nodeid: i.original.nodeid for i in copies}
        verbose = ["-" + "v" * config.option.verbose] if config.option.verbose > 0 else []
        for kernel in self.vm_kernels:
            nodeids = [i.original.nodeid for i in copies if i.kernel == kernel]
            if nodeids:
                self.batches[kernel] = VmBatch(
                    VM_KERNELS[kernel], nodeids, rootdir=config.rootpath,
                    inifile=config.inipath,
                    vm_run=find_vm_run(config.option.vz_vm_run, config.rootpath),
                    timeout=config.option.vz_vm_timeout,
                    pytest_args=verbose)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        """Boot the VMs now, in the background: they run while the host's tests do (the
        copies come last and wait for them), which about halves a CI run on two cores."""
        if session.config.option.collectonly or session.config.getoption("setuponly", False):
            return
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        for batch in self.batches.values():
            if reporter is not None:
                reporter.write_line(f"vzcore: {len(batch.nodeids)} tests also run under "
                                    f"{batch.kernel.name} ({batch.kernel.description}), in "
                                    "one VM boot, starting now in the background")
            batch.start()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Remember the VM copies' outcomes for the summary."""
        if report.nodeid in self.copies and (report.when == "call" or report.outcome != "passed"):
            outcome = "xfailed" if hasattr(report, "wasxfail") else report.outcome
            self.outcomes.setdefault(report.nodeid, outcome)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.batches:
            return
        terminalreporter.write_sep("=", "vzcore kernel matrix")
        for kernel, batch in self.batches.items():
            if not batch.done:
                continue  # --collect-only, or a session that ended before its copies
            terminalreporter.write_line(batch.describe())
            copies = {n: o for n, o in self.outcomes.items() if self.copies[n] == kernel}
            counts: dict[str, int] = {}
            for outcome in copies.values():
                counts[outcome] = counts.get(outcome, 0) + 1
            summary = ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
            terminalreporter.write_line(f"  {len(batch.nodeids)} tests in one boot, "
                                        f"{batch.seconds:.0f} s: {summary or 'no result'}")
            for nodeid, outcome in copies.items():
                test = batch.results.get(self.originals[nodeid])
                seconds = sum(p.get("duration", 0) for p in test.phases.values()) if test else 0
                terminalreporter.write_line(f"  {outcome.upper():8} {seconds:5.0f} s  {nodeid}")
            if batch.workdir is None:
                continue
            if batch.error or "failed" in copies.values():
                terminalreporter.write_line(f"  the VM's output and results: {batch.workdir}")
            else:
                shutil.rmtree(batch.workdir, ignore_errors=True)

    def pytest_unconfigure(self) -> None:
        for batch in self.batches.values():
            batch.cancel()


class ReportWriter:
    """In the guest: each test phase's result as one JSON line, flushed at once."""

    def __init__(self, path: Path) -> None:
        self.file: IO[str] = open(path, "a")  # noqa: SIM115 - closed at unconfigure

    def _write(self, entry: dict[str, Any]) -> None:
        self.file.write(json.dumps(entry) + "\n")
        self.file.flush()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        skip_reason = None
        if report.skipped and isinstance(report.longrepr, tuple):
            skip_reason = report.longrepr[2].removeprefix("Skipped: ")
        self._write({
            "nodeid": report.nodeid,
            "when": report.when,
            "outcome": report.outcome,
            "duration": report.duration,
            "longrepr": report.longreprtext if report.failed else "",
            "skip_reason": skip_reason,
            "wasxfail": getattr(report, "wasxfail", None),
            "sections": [list(s) for s in report.sections] if report.failed else [],
        })

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self._write({"collect_error": report.nodeid, "longrepr": report.longreprtext})

    def pytest_unconfigure(self) -> None:
        self.file.close()
