"""Pieces of the notify plugin that need no root: the answers' arithmetic and layouts,
and the start's error when the supervisor cannot serve."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
from vzcore_notify import supervisor

from vzcore.errors import VzError
from vzcore.linux import seccomp_notify
from vzcore.linux.daemon import Daemon
from vzcore.linux.notify_answers import CtFigures, with_limit

MB = 1 << 20


def test_with_limit_replaces_size_and_free_space_only() -> None:
    kernel = {"type": 0x9123683E, "bsize": 4096, "frsize": 4096, "blocks": 10**8,
              "bfree": 10**7, "bavail": 10**7, "files": 0, "namelen": 255, "flags": 32}
    answer = with_limit(kernel, used=10 * MB, limit=50 * MB)
    assert answer == {**kernel, "blocks": 12800, "bfree": 10240, "bavail": 10240}
    assert with_limit(kernel, used=60 * MB, limit=50 * MB)["bfree"] == 0  # never negative


def test_struct_layouts_round_trip() -> None:
    fields = {"type": 1, "bsize": 4096, "blocks": 3, "bfree": 2, "bavail": 1, "files": 9,
              "ffree": 8, "fsid": 7, "namelen": 255, "frsize": 4096, "flags": 6}
    packed = seccomp_notify.statfs_struct(fields)
    assert len(packed) == 120 and seccomp_notify.statfs_fields(packed) == fields
    info = {"uptime": 5, "totalram": 256 * MB, "freeram": MB, "procs": 3, "mem_unit": 1}
    packed = seccomp_notify.sysinfo_struct(info)
    assert len(packed) == 112
    assert {k: v for k, v in seccomp_notify.sysinfo_fields(packed).items() if v} == info


def test_calls_follow_the_figures() -> None:
    assert CtFigures(1).calls() == ()
    assert CtFigures(1, "/used", "/limit").calls() == ("statfs", "fstatfs")


@pytest.mark.parametrize("failure", [VzError("python3 exited at once (status 1)"),
                                     ConnectionRefusedError(111, "Connection refused")])
def test_a_supervisor_that_cannot_serve_fails_the_start_with_the_fix(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: Exception) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise failure

    monkeypatch.setattr(supervisor, "ensure", broken)
    ct = types.SimpleNamespace(ctid=101)
    with pytest.raises(VzError) as raised:
        supervisor.register(ct, Daemon.named(tmp_path, "notify"), {"ctid": 101})  # type: ignore[arg-type]
    message = str(raised.value)
    assert message.startswith("CT 101: ")
    assert "vzctl set 101 --syscall-intercept off --save" in message
