"""The ``vzcore`` pytest plugin: markers that probe what a test needs, and fixtures that
give every test its own vzcore installation and clean it up.

Markers: ``@pytest.mark.root``, ``netns``, ``cgroup1``, ``cgroup2`` and
``@pytest.mark.needs("openat2", "busybox", ...)`` (any feature of
:data:`vzcore.testing.probes.FEATURES`) skip a test whose need is missing, naming it.
With ``VZ_TEST_REQUIRE_ROOT=1`` (set in CI) a test that would skip for lack of root or of
a private network namespace fails instead, so a CI run cannot pass by skipping.

``@pytest.mark.vm`` (and ``cgroup2``) put a test in the VM subset: with
``--kernel host,vm`` it also runs under Debian 12's stock kernel with cgroup v2 only, in
one VM boot per session (:mod:`vzcore.testing.kernels`, docs/testing.md).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import pytest

from vzcore.testing import probes

if TYPE_CHECKING:
    from vzcore.linux.cgroups import CgroupSet

PR_SET_CHILD_SUBREAPER = 36
REQUIRE_ENV = "VZ_TEST_REQUIRE_ROOT"
_STRICT_FEATURES = ("root", "netns")

pytest_plugins = ("vzcore.testing.kernels", "vzcore.testing.templates")
"""The kernel matrix (``--kernel``, the ``vm`` marker) and the Debian test templates
(``debian_template``) are plugin modules of their own."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("vzcore").addoption(
        "--vz-plugin", dest="vz_plugin", metavar="MODULE", default=None,
        help="the plugin hookimpl module that 'pytest --pyargs vzcore.testing.suite' runs its "
             "subsystem's contract suite on (env VZ_CONTRACT_PLUGIN)")


def pytest_configure(config: pytest.Config) -> None:
    if config.option.vz_plugin:  # read when vzcore.testing.suite is imported, at collection
        os.environ["VZ_CONTRACT_PLUGIN"] = config.option.vz_plugin
    for name in ("root", "netns", "cgroup1", "cgroup2"):
        config.addinivalue_line("markers", f"{name}: {probes.FEATURES[name][1]}")
    config.addinivalue_line("markers", "needs(*features): needs the probed host features")
    if probes.is_root():
        # CT inits are reparented to the nearest subreaper when vzctl exits; make that us,
        # so they are reaped after stop even on hosts whose PID 1 does not reap orphans.
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _needs(item: pytest.Item) -> list[str]:
    needs = [name for name in ("root", "netns", "cgroup1", "cgroup2") if item.get_closest_marker(name)]
    for marker in item.iter_markers("needs"):
        needs.extend(marker.args)
    return needs


def pytest_runtest_setup(item: pytest.Item) -> None:
    if getattr(item, "runs_in_vm", False):
        return  # a VM copy: its needs are checked in the guest, against the guest's kernel
    strict = os.environ.get(REQUIRE_ENV, "") not in ("", "0")
    for need in _needs(item):
        probe, missing = probes.FEATURES[need]
        if not probe():
            if strict and need in _STRICT_FEATURES:
                pytest.fail(f"{missing}, and {REQUIRE_ENV} forbids skipping")
            pytest.skip(missing)


