"""vzcore's isolation plugin: a CT's own namespaces, file system view and capabilities."""

__version__ = "0.1.0"
