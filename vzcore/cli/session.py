"""State shared by the commands of one vzctl or vzlist invocation."""

from __future__ import annotations

from functools import cached_property

import click

from vzcore.container import Container, parse_ctid
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

    def container(self, ctid_text: str) -> Container:
        return self.engine.container(parse_ctid(ctid_text))


pass_session = click.make_pass_decorator(Session, ensure=False)
