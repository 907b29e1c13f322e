"""The seccomp plugin passes vzcore's contract suite of its subsystem (no root needed for
the part against the recording fake; the rest runs as root on the real kernel)."""

from __future__ import annotations

from vzcore.testing.contracts import SecurityContract


class TestSecurityContract(SecurityContract):
    plugin = "vzcore_seccomp.plugin"
    bad_input = {"SECCOMP": "bogus"}
