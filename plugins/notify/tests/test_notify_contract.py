"""The notify plugin passes vzcore's generic contract suite (record before make,
idempotent cleanup, cleanup after a kill, bad input refused before any effect); its CT
has a RAM limit, so that the start registers it with the supervisor."""

from __future__ import annotations

from vzcore.testing.lifecycle import LifecycleContract


class TestNotifyContract(LifecycleContract):
    plugin = "vzcore_notify.plugin"
    config = {"PHYSPAGES": "0:64M"}
    bad_input = {"SYSCALL_INTERCEPT": "bogus"}
