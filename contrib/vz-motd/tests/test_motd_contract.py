"""vz-motd obeys the lifecycle rules every plugin obeys (vzcore's generic contract)."""

from __future__ import annotations

from vzcore.testing.lifecycle import LifecycleContract


class TestMotdContract(LifecycleContract):
    plugin = "vz_motd.plugin"
    config = {"MOTD": "hello {hostname}"}
    bad_input = {"MOTD": "x" * 5000}
