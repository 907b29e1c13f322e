"""The contract suite of one plugin, collected by name: no test module to write.

.. code-block:: console

    $ pytest --pyargs vzcore.testing.suite --vz-plugin vz_motd.plugin

``--vz-plugin`` (or ``$VZ_CONTRACT_PLUGIN``) names the plugin's hookimpl module; the suite
is its subsystem's (:mod:`vzcore.testing.contracts`), or the generic rules of
:class:`~vzcore.testing.lifecycle.LifecycleContract` for a subsystem of its own.
"""

from __future__ import annotations

import os

from vzcore.testing.contracts import (
    BeancountersContract,
    CpuContract,
    IsolationContract,
    NetworkContract,
    SecurityContract,
    TemplateContract,
)
from vzcore.testing.lifecycle import LifecycleContract

PLUGIN_ENV = "VZ_CONTRACT_PLUGIN"

SUITES: dict[str, type[LifecycleContract]] = {
    "isolation": IsolationContract, "template": TemplateContract, "network": NetworkContract,
    "beancounters": BeancountersContract, "cpu": CpuContract, "security": SecurityContract,
}
"""Subsystem -> its contract suite; any other subsystem runs the generic one."""


def suite_for(module: str) -> type[LifecycleContract]:
    """The contract suite of the plugin module ``module``, with ``plugin`` set."""
    from vzcore.plugin.manager import load_plugins

    plugins = load_plugins({"PLUGINS": module}, strict=True, autoload=False)
    subsystem = plugins.infos[module].subsystem
    base = SUITES.get(subsystem, LifecycleContract)
    return type(f"Test{base.__name__}", (base,), {"plugin": module, "__module__": __name__})


_module = os.environ.get(PLUGIN_ENV)
if _module:
    TestContract = suite_for(_module)
