"""An example third-party vzcore plugin (see docs/plugins.md, which walks through it)."""

__version__ = "1.0.0"
