"""vzcore's views plugin: lxcfs files over a CT's /proc files (docs/views.md)."""
