"""Finding, loading and choosing plugins; calling their hooks one plugin at a time.

:func:`load_plugins` is the factory (no global manager exists): it registers the core's
built-in plugin, blocks the plugins named in ``DISABLED_PLUGINS`` *before* importing them,
loads the entry points of group ``vzcore.plugins`` and the modules named in ``PLUGINS``,
and keeps one active plugin per subsystem (``<SUBSYSTEM>_PROVIDER`` chooses when several
are installed).  A plugin that fails to load is reported, not fatal, unless strict mode
(``VZ_STRICT_PLUGINS=1``) is on.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import attrs
import pluggy

from vzcore import PROJECT, hookspecs
from vzcore.errors import MissingSubsystem, PluginConflict, PluginError, VzError
from vzcore.plugin import IN_CT_HOOKS, PluginInfo, subsystem_rank

ACTIVE = "active"
DISABLED = "disabled"
NOT_SELECTED = "not selected"
FAILED = "failed"
CONFLICT = "conflict"

@attrs.define
class PluginStatus:
    """One row of ``vzctl plugins``; the version is read only when asked for (reading a
    distribution's metadata costs milliseconds that every other command would pay)."""

    name: str
    version_source: Callable[[], str]
    subsystem: str | None
    state: str
    reason: str = ""
    summary: str = ""

    @property
    def version(self) -> str:
        try:
            return self.version_source()
        except Exception:  # a broken distribution must not break the listing
            return ""


def _words(value: str | None) -> list[str]:
    return (value or "").replace(",", " ").split()


class Plugins:
    """The loaded plugins of one vzctl invocation: statuses, active set, hook calls."""

    def __init__(self, pm: pluggy.PluginManager, statuses: dict[str, PluginStatus]) -> None:
        self.pm = pm
        self.statuses = statuses
        self.infos: dict[str, PluginInfo] = {}
        self.conflicts: dict[str, list[str]] = {}

    # -- selection ----------------------------------------------------------------------

    def active_names(self) -> list[str]:
        return [n for n, s in self.statuses.items() if s.state == ACTIVE]

    def import_child_modules(self) -> None:
        """Import every active plugin's :attr:`PluginInfo.child_modules` (before a start
        forks the CT's init, and before a process joins a CT), and the lazy record class
        of each plugin with a hook inside the CT (:data:`IN_CT_HOOKS`), which reads
        ``run.record`` there; a module that does not import is that plugin's error."""
        inside = {impl.plugin_name for hook in IN_CT_HOOKS
                  for impl in getattr(self.pm.hook, hook).get_hookimpls()}
        for name in self.active_names():
            info = self.infos.get(name)
            if info is None:
                continue
            for module in info.child_modules:
                try:
                    importlib.import_module(module)
                except Exception as exc:
                    raise PluginError(name, "child_modules", exc) from exc
            if name in inside:
                info.record_class(name)  # its error names the plugin

    def provider(self, subsystem: str) -> str | None:
        """The active plugin's name for ``subsystem``, or ``None``."""
        for name, info in self.infos.items():
            if info.subsystem == subsystem and self.statuses[name].state == ACTIVE:
                return name
        return None

    def require(self, subsystem: str, verb: str) -> str:
        """The provider of ``subsystem``; refuse ``verb`` with a clear message if none."""
        self.check_conflicts()
        name = self.provider(subsystem)
        if name is None:
            reasons = [
                f"'{s.name}' is {s.state}" + (f": {s.reason}" if s.reason else "")
                for s in self.statuses.values()
                if s.subsystem == subsystem
            ]
            raise MissingSubsystem(subsystem, verb, "; ".join(reasons))
        return name

    def check_conflicts(self) -> None:
        """Refuse to run any verb while two plugins claim one subsystem."""
        for subsystem, names in sorted(self.conflicts.items()):
            raise PluginConflict(subsystem, names)

    def variant_offers(self, key: str) -> dict[str, str]:
        """Variant name -> active plugin, for a variant config key such as ``VE_LAYOUT``."""
        offers: dict[str, str] = {}
        for name in self.active_names():
            info = self.infos.get(name)
            for variant in info.variants.get(key, ()) if info else ():
                offers[variant] = name
        return offers

    # -- calling hooks ------------------------------------------------------------------

    def _ordered_impls(self, hook_name: str, reverse: bool) -> list[pluggy.HookImpl]:
        impls = getattr(self.pm.hook, hook_name).get_hookimpls()

        def rank(impl: pluggy.HookImpl) -> tuple[tuple[int, str], str]:
            info = self.infos.get(impl.plugin_name)
            return (subsystem_rank(info.subsystem if info else "core"), impl.plugin_name)

        return sorted(impls, key=rank, reverse=reverse)

    def call_each(
        self,
        hook_name: str,
        *,
        reverse: bool = False,
        on_error: Callable[[PluginError], None] | None = None,
        only: Callable[[str], bool] | None = None,
        **kwargs: Any,
    ) -> Iterator[tuple[str, Any]]:
        """Call each active plugin's implementation of ``hook_name`` in subsystem order.

        Yields ``(plugin name, result)``, as the hook's :class:`~vzcore.hookspecs.HookOptions`
        declare (``collect``: the result as a list).  ``kwargs["run"]``, when it is a
        :class:`vzcore.runtime.Run`, is narrowed to each plugin's own record.  A failure is
        wrapped in :class:`PluginError` naming the plugin and the hook and raised, or, with
        ``on_error``, handed to it and the loop goes on (teardown collects every failure).
        ``only`` picks plugins by name (``vz_mount`` goes to the layout's provider alone).
        """
        options = hookspecs.options_of(hook_name)
        run = kwargs.get("run")
        for impl in self._ordered_impls(hook_name, reverse):
            if only is not None and not only(impl.plugin_name):
                continue
            if run is not None:
                kwargs["run"] = run.for_plugin(impl.plugin_name)
            try:
                result: Any = impl.function(*(kwargs[arg] for arg in impl.argnames))
                if options.collect:
                    result = list(result or ())
            except Exception as exc:
                error = PluginError(impl.plugin_name, hook_name, exc,
                                    verdict=options.input_errors and isinstance(exc, VzError))
                if on_error is None:
                    raise error from exc
                on_error(error)
                continue
            yield impl.plugin_name, result

    def run_each(self, hook_name: str, **kwargs: Any) -> None:
        """:meth:`call_each` for hooks whose results do not matter."""
        for _ in self.call_each(hook_name, **kwargs):
            pass

    def first_result(self, hook_name: str, **kwargs: Any) -> Any:
        """The first non-``None`` result of a hook declared ``first_result``, in subsystem
        order (``None`` when no plugin answered); later plugins are not called."""
        if not hookspecs.options_of(hook_name).first_result:
            raise TypeError(f"{hook_name} is not declared first_result")
        for _name, result in self.call_each(hook_name, **kwargs):
            if result is not None:
                return result
        return None


def _version_of(module: ModuleType, fallback: str = "") -> str:
    return str(getattr(module, "__version__", fallback))


def _check_hookimpl_signatures(pm: pluggy.PluginManager, plugin: object, name: str) -> None:
    """Refuse hookimpls with defaulted parameters: pluggy would not pass those arguments."""
    for caller in pm.get_hookcallers(plugin) or ():
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and impl.kwargnames:
                raise TypeError(
                    f"{caller.name} gives defaults to {', '.join(impl.kwargnames)}; "
                    "hook implementations must not have default values"
                )


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value not in ("", "0", "no")


def load_plugins(global_config: dict[str, str], *, strict: bool | None = None,
                 autoload: bool | None = None) -> Plugins:
    """Build the plugin set for one vzctl invocation from ``vz.conf`` values.

    :param strict: a plugin that fails to load is fatal (default: ``$VZ_STRICT_PLUGINS``).
    :param autoload: load installed entry points (default: ``$VZ_PLUGINS_AUTOLOAD``, on);
        without it only the modules named in ``PLUGINS`` are loaded.
    """
    if strict is None:
        strict = _flag("VZ_STRICT_PLUGINS", False)
    if autoload is None:
        autoload = _flag("VZ_PLUGINS_AUTOLOAD", True)
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    statuses: dict[str, PluginStatus] = {}

    import vzcore
    from vzcore import builtin

    pm.register(builtin, name="core")
    statuses["core"] = PluginStatus("core", lambda: vzcore.__version__, "core", ACTIVE)

    disabled = set(_words(global_config.get("DISABLED_PLUGINS")))
    for name in disabled - {"core"}:
        pm.set_blocked(name)

    def register(name: str, load: Callable[[], ModuleType], version: Callable[[], str]) -> None:
        if name in statuses:
            return
        if pm.is_blocked(name):
            statuses[name] = PluginStatus(name, version, None, DISABLED, "DISABLED_PLUGINS in vz.conf")
            return
        try:
            module = load()
            pm.register(module, name=name)
            try:
                _check_hookimpl_signatures(pm, module, name)
            except TypeError:
                pm.unregister(module)
                raise
        except Exception as exc:
            if strict:
                raise PluginError(name, "loading", exc) from exc
            statuses[name] = PluginStatus(name, version, None, FAILED, f"failed to load: {exc}")
            return
        statuses[name] = PluginStatus(name, version, None, ACTIVE)

    if autoload:
        from vzcore.plugin.discovery import plugin_entry_points

        for ep in plugin_entry_points():
            register(ep.name, ep.load, ep.version)  # type: ignore[arg-type]
    for module_name in _words(global_config.get("PLUGINS")):
        register(module_name, lambda m=module_name: importlib.import_module(m),  # type: ignore[misc]
                 lambda m=module_name: _version_of(importlib.import_module(m)))  # type: ignore[misc]

    plugins = Plugins(pm, statuses)
    _read_infos(plugins, strict)
    _select_providers(plugins, global_config)
    pm.check_pending()
    return plugins


def _read_infos(plugins: Plugins, strict: bool) -> None:
    pm = plugins.pm
    for name in plugins.active_names():
        module = pm.get_plugin(name)
        try:
            impls = [i for i in pm.hook.vz_plugin_info.get_hookimpls() if i.plugin_name == name]
            info = impls[0].function() if impls else None
            if not isinstance(info, PluginInfo):
                raise TypeError("vz_plugin_info did not return a PluginInfo")
        except Exception as exc:
            if strict:
                raise PluginError(name, "vz_plugin_info", exc) from exc
            pm.unregister(module)
            plugins.statuses[name].state = FAILED
            plugins.statuses[name].reason = str(exc)
            continue
        plugins.infos[name] = info
        plugins.statuses[name].subsystem = info.subsystem
        plugins.statuses[name].summary = info.summary


def _select_providers(plugins: Plugins, global_config: dict[str, str]) -> None:
    by_subsystem: dict[str, list[str]] = {}
    for name in plugins.active_names():
        by_subsystem.setdefault(plugins.infos[name].subsystem, []).append(name)
    for subsystem, names in by_subsystem.items():
        if len(names) < 2 and not global_config.get(f"{subsystem.upper()}_PROVIDER"):
            continue
        key = f"{subsystem.upper()}_PROVIDER"
        chosen = global_config.get(key)
        if chosen is None:
            plugins.conflicts[subsystem] = sorted(names)
            losers, state, reason = names, CONFLICT, f"several plugins provide '{subsystem}'; set {key}"
        elif chosen in names:
            losers, state, reason = [n for n in names if n != chosen], NOT_SELECTED, f"{key}={chosen}"
        else:
            losers, state, reason = names, NOT_SELECTED, f"{key}={chosen} chooses another plugin"
        for name in losers:
            plugins.pm.unregister(name=name)
            plugins.statuses[name].state = state
            plugins.statuses[name].reason = reason
