"""The kernel matrix plugin end to end, with a stand-in for vm-run that runs the "guest" on
this kernel (in mount and network namespaces of its own): which copies are made, how the
guest's outcomes, reasons and output come back, and what a guest that never ran does."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.root  # the stand-in guest mounts its snapshot in a mount namespace

SAMPLE = '''
import os
import pytest


@pytest.mark.vm
def test_passes():
    pass


@pytest.mark.vm
def test_fails():
    print("said in the guest")
    assert os.environ.get("VZ_TEST_GUEST") == "nowhere"


@pytest.mark.vm
def test_skips():
    pytest.skip("not under this kernel")


@pytest.mark.cgroup2
def test_needs_v2():
    pass


@pytest.mark.vm
@pytest.mark.parametrize("n", [1, 2])
def test_param(n):
    assert n


def test_host_only():
    pass
'''

STAND_IN = '''#!/bin/sh
# vm-run's options up to "--" are recorded and dropped; the command runs on this kernel.
echo "$@" > "$(dirname "$0")/vm-run.args"
while [ $# -gt 0 ]; do case $1 in --) shift; break ;; *) shift ;; esac; done
exec unshare --mount --net -- "$@"
'''


@pytest.fixture(autouse=True)
def private_tmpdir(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The inner pytest keeps its VM work directory when a copy failed (some here fail on
    purpose): it goes to a directory removed afterwards.  Not below pytest's base
    directory: the stand-in guest overlays the inner run's project, which is there."""
    directory = tempfile.mkdtemp(prefix="vzcore-matrix-test-")
    monkeypatch.setenv("TMPDIR", directory)
    yield
    shutil.rmtree(directory)


@pytest.fixture
def vm_run(tmp_path: Path) -> Path:
    script = tmp_path / "bin" / "vm-run"
    script.parent.mkdir()
    script.write_text(STAND_IN)
    script.chmod(0o755)
    return script


def test_copies_run_in_one_guest_and_report_its_outcomes(pytester: pytest.Pytester,
                                                          vm_run: Path) -> None:
    pytester.makepyfile(test_sample=SAMPLE)
    result = pytester.runpytest_subprocess("--kernel", "host,vm", "--vm-run", str(vm_run),
                                           "-rA", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=7, failed=2, skipped=4)
    out = result.stdout.str()
    for copy in ("test_passes[vm]", "test_param[1-vm]", "test_param[2-vm]"):
        assert f"PASSED test_sample.py::{copy}" in out
    assert "test_host_only[vm]" not in out
    # the guest's traceback, and what the test printed there
    assert "FAILED test_sample.py::test_fails[vm]" in out
    assert "assert 'vm' == 'nowhere'" in out
    assert "said in the guest" in out
    # skips keep the guest's reason: its own, or a need the guest lacks
    assert "in the VM (vm): not under this kernel" in out
    assert "in the VM (vm): needs a cgroup v2-only host" in out
    # what the guest said about itself, and how vm-run was asked to boot
    assert "vzcore kernel matrix" in out
    assert "vm: the guest ran Linux " in out and "(asked for Debian 12's stock kernel" in out
    args = (vm_run.parent / "vm-run.args").read_text().split()
    assert args[:3] == ["--cgroup", "v2", "--rw"]
    assert args[4:7] == ["--", args[5], "-m"] and args[7] == "vzcore.testing.vmguest"


def test_kernel_vm_alone_runs_only_the_copies(pytester: pytest.Pytester, vm_run: Path) -> None:
    pytester.makepyfile(test_sample=SAMPLE)
    result = pytester.runpytest_subprocess("--kernel", "vm", "--vm-run", str(vm_run),
                                           "-k", "param or passes", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    assert "deselected" in result.stdout.str()


def test_a_guest_that_never_ran_fails_every_copy_with_its_output(pytester: pytest.Pytester,
                                                                 tmp_path: Path) -> None:
    broken = tmp_path / "vm-run"
    broken.write_text("#!/bin/sh\necho 'vm-run: cannot resolve the kernel package' >&2\nexit 3\n")
    broken.chmod(0o755)
    pytester.makepyfile(test_sample=SAMPLE)
    result = pytester.runpytest_subprocess("--kernel", "vm", "--vm-run", str(broken),
                                           "-p", "no:cacheprovider")
    result.assert_outcomes(failed=6)
    out = result.stdout.str()
    assert "the VM did not finish the tests (vm-run exited 3" in out
    assert "cannot resolve the kernel package" in out


def test_collecting_lists_the_copies_without_booting(pytester: pytest.Pytester,
                                                     vm_run: Path) -> None:
    pytester.makepyfile(test_sample=SAMPLE)
    result = pytester.runpytest_subprocess("--kernel", "host,vm", "--vm-run", str(vm_run),
                                           "--collect-only", "-q", "-p", "no:cacheprovider")
    listed = [line for line in result.stdout.lines if "test_sample.py::" in line]
    assert len(listed) == 13 and listed[-1].endswith("test_sample.py::test_param[2-vm]")
    assert not (vm_run.parent / "vm-run.args").exists()


def test_an_unknown_kernel_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--kernel", "host,vm3")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--kernel: unknown kernel 'vm3': choose from host, vm, vm-hybrid*"])
