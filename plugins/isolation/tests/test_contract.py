"""The isolation plugin passes the isolation contract of vzcore.testing."""

from vzcore.testing.contracts import IsolationContract


class TestIsolationPlugin(IsolationContract):
    """Runs every contract test against the isolation plugin (the active provider)."""
