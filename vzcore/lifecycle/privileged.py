"""The privileged profile (``LOCAL_UID=0``: no user namespace) is a host's explicit opt-in.

A privileged CT's root is the host's root: seccomp takes the worst of its powers away
(docs/security.md, "The privileged profile"), but it stays not root-safe.  As LXC keeps
privileged containers but makes them a deliberate choice, vzctl creates and starts them
only when vz.conf says ``ALLOW_PRIVILEGED="yes"``, and warns each time it does.
"""

from __future__ import annotations

from vzcore.container import Container
from vzcore.engine import Engine
from vzcore.errors import ConfigError, InvalidValue
from vzcore.values import YesNo

SWITCH = "ALLOW_PRIVILEGED"


def allowed(engine: Engine) -> bool:
    """Whether vz.conf allows privileged CTs (off when the key is missing)."""
    text = engine.global_config.get(SWITCH)
    if text is None or not text.strip():
        return False
    try:
        return YesNo().parse(text)
    except ValueError:
        raise ConfigError(f"{SWITCH}={text!r} in {engine.paths.vz_conf}: expected yes or no; "
                          f"fix it in {engine.paths.vz_conf}") from None


def is_privileged_at_create(engine: Engine, ct: Container) -> bool:
    """Whether ``create`` will make ``ct`` privileged: ``LOCAL_UID`` 0 given, or vz.conf's
    ``LOCAL_UID="0"`` as the default (the rule of ``create._choose_id_range``)."""
    uid = ct.config.get("LOCAL_UID")
    if uid is None:
        uid = engine.global_config.get("LOCAL_UID")
    return uid is not None and uid.strip() == "0"


def check(engine: Engine, ct: Container, verb: str, *, privileged: bool) -> None:
    """Refuse ``verb`` of a privileged ``ct`` unless vz.conf allows the profile (exit 21);
    when it does, warn that the CT is not root-safe."""
    if not privileged:
        return
    conf = engine.paths.vz_conf
    if not allowed(engine):
        fix = (f"create it without --local_uid 0 (and without LOCAL_UID=\"0\" in {conf})"
               if verb == "create" else "re-create it with a user namespace (LOCAL_UID > 0)")
        raise InvalidValue(
            f"CT {ct.ctid}: the privileged profile (LOCAL_UID=0: the CT's root is the host's "
            f"root, not root-safe) is not allowed; set {SWITCH}=\"yes\" in {conf} to allow it, "
            f"or {fix} (see docs/security.md)")
    engine.warn(f"warning: CT {ct.ctid} is privileged (LOCAL_UID=0): its root is the host's "
                "root and this profile is not root-safe; run only what you trust as much as "
                "the host in it (see docs/security.md)")
