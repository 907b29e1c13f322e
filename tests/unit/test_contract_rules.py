"""The rule checks of vzcore.testing.lifecycle on journals written by hand."""

from __future__ import annotations

from vzcore.testing.fake import CORE, MAKE, RECORD, Event, names_target
from vzcore.testing.lifecycle import made_before_recorded


def record(detail: object, hook: str = "vz_pre_start") -> Event:
    return Event(RECORD, "state", "/run/vz/101.json", hook, detail)


def make(target: str, hook: str = "vz_pre_start", kind: str = "file") -> Event:
    return Event(MAKE, kind, target, hook)


def test_a_record_naming_the_object_or_a_directory_above_it_covers_it() -> None:
    assert names_target({"view": "/run/vz/cpu/101"}, "/run/vz/cpu/101/cpuinfo")
    assert names_target({"links": ["veth101.0", "venet101"]}, "venet101")
    assert not names_target({"links": ["veth101.0"]}, "veth101.1")
    assert not names_target({"view": "/run/vz/cpu/10"}, "/run/vz/cpu/101")


def test_made_after_its_record_is_fine() -> None:
    events = [record(None, CORE), make("/run/vz/x", CORE), record({"f": "/run/vz/101.g"}),
              make("/run/vz/101.g"), make("/run/vz", "vz_pre_start", "directory")]
    assert made_before_recorded(events) == []


def test_made_before_its_record_is_named_with_the_hook() -> None:
    events = [record(None, CORE), make("/run/vz/101.g", "vz_post_start"),
              record({"f": "/run/vz/101.g"}, "vz_post_start")]
    [broken] = made_before_recorded(events)
    assert broken.startswith("hook vz_post_start made file /run/vz/101.g before recording it")


def test_a_record_that_was_dropped_again_no_longer_covers() -> None:
    events = [record({"links": ["veth101.0"]}), record({}), make("veth101.0", kind="link")]
    assert len(made_before_recorded(events)) == 1
