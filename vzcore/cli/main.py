"""``vzctl``: the command group, global flags, lazy command loading and exit codes."""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

import click

from vzcore import __version__

BUILTIN_COMMANDS: dict[str, tuple[str, str]] = {
    "create": ("vzcore.cli.create:create", "Create a CT from an OS template"),
    "destroy": ("vzcore.cli.destroy:destroy", "Remove a stopped CT (alias: delete)"),
    "delete": ("vzcore.cli.destroy:destroy", "Remove a stopped CT"),
    "start": ("vzcore.cli.start:start", "Start a CT"),
    "stop": ("vzcore.cli.stop:stop", "Stop a CT"),
    "restart": ("vzcore.cli.restart:restart", "Stop a CT if it runs, then start it"),
    "status": ("vzcore.cli.status:status", "Print a CT's status line"),
    "mount": ("vzcore.cli.mount:mount", "Mount a CT's root at VE_ROOT"),
    "umount": ("vzcore.cli.mount:umount", "Unmount a stopped CT's root"),
    "exec": ("vzcore.cli.exec:exec_", "Run a command line in a CT with /bin/sh (exit 8 on failure)"),
    "exec2": ("vzcore.cli.exec:exec2", "Like exec, exiting with the command's own status"),
    "exec3": ("vzcore.cli.exec:exec3", "Run argv in a CT without a shell"),
    "enter": ("vzcore.cli.enter:enter", "Open an interactive root shell in a CT"),
    "console": ("vzcore.cli.console:console", "Attach to a running CT's console"),
    "runscript": ("vzcore.cli.runscript:runscript", "Run a host script with /bin/sh inside a running CT"),
    "set": ("vzcore.cli.set:set_", "Change a CT's parameters (live, and with --save in its config)"),
    "boot-all": ("vzcore.cli.bootall:boot_all", "Start every ONBOOT=yes CT in BOOTORDER (the vz service)"),
    "stop-all": ("vzcore.cli.bootall:stop_all", "Stop every running CT in parallel (the vz service)"),
    "plugins": ("vzcore.cli.plugins:plugins", "List plugins, their subsystems and parameters"),
}

EXIT_INVALID_SYNTAX = 20
EXIT_SYSTEM = 3  # VZ_SYSTEM_ERROR


def _import(target: str) -> click.Command:
    import importlib

    module_name, _, attr = target.partition(":")
    command = getattr(importlib.import_module(module_name), attr)
    if not isinstance(command, click.Command):
        raise click.ClickException(f"{target} is not a click command")
    return command


class VzctlGroup(click.Group):
    """Commands are loaded by name: built-in ones from :data:`BUILTIN_COMMANDS`, plugin ones
    from the plugins' ``vz_commands`` records; ``--help`` lists both without importing them."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(BUILTIN_COMMANDS) | set(self._plugin_commands(ctx)))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in BUILTIN_COMMANDS:
            return _import(BUILTIN_COMMANDS[cmd_name][0])
        record = self._plugin_commands(ctx).get(cmd_name)
        return _import(record[0]) if record else None

    def _plugin_commands(self, ctx: click.Context) -> dict[str, tuple[str, str]]:
        from vzcore.cli.session import Session
        from vzcore.plugin.registry import Registry

        obj = ctx.find_object(Session) or Session(None)
        registry = Registry.build_commands(obj.engine.plugins, BUILTIN_COMMANDS)
        return {name: (c.target, c.summary) for name, c in registry.commands.items()}

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, summary) for name, (_t, summary) in sorted(BUILTIN_COMMANDS.items())]
        try:
            rows += sorted((n, s) for n, (_t, s) in self._plugin_commands(ctx).items())
        except Exception as exc:  # a broken plugin must not hide the built-in commands
            rows.append(("(plugins)", f"cannot list plugin commands: {exc}"))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=VzctlGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="Each command has --help.  Exit codes follow vzctl's; see docs/cli.md.")
@click.version_option(__version__, prog_name="vzctl", message="%(prog)s %(version)s (vzcore)")
@click.option("--root-dir", envvar="VZ_ROOT", metavar="DIR",
              help="Prefix for every path vzcore uses (also: $VZ_ROOT).")
@click.option("-v", "--verbose", count=True, help="More output; tracebacks on errors.")
@click.option("-q", "--quiet", is_flag=True, help="No progress messages.")
@click.pass_context
def vzctl(ctx: click.Context, root_dir: str | None, verbose: int, quiet: bool) -> None:
    """Manage OpenVZ-style containers (CTs) on this host."""
    from vzcore.cli.session import Session

    ctx.obj = Session(root_dir, verbose, quiet)


def _verbose(args: list[str]) -> bool:
    """Whether ``-v`` was given before the command name (errors then show a traceback)."""
    if os.environ.get("VZ_TRACEBACK"):
        return True
    for arg in args:
        if not arg.startswith("-"):
            return False
        if arg == "--verbose" or (arg[1:2] != "-" and "v" in arg[1:]):
            return True
    return False


def _traceback_if_verbose(args: list[str] | None) -> None:
    if _verbose(sys.argv[1:] if args is None else args):
        import traceback

        traceback.print_exc()


def run_cli(command: click.Command, prog_name: str, args: list[str] | None = None) -> int:
    """Run a click command with vzctl's error handling; return the exit code."""
    from vzcore.errors import VzError

    try:
        result: Any = command.main(args=args, prog_name=prog_name, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        message = exc.format_message().rstrip(".")
        hint = f"; see '{exc.ctx.command_path} --help'" if exc.ctx else ""
        click.echo(f"{prog_name}: {message}{hint}", err=True)
        return EXIT_INVALID_SYNTAX
    except click.Abort:
        click.echo("Aborted.", err=True)
        return 1
    except VzError as exc:
        _traceback_if_verbose(args)
        click.echo(f"Error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug or an unforeseen OSError: one line, no class name
        from vzcore.errors import describe

        _traceback_if_verbose(args)
        click.echo(f"Error: {describe(exc)} (unexpected; run 'vzctl -v' for where)", err=True)
        return EXIT_SYSTEM
    return result if isinstance(result, int) else 0


def exit_now(code: int) -> NoReturn:
    """End a command-line invocation with ``code``, skipping the interpreter's teardown.

    By the time a command returns, every lock, file and child it had is closed, released or
    handed over, and nothing registers exit handlers; only stdout and stderr still hold
    buffered output.  Tearing down a hundred modules would cost every call about 20 ms
    (a tenth of a ``vzctl start``; see docs/benchmarks.md).
    """
    for stream in (sys.stdout, sys.stderr):
        if stream is None or stream.closed:  # started with that descriptor closed
            continue
        try:
            stream.flush()
        except BrokenPipeError:  # the reader went away (vzlist | head): nothing to tell it
            pass
        except OSError:  # output was lost (a full disk): exit as Python's own teardown would
            code = code or 120
    os._exit(code)


def main() -> None:
    """Console entry point of ``vzctl``."""
    exit_now(run_cli(vzctl, "vzctl"))
