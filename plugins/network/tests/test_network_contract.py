"""The network plugin passes vzcore's network contract (no root needed for the part
against the recording fake; the rest runs as root on the real kernel)."""

from __future__ import annotations

from typing import Any

from vzcore.testing.contracts import NetworkContract
from vzcore.testing.fake import FakeKernel


def fake_rtnl(kernel: FakeKernel) -> type:
    """The plugin's netlink wrapper with its changes of host links and proxy entries
    going to the fake (reads still ask the kernel, which needs no privilege)."""
    from vzcore_network.rtnl import Rtnl

    class FakeRtnl(Rtnl):
        def delete_link(self, name: str) -> bool:
            return kernel.remove("link", name)

        def proxy(self, add: bool, index: int, address: str) -> None:
            if add:
                kernel.make("proxy", f"{address}@{index}")
            else:
                kernel.remove("proxy", f"{address}@{index}")

    return FakeRtnl


class TestNetworkContract(NetworkContract):
    plugin = "vzcore_network.plugin"
    kernel_doubles: Any = {"vzcore_network.rtnl.Rtnl": fake_rtnl}
