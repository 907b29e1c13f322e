"""vzcore's template plugin: populate a CT's private area, and the simfs layout."""

__version__ = "0.1.0"
