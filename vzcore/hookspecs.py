"""The ``vz_*`` hooks: the whole container lifecycle as pluggy hook specifications.

These docstrings are the hook reference: ``docs/hooks.md`` is generated from them
(``python -m vzcore.docgen``) and a test fails when a hook is undocumented or untested.
Every docstring has one shape: a summary; **When** (the lifecycle phase); **Where** (host
process or inside the CT, root or not); the parameters; **Returns**; **Errors**; an example.

How the engine calls them
-------------------------
Registration hooks (``vz_plugin_info``, ``vz_parameters``, ``vz_list_fields``,
``vz_commands``) are called once per process.  Lifecycle hooks are not broadcast: the
engine calls each active plugin's implementation on its own, in the documented subsystem
order (:data:`vzcore.plugin.SUBSYSTEM_ORDER`; teardown runs in reverse), so that it knows
which plugin failed, can undo what succeeded, and can give each plugin its own ``run``
whose ``record`` is that plugin's typed record in the CT's state file (the frozen attrs
class it declares as :attr:`PluginInfo.record <vzcore.plugin.PluginInfo.record>`;
:mod:`vzcore.records`).  Assigning ``run.record`` writes the state file at once: record
what a hook will make in one assignment, before making it.  Teardown hooks go to the
plugins the state file names, not to whichever are active now.  Only one plugin per
subsystem is ever active, so an implementation never has to ask whether it was chosen.
How each hook's results and errors are handled is declared with it (:func:`hookspec`,
:class:`HookOptions`); every error names the plugin and the hook.

The start runs in :func:`vzcore.lifecycle.start.start`, top to bottom.  Host hooks
(``vz_pre_start``, ``vz_setup_host``, ``vz_post_start``) share vzctl's ``run``: each sees
what the hooks before it recorded.  The hooks in the CT's init (``vz_setup_child``,
``vz_switch_root``, ``vz_finalize_child``) see, read-only, the state file as vzctl saved
it when it recorded init: everything ``vz_pre_start`` and ``vz_setup_host`` recorded.
Those hooks must import nothing: a plugin names the modules they need in
:attr:`vzcore.plugin.PluginInfo.child_modules`, which the start imports before it forks.

Implementations must not give their parameters default values (pluggy would silently not
pass them); the plugin manager refuses such a plugin.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import pluggy

from vzcore import PROJECT

if TYPE_CHECKING:
    from vzcore.changes import ChangeSet
    from vzcore.container import Container
    from vzcore.params import Command, Field, Parameter
    from vzcore.plugin import PluginInfo
    from vzcore.runtime import Run

hookimpl = pluggy.HookimplMarker(PROJECT)
_pluggy_hookspec = pluggy.HookspecMarker(PROJECT)
_Spec = TypeVar("_Spec", bound=Callable[..., Any])


class HookOptions(NamedTuple):
    """How the engine calls one hook, declared with it (:func:`hookspec`).

    :ivar first_result: the first plugin's non-``None`` result is the answer; the later
        plugins are not called.
    :ivar collect: each result is an iterable (often a generator) that the engine turns
        into a list inside the call, so an error raised while it yields names the plugin.
    :ivar input_errors: a :class:`~vzcore.errors.VzError` raised here is a verdict on the
        user's input: the error shows its own message first and keeps its exit code, and
        names the plugin and the hook after it (other errors are the plugin's failure).
    """

    first_result: bool = False
    collect: bool = False
    input_errors: bool = False


def hookspec(*, first_result: bool = False, collect: bool = False,
             input_errors: bool = False) -> Callable[[_Spec], _Spec]:
    """Declare a hook and how the engine calls it (:class:`HookOptions`)."""
    def mark(function: _Spec) -> _Spec:
        function.vz_options = HookOptions(first_result, collect, input_errors)  # type: ignore[attr-defined]
        return _pluggy_hookspec(firstresult=first_result)(function)

    return mark


def options_of(hook_name: str) -> HookOptions:
    """The options declared with hook ``hook_name``."""
    options: HookOptions = globals()[hook_name].vz_options
    return options


# -- registration -------------------------------------------------------------------------


@hookspec(first_result=True)
def vz_plugin_info() -> PluginInfo:
    """Say which subsystem this plugin provides.

    **When**: once per process, right after the plugin is loaded, before any verb.
    **Where**: host, any user; must not touch the kernel or import anything heavy.

    **Returns**: a :class:`vzcore.plugin.PluginInfo`.  A plugin that returns nothing is
    refused (``vzctl plugins`` shows it as failed).
    **Errors**: raising marks the plugin failed; other plugins still load.

    Example::

        @hookimpl
        def vz_plugin_info():
            return PluginInfo(subsystem="motd", summary="message of the day in every CT")
    """


@hookspec(collect=True)
def vz_parameters() -> Iterable[Parameter]:
    """Declare the ``vzctl create/set`` options and config keys this plugin owns.

    **When**: once per process, when a verb builds its options or parses a config.
    **Where**: host, any user; pure.

    **Returns**: :class:`vzcore.params.Parameter` records.  An option name or config key
    that another active plugin also declares is refused, naming both plugins.
    **Errors**: raising marks the plugin failed.

    Example::

        @hookimpl
        def vz_parameters():
            yield Parameter(name="motd", key="MOTD", type=Text(), live=True,
                            help="message of the day written to /etc/motd at start")
    """


@hookspec(collect=True)
def vz_list_fields() -> Iterable[Field]:
    """Declare the vzlist fields this plugin fills in from :func:`vz_collect`.

    **When**: once per process, when vzlist or ``vzctl status`` runs.
    **Where**: host, any user; pure.

    **Returns**: :class:`vzcore.params.Field` records; names are unique across plugins.
    **Errors**: raising marks the plugin failed.

    Example::

        @hookimpl
        def vz_list_fields():
            yield Field(name="motd", header="MOTD", width=-20, help="message of the day")
    """


@hookspec(collect=True)
def vz_commands() -> Iterable[Command]:
    """Contribute ``vzctl`` subcommands (``vzctl ubc``, ``vzctl motd``).

    **When**: once per process, when ``vzctl`` looks up a command name it does not know
    or lists commands for ``--help``.
    **Where**: host, any user; the records name the click command by ``module:attr`` so
    nothing is imported until the command runs.

    **Returns**: :class:`vzcore.params.Command` records.  A name that clashes with a
    built-in command or another plugin's is refused, naming both.
    **Errors**: raising marks the plugin failed.

    Example::

        @hookimpl
        def vz_commands():
            yield Command(name="motd", target="vz_motd.cli:motd", summary="show the motd")
    """


# -- validation and creation --------------------------------------------------------------


@hookspec(input_errors=True)
def vz_validate(ct: Container, changes: ChangeSet, verb: str) -> None:
    """Check a verb's changes against each other, the host and other CTs.

    **When**: ``create``, ``set`` and ``start``, after every value parsed and before the
    first side effect.  ``start`` passes an empty change set (the whole config is checked).
    **Where**: host, root; must change nothing.

    :param ct: the CT, its config as it is now (before the changes).  For ``vzctl set 0``
        it is the host (``ct.is_host``; no CTID.conf, ``ct.get`` reads vz.conf).
    :param changes: the config keys the verb changes (old and new text); for the host, the
        host keys of the given options (``VE0CPUUNITS``, see ``Parameter.host_key``).
    :param verb: ``"create"``, ``"set"`` or ``"start"``.

    **Returns**: nothing.
    **Errors**: raise :class:`vzcore.errors.InvalidValue` (or another
    :class:`~vzcore.errors.VzError`) naming the CT, the parameter and the fix; the verb
    stops and nothing changes.

    Example::

        @hookimpl
        def vz_validate(ct, changes, verb):
            if "MOTD" in changes and len(changes["MOTD"].new or "") > 4096:
                raise InvalidValue(f"CT {ct.ctid}: --motd is longer than 4096 bytes")
    """


@hookspec()
def vz_layout_create(ct: Container) -> None:
    """Make a new CT's private area in its layout and mount it at ``ct.root`` to be filled.

    **When**: ``vzctl create``, after the CT's config was written and before
    :func:`vz_create`; only the plugin offering the CT's ``VE_LAYOUT`` is called.  A layout
    whose private area is the CT's tree itself (``simfs``) needs no implementation: the
    template plugin makes and fills ``ct.private``.  For any other layout the template
    plugin fills ``ct.root``, so this hook leaves the new file system mounted there; the
    engine unmounts it (:func:`vz_umount`) once the create is done or failed.
    **Where**: host, root.

    :param ct: the new CT; ``ct.private`` does not exist yet: make it and mark it at once
        with :func:`vzcore.areas.write_marker`, so that destroy recognises an area left by
        an interrupted create as this CT's.

    **Returns**: nothing.
    **Errors**: raising aborts create; the engine unmounts ``ct.root``, calls
    :func:`vz_destroy` and removes the config.

    Example::

        @hookimpl
        def vz_layout_create(ct):
            if ct.layout == "image":
                make_image(ct.private, size_of(ct))
                mount_image(ct.private, ct.root)
    """


@hookspec()
def vz_create(ct: Container) -> None:
    """Populate the CT's private area from its OS template.

    **When**: ``vzctl create``, after the CT's config was written; the template plugin
    does the work (``OSTEMPLATE`` in ``ct.config``), others may add files.
    **Where**: host, root.

    :param ct: the new CT; ``ct.private`` does not exist yet for the first plugin, which
        makes it and marks it at once with :func:`vzcore.areas.write_marker` (the engine
        marks it after the last plugin otherwise), so that destroy recognises an area left
        by an interrupted create as this CT's.

    **Returns**: nothing.
    **Errors**: raising aborts create; the engine removes the config and private area.

    Example::

        @hookimpl
        def vz_create(ct):
            safe_write(ct.private, "etc/motd", b"welcome\\n")
    """


@hookspec()
def vz_quota_init(ct: Container) -> None:
    """Set up the CT's first-level disk quota after its private area was populated.

    **When**: ``vzctl create``, after every :func:`vz_create`.
    **Where**: host, root.

    :param ct: the CT.

    **Returns**: nothing.
    **Errors**: raising aborts create, which is rolled back.

    Example::

        @hookimpl
        def vz_quota_init(ct):
            qgroup_limit(ct.private, ct.config.get("DISKSPACE"))
    """


@hookspec()
def vz_mount(ct: Container) -> None:
    """Make the CT's root file system visible at ``ct.root`` (``/vz/root/CTID``).

    **When**: ``vzctl mount``, and ``vzctl start`` of an unmounted CT.  Only the plugin
    that offers the CT's layout (``VE_LAYOUT``, recorded at create; see
    :attr:`PluginInfo.variants <vzcore.plugin.PluginInfo.variants>`) is called.
    **Where**: host, root, host mount namespace.

    :param ct: the CT; ``ct.root`` exists and is not a mount point.

    **Returns**: nothing.
    **Errors**: raising aborts the verb; plugins that already mounted get
    :func:`vz_umount`.

    Example::

        @hookimpl
        def vz_mount(ct):
            if ct.layout == "simfs":
                bind_mount(ct.private, ct.root)
    """


@hookspec()
def vz_umount(ct: Container) -> None:
    """Undo :func:`vz_mount`; must succeed when nothing is mounted (idempotent).

    **When**: ``vzctl umount``, ``vzctl stop`` (unless ``--skip-umount``), rollback.
    Only the plugin offering the layout is called: for a stop or rollback, the layout the
    start recorded in the state file, not the one the config names by then.
    **Where**: host, root, host mount namespace.

    :param ct: the CT (not running).

    **Returns**: nothing.
    **Errors**: raising is reported with every other cleanup failure; later plugins
    still run.

    Example::

        @hookimpl
        def vz_umount(ct):
            if ct.layout == "simfs":
                umount_if_mounted(ct.root)
    """


@hookspec()
def vz_pre_mount(ct: Container) -> None:
    """Act on the host just before the CT's root is mounted (OpenVZ's ``premount`` moment).

    **When**: ``vzctl mount``, ``vzctl start`` of an unmounted CT, and a ``vzctl set``
    that mounts a stopped CT, before :func:`vz_mount`; every active plugin, in subsystem
    order (unlike :func:`vz_mount`, which only the layout's plugin gets).
    **Where**: host, root, host mount namespace; ``ct.root`` is not mounted yet.

    :param ct: the CT.

    **Returns**: nothing.
    **Errors**: raising aborts the verb before anything is mounted; the error keeps its
    exit code (an action script's failure is 79).

    Example::

        @hookimpl
        def vz_pre_mount(ct):
            check_backing_store_online(ct)
    """


@hookspec()
def vz_post_mount(ct: Container) -> None:
    """Act on the host right after the CT's root is mounted (OpenVZ's ``mount`` moment).

    **When**: after :func:`vz_mount` succeeded (the verbs of :func:`vz_pre_mount`); for a
    start, before the CT's namespaces are forked, so a mount made below ``ct.root`` here
    is copied into the CT's mount namespace and seen inside.  Every active plugin, in
    subsystem order.
    **Where**: host, root, host mount namespace.

    :param ct: the CT; ``ct.root`` is mounted.

    **Returns**: nothing.
    **Errors**: raising unmounts the root again (the layout's :func:`vz_umount` only: the
    umount hooks are not run for a mount that never completed) and aborts the verb; the
    error keeps its exit code.  Unmount below ``ct.root`` what you mounted before raising.

    Example::

        @hookimpl
        def vz_post_mount(ct):
            bind_mount("/srv/shared", ct.root / "srv/shared")
    """


@hookspec()
def vz_pre_umount(ct: Container) -> None:
    """Undo on the host what :func:`vz_post_mount` made, before the root is unmounted
    (OpenVZ's ``umount`` moment).

    **When**: ``vzctl umount``, ``vzctl stop`` (unless ``--skip-umount``), the rollback
    of a start that mounted, the cleanup of a CT whose init died; before
    :func:`vz_umount`; every active plugin, in reverse subsystem order.  Not called when
    ``vzctl create`` unmounts the new area it filled (no mount hook ran for it).
    **Where**: host, root, host mount namespace; the CT is not running.

    :param ct: the CT; ``ct.root`` is mounted.

    **Returns**: nothing.
    **Errors**: raising leaves the root mounted and fails the unmount (for stop and
    rollback it is reported with every other cleanup failure); the error keeps its exit
    code.

    Example::

        @hookimpl
        def vz_pre_umount(ct):
            umount_if_mounted(ct.root / "srv/shared")
    """


@hookspec()
def vz_post_umount(ct: Container) -> None:
    """Act on the host once the CT's root is unmounted (OpenVZ's ``postumount`` moment).

    **When**: after :func:`vz_umount` succeeded (the verbs of :func:`vz_pre_umount`);
    every active plugin, in reverse subsystem order.
    **Where**: host, root, host mount namespace.

    :param ct: the CT; ``ct.root`` is not mounted.

    **Returns**: nothing.
    **Errors**: raising is reported as the verb's failure (the root stays unmounted); the
    error keeps its exit code.

    Example::

        @hookimpl
        def vz_post_umount(ct):
            release_backing_store(ct)
    """


@hookspec()
def vz_destroy(ct: Container) -> None:
    """Remove what this plugin keeps for a stopped, unmounted CT.

    **When**: ``vzctl destroy``, before the engine removes the private area and renames
    the config to ``CTID.conf.destroyed``, and after it checked that ``ct.private`` and
    ``ct.root`` are the CT's own (docs/security.md, "Private areas and mount points").
    **Where**: host, root.

    :param ct: the CT.

    **Returns**: nothing.
    **Errors**: raising is reported with every other failure; later plugins still run.

    Example::

        @hookimpl
        def vz_destroy(ct):
            remove_quota_file(ct.ctid)
    """


@hookspec(collect=True)
def vz_host_areas(ct: Container) -> Iterable[str]:
    """Name the host directories where this plugin keeps CTs' files, besides ``VE_PRIVATE``
    and ``VE_ROOT`` (a layout's pool, a shared template tree).

    What lies there is the CTs': a CT's root can change it, so the host never runs or
    trusts a file found there (the actions plugin refuses an action script that leads into
    one; :meth:`vzcore.container.Container.host_areas` gathers them).

    **When**: any verb that asks where CTs' files lie (the actions plugin, before it runs
    a host-side script); the CT may be stopped or running, and may not exist.
    **Where**: host, any user; pure (reads the config only).

    :param ct: the CT.

    **Returns**: absolute host paths (prefix applied); none for a CT this plugin keeps no
    files for.
    **Errors**: raising is reported naming the plugin; the caller treats its areas as
    unknown and refuses what needs them.

    Example::

        @hookimpl
        def vz_host_areas(ct):
            if ct.layout == "btrfs":
                yield str(ct.paths.host(ct.get("BTRFS_POOL")))
    """


# -- start ------------------------------------------------------------------------------


@hookspec()
def vz_pre_start(ct: Container, run: Run) -> None:
    """Prepare the host for the CT before its first process exists.

    **When**: ``vzctl start``, after the CT is mounted and its cgroups exist
    (``run.cgroups``), and after the processes that make the CT's namespaces were forked
    (they wait; the CT's init does not exist yet).  The one init is forked from joins
    ``run.cgroups`` meanwhile, but only once it waits: a plugin may set the groups in
    steps (deny every device, then allow some) without it meeting a half-done setting.
    **Where**: host, root, in vzctl.

    :param ct: the CT.
    :param run: the start in progress; ``run.record`` is this plugin's record (``None``
        so far): assign everything :func:`vz_post_stop` must undo, in *one* assignment
        (one write of the state file), *before* making it, so a killed vzctl leaves
        nothing the next stop cannot find.  ``run.amend(record)`` keeps what undoes
        nothing (found while applying) without a write of its own.  What it records is
        seen by :func:`vz_setup_host`, by the hooks in the CT's init (read-only) and by
        :func:`vz_post_start`.

    **Returns**: nothing.
    **Errors**: raising aborts the start; every plugin that started gets
    :func:`vz_post_stop`, in reverse order, and the error names this plugin.

    Example::

        @hookimpl
        def vz_pre_start(ct, run):
            run.record = LinksRecord(links=(f"tun{ct.ctid}",))   # one write, first
            create_link(f"tun{ct.ctid}")
    """


@hookspec()
def vz_namespaces(ct: Container) -> Iterable[str]:
    """Name the namespaces the CT's first process is created in.

    **When**: ``vzctl start``, just before the fork.
    **Where**: host; pure.

    :param ct: the CT.

    **Returns**: names among ``user, pid, mnt, uts, ipc, net, cgroup, time``; the engine
    unshares the union.  ``cgroup`` is unshared after the process joined the CT's cgroups,
    so the CT's cgroup root is its own group.
    **Errors**: raising aborts the start (rolled back).

    Example::

        @hookimpl
        def vz_namespaces(ct):
            return ("pid", "mnt", "uts", "ipc", "net", "cgroup")
    """


@hookspec()
def vz_setup_host(ct: Container, run: Run, pid: int) -> None:
    """Configure the CT's new namespaces from the host, before the child goes on.

    **When**: ``vzctl start``, after the CT's namespaces exist and its init's parent
    joined the CT's cgroups, before init is forked.
    **Where**: host, root: write uid_map/gid_map, move network devices into the child's
    network namespace (``/proc/PID/ns/net``) and configure them.

    :param ct: the CT.
    :param run: the start in progress; ``run.record`` is what this plugin recorded in
        :func:`vz_pre_start`; assign a new one before making anything it does not name
        (the CT's init sees what you record).
    :param pid: host PID of the process holding the CT's user, network, UTS and IPC
        namespaces (``/proc/PID/ns/net`` is the CT's network namespace); it is not the
        CT's init, which joins these namespaces next.

    **Returns**: nothing.
    **Errors**: raising kills the child and rolls the start back.

    Example::

        @hookimpl
        def vz_setup_host(ct, run, pid):
            move_link("veth101.0", netns_pid=pid)
    """


@hookspec()
def vz_setup_child(ct: Container, run: Run) -> None:
    """Build the CT's file system view inside its new mount namespace.

    **When**: ``vzctl start``, in the start's *builder* (:mod:`vzcore.lifecycle.spawn`),
    after the host setup, while the CT's init waits, before the root is switched (which
    moves init's root too).
    **Where**: as the host's root (not in the CT's user namespace), in init's new mount
    namespace (owned by the host's user namespace), its PID namespace (the builder is
    not PID 1) and its network, UTS and IPC namespaces, with the host's file system still
    visible; ``run.root`` is the CT root's path here.  Init then makes a mount namespace
    of its own, which locks every mount made here (a CT with a user namespace can neither
    unmount them nor make read-only ones writable).  What this hook puts in
    ``run.options`` (JSON values) reaches :func:`vz_finalize_child` in init; nothing
    else of this process does.  Mount proc,
    sys, dev and friends below ``run.root`` without following links the CT could have
    planted (use :mod:`vzcore.linux.safefs`).  ``run.record`` is read-only here (the
    state file cannot be written from inside the CT).  Import nothing here: the modules
    it needs belong in :attr:`vzcore.plugin.PluginInfo.child_modules`, which the start
    imports before it forks.

    :param ct: the CT.
    :param run: the start in progress; ``run.record`` is this plugin's record as saved
        when vzctl recorded init (everything :func:`vz_pre_start` and
        :func:`vz_setup_host` recorded), read-only: nothing made here needs a record, as
        it lives and dies with the CT's mount namespace.

    **Returns**: nothing.
    **Errors**: raising sends the message over the sync pipe to vzctl, which rolls the
    start back and reports it against this plugin.

    Example::

        @hookimpl
        def vz_setup_child(ct, run):
            mount_in_root(run.root, "proc", "/proc", "proc")
    """


@hookspec(first_result=True)
def vz_switch_root(ct: Container, run: Run) -> bool:
    """Make ``run.root`` the process's ``/`` (pivot_root) and drop the host's tree.

    **When**: ``vzctl start``, in the CT's init, after every :func:`vz_setup_child`; the
    first plugin that returns ``True`` ends the hook (later ones are not called).
    **Where**: inside the CT's namespaces; the isolation plugin implements it.

    :param ct: the CT.
    :param run: the start in progress; ``run.record`` read-only, as in
        :func:`vz_setup_child`.

    **Returns**: ``True`` once the root is switched; ``None`` (no plugin did it) aborts the
    start, since a CT must never run on the host's root.
    **Errors**: as :func:`vz_setup_child`.

    Example::

        @hookimpl
        def vz_switch_root(ct, run):
            pivot_into(run.root)
            return True
    """


@hookspec()
def vz_finalize_child(ct: Container, run: Run) -> None:
    """Last settings in the child before the CT's init is exec'd.

    **When**: ``vzctl start``, in the CT's init (born in the CT's user namespace, if it
    has one), after :func:`vz_switch_root` and after it made its own mount namespace and
    cgroup namespace; then the engine
    closes every descriptor above 2 and execs ``/sbin/init``.
    **Where**: inside the CT, ``/`` is the CT root and the process is the CT's root (in its
    user namespace, if it has one): set the hostname, sysctls, drop capabilities, install
    a seccomp filter (the subsystem order puts isolation first and security last).  The
    host's files are out of reach: the modules your hook needs belong in
    :attr:`vzcore.plugin.PluginInfo.child_modules`.

    :param ct: the CT.
    :param run: the start in progress; ``run.record`` read-only, as in
        :func:`vz_setup_child`.

    **Returns**: nothing; or it never returns: a plugin that runs another first process
    than ``/sbin/init`` execs it here itself (the ``oci`` plugin of ``vzcore-oci``, whose
    subsystem runs after every listed one: it closes the engine's pipe, which the start
    takes for the exec, waits for ``vzcore-oci start`` and execs the container's program).
    **Errors**: as :func:`vz_setup_child`.

    Example::

        @hookimpl
        def vz_finalize_child(ct, run):
            socket.sethostname(ct.config.get("HOSTNAME") or f"ct{ct.ctid}")
    """


@hookspec()
def vz_post_start(ct: Container, run: Run) -> None:
    """Finish a start once the CT's init runs (``run.init_pid``).

    **When**: ``vzctl start``, after init was exec'd, before the state is marked running.
    **Where**: host, root.

    :param ct: the CT.
    :param run: the start; ``run.init_pid`` is the host PID of the CT's init;
        ``run.record`` as the host hooks before left it, writable (what the hooks in the
        CT's init did is not in it: they cannot record).

    **Returns**: nothing.
    **Errors**: raising stops the CT again and rolls the start back.

    Example::

        @hookimpl
        def vz_post_start(ct, run):
            announce_addresses(ct)
    """


@hookspec(first_result=True)
def vz_wait_ready(ct: Container, run: Run, timeout: float) -> bool | None:
    """Wait until the CT's init says it has finished booting (``vzctl start --wait``).

    **When**: ``vzctl start --wait``, after the CT was recorded running and its lock
    released (a ``vzctl stop`` may end the wait).
    **Where**: host, root; may join the CT (:func:`vzcore.lifecycle.enter.output_in_ct`).

    :param ct: the running CT.
    :param run: the CT's state as the start left it (``run.record`` is readable).
    :param timeout: seconds to wait at most (``--wait-timeout``, ``WAIT_TIMEOUT``).

    **Returns**: ``True`` once the CT is up; ``None`` when this plugin cannot tell (the
    next plugin is asked; when none can, the start does not wait).
    **Errors**: :class:`~vzcore.errors.WaitFailed` (133) when init did not say so in time,
    naming what it reported; the CT keeps running.

    Example::

        @hookimpl
        def vz_wait_ready(ct, run, timeout):
            wait_for_ready_message(run.init_pid, timeout)
            return True
    """


@hookspec()
def vz_batch_done(cts: list[Container], verb: str) -> None:
    """Do once, for a whole batch of starts or stops, the host-wide work each left out.

    **When**: ``vzctl boot-all`` (``verb`` is ``"start"``) and ``vzctl stop-all``
    (``"stop"``), in its own process, once every start or stop of the run has ended.  Each
    of those ran with ``run.options["batch"]`` true (``vz_pre_start``, ``vz_pre_stop``,
    ``vz_post_stop``): a plugin whose start or stop updates something every CT shares,
    computed from all running CTs (the CPU weight of the CTs' parent group, read from each
    CT's group), may leave it to this hook, so that a boot or shutdown of N CTs does it
    once instead of N times (N² reads in all).  A run killed before the end leaves that
    work to the next single start or stop.
    **Where**: host, root.

    :param cts: for ``"start"``, the CTs that were started (not those that failed); for
        ``"stop"``, every CT the run tried to stop (a failed stop may have got past the
        hooks that left their work to this one).
    :param verb: ``"start"`` or ``"stop"``.

    **Returns**: nothing.
    **Errors**: raising is reported as a warning; the CTs keep running.

    Example::

        @hookimpl
        def vz_batch_done(cts, verb):
            if cts:
                rebalance_parent_group(cts[0])
    """


# -- running CTs --------------------------------------------------------------------------


@hookspec()
def vz_pre_stop(ct: Container, run: Run) -> None:
    """Last say before the CT is asked to shut down; raising refuses the stop.

    **When**: ``vzctl stop`` (not with ``--fast``) of a running CT, under its lock, before
    any plugin's :func:`vz_stop`; also the stop of ``vzctl restart`` and ``stop-all``.
    **Where**: host, root; may join the CT (:func:`vzcore.lifecycle.enter.run_in_ct`).

    :param ct: the running CT.
    :param run: the CT's recorded state.

    **Returns**: nothing.
    **Errors**: raising stops the verb with the error's exit code (an action script's 79)
    and the CT keeps running untouched, as OpenVZ's vzctl left it when ``CTID.stop``
    failed; ``vzctl stop --fast`` does not call this hook.

    Example::

        @hookimpl
        def vz_pre_stop(ct, run):
            if run_in_ct(run, ["/usr/local/sbin/flush-queue"]) != 0:
                raise VzError(f"CT {ct.ctid}: the queue could not be flushed")
    """


@hookspec()
def vz_stop(ct: Container, run: Run) -> None:
    """Ask the CT's init to shut down cleanly.

    **When**: ``vzctl stop`` (not with ``--fast``), before the engine waits up to
    ``STOP_TIMEOUT`` seconds for init to exit and then kills whatever is left in the CT's
    cgroups.
    **Where**: host, root; may join the CT (:func:`vzcore.lifecycle.enter.run_in_ct`).

    :param ct: the running CT.
    :param run: the CT's recorded state; ``run.init_pid`` is its init.

    **Returns**: nothing; the engine does the waiting and the killing.
    **Errors**: raising is reported as a warning and the engine kills the CT.

    Example::

        @hookimpl
        def vz_stop(ct, run):
            os.kill(run.init_pid, signal.SIGPWR)
    """


@hookspec()
def vz_post_stop(ct: Container, run: Run) -> None:
    """Remove from the host what this plugin made for the CT, from its ``run.record``.

    **When**: ``vzctl stop`` once every CT process is gone; on a failed start (rollback);
    when a command finds that the CT's init died on its own or a killed vzctl left a
    half-started CT.  The engine removes the cgroups and the state file afterwards.
    **Where**: host, root.  Must be idempotent: it may run twice, and on records of a
    start that got only part of the way.  It is called for every plugin the state file
    names (and for active plugins that recorded nothing: ``run.record`` is ``None``); a
    recorded plugin that is missing, disabled or no longer the provider makes the verb
    refuse by name before any step, unless ``vzctl stop --force`` drops its record.

    :param ct: the stopped CT.
    :param run: its recorded state; ``run.record`` is this plugin's record (possibly of
        a start that got only part of the way), or ``None``.

    **Returns**: nothing.
    **Errors**: raising is collected: every other plugin still cleans up and all failures
    are reported together (exit code 33 for stop).

    Example::

        @hookimpl
        def vz_post_stop(ct, run):
            for name in run.record.links if run.record else ():
                delete_link_if_present(name)
    """


@hookspec()
def vz_apply(ct: Container, changes: ChangeSet, run: Run | None) -> None:
    """Apply ``vzctl set`` changes of the keys this plugin owns to a running CT.

    **When**: ``vzctl set`` after :func:`vz_validate`; called for running CTs (``run``
    set) so the change takes effect at once, and with ``run=None`` for stopped ones
    (nothing to apply live; the config is saved by the engine with ``--save``).
    **Where**: host, root.

    :param ct: the CT, its config as before the change.
    :param changes: the changed keys; ignore the keys you do not own.
    :param run: the running CT's state, or ``None``.

    ``vzctl set 0`` calls it for the host: ``ct.is_host`` is true, ``changes`` holds host
    keys (``VE0CPUUNITS``; ``old`` is ``None``), ``run`` is ``None``, and the plugin that
    owns a host key applies it at once (the host always runs); with ``--save`` the engine
    writes the keys to vz.conf.

    **Returns**: nothing.
    **Errors**: raising stops the verb with the plugin's name; keys applied by earlier
    plugins stay applied (the message says so) and the config is not saved.

    Example::

        @hookimpl
        def vz_apply(ct, changes, run):
            if run and "NUMPROC" in changes:
                run.cgroups.write("pids", "pids.max", changes["NUMPROC"].new)
    """


@hookspec()
def vz_collect(ct: Container, run: Run | None, fields: Collection[str]) -> Mapping[str, Any]:
    """Report this plugin's vzlist fields (and beancounter rows) for one CT.

    **When**: ``vzlist``, ``vzctl status``, and commands that show counters.
    **Where**: host, root; read only.  Keep it cheap: vzlist calls it for every CT.

    :param ct: the CT.
    :param run: the running CT's state, or ``None`` when it is stopped.
    :param fields: the names of the fields the caller will show (``numproc`` for
        ``numproc.m`` too).  Values of other fields may be left out, and should be when
        they cost something to read; an implementation that needs no such choice can
        omit this parameter.

    **Returns**: a mapping of field name (declared in :func:`vz_list_fields`) to value;
    JSON-ready values (numbers, strings, lists, dicts).  Missing fields show as ``-``.
    **Errors**: raising shows the plugin's fields as ``-`` and a warning; vzlist goes on.

    Example::

        @hookimpl
        def vz_collect(ct, run):
            return {"motd": ct.config.get("MOTD")}
    """


@hookspec()
def vz_check(ct: Container, run: Run) -> None:
    """Repair a host-side service a running CT depends on, found broken.

    **When**: ``vzctl status`` and ``vzlist`` (before :func:`vz_collect`), for each
    running CT.  Keep it cheap when all is well: it runs for every CT listed.
    **Where**: host, root (skipped for other users: nothing can be repaired then).

    :param ct: the CT.
    :param run: the running CT's state; ``run.record`` is this plugin's record.

    **Returns**: nothing.
    **Errors**: raising prints a warning naming the plugin; the verb goes on.

    Example::

        @hookimpl
        def vz_check(ct, run):
            if run.record is not None and not daemon_alive():
                restart_daemon_and_rebind()
    """


@hookspec()
def vz_enter(ct: Container, run: Run) -> None:
    """Restrict a process that joins a running CT exactly as the CT's init was.

    **When**: ``vzctl exec/exec2/exec3/enter`` and anything run with
    :func:`vzcore.lifecycle.enter.run_in_ct`, in the joining process after it entered the
    CT's cgroups and namespaces and chdir'ed to ``/``, just before it execs; also in the
    shell of ``vzctl runscript`` on a stopped CT (:mod:`vzcore.lifecycle.runscript`: the
    CT's root as ``/``, no ``/proc``, and no state file, so ``run.record`` is ``None``).
    **Where**: inside the CT: drop capabilities, set no_new_privs, apply seccomp.  The
    host's files are out of reach: the modules it needs belong in
    :attr:`vzcore.plugin.PluginInfo.child_modules`, imported before the process joins.

    :param ct: the CT.
    :param run: the CT's recorded state.

    **Returns**: nothing.
    **Errors**: raising aborts the command before anything runs in the CT.

    Example::

        @hookimpl
        def vz_enter(ct, run):
            drop_bounding_set(ct_capabilities(ct))
    """
