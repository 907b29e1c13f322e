"""Hook implementations of the actions plugin (subsystem ``actions``).

OpenVZ's action scripts in the config directory, each at OpenVZ's moment: ``premount``
(``vz_pre_mount``), ``mount`` (``vz_post_mount``: before a start forks, so what it mounts
below ``VE_ROOT`` is seen inside), ``umount`` (``vz_pre_umount``), ``postumount``
(``vz_post_umount``) on the host, global ``vps.*`` before ``CTID.*``; ``CTID.start``
inside the CT once its init runs (``vz_post_start``) and ``CTID.stop`` inside before the
CT is asked to shut down (``vz_pre_stop``).  A failing script stops the verb with exit
79 and the engine undoes what the verb did; a failing ``CTID.stop`` leaves the CT
running, as OpenVZ's did.  docs/actions.md explains it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vzcore import hookimpl
from vzcore.plugin import PluginInfo

if TYPE_CHECKING:
    from vzcore.container import Container
    from vzcore.runtime import Run


@hookimpl
def vz_plugin_info() -> PluginInfo:
    return PluginInfo(subsystem="actions",
                      summary="OpenVZ's action scripts (vps.mount, CTID.premount, CTID.start, "
                              "...) from the config directory")


@hookimpl
def vz_pre_mount(ct: Container) -> None:
    from vzcore_actions import scripts

    scripts.run_on_host(ct, "premount")


@hookimpl
def vz_post_mount(ct: Container) -> None:
    from vzcore_actions import scripts

    scripts.run_on_host(ct, "mount")


@hookimpl
def vz_pre_umount(ct: Container) -> None:
    from vzcore_actions import scripts

    scripts.run_on_host(ct, "umount")


@hookimpl
def vz_post_umount(ct: Container) -> None:
    from vzcore_actions import scripts

    scripts.run_on_host(ct, "postumount")


@hookimpl
def vz_post_start(ct: Container, run: Run) -> None:
    from vzcore_actions import scripts

    scripts.run_in_ct(ct, run, "start")


@hookimpl
def vz_pre_stop(ct: Container, run: Run) -> None:
    """``CTID.stop`` inside, before any plugin asks the CT to shut down: failing, it
    refuses the stop (79) and the CT keeps running, as OpenVZ's vzctl."""
    from vzcore.errors import ActionScriptError
    from vzcore_actions import scripts

    try:
        scripts.run_in_ct(ct, run, "stop")
    except ActionScriptError as exc:
        raise ActionScriptError(f"{exc.message}; CT {ct.ctid} keeps running: fix the script, "
                                f"or stop the CT without it: 'vzctl stop --fast {ct.ctid}'"
                                ) from exc
