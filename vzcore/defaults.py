"""Defaults that several plugins must agree on without importing each other (pure data)."""

from __future__ import annotations

DEV_SHM_SIZE = 64 * 1024 * 1024
"""The size in bytes of a CT's /dev/shm (tmpfs) when nothing else sizes it: runc's default.

tmpfs's own default, half the host's RAM, would let one CT pin that much memory outside
any limit it may have.  The isolation plugin mounts /dev/shm with this size; the
beancounters plugin resizes it to ``SHMPAGES`` when that is set, and back to this size when
``SHMPAGES`` is lifted to unlimited on a running CT (docs/security.md, docs/beancounters.md).
"""
