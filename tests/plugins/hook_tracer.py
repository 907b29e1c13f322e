"""A test plugin that records every hook call (and where it ran) to $VZ_HOOK_TRACE."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import click

from vzcore import hookimpl
from vzcore.plugin import PluginInfo
from vzcore.records import PluginRecord

# Opened once in vzctl: the CT's child processes inherit the descriptor (until they exec),
# so hooks that run inside the CT, after its root switch, can still log.
_TRACE = (os.open(os.environ["VZ_HOOK_TRACE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC)
          if os.environ.get("VZ_HOOK_TRACE") else -1)
_HOST_PIDNS = os.readlink("/proc/self/ns/pid")


def _log(hook: str) -> None:
    if _TRACE >= 0:
        inside = os.readlink("/proc/self/ns/pid") != _HOST_PIDNS
        os.write(_TRACE, f"{hook} {'ct' if inside else 'host'}\n".encode())


@attrs.frozen
class TracerRecord(PluginRecord):
    """Whether vz_pre_start ran (what vz_post_stop reports)."""

    pre_start: bool = False


@hookimpl
def vz_plugin_info() -> PluginInfo:
    return PluginInfo(subsystem="tracer", summary="records hook calls for tests",
                      record="hook_tracer:TracerRecord")  # the lazy form, tested


@hookimpl
def vz_parameters() -> Iterable[Any]:
    from vzcore.params import Parameter
    from vzcore.values import Text

    _log("vz_parameters")
    yield Parameter(name="tracer-note", key="TRACER_NOTE", type=Text(), live=True,
                    on_create=True, help="a note the tracer plugin owns")


@hookimpl
def vz_list_fields() -> Iterable[Any]:
    from vzcore.params import Field

    _log("vz_list_fields")
    yield Field(name="tracer_note", header="NOTE", width=-10, help="the tracer's note")


@hookimpl
def vz_commands() -> Iterable[Any]:
    from vzcore.params import Command

    _log("vz_commands")
    yield Command(name="trace-hello", target="hook_tracer:hello", summary="say hello")


@click.command()
def hello() -> None:
    """Print hello (a command contributed by a plugin)."""
    click.echo("hello from a plugin command")


@hookimpl
def vz_validate(ct: Any, changes: Any, verb: str) -> None:
    _log(f"vz_validate:{verb}")
    if "TRACER_NOTE" in changes and changes["TRACER_NOTE"].new == "refuse":
        from vzcore.errors import InvalidValue

        raise InvalidValue(f"CT {ct.ctid}: --tracer-note refuse is refused")


for _name in ("vz_create", "vz_quota_init", "vz_mount", "vz_umount", "vz_destroy",
              "vz_pre_mount", "vz_post_mount", "vz_pre_umount", "vz_post_umount"):
    def _make(name: str) -> Any:
        def impl(ct: Any) -> None:
            _log(name)

        impl.__name__ = name
        return hookimpl(impl)

    globals()[_name] = _make(_name)


@hookimpl
def vz_pre_start(ct: Any, run: Any) -> None:
    run.record = TracerRecord(pre_start=True)
    _log("vz_pre_start")


@hookimpl
def vz_namespaces(ct: Any) -> Iterable[str]:
    _log("vz_namespaces")
    return ()


@hookimpl
def vz_setup_host(ct: Any, run: Any, pid: int) -> None:
    _log("vz_setup_host")


@hookimpl
def vz_setup_child(ct: Any, run: Any) -> None:
    # The CT's init sees what vz_pre_start recorded (the hookspecs promise it).
    _log(f"vz_setup_child:{'recorded' if run.record and run.record.pre_start else 'empty'}")


@hookimpl
def vz_finalize_child(ct: Any, run: Any) -> None:
    _log("vz_finalize_child")


@hookimpl
def vz_post_start(ct: Any, run: Any) -> None:
    _log("vz_post_start")


@hookimpl
def vz_pre_stop(ct: Any, run: Any) -> None:
    _log("vz_pre_stop")


@hookimpl
def vz_stop(ct: Any, run: Any) -> None:
    _log("vz_stop")


@hookimpl
def vz_post_stop(ct: Any, run: Any) -> None:
    _log(f"vz_post_stop:{'recorded' if run.record and run.record.pre_start else 'empty'}")


@hookimpl
def vz_apply(ct: Any, changes: Any, run: Any) -> None:
    _log(f"vz_apply:{'running' if run else 'stopped'}")


@hookimpl
def vz_collect(ct: Any, run: Any) -> Mapping[str, Any]:
    _log("vz_collect")
    return {"tracer_note": ct.get("TRACER_NOTE")}


@hookimpl
def vz_enter(ct: Any, run: Any) -> None:
    _log("vz_enter")
