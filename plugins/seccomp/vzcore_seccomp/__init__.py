"""vzcore's seccomp plugin (subsystem ``security``)."""

__version__ = "0.1.0"
