"""The generic contract: lifecycle rules every plugin obeys, whatever its subsystem.

Rules (each failure message names the rule it broke):

* ``record before make`` - everything a host-side hook makes on the host (a file outside
  the CT's own tree, a mount, a link) is named in the plugin's record, and the state file
  holding that record was written before the thing was made.
* ``cleanup removes what was made`` - after ``vz_post_stop`` nothing the start made is
  left.
* ``idempotent cleanup`` - ``vz_post_stop`` run twice is harmless.
* ``cleanup after a kill`` - vzctl killed at any checkpoint of a start leaves what
  ``vz_post_stop``, run from the state file on disk, removes.
* ``bad input refused before any effect`` - ``vz_validate`` refuses bad values, and a
  refused command made nothing and wrote no record.

A plugin's tests subclass :class:`LifecycleContract` (or its subsystem's suite in
:mod:`vzcore.testing.contracts`, which extends it) and name the plugin module:

.. code-block:: python

    from vzcore.testing.lifecycle import LifecycleContract

    class TestMotdContract(LifecycleContract):
        plugin = "vz_motd.plugin"
        config = {"MOTD": "hello"}
        bad_input = {"MOTD": "x" * 5000}

The tests without a ``root`` marker run as any user, against the recording fake of
:mod:`vzcore.testing.fake`; those marked ``root`` drive the real ``vzctl`` on the real
kernel (and skip, naming root, without it).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from vzcore.testing import crash
from vzcore.testing.fake import (
    CORE,
    MAKE,
    RECORD,
    START_HOOKS,
    Event,
    FakeHost,
    FakeKernel,
    Killed,
    names_target,
)

RECORD_BEFORE_MAKE = "record before make"
CLEANUP = "cleanup removes what was made"
IDEMPOTENT = "idempotent cleanup"
AFTER_KILL = "cleanup after a kill"
BAD_INPUT = "bad input refused before any effect"


def real_kernel(test: Any) -> Any:
    """Mark a test of the part that runs on the real kernel: root and a busybox CT."""
    return pytest.mark.root(pytest.mark.needs("busybox")(test))


def load_plugin(vz_env: Any, module: str) -> None:
    """Have ``vz_env``'s vzctl load ``module``, unless an installed entry point does."""
    if module and not _installed(module, vz_env.env):
        vz_env.add_plugin_module_name(module)


class ContractBroken(AssertionError):
    """A contract rule was broken; the message starts with the rule's name."""

    def __init__(self, rule: str, what: str) -> None:
        super().__init__(f"rule '{rule}' broken: {what}")
        self.rule = rule


def made_before_recorded(events: list[Event]) -> list[str]:
    """The ``make`` events of ``events`` whose target no earlier record named."""
    broken = []
    record: Any = None
    for event in events:
        if event.action == RECORD:
            record = event.detail
        elif event.action == MAKE and event.hook != CORE and not _covered(record, event.target):
            broken.append(f"hook {event.hook} made {event.kind} {event.target} before recording "
                          f"it (the plugin's record was then {record!r}); put it in run.record "
                          "first, then make it")
    return broken


def _covered(record: Any, target: str) -> bool:
    """A record names ``target`` itself, a directory above it, or something inside it (a
    directory made to hold a recorded file)."""
    from vzcore.testing.fake import record_names

    return names_target(record, target) or any(
        name.startswith(target.rstrip("/") + "/") for name in record_names(record))


