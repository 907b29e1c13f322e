"""The isolation plugin passes vzcore's isolation contract (no root needed for the part
against the recording fake; the rest runs as root on the real kernel)."""

from __future__ import annotations

from vzcore.testing.contracts import IsolationContract


class TestIsolationContract(IsolationContract):
    plugin = "vzcore_isolation.plugin"
