"""``vzctl set`` admin options: ``--applyconfig`` (with ``--applyconfig_map``) and
``--reset_ub``.

``--applyconfig NAME`` loads ``ve-NAME.conf-sample`` from the config directory and sets
its keys as if each had been given as its option, so every value goes through the same
parsing, minimums and plugin validation as ``--KEY VALUE`` and nothing is changed when one
is bad.  As in OpenVZ, the keys that describe one CT and never a class of them are left
out: ``HOSTNAME``, ``IP_ADDRESS``, ``OSTEMPLATE``, ``VE_ROOT``, ``VE_PRIVATE`` (and
``NAME``, which must stay unique, and ``TEMPLATE``).  Options given on the same command
line win over the sample.  ``--applyconfig_map name`` applies only the sample's ``NAME``
(OpenVZ uses it to restore a CT's name from a config).
"""

from __future__ import annotations

import re

from vzcore.changes import Change, ChangeSet
from vzcore.conffile import ConfigFile
from vzcore.container import Container
from vzcore.engine import Engine
from vzcore.errors import InvalidSyntax, InvalidValue, NotRunning, VzError
from vzcore.runtime import Run

APPLY_CONFIG_ERROR = 109  # VZ_APPLY_CONFIG_ERROR
SAMPLE_NAME = r"[A-Za-z0-9_][A-Za-z0-9_.-]*"
"""A sample's name: it becomes part of a file name, so never a path (``../x``)."""
NOT_APPLIED = frozenset({"HOSTNAME", "IP_ADDRESS", "OSTEMPLATE", "VE_ROOT", "VE_PRIVATE",
                         "TEMPLATE", "NAME", "ORIGIN_SAMPLE", "CONFIGFILE", "VEID"})
"""Keys that name one CT (or record where its config came from): never copied from a
sample (OpenVZ's list, plus NAME, which must stay unique)."""


def sample_options(engine: Engine, ct: Container, name: str, *,
                   only_name: bool = False) -> dict[str, list[str]]:
    """The options (option name -> texts) that applying sample ``name`` to ``ct`` means.

    :raises InvalidSyntax: for a sample name that is not a plain name.
    :raises VzError: exit 109 when the sample does not exist.
    """
    if re.fullmatch(SAMPLE_NAME, name) is None:
        raise InvalidSyntax(f"CT {ct.ctid}: --applyconfig {name!r}: a sample name is letters, "
                            "digits, '_', '.' and '-' (the NAME of ve-NAME.conf-sample)")
    path = engine.paths.sample_conf(name)
    if not path.is_file():
        raise VzError(f"CT {ct.ctid}: sample config '{name}' not found ({path}); list "
                      f"{engine.paths.conf_dir}/ve-*.conf-sample for the names",
                      exit_code=APPLY_CONFIG_ERROR)
    sample = ConfigFile.load(path)
    registry = engine.registry
    # The option that owns a key's whole grammar (--physpages for PHYSPAGES, not --ram).
    owners = {p.key: p for p in registry.unique_parameters() if p.merge is None and p.on_set}
    options: dict[str, list[str]] = {}
    skipped: list[str] = []
    for key, text in sample.items():
        if not (key == "NAME" if only_name else key not in NOT_APPLIED):
            continue
        param = owners.get(key)
        if param is None:
            skipped.append(key)
            continue
        try:  # named here by the sample's key, before the options' own checks
            param.type.parse(text)
        except ValueError as exc:
            raise InvalidValue(f"CT {ct.ctid}: {key}=\"{text}\" in {path}: {exc}; fix the "
                               "sample") from None
        options[param.name] = [text]
    if only_name and "name" not in options:
        raise VzError(f"CT {ct.ctid}: --applyconfig_map name: {path} has no NAME",
                      exit_code=APPLY_CONFIG_ERROR)
    if skipped:
        engine.warn(f"warning: CT {ct.ctid}: {', '.join(sorted(skipped))} in {path} not "
                    "applied: no active plugin's option sets them after create")
    return options


def reset_beancounters(engine: Engine, ct: Container) -> None:
    """``--reset_ub``: give the running CT every beancounter value of its config again
    (after limits were changed without ``--save``, or by hand in its cgroups)."""
    ct.require_exists()
    registry = engine.registry
    infos = engine.plugins.infos
    keys = sorted(k for k, plugin in registry.owners.items()
                  if plugin in infos and infos[plugin].subsystem == "beancounters")
    engine.plugins.require("beancounters", "set --reset_ub")
    changes = ChangeSet({k: Change(k, ct.get(k), ct.get(k)) for k in keys})
    engine.plugins.run_each("vz_validate", ct=ct, changes=changes, verb="set")
    with engine.lock(ct, "set"):
        state = engine.state(ct)
        if state is None or not state.is_running:
            raise NotRunning(f"CT {ct.ctid} is not running: --reset_ub re-applies the config's "
                             f"beancounters to a running CT; a start applies them anyway")
        engine.plugins.run_each("vz_apply", ct=ct, changes=changes,
                                run=Run(ct, state, engine.plugins))
    engine.say(f"CT {ct.ctid}: beancounters reset from {ct.config.path}")
