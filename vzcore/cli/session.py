"""State shared by the commands of one vzctl or vzlist invocation."""

from __future__ import annotations

from functools import cached_property

import click

from vzcore.container import Container, resolve_ct_argument
from vzcore.engine import Engine
from vzcore.paths import Paths


class Session:
    """Global flags (``--quiet``, ``--verbose``, ``--root-dir``) and the engine, built lazily."""

    def __init__(self, root_dir: str | None, verbose: int = 0, quiet: bool = False) -> None:
        self.paths = Paths.from_environment(root_dir)
        self.verbose = verbose
        self.quiet = quiet

    def say(self, message: str) -> None:
        if not self.quiet:
            click.echo(message)

    def warn(self, message: str) -> None:
        click.echo(message, err=True)

    @cached_property
    def engine(self) -> Engine:
        return Engine(self.paths, say=self.say, warn=self.warn)

    def resolve(self, ctid_text: str) -> int:
        """The CT ID an argument means: digits are a CT ID, anything else a CT's name."""
        engine = self.engine
        return resolve_ct_argument(ctid_text, engine.paths.conf_dir, engine.ctids())

    def container(self, ctid_text: str) -> Container:
        """The CT a command-line argument names, by CT ID or by name (``NAME``)."""
        return self.engine.container(self.resolve(ctid_text))


pass_session = click.make_pass_decorator(Session, ensure=False)
