"""Hook implementations: a ``--motd`` parameter, /etc/motd written at start, ``vzctl motd``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from vzcore import hookimpl
from vzcore.plugin import PluginInfo

if TYPE_CHECKING:
    from vzcore.changes import ChangeSet
    from vzcore.container import Container
    from vzcore.params import Command, Field, Parameter
    from vzcore.runtime import Run

DEFAULT = "Welcome to CT {ctid} ({hostname}).\n"


def render(ct: Container, text: str | None = None) -> bytes:
    """The message for ``ct``: MOTD from its config (``{ctid}``/``{hostname}`` filled in)."""
    template = text if text is not None else (ct.get("MOTD") or DEFAULT)
    message = template.replace("{ctid}", str(ct.ctid)).replace("{hostname}", ct.hostname or "")
    return (message if message.endswith("\n") else message + "\n").encode()


def write_motd(ct: Container, data: bytes) -> None:
    """Write /etc/motd in the CT's tree without following any link the CT planted."""
    from vzcore.linux import safefs

    root = safefs.open_root(ct.root)
    try:
        safefs.makedirs(root, "etc")
        safefs.write_file(root, "etc/motd", data, owner=ct.root_owner)
    finally:
        import os

        os.close(root)


@hookimpl
def vz_plugin_info() -> PluginInfo:
    return PluginInfo(subsystem="motd", summary="message of the day in every CT")


@hookimpl
def vz_parameters() -> Iterable[Parameter]:
    from vzcore.params import Parameter
    from vzcore.values import Text

    yield Parameter(name="motd", key="MOTD", type=Text(), live=True, on_create=True,
                    help="message of the day written to the CT's /etc/motd at start "
                         "({ctid} and {hostname} are filled in)")


@hookimpl
def vz_validate(ct: Container, changes: ChangeSet, verb: str) -> None:
    from vzcore.errors import InvalidValue

    # A start checks the saved message too: a hand-edited config is input as well.
    text = changes["MOTD"].new if "MOTD" in changes else ct.get("MOTD") if verb == "start" else None
    if len(text or "") > 4096:
        raise InvalidValue(f"CT {ct.ctid}: --motd is longer than 4096 characters; shorten it "
                           f"with 'vzctl set {ct.ctid} --motd TEXT --save'")


@hookimpl
def vz_pre_start(ct: Container, run: Run) -> None:
    write_motd(ct, render(ct))


@hookimpl
def vz_apply(ct: Container, changes: ChangeSet, run: Run | None) -> None:
    if "MOTD" in changes and run is not None:  # a running CT gets the new message at once
        write_motd(ct, render(ct, changes["MOTD"].new))


@hookimpl
def vz_list_fields() -> Iterable[Field]:
    from vzcore.params import Field

    yield Field(name="motd", header="MOTD", width=-30, help="message of the day")


@hookimpl
def vz_collect(ct: Container, run: Run | None) -> Mapping[str, Any]:
    return {"motd": render(ct).decode().strip()}


@hookimpl
def vz_commands() -> Iterable[Command]:
    from vzcore.params import Command

    yield Command(name="motd", target="vz_motd.cli:motd", summary="Show a CT's message of the day")
