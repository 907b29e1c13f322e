"""The dists plugin passes vzcore's lifecycle contract: it makes nothing on the host (its
files are inside the CT's tree), and a password found in a config is refused before any
effect."""

from __future__ import annotations

from typing import ClassVar

from vzcore.testing.lifecycle import LifecycleContract


class TestDistsContract(LifecycleContract):
    plugin = "vzcore_dists.plugin"
    config: ClassVar[dict[str, str]] = {"HOSTNAME": "ct.example.org", "NAMESERVER": "10.0.0.53"}
    bad_input: ClassVar[dict[str, str]] = {"USERPASSWD": "root"}  # no ":PASSWORD"
