"""``vzctl template create|list|remove``: the template cache (a command group of the
template plugin, loaded only when invoked)."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from vzcore.cli.session import Session, pass_session
from vzcore.errors import TemplateNotFound


def _cache(session: Session) -> Any:
    from vzcore_template import cache

    return cache.cache_dir(session.paths, cache.template_setting(session.paths))


@click.group()
def template() -> None:
    """Build, list and remove OS templates in the template cache ($TEMPLATE/cache)."""


@template.command()
@click.argument("distribution", metavar="DIST-VERSION")
@click.option("--flavour", "--flavor", default="minimal", show_default=True, metavar="NAME",
              help="minimal (init, syslog, cron, sshd) or web (also inetd, an MTA, apache2 "
                   "with 8 pre-forked workers)")
@click.option("--init", "init", default="systemd", show_default=True, metavar="KIND",
              help="systemd or sysvinit (PID 1 of the CTs)")
@click.option("--packages", metavar="A,B", help="More Debian packages to install")
@click.option("--mirror", metavar="URL",
              help="Debian mirror (default: the host's, from /etc/apt/sources.list{,.d})")
@click.option("--name", metavar="NAME",
              help="Cache name (default DIST-VERSION-ARCH-FLAVOUR[-INIT], e.g. debian-12-x86_64-minimal)")
@click.option("--reuse", is_flag=True,
              help="Keep an existing cache of that name built from the same recipe")
@pass_session
def create(session: Session, distribution: str, flavour: str, init: str, packages: str | None,
           mirror: str | None, name: str | None, reuse: bool) -> None:
    """Build a template with debootstrap: vzctl template create debian-12 --flavour minimal."""
    from vzcore_template import build, names
    from vzcore_template import mirror as mirrors
    from vzcore_template.progress import Reporter

    dist = names.parse_distribution(distribution)
    names.check_choice(flavour, names.FLAVOURS, "--flavour")
    names.check_choice(init, names.INITS, "--init")
    extra = names.parse_packages(packages)
    found = (mirrors.Mirrors(mirrors.check_mirror(mirror)) if mirror
             else mirrors.host_mirrors())
    build.check_tools()
    arch = names.host_debian_arch()
    cache_name = names.check_name(name) if name else names.template_name(dist, arch, flavour, init)
    request = build.Request(name=cache_name, distribution=dist, arch=arch, flavour=flavour,
                            init=init, extra=extra, mirrors=found)
    reporter = Reporter(cache_name, quiet=session.quiet)
    meta = build.build(request, _cache(session), reporter, reuse=reuse)
    session.say(f"Template {meta.name} is ready ({meta.init}, {meta.size / 1e6:.1f} MB, "
                f"built {meta.created})")


def _rows(session: Session) -> list[dict[str, Any]]:
    from vzcore_template import cache

    rows = []
    for cached in cache.templates(_cache(session)):
        meta = cached.meta
        rows.append({
            "name": cached.name,
            "file": str(cached.tarball),
            "size": cached.size,
            "created": meta.created if meta and meta.created else
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cached.mtime)),
            "init": meta.init if meta else None,
            "flavour": meta.flavour if meta else None,
            "metadata": meta.to_json() if meta else None,
        })
    return rows


@template.command("list")
@click.option("-j", "--json", "as_json", is_flag=True, help="Print JSON (with the metadata).")
@pass_session
def list_(session: Session, as_json: bool) -> None:
    """List the cached templates: name, size, creation date, init kind."""
    rows = _rows(session)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo(f"{'NAME':<40} {'SIZE':>9} {'CREATED':<20} INIT")
    for row in rows:
        size = f"{row['size'] / 1e6:.1f}M"
        click.echo(f"{row['name']:<40} {size:>9} {row['created']:<20} {row['init'] or '-'}")


@template.command()
@click.argument("name")
@pass_session
def remove(session: Session, name: str) -> None:
    """Remove a cached template (its tarball, metadata and any interrupted build)."""
    from vzcore_template import cache, metadata, names

    names.check_name(name)
    directory = _cache(session)
    if not cache.has_anything_of(directory, name):  # refused before the lock: nothing made
        known = ", ".join(c.name for c in cache.templates(directory)) or "none"
        raise TemplateNotFound(f"template remove: no template {name!r} in {directory} "
                               f"(cached: {known}); see 'vzctl template list'")
    from vzcore_template import shared_tree

    # refused while an overlay CT shares the unpacked tree, before anything is removed
    shared_tree.remove_trees(session.paths, cache.template_setting(session.paths)
                             or shared_tree.DEFAULTS["TEMPLATE"], name)
    with cache.locked(directory, name) as leftovers:  # which removes an interrupted build's
        tarballs = cache.tarballs(directory, name)
        meta_path = metadata.path_for(directory, name)
        if not tarballs:
            if leftovers:
                session.say(f"Removed what an interrupted build of template {name} left")
                return
            raise TemplateNotFound(f"template remove: no template {name!r} in {directory}; "
                                   "see 'vzctl template list'")
        for path in tarballs:
            path.unlink()
        meta_path.unlink(missing_ok=True)
    users = cache.users(session.paths, name)
    note = (f"; CTs {', '.join(map(str, users))} were created from it (their private areas "
            "are theirs and stay)") if users else "; no CT uses it"
    session.say(f"Template {name} removed{note}")
