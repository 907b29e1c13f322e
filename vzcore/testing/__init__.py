"""Test support for vzcore and its plugins: a pytest plugin (fixtures and markers), kernel
feature probes, the contract suites every implementation of a subsystem runs, and the
crash-checkpoint harness.

Installed as the pytest plugin ``vzcore`` (entry point ``pytest11``), so a third-party
plugin's tests get the same fixtures: ``vz_env`` (a private ``VZ_ROOT`` with its own
cgroup parent), ``vzctl`` (run the real CLI there), ``busybox_ct`` (a created CT) and
``debian_template`` (the Debian 12 templates contrib/test.sh builds, :mod:`.templates`).

* :mod:`.lifecycle`: the generic rules (record before make, idempotent cleanup, cleanup
  after a kill, bad input refused before any effect); :mod:`.contracts`: one suite per
  subsystem on top of them; :mod:`.suite`: ``pytest --pyargs vzcore.testing.suite
  --vz-plugin MODULE``.
* :mod:`.fake`: the recording fake of kernel calls the suites' no-root part runs on.
* :mod:`.crash`: kill the real vzctl at each checkpoint of :mod:`vzcore.faults`.

Nothing here imports a plugin: what tests need from one (the ``busybox`` template probe)
is declared by it under the entry-point group ``vzcore.test_features``.
"""