def reap_orphans() -> None:
    """Reap CT inits that were reparented to this (subreaper) process and have exited."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


@attrs.define
class VzEnv:
    """A private vzcore installation: ``VZ_ROOT`` and a cgroup parent of its own."""

    root: Path
    cgroup_parent: str
    extra_env: dict[str, str] = attrs.field(factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "VZ_ROOT": str(self.root), **self.extra_env}

    def add_plugin_module(self, name: str, source: str) -> None:
        """Make ``source`` the module ``name`` and load it as a plugin (``PLUGINS`` in
        vz.conf, importable through ``PYTHONPATH``): a test's own hookimpls."""
        from vzcore.conffile import ConfigFile

        directory = self.root.parent / "plugin-modules"
        directory.mkdir(exist_ok=True)
        (directory / f"{name}.py").write_text(source)
        self.extra_env["PYTHONPATH"] = str(directory)
        conf = ConfigFile.load(self.root / "etc/vz/vz.conf", missing_ok=True)
        self.write_vz_conf(PLUGINS=" ".join([*(conf.get("PLUGINS") or "").split(), name]))

    def add_plugin_module_name(self, module: str) -> None:
        """Load the importable module ``module`` as a plugin (``PLUGINS`` in vz.conf), with
        the directory it is imported from on vzctl's ``PYTHONPATH``."""
        import importlib.util

        from vzcore.conffile import ConfigFile

        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise ModuleNotFoundError(f"plugin module {module} is not importable")
        top = Path(spec.origin).parents[module.count(".")]
        self.extra_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(top), self.extra_env.get("PYTHONPATH")) if p)
        conf = ConfigFile.load(self.root / "etc/vz/vz.conf", missing_ok=True)
        self.write_vz_conf(PLUGINS=" ".join([*(conf.get("PLUGINS") or "").split(), module]))

    def conf(self, ctid: int) -> Path:
        return self.root / "etc/vz/conf" / f"{ctid}.conf"

    def private(self, ctid: int) -> Path:
        return self.root / "vz/private" / str(ctid)

    def ct_root(self, ctid: int) -> Path:
        return self.root / "vz/root" / str(ctid)

    def state(self, ctid: int) -> Path:
        return self.root / "run/vz" / f"{ctid}.json"

    def write_vz_conf(self, **values: str) -> None:
        from vzcore.conffile import ConfigFile

        conf = ConfigFile.load(self.root / "etc/vz/vz.conf", missing_ok=True)
        conf.update(values)
        conf.save()

    def allow_privileged(self) -> None:
        """Allow privileged CTs (``LOCAL_UID=0``) in this installation: vz.conf's
        ``ALLOW_PRIVILEGED="yes"``, which a test creating one must set, as an admin must."""
        self.write_vz_conf(ALLOW_PRIVILEGED="yes")

    def cgroups(self, ctid: int) -> CgroupSet:
        """The cgroups a started CT was given, as its state file records them."""
        from vzcore.runtime import State

        state = State.load(self.state(ctid), ctid)
        assert state is not None and state.cgroups is not None, f"CT {ctid}: no cgroups on record"
        return state.cgroups

    def ct_cgroup_dirs(self, ctid: int) -> list[Path]:
        """Where CT ``ctid``'s group goes in every hierarchy (it may not exist)."""
        from vzcore.ctgroups import group_name
        from vzcore.paths import Paths

        name = group_name(Paths(self.root), ctid)
        return [directory / name for directory in self.cgroup_dirs()]

    def cgroup_dirs(self) -> list[Path]:
        """The cgroup parent's directory in every hierarchy (they may not exist)."""
        from vzcore.linux import cgroups

        return cgroups.parent_dirs(self.cgroup_parent)


def vzctl_binary(name: str = "vzctl") -> str:
    return str(Path(sys.executable).with_name(name))


@pytest.fixture
def vz_env(tmp_path: Path) -> Iterator[VzEnv]:
    """A fresh ``VZ_ROOT`` with a ``vz.conf`` whose ``CGROUP_PARENT`` is unique to the test.

    On teardown every CT still running is stopped with ``vzctl stop --fast``; the test fails
    if that fails, or if a mount below the root or a cgroup below the parent is left.
    """
    env = VzEnv(tmp_path / "vz", f"vztest-{uuid.uuid4().hex[:10]}")
    env.write_vz_conf(CGROUP_PARENT=env.cgroup_parent, STOP_TIMEOUT="20")
    yield env
    leftovers = _clean(env)
    reap_orphans()
    assert not leftovers, f"the test left behind: {leftovers}"


