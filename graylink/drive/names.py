"""Drive names as the rclone mount shows them."""

from __future__ import annotations


def encode_name(name: str) -> bytes:
    """A Drive name as the rclone mount shows it (rclone's standard encoding of ``/`` and NUL)."""
    return name.replace("/", "\uff0f").replace("\x00", "\u2400").encode("utf-8", "surrogateescape")
