"""The network plugin passes vzcore's contract suite of its subsystem (no root needed for
the part against the recording fake; the rest runs as root on the real kernel)."""

from __future__ import annotations

from vzcore.testing.contracts import NetworkContract


class TestNetworkContract(NetworkContract):
    plugin = "vzcore_network.plugin"