@pytest.fixture(scope="module")
def vz_env_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VzEnv]:
    """One ``vz_env`` for every test of a module, for CTs that tests share.

    Booting a CT and stopping it cost seconds; tests that only look at a running CT, or
    try an attack that must fail and leave it unchanged, share one through this (see
    ``shared_ct`` in tests/security/conftest.py). A test that changes its CT keeps the
    function-scoped ``vz_env``. Teardown is ``vz_env``'s, once after the module's last
    test: every CT still running is stopped, and a left mount or cgroup fails that test.
    """
    env = VzEnv(tmp_path_factory.mktemp("vzmod") / "vz", f"vztest-{uuid.uuid4().hex[:10]}")
    env.write_vz_conf(CGROUP_PARENT=env.cgroup_parent, STOP_TIMEOUT="20")
    yield env
    leftovers = _clean(env)
    reap_orphans()
    assert not leftovers, f"the tests of the module left behind: {leftovers}"


def _clean(env: VzEnv) -> list[str]:
    from vzcore.linux import mounts

    leftovers = []
    run_dir = env.root / "run/vz"
    for state in sorted(run_dir.glob("*.json")) if run_dir.exists() else []:
        stopped = subprocess.run([vzctl_binary(), "--quiet", "stop", "--fast", state.stem],
                                 env=env.env, capture_output=True, text=True, check=False)
        if stopped.returncode != 0 or state.exists():
            leftovers.append(f"CT {state.stem} that 'vzctl stop' could not clean: {stopped.stderr}")
    for mount_point in mounts.mounts_below(env.root):
        leftovers.append(f"mount {mount_point}")
        mounts.umount(mount_point, detach=True)
    for directory in env.cgroup_dirs():
        if not directory.exists():
            continue
        children = [p.name for p in directory.iterdir() if p.is_dir()]
        if children:
            leftovers.append(f"cgroups {directory}/{{{','.join(children)}}}")
            for child in children:
                _remove_cgroup(directory / child)
        directory.rmdir()
    return leftovers


def _remove_cgroup(path: Path) -> None:
    for child in path.iterdir():
        if child.is_dir():
            _remove_cgroup(child)
    try:
        procs = (path / "cgroup.procs").read_text().split()
    except OSError:
        procs = []
    for pid in procs:
        try:
            os.kill(int(pid), 9)
        except ProcessLookupError:
            pass
    try:
        path.rmdir()
    except OSError:
        pass


Vzctl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def vzctl(vz_env: VzEnv) -> Vzctl:
    """Run the real ``vzctl`` in ``vz_env``: ``vzctl("start", 101)`` returns the completed
    process (text output); ``check=True`` (default) fails the test on a non-zero exit."""
    return vzctl_runner(vz_env)


@pytest.fixture(scope="module")
def vzctl_module(vz_env_module: VzEnv) -> Vzctl:
    """``vzctl`` in ``vz_env_module`` (the module's shared installation)."""
    return vzctl_runner(vz_env_module)


def vzctl_runner(vz_env: VzEnv) -> Vzctl:
    """A ``vzctl(...)`` callable for ``vz_env`` (what the ``vzctl`` fixtures return)."""

    def run(*args: object, check: bool = True, input: str | None = None,
            timeout: float = 120, binary: str = "vzctl") -> subprocess.CompletedProcess[str]:
        argv = [vzctl_binary(binary), *(str(a) for a in args)]
        result = subprocess.run(argv, env=vz_env.env, capture_output=True, text=True,
                                input=input, timeout=timeout, check=False)
        if check and result.returncode != 0:
            pytest.fail(f"{' '.join(argv)} exited {result.returncode}:\n"
                        f"{result.stdout}{result.stderr}")
        return result

    return run


@pytest.fixture
def vzlist(vzctl: Vzctl) -> Vzctl:
    """Run the real ``vzlist`` in the test's ``VZ_ROOT``."""

    def run(*args: object, check: bool = True) -> subprocess.CompletedProcess[str]:
        return vzctl(*args, check=check, binary="vzlist")

    return run


@pytest.fixture
def busybox_ct(vzctl: Vzctl) -> int:
    """CT 101, created from the built-in busybox template (stopped)."""
    vzctl("create", 101, "--ostemplate", "busybox", "--hostname", "ct101")
    return 101
