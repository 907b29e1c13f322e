"""vzcore's network plugin: routed venet and bridged veth devices for every CT."""

__version__ = "0.1.0"
