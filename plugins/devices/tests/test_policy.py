"""The devices plugin's pure parts: the grammar, the rules, the v1 steps and the BPF
program (checked by interpreting it), without root."""

from __future__ import annotations

import itertools
import struct

import pytest

from vzcore_devices import grammar, policy, program
from vzcore_devices.policy import Rule

REQUESTS = [(kind, major, minor, access)
            for kind in "cb" for major, minor in ((1, 3), (1, 4), (7, 0), (7, 3), (10, 200),
                                                 (136, 5), (5, 2), (0, 0))
            for access in ("m", "r", "w", "rw", "rwm")]


def test_options_parse_and_merge_openvz_style() -> None:
    assert grammar.parse_devnode("net/tun:rw") == grammar.Devnode("net/tun", "rw")
    assert grammar.parse_devnode("/dev/loop3:q").access == "rw"
    assert grammar.parse_device("b:7:all:r") == grammar.Device("b", 7, None, "r")
    text = grammar.merge_devnodes(None, [grammar.parse_devnode("loop3:rw"),
                                         grammar.parse_devnode("net/tun:r")])
    assert text == "loop3:rw net/tun:r"
    assert grammar.merge_devnodes(text, [grammar.parse_devnode("loop3:none")]) == "net/tun:r"
    assert grammar.merge_devices("c:10:200:rw", [grammar.parse_device("c:10:200:none")]) is None
    assert grammar.merge_netdev_add("eth1", ["eth2", "eth1"]) == "eth1 eth2"
    assert grammar.merge_netdev_del("eth1 eth2", ["eth1"]) == "eth2"
    with pytest.raises(ValueError, match="not an interface of the CT"):
        grammar.merge_netdev_del("eth1", ["eth9"])


@pytest.mark.parametrize("text", ["loop3", "loop3:x", "../sda:rw", "a/../b:rw", ":rw",
                                  "null:rw", "pts/0:rw", "loop 3:rw"])
def test_malformed_devnodes_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        grammar.parse_devnode(text)


@pytest.mark.parametrize("text", ["x:1:2:rw", "c:1:2", "c:a:2:rw", "c:1:2:q", "c:1:-2:rw",
                                  "c:5000:1:rw", "c:1:2:rwx", "all:rw"])
def test_malformed_devices_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        grammar.parse_device(text)


@pytest.mark.parametrize("text", ["lo", "", "a" * 16, "eth 0", "../x"])
def test_malformed_interfaces_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        grammar.parse_ifname(text)


def test_the_default_list_opens_the_standard_nodes_and_no_disk() -> None:
    rules = policy.merged(policy.DEFAULT)
    for minor in (3, 5, 7, 8, 9):
        assert policy.allowed(rules, "c", 1, minor, "rw")
    assert policy.allowed(rules, "c", 136, 7, "rw")
    assert policy.allowed(rules, "b", 7, 0, "m")  # mknod as OpenVZ allowed it ...
    assert not policy.allowed(rules, "b", 7, 0, "r")  # ... but the node does not open
    assert not policy.allowed(rules, "c", 1, 1, "r")  # /dev/mem
    assert not policy.allowed(rules, "c", 10, 200, "rw")  # tun: only when granted


@pytest.mark.parametrize("grants", [
    (), (policy.grant("b", 7, 3, "rw"),), (policy.grant("c", 10, 200, "r"),),
    (policy.grant("b", 7, None, "w"), policy.grant("c", 1, 3, "r")),
])
def test_the_bpf_program_decides_as_the_rules(grants: tuple[Rule, ...]) -> None:
    rules = policy.merged([*policy.DEFAULT, *grants])
    insns = program.instructions(rules)
    for kind, major, minor, access in REQUESTS:
        expected = policy.allowed(rules, kind, major, minor, access)
        assert program.run(insns, kind, major, minor, access) == int(expected), \
            (kind, major, minor, access)


def test_the_program_encodes_as_struct_bpf_insn() -> None:
    insns = program.instructions(policy.merged(policy.DEFAULT))
    raw = program.encode(insns)
    assert len(raw) == 8 * len(insns)
    code, regs, off, _imm = struct.unpack_from("<BBhi", raw, 0)
    assert (code, regs & 0xF, regs >> 4, off) == (program.LDX_MEM_W, program.R2, program.R1, 0)
    assert raw[-8] == program.EXIT


def _v1_simulate(state: dict[tuple[str, int | None, int | None], set[str]],
                 filename: str, text: str) -> None:
    if text == "a":
        state.clear()
        return
    rule = Rule.parse(text)
    if filename == "devices.allow":
        state.setdefault(rule.key, set()).update(rule.access)
    else:
        state.get(rule.key, set()).difference_update(rule.access)


def _rules_of(state: dict[tuple[str, int | None, int | None], set[str]]) -> list[Rule]:
    return [Rule(*key, "".join(sorted(access))) for key, access in state.items() if access]


SETS = [
    [policy.grant("b", 7, 3, "r")], [policy.grant("b", 7, 3, "w")],
    [policy.grant("b", 7, 3, "rw")], [policy.grant("b", 7, None, "r")],
    [policy.grant("c", 10, 200, "rw"), policy.grant("b", 7, 3, "w")], [],
]


@pytest.mark.parametrize(("old", "new"), list(itertools.permutations(range(len(SETS)), 2)))
def test_v1_steps_never_allow_more_than_the_old_or_the_new_set(old: int, new: int) -> None:
    before = policy.merged([*policy.DEFAULT, *SETS[old]])
    after = policy.merged([*policy.DEFAULT, *SETS[new]])
    state: dict[tuple[str, int | None, int | None], set[str]] = {}
    for filename, text in policy.v1_steps(None, before):
        _v1_simulate(state, filename, text)
    for filename, text in policy.v1_steps(before, after):
        _v1_simulate(state, filename, text)
        now = _rules_of(state)
        for request in REQUESTS:
            if policy.allowed(now, *request):
                assert policy.allowed(before, *request) or policy.allowed(after, *request), \
                    (text, request)
    assert all(policy.allowed(_rules_of(state), *r) == policy.allowed(after, *r) for r in REQUESTS)
