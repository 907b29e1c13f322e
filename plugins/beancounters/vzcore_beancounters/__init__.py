"""vzcore's beancounters plugin: OpenVZ's User Beancounters on an upstream kernel."""

__version__ = "0.1.0"
