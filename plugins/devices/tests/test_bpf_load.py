"""The kernel's verifier accepts the device programs the plugin emits (root: bpf(2) loads
need CAP_BPF or CAP_SYS_ADMIN; no cgroup2 group is needed for a load)."""

from __future__ import annotations

import os

import pytest

from vzcore.linux import bpf
from vzcore_devices import enforce, policy, program

pytestmark = [pytest.mark.root]

RULE_SETS = [
    [],
    [policy.grant("b", 7, 3, "rw")],
    [policy.grant("c", 10, 200, "r"), policy.grant("b", 8, None, "w")],
    [policy.grant("c", n, n, "rw") for n in range(200)],  # a long program: forward jumps only
]


@pytest.mark.parametrize("grants", RULE_SETS, ids=["default", "one", "two", "many"])
def test_the_verifier_accepts_the_program(grants: list[policy.Rule]) -> None:
    rules = policy.merged([*policy.DEFAULT, *grants])
    insns = program.encode(program.instructions(rules))
    fd = bpf.load(bpf.PROG_TYPE_CGROUP_DEVICE, insns, name=enforce.PROGRAM_NAME,
                  expected_attach_type=bpf.CGROUP_DEVICE)
    try:
        prog_id, name = bpf.prog_info(fd)
        assert prog_id > 0 and name == enforce.PROGRAM_NAME
        again = bpf.prog_fd_by_id(prog_id)
        assert again is not None
        os.close(again)
    finally:
        os.close(fd)


def test_a_program_the_verifier_refuses_says_why() -> None:
    bad = program.encode([(program.ALU64_MOV_K, program.R0, 0, 0, 1)])  # no exit
    with pytest.raises(Exception, match="bpf prog load"):
        bpf.load(bpf.PROG_TYPE_CGROUP_DEVICE, bad, name="vz_bad",
                 expected_attach_type=bpf.CGROUP_DEVICE)
