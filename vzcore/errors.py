"""One error tree for vzcore; every error carries vzctl's exit code.

The CLI prints ``str(error)`` on one line and exits with ``error.exit_code``; a traceback
is shown only with ``-v``.  Messages name the CT, the parameter or plugin, and the fix.
Codes follow vzctl's ``include/vzerror.h`` (see docs/cli.md, "Exit codes").
"""

from __future__ import annotations

from collections.abc import Sequence


class VzError(Exception):
    """Base of every error vzcore reports to a user."""

    exit_code = 3  # VZ_SYSTEM_ERROR

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0])


def describe(exc: BaseException) -> str:
    """``exc`` as a user reads it: a :class:`VzError`'s message; an :class:`OSError`'s
    description (and file) without its class name or ``[Errno N]``; otherwise its text."""
    if isinstance(exc, VzError):
        return exc.message
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename is not None else ""
        return f"{exc.strerror}{where}"
    return str(exc) or "an internal error (run vzctl -v to see where)"


class InvalidSyntax(VzError):
    """A malformed command line (unknown option, malformed CTID)."""

    exit_code = 20  # VZ_INVALID_PARAMETER_SYNTAX


class InvalidValue(VzError):
    """A well-formed option whose value is not acceptable."""

    exit_code = 21  # VZ_INVALID_PARAMETER_VALUE


class ConfigError(VzError):
    """A configuration file that cannot be read, parsed or written."""

    exit_code = 85  # VZ_INVALID_CONFIG


class CtConfigMissing(VzError):
    """The CT has no CTID.conf: it does not exist."""

    exit_code = 14  # VZ_NOVECONFIG


class ConfigSaveError(ConfigError):
    exit_code = 139  # VZ_CONFIG_SAVE_ERROR


class Locked(VzError):
    """Another live vzctl holds the CT's lock."""

    exit_code = 9  # VZ_LOCKED


class NotRunning(VzError):
    exit_code = 31  # VZ_VE_NOT_RUNNING


class AlreadyRunning(VzError):
    exit_code = 32  # VZ_VE_RUNNING


class StopError(VzError):
    exit_code = 33  # VZ_STOP_ERROR


class NotMounted(VzError):
    exit_code = 40  # VZ_FS_NOT_MOUNTED


class AlreadyMounted(VzError):
    exit_code = 41  # VZ_FS_MOUNTED


class PrivateAreaMissing(VzError):
    exit_code = 43  # VZ_FS_NOPRVT


class PrivateAreaExists(VzError):
    exit_code = 44  # VZ_FS_PRVT_AREA_EXIST


class BadTemplate(VzError):
    exit_code = 47  # VZ_FS_BAD_TMPL


class CreateError(VzError):
    exit_code = 48  # VZ_FS_NEW_VE_PRVT


class MountError(VzError):
    exit_code = 50  # VZ_FS_CANTMOUNT


class UmountError(VzError):
    exit_code = 51  # VZ_FS_CANTUMOUNT


class DestroyError(VzError):
    exit_code = 52  # VZ_FS_DEL_PRVT


class ActionScriptError(VzError):
    """An action script (``vps.mount``, ``CTID.start``, ...) failed or was refused."""

    exit_code = 79  # VZ_ACTIONSCRIPT_ERROR


class TemplateNotFound(VzError):
    exit_code = 91  # VZ_OSTEMPLATE_NOT_FOUND


class TemplateNotSet(VzError):
    exit_code = 29  # VZ_VE_OSTEMPLATE_NOTSET


class StartDisabled(VzError):
    exit_code = 105  # VZ_VE_START_DISABLED


class WaitFailed(VzError):
    """``vzctl start --wait``: the CT's init did not say it is up in time."""

    exit_code = 133  # VZ_WAIT_FAILED


class CommandFailed(VzError):
    """``vzctl exec``: the command inside the CT exited non-zero."""

    exit_code = 8  # VZ_COMMAND_EXECUTION_ERROR


class KernelError(VzError):
    """A kernel interface refused an operation: says which, on what, and errno."""

    exit_code = 3

    def __init__(self, operation: str, target: str, errno_: int, *, exit_code: int | None = None):
        import os

        self.operation = operation
        self.target = target
        self.errno = errno_
        super().__init__(f"{operation} {target}: {os.strerror(errno_)}", exit_code=exit_code)


class MissingSubsystem(VzError):
    """A verb needs a subsystem that no active plugin provides."""

    exit_code = 5  # VZ_BAD_KERNEL: the closest "support not available" code

    def __init__(self, subsystem: str, verb: str, reason: str = "") -> None:
        self.subsystem = subsystem
        why = f" ({reason})" if reason else ""
        super().__init__(
            f"vzctl {verb} needs the '{subsystem}' subsystem, but no active plugin provides it"
            f"{why}; install one or remove it from DISABLED_PLUGINS in vz.conf "
            f"(see 'vzctl plugins')"
        )


class PluginConflict(VzError):
    """Two installed plugins offer one subsystem and vz.conf does not choose."""

    exit_code = 85

    def __init__(self, subsystem: str, names: Sequence[str]) -> None:
        self.subsystem = subsystem
        self.names = tuple(names)
        key = f"{subsystem.upper()}_PROVIDER"
        super().__init__(
            f"plugins {', '.join(repr(n) for n in names)} all provide the '{subsystem}' "
            f"subsystem; choose one with {key}=<name> in vz.conf"
        )


class PluginError(VzError):
    """A plugin's hook failed; names the plugin, the hook and the cause.

    With ``verdict`` (a hook declared with ``input_errors``, such as ``vz_validate``,
    refused the user's input) the cause's message comes first and the plugin and hook
    follow it; the exit code is the cause's in both forms.
    """

    def __init__(self, plugin: str, hook: str, cause: BaseException | str, *,
                 verdict: bool = False) -> None:
        self.plugin = plugin
        self.hook = hook
        self.verdict = verdict
        code: int | None = None
        if isinstance(cause, VzError):
            text, code = cause.message, cause.exit_code
        elif isinstance(cause, BaseException):
            text = describe(cause)
        else:
            text = cause
        self.detail = text
        message = (f"{text} (plugin '{plugin}', {hook})" if verdict
                   else f"plugin '{plugin}' failed in {hook}: {text}")
        super().__init__(message, exit_code=code)


class CleanupError(VzError):
    """Several cleanup steps failed; all of them are reported together."""

    def __init__(self, what: str, errors: Sequence[BaseException]) -> None:
        self.errors = tuple(errors)
        details = "; ".join(str(e) for e in errors)
        codes = {getattr(e, "exit_code", 3) for e in errors}
        super().__init__(f"{what}: {details}", exit_code=codes.pop() if len(codes) == 1 else 3)


class RecordedPluginUnavailable(VzError):
    """A plugin that recorded what it made for a CT cannot be called to undo it."""

    exit_code = 33  # VZ_STOP_ERROR: the CT cannot be stopped or cleaned up as it is
