"""Enforcing a rule set on a CT's cgroup: the v1 devices controller, or a BPF device
program on the cgroup v2 group.

Both paths change a running CT's rules so that no moment allows more than the old or the
new set: v1 denies what goes before it allows what comes (:func:`policy.v1_steps`); v2
attaches the new program *in place of* the old one in one bpf(2) call (``BPF_F_REPLACE``),
so there is neither a moment with both nor one with none.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from vzcore.errors import KernelError, VzError
from vzcore.linux import bpf
from vzcore.linux.cgroups import CgroupDir
from vzcore_devices import policy, program

if TYPE_CHECKING:
    from vzcore.linux.cgroups import CgroupSet

PROGRAM_NAME = "vz_devices"


class NoDeviceControl(VzError):
    """Neither a v1 devices controller nor a cgroup2 group to attach a program to."""

    exit_code = 5  # VZ_BAD_KERNEL


def path_of(cgroups: CgroupSet) -> tuple[str, CgroupDir]:
    """``("v1", group)`` of the devices controller, else ``("v2", group)`` of the cgroup2
    hierarchy (a hybrid host without a v1 devices hierarchy filters on its cgroup2 group,
    which every CT process is in too)."""
    d = next((d for d in cgroups.dirs if d.version == 1 and "devices" in d.controllers), None)
    if d is not None:
        return "v1", d
    d = next((d for d in cgroups.dirs if d.version == 2), None)
    if d is not None:
        return "v2", d
    raise NoDeviceControl("this host has neither a cgroup v1 devices hierarchy nor cgroup2: "
                          "a CT's devices cannot be restricted; mount one of them")


def apply(cgroups: CgroupSet, old: Sequence[policy.Rule] | None,
          new: Sequence[policy.Rule], old_program: int | None) -> int | None:
    """Take the CT's group from ``old`` (``None``: a new group) to ``new``; returns the ID
    of the BPF program now attached (v2), else ``None``."""
    kind, group = path_of(cgroups)
    if kind == "v1":
        for filename, text in policy.v1_steps(old, new):
            _write(group.file(filename), text)
        return None
    return _replace_program(group, new, old_program)


def _write(path: os.PathLike[str], text: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(text)
    except OSError as exc:
        raise KernelError(f"write {text!r} to", str(path), exc.errno or 0) from None


def _replace_program(group: CgroupDir, rules: Sequence[policy.Rule],
                     old_program: int | None) -> int:
    insns = program.encode(program.instructions(policy.merged(rules)))
    prog_fd = bpf.load(bpf.PROG_TYPE_CGROUP_DEVICE, insns, name=PROGRAM_NAME,
                       expected_attach_type=bpf.CGROUP_DEVICE)
    try:
        group_fd = os.open(group.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            old_fd = _attached(group_fd, old_program)
            try:
                if old_fd is None:
                    bpf.attach(group_fd, prog_fd, bpf.CGROUP_DEVICE, bpf.F_ALLOW_MULTI)
                else:
                    bpf.attach(group_fd, prog_fd, bpf.CGROUP_DEVICE,
                               bpf.F_ALLOW_MULTI | bpf.F_REPLACE, replace_fd=old_fd)
            finally:
                if old_fd is not None:
                    os.close(old_fd)
        finally:
            os.close(group_fd)
        return bpf.prog_info(prog_fd)[0]
    finally:
        # The attachment holds the program; our descriptor is not needed any more.
        os.close(prog_fd)


def _attached(group_fd: int, program_id: int | None) -> int | None:
    """A descriptor of the CT's program attached to the group itself: ``program_id``, or
    (when a killed vzctl attached a program it could not record) one of our name."""
    attached = bpf.query(group_fd, bpf.CGROUP_DEVICE)
    candidates = [program_id] if program_id in attached else attached
    for candidate in candidates:
        fd = bpf.prog_fd_by_id(candidate) if candidate is not None else None
        if fd is None:
            continue
        if candidate == program_id or bpf.prog_info(fd)[1] == PROGRAM_NAME:
            return fd
        os.close(fd)
    return None


def attached_ids(cgroups: CgroupSet) -> list[int]:
    """The device programs attached to the CT's cgroup2 group (for tests and status)."""
    _kind, group = path_of(cgroups)
    fd = os.open(group.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return bpf.query(fd, bpf.CGROUP_DEVICE)
    finally:
        os.close(fd)
