"""The devices plugin: which devices a CT may open, the nodes it is given, and the host
network interfaces passed into it (docs/devices.md)."""
