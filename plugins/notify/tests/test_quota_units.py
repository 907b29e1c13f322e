"""The supervisor's quotactl(2) for a CT root (vzcore.linux.notify_quota), the parts that
need no kernel quota: ID translation, the struct layouts, and what is left to the kernel
before anything of the caller is read (the whole path is tested in the VM by
plugins/disk/tests/test_ugid_quota.py)."""

from __future__ import annotations

import ctypes
import errno
import os

import pytest

from vzcore.linux import notify_quota as nq
from vzcore.linux.notify_answers import CtFigures
from vzcore.linux.seccomp_notify import Notification

MAP = [(0, 100000, 65536)]


def test_ids_translate_through_the_map_and_unmapped_ones_are_einval() -> None:
    assert nq.to_host(MAP, 0) == 100000 and nq.to_host(MAP, 1000) == 101000
    assert nq.to_ct(MAP, 101000) == 1000 and nq.to_ct(MAP, 99999) is None
    with pytest.raises(OSError) as info:
        nq.to_host(MAP, 65536)
    assert info.value.errno == errno.EINVAL
    two = [(0, 100000, 10), (10, 300000, 10)]
    assert nq.to_host(two, 12) == 300002 and nq.to_ct(two, 300002) == 12


def test_struct_sizes_are_the_kernels() -> None:
    assert (nq.DQBLK.size, nq.NEXTDQBLK.size, nq.DQINFO.size) == (72, 72, 24)


def test_next_quota_skips_ids_the_ct_does_not_have(monkeypatch: pytest.MonkeyPatch) -> None:
    """Q_GETNEXTQUOTA on the host may find an entry of an ID outside the CT's extent: the
    next extent is asked, and the ID comes back in the CT's terms."""
    entries = [100005, 200000, 300003]  # the host's IDs with entries on the file system
    two = [(0, 100000, 10), (10, 300000, 10)]

    def fake(cmd: int, special: str, qid: int, buffer: ctypes.Array[ctypes.c_char] | None) -> None:
        found = next((e for e in entries if e >= qid), None)
        if found is None:
            raise OSError(errno.ENOENT, "none")
        assert buffer is not None
        buffer.raw = nq.NEXTDQBLK.pack(1, 2, 3, 4, 5, 6, 7, 8, 9, found)

    monkeypatch.setattr(nq, "quotactl", fake)
    assert nq.NEXTDQBLK.unpack(nq.get_next("dev", 0, two, 0))[-1] == 5
    assert nq.NEXTDQBLK.unpack(nq.get_next("dev", 0, two, 6))[-1] == 13  # not 200000
    with pytest.raises(OSError) as info:
        nq.get_next("dev", 0, two, 14)
    assert info.value.errno == errno.ENOENT


@pytest.mark.parametrize("cmd", [nq.Q_QUOTAON << 8, nq.Q_QUOTAOFF << 8 | 1,
                                 nq.Q_SETQUOTA << 8 | 2,  # project quota
                                 0x5804 << 8])  # XFS's Q_XSETQLIM
def test_other_commands_are_left_to_the_kernel(cmd: int) -> None:
    notification = Notification(1, os.getpid(), 179, 0, (cmd, 0x1000, 0, 0x2000, 0, 0))
    with pytest.raises(nq.Continue):
        nq.answer_quotactl(None, notification, os.getpid(), 0, lambda pid, path: None)  # type: ignore[arg-type]


def test_a_caller_without_the_capability_is_left_to_the_kernel(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Not the CT's root: the kernel decides (a user's query of their own quota works)."""
    looked: list[bytes] = []
    monkeypatch.setattr(nq, "caller_is_ct_root", lambda tid, init: False)
    notification = Notification(1, os.getpid(), 179, 0, (nq.Q_SETQUOTA << 8, 0x1000, 0, 0x2000, 0, 0))
    with pytest.raises(nq.Continue):
        nq.answer_quotactl(None, notification, 1, 0,  # type: ignore[arg-type]
                           lambda pid, path: looked.append(path))
    assert looked == []


def test_caller_is_ct_root_reads_the_user_namespace_and_capability() -> None:
    # this process against itself: the same user namespace; the capability as it holds it
    with open("/proc/self/status") as f:
        eff = int(next(line for line in f if line.startswith("CapEff:")).split()[1], 16)
    assert nq.caller_is_ct_root(os.getpid(), os.getpid()) == bool(eff >> 21 & 1)


def test_figures_carry_the_quota_call() -> None:
    figures = CtFigures(101, quota=True)
    assert figures.calls() == ("quotactl",)
    assert CtFigures.from_json(figures.to_json()).quota
