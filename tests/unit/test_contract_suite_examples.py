"""A third party's plugin, made from the docs' example (contrib/vz-motd), runs the generic
contract suite as a user without root and passes; broken copies fail, naming the rule.

Each plugin is written to a directory of its own with the test module docs/plugins.md
shows, and pytest runs there in a child process as ``nobody`` (through ``setpriv`` when
this test runs as root), so only the suite's part against the recording fake runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "contrib/vz-motd/vz_motd/plugin.py"
NOBODY = 65534

CONTRACT_TEST = '''
from vzcore.testing.lifecycle import LifecycleContract


class TestGreetContract(LifecycleContract):
    plugin = "vz_greet.plugin"
    config = {"MOTD": "hello {hostname}"}
    bad_input = {"MOTD": "x" * 5000}
'''

# The greeting is a host file of the CT's (as a link or a mount would be): it must be on
# record before it exists, and cleanup must accept that it is gone.
RECORD = '''

from pathlib import Path

import attrs

from vzcore.records import PluginRecord


@attrs.frozen
class GreetRecord(PluginRecord):
    greeting: str


def greeting(ct):
    return ct.paths.run_dir / f"{ct.ctid}.greeting"


def put_on_record(run, path):
    run.record = GreetRecord(greeting=str(path))


def recorded(run):
    return run.record.greeting if run.record else None
'''


def greet_hooks(*, record_first: bool = True, cleanup_twice: bool = True) -> str:
    """The copy's two hooks: ``vz_post_start`` puts its file on record and makes it (in
    that order unless ``record_first`` is False), ``vz_post_stop`` removes it (accepting
    that it is gone unless ``cleanup_twice`` is False)."""
    record = "put_on_record(run, greeting(ct))"
    make = 'greeting(ct).write_text("hello\\n")'
    first, then = (record, make) if record_first else (make, record)
    missing_ok = "missing_ok=True" if cleanup_twice else ""
    return RECORD + f'''

@hookimpl
def vz_post_start(ct, run):
    {first}
    {then}


@hookimpl
def vz_post_stop(ct, run):
    if recorded(run):
        Path(recorded(run)).unlink({missing_ok})
'''


RECORD_THEN_MAKE = greet_hooks()
MAKE_THEN_RECORD = greet_hooks(record_first=False)
CLEANUP_ONCE_ONLY = greet_hooks(cleanup_twice=False)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A directory ``nobody`` may write in (pytest's own tmp_path is private to us)."""
    path = Path(tempfile.mkdtemp(prefix="vz-contract-"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_suite(workdir: Path, extra_hooks: str) -> subprocess.CompletedProcess[str]:
    """Write plugin ``vz_greet`` (the docs' example plus ``extra_hooks``) and the docs'
    contract test module, and run pytest on it as a user without root."""
    package = workdir / "vz_greet"
    package.mkdir()
    (package / "__init__.py").write_text('__version__ = "0.1.0"\n')
    example = EXAMPLE.read_text()
    info = 'summary="message of the day in every CT")'
    assert info in example, "the docs' example no longer declares its PluginInfo so"
    # The copy keeps a record (the example itself has nothing to undo): declare its class.
    example = example.replace(info, info[:-1] + ", record=GreetRecord)")
    (package / "plugin.py").write_text(example + extra_hooks)
    tests = workdir / "tests"
    tests.mkdir()
    (tests / "test_greet_contract.py").write_text(CONTRACT_TEST)
    for path in (package, tests, *package.iterdir(), *tests.iterdir()):
        path.chmod(0o777 if path.is_dir() else 0o666)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VZ_", "PYTEST_"))}
    env.update(PYTHONPATH=str(workdir), HOME=str(workdir), VZ_CACHE_DIR=str(workdir / "cache"))
    argv = [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
            f"--basetemp={workdir / 'tmp'}", f"--rootdir={workdir}", str(tests)]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to run the suite as nobody"
        argv = [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]
    return subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def test_the_docs_example_passes_the_generic_suite_without_root(workdir: Path) -> None:
    result = run_suite(workdir, RECORD_THEN_MAKE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "failed" not in result.stdout, result.stdout
    if os.geteuid() == 0:
        assert "needs root" in result.stdout  # really not root: the real-kernel part skipped


def test_a_copy_that_makes_before_it_records_fails_naming_the_rule(workdir: Path) -> None:
    result = run_suite(workdir, MAKE_THEN_RECORD)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "rule 'record before make' broken: hook vz_post_start made file " in result.stdout, \
        result.stdout


def test_a_copy_whose_cleanup_fails_when_run_twice_fails_naming_the_rule(workdir: Path) -> None:
    result = run_suite(workdir, CLEANUP_ONCE_ONLY)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "rule 'idempotent cleanup' broken: vz_post_stop run a second time raised" \
        in result.stdout, result.stdout
