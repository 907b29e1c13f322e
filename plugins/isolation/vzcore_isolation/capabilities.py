"""Which capabilities a CT keeps: OpenVZ's default set, changed by ``CAPABILITY``."""

from __future__ import annotations

from collections.abc import Sequence

from vzcore.linux.caps import NAMES, NUMBERS

DROPPED_BY_DEFAULT = frozenset({
    "sys_module",      # loading kernel modules
    "sys_rawio",       # I/O ports, /dev/mem
    "sys_pacct",       # host process accounting
    "sys_time",        # the host's clock
    "sys_boot",        # reboot(2), kexec
    "mac_admin", "mac_override",            # LSM policy
    "syslog",          # the host's kernel log
    "wake_alarm", "block_suspend",          # host power management
    "audit_control", "audit_read",          # the host's audit subsystem
    "bpf", "perfmon", "checkpoint_restore", # kernel-wide tracing and BPF
})
"""Capabilities a CT never has unless ``--capability NAME:on`` grants them.

OpenVZ's default mask (vzctl ``src/lib/cap.c``) drops sys_module, sys_rawio, sys_pacct
and sys_time; on an upstream kernel the capabilities that act on the whole host (boot,
LSMs, kernel log, audit, BPF, perf) go too, as in LXC's default drop list.  sys_admin and
net_admin stay, as in vzctl's upstream-kernel mode, because mount and network namespaces
confine them; see docs/security.md for what that does and does not protect.
"""

KEPT_IN_USER_NAMESPACE = frozenset({"sys_boot"})
"""Capabilities of :data:`DROPPED_BY_DEFAULT` that a CT with a user namespace keeps.

``CAP_SYS_BOOT`` there reaches only reboot(2) of the CT's own PID namespace (which the
CT's user namespace owns): the kernel ends the CT's init with SIGHUP for a restart or
SIGINT for a halt, which is how ``reboot`` and ``poweroff`` inside work
(docs/system-cts.md); kexec needs it in the host's user namespace.  A privileged CT's
would be the host's (kexec_load), so it stays dropped there."""

PRIVILEGED_NEVER = frozenset({"sys_ptrace"})
"""Capabilities a privileged CT (``LOCAL_UID=0``) never has, whatever ``CAPABILITY`` says.

Its root is the host's root, so ``CAP_SYS_PTRACE`` would be the host's: it overrides the
non-dumpable mark of vzctl's joining process, and so opens that process's memory,
descriptors and ``/proc/PID/exe`` (the host's interpreter; CVE-2019-5736) to the CT.  A
CT's root still traces its own processes (same uid) without it; see docs/security.md.
"""


class CapabilityError(ValueError):
    pass


class SettingType:
    """The value grammar of ``--capability``: ``name:on|off[,name:on|off...]``."""

    metavar = "NAME:on|off"

    def parse(self, text: str) -> tuple[tuple[str, bool], ...]:
        return parse_setting(text)

    def to_conf(self, value: tuple[tuple[str, bool], ...]) -> str:
        return " ".join(f"{n.upper()}:{'on' if on else 'off'}" for n, on in value)


def parse_setting(text: str) -> tuple[tuple[str, bool], ...]:
    """``name:on|off[,name:on|off...]`` (case-insensitive names) -> ((name, on), ...)."""
    settings = []
    for item in text.replace(",", " ").split():
        name, _, state = item.partition(":")
        name = name.lower().removeprefix("cap_")
        if name not in NUMBERS:
            raise CapabilityError(f"unknown capability {name!r}; known: {', '.join(NAMES)}")
        if state.lower() not in ("on", "off"):
            raise CapabilityError(f"{item!r}: expected NAME:on or NAME:off")
        settings.append((name, state.lower() == "on"))
    if not settings:
        raise CapabilityError("expected NAME:on or NAME:off")
    return tuple(settings)


def merge(config: str | None, changes: Sequence[tuple[tuple[str, bool], ...]]) -> str | None:
    """The new ``CAPABILITY`` text after ``changes``, as vzctl writes it (``NAME:on``)."""
    current = dict(parse_setting(config)) if config and config.strip() else {}
    for setting in changes:
        current.update(setting)
    return " ".join(f"{n.upper()}:{'on' if on else 'off'}" for n, on in sorted(current.items())) or None


def kept(config: str | None, *, privileged: bool = False) -> frozenset[int]:
    """Capability numbers a CT keeps with ``CAPABILITY=config``; a ``privileged`` CT
    never keeps :data:`PRIVILEGED_NEVER` (granting one is an error)."""
    names = set(NAMES) - (DROPPED_BY_DEFAULT - (set() if privileged else KEPT_IN_USER_NAMESPACE))
    if config and config.strip():
        for name, on in parse_setting(config):
            if on and privileged and name in PRIVILEGED_NEVER:
                raise CapabilityError(f"{name} cannot be granted to a privileged CT "
                                      "(LOCAL_UID=0): it is the host's and reaches vzctl itself")
            (names.add if on else names.discard)(name)
    if privileged:
        names -= PRIVILEGED_NEVER
    return frozenset(NUMBERS[n] for n in names)
