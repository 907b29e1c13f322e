"""The init-kind layer without root: detection from a CT tree, sysvinit's utmp records."""

from __future__ import annotations

import os
import signal
import struct
from pathlib import Path

from vzcore.linux import safefs
from vzcore_isolation import initkind, ready


def _tree(tmp_path: Path, init: str | None = None, content: bytes = b"") -> Path:
    root = tmp_path / "ct"
    for d in ("sbin", "lib/systemd", "bin", "etc", "run"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "lib/systemd/systemd").write_bytes(b"\x7fELF systemd")
    (root / "bin/busybox").write_bytes(b"\x7fELF busybox")
    if init is not None:
        (root / "sbin/init").symlink_to(init)
    elif content:
        (root / "sbin/init").write_bytes(content)
    return root


def test_systemd_is_where_sbin_init_resolves_inside_the_root(tmp_path: Path) -> None:
    kind = initkind.detect(str(_tree(tmp_path, "/lib/systemd/systemd")))
    assert kind.name == "systemd" and kind.system and kind.stop_signal == signal.SIGRTMIN + 3
    assert kind.environment("u", notify=True)["NOTIFY_SOCKET"] == "/run/host/notify"
    assert "NOTIFY_SOCKET" not in kind.environment("u")  # a start without --wait


def test_sysvinit_is_recognised_by_its_control_fifo(tmp_path: Path) -> None:
    kind = initkind.detect(str(_tree(tmp_path, content=b"\x7fELF...\0/run/initctl\0...")))
    assert kind.name == "sysvinit" and kind.system and kind.stop_signal is None
    assert kind.stop_command[0] == ("/sbin/telinit", "0")
    assert "NOTIFY_SOCKET" not in kind.environment("u")


def test_busybox_and_unknown_inits_are_handled_as_busybox(tmp_path: Path) -> None:
    assert initkind.detect(str(_tree(tmp_path / "a", "/bin/busybox"))).name == "busybox"
    assert initkind.detect(str(_tree(tmp_path / "b", content=b"#!/bin/sh\n"))).name == "busybox"
    assert initkind.detect(str(_tree(tmp_path / "c"))).name == "busybox"  # no init: exec says so


def test_a_link_out_of_the_root_is_resolved_inside_it(tmp_path: Path) -> None:
    """``/sbin/init`` pointing at ``/usr/lib/systemd/systemd`` or climbing out with ``..``
    must not reach the host's systemd: the CT has none there, so it is no systemd CT."""
    for target in ("/usr/lib/systemd/systemd", "../../../../../../../usr/lib/systemd/systemd"):
        root = _tree(tmp_path / str(len(target)), target)
        assert initkind.detect(str(root)).name == "busybox"


def _utmp(*records: tuple[int, int]) -> bytes:
    """utmp records (type, pid) padded to 384 bytes each."""
    return b"".join(struct.pack("=hxxi", kind, pid).ljust(384, b"\0") for kind, pid in records)


def test_runlevel_is_the_last_run_lvl_record(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    (root / "run/utmp").write_bytes(_utmp((2, 0), (1, ord("S")), (7, 99), (1, ord("2") + 256 * ord("S"))))
    (root / "etc/inittab").write_text("# comment\nid:3:initdefault:\n")
    fd = safefs.open_root(str(root))
    try:
        assert ready.runlevel(fd) == "2"
        assert ready._default_runlevel(fd) == "3"
    finally:
        os.close(fd)


def test_no_utmp_yet_means_no_runlevel_and_debian_default(tmp_path: Path) -> None:
    fd = safefs.open_root(str(_tree(tmp_path)))
    try:
        assert ready.runlevel(fd) is None
        assert ready._default_runlevel(fd) == "2"
    finally:
        os.close(fd)
