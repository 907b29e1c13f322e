"""Test support for vzcore and its plugins: a pytest plugin (fixtures and markers), kernel
feature probes, and contract tests every implementation of a subsystem runs.

Installed as the pytest plugin ``vzcore`` (entry point ``pytest11``), so a third-party
plugin's tests get the same fixtures: ``vz_env`` (a private ``VZ_ROOT`` with its own
cgroup parent), ``vzctl`` (run the real CLI there) and ``busybox_ct`` (a created CT).
"""