class LifecycleContract:
    """The rules every plugin obeys; subclass it and set :attr:`plugin`.

    :cvar plugin: the plugin's hookimpl module, importable (``"vz_motd.plugin"``).
    :cvar config: the CT's config for the starts (what makes the plugin do something).
    :cvar global_config: extra ``vz.conf`` keys.
    :cvar bad_input: config keys and values that ``vz_validate`` must refuse.
    :cvar fake_hooks: the start hooks the fake runs (drop one whose kernel calls the fake
        does not cover and that needs root, such as writing a process's ``uid_map``).
    :cvar kernel_doubles: ``{"pkg.module.attr": factory}``: replace a kernel wrapper of
        the plugin's own with ``factory(fake_kernel)``, a double that calls
        :meth:`FakeKernel.make` / :meth:`FakeKernel.remove`.
    :cvar create_options: extra ``vzctl create`` options for the root part.
    """

    plugin: ClassVar[str] = ""
    config: ClassVar[Mapping[str, str]] = {}
    global_config: ClassVar[Mapping[str, str]] = {}
    bad_input: ClassVar[Mapping[str, str]] = {}
    fake_hooks: ClassVar[tuple[str, ...]] = START_HOOKS
    kernel_doubles: ClassVar[Mapping[str, Callable[[FakeKernel], object]]] = {}
    create_options: ClassVar[tuple[str, ...]] = ()

    # -- fixtures -------------------------------------------------------------------------

    @pytest.fixture
    def ct_pid(self) -> Iterator[int]:
        """A process standing in for the CT's first process (``vz_setup_host(pid)``)."""
        child = subprocess.Popen(["sleep", "600"])
        try:
            yield child.pid
        finally:
            child.kill()
            child.wait()

    def fake_host(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHost:
        if not self.plugin:
            raise TypeError(f"{type(self).__name__}: set 'plugin' to the plugin's hookimpl "
                            "module (for example plugin = \"vz_motd.plugin\")")
        host = FakeHost(tmp_path, self.plugin, dict(self.config), dict(self.global_config),
                        hooks=self.fake_hooks)
        return host.setup(monkeypatch, self.kernel_doubles)

    @pytest.fixture
    def fake(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeHost:
        """The plugin on a fake host (no root needed)."""
        return self.fake_host(tmp_path, monkeypatch)

    # -- the part without root --------------------------------------------------------------

    def test_record_before_make(self, fake: FakeHost, ct_pid: int) -> None:
        fake.start(ct_pid)
        broken = made_before_recorded(fake.kernel.events)
        if broken:
            raise ContractBroken(RECORD_BEFORE_MAKE, broken[0])

    def test_cleanup_removes_what_was_made_and_is_idempotent(self, fake: FakeHost,
                                                              ct_pid: int) -> None:
        fake.start(ct_pid)
        try:
            fake.stop()
        except Exception as exc:
            raise ContractBroken(CLEANUP, f"vz_post_stop after a start raised: {exc}") from exc
        left = fake.kernel.leftovers()
        if left:
            raise ContractBroken(CLEANUP, f"after vz_post_stop these are left: {', '.join(left)}")
        try:
            fake.stop()
        except Exception as exc:
            raise ContractBroken(IDEMPOTENT, f"vz_post_stop run a second time raised: {exc}; "
                                             "cleanup must accept what is already gone") from exc
        left = fake.kernel.leftovers()
        if left:
            raise ContractBroken(IDEMPOTENT, f"vz_post_stop run a second time left: {', '.join(left)}")

    def test_cleanup_after_a_kill_at_every_checkpoint(self, tmp_path: Path, ct_pid: int) -> None:
        with pytest.MonkeyPatch.context() as mp:
            host = self.fake_host(tmp_path / "whole", mp)
            host.start(ct_pid)
            labels = list(host.kernel.labels)
        checkpoints = len(labels)
        for point in range(checkpoints):
            with pytest.MonkeyPatch.context() as mp:
                host = self.fake_host(tmp_path / f"kill{point}", mp)
                host.kernel.kill_at = point
                with pytest.raises(Killed):
                    host.start(ct_pid)
                host.kernel.kill_at = None
                before = labels[point].replace(str(tmp_path / "whole"), str(tmp_path / f"kill{point}"))
                where = f"vzctl killed at checkpoint {point} of {checkpoints} (before {before})"
                try:
                    host.stop()
                except Exception as exc:
                    raise ContractBroken(AFTER_KILL, f"{where}: vz_post_stop raised: {exc}") from exc
                left = host.kernel.leftovers()
                if left:
                    raise ContractBroken(AFTER_KILL, f"{where}: vz_post_stop left {', '.join(left)}; "
                                                     "record each object before making it")

    def test_bad_input_is_refused_before_any_effect(self, fake: FakeHost, ct_pid: int) -> None:
        from vzcore.conffile import ConfigFile
        from vzcore.errors import VzError

        if not self.bad_input:
            pytest.skip(f"{type(self).__name__} names no bad_input to try")
        for key, value in self.bad_input.items():
            fake.kernel.events.clear()
            try:
                fake.validate({key: value}, "set")
            except VzError as exc:
                if str(fake.ctid) not in str(exc):
                    raise ContractBroken(BAD_INPUT, f"{_short({key: value})}: the refusal does not "
                                                    f"name CT {fake.ctid}: {exc}") from exc
            else:
                raise ContractBroken(BAD_INPUT, f"vz_validate accepted {_short({key: value})}")
            if fake.kernel.events:
                raise ContractBroken(BAD_INPUT, f"vz_validate refused {_short({key: value})} but "
                                                f"first did {fake.kernel.events[0].describe()}")
        conf = ConfigFile.load(fake.container().config.path)
        conf.update(dict(self.bad_input))
        conf.save()
        fake.kernel.events.clear()
        try:
            fake.start(ct_pid)
        except VzError:
            pass
        else:
            raise ContractBroken(BAD_INPUT, f"a start with {_short(self.bad_input)} in the CT's "
                                            "config was not refused")
        if fake.kernel.events:
            raise ContractBroken(BAD_INPUT, "a start with a bad config was refused only after "
                                            f"{fake.kernel.events[0].describe()}")

    # -- the part on the real kernel (root) -------------------------------------------------

    @pytest.fixture
    def real_ct(self, vz_env: Any, vzctl: Any) -> int:
        """CT 101 created with the plugin loaded and :attr:`config` in its config."""
        from vzcore.conffile import ConfigFile

        load_plugin(vz_env, self.plugin)
        vzctl("create", 101, "--ostemplate", "busybox", *self.create_options)
        conf = ConfigFile.load(vz_env.conf(101))
        conf.update(dict(self.config))
        conf.save()
        return 101

    @real_kernel
    def test_real_start_then_stop_twice_leaves_nothing(self, vz_env: Any, vzctl: Any,
                                                        real_ct: int) -> None:
        vzctl("start", real_ct)
        vzctl("stop", real_ct)
        left = crash.leftovers(vz_env, real_ct)
        if left:
            raise ContractBroken(CLEANUP, f"after vzctl stop these are left: {', '.join(left)}")
        again = vzctl("stop", real_ct, check=False)
        if again.returncode != 31:  # vzctl's "not running", and nothing else
            raise ContractBroken(IDEMPOTENT, f"a second vzctl stop failed: {again.stderr}")
        left = crash.leftovers(vz_env, real_ct)
        if left:
            raise ContractBroken(IDEMPOTENT, f"after a second vzctl stop: {', '.join(left)}")

    @real_kernel
    def test_real_kill_at_every_start_checkpoint(self, vz_env: Any, vzctl: Any, real_ct: int,
                                                 tmp_path: Path) -> None:
        argv = ["start", str(real_ct)]
        points = crash.learn_points(vz_env, argv, ("start:",), tmp_path / "trace")
        vzctl("stop", "--fast", real_ct)
        for point in points:
            crash.kill_at(vz_env, argv, point)
            stopped = vzctl("stop", "--fast", real_ct, check=False)
            left = crash.leftovers(vz_env, real_ct)
            if stopped.returncode not in (0, 31) or left:  # 31: killed before a state file
                raise ContractBroken(AFTER_KILL, f"vzctl start killed at {point}: the next vzctl "
                                                 f"stop {stopped.stderr.strip() or 'left'} "
                                                 f"{', '.join(left)}")

    @real_kernel
    def test_real_start_with_bad_input_changes_nothing(self, vz_env: Any, vzctl: Any,
                                                        real_ct: int) -> None:
        from vzcore.conffile import ConfigFile

        if not self.bad_input:
            pytest.skip(f"{type(self).__name__} names no bad_input to try")
        conf = ConfigFile.load(vz_env.conf(real_ct))
        conf.update(dict(self.bad_input))
        conf.save()
        refused = vzctl("start", real_ct, check=False)
        if refused.returncode == 0:
            raise ContractBroken(BAD_INPUT, f"vzctl start accepted {_short(self.bad_input)}")
        left = crash.leftovers(vz_env, real_ct)
        if left:
            raise ContractBroken(BAD_INPUT, f"a refused start left {', '.join(left)}")


def _short(values: Mapping[str, str]) -> str:
    """Config values for a message, long ones cut."""
    return " ".join(f"{k}={v if len(v) <= 40 else v[:37] + '...'!r}" for k, v in values.items())


def _installed(module: str, env: Mapping[str, str]) -> bool:
    """Whether vzctl, run with ``env``, finds an installed entry point loading ``module``
    (asked in a child: the test's own import path may hold more than vzctl's)."""
    import sys

    from vzcore import ENTRY_POINT_GROUP

    script = ("from importlib_metadata import entry_points; print(*(e.value.partition(':')[0]"
              f".strip() for e in entry_points(group={ENTRY_POINT_GROUP!r})))")
    found = subprocess.run([sys.executable, "-c", script], env=dict(env), capture_output=True,
                           text=True, check=True).stdout.split()
    return module in found
